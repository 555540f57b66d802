package standin

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Fleet plays the pods of one Deployment. Its methods are safe for concurrent use.
type Fleet struct {
	cfg    Config
	key    client.ObjectKey
	queue  queue
	filler string
	stats  *counters
	log    *slog.Logger
	// base is the pods' context: Start's values without its cancellation, since a pod
	// ends by terminating, not by its parent's end.
	base context.Context

	mu   sync.Mutex
	pods []*pod // in creation order, exited ones until the next poll forgets them
	seq  int    // the last pod's number

	// With Config.FollowPods: the pod playing each real Pod seen (by UID; nil for a Pod
	// first seen terminating or finished), until the Pod is gone from the API server.
	followed map[types.UID]*pod
	// selector is the Deployment's, once read (Config.FollowPods; the poll loop's own).
	selector labels.Selector

	lastErr string // the last Kubernetes error logged, so an outage logs once
	stop    context.CancelFunc
	done    chan struct{}
}

// Start validates cfg and starts following the Deployment. A missing Deployment has no
// pods; any other error reading it fails Start. The fleet runs until Stop or until ctx
// ends, which stops it the same graceful way.
func Start(ctx context.Context, cfg Config) (*Fleet, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	key := client.ObjectKey{Namespace: cfg.Namespace, Name: cfg.Deployment}
	if err := cfg.Client.Get(ctx, key, &appsv1.Deployment{}); err != nil && !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("reading deployment %s: %w", key, err)
	}
	q, err := newQueue(ctx, cfg.Redis, cfg.Queue)
	if err != nil {
		return nil, err
	}
	f := &Fleet{
		cfg: cfg, key: key, queue: q, filler: fillerFor(cfg.Request.InputTokens),
		stats: newCounters(), log: cfg.Logger.With("deployment", key.String()),
		base: context.WithoutCancel(ctx), done: make(chan struct{}),
		followed: map[types.UID]*pod{},
	}
	var loop context.Context
	loop, f.stop = context.WithCancel(ctx)
	go f.follow(loop)
	return f, nil
}

// Stop terminates every pod, waits until each has finished its job (or its grace period
// ran out) and its sidecar stopped. The Deployment's status stays as last written; with
// Config.FollowPods the real Pods stay as they are, only no worker plays them any more.
func (f *Fleet) Stop() {
	f.stop()
	<-f.done
}

// Stats returns the counters and the pods in each phase now.
func (f *Fleet) Stats() Stats {
	s := f.stats.snapshot()
	for _, p := range f.Pods() {
		switch p.Phase {
		case PhaseStarting:
			s.PodsStarting++
		case PhaseReady:
			s.PodsReady++
		case PhaseTerminating:
			s.PodsTerminating++
		}
	}
	return s
}

// Acked returns how many times each job payload has been acknowledged. Exactly once
// processing means every payload pushed appears with 1, or is still in the queue.
func (f *Fleet) Acked() map[string]int { return f.stats.ackedCopy() }

// Pods describes the pods that have not exited, oldest first.
func (f *Fleet) Pods() []PodInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]PodInfo, 0, len(f.pods))
	for _, p := range f.pods {
		if !p.exited() {
			out = append(out, p.info())
		}
	}
	return out
}

// follow polls the Deployment (and with Config.FollowPods its Pods) until ctx ends, then
// stops the pods.
func (f *Fleet) follow(ctx context.Context) {
	defer close(f.done)
	defer f.stopPods()
	tick := time.NewTicker(f.cfg.PollInterval)
	defer tick.Stop()
	for {
		f.sync(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// sync is one poll: match the pods to spec.replicas and report them in status, or with
// Config.FollowPods match them to the real Pods.
func (f *Fleet) sync(ctx context.Context) {
	f.forgetExited()
	if f.cfg.FollowPods {
		f.syncFollowed(ctx)
		return
	}
	dep := &appsv1.Deployment{}
	err := f.cfg.Client.Get(ctx, f.key, dep)
	switch {
	case apierrors.IsNotFound(err):
		f.scaleTo(0) // a deleted Deployment's pods are garbage collected
		return
	case err != nil:
		f.kubeError(ctx, "reading the deployment", err)
		return
	}
	f.scaleTo(int(ptr.Deref(dep.Spec.Replicas, 1)))
	if err := f.writeStatus(ctx, dep); err != nil {
		f.kubeError(ctx, "writing the deployment's status", err)
		return
	}
	f.lastErr = ""
}

// kubeError logs an API server error once per distinct message; shutdown errors are not
// worth a line.
func (f *Fleet) kubeError(ctx context.Context, what string, err error) {
	if ctx.Err() != nil || err.Error() == f.lastErr {
		return
	}
	f.lastErr = err.Error()
	f.log.Warn(what+" failed", "error", err)
}

// scaleTo creates or terminates pods until want of them are not terminating.
func (f *Fleet) scaleTo(want int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var live []*pod
	for _, p := range f.pods {
		if p.currentPhase() != PhaseTerminating {
			live = append(live, p)
		}
	}
	for range want - len(live) {
		f.createPodLocked()
	}
	for _, p := range scaleInVictims(live, len(live)-want) {
		if p.terminate(p.gracePeriod) {
			f.log.Info("pod terminating", "pod", p.name, "gracePeriod", p.gracePeriod)
		}
	}
}

func (f *Fleet) createPodLocked() {
	f.seq++
	p := newPod(f.base, fmt.Sprintf("%s-%d", f.cfg.Deployment, f.seq), f.seq)
	p.gracePeriod = f.cfg.GracePeriod
	f.pods = append(f.pods, p)
	f.log.Info("pod created", "pod", p.name)
	go f.runPod(p)
}

func (f *Fleet) forgetExited() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pods = slices.DeleteFunc(f.pods, (*pod).exited)
}

// stopPods terminates every pod and waits until all have exited.
func (f *Fleet) stopPods() {
	f.mu.Lock()
	pods := slices.Clone(f.pods)
	f.mu.Unlock()
	for _, p := range pods {
		if p.terminate(p.gracePeriod) {
			f.log.Info("pod terminating", "pod", p.name, "gracePeriod", p.gracePeriod)
		}
	}
	for _, p := range pods {
		<-p.done
	}
	f.forgetExited()
}
