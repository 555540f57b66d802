package loadtest

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"math"
	"time"

	"github.com/claudecap/claudecap/pkg/dimension"
)

//go:embed report.html.tmpl
var reportTemplateText string

var reportTemplate = template.Must(template.New("report").Parse(reportTemplateText))

// classColors gives each class a fixed color in every chart.
var classColors = map[Class]string{
	ClassOK:          "#2e7d32",
	ClassRateLimited: "#ef6c00",
	ClassOverloaded:  "#6a1b9a",
	ClassServerError: "#c62828",
	ClassClientError: "#795548",
	ClassTransport:   "#455a64",
	ClassStreamError: "#ad1457",
	ClassCanceled:    "#bdbdbd",
}

// classLabels names each class in chart legends and tooltips with the
// status code an operator looks for, so the 429s stand out by name as well
// as by color. The labels are short enough for all eight to fit in one
// legend row.
var classLabels = map[Class]string{
	ClassOK:          "ok",
	ClassRateLimited: "429 rate limited",
	ClassOverloaded:  "529 overloaded",
	ClassServerError: "5xx server error",
	ClassClientError: "4xx client error",
	ClassTransport:   "transport error",
	ClassStreamError: "stream error",
	ClassCanceled:    "canceled",
}

// rateSmoothingSeconds is the span of the trailing mean behind the
// per-minute rate lines. Runs up to four minutes have one-second windows,
// and at three requests a second a window holds anywhere from 0 to 9
// completions, which times 60 swings between 0 and 540 per minute around a
// steady 180; the mean over ten seconds shows the trend against the limit,
// which Anthropic meters over a minute anyway.
const rateSmoothingSeconds = 10.0

// htmlPage is what the template renders.
type htmlPage struct {
	Title     string
	Generated string
	Report    *Report
	Headline  []headlineItem
	Charts    []*chart
	Latency   []latencyRow
	Summary   string
}

type latencyRow struct {
	Name  string
	Cells []string
	Count int64
}

type headlineItem struct {
	Label string
	Value string
}

// WriteHTML renders the report as one self-contained HTML page: inline CSS
// and inline SVG charts drawn here in Go, no scripts and no network
// fetches, so it opens offline and can be attached to a ticket.
func (r *Report) WriteHTML(w io.Writer) error {
	var summary bytes.Buffer
	if err := r.WriteSummary(&summary); err != nil {
		return err
	}
	page := htmlPage{
		Title:     "claudecap load test " + r.StartedAt.Format(time.RFC3339),
		Generated: r.StartedAt.Format(time.RFC1123),
		Report:    r,
		Headline:  r.headline(),
		Charts:    r.charts(),
		Latency:   r.latencyRows(),
		Summary:   summary.String(),
	}
	if err := reportTemplate.Execute(w, page); err != nil {
		return fmt.Errorf("rendering HTML report: %w", err)
	}
	return nil
}

func (r *Report) headline() []headlineItem {
	items := []headlineItem{
		{"Load", r.describeLoad()},
		{"Sent", fmt.Sprintf("%d requests at %.2f/s", r.Requests.Sent, r.Throughput.SentPerSecond)},
		{"Succeeded", fmt.Sprintf("%d of %d", r.Requests.Succeeded, r.Requests.Completed)},
		{"429 / 529 / 5xx", fmt.Sprintf("%d / %d / %d", r.Classes[ClassRateLimited], r.Classes[ClassOverloaded], r.Classes[ClassServerError])},
		{"End-to-end p99", fmt.Sprintf("%.1f ms", r.Latency.EndToEnd.P99Ms)},
		{"Requests/min", fmt.Sprintf("%.0f", r.Throughput.RequestsPerMinute)},
		{"Output tokens/s", fmt.Sprintf("%.1f", r.Throughput.OutputTokensPerSecond)},
	}
	if r.Latency.TimeToFirstToken.Count > 0 {
		items = append(items, headlineItem{"TTFT p99", fmt.Sprintf("%.1f ms", r.Latency.TimeToFirstToken.P99Ms)})
	}
	if r.Interrupted {
		items = append(items, headlineItem{"Status", "interrupted: partial report"})
	}
	return items
}

func (r *Report) latencyRows() []latencyRow {
	rows := []struct {
		name string
		p    Percentiles
	}{
		{"end-to-end", r.Latency.EndToEnd},
		{"time to first token", r.Latency.TimeToFirstToken},
		{"inter-token", r.Latency.InterToken},
		{"service time", r.Latency.ServiceTime},
		{"schedule lag", r.Latency.ScheduleLag},
	}
	out := make([]latencyRow, 0, len(rows))
	for _, row := range rows {
		if row.p.Count == 0 {
			continue
		}
		p := row.p
		cells := make([]string, 0, 6)
		for _, v := range []float64{p.P50Ms, p.P90Ms, p.P95Ms, p.P99Ms, p.P999Ms, p.MaxMs} {
			cells = append(cells, fmt.Sprintf("%.2f", v))
		}
		out = append(out, latencyRow{Name: row.name, Cells: cells, Count: p.Count})
	}
	return out
}

// charts builds the four charts from the timeline.
func (r *Report) charts() []*chart {
	n := len(r.Timeline)
	mids := make([]float64, n)
	starts := make([]float64, n)
	widths := make([]float64, n)
	p50, p90, p99 := make([]float64, n), make([]float64, n), make([]float64, n)
	xMax := r.DurationSeconds
	for i, w := range r.Timeline {
		starts[i], widths[i] = w.StartSeconds, w.WidthSeconds
		mids[i] = w.StartSeconds + w.WidthSeconds/2
		xMax = math.Max(xMax, w.StartSeconds+w.WidthSeconds)
		if w.EndToEnd.Count > 0 {
			p50[i], p90[i], p99[i] = w.EndToEnd.P50Ms, w.EndToEnd.P90Ms, w.EndToEnd.P99Ms
		} else {
			p50[i], p90[i], p99[i] = math.NaN(), math.NaN(), math.NaN()
		}
	}
	rpm := perMinuteTrailing(r.Timeline, func(w TimelineWindow) int64 { return w.Attempts })
	itpm := perMinuteTrailing(r.Timeline, func(w TimelineWindow) int64 { return w.InputTokens })
	otpm := perMinuteTrailing(r.Timeline, func(w TimelineWindow) int64 { return w.OutputTokens })
	mean := smoothingSuffix(r.Timeline, rateSmoothingSeconds)
	latency := lineChart("latency", "End-to-end latency percentiles over time", "ms", mids, xMax, []series{
		{name: "p50", color: "#1565c0", ys: p50},
		{name: "p90", color: "#f9a825", ys: p90},
		{name: "p99", color: "#c62828", ys: p99},
	})
	reqLines := []series{{name: "requests/min" + mean, color: "#1565c0", ys: rpm}}
	reqLines = r.appendLimit(reqLines, DimensionOf(dimension.Requests), "RPM limit", "#1565c0", n)
	requests := lineChart("requests", "Requests per minute vs the limit in the headers", "req/min", mids, xMax, reqLines)
	tokLines := []series{
		{name: "input tok/min" + mean, color: "#00838f", ys: itpm},
		{name: "output tok/min" + mean, color: "#8e24aa", ys: otpm},
	}
	tokLines = r.appendLimit(tokLines, DimensionOf(dimension.InputTokens), "ITPM limit", "#00838f", n)
	tokLines = r.appendLimit(tokLines, DimensionOf(dimension.OutputTokens), "OTPM limit", "#8e24aa", n)
	tokens := lineChart("tokens", "Tokens per minute vs the limits in the headers", "tok/min", mids, xMax, tokLines)

	stacks := make([]series, 0, len(AllClasses))
	for _, c := range AllClasses {
		ys := make([]float64, n)
		seen := false
		for i, w := range r.Timeline {
			ys[i] = float64(w.Classes[c]) / w.WidthSeconds
			seen = seen || ys[i] > 0
		}
		if seen {
			stacks = append(stacks, series{name: classLabels[c], color: classColors[c], ys: ys})
		}
	}
	status := stackedBarChart("status", "Results per second by class", "req/s", starts, widths, xMax, stacks)
	return []*chart{latency, requests, tokens, status}
}

// perMinuteTrailing turns the count of each window into a per-minute rate,
// averaged over the windows that ended within span seconds of that window's
// end (at least the window itself, so wide windows of long runs are not
// smoothed twice).
func perMinuteTrailing(tl []TimelineWindow, count func(TimelineWindow) int64) []float64 {
	const span = rateSmoothingSeconds
	out := make([]float64, len(tl))
	for i, w := range tl {
		end := w.StartSeconds + w.WidthSeconds
		var total int64
		var seconds float64
		for j := i; j >= 0 && (j == i || tl[j].StartSeconds >= end-span); j-- {
			total += count(tl[j])
			seconds += tl[j].WidthSeconds
		}
		if seconds > 0 {
			out[i] = float64(total) * 60 / seconds
		}
	}
	return out
}

// smoothingSuffix tells in the legend that a rate line is a trailing mean,
// when its windows are narrower than the span it averages over.
func smoothingSuffix(tl []TimelineWindow, span float64) string {
	if len(tl) == 0 || tl[0].WidthSeconds >= span {
		return ""
	}
	return fmt.Sprintf(" (%gs mean)", span)
}

// appendLimit adds a dashed horizontal line at the dimension's limit when
// the headers reported one. The line shares its rate's color, and the
// legend, whose swatches are plain squares, says "dashed" to tell them apart.
func (r *Report) appendLimit(lines []series, d Dimension, name, color string, n int) []series {
	obs, ok := r.RateLimits[d]
	if !ok || obs.Limit <= 0 || n == 0 {
		return lines
	}
	ys := make([]float64, n)
	for i := range ys {
		ys[i] = float64(obs.Limit)
	}
	return append(lines, series{name: name + " (dashed)", color: color, ys: ys, dashed: true})
}
