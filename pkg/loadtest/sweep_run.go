package loadtest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"
)

// SweepRun is a sweep: open-loop stages at rates chosen by a SweepPlanner.
type SweepRun struct {
	// Base supplies arrival, seed, in-flight cap, drain timeout, progress
	// callback and target; its mode, profile and bounds are replaced per
	// stage.
	Base Config
	// Sweep bounds the search.
	Sweep SweepConfig
	// StageDuration is how long each stage sends.
	StageDuration time.Duration
	// Cooldown pauses between stages so token buckets drained by a failing
	// stage refill before the next one; a full bucket refills in a minute.
	Cooldown time.Duration
}

// Validate checks the sweep.
func (s SweepRun) Validate() error {
	if s.StageDuration <= 0 {
		return errors.New("sweep stage duration must be positive")
	}
	if s.Cooldown < 0 {
		return errors.New("sweep cooldown must not be negative")
	}
	return s.Sweep.Validate()
}

// MaxStages bounds how many stages the sweep can run: the growth steps from
// start to max rate, plus the refinements.
func (s SweepRun) MaxStages() int {
	growth := 1
	if s.Sweep.MaxRate > s.Sweep.StartRate && s.Sweep.Growth > 1 {
		growth += int(math.Ceil(math.Log(s.Sweep.MaxRate/s.Sweep.StartRate) / math.Log(s.Sweep.Growth)))
	}
	return growth + s.Sweep.Refinements
}

// RunSweep runs stages until the planner is done or ctx is canceled. The
// returned report is that of the best passing stage (the first stage when
// none passed), with the Sweep section describing every stage.
func RunSweep(ctx context.Context, s SweepRun, sender Sender) (*Report, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	planner, err := NewSweepPlanner(s.Sweep)
	if err != nil {
		return nil, err
	}
	sweep := &SweepReport{
		Max429Ratio:  s.Sweep.Target.Max429Ratio,
		MaxP99Ms:     float64(s.Sweep.Target.MaxP99) / float64(time.Millisecond),
		StageSeconds: s.StageDuration.Seconds(),
	}
	var first, best *Report
	interrupted := false
	for stageNo := 0; ; stageNo++ {
		rate, ok := planner.Next()
		if !ok {
			break
		}
		if stageNo > 0 && s.Cooldown > 0 && !sleepCtx(ctx, s.Cooldown) {
			interrupted = true
			break
		}
		cfg := s.Base
		cfg.Mode = ModeOpen
		cfg.Profile = ConstantProfile(rate)
		cfg.Duration = s.StageDuration
		cfg.MaxRequests = 0
		rep, err := Run(ctx, cfg, sender)
		if err != nil {
			return nil, fmt.Errorf("sweep stage at %s: %w", FormatRate(rate), err)
		}
		result := stageResultOf(rate, rep)
		passed := s.Sweep.Target.Passes(result)
		sweep.Stages = append(sweep.Stages, stageSummary(result, rep, passed))
		if first == nil {
			first = rep
		}
		if rep.Interrupted {
			interrupted = true
			break
		}
		if passed && rate >= planner.Best() {
			best = rep
		}
		planner.Observe(result)
	}
	sweep.BestRatePerSecond = planner.Best()
	// The planner always proposes a first stage and a stage always yields
	// a report, so first is set here.
	out := best
	if out == nil {
		out = first
	}
	out.Config.Mode = ModeSweep
	out.Sweep = sweep
	if interrupted {
		out.Interrupted = true
		out.StopReason = StopInterrupted
	}
	return out, nil
}

func stageSummary(r StageResult, rep *Report, passed bool) SweepStage {
	st := SweepStage{
		RatePerSecond:     r.Rate,
		SentPerSecond:     rep.Throughput.SentPerSecond,
		Attempts:          r.Attempts,
		Status429:         r.Status429,
		Succeeded:         r.Succeeded,
		P99Ms:             rep.Latency.EndToEnd.P99Ms,
		RequestsPerMinute: rep.Throughput.RequestsPerMinute,
		Passed:            passed,
	}
	if r.Attempts > 0 {
		st.Ratio429 = float64(r.Status429) / float64(r.Attempts)
	}
	return st
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
