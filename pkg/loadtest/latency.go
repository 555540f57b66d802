package loadtest

import (
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram ranges. Values are recorded in microseconds: loopback tests see
// sub-millisecond latencies and long generations take minutes.
const (
	histLowestMicros  = 1
	histHighestMicros = int64(time.Hour / time.Microsecond)
	// summaryDigits keeps 0.1% relative error for the run-wide histograms.
	summaryDigits = 3
	// windowDigits keeps 1% error for per-window histograms, which only
	// feed charts; it makes each one about eight times smaller.
	windowDigits = 2
)

func newLatencyHistogram(digits int) *hdrhistogram.Histogram {
	return hdrhistogram.New(histLowestMicros, histHighestMicros, digits)
}

// recordDuration records d, clamped into the histogram's range so that a
// clock oddity or an hour-long stall is counted rather than dropped.
func recordDuration(h *hdrhistogram.Histogram, d time.Duration) {
	us := d.Microseconds()
	us = max(us, histLowestMicros)
	us = min(us, histHighestMicros)
	_ = h.RecordValue(us) // Cannot fail: the value is clamped into range.
}

// Percentiles summarizes one latency distribution in milliseconds.
type Percentiles struct {
	// Count is the number of values recorded.
	Count int64 `json:"count"`
	// MeanMs is the arithmetic mean.
	MeanMs float64 `json:"meanMs"`
	// P50Ms .. P999Ms are the 50th to 99.9th percentiles.
	P50Ms  float64 `json:"p50Ms"`
	P90Ms  float64 `json:"p90Ms"`
	P95Ms  float64 `json:"p95Ms"`
	P99Ms  float64 `json:"p99Ms"`
	P999Ms float64 `json:"p999Ms"`
	// MaxMs is the largest value recorded.
	MaxMs float64 `json:"maxMs"`
}

func microsToMs(us int64) float64 { return float64(us) / 1000 }

// summarize reads the percentiles out of h; an empty histogram gives zeros.
func summarize(h *hdrhistogram.Histogram) Percentiles {
	if h.TotalCount() == 0 {
		return Percentiles{}
	}
	return Percentiles{
		Count:  h.TotalCount(),
		MeanMs: h.Mean() / 1000,
		P50Ms:  microsToMs(h.ValueAtQuantile(50)),
		P90Ms:  microsToMs(h.ValueAtQuantile(90)),
		P95Ms:  microsToMs(h.ValueAtQuantile(95)),
		P99Ms:  microsToMs(h.ValueAtQuantile(99)),
		P999Ms: microsToMs(h.ValueAtQuantile(99.9)),
		MaxMs:  microsToMs(h.Max()),
	}
}
