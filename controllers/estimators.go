package controllers

import (
	"context"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	capacityv1alpha1 "github.com/claudecap/claudecap/api/v1alpha1"
	"github.com/claudecap/claudecap/pkg/capacity"
	"github.com/claudecap/claudecap/pkg/ratelimit"
	"github.com/claudecap/claudecap/pkg/redispool"
)

// The controller's estimates must not move because the controller acted (docs/scaling.md):
// both are fed, once per poll, from ground the controller does not set. The arrival rate
// comes from the queue and exact completions (a stream's group counters, or the shared
// limiter's settled requests for a list); per-replica throughput from completions per
// replica-second of pods that were really running, taking out time the pool or the API
// held them back.

// pollPoint is what one poll saw, kept to difference the next poll against.
type pollPoint struct {
	at       time.Time
	running  int32
	backlog  int64
	counters ratelimit.Counters // Known is false when they could not be read
	valid    bool
}

// pollDue says whether this reconcile should poll the queue and decide: when the poll
// interval has passed since the last poll, or the spec or the pause annotations changed.
// Other reconciles (the watch event of our own scale write, a status update) only refresh
// what the target reports; deciding again on them would act twice on one observation.
func (r *ClaudeCapacityReconciler) pollDue(cc *capacityv1alpha1.ClaudeCapacity, w *workloadMemory) (bool, time.Duration) {
	interval := pollInterval(cc)
	pause := cc.Annotations[capacityv1alpha1.AnnotationPaused] + "/" + cc.Annotations[capacityv1alpha1.AnnotationPausedReplicas]
	since := r.now().Sub(w.polled.at)
	if w.polled.at.IsZero() || since >= interval*9/10 || since < 0 || cc.Generation != w.polled.generation || pause != w.polled.pause {
		w.polled = pollMark{at: r.now(), generation: cc.Generation, pause: pause}
		return true, 0
	}
	return false, interval - since
}

// readCounters reads this workload's cumulative limiter counters. Without a limiter, or
// when the read fails, they come back unknown and the estimators treat the interval as
// unmeasured: counters are a refinement, never a reason to hold replicas.
func (r *ClaudeCapacityReconciler) readCounters(ctx context.Context, s *scope, w *workloadMemory) ratelimit.Counters {
	conn, secretNamespace := r.limiterConnection(s)
	if conn == nil || s.model.Class == "" {
		return ratelimit.Counters{}
	}
	rdb, err := r.limiterClient(ctx, secretNamespace, w, conn)
	if err != nil {
		return ratelimit.Counters{}
	}
	ctx, cancel := context.WithTimeout(ctx, redispool.DefaultTimeout)
	defer cancel()
	c, err := ratelimit.ReadCounters(ctx, rdb, poolKey(s), workloadName(s.cc))
	if err != nil {
		return ratelimit.Counters{}
	}
	return c
}

// observeWork folds this poll into the arrival and throughput estimators and the age of
// the backlog (for its drain deadline). sample is the
// queue as just read; its Completed is filled from the limiter's settled requests when the
// queue itself keeps no completion count (a list).
func (r *ClaudeCapacityReconciler) observeWork(ctx context.Context, s *scope, w *workloadMemory, sample *capacity.QueueSample) error {
	counters := r.readCounters(ctx, s, w)
	if !sample.CompletedKnown && counters.Known {
		sample.Completed, sample.CompletedKnown = counters.Requests, true
	}
	if err := w.estimator.Observe(*sample); err != nil {
		return err
	}
	switch {
	case sample.Backlog == 0:
		w.backlogSince = time.Time{}
	case w.backlogSince.IsZero():
		w.backlogSince = sample.Time
	}
	if !w.backlogSince.IsZero() {
		s.draining = max(sample.Time.Sub(w.backlogSince), 0)
	}
	if w.throughput == nil {
		var err error
		if w.throughput, err = capacity.NewThroughputEstimator(0, 1); err != nil {
			return err
		}
	}
	running := int32(0)
	if s.target != nil {
		running = s.target.running()
	}
	prev := w.lastPoll
	w.lastPoll = pollPoint{at: sample.Time, running: running, backlog: sample.Backlog, counters: counters, valid: s.target != nil}
	if !prev.valid || s.target == nil || !sample.Time.After(prev.at) {
		return nil
	}
	iv := capacity.WorkInterval{
		Start:           prev.at,
		End:             sample.Time,
		RunningReplicas: min(prev.running, running),
		Saturated:       prev.backlog > 0 && sample.Backlog > 0,
	}
	if d, ok := counterDelta(prev.counters, counters); ok {
		iv.CountersKnown = true
		iv.Completed = d.Requests
		iv.Refused = d.Throttled + d.RateLimited + d.Overloaded
		iv.Waited = time.Duration(d.WaitedMillis) * time.Millisecond
		s.upstreamRefusals = d.RateLimited + d.Overloaded
	}
	return w.throughput.Observe(iv)
}

// counterDelta is what happened between two counter reads; ok is false when either is
// unknown or any counter went down (its hash expired or Redis lost it).
func counterDelta(before, after ratelimit.Counters) (ratelimit.Counters, bool) {
	if !before.Known || !after.Known {
		return ratelimit.Counters{}, false
	}
	d := ratelimit.Counters{
		Requests:     after.Requests - before.Requests,
		RateLimited:  after.RateLimited - before.RateLimited,
		Overloaded:   after.Overloaded - before.Overloaded,
		Throttled:    after.Throttled - before.Throttled,
		WaitedMillis: after.WaitedMillis - before.WaitedMillis,
		Known:        true,
	}
	if d.Requests < 0 || d.RateLimited < 0 || d.Overloaded < 0 || d.Throttled < 0 || d.WaitedMillis < 0 {
		return ratelimit.Counters{}, false
	}
	return d, true
}

// perReplicaThroughput is mu for this workload: measured once the estimator has enough
// evidence, else declared.
func (r *ClaudeCapacityReconciler) perReplicaThroughput(cc *capacityv1alpha1.ClaudeCapacity) (float64, bool, error) {
	w := r.memory.get(client.ObjectKeyFromObject(cc))
	return w.throughput.Estimate(float64(cc.Spec.Worker.RequestsPerMinutePerReplica))
}
