package capacity

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// DefaultArrivalWindow is the window arrival estimates look back over: one minute, the
// window Anthropic's per-minute limits are counted over.
const DefaultArrivalWindow = time.Minute

// arrivalBuckets is how many equal buckets the arrival window is cut into. The estimate
// is their median, so a burst that lands within one or two buckets never becomes a rate.
const arrivalBuckets = 6

// lowerBoundForget is the time constant over which an estimate resting only on queue
// growth (no completion counter) is allowed to fall.
const lowerBoundForget = 10 * time.Minute

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

// ArrivalEstimator estimates a queue's sustained arrival rate from successive polls. The
// controller keeps one per ClaudeCapacity; it is not safe for concurrent use.
//
// Between two polls, arrivals = (backlog + in-flight now) - (backlog + in-flight before)
// + jobs completed in between: every job that arrived is either still queued, being worked
// on, or done. The estimate is a median over the last window (one minute): the window is
// cut into six ten-second buckets aligned to the clock, each poll interval's arrivals go
// to the bucket its end falls in, and the estimate is the median of the six buckets'
// rates. So
//
//   - a one-off push (an RPUSH of 900 jobs, or a producer that takes a few seconds) lands
//     in one or two buckets and is left out: it is counted once, in the backlog, never
//     again as a rate;
//   - a sustained rate is in every bucket and is its own median;
//   - a rate that starts or stops moves the estimate within half a window, and a push
//     leaves the window entirely once a minute has passed;
//   - bursts that come less often than every 20 s are treated as backlog, not rate:
//     demand then covers them through backlog / drain time.
//
// Time the polls have not covered yet (a new estimator, an outage) counts at the prior
// rate until the window has been observed, then at the last estimate.
//
// Without completions (a Redis list with no shared limiter in front of its workers) only
// queue growth is seen, a lower bound: a queue whose workers keep up looks like one nobody
// feeds. Such an estimate never falls faster than a ten-minute time constant, so replicas
// sized for a rate do not vanish because they keep the queue short.
type ArrivalEstimator struct {
	window    time.Duration
	prior     float64
	estimate  ArrivalEstimate
	intervals []arrivalInterval
	last      QueueSample
	hasLast   bool
	// observedSince is when the first interval began; the window before it is prior.
	observedSince time.Time
}

type arrivalInterval struct {
	start, end time.Time
	arrivals   int64
	exact      bool
}

// NewArrivalEstimator starts an estimator at the declared rate (jobs per minute) over the
// given window (DefaultArrivalWindow when zero).
func NewArrivalEstimator(priorPerMinute float64, window time.Duration) (*ArrivalEstimator, error) {
	if math.IsNaN(priorPerMinute) || priorPerMinute < 0 || math.IsInf(priorPerMinute, 1) {
		return nil, fmt.Errorf("declared arrival rate %v per minute is not a finite non-negative number", priorPerMinute)
	}
	if window < 0 {
		return nil, fmt.Errorf("negative arrival window %v", window)
	}
	if window == 0 {
		window = DefaultArrivalWindow
	}
	return &ArrivalEstimator{window: window, prior: priorPerMinute, estimate: ArrivalEstimate{PerMinute: priorPerMinute}}, nil
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

	queued := (s.Backlog + s.InFlight) - (prev.Backlog + prev.InFlight)
	exact := s.CompletedKnown && prev.CompletedKnown && s.Completed >= prev.Completed
	arrivals := queued
	if exact {
		arrivals += s.Completed - prev.Completed
	}
	arrivals = max(arrivals, 0)
	e.estimate.LastArrivals = arrivals
	if e.observedSince.IsZero() {
		e.observedSince = prev.Time
	}
	e.intervals = append(e.intervals, arrivalInterval{start: prev.Time, end: s.Time, arrivals: arrivals, exact: exact})
	oldest := s.Time.Truncate(e.window / arrivalBuckets).Add(-e.window + e.window/arrivalBuckets)
	for len(e.intervals) > 0 && e.intervals[0].end.Before(oldest) {
		e.intervals = e.intervals[1:]
	}

	rate, allExact := e.windowRate(s.Time)
	if !allExact && rate < e.estimate.PerMinute {
		// Only a lower bound was seen: fall no faster than the forgetting time constant.
		dt := s.Time.Sub(prev.Time)
		rate = max(rate, e.estimate.PerMinute*math.Exp(-dt.Seconds()/lowerBoundForget.Seconds()))
	}
	e.estimate.PerMinute = rate
	e.estimate.Observed = e.estimate.Observed || exact
	return nil
}

// windowRate is the median of the buckets' rates per minute, and whether every interval
// in the window had exact completions. Buckets are aligned to the clock, not to now, so a
// push stays in the bucket it landed in as time passes; the newest bucket is partial.
func (e *ArrivalEstimator) windowRate(now time.Time) (float64, bool) {
	width := e.window / arrivalBuckets
	current := now.Truncate(width)
	var counts, covered [arrivalBuckets]float64
	allExact := true
	for _, iv := range e.intervals {
		k := int(current.Sub(iv.end.Truncate(width)) / width)
		if k < 0 || k >= arrivalBuckets {
			continue
		}
		counts[k] += float64(iv.arrivals)
		covered[k] += iv.end.Sub(iv.start).Seconds()
		allExact = allExact && iv.exact
	}
	fill := e.estimate.PerMinute
	if now.Sub(e.observedSince) < e.window {
		fill = e.prior
	}
	rates := make([]float64, arrivalBuckets)
	for k := range rates {
		length := width.Seconds()
		if k == 0 {
			length = now.Sub(current).Seconds()
		}
		missing := max(length-covered[k], 0)
		if total := covered[k] + missing; total > 0 {
			rates[k] = (counts[k] + fill/60*missing) / total * 60
		} else {
			rates[k] = fill
		}
	}
	slices.Sort(rates)
	return (rates[arrivalBuckets/2-1] + rates[arrivalBuckets/2]) / 2, allExact
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
	// Draining is how long the queue has had a backlog without a break. The backlog is to
	// be gone DrainTime after it appeared, so the time left shrinks as it drains (never
	// below a quarter of DrainTime); otherwise required throughput would fall with the
	// backlog and the drain would only ever approach zero.
	Draining time.Duration
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
	// DrainTime is the drain time left for the current backlog.
	DrainTime time.Duration
}

// ComputeDemand returns the replicas the queue needs:
//
//	required = arrivals per minute + backlog / drain minutes left
//	demand   = ceil(required / mu)
//
// where drain minutes left = max(DrainTime − Draining, DrainTime / 4).
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
	if in.DrainTime <= 0 || in.Draining < 0 {
		return Demand{}, fmt.Errorf("drain time %v is not positive (or draining %v is negative)", in.DrainTime, in.Draining)
	}
	left := max(in.DrainTime-in.Draining, in.DrainTime/4)
	rate := in.Arrivals.PerMinute
	if math.IsNaN(rate) || rate < 0 || math.IsInf(rate, 1) {
		return Demand{}, fmt.Errorf("arrival rate %v per minute is not a finite non-negative number", rate)
	}
	d := Demand{
		Backlog:              in.Backlog,
		InFlight:             in.InFlight,
		ArrivalsPerMinute:    rate,
		ThroughputPerReplica: in.ThroughputPerReplica,
		DrainTime:            left,
		RequiredPerMinute:    rate + float64(in.Backlog)/left.Minutes(),
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
