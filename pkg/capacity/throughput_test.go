package capacity

import (
	"math"
	"testing"
	"time"
)

// fleetInterval is a 2 s poll interval of a saturated fleet whose replicas each complete
// perMinute calls per minute: completions follow the replicas that ran, nothing else.
func fleetInterval(start float64, running int32, perMinute float64) WorkInterval {
	// Completions up to the end of the interval minus those up to its start, so fractions
	// carry over from poll to poll as they would for real workers.
	done := func(t float64) int64 { return int64(math.Floor(float64(running)*perMinute*t/60 + 1e-9)) }
	return WorkInterval{
		Start: at(start), End: at(start + 2), RunningReplicas: running, Saturated: true,
		Completed: done(start+2) - done(start), CountersKnown: true,
	}
}

func mustEstimate(t *testing.T, e *ThroughputEstimator, declared float64) (float64, bool) {
	t.Helper()
	mu, measured, err := e.Estimate(declared)
	if err != nil {
		t.Fatal(err)
	}
	return mu, measured
}

// TestThroughputEstimateIsUnmovedByScaling is the death spiral of the first version turned
// into a test: 20 replicas at 15 calls/min each are scaled to 1. The old estimate (the
// window's completions over the replicas asked for now) read 300 per replica; this one
// keeps 15, before, during and after the scale-down, because it counts replica time that
// really ran. (A replica completes one call every 4 s: polls alternate 0 and 1 per replica.)
func TestThroughputEstimateIsUnmovedByScaling(t *testing.T) {
	e, err := NewThroughputEstimator(0, 1)
	if err != nil {
		t.Fatal(err)
	}
	clock := 0.0
	run := func(polls int, running int32) {
		for range polls {
			if err := e.Observe(fleetInterval(clock, running, 15)); err != nil {
				t.Fatal(err)
			}
			clock += 2
		}
	}
	run(30, 20)
	before, measured := mustEstimate(t, e, 30)
	if !measured || math.Abs(before-15) > 0.01 {
		t.Fatalf("after a minute at 20 replicas: mu %v measured %v, want 15 measured", before, measured)
	}
	// The scale write itself: spec says 1, but the 20 pods still run until they stop.
	run(3, 20)
	// Pods stop one poll later; an interval where they stopped counts the smaller count.
	run(60, 1)
	after, _ := mustEstimate(t, e, 30)
	if math.Abs(after-15) > 0.01 {
		t.Errorf("after scaling 20 -> 1: mu %v, want 15 (a scale action must not move the estimate)", after)
	}
	run(60, 7)
	if again, _ := mustEstimate(t, e, 30); math.Abs(again-15) > 0.01 {
		t.Errorf("after scaling 1 -> 7: mu %v, want 15", again)
	}
}

func TestThroughputEstimateTakesOutTimeThePoolHeldWorkersBack(t *testing.T) {
	e, err := NewThroughputEstimator(0, 1)
	if err != nil {
		t.Fatal(err)
	}
	// Ten replicas that could each do 90 calls/min are paced by the pool to 150/min in
	// all: in each 2 s, 5 calls complete and the replicas spend 20 s - 5 x 2/3 s = 16.7 s
	// waiting for room (each call itself takes 2/3 s).
	for i := range 60 {
		iv := WorkInterval{Start: at(float64(2 * i)), End: at(float64(2*i + 2)), RunningReplicas: 10, Saturated: true,
			Completed: 5, Waited: 20*time.Second - 5*(2*time.Second/3), CountersKnown: true}
		if err := e.Observe(iv); err != nil {
			t.Fatal(err)
		}
	}
	if mu, measured := mustEstimate(t, e, 30); !measured || math.Abs(mu-90) > 0.5 {
		t.Errorf("mu %v measured %v, want the workers' own 90 per minute, not the pool's 15 per replica", mu, measured)
	}
}

func TestThroughputEstimateUsesOnlyIntervalsThatMeasureCapacity(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*WorkInterval)
	}{
		{"no work waiting: completions measure arrivals", func(iv *WorkInterval) { iv.Saturated = false }},
		{"the API or the pool refused calls", func(iv *WorkInterval) { iv.Refused = 1 }},
		{"counters unknown or reset", func(iv *WorkInterval) { iv.CountersKnown = false }},
		{"no replica running", func(iv *WorkInterval) { iv.RunningReplicas = 0 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := NewThroughputEstimator(0, 1)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 60 {
				iv := fleetInterval(float64(2*i), 5, 12)
				tt.mutate(&iv)
				if err := e.Observe(iv); err != nil {
					t.Fatal(err)
				}
			}
			if mu, measured := mustEstimate(t, e, 30); measured || mu != 30 {
				t.Errorf("mu %v measured %v from intervals that measure nothing, want the declared 30", mu, measured)
			}
		})
	}
}

func TestThroughputEstimateNeedsEvidenceThenHolds(t *testing.T) {
	e, err := NewThroughputEstimator(0, 1)
	if err != nil {
		t.Fatal(err)
	}
	// One replica at 20/min: 20 completions and a minute of replica time take a minute.
	for i := range 25 {
		if err := e.Observe(fleetInterval(float64(2*i), 1, 30)); err != nil {
			t.Fatal(err)
		}
	}
	if mu, measured := mustEstimate(t, e, 12); measured || mu != 12 {
		t.Fatalf("after 50 s of one replica: mu %v measured %v, want the declared 12 until a minute of evidence", mu, measured)
	}
	for i := 25; i < 40; i++ {
		if err := e.Observe(fleetInterval(float64(2*i), 1, 30)); err != nil {
			t.Fatal(err)
		}
	}
	if mu, measured := mustEstimate(t, e, 12); !measured || math.Abs(mu-30) > 0.01 {
		t.Fatalf("after 80 s: mu %v measured %v, want 30 measured", mu, measured)
	}
	// The backlog is gone: idle intervals measure nothing, and the measurement stands.
	for i := 40; i < 200; i++ {
		iv := fleetInterval(float64(2*i), 1, 3)
		iv.Saturated = false
		if err := e.Observe(iv); err != nil {
			t.Fatal(err)
		}
	}
	if mu, measured := mustEstimate(t, e, 12); !measured || math.Abs(mu-30) > 0.01 {
		t.Errorf("after five idle minutes: mu %v measured %v, want the last measurement, 30", mu, measured)
	}
}

func TestThroughputEstimatorRefusesMalformedInput(t *testing.T) {
	if _, err := NewThroughputEstimator(-time.Second, 1); err == nil {
		t.Error("negative window accepted")
	}
	e, err := NewThroughputEstimator(0, 1)
	if err != nil {
		t.Fatal(err)
	}
	checkErr(t, e.Observe(WorkInterval{Start: at(2), End: at(2)}), "empty")
	checkErr(t, e.Observe(WorkInterval{Start: at(0), End: at(2), Completed: -1}), "negative")
	if _, _, err := e.Estimate(0); err == nil {
		t.Error("a declared throughput of 0 was accepted")
	}
}
