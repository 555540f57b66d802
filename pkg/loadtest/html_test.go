package loadtest

import (
	"bytes"
	"encoding/xml"
	"math"
	"regexp"
	"strings"
	"testing"
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
	if !strings.Contains(page, `stroke-dasharray`) || !strings.Contains(page, "RPM limit") {
		t.Error("the RPM limit line is missing")
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

// Windows without a successful request have no latency; the chart skips
// them instead of poisoning its scale with NaN.
func TestLineChartSkipsGaps(t *testing.T) {
	nan := math.NaN()
	c := lineChart("x", "t", "ms", []float64{0.5, 1.5, 2.5}, 3, []series{{name: "p99", color: "#000", ys: []float64{10, nan, 30}}})
	if c.Empty || len(c.Lines) != 1 {
		t.Fatalf("chart %+v", c)
	}
	if pts := strings.Fields(c.Lines[0].Points); len(pts) != 2 || strings.Contains(c.Lines[0].Points, "NaN") {
		t.Fatalf("points %q, want two finite points", c.Lines[0].Points)
	}
	if len(c.YTicks) == 0 || c.YTicks[len(c.YTicks)-1].Label != "40" {
		t.Fatalf("y ticks %+v, want a round top at 40", c.YTicks)
	}
}
