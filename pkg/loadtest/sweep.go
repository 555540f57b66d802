package loadtest

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// SweepTarget is what a sweep stage must meet to pass. At least one of the
// two bounds must be set.
type SweepTarget struct {
	// Max429Ratio is the highest share of HTTP attempts that may be 429s
	// (0.01 = 1%); negative disables the bound.
	Max429Ratio float64
	// MaxP99 is the highest end-to-end p99 allowed; 0 disables the bound.
	MaxP99 time.Duration
}

// SweepConfig bounds a sweep's search.
type SweepConfig struct {
	// StartRate is the first rate tried, in requests per second.
	StartRate float64
	// MaxRate caps the search; the sweep stops when it passes at MaxRate.
	MaxRate float64
	// Growth multiplies the rate after each passing stage while no stage
	// has failed yet (for example 2).
	Growth float64
	// Refinements is how many bisection stages run between the last pass
	// and the first failure.
	Refinements int
	// Target is the pass condition.
	Target SweepTarget
}

// Validate checks the sweep settings.
func (c SweepConfig) Validate() error {
	switch {
	case !(c.StartRate > 0) || math.IsInf(c.StartRate, 0):
		return fmt.Errorf("sweep start rate must be positive, got %v", c.StartRate)
	case !(c.MaxRate >= c.StartRate) || math.IsInf(c.MaxRate, 0):
		return fmt.Errorf("sweep max rate %v must be at least the start rate %v", c.MaxRate, c.StartRate)
	case !(c.Growth > 1) || math.IsInf(c.Growth, 0):
		return fmt.Errorf("sweep growth factor must be greater than 1, got %v", c.Growth)
	case c.Refinements < 0:
		return fmt.Errorf("sweep refinements must be >= 0, got %d", c.Refinements)
	case c.Target.Max429Ratio < 0 && c.Target.MaxP99 <= 0:
		return errors.New("sweep needs a target: a maximum 429 ratio, a maximum p99 latency, or both")
	case c.Target.Max429Ratio > 1:
		return fmt.Errorf("sweep 429 ratio must be between 0 and 1, got %v", c.Target.Max429Ratio)
	}
	return nil
}

// StageResult is what the planner needs to know about a finished stage.
type StageResult struct {
	Rate      float64
	Attempts  int64
	Status429 int64
	Succeeded int64
	P99       time.Duration
}

// Passes reports whether the stage met the target. A stage with no
// successful request never passes: its latency is unknown.
func (t SweepTarget) Passes(r StageResult) bool {
	if r.Succeeded == 0 || r.Attempts == 0 {
		return false
	}
	if t.Max429Ratio >= 0 && float64(r.Status429)/float64(r.Attempts) > t.Max429Ratio {
		return false
	}
	if t.MaxP99 > 0 && r.P99 > t.MaxP99 {
		return false
	}
	return true
}

// SweepPlanner decides the rate of each sweep stage from the results of the
// previous ones: it grows the rate geometrically until a stage fails (or
// MaxRate passes), then bisects between the best pass and the lowest
// failure. It is pure so that the search itself is table-tested.
type SweepPlanner struct {
	cfg       SweepConfig
	next      float64
	bestPass  float64 // 0 until a stage passes
	lowFail   float64 // 0 until a stage fails
	bisecting int
	done      bool
}

// NewSweepPlanner validates cfg and returns a planner whose first stage is
// cfg.StartRate.
func NewSweepPlanner(cfg SweepConfig) (*SweepPlanner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &SweepPlanner{cfg: cfg, next: cfg.StartRate}, nil
}

// Next returns the rate of the next stage, or ok=false when the search is
// over.
func (p *SweepPlanner) Next() (rate float64, ok bool) {
	if p.done {
		return 0, false
	}
	return p.next, true
}

// Observe feeds the result of the stage Next proposed.
func (p *SweepPlanner) Observe(r StageResult) {
	if p.done {
		return
	}
	pass := p.cfg.Target.Passes(r)
	if pass {
		p.bestPass = max(p.bestPass, r.Rate)
	} else if p.lowFail == 0 || r.Rate < p.lowFail {
		p.lowFail = r.Rate
	}
	if p.lowFail == 0 {
		// Still growing: every stage so far passed.
		if r.Rate >= p.cfg.MaxRate {
			p.done = true
			return
		}
		p.next = min(r.Rate*p.cfg.Growth, p.cfg.MaxRate)
		return
	}
	if p.bisecting >= p.cfg.Refinements {
		p.done = true
		return
	}
	p.bisecting++
	p.next = (p.bestPass + p.lowFail) / 2
}

// Best is the highest rate that passed, or 0.
func (p *SweepPlanner) Best() float64 { return p.bestPass }

// SweepReport is the sweep section of a Report.
type SweepReport struct {
	// Max429Ratio and MaxP99Ms echo the target (-1 / 0: not set).
	Max429Ratio float64 `json:"max429Ratio"`
	MaxP99Ms    float64 `json:"maxP99Ms"`
	// StageSeconds is the length of each stage.
	StageSeconds float64 `json:"stageSeconds"`
	// BestRatePerSecond is the highest passing rate, 0 when none passed.
	BestRatePerSecond float64 `json:"bestRatePerSecond"`
	// Stages lists every stage in the order it ran.
	Stages []SweepStage `json:"stages"`
}

// SweepStage summarizes one stage.
type SweepStage struct {
	RatePerSecond     float64 `json:"ratePerSecond"`
	SentPerSecond     float64 `json:"sentPerSecond"`
	Attempts          int64   `json:"attempts"`
	Status429         int64   `json:"status429"`
	Ratio429          float64 `json:"ratio429"`
	Succeeded         int64   `json:"succeeded"`
	P99Ms             float64 `json:"p99Ms"`
	RequestsPerMinute float64 `json:"requestsPerMinute"`
	Passed            bool    `json:"passed"`
}

// stageResultOf extracts what the planner needs from a stage's report.
func stageResultOf(rate float64, r *Report) StageResult {
	return StageResult{
		Rate:      rate,
		Attempts:  r.Requests.Attempts,
		Status429: r.StatusCodes["429"],
		Succeeded: r.Requests.Succeeded,
		P99:       time.Duration(r.Latency.EndToEnd.P99Ms * float64(time.Millisecond)),
	}
}
