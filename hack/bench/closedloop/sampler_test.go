package closedloop

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	appsv1 "k8s.io/api/apps/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	capacityv1alpha1 "github.com/claudecap/claudecap/api/v1alpha1"
	"github.com/claudecap/claudecap/internal/standin"
	"github.com/claudecap/claudecap/pkg/mockapi"
	"github.com/claudecap/claudecap/pkg/ratelimit"
)

// sampler reads the ground truth of one scenario once a second.
type sampler struct {
	kube      client.Client
	namespace string
	// names are the workloads: Deployment <name>-workers, ClaudeCapacity <name>, list
	// jobs:<name> with processing list jobs:<name>:processing.
	names   []string
	rdb     *redis.Client
	mockURL string
	fleets  []*standin.Fleet
	ext     *externalClient
	httpc   *http.Client
	// pool is where the controller publishes the budget the limiters enforce.
	pool ratelimit.PoolKey
}

func deploymentName(workload string) string { return workload + "-workers" }
func listName(workload string) string       { return "jobs:" + workload }
func processingName(workload string) string { return listName(workload) + ":processing" }

// take reads everything once; whatever does not answer is marked unknown, not fatal.
func (s *sampler) take(ctx context.Context, t float64) sample {
	out := sample{T: t, W: make([]workloadSample, len(s.names))}
	ctx, cancel := context.WithTimeout(ctx, 900*time.Millisecond)
	defer cancel()
	lens := s.queueLengths(ctx)
	for i, name := range s.names {
		w := &out.W[i]
		w.Backlog, w.InFlight = lens[2*i], lens[2*i+1]
		dep := &appsv1.Deployment{}
		if err := s.kube.Get(ctx, client.ObjectKey{Namespace: s.namespace, Name: deploymentName(name)}, dep); err == nil {
			w.Spec, w.Ready = ptr.Deref(dep.Spec.Replicas, 0), dep.Status.ReadyReplicas
		}
		cc := &capacityv1alpha1.ClaudeCapacity{}
		if err := s.kube.Get(ctx, client.ObjectKey{Namespace: s.namespace, Name: name}, cc); err == nil {
			w.Status = statusOf(cc)
		}
		if i < len(s.fleets) && s.fleets[i] != nil {
			st := s.fleets[i].Stats()
			w.Completed, w.Requeued = st.JobsCompleted, st.JobsRequeued
			w.CallsRateLimited, w.CallsFailed = st.CallsRateLimited, st.CallsFailed
			w.Starting, w.Running, w.Terminating = st.PodsStarting, st.PodsReady, st.PodsTerminating
		}
	}
	out.Mock = s.mockStats(ctx)
	out.Ext = s.ext.counters()
	if cfg, err := ratelimit.ReadPoolConfig(ctx, s.rdb, s.pool); err == nil {
		out.Enforced = [3]int64{cfg.Limits.RequestsPerMinute, cfg.Limits.InputTokensPerMinute, cfg.Limits.OutputTokensPerMinute}
	}
	return out
}

// queueLengths is LLEN of every list and processing list in one round trip; -1 for each
// when Redis does not answer.
func (s *sampler) queueLengths(ctx context.Context) []int64 {
	out := make([]int64, 2*len(s.names))
	cmds := make([]*redis.IntCmd, 0, len(out))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, name := range s.names {
			cmds = append(cmds, p.LLen(ctx, listName(name)), p.LLen(ctx, processingName(name)))
		}
		return nil
	})
	for i := range out {
		if err != nil || cmds[i].Err() != nil {
			out[i] = -1
		} else {
			out[i] = cmds[i].Val()
		}
	}
	return out
}

func statusOf(cc *capacityv1alpha1.ClaudeCapacity) ccStatus {
	st := cc.Status
	out := ccStatus{Desired: st.DesiredReplicas, Demand: st.DemandReplicas, LimitedBy: string(st.LimitedBy),
		Cap: ptr.Deref(st.CapReplicas, -1), UpstreamOTPMLeft: -1}
	if st.Observed != nil {
		out.PerReplica = st.Observed.PerReplicaRequestsPerMinute
		if st.Observed.UpstreamRemaining != nil {
			out.UpstreamOTPMLeft = st.Observed.UpstreamRemaining.OutputTokensPerMinute
		}
	}
	if st.Queue != nil {
		out.Arrivals, out.Depth = st.Queue.ArrivalsPerMinute, st.Queue.Depth
	}
	return out
}

// mockStats reads GET /mock/stats for the lab's model class.
func (s *sampler) mockStats(ctx context.Context) mockSample {
	var out mockSample
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.mockURL+"/mock/stats", nil)
	if err != nil {
		return out
	}
	resp, err := s.httpc.Do(req)
	if err != nil {
		return out
	}
	defer func() { _ = resp.Body.Close() }()
	var st mockapi.Stats
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&st) != nil {
		return out
	}
	out.OK = true
	for _, n := range st.RateLimited {
		out.RateLimited += n
	}
	cs, ok := st.Classes[modelClass]
	if !ok {
		return out // nothing called the class yet
	}
	out.Admitted = cs.Admitted
	out.InputTokens = cs.Tokens.Input + cs.Tokens.CacheCreationInput
	out.OutputTokens = cs.Tokens.Output
	out.LastMinute = [3]int64{cs.LastMinute.Requests, cs.LastMinute.InputTokens, cs.LastMinute.OutputTokens}
	out.Peak = [3]int64{cs.PeakPerMinute.Requests, cs.PeakPerMinute.InputTokens, cs.PeakPerMinute.OutputTokens}
	return out
}

// replicaWatch records every change of spec.replicas of the scenario's Deployments, at the
// moment the watch delivers it: finer than the 1 s samples, for reaction times and reversals.
type replicaWatch struct {
	mu      sync.Mutex
	last    map[string]int32
	changes []rawChange
	done    chan struct{}
}

type rawChange struct {
	at         time.Time
	deployment string
	from, to   int32
}

func watchReplicas(ctx context.Context, kube client.WithWatch, namespace string) (*replicaWatch, error) {
	w := &replicaWatch{last: map[string]int32{}, done: make(chan struct{})}
	list := &appsv1.DeploymentList{}
	if err := kube.List(ctx, list, client.InNamespace(namespace)); err != nil {
		return nil, fmt.Errorf("listing deployments: %w", err)
	}
	for _, d := range list.Items {
		w.last[d.Name] = ptr.Deref(d.Spec.Replicas, 1)
	}
	go w.follow(ctx, kube, namespace, list.ResourceVersion)
	return w, nil
}

// follow watches from resourceVersion and re-watches when the server ends a watch.
func (w *replicaWatch) follow(ctx context.Context, kube client.WithWatch, namespace, resourceVersion string) {
	defer close(w.done)
	for ctx.Err() == nil {
		watcher, err := kube.Watch(ctx, &appsv1.DeploymentList{}, client.InNamespace(namespace),
			&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: resourceVersion}})
		if err != nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		for ev := range watcher.ResultChan() {
			d, ok := ev.Object.(*appsv1.Deployment)
			if !ok || (ev.Type != watch.Added && ev.Type != watch.Modified) {
				continue
			}
			resourceVersion = d.ResourceVersion
			w.observe(d.Name, ptr.Deref(d.Spec.Replicas, 1))
		}
		watcher.Stop()
	}
}

func (w *replicaWatch) observe(name string, replicas int32) {
	w.mu.Lock()
	defer w.mu.Unlock()
	prev, seen := w.last[name]
	w.last[name] = replicas
	if seen && prev != replicas {
		w.changes = append(w.changes, rawChange{at: time.Now(), deployment: name, from: prev, to: replicas})
	}
}

// changesSince converts the changes to the record's form, in seconds after origin.
func (w *replicaWatch) changesSince(origin time.Time, names []string) []change {
	w.mu.Lock()
	defer w.mu.Unlock()
	index := map[string]int{}
	for i, n := range names {
		index[deploymentName(n)] = i
	}
	out := make([]change, 0, len(w.changes))
	for _, c := range w.changes {
		if i, ok := index[c.deployment]; ok {
			out = append(out, change{T: c.at.Sub(origin).Seconds(), Workload: i, From: c.from, To: c.to})
		}
	}
	return out
}

// events lists the events about the scenario's ClaudeCapacities, oldest first.
func events(ctx context.Context, kube client.Client, namespace string, names []string, origin time.Time) ([]eventRecord, error) {
	list := &eventsv1.EventList{}
	if err := kube.List(ctx, list, client.InNamespace(namespace)); err != nil {
		return nil, fmt.Errorf("listing events: %w", err)
	}
	index := map[string]int{}
	for i, n := range names {
		index[n] = i
	}
	var out []eventRecord
	for _, e := range list.Items {
		i, ok := index[e.Regarding.Name]
		if !ok || e.Regarding.Kind != capacityv1alpha1.GroupVersion.WithKind("ClaudeCapacity").Kind {
			continue
		}
		at := e.EventTime.Time
		if at.IsZero() {
			at = e.CreationTimestamp.Time
		}
		count := int32(1)
		if e.Series != nil {
			count = e.Series.Count
		}
		out = append(out, eventRecord{T: at.Sub(origin).Seconds(), Workload: i, Type: e.Type, Reason: e.Reason,
			Message: e.Note, Count: count})
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].T < out[b].T })
	return out, nil
}
