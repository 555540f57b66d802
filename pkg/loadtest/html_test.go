package loadtest

import (
	"bytes"
	"encoding/xml"
	"math"
	"regexp"
	"strings"
	"testing"

	"github.com/claudecap/claudecap/pkg/dimension"
)

func TestHTMLReportHasInlineCharts(t *testing.T) {
	r := sampleReport(t)
	var buf bytes.Buffer
	if err := r.WriteHTML(&buf); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	for _, id := range []string{"latency", "requests", "tokens", "status"} {
		if !strings.Contains(page, `<svg id="chart-`+id+`"`) {
			t.Errorf("chart %s missing", id)
		}
	}
	// Lines carry data points, the status chart has bars, and the RPM
	// limit from the headers is drawn dashed.
	points := regexp.MustCompile(`points="([0-9.]+,[0-9.]+ ?){3,}"`)
	if n := len(points.FindAllString(page, -1)); n < 4 {
		t.Errorf("found %d polylines with data, want at least 4 (p50, p90, p99, requests)", n)
	}
	if !strings.Contains(page, `<rect x=`) || !strings.Contains(page, `fill="#ef6c00"`) {
		t.Error("status chart lacks bars for ok and 429")
	}
	if !strings.Contains(page, `stroke-dasharray`) || !strings.Contains(page, "RPM limit (dashed)") {
		t.Error("the RPM limit line, or its legend saying it is dashed, is missing")
	}
	if !strings.Contains(page, ">429 rate limited</text>") {
		t.Error("the status chart's legend must name the 429s by status code")
	}
	// Self-contained: no scripts, no external fetches.
	for _, banned := range []string{"<script", "src=", "href=", "@import", "url("} {
		if strings.Contains(page, banned) {
			t.Errorf("report must be self-contained but contains %q", banned)
		}
	}
	if strings.Count(page, "http://") != strings.Count(page, "http://www.w3.org/2000/svg")+strings.Count(page, "http://127.0.0.1:1") {
		t.Error("report references an external URL")
	}
	// Every SVG is well-formed XML, so browsers render it.
	svg := regexp.MustCompile(`(?s)<svg .*?</svg>`)
	for _, s := range svg.FindAllString(page, -1) {
		if err := xml.Unmarshal([]byte(s), new(struct{})); err != nil {
			t.Errorf("SVG is not well-formed: %v\n%s", err, s[:min(len(s), 300)])
		}
	}
}

func TestHTMLReportWithoutData(t *testing.T) {
	r := NewCollector(sampleReport(t).StartedAt).Report(sampleReport(t).StartedAt, RunConfig{Mode: ModeClosed, Concurrency: 1}, StopInterrupted)
	var buf bytes.Buffer
	if err := r.WriteHTML(&buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "no data") || !strings.Contains(buf.String(), "interrupted") {
		t.Error("an empty interrupted run must render placeholders and say it was interrupted")
	}
}

func TestSummaryMentionsKeyNumbers(t *testing.T) {
	r := sampleReport(t)
	var buf bytes.Buffer
	if err := r.WriteSummary(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"open loop", "429 4", "end-to-end", "time to first token", "requests", "Per replica"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
}

// Windows without a successful request have no latency; the chart breaks
// the line there instead of bridging the gap (or poisoning its scale with
// NaN), and a lone point still shows as a short dash.
func TestLineChartBreaksAtGaps(t *testing.T) {
	nan := math.NaN()
	c := lineChart("x", "t", "ms", []float64{0.5, 1.5, 2.5, 3.5}, 4, []series{{name: "p99", color: "#000", ys: []float64{10, nan, 30, 20}}})
	if c.Empty || len(c.Lines) != 2 || len(c.Legend) != 1 {
		t.Fatalf("chart %+v, want two segments under one legend item", c)
	}
	for _, l := range c.Lines {
		if strings.Contains(l.Points, "NaN") {
			t.Fatalf("points %q contain NaN", l.Points)
		}
	}
	lone := strings.Fields(c.Lines[0].Points)
	if len(lone) != 2 || lone[0] == lone[1] {
		t.Fatalf("lone point drawn as %q, want a visible two-point dash", c.Lines[0].Points)
	}
	if pts := strings.Fields(c.Lines[1].Points); len(pts) != 2 {
		t.Fatalf("second segment %q, want the two points after the gap", c.Lines[1].Points)
	}
	if len(c.YTicks) == 0 || c.YTicks[len(c.YTicks)-1].Label != "40" {
		t.Fatalf("y ticks %+v, want a round top at 40", c.YTicks)
	}
}

// The status chart with every class present has the longest legend; its
// items, like those of every chart of a report with all three limits, must
// neither overlap nor run past the chart's right edge, and every tick stays
// inside the drawing.
func TestChartLabelsStayInside(t *testing.T) {
	stacks := make([]series, 0, len(AllClasses))
	for _, c := range AllClasses {
		stacks = append(stacks, series{name: classLabels[c], color: classColors[c], ys: []float64{1, 2}})
	}
	assertLabelsInside(t, stackedBarChart("status", "t", "req/s", []float64{0, 1}, []float64{1, 1}, 2, stacks))
	r := sampleReport(t)
	for _, d := range []Dimension{DimensionOf(dimension.Requests), DimensionOf(dimension.InputTokens), DimensionOf(dimension.OutputTokens)} {
		r.RateLimits[d] = LimitObservation{Limit: 1000}
	}
	for _, c := range r.charts() {
		assertLabelsInside(t, c)
	}
}

func assertLabelsInside(t *testing.T, c *chart) {
	t.Helper()
	if len(c.Legend) == 0 {
		t.Errorf("chart %s has no legend", c.ID)
	}
	for i, it := range c.Legend {
		end := it.X + legendWidth(it.Name)
		if end > float64(c.Width) {
			t.Errorf("chart %s: legend item %q ends at %.0f, past the chart width %d", c.ID, it.Name, end, c.Width)
		}
		if i > 0 {
			prev := c.Legend[i-1]
			if prevEnd := prev.X + legendWidth(prev.Name); it.X <= prevEnd {
				t.Errorf("chart %s: legend item %q at %.0f overlaps %q ending at %.0f", c.ID, it.Name, it.X, prev.Name, prevEnd)
			}
		}
	}
	for _, tk := range append(append([]tick{}, c.XTicks...), c.YTicks...) {
		if tk.Pos < 0 || tk.Pos > float64(c.Width) {
			t.Errorf("chart %s: tick %q at %.1f lies outside the chart", c.ID, tk.Label, tk.Pos)
		}
	}
}

// One-second windows hold a handful of requests each, so the per-minute
// lines are trailing means: a steady 1 request/s that completes in bursts of
// two every other second reads as a flat 60/min, not 0 and 120 in turn.
func TestRateLinesAreTrailingMeans(t *testing.T) {
	tl := make([]TimelineWindow, 20)
	for i := range tl {
		tl[i] = TimelineWindow{StartSeconds: float64(i), WidthSeconds: 1, Attempts: int64(2 * (i % 2))}
	}
	rpm := perMinuteTrailing(tl, func(w TimelineWindow) int64 { return w.Attempts })
	for i := 9; i < len(rpm); i++ {
		if rpm[i] != 60 {
			t.Errorf("window %d: %.1f requests/min, want 60", i, rpm[i])
		}
	}
	if rpm[0] != 0 || rpm[1] != 60 {
		t.Errorf("first windows %.1f, %.1f: want the mean over what has elapsed (0, 60)", rpm[0], rpm[1])
	}
	if got := smoothingSuffix(tl, 10); !strings.Contains(got, "10s mean") {
		t.Errorf("legend suffix %q must say the line is a 10 s mean", got)
	}
	// Long runs have wide windows already; they are not averaged again.
	wide := []TimelineWindow{{StartSeconds: 0, WidthSeconds: 16, Attempts: 8}, {StartSeconds: 16, WidthSeconds: 16, Attempts: 32}}
	if got := perMinuteTrailing(wide, func(w TimelineWindow) int64 { return w.Attempts }); got[0] != 30 || got[1] != 120 {
		t.Errorf("16 s windows: %v, want [30 120] requests/min", got)
	}
	if got := smoothingSuffix(wide, 10); got != "" {
		t.Errorf("legend suffix %q for unsmoothed windows, want none", got)
	}
}
