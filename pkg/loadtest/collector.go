package loadtest

import (
	"sync"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// maxErrorSamples bounds how many distinct error messages a report keeps.
const maxErrorSamples = 5

// Collector aggregates samples into a Report. It is safe for concurrent use:
// every request goroutine records into it. It does no I/O and reads no
// clock; callers pass the times in, which keeps it deterministic in tests.
type Collector struct {
	mu    sync.Mutex
	start time.Time

	e2e, ttft, itl, service, lag *hdrhistogram.Histogram
	timeline                     *timeline

	sent, completed, attempts int64
	classes                   map[Class]int64
	statusCodes               map[string]int64
	midStream                 int64
	firstStart, lastStart     time.Time
	lastEnd                   time.Time
	busy                      time.Duration

	tokens     Usage
	retryAfter RetryAfterStats
	limits     map[Dimension]*LimitObservation
	errors     []ErrorSample
}

// NewCollector returns an empty collector for a run that started at start.
func NewCollector(start time.Time) *Collector {
	return &Collector{
		start:       start,
		e2e:         newLatencyHistogram(summaryDigits),
		ttft:        newLatencyHistogram(summaryDigits),
		itl:         newLatencyHistogram(summaryDigits),
		service:     newLatencyHistogram(summaryDigits),
		lag:         newLatencyHistogram(summaryDigits),
		timeline:    newTimeline(),
		classes:     map[Class]int64{},
		statusCodes: map[string]int64{},
		limits:      map[Dimension]*LimitObservation{},
	}
}

// Started records that a request intended for `intended` left at `start`.
// Schedule lag is recorded here, for every request, so a generator that
// falls behind shows up even when its requests later fail.
func (c *Collector) Started(intended, start time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sent++
	if c.firstStart.IsZero() || start.Before(c.firstStart) {
		c.firstStart = start
	}
	if start.After(c.lastStart) {
		c.lastStart = start
	}
	recordDuration(c.lag, start.Sub(intended))
}

// Record adds one finished request.
func (c *Collector) Record(s Sample) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.completed++
	c.classes[s.Class]++
	if s.MidStream {
		c.midStream++
	}
	if s.End.After(c.lastEnd) {
		c.lastEnd = s.End
	}
	service := s.End.Sub(s.Start)
	c.busy += service
	e2e := s.End.Sub(s.Intended)

	c.recordAttempts(s.Attempts)
	c.tokens.InputTokens += s.Usage.InputTokens
	c.tokens.OutputTokens += s.Usage.OutputTokens
	c.tokens.CacheCreationInputTokens += s.Usage.CacheCreationInputTokens
	c.tokens.CacheReadInputTokens += s.Usage.CacheReadInputTokens
	c.timeline.record(s.End.Sub(c.start), &s, e2e)

	switch s.Class {
	case ClassOK:
		recordDuration(c.e2e, e2e)
		recordDuration(c.service, service)
		if !s.FirstToken.IsZero() {
			recordDuration(c.ttft, s.FirstToken.Sub(s.Intended))
			if s.Usage.OutputTokens > 1 && s.LastToken.After(s.FirstToken) {
				recordDuration(c.itl, s.LastToken.Sub(s.FirstToken)/time.Duration(s.Usage.OutputTokens-1))
			}
		}
	case ClassCanceled:
	default:
		c.noteError(s.Class, s.Err)
	}
}

func (c *Collector) recordAttempts(attempts []Attempt) {
	for _, a := range attempts {
		c.attempts++
		c.statusCodes[statusKey(a.Status)]++
		if a.RetryAfter >= 0 {
			secs := a.RetryAfter.Seconds()
			if c.retryAfter.Seen == 0 || secs < c.retryAfter.MinSeconds {
				c.retryAfter.MinSeconds = secs
			}
			c.retryAfter.MaxSeconds = max(c.retryAfter.MaxSeconds, secs)
			c.retryAfter.Seen++
		}
		for d, b := range a.RateLimit {
			c.observeLimit(d, b)
		}
	}
}

func (c *Collector) observeLimit(d Dimension, b Bucket) {
	obs := c.limits[d]
	if obs == nil {
		obs = &LimitObservation{Limit: -1, MinRemaining: -1}
		c.limits[d] = obs
	}
	obs.Responses++
	if b.Limit >= 0 {
		obs.Limit = b.Limit
	}
	if b.Remaining >= 0 && (obs.MinRemaining < 0 || b.Remaining < obs.MinRemaining) {
		obs.MinRemaining = b.Remaining
	}
}

func (c *Collector) noteError(class Class, err error) {
	msg := string(class)
	if err != nil {
		msg = err.Error()
	}
	for i := range c.errors {
		if c.errors[i].Message == msg && c.errors[i].Class == class {
			c.errors[i].Count++
			return
		}
	}
	if len(c.errors) < maxErrorSamples {
		c.errors = append(c.errors, ErrorSample{Class: class, Message: msg, Count: 1})
	}
}

// Progress is a cheap snapshot for the live progress line.
type Progress struct {
	Elapsed     time.Duration
	Sent        int64
	Completed   int64
	InFlight    int64
	OK          int64
	RateLimited int64
	// Errors counts every failed request, 429s included.
	Errors int64
	// SentPerSecond is the send rate since the start.
	SentPerSecond float64
	// P99 is the end-to-end p99 of successful requests so far.
	P99 time.Duration
}

// Progress returns a snapshot as of now.
func (c *Collector) Progress(now time.Time) Progress {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := Progress{
		Elapsed:     now.Sub(c.start),
		Sent:        c.sent,
		Completed:   c.completed,
		InFlight:    c.sent - c.completed,
		OK:          c.classes[ClassOK],
		RateLimited: c.classes[ClassRateLimited],
		Errors:      c.completed - c.classes[ClassOK] - c.classes[ClassCanceled],
		P99:         time.Duration(c.e2e.ValueAtQuantile(99)) * time.Microsecond,
	}
	if secs := p.Elapsed.Seconds(); secs > 0 {
		p.SentPerSecond = float64(c.sent) / secs
	}
	return p
}
