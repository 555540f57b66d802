package capacity

import (
	"errors"
	"fmt"
	"time"
)

// Defaults of the throughput estimator.
const (
	// DefaultThroughputWindow is how far back per-replica throughput is measured.
	DefaultThroughputWindow = 2 * time.Minute
	// DefaultMinThroughputCompletions is how many completed calls in measuring intervals it
	// takes before the measurement replaces the declared figure.
	DefaultMinThroughputCompletions = 20
	// DefaultMinReplicaTime is how much replica time, in measuring intervals, it takes
	// before the measurement replaces the declared figure: a minute of one replica, or six
	// seconds of ten.
	DefaultMinReplicaTime = time.Minute
)

// WorkInterval is what a workload's replicas did between two polls: the raw material of
// the per-replica throughput estimate. The caller fills it from ground it does not move by
// scaling: replicas that were really running (ready pods, not spec.replicas) and the
// shared limiter's cumulative counters.
type WorkInterval struct {
	// Start and End are the times of the two polls.
	Start, End time.Time
	// RunningReplicas is the smaller of the running (ready) replica counts at both polls:
	// a pod that started or stopped in between did not work the whole interval.
	RunningReplicas int32
	// Saturated is true when work was waiting at both polls, so every running replica
	// had a job the whole time and completions measure capacity, not arrivals.
	Saturated bool
	// Completed is how many calls the workload's limiters settled in the interval.
	Completed int64
	// Refused is how many calls the shared limiter or the API refused (throttled, 429s,
	// 529s): the pool or the API, not the workers, bounded such an interval.
	Refused int64
	// Waited is the time calls spent waiting for room in the shared limiter; it is taken
	// out of the replica time, since a waiting replica does no work of its own.
	Waited time.Duration
	// CountersKnown is false when the counters were not read at both polls or went down
	// (a reset): the interval then measures nothing.
	CountersKnown bool
}

// ThroughputEstimator measures mu, the requests per minute one replica completes, as work
// completed per replica-second actually available:
//
//	mu = 60 · Σ completed / Σ (running replicas · interval − waited / concurrency)
//
// over the intervals of the last window that measure capacity: counters known, work
// waiting at both ends, at least one replica running and no call refused by the pool or
// the API. Replicas are the ones that ran, so a scale action by itself changes nothing:
// the numerator and the denominator only move when pods start or stop working. Until the
// window holds enough evidence (DefaultMinThroughputCompletions completions and
// DefaultMinReplicaTime of replica time) the declared figure stands; a measurement, once
// made, stands until a newer one replaces it, since mu is a property of the workers, not
// of the traffic.
//
// It is not safe for concurrent use.
type ThroughputEstimator struct {
	window      time.Duration
	concurrency int32
	intervals   []WorkInterval
	measured    float64
	hasMeasured bool
}

// NewThroughputEstimator returns an estimator over the given window (the default when zero)
// for workers that run concurrency calls at once (1 when zero).
func NewThroughputEstimator(window time.Duration, concurrency int32) (*ThroughputEstimator, error) {
	if window < 0 || concurrency < 0 {
		return nil, fmt.Errorf("throughput window %v and concurrency %d must not be negative", window, concurrency)
	}
	if window == 0 {
		window = DefaultThroughputWindow
	}
	return &ThroughputEstimator{window: window, concurrency: max(concurrency, 1)}, nil
}

// Observe adds one interval and re-measures.
func (e *ThroughputEstimator) Observe(iv WorkInterval) error {
	if err := iv.validate(); err != nil {
		return err
	}
	if n := len(e.intervals); n > 0 && iv.Start.Before(e.intervals[n-1].End) {
		// A clock that moved back: start over rather than mix two timelines.
		e.intervals = e.intervals[:0]
	}
	e.intervals = append(e.intervals, iv)
	cutoff := iv.End.Add(-e.window)
	for len(e.intervals) > 0 && !e.intervals[0].End.After(cutoff) {
		e.intervals = e.intervals[1:]
	}
	var completed int64
	var replicaSeconds float64
	for _, w := range e.intervals {
		if !w.measures() {
			continue
		}
		busy := float64(w.RunningReplicas)*w.End.Sub(w.Start).Seconds() - w.Waited.Seconds()/float64(e.concurrency)
		if busy <= 0 {
			continue
		}
		completed += w.Completed
		replicaSeconds += busy
	}
	if completed >= DefaultMinThroughputCompletions && replicaSeconds >= DefaultMinReplicaTime.Seconds() {
		e.measured, e.hasMeasured = float64(completed)/replicaSeconds*60, true
	}
	return nil
}

// measures says whether an interval measures the workers' capacity.
func (iv WorkInterval) measures() bool {
	return iv.CountersKnown && iv.Saturated && iv.RunningReplicas > 0 && iv.Refused == 0
}

func (iv WorkInterval) validate() error {
	switch {
	case iv.Start.IsZero() || !iv.End.After(iv.Start):
		return fmt.Errorf("work interval from %v to %v is empty", iv.Start, iv.End)
	case iv.RunningReplicas < 0 || iv.Completed < 0 || iv.Refused < 0 || iv.Waited < 0:
		return errors.New("work interval with a negative count")
	}
	return nil
}

// Estimate returns mu: the measurement when one was made, else declared. measured says
// which.
func (e *ThroughputEstimator) Estimate(declared float64) (mu float64, measured bool, err error) {
	if !positiveFinite(declared) || declared > maxPerRequest {
		return 0, false, fmt.Errorf("declared throughput %v requests per minute per replica is not in (0, %g]", declared, maxPerRequest)
	}
	if e != nil && e.hasMeasured && positiveFinite(e.measured) && e.measured <= maxPerRequest {
		return e.measured, true, nil
	}
	return declared, false, nil
}
