package mockapi

import (
	"fmt"
	"sync"

	"github.com/claudecap/claudecap/pkg/dimension"
)

// Dimension names what a rate-limit refusal was about.
type Dimension string

// DimensionOf returns the Dimension of a limited dimension: its table Field ("output_tokens").
func DimensionOf(d dimension.Dimension) Dimension { return Dimension(d.Info().Field) }

// DimAcceleration is a refusal by the acceleration limit, which is no limited dimension.
const DimAcceleration Dimension = "acceleration"

// dimensions lists what a request can be refused on, in the order they are checked and
// reported: the table's dimensions, then acceleration.
var dimensions = func() []Dimension {
	all := make([]Dimension, 0, dimension.Count+1)
	for _, d := range dimension.All() {
		all = append(all, DimensionOf(d))
	}
	return append(all, DimAcceleration)
}()

// dimIndex returns d's place in dimensions. It panics for a dimension not in
// the list: counting it as another would misreport the mock's refusals.
func dimIndex(d Dimension) int {
	for i, x := range dimensions {
		if x == d {
			return i
		}
	}
	panic(fmt.Sprintf("mock: refusal dimension %q is not one of %v", d, dimensions))
}

// charge is what one request asks of its class's buckets.
type charge struct {
	uncached      int64 // input tokens neither read from nor written to the cache
	cacheCreation int64 // input tokens written to the cache
	cacheRead     int64 // input tokens read from the cache
	readsCount    bool  // cache reads count toward ITPM (older models)
	outputReserve int64 // max_tokens, reserved at admission in reserve mode
}

// itpm is the request's cost against the input-tokens-per-minute limit.
func (c charge) itpm() int64 {
	n := c.uncached + c.cacheCreation
	if c.readsCount {
		n += c.cacheRead
	}
	return n
}

// verdict is the outcome of an admission check plus the bucket state the
// rate-limit headers describe.
type verdict struct {
	admitted   bool
	refusedBy  Dimension
	retryAfter int64 // seconds, on refusal
	oversized  bool  // the input can never fit: it exceeds the ITPM limit itself
	reserved   int64 // output tokens reserved, to settle later
	state      limitState
}

// limitState is a snapshot of a class's buckets for the response headers.
type limitState struct {
	now                int64 // microseconds
	req, input, output dimState
}

// dimState is one bucket's header values.
type dimState struct {
	limit      int64 // 0 when the dimension is not limited
	remaining  int64
	fullMicros int64 // time until full again
}

// classLimiter holds the buckets of one model class (of one organization)
// and the usage statistics of that class; one short critical section per
// admission and per settlement updates both.
type classLimiter struct {
	mu     sync.Mutex
	limits Limits
	mode   OTPMMode
	accel  Acceleration

	req, input, output bucket
	accelWindow        minuteWindow

	usage classUsage
}

// classUsage are the statistics of one class.
type classUsage struct {
	admitted      int64
	refused       [dimension.Count + 1]int64 // indexed like dimensions
	inputTokens   int64                      // uncached input
	cacheCreation int64
	cacheRead     int64
	outputTokens  int64
	// Sliding-minute windows of what counted against each limit.
	reqWindow, inputWindow, outputWindow minuteWindow
}

func newClassLimiter(l Limits, mode OTPMMode, accel Acceleration, now int64) *classLimiter {
	if accel.Enabled && accel.Floor == 0 {
		accel.Floor = 10
		if l.RequestsPerMinute > 0 {
			accel.Floor = max(1, l.RequestsPerMinute/4)
		}
	}
	return &classLimiter{
		limits: l,
		mode:   mode,
		accel:  accel,
		req:    newBucket(l.RequestsPerMinute, now),
		input:  newBucket(l.InputTokensPerMinute, now),
		output: newBucket(l.OutputTokensPerMinute, now),
	}
}

// admit decides whether a request may start now and, if so, takes its
// charge. A refused request takes nothing. When several dimensions refuse,
// the first in check order is reported and retry-after covers all of them.
func (l *classLimiter) admit(now int64, c charge) verdict {
	var v verdict
	var waitMicros int64
	refuse := func(d Dimension, wait int64) {
		if v.refusedBy == "" {
			v.refusedBy = d
		}
		waitMicros = max(waitMicros, wait)
	}
	sec := now / 1_000_000
	input := c.itpm()

	l.mu.Lock()
	defer l.mu.Unlock()
	l.refill(now)
	if l.limits.RequestsPerMinute > 0 && !l.req.has(1) {
		refuse(DimensionOf(dimension.Requests), l.req.waitMicros(1))
	}
	if l.limits.InputTokensPerMinute > 0 {
		switch {
		case input > l.limits.InputTokensPerMinute:
			v.oversized = true
			refuse(DimensionOf(dimension.InputTokens), l.input.untilFullMicros())
		case !l.input.has(input):
			refuse(DimensionOf(dimension.InputTokens), l.input.waitMicros(input))
		}
	}
	if l.limits.OutputTokensPerMinute > 0 {
		need := int64(1)
		if l.mode == OTPMReserveMaxTokens {
			v.reserved = min(c.outputReserve, l.limits.OutputTokensPerMinute)
			need = max(v.reserved, 1)
		}
		if !l.output.has(need) {
			refuse(DimensionOf(dimension.OutputTokens), l.output.waitMicros(need))
		}
	}
	if l.accel.Enabled {
		cur, prev := l.accelWindow.minutes(sec)
		if float64(cur+1) > float64(l.accel.Floor)+l.accel.MaxGrowth*float64(prev) {
			refuse(DimAcceleration, 1_000_000)
		}
	}
	if v.refusedBy != "" {
		v.reserved = 0
		v.retryAfter = max(1, ceilDiv(waitMicros, 1_000_000))
		l.usage.refused[dimIndex(v.refusedBy)]++
		v.state = l.snapshot(now)
		return v
	}

	v.admitted = true
	if l.limits.RequestsPerMinute > 0 {
		l.req.take(1)
	}
	if l.limits.InputTokensPerMinute > 0 {
		l.input.take(input)
	}
	if l.limits.OutputTokensPerMinute > 0 {
		l.output.take(v.reserved)
	} else {
		v.reserved = 0
	}
	if l.accel.Enabled {
		l.accelWindow.add(sec, 1)
	}
	u := &l.usage
	u.admitted++
	u.inputTokens += c.uncached
	u.cacheCreation += c.cacheCreation
	u.cacheRead += c.cacheRead
	u.reqWindow.add(sec, 1)
	u.inputWindow.add(sec, input)
	v.state = l.snapshot(now)
	return v
}

// settle charges the output a request actually produced, replacing its
// reservation.
func (l *classLimiter) settle(now, reserved, actual int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refill(now)
	if l.limits.OutputTokensPerMinute > 0 {
		if delta := reserved - actual; delta >= 0 {
			l.output.give(delta)
		} else {
			l.output.take(-delta)
		}
	}
	l.usage.outputTokens += actual
	l.usage.outputWindow.add(now/1_000_000, actual)
}

func (l *classLimiter) refill(now int64) {
	l.req.refill(now)
	l.input.refill(now)
	l.output.refill(now)
}

// snapshot captures the header values; callers hold mu.
func (l *classLimiter) snapshot(now int64) limitState {
	dim := func(b *bucket) dimState {
		if b.limit == 0 {
			return dimState{}
		}
		return dimState{limit: b.limit, remaining: b.remaining(), fullMicros: b.untilFullMicros()}
	}
	return limitState{now: now, req: dim(&l.req), input: dim(&l.input), output: dim(&l.output)}
}

// reset refills every bucket and forgets statistics and history.
func (l *classLimiter) reset(now int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.req = newBucket(l.limits.RequestsPerMinute, now)
	l.input = newBucket(l.limits.InputTokensPerMinute, now)
	l.output = newBucket(l.limits.OutputTokensPerMinute, now)
	l.accelWindow = minuteWindow{}
	l.usage = classUsage{}
}

// resetStats forgets statistics only.
func (l *classLimiter) resetStats() {
	l.mu.Lock()
	l.usage = classUsage{}
	l.mu.Unlock()
}
