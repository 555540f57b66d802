package loadtest

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteSummary renders the report as the human-readable table printed at
// the end of a run.
func (r *Report) WriteSummary(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	p := &printer{w: tw}
	p.line("claudecap loadtest: %s  [stopped: %s]", r.describeLoad(), r.StopReason)
	if r.Interrupted {
		p.line("PARTIAL REPORT: the run was interrupted")
	}
	t := r.Config.Target
	p.line("target %s  model %s  stream=%t  retries=%d  duration %.1fs", orDash(t.BaseURL), orDash(t.Model), t.Stream, t.MaxRetries, r.DurationSeconds)
	p.line("")
	r.writeCounts(p)
	p.line("")
	r.writeLatency(p)
	if len(r.RateLimits) > 0 {
		p.line("")
		r.writeLimits(p)
	}
	if r.Sweep != nil {
		p.line("")
		r.writeSweep(p)
	}
	if len(r.ErrorSamples) > 0 {
		p.line("")
		p.line("First errors:")
		for _, e := range r.ErrorSamples {
			p.line("  %s x%d: %s", e.Class, e.Count, e.Message)
		}
	}
	if p.err != nil {
		return fmt.Errorf("writing summary: %w", p.err)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("writing summary: %w", err)
	}
	return nil
}

// printer remembers the first write error so rendering code stays linear.
type printer struct {
	w   io.Writer
	err error
}

func (p *printer) line(format string, args ...any) {
	if p.err != nil {
		return
	}
	_, p.err = fmt.Fprintf(p.w, format+"\n", args...)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (r *Report) describeLoad() string {
	c := r.Config
	bounds := []string{}
	if c.DurationSeconds > 0 {
		bounds = append(bounds, fmt.Sprintf("for %s", time.Duration(c.DurationSeconds*float64(time.Second))))
	}
	if c.MaxRequests > 0 {
		bounds = append(bounds, fmt.Sprintf("up to %d requests", c.MaxRequests))
	}
	switch c.Mode {
	case ModeClosed:
		return fmt.Sprintf("closed loop, %d workers %s", c.Concurrency, strings.Join(bounds, ", "))
	case ModeSweep:
		return "sweep (report shows the best passing stage)"
	default:
		return fmt.Sprintf("open loop, %s arrivals, %s %s", c.Arrival, describeProfile(c.Profile), strings.Join(bounds, ", "))
	}
}

func describeProfile(segs []ProfileSegment) string {
	if len(segs) == 0 {
		return ""
	}
	if len(segs) == 1 && segs[0].FromPerSecond == segs[0].ToPerSecond {
		return FormatRate(segs[0].FromPerSecond)
	}
	if len(segs) == 1 {
		return fmt.Sprintf("ramp %.2f/s -> %.2f/s over %.0fs", segs[0].FromPerSecond, segs[0].ToPerSecond, segs[0].DurationSeconds)
	}
	last := segs[len(segs)-1]
	return fmt.Sprintf("%d steps %.2f/s -> %.2f/s, %.0fs each", len(segs), segs[0].FromPerSecond, last.ToPerSecond, segs[0].DurationSeconds)
}

func (r *Report) writeCounts(p *printer) {
	q := r.Requests
	p.line("Requests\tsent %d\tcompleted %d\tok %d\tfailed %d\tcanceled %d\tattempts %d", q.Sent, q.Completed, q.Succeeded, q.Failed, q.Canceled, q.Attempts)
	th := r.Throughput
	target := "-"
	if th.TargetPerSecond > 0 {
		target = fmt.Sprintf("%.2f/s", th.TargetPerSecond)
	}
	p.line("Rate\ttarget %s\tsent %.2f/s\tRPM %.0f\tok/min %.0f\t", target, th.SentPerSecond, th.RequestsPerMinute, th.SuccessfulRequestsPerMinute)
	tk := r.Tokens
	p.line("Tokens\tin %d (%.0f/req)\tout %d (%.0f/req)\tITPM %.0f\tOTPM %.0f\tout tok/s %.1f",
		tk.Input+tk.CacheCreation+tk.CacheRead, tk.AvgInputTokens, tk.Output, tk.AvgOutputTokens,
		th.InputTokensPerMinute, th.OutputTokensPerMinute, th.OutputTokensPerSecond)
	c := r.Classes
	p.line("Errors\t429 %d\t529 %d\t5xx %d\t4xx %d\ttransport %d\tstream %d (mid-stream %d)",
		c[ClassRateLimited], c[ClassOverloaded], c[ClassServerError], c[ClassClientError],
		c[ClassTransport], c[ClassStreamError], r.MidStreamErrors)
	if r.RetryAfter.Seen > 0 {
		p.line("Retry-After\tseen %d\tmin %.1fs\tmax %.1fs\t\t\t", r.RetryAfter.Seen, r.RetryAfter.MinSeconds, r.RetryAfter.MaxSeconds)
	}
	pr := r.PerReplicaEquivalent
	p.line("Per replica\t%.1f req/min\t%.0f in tok/min\t%.0f out tok/min\t(mean concurrency %.2f)\t\t",
		pr.RequestsPerMinute, pr.InputTokensPerMinute, pr.OutputTokensPerMinute, pr.MeanConcurrency)
}

func (r *Report) writeLatency(p *printer) {
	p.line("Latency (ms)\tp50\tp90\tp95\tp99\tp99.9\tmax\tcount")
	for _, row := range r.latencyRows() {
		p.line("%s\t%s\t%d", row.Name, strings.Join(row.Cells, "\t"), row.Count)
	}
}

func (r *Report) writeLimits(p *printer) {
	p.line("Rate limit (headers)\tlimit/min\tmin remaining\tachieved/min\tutilization\t\t\t")
	for _, d := range AllDimensions {
		o, ok := r.RateLimits[d]
		if !ok {
			continue
		}
		p.line("%s\t%s\t%s\t%.0f\t%s\t\t\t", d, intOrDash(o.Limit), intOrDash(o.MinRemaining), o.AchievedPerMinute, percentOrDash(o.Utilization, o.Limit))
	}
}

func intOrDash(n int64) string {
	if n < 0 {
		return "-"
	}
	return fmt.Sprint(n)
}

func percentOrDash(u float64, limit int64) string {
	if limit <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", u*100)
}

func (r *Report) writeSweep(p *printer) {
	s := r.Sweep
	p.line("Sweep stage\ttarget/s\tsent/s\tattempts\t429 ratio\tp99 ms\tresult\t")
	for i, st := range s.Stages {
		res := "fail"
		if st.Passed {
			res = "pass"
		}
		p.line("%d\t%.2f\t%.2f\t%d\t%.4f\t%.1f\t%s\t", i+1, st.RatePerSecond, st.SentPerSecond, st.Attempts, st.Ratio429, st.P99Ms, res)
	}
	if s.BestRatePerSecond > 0 {
		p.line("Highest passing rate: %s", FormatRate(s.BestRatePerSecond))
	} else {
		p.line("No stage met the target.")
	}
}

// FormatProgress renders the one-line live status shown on a terminal.
func FormatProgress(p Progress) string {
	return fmt.Sprintf("%6.1fs  sent %d (%.1f/s)  in flight %d  ok %d  429 %d  errors %d  p99 %s",
		p.Elapsed.Seconds(), p.Sent, p.SentPerSecond, p.InFlight, p.OK, p.RateLimited, p.Errors, p.P99.Round(time.Millisecond/10))
}
