package loadtest

import (
	"maps"
	"time"

	"github.com/claudecap/claudecap/pkg/dimension"
)

// Report builds the run's report as of end (normally the moment the last
// request finished). It can be called more than once; the collector keeps
// accumulating.
func (c *Collector) Report(end time.Time, cfg RunConfig, stop StopReason) *Report {
	c.mu.Lock()
	defer c.mu.Unlock()

	elapsed := end.Sub(c.start)
	minutes := elapsed.Minutes()
	r := &Report{
		SchemaVersion:   SchemaVersion,
		StartedAt:       c.start.UTC(),
		DurationSeconds: elapsed.Seconds(),
		StopReason:      stop,
		Interrupted:     stop == StopInterrupted,
		Config:          cfg,
		Classes:         maps.Clone(c.classes),
		StatusCodes:     maps.Clone(c.statusCodes),
		MidStreamErrors: c.midStream,
		RetryAfter:      c.retryAfter,
		Latency: LatencyReport{
			EndToEnd:         summarize(c.e2e),
			TimeToFirstToken: summarize(c.ttft),
			InterToken:       summarize(c.itl),
			ServiceTime:      summarize(c.service),
			ScheduleLag:      summarize(c.lag),
		},
		Timeline:     c.timeline.export(),
		ErrorSamples: append([]ErrorSample(nil), c.errors...),
	}
	ok := c.classes[ClassOK]
	canceled := c.classes[ClassCanceled]
	r.Requests = RequestCounts{
		Sent:      c.sent,
		Completed: c.completed,
		Succeeded: ok,
		Failed:    c.completed - ok - canceled,
		Canceled:  canceled,
		Attempts:  c.attempts,
	}
	r.Tokens = c.tokenStats(ok)
	r.Throughput = c.throughput(minutes, ok)
	r.RateLimits = c.limitReport(r.Throughput)
	r.PerReplicaEquivalent = c.replicaEquivalent(elapsed, r.Throughput)
	return r
}

func (c *Collector) tokenStats(ok int64) TokenStats {
	t := TokenStats{
		Input:         c.tokens.InputTokens,
		Output:        c.tokens.OutputTokens,
		CacheCreation: c.tokens.CacheCreationInputTokens,
		CacheRead:     c.tokens.CacheReadInputTokens,
	}
	allInput := t.Input + t.CacheCreation + t.CacheRead
	if ok > 0 {
		t.AvgInputTokens = float64(allInput) / float64(ok)
		t.AvgOutputTokens = float64(t.Output) / float64(ok)
	}
	if allInput > 0 {
		t.CacheHitRatio = float64(t.CacheRead) / float64(allInput)
	}
	return t
}

func (c *Collector) throughput(minutes float64, ok int64) Throughput {
	var t Throughput
	if span := c.lastStart.Sub(c.firstStart); c.sent >= 2 && span > 0 {
		// n sends span n-1 intervals.
		t.SentPerSecond = float64(c.sent-1) / span.Seconds()
	}
	if minutes <= 0 {
		return t
	}
	t.RequestsPerMinute = float64(c.attempts) / minutes
	t.SuccessfulRequestsPerMinute = float64(ok) / minutes
	t.InputTokensPerMinute = float64(c.tokens.InputTokens+c.tokens.CacheCreationInputTokens) / minutes
	t.OutputTokensPerMinute = float64(c.tokens.OutputTokens) / minutes
	t.OutputTokensPerSecond = t.OutputTokensPerMinute / 60
	return t
}

func (c *Collector) limitReport(t Throughput) map[Dimension]LimitObservation {
	achieved := map[Dimension]float64{
		DimensionOf(dimension.Requests):     t.RequestsPerMinute,
		DimensionOf(dimension.InputTokens):  t.InputTokensPerMinute,
		DimensionOf(dimension.OutputTokens): t.OutputTokensPerMinute,
		DimTokens:                           t.InputTokensPerMinute + t.OutputTokensPerMinute,
	}
	out := make(map[Dimension]LimitObservation, len(c.limits))
	for d, obs := range c.limits {
		o := *obs
		o.AchievedPerMinute = achieved[d]
		if o.Limit > 0 {
			o.Utilization = o.AchievedPerMinute / float64(o.Limit)
		}
		out[d] = o
	}
	return out
}

// replicaEquivalent applies Little's law: the mean number in flight is the
// total time requests spent in flight divided by the run's length.
func (c *Collector) replicaEquivalent(elapsed time.Duration, t Throughput) ReplicaEquivalent {
	if elapsed <= 0 || c.busy <= 0 {
		return ReplicaEquivalent{}
	}
	conc := c.busy.Seconds() / elapsed.Seconds()
	return ReplicaEquivalent{
		MeanConcurrency:       conc,
		RequestsPerMinute:     t.SuccessfulRequestsPerMinute / conc,
		InputTokensPerMinute:  t.InputTokensPerMinute / conc,
		OutputTokensPerMinute: t.OutputTokensPerMinute / conc,
	}
}
