package loadtest

import (
	"fmt"
	"math"
	"strings"

	"github.com/claudecap/claudecap/internal/svgchart"
)

// Chart geometry, in SVG user units. The width is the report page's
// content column (max-width 980 px) less the chart's 1 px border on each
// side, so charts fill the column at 1:1 scale and their 11 px labels stay
// 11 px on screen; narrower windows scale the whole chart down.
const (
	chartWidth  = 976
	chartHeight = 260
	plotLeft    = 64
	plotRight   = chartWidth - 16
	plotTop     = 28
	plotBottom  = chartHeight - 36
)

// chart is the geometry of one SVG chart, computed in Go so that the HTML
// template only places elements: no JavaScript, no external library, and
// the page renders offline.
type chart struct {
	ID     string
	Title  string
	YLabel string
	Width  int
	Height int
	Left   float64
	Right  float64
	Top    float64
	Bottom float64
	XTicks []tick
	YTicks []tick
	Lines  []polyline
	Bars   []bar
	Legend []legendItem
	Empty  bool
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
}

type bar struct {
	X, Y, W, H float64
	Color      string
	Title      string
}

type legendItem struct {
	Name  string
	Color string
	X     float64
}

// series is one line of values over the timeline's x positions.
type series struct {
	name   string
	color  string
	ys     []float64
	dashed bool
}

// axes maps data coordinates to the plot area.
type axes struct {
	xMax, yMax float64
}

func (a axes) x(v float64) float64 {
	return plotLeft + (plotRight-plotLeft)*v/a.xMax
}

func (a axes) y(v float64) float64 {
	return plotBottom - (plotBottom-plotTop)*v/a.yMax
}

func newChart(id, title, yLabel string) *chart {
	return &chart{
		ID: id, Title: title, YLabel: yLabel,
		Width: chartWidth, Height: chartHeight,
		Left: plotLeft, Right: plotRight, Top: plotTop, Bottom: plotBottom,
	}
}

// lineChart plots series against xs (seconds since the start).
func lineChart(id, title, yLabel string, xs []float64, xMax float64, lines []series) *chart {
	c := newChart(id, title, yLabel)
	yMax := 0.0
	for _, s := range lines {
		for _, v := range s.ys {
			if !math.IsNaN(v) {
				yMax = math.Max(yMax, v)
			}
		}
	}
	if len(xs) == 0 || yMax <= 0 || xMax <= 0 {
		c.Empty = true
		return c
	}
	a := c.setAxes(xMax, yMax)
	for _, s := range lines {
		for _, seg := range segments(xs, s.ys) {
			c.Lines = append(c.Lines, polyline{Name: s.name, Color: s.color, Points: a.points(seg), Dashed: s.dashed})
		}
		c.addLegend(s.name, s.color)
	}
	return c
}

// dataPoint is one finite value at its x position, in data coordinates.
type dataPoint struct{ x, y float64 }

// segments splits a series at its gaps (NaN: a window without data), so a
// line never bridges a stretch where nothing was measured, such as a run of
// windows in which every request was rejected.
func segments(xs, ys []float64) [][]dataPoint {
	var out [][]dataPoint
	var cur []dataPoint
	for i, v := range ys {
		if i >= len(xs) || math.IsNaN(v) || math.IsInf(v, 0) {
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

// isolatedHalfWidth is half the length of the short dash drawn for a
// segment of one point: a polyline of a single point is invisible.
const isolatedHalfWidth = 3

// points renders one segment as a polyline's points attribute.
func (a axes) points(seg []dataPoint) string {
	if len(seg) == 1 {
		x, y := a.x(seg[0].x), a.y(seg[0].y)
		return svgchart.Point(x-isolatedHalfWidth, y) + " " + svgchart.Point(x+isolatedHalfWidth, y)
	}
	pts := make([]string, 0, len(seg))
	for _, p := range seg {
		pts = append(pts, svgchart.Point(a.x(p.x), a.y(p.y)))
	}
	return strings.Join(pts, " ")
}

// stackedBarChart draws one bar per window, stacked by category.
func stackedBarChart(id, title, yLabel string, starts, widths []float64, xMax float64, stacks []series) *chart {
	c := newChart(id, title, yLabel)
	yMax := 0.0
	for i := range starts {
		total := 0.0
		for _, s := range stacks {
			total += s.ys[i]
		}
		yMax = math.Max(yMax, total)
	}
	if len(starts) == 0 || yMax <= 0 || xMax <= 0 {
		c.Empty = true
		return c
	}
	a := c.setAxes(xMax, yMax)
	for i := range starts {
		base := 0.0
		x0, x1 := a.x(starts[i]), a.x(starts[i]+widths[i])
		w := math.Max(x1-x0-1, 1)
		for _, s := range stacks {
			v := s.ys[i]
			if v <= 0 {
				continue
			}
			top := a.y(base + v)
			c.Bars = append(c.Bars, bar{
				X: svgchart.Round1(x0), Y: svgchart.Round1(top), W: svgchart.Round1(w), H: svgchart.Round1(a.y(base) - top),
				Color: s.color,
				Title: fmt.Sprintf("%s at %.0fs: %s", s.name, starts[i], svgchart.HumanNumber(v)),
			})
			base += v
		}
	}
	for _, s := range stacks {
		c.addLegend(s.name, s.color)
	}
	return c
}

// setAxes picks round tick steps and returns the mapping.
func (c *chart) setAxes(xMax, yMax float64) axes {
	yStep := svgchart.NiceStep(yMax / 4)
	yTop := math.Ceil(yMax*1.05/yStep) * yStep
	a := axes{xMax: xMax, yMax: yTop}
	for v := 0.0; v <= yTop+yStep/2; v += yStep {
		c.YTicks = append(c.YTicks, tick{Pos: svgchart.Round1(a.y(v)), Label: svgchart.HumanNumber(v)})
	}
	xStep := svgchart.NiceStep(xMax / 6)
	for v := 0.0; v <= xMax+xStep/100; v += xStep {
		c.XTicks = append(c.XTicks, tick{Pos: svgchart.Round1(a.x(v)), Label: svgchart.HumanNumber(v) + "s"})
	}
	return a
}

// Legend layout: a swatch, a gap, the name, and space before the next item.
// legendCharWidth over-estimates the average advance of an 11 px sans-serif
// character, so long names push the next item right instead of under it.
const (
	legendSwatch    = 14
	legendSpacing   = 20
	legendCharWidth = 6.5
)

// addLegend places the item after the previous one, spaced by the
// previous name's estimated width rather than a fixed pitch, so that long
// names ("output tok/min", "429 rate limited") never run into the next item.
func (c *chart) addLegend(name, color string) {
	x := float64(plotLeft)
	if n := len(c.Legend); n > 0 {
		prev := c.Legend[n-1]
		x = prev.X + legendWidth(prev.Name) + legendSpacing
	}
	c.Legend = append(c.Legend, legendItem{Name: name, Color: color, X: x})
}

// legendWidth estimates the width of one legend item without its spacing.
func legendWidth(name string) float64 {
	return legendSwatch + legendCharWidth*float64(len([]rune(name)))
}
