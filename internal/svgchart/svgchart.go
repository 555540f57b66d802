// Package svgchart holds the number formatting the project's hand-drawn SVG charts share:
// the load test's report (pkg/loadtest) and the scenario lab's (hack/bench/closedloop).
package svgchart

import (
	"math"
	"strconv"
)

// NiceStep rounds raw up to 1, 2 or 5 times a power of ten: an axis tick step.
func NiceStep(raw float64) float64 {
	if raw <= 0 || math.IsNaN(raw) || math.IsInf(raw, 0) {
		return 1
	}
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	switch f := raw / mag; {
	case f <= 1:
		return mag
	case f <= 2:
		return 2 * mag
	case f <= 5:
		return 5 * mag
	default:
		return 10 * mag
	}
}

// HumanNumber prints 1500 as 1.5k and 2000000 as 2M.
func HumanNumber(v float64) string {
	abs := math.Abs(v)
	switch {
	case abs >= 1e6:
		return TrimFloat(v/1e6) + "M"
	case abs >= 1e3:
		return TrimFloat(v/1e3) + "k"
	default:
		return TrimFloat(v)
	}
}

// TrimFloat prints v with at most two decimals and no trailing zeros.
func TrimFloat(v float64) string {
	return strconv.FormatFloat(math.Round(v*100)/100, 'f', -1, 64)
}

// Round1 rounds a coordinate to one decimal, which is all an SVG path needs.
func Round1(v float64) float64 { return math.Round(v*10) / 10 }

// Point writes an SVG "x,y" pair rounded to one decimal.
func Point(x, y float64) string {
	return strconv.FormatFloat(Round1(x), 'f', -1, 64) + "," + strconv.FormatFloat(Round1(y), 'f', -1, 64)
}
