package capacity

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// DefaultArrivalTimeConstant is the smoothing time constant of arrival estimates: about one
// minute, the window Anthropic's per-minute limits are counted over.
const DefaultArrivalTimeConstant = time.Minute

// DefaultMinThroughputSamples is how many observations of per-replica throughput it takes
// before they replace the declared figure.
const DefaultMinThroughputSamples = 10

// QueueSample is one poll of a queue.
type QueueSample struct {
	// Time of the poll.
	Time time.Time
	// Backlog is the number of jobs waiting.
	Backlog int64
	// InFlight is the number of jobs taken by workers and not finished yet.
	InFlight int64
	// Completed is a cumulative count of finished jobs (for example requests settled by the
	// shared limiter). Only differences between samples are used; a count that goes down is
	// taken as a reset.
	Completed int64
	// CompletedKnown says whether Completed holds a count. Without it, a growing queue still
	// proves arrivals at least as fast as it grows.
	CompletedKnown bool
}

func (s QueueSample) validate() error {
	if s.Time.IsZero() {
		return errors.New("queue sample without a time")
	}
	if s.Backlog < 0 || s.InFlight < 0 || s.Completed < 0 {
		return fmt.Errorf("queue sample with a negative count (backlog %d, in flight %d, completed %d)",
			s.Backlog, s.InFlight, s.Completed)
	}
	return nil
}

// ArrivalEstimate is the estimator's current belief.
type ArrivalEstimate struct {
	// PerMinute is the smoothed arrival rate in jobs per minute.
	PerMinute float64
	// Observed is false while PerMinute is still the declared prior.
	Observed bool
	// LastArrivals is the number of jobs that arrived between the last two samples; a queue
	// with no backlog, nothing in flight and no last arrivals is idle.
	LastArrivals int64
}

// ArrivalEstimator estimates a queue's arrival rate from successive polls. The controller
// keeps one per ClaudeCapacity; it is not safe for concurrent use.
//
// Between two samples, arrivals = (backlog + in-flight now) - (backlog + in-flight before)
// + jobs completed in between: every job that arrived is either still queued, being worked
// on, or done. The rate r = arrivals / dt is smoothed exponentially with time constant tau,
// weighting each interval by its length:
//
//	rate += (1 - exp(-dt/tau)) * (r - rate)
//
// so an interval as long as tau moves the estimate 63% of the way to what it saw, whatever
// the poll interval. The declared traffic rate is the starting value (the prior), so the
// estimate moves from what the user declared toward what the queue shows.
type ArrivalEstimator struct {
	tau      time.Duration
	estimate ArrivalEstimate
	last     QueueSample
	hasLast  bool
}

// NewArrivalEstimator starts an estimator at the declared rate (jobs per minute) with the
// given time constant (DefaultArrivalTimeConstant when zero).
func NewArrivalEstimator(priorPerMinute float64, timeConstant time.Duration) (*ArrivalEstimator, error) {
	if math.IsNaN(priorPerMinute) || priorPerMinute < 0 || math.IsInf(priorPerMinute, 1) {
		return nil, fmt.Errorf("declared arrival rate %v per minute is not a finite non-negative number", priorPerMinute)
	}
	if timeConstant < 0 {
		return nil, fmt.Errorf("negative smoothing time constant %v", timeConstant)
	}
	if timeConstant == 0 {
		timeConstant = DefaultArrivalTimeConstant
	}
	return &ArrivalEstimator{tau: timeConstant, estimate: ArrivalEstimate{PerMinute: priorPerMinute}}, nil
}

// Estimate returns the current estimate.
func (e *ArrivalEstimator) Estimate() ArrivalEstimate {
	return e.estimate
}

// Observe folds one poll into the estimate. The first sample only sets the baseline; a
// sample at the same time as the previous one is ignored, and one from before it (a clock
// that moved back) becomes the new baseline without changing the estimate.
func (e *ArrivalEstimator) Observe(s QueueSample) error {
	if err := s.validate(); err != nil {
		return err
	}
	prev, hadLast := e.last, e.hasLast
	if hadLast && s.Time.Equal(prev.Time) {
		return nil
	}
	e.last, e.hasLast = s, true
	if !hadLast || s.Time.Before(prev.Time) {
		return nil
	}

	dt := s.Time.Sub(prev.Time)
	queued := (s.Backlog + s.InFlight) - (prev.Backlog + prev.InFlight)
	completedKnown := s.CompletedKnown && prev.CompletedKnown && s.Completed >= prev.Completed
	arrivals := queued
	if completedKnown {
		arrivals += s.Completed - prev.Completed
	}
	arrivals = max(arrivals, 0)
	e.estimate.LastArrivals = arrivals

	rate := float64(arrivals) / dt.Minutes()
	tau := e.tau
	if !completedKnown && rate < e.estimate.PerMinute {
		// Growth of the queue alone is a lower bound on arrivals: a quiet queue whose
		// workers keep up looks the same as one nobody feeds. Such intervals lower the
		// estimate only slowly (ForgetFactor times tau), so a past burst is forgotten
		// eventually instead of holding demand up forever.
		tau *= ForgetFactor
	}
	alpha := 1 - math.Exp(-dt.Seconds()/tau.Seconds())
	e.estimate.PerMinute += alpha * (rate - e.estimate.PerMinute)
	e.estimate.Observed = e.estimate.Observed || completedKnown
	return nil
}

// ForgetFactor slows the decay of the arrival estimate when only queue growth is known
// (no completion counter): such intervals use a time constant ForgetFactor times longer.
const ForgetFactor = 10

// ThroughputObservation is per-replica throughput measured by the caller.
type ThroughputObservation struct {
	// RequestsPerMinute is the measured requests per minute of one replica.
	RequestsPerMinute float64
	// Samples is how many intervals the measurement covers.
	Samples int
}

// PerReplicaThroughput returns mu, one replica's requests per minute: the observed figure
// once it rests on at least minSamples samples, else the declared one. Only intervals in
// which replicas were saturated (work queued the whole time) and not held back by the shared
// limiter measure capacity; otherwise the figure measures arrivals or the budget, and a low
// mu would raise both demand and cap. Choosing such intervals is the caller's job.
func PerReplicaThroughput(declared float64, observed ThroughputObservation, minSamples int) (mu float64, fromObservation bool, err error) {
	if !positiveFinite(declared) || declared > maxPerRequest {
		return 0, false, fmt.Errorf("declared throughput %v requests per minute per replica is not in (0, %g]", declared, maxPerRequest)
	}
	if observed.Samples >= minSamples && positiveFinite(observed.RequestsPerMinute) && observed.RequestsPerMinute <= maxPerRequest {
		return observed.RequestsPerMinute, true, nil
	}
	return declared, false, nil
}

// DemandInput is what demand is computed from.
type DemandInput struct {
	// Backlog and InFlight are the queue's current counts.
	Backlog, InFlight int64
	// Arrivals is the arrival estimate (see ArrivalEstimator).
	Arrivals ArrivalEstimate
	// ThroughputPerReplica is mu in requests (jobs) per minute.
	ThroughputPerReplica float64
	// DrainTime is how fast a backlog should be worked off (spec.queue.targetDrainSeconds).
	DrainTime time.Duration
}

// Demand is how many replicas the queue needs, and why.
type Demand struct {
	// Replicas is ceil(RequiredPerMinute / mu); 0 when idle, at least 1 otherwise.
	Replicas int32
	// RequiredPerMinute is arrivals per minute + backlog / drain time.
	RequiredPerMinute float64
	// Idle is true when nothing is queued, nothing in flight and nothing arrived since the
	// last poll. The smoothed arrival rate is left out on purpose: it decays toward zero
	// but never reaches it.
	Idle bool
	// The inputs, kept for messages and for the in-flight rule of Decide.
	Backlog, InFlight    int64
	ArrivalsPerMinute    float64
	ThroughputPerReplica float64
	DrainTime            time.Duration
}

// ComputeDemand returns the replicas the queue needs:
//
//	required = arrivals per minute + backlog / drain minutes
//	demand   = ceil(required / mu)
//
// An idle queue needs 0 (Decide then clamps to min replicas); a queue with anything in it,
// in flight or arriving needs at least 1.
func ComputeDemand(in DemandInput) (Demand, error) {
	if in.Backlog < 0 || in.InFlight < 0 {
		return Demand{}, fmt.Errorf("negative queue counts (backlog %d, in flight %d)", in.Backlog, in.InFlight)
	}
	if !positiveFinite(in.ThroughputPerReplica) {
		return Demand{}, fmt.Errorf("throughput per replica %v is not a positive number", in.ThroughputPerReplica)
	}
	if in.DrainTime <= 0 {
		return Demand{}, fmt.Errorf("drain time %v is not positive", in.DrainTime)
	}
	rate := in.Arrivals.PerMinute
	if math.IsNaN(rate) || rate < 0 || math.IsInf(rate, 1) {
		return Demand{}, fmt.Errorf("arrival rate %v per minute is not a finite non-negative number", rate)
	}
	d := Demand{
		Backlog:              in.Backlog,
		InFlight:             in.InFlight,
		ArrivalsPerMinute:    rate,
		ThroughputPerReplica: in.ThroughputPerReplica,
		DrainTime:            in.DrainTime,
		RequiredPerMinute:    rate + float64(in.Backlog)/in.DrainTime.Minutes(),
		Idle:                 in.Backlog == 0 && in.InFlight == 0 && in.Arrivals.LastArrivals == 0,
	}
	if d.Idle {
		return d, nil
	}
	d.Replicas = max(ceilReplicas(d.RequiredPerMinute/in.ThroughputPerReplica), 1)
	return d, nil
}

// ceilReplicas rounds a replica count up, forgiving float noise just above a whole number
// (12.000000001 is 12), and saturates at the int32 range.
func ceilReplicas(x float64) int32 {
	const noise = 1e-9
	c := math.Ceil(x - noise*math.Max(1, x))
	if c >= math.MaxInt32 {
		return math.MaxInt32
	}
	return int32(max(c, 0))
}
