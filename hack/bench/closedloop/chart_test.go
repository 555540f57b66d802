package closedloop

import (
	"fmt"
	"math"
	"strings"

	"github.com/claudecap/claudecap/internal/svgchart"
)

// One SVG per scenario, three panels over a shared time axis: replicas, queue, and the
// binding dimension's usage against its limit and budget. Drawn in Go as pkg/loadtest's
// report draws its charts (same geometry, colors, ticks and legend), so the page needs no
// script and opens offline.
const (
	chartWidth   = 976
	plotLeft     = 64
	plotRight    = chartWidth - 16
	panelHeight  = 92
	panelGap     = 40 // room for the next panel's legend
	chartTop     = 44 // the title row and the first legend
	xLabelHeight = 30
)

// Colors shared with pkg/loadtest's charts where the meaning matches.
const (
	colorSpec     = "#1565c0"
	colorReady    = "#64b5f6"
	colorBacklog  = "#ef6c00"
	colorInFlight = "#8d6e63"
	colorUsage    = "#8e24aa"
	colorMean     = "#ce93d8"
	colorLimit    = "#c62828"
	colorBudget   = "#2e7d32"
	colorEnforced = "#81c784"
	colorExternal = "#455a64"
	colorMark     = "#9e9e9e"
	colorScaled   = "#1565c0"
)

type scenarioChart struct {
	ID     string
	Title  string
	Width  int
	Height int
	Left   float64
	Right  float64
	// Bottom is the shared x axis's y, below the last panel.
	Bottom float64
	XTicks []tick
	Panels []*panel
	Marks  []markLine
	Scaled []scaledDot
	Empty  bool
}

type panel struct {
	Label   string
	Top     float64
	Bottom  float64
	LegendY float64
	YTicks  []tick
	Lines   []polyline
	Legend  []legendItem
	yMax    float64
}

type tick struct {
	Pos   float64
	Label string
}

type polyline struct {
	Name   string
	Color  string
	Points string
	Dashed bool
	Width  float64
}

type legendItem struct {
	Name  string
	Color string
	X     float64
}

type markLine struct {
	X      float64
	Label  string
	LabelY float64
}

type scaledDot struct {
	X, Y  float64
	Title string
}

// line is one series of values at the samples' times.
type line struct {
	name   string
	color  string
	ys     []float64
	dashed bool
	step   bool
	width  float64
}

// chartFor draws one run.
func chartFor(r *runRecord) *scenarioChart {
	c := &scenarioChart{ID: r.Name, Title: r.Name + ": " + r.Title, Width: chartWidth, Left: plotLeft, Right: plotRight}
	n := len(r.Samples)
	if n < 2 {
		c.Empty, c.Height, c.Bottom = true, 60, 40
		return c
	}
	xs := make([]float64, n)
	for i, s := range r.Samples {
		xs[i] = s.T
	}
	xMax := math.Max(xs[n-1], 1)
	var replicas, queue []line
	multi := len(r.Workloads) > 1
	for w, name := range r.Workloads {
		suffix := ""
		if multi {
			suffix = " " + name
		}
		spec, ready := make([]float64, n), make([]float64, n)
		backlog, inflight := make([]float64, n), make([]float64, n)
		for i, s := range r.Samples {
			spec[i], ready[i] = float64(s.W[w].Spec), float64(s.W[w].Ready)
			backlog[i], inflight[i] = known(s.W[w].Backlog), known(s.W[w].InFlight)
		}
		specColor, readyColor, backlogColor := colorSpec, colorReady, colorBacklog
		if w == 1 {
			specColor, readyColor, backlogColor = "#00838f", "#80deea", "#f9a825"
		}
		replicas = append(replicas,
			line{name: "spec.replicas" + suffix, color: specColor, ys: spec, step: true},
			line{name: "ready" + suffix, color: readyColor, ys: ready, step: true, dashed: true})
		queue = append(queue, line{name: "queued" + suffix, color: backlogColor, ys: backlog})
		if !multi {
			queue = append(queue, line{name: "in flight", color: colorInFlight, ys: inflight, width: 1.5})
		}
	}
	d := r.World.Binding
	usage, mean, limit, budget, enforced := make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)
	var external []float64
	if r.World.ExternalOTPM > 0 {
		external = make([]float64, n)
	}
	for i, s := range r.Samples {
		usage[i] = math.NaN()
		if s.Mock.OK {
			usage[i] = float64(s.Mock.LastMinute[d])
		}
		mean[i] = trailingRate(r.Samples, i, d, 10)
		limit[i] = r.World.Limits[d]
		budget[i] = r.World.Budget[d]
		enforced[i] = math.NaN()
		if s.Enforced[d] > 0 {
			enforced[i] = float64(s.Enforced[d])
		}
		if external != nil {
			external[i] = externalRate(r.Samples, s.T)
			budget[i] = math.Max(0, budget[i]-external[i])
		}
	}
	unit := []string{"req/min", "input tok/min", "output tok/min"}[d]
	usageLines := []line{
		{name: unit + " (mock, sliding 60 s)", color: colorUsage, ys: usage},
		{name: "10 s mean", color: colorMean, ys: mean, width: 1.5},
		{name: "limit", color: colorLimit, ys: limit, dashed: true},
		{name: "pool budget", color: colorBudget, ys: budget, dashed: true},
		{name: "budget the limiters enforce", color: colorEnforced, ys: enforced, step: true, width: 1.5},
	}
	if external != nil {
		usageLines = append(usageLines, line{name: "external client", color: colorExternal, ys: external, width: 1.5})
	}

	top := float64(chartTop)
	for _, p := range []struct {
		label string
		lines []line
	}{{"replicas", replicas}, {"jobs", queue}, {unit, usageLines}} {
		c.Panels = append(c.Panels, newPanel(p.label, top, xs, xMax, p.lines))
		top += panelHeight + panelGap
	}
	c.Bottom = c.Panels[len(c.Panels)-1].Bottom
	c.Height = int(c.Bottom) + xLabelHeight
	xStep := svgchart.NiceStep(xMax / 8)
	for v := 0.0; v <= xMax+xStep/100; v += xStep {
		c.XTicks = append(c.XTicks, tick{Pos: svgchart.Round1(xPos(v, xMax)), Label: svgchart.HumanNumber(v) + "s"})
	}
	first := c.Panels[0]
	for i, m := range r.Marks {
		if m.T < 0 || m.T > xMax {
			continue
		}
		// Alternate label rows so marks close in time stay readable.
		c.Marks = append(c.Marks, markLine{X: svgchart.Round1(xPos(m.T, xMax)), Label: m.Label, LabelY: first.Top + 10 + float64(i%2)*12})
	}
	for _, e := range r.Events {
		if e.Reason != "Scaled" || e.T < 0 || e.T > xMax {
			continue
		}
		c.Scaled = append(c.Scaled, scaledDot{X: svgchart.Round1(xPos(e.T, xMax)), Y: first.Bottom - 3,
			Title: fmt.Sprintf("%.1fs %s", e.T, e.Message)})
	}
	return c
}

// known turns the -1 of an unanswered Redis read into a gap.
func known(v int64) float64 {
	if v < 0 {
		return math.NaN()
	}
	return float64(v)
}

// trailingRate is the mock's usage in dimension d over the span seconds before sample i,
// per minute.
func trailingRate(samples []sample, i, d int, span float64) float64 {
	cur := samples[i]
	j := i
	for j > 0 && samples[j-1].T >= cur.T-span && samples[j-1].Mock.OK {
		j--
	}
	if j == i || !cur.Mock.OK {
		return math.NaN()
	}
	return usedBetween(samples[j].Mock, cur.Mock, d) * 60 / (cur.T - samples[j].T)
}

func xPos(v, xMax float64) float64 { return plotLeft + (plotRight-plotLeft)*v/xMax }

func newPanel(label string, top float64, xs []float64, xMax float64, lines []line) *panel {
	p := &panel{Label: label, Top: top, Bottom: top + panelHeight, LegendY: top - 8}
	for _, l := range lines {
		for _, v := range l.ys {
			if !math.IsNaN(v) {
				p.yMax = math.Max(p.yMax, v)
			}
		}
	}
	if p.yMax <= 0 {
		p.yMax = 1
	}
	yStep := svgchart.NiceStep(p.yMax / 3)
	p.yMax = math.Ceil(p.yMax*1.05/yStep) * yStep
	for v := 0.0; v <= p.yMax+yStep/2; v += yStep {
		p.YTicks = append(p.YTicks, tick{Pos: svgchart.Round1(p.y(v)), Label: svgchart.HumanNumber(v)})
	}
	x := float64(plotLeft)
	for _, l := range lines {
		width := l.width
		if width == 0 {
			width = 2
		}
		for _, seg := range segments(xs, l.ys) {
			p.Lines = append(p.Lines, polyline{Name: l.name, Color: l.color, Dashed: l.dashed, Width: width,
				Points: p.points(seg, xMax, l.step)})
		}
		p.Legend = append(p.Legend, legendItem{Name: l.name, Color: l.color, X: x})
		x += legendSwatch + legendCharWidth*float64(len([]rune(l.name))) + legendSpacing
	}
	return p
}

func (p *panel) y(v float64) float64 { return p.Bottom - (p.Bottom-p.Top)*v/p.yMax }

type dataPoint struct{ x, y float64 }

// segments splits a series at its gaps so a line never bridges a stretch without data.
func segments(xs, ys []float64) [][]dataPoint {
	var out [][]dataPoint
	var cur []dataPoint
	for i, v := range ys {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			if len(cur) > 0 {
				out = append(out, cur)
			}
			cur = nil
			continue
		}
		cur = append(cur, dataPoint{xs[i], v})
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// points renders a segment; a step line holds each value until the next sample.
func (p *panel) points(seg []dataPoint, xMax float64, step bool) string {
	pts := make([]string, 0, 2*len(seg))
	for i, d := range seg {
		if step && i > 0 {
			pts = append(pts, svgchart.Point(xPos(d.x, xMax), p.y(seg[i-1].y)))
		}
		pts = append(pts, svgchart.Point(xPos(d.x, xMax), p.y(d.y)))
	}
	if len(seg) == 1 {
		x, y := xPos(seg[0].x, xMax), p.y(seg[0].y)
		return svgchart.Point(x-3, y) + " " + svgchart.Point(x+3, y)
	}
	return strings.Join(pts, " ")
}

// Legend layout as in pkg/loadtest: a swatch, a gap, the name, and space before the next.
const (
	legendSwatch    = 14
	legendSpacing   = 20
	legendCharWidth = 6.5
)
