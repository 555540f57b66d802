package svgchart

import (
	"math"
	"testing"
)

func TestNiceStep(t *testing.T) {
	for raw, want := range map[float64]float64{0.3: 0.5, 1: 1, 1.5: 2, 3: 5, 7: 10, 120: 200, 0: 1, -4: 1, math.NaN(): 1} {
		if got := NiceStep(raw); got != want {
			t.Errorf("NiceStep(%v) = %v, want %v", raw, got, want)
		}
	}
}

func TestNumbers(t *testing.T) {
	for v, want := range map[float64]string{1500: "1.5k", 2_000_000: "2M", 12.345: "12.35", -2500: "-2.5k", 0: "0"} {
		if got := HumanNumber(v); got != want {
			t.Errorf("HumanNumber(%v) = %q, want %q", v, got, want)
		}
	}
	if got := Point(1.26, 3.04); got != "1.3,3" {
		t.Errorf("Point = %q, want 1.3,3", got)
	}
}
