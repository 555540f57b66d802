package loadtest

import (
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// maxWindows bounds the timeline's memory: when a run outlives maxWindows
// windows, adjacent windows merge and the width doubles. A one-hour run thus
// keeps at most maxWindows histograms, and charts keep a readable density.
const maxWindows = 240

// window aggregates the requests that finished within one time slice.
type window struct {
	completed    int64
	attempts     int64
	classes      map[Class]int64
	inputTokens  int64
	outputTokens int64
	e2e          *hdrhistogram.Histogram
}

func newWindow() *window {
	return &window{classes: map[Class]int64{}, e2e: newLatencyHistogram(windowDigits)}
}

func (w *window) merge(o *window) {
	w.completed += o.completed
	w.attempts += o.attempts
	for c, n := range o.classes {
		w.classes[c] += n
	}
	w.inputTokens += o.inputTokens
	w.outputTokens += o.outputTokens
	w.e2e.Merge(o.e2e)
}

// timeline buckets samples by completion time since the run started.
type timeline struct {
	width   time.Duration
	windows []*window
}

func newTimeline() *timeline {
	return &timeline{width: time.Second}
}

// at returns the window holding offset, compacting as needed.
func (t *timeline) at(offset time.Duration) *window {
	offset = max(offset, 0)
	idx := int(offset / t.width)
	for idx >= maxWindows {
		t.compact()
		idx = int(offset / t.width)
	}
	for len(t.windows) <= idx {
		t.windows = append(t.windows, newWindow())
	}
	return t.windows[idx]
}

// compact merges pairs of windows and doubles the width.
func (t *timeline) compact() {
	merged := make([]*window, 0, (len(t.windows)+1)/2)
	for i := 0; i < len(t.windows); i += 2 {
		w := t.windows[i]
		if i+1 < len(t.windows) {
			w.merge(t.windows[i+1])
		}
		merged = append(merged, w)
	}
	t.windows = merged
	t.width *= 2
}

func (t *timeline) record(offset time.Duration, s *Sample, e2e time.Duration) {
	w := t.at(offset)
	w.completed++
	w.attempts += int64(len(s.Attempts))
	w.classes[s.Class]++
	w.inputTokens += s.Usage.InputTokens + s.Usage.CacheCreationInputTokens
	w.outputTokens += s.Usage.OutputTokens
	if s.Class == ClassOK {
		recordDuration(w.e2e, e2e)
	}
}

// TimelineWindow is one slice of the run in the report: what finished
// between StartSeconds and StartSeconds+WidthSeconds.
type TimelineWindow struct {
	// StartSeconds is the window's start, in seconds since the run began.
	StartSeconds float64 `json:"startSeconds"`
	// WidthSeconds is the window's length.
	WidthSeconds float64 `json:"widthSeconds"`
	// Completed counts logical requests that finished in the window.
	Completed int64 `json:"completed"`
	// Attempts counts HTTP attempts of those requests.
	Attempts int64 `json:"attempts"`
	// Classes counts requests by final class; only non-zero classes appear.
	Classes map[Class]int64 `json:"classes"`
	// InputTokens counts input plus cache-creation tokens (what ITPM meters).
	InputTokens int64 `json:"inputTokens"`
	// OutputTokens counts output tokens.
	OutputTokens int64 `json:"outputTokens"`
	// EndToEnd holds latency percentiles of the window's successful requests.
	EndToEnd Percentiles `json:"endToEnd"`
}

func (t *timeline) export() []TimelineWindow {
	out := make([]TimelineWindow, 0, len(t.windows))
	for i, w := range t.windows {
		classes := make(map[Class]int64, len(w.classes))
		for c, n := range w.classes {
			if n > 0 {
				classes[c] = n
			}
		}
		out = append(out, TimelineWindow{
			StartSeconds: (time.Duration(i) * t.width).Seconds(),
			WidthSeconds: t.width.Seconds(),
			Completed:    w.completed,
			Attempts:     w.attempts,
			Classes:      classes,
			InputTokens:  w.inputTokens,
			OutputTokens: w.outputTokens,
			EndToEnd:     summarize(w.e2e),
		})
	}
	return out
}
