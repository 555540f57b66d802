package loadtest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Sender sends one logical request and reports what happened. seq numbers
// requests from 0 in schedule order, so a Sender can cycle through a fixed
// set of request bodies deterministically. Send must return promptly once
// ctx is done.
type Sender interface {
	Send(ctx context.Context, seq int64) Outcome
}

// SenderFunc adapts a function to Sender.
type SenderFunc func(ctx context.Context, seq int64) Outcome

// Send calls f.
func (f SenderFunc) Send(ctx context.Context, seq int64) Outcome { return f(ctx, seq) }

// Defaults for Config fields left at zero.
const (
	DefaultMaxInFlight      = 4096
	DefaultDrainTimeout     = 60 * time.Second
	DefaultProgressInterval = time.Second
)

// Config is one open- or closed-loop run.
type Config struct {
	// Mode is ModeOpen or ModeClosed.
	Mode Mode
	// Profile and Arrival shape an open-loop schedule; Seed makes Poisson
	// arrivals reproducible.
	Profile RateProfile
	Arrival Arrival
	Seed    uint64
	// Concurrency is the closed-loop worker count.
	Concurrency int
	// Duration stops scheduling new requests after this long; MaxRequests
	// after this many. At least one must be set.
	Duration    time.Duration
	MaxRequests int64
	// MaxInFlight caps concurrent requests in an open loop, protecting the
	// generator's memory when the server stalls; requests over the cap wait
	// and the wait shows up as schedule lag and latency.
	MaxInFlight int
	// DrainTimeout is how long requests still in flight when scheduling
	// stops may take before they are canceled.
	DrainTimeout time.Duration
	// OnProgress, if set, is called every ProgressInterval from a separate
	// goroutine.
	OnProgress       func(Progress)
	ProgressInterval time.Duration
	// Target is copied into the report.
	Target Target
}

func (c *Config) applyDefaults() {
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	if c.ProgressInterval <= 0 {
		c.ProgressInterval = DefaultProgressInterval
	}
	if c.Arrival == "" {
		c.Arrival = ArrivalConstant
	}
}

// Validate checks that the run is well defined and bounded.
func (c *Config) Validate() error {
	if c.Duration <= 0 && c.MaxRequests <= 0 {
		return errors.New("a load test needs a bound: set a duration, a request count, or both")
	}
	if c.Duration < 0 || c.MaxRequests < 0 {
		return errors.New("duration and request count must not be negative")
	}
	switch c.Mode {
	case ModeOpen:
		if err := c.Profile.Validate(); err != nil {
			return fmt.Errorf("open loop: %w", err)
		}
		if _, err := ParseArrival(string(c.Arrival)); err != nil {
			return fmt.Errorf("open loop: %w", err)
		}
	case ModeClosed:
		if c.Concurrency < 1 {
			return fmt.Errorf("closed loop needs a concurrency of at least 1, got %d", c.Concurrency)
		}
	default:
		return fmt.Errorf("unknown load mode %q (want %q or %q)", c.Mode, ModeOpen, ModeClosed)
	}
	return nil
}

func (c *Config) runConfig() RunConfig {
	rc := RunConfig{
		Mode:            c.Mode,
		DurationSeconds: c.Duration.Seconds(),
		MaxRequests:     c.MaxRequests,
		Target:          c.Target,
	}
	if c.Mode == ModeOpen {
		rc.Arrival = c.Arrival
		rc.Profile = profileSegments(c.Profile)
		rc.Seed = c.Seed
	} else {
		rc.Concurrency = c.Concurrency
	}
	return rc
}

// Run executes one open- or closed-loop test and returns its report. When
// ctx is canceled (Ctrl-C) requests in flight are canceled and the partial
// report comes back with StopReason interrupted and a nil error; an error
// is returned only for an invalid Config.
func Run(ctx context.Context, cfg Config, sender Sender) (*Report, error) {
	cfg.applyDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &run{cfg: cfg, sender: sender, start: time.Now()}
	r.col = NewCollector(r.start)
	// Requests get their own context so the drain timeout can cancel them
	// without canceling the caller's.
	reqCtx, cancelRequests := context.WithCancel(ctx)
	defer cancelRequests()

	stopProgress := r.startProgress()
	var stop StopReason
	if cfg.Mode == ModeOpen {
		sched, err := NewSchedule(cfg.Profile, cfg.Arrival, cfg.Seed)
		if err != nil {
			stopProgress()
			return nil, err
		}
		stop = r.dispatchOpen(ctx, reqCtx, sched)
	} else {
		stop = r.dispatchClosed(ctx, reqCtx)
	}
	r.drain(ctx, cancelRequests)
	stopProgress()
	if ctx.Err() != nil {
		stop = StopInterrupted
	}

	rep := r.col.Report(time.Now(), cfg.runConfig(), stop)
	if cfg.Mode == ModeOpen {
		rep.Throughput.TargetPerSecond = meanTargetRate(cfg, rep)
	}
	return rep, nil
}

// meanTargetRate is the scheduled rate averaged over the scheduled span.
func meanTargetRate(cfg Config, rep *Report) float64 {
	span := cfg.Duration
	if span <= 0 || rep.StopReason != StopDuration {
		span = time.Duration(rep.DurationSeconds * float64(time.Second))
	}
	if span <= 0 {
		return 0
	}
	return cfg.Profile.ExpectedArrivals(span) / span.Seconds()
}

type run struct {
	cfg    Config
	sender Sender
	col    *Collector
	start  time.Time
	wg     sync.WaitGroup
}

// one sends request seq, intended for `intended`, and records it.
func (r *run) one(ctx context.Context, seq int64, intended time.Time) {
	started := time.Now()
	r.col.Started(intended, started)
	out := r.sender.Send(ctx, seq)
	end := time.Now()
	if ctx.Err() != nil && out.Class != ClassOK {
		out.Class = ClassCanceled
	}
	r.col.Record(Sample{Intended: intended, Start: started, End: end, Outcome: out})
}

// openJob is one scheduled request handed to a worker.
type openJob struct {
	seq      int64
	intended time.Time
}

// dispatchOpen sends on the schedule until a bound is reached. A request is
// handed to an idle worker, or to a new one when all are busy (up to
// MaxInFlight), so a slow response never delays the next send; if the
// generator itself falls behind, the lag is measured, not hidden. Workers
// live for the whole run, as vegeta's do, which saves a goroutine start and
// its stack growth per request.
func (r *run) dispatchOpen(ctx, reqCtx context.Context, sched *Schedule) StopReason {
	jobs := make(chan openJob)
	defer close(jobs)
	workers := 0
	worker := func(first openJob) {
		defer r.wg.Done()
		r.one(reqCtx, first.seq, first.intended)
		for j := range jobs {
			r.one(reqCtx, j.seq, j.intended)
		}
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for seq := int64(0); ; seq++ {
		if r.cfg.MaxRequests > 0 && seq >= r.cfg.MaxRequests {
			return StopMaxRequests
		}
		offset, ok := sched.Next()
		if !ok {
			return StopProfileEnd
		}
		if r.cfg.Duration > 0 && offset >= r.cfg.Duration {
			// Hold until the configured end so per-minute rates divide by
			// the time the test was meant to cover.
			if !r.sleepUntil(ctx, timer, r.start.Add(r.cfg.Duration)) {
				return StopInterrupted
			}
			return StopDuration
		}
		intended := r.start.Add(offset)
		if !r.sleepUntil(ctx, timer, intended) {
			return StopInterrupted
		}
		job := openJob{seq: seq, intended: intended}
		select {
		case jobs <- job:
			continue
		default:
		}
		if workers < r.cfg.MaxInFlight {
			workers++
			r.wg.Add(1)
			go worker(job)
			continue
		}
		// At the cap: wait for a worker; the wait becomes schedule lag.
		select {
		case jobs <- job:
		case <-ctx.Done():
			return StopInterrupted
		}
	}
}

// sleepUntil waits for t; it returns false if ctx ends first.
func (r *run) sleepUntil(ctx context.Context, timer *time.Timer, t time.Time) bool {
	wait := time.Until(t)
	if wait <= 0 {
		return ctx.Err() == nil
	}
	timer.Reset(wait)
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

// dispatchClosed runs Concurrency workers that each send, wait for the
// answer, and send again, until a bound is reached.
func (r *run) dispatchClosed(ctx, reqCtx context.Context) StopReason {
	var next atomic.Int64
	var deadline time.Time
	if r.cfg.Duration > 0 {
		deadline = r.start.Add(r.cfg.Duration)
	}
	workersDone := make(chan struct{})
	var workers sync.WaitGroup
	for range r.cfg.Concurrency {
		workers.Add(1)
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			defer workers.Done()
			for ctx.Err() == nil {
				if !deadline.IsZero() && !time.Now().Before(deadline) {
					return
				}
				seq := next.Add(1) - 1
				if r.cfg.MaxRequests > 0 && seq >= r.cfg.MaxRequests {
					return
				}
				r.one(reqCtx, seq, time.Now())
			}
		}()
	}
	go func() {
		workers.Wait()
		close(workersDone)
	}()

	var deadlineC <-chan time.Time
	if !deadline.IsZero() {
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		deadlineC = t.C
	}
	select {
	case <-ctx.Done():
		return StopInterrupted
	case <-deadlineC:
		return StopDuration
	case <-workersDone:
		if r.cfg.MaxRequests > 0 && next.Load() >= r.cfg.MaxRequests {
			return StopMaxRequests
		}
		return StopDuration
	}
}

// drain waits for requests in flight, canceling them after DrainTimeout.
func (r *run) drain(ctx context.Context, cancelRequests context.CancelFunc) {
	done := make(chan struct{})
	go func() {
		r.wg.Wait()
		close(done)
	}()
	timer := time.NewTimer(r.cfg.DrainTimeout)
	defer timer.Stop()
	select {
	case <-done:
		return
	case <-ctx.Done():
	case <-timer.C:
	}
	cancelRequests()
	<-done
}

// startProgress calls OnProgress periodically until the returned func runs.
func (r *run) startProgress() (stop func()) {
	if r.cfg.OnProgress == nil {
		return func() {}
	}
	quit := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		ticker := time.NewTicker(r.cfg.ProgressInterval)
		defer ticker.Stop()
		for {
			select {
			case <-quit:
				return
			case now := <-ticker.C:
				r.cfg.OnProgress(r.col.Progress(now))
			}
		}
	}()
	return func() {
		close(quit)
		<-finished
	}
}
