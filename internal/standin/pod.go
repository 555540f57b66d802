package standin

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Phase is where a pod is in its life.
type Phase string

// A pod's phases. An exited pod is gone from the fleet.
const (
	// PhaseStarting: created, its sidecar starting, not yet Ready; takes no jobs. With
	// Config.FollowPods, until the Pod's Ready condition is True and its sidecar is up.
	PhaseStarting Phase = "Starting"
	// PhaseReady: its worker takes jobs.
	PhaseReady Phase = "Ready"
	// PhaseTerminating: finishing the job in hand, then exiting.
	PhaseTerminating Phase = "Terminating"
)

// PodInfo describes one pod of the fleet.
type PodInfo struct {
	// Name is <deployment>-<n>, or with Config.FollowPods the Pod's name.
	Name string
	// Phase is the pod's phase now.
	Phase Phase
	// Created is when the fleet created the pod (with Config.FollowPods, first saw the Pod).
	Created time.Time
	// ReadyAt is when the pod became Ready (zero if it never did).
	ReadyAt time.Time
	// JobsCompleted counts the jobs this pod acknowledged.
	JobsCompleted int64
}

// pod is one stand-in pod. Its goroutine (run) owns the sidecar and the worker; the fleet
// only creates, terminates and forgets it.
type pod struct {
	name    string
	seq     int
	created time.Time
	// gracePeriod is how long the pod may take to stop when the fleet stops.
	gracePeriod time.Duration

	mu       sync.Mutex
	phase    Phase
	readyAt  time.Time
	grace    *time.Timer
	deadline time.Time // when grace runs out, once Terminating

	// kubeReady, with Config.FollowPods, is closed when the Pod it plays is first seen
	// Ready: its worker may start. Nil for simulated pods, whose start delay decides.
	kubeReady     chan struct{}
	kubeReadyOnce sync.Once

	// stopping is closed when the pod starts Terminating: take no new job.
	stopping chan struct{}
	// work is cancelled when the grace period ends: abandon the job in hand.
	work context.Context
	kill context.CancelFunc
	// done is closed when the pod has exited and its sidecar is stopped.
	done chan struct{}

	completed atomic.Int64
}

func newPod(base context.Context, name string, seq int) *pod {
	work, kill := context.WithCancel(base)
	return &pod{
		name: name, seq: seq, created: time.Now(), phase: PhaseStarting,
		stopping: make(chan struct{}), work: work, kill: kill, done: make(chan struct{}),
	}
}

// newFollowedPod is a pod that plays a real Pod: it becomes Ready when markKubeReady is
// called, and takes gracePeriod (the Pod's terminationGracePeriodSeconds) to stop when the
// fleet stops.
func newFollowedPod(base context.Context, name string, seq int, gracePeriod time.Duration) *pod {
	p := newPod(base, name, seq)
	p.gracePeriod = gracePeriod
	p.kubeReady = make(chan struct{})
	return p
}

// markKubeReady records that the real Pod is Ready; only the first call counts.
func (p *pod) markKubeReady() {
	p.kubeReadyOnce.Do(func() { close(p.kubeReady) })
}

func (p *pod) info() PodInfo {
	p.mu.Lock()
	defer p.mu.Unlock()
	return PodInfo{Name: p.name, Phase: p.phase, Created: p.created, ReadyAt: p.readyAt, JobsCompleted: p.completed.Load()}
}

func (p *pod) currentPhase() Phase {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.phase
}

// becomeReady moves a Starting pod to Ready; a pod already Terminating stays so.
func (p *pod) becomeReady() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.phase != PhaseStarting {
		return false
	}
	p.phase, p.readyAt = PhaseReady, time.Now()
	return true
}

// terminate starts the pod's termination; the grace timer then bounds it. It reports
// whether this call started it.
func (p *pod) terminate(grace time.Duration) bool {
	return p.terminateBy(time.Now().Add(grace))
}

// terminateBy starts the pod's termination (SIGTERM): it takes no new job, and its job in
// hand is abandoned and requeued at deadline (SIGKILL). On a pod already Terminating it
// only brings the deadline forward, as a second deletion with a shorter grace period does.
// It reports whether this call started the termination.
func (p *pod) terminateBy(deadline time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.phase == PhaseTerminating {
		if deadline.Before(p.deadline) && p.grace.Stop() {
			p.deadline = deadline
			p.grace = time.AfterFunc(time.Until(deadline), p.kill)
		}
		return false
	}
	p.phase, p.deadline = PhaseTerminating, deadline
	close(p.stopping)
	p.grace = time.AfterFunc(time.Until(deadline), p.kill)
	return true
}

func (p *pod) isStopping() bool {
	select {
	case <-p.stopping:
		return true
	default:
		return false
	}
}

func (p *pod) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// pause waits for d unless the pod is told to stop first; it reports whether it waited
// the whole time.
func (p *pod) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-p.stopping:
		return false
	}
}

// release frees the pod's timer and context once it has exited.
func (p *pod) release() {
	p.mu.Lock()
	if p.grace != nil {
		p.grace.Stop()
	}
	p.mu.Unlock()
	p.kill()
}

// scaleInVictims picks the n pods a ReplicaSet would delete first: not-ready (Starting)
// before Ready, and among those the newest.
func scaleInVictims(live []*pod, n int) []*pod {
	if n <= 0 {
		return nil
	}
	// Phases are read once: a pod may become Ready during the sort.
	starting := make(map[*pod]bool, len(live))
	for _, p := range live {
		starting[p] = p.currentPhase() == PhaseStarting
	}
	order := slices.Clone(live)
	slices.SortFunc(order, func(a, b *pod) int {
		if starting[a] != starting[b] {
			if starting[a] {
				return -1
			}
			return 1
		}
		return cmp.Compare(b.seq, a.seq)
	})
	return order[:min(n, len(order))]
}
