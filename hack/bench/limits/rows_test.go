package limits

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strings"
	"time"

	"github.com/claudecap/claudecap/pkg/loadtest"
	"github.com/claudecap/claudecap/pkg/mockapi"
	"github.com/claudecap/claudecap/pkg/ratelimit"
)

// limiterKind is what stands between the clients and the API in a row.
type limiterKind string

const (
	// limiterClaudecap is K claudecap proxies sharing one pool in Redis.
	limiterClaudecap limiterKind = "claudecap"
	// limiterNone sends every call straight to the API.
	limiterNone limiterKind = "none"
	// limiterFixedWindow checks a per-minute Redis counter per dimension before each call.
	limiterFixedWindow limiterKind = "fixed-window"
)

// Baseline rows run against the API's current output rule, and the fixed-window counter is
// set to the headline headroom.
const (
	baselineMode        = mockapi.OTPMCountActual
	fixedWindowHeadroom = 0.9
	// fixedWindowSpan is the shortest window over which a per-minute counter's share is
	// stable: it always holds exactly one reset.
	fixedWindowSpan = time.Minute
)

var (
	modes     = []mockapi.OTPMMode{mockapi.OTPMCountActual, mockapi.OTPMReserveMaxTokens}
	headrooms = []float64{0.9, 1.0}
)

// row is one measured configuration.
type row struct {
	sc       *scenario
	limiter  limiterKind
	mode     mockapi.OTPMMode
	headroom float64
}

// name is the row's name in the report and in -rows filters:
// scenario/limiter/mode[/headroom percent].
func (r row) name() string {
	if r.limiter == limiterNone {
		return fmt.Sprintf("%s/%s/%s", r.sc.name, r.limiter, r.mode)
	}
	return fmt.Sprintf("%s/%s/%s/%d", r.sc.name, r.limiter, r.mode, int(math.Round(r.headroom*100)))
}

// allRows is the suite's matrix: per scenario the limiter in both modes at both headrooms,
// then the two baselines.
func allRows(scs []*scenario) []row {
	var out []row
	for _, sc := range scs {
		for _, m := range modes {
			for _, h := range headrooms {
				out = append(out, row{sc: sc, limiter: limiterClaudecap, mode: m, headroom: h})
			}
		}
		out = append(out,
			row{sc: sc, limiter: limiterNone, mode: baselineMode, headroom: 1},
			row{sc: sc, limiter: limiterFixedWindow, mode: baselineMode, headroom: fixedWindowHeadroom})
	}
	return out
}

// selectRows keeps the rows whose name matches any of the comma-separated regular
// expressions in filter (unanchored); "" keeps all. A pattern that matches nothing is an
// error, so a typo does not silently run an empty suite.
func selectRows(rows []row, filter string) ([]row, error) {
	if strings.TrimSpace(filter) == "" {
		return rows, nil
	}
	var pats []*regexp.Regexp
	for _, p := range strings.Split(filter, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		re, err := regexp.Compile(p)
		if err != nil {
			return nil, fmt.Errorf("row filter %q: %w", p, err)
		}
		pats = append(pats, re)
	}
	used := make([]bool, len(pats))
	var out []row
	for _, r := range rows {
		keep := false
		for i, re := range pats {
			if re.MatchString(r.name()) {
				keep, used[i] = true, true
			}
		}
		if keep {
			out = append(out, r)
		}
	}
	var errs []error
	for i, u := range used {
		if !u {
			errs = append(errs, fmt.Errorf("row filter %q matches no row (rows are named like %s)", pats[i], rows[0].name()))
		}
	}
	return out, errors.Join(errs...)
}

// scaleLimits is headroom x the API's limits, rounded down.
func scaleLimits(l mockapi.Limits, headroom float64) ratelimit.Limits {
	f := func(v int64) int64 { return int64(math.Floor(float64(v) * headroom)) }
	return ratelimit.Limits{
		RequestsPerMinute:     f(l.RequestsPerMinute),
		InputTokensPerMinute:  f(l.InputTokensPerMinute),
		OutputTokensPerMinute: f(l.OutputTokensPerMinute),
	}
}

// enforced is what the row's limiter enforces: the pool, the counter's limits, or (no
// limiter) the API's own.
func (r row) enforced() ratelimit.Limits { return scaleLimits(r.sc.limits, r.headroom) }

// window is the steady-state window; a fixed-window row's is at least a minute long.
func (r row) window() span {
	w := r.sc.window
	if r.limiter == limiterFixedWindow && w.length < fixedWindowSpan {
		w.length = fixedWindowSpan
	}
	return w
}

// length is when the row stops sending.
func (r row) length() time.Duration {
	d := r.window().end()
	if o := r.sc.outage; o != nil {
		d = max(d, o.end())
	}
	return d
}

// dimension indexes the three limits.
type dimension int

const (
	dimRequests dimension = iota
	dimInput
	dimOutput
	dimCount
)

var dimensionNames = [dimCount]string{"requests", "input tokens", "output tokens"}

func (d dimension) String() string { return dimensionNames[d] }

// perDim is a quantity in each dimension.
type perDim [dimCount]float64

func limitsOf(l ratelimit.Limits) perDim {
	return perDim{float64(l.RequestsPerMinute), float64(l.InputTokensPerMinute), float64(l.OutputTokensPerMinute)}
}

// meanCost is what a call of the mix costs on average, as the API counts it: one request,
// its input, and its expected output.
func meanCost(mix []variant, output mockapi.Distribution) perDim {
	var c perDim
	var total float64
	for _, v := range mix {
		total += v.weight
		c[dimRequests] += v.weight
		c[dimInput] += v.weight * v.input
		c[dimOutput] += v.weight * meanCapped(output, v.params.MaxTokens)
	}
	if total > 0 {
		for d := range c {
			c[d] /= total
		}
	}
	return c
}

// meanCapped is the expected output of a call: the mock draws from d and stops at max_tokens.
func meanCapped(d mockapi.Distribution, maxTokens int64) float64 {
	m := float64(maxTokens)
	switch d.Kind {
	case mockapi.DistUniform:
		lo, hi := d.Min, d.Max
		switch {
		case m >= hi:
			return (lo + hi) / 2
		case m <= lo:
			return m
		default:
			return ((m*m-lo*lo)/2 + m*(hi-m)) / (hi - lo)
		}
	case mockapi.DistZero:
		return 1 // the mock produces at least one token
	default:
		return min(d.Mean, m)
	}
}

// ratedLoad is the offered load of the rated traffic, in calls per minute: overload x the
// calls per minute the binding dimension of limits admits at cost per call.
func ratedLoad(cost perDim, limits ratelimit.Limits) (perMinute float64, binding dimension) {
	l := limitsOf(limits)
	best := math.Inf(1)
	for d := range dimCount {
		if l[d] <= 0 || cost[d] <= 0 {
			continue
		}
		if calls := l[d] / cost[d]; calls < best {
			best, binding = calls, d
		}
	}
	return overload * best, binding
}

// profile is the rated traffic's arrival rate over the row: idle until mixFrom, the
// warm-up, then the offered load until stopped.
func (r row) profile(perMinute float64) loadtest.RateProfile {
	perSecond := perMinute / 60
	var segs []loadtest.Segment
	if r.sc.mixFrom > 0 {
		segs = append(segs, loadtest.Segment{Duration: r.sc.mixFrom})
	}
	if r.sc.warmup {
		w := perSecond * warmupOverload / overload
		segs = append(segs, loadtest.Segment{Duration: warmupFor, From: w, To: w})
	}
	segs = append(segs, loadtest.Segment{Duration: time.Second, From: perSecond, To: perSecond})
	return loadtest.RateProfile{Segments: segs}
}
