package loadtest

import (
	"math"
	"testing"
	"time"
)

// drain collects every offset before end.
func drainSchedule(t *testing.T, s *Schedule, end time.Duration) []time.Duration {
	t.Helper()
	var out []time.Duration
	for {
		off, ok := s.Next()
		if !ok || off >= end {
			return out
		}
		out = append(out, off)
	}
}

func TestConstantScheduleIsEvenlySpaced(t *testing.T) {
	s, err := NewSchedule(ConstantProfile(200), ArrivalConstant, 1)
	if err != nil {
		t.Fatal(err)
	}
	offs := drainSchedule(t, s, 2*time.Second)
	if len(offs) != 400 {
		t.Fatalf("200/s for 2s: got %d arrivals, want 400", len(offs))
	}
	for i, off := range offs {
		want := time.Duration(i) * 5 * time.Millisecond
		if d := off - want; d < -time.Microsecond || d > time.Microsecond {
			t.Fatalf("arrival %d at %s, want %s", i, off, want)
		}
	}
}

func TestPoissonScheduleMatchesRateAndSeed(t *testing.T) {
	const rate, secs = 500.0, 20.0
	s1, _ := NewSchedule(ConstantProfile(rate), ArrivalPoisson, 42)
	offs := drainSchedule(t, s1, time.Duration(secs*float64(time.Second)))
	// Poisson count has sd sqrt(10000) = 100; allow 5 sd.
	if n := float64(len(offs)); math.Abs(n-rate*secs) > 500 {
		t.Fatalf("Poisson arrivals: got %v, want about %v", n, rate*secs)
	}
	// Exponential gaps: the coefficient of variation is 1 (it is 0 for
	// constant spacing).
	var sum, sumSq float64
	for i := 1; i < len(offs); i++ {
		g := (offs[i] - offs[i-1]).Seconds()
		sum += g
		sumSq += g * g
	}
	n := float64(len(offs) - 1)
	mean := sum / n
	cv := math.Sqrt(sumSq/n-mean*mean) / mean
	if cv < 0.9 || cv > 1.1 {
		t.Fatalf("gap coefficient of variation %.3f, want about 1", cv)
	}
	s2, _ := NewSchedule(ConstantProfile(rate), ArrivalPoisson, 42)
	again := drainSchedule(t, s2, time.Duration(secs*float64(time.Second)))
	if len(again) != len(offs) || again[100] != offs[100] {
		t.Fatal("same seed must give the same schedule")
	}
	s3, _ := NewSchedule(ConstantProfile(rate), ArrivalPoisson, 43)
	other := drainSchedule(t, s3, time.Second)
	if other[10] == offs[10] {
		t.Fatal("different seeds should give different schedules")
	}
}

func TestRampScheduleFollowsIntegral(t *testing.T) {
	// 0 -> 100/s over 10 s: 500 arrivals in the ramp, then 100/s.
	p := RampProfile(0, 100, 10*time.Second)
	s, err := NewSchedule(p, ArrivalConstant, 0)
	if err != nil {
		t.Fatal(err)
	}
	offs := drainSchedule(t, s, 12*time.Second)
	if len(offs) != 700 {
		t.Fatalf("ramp + 2 s hold: got %d arrivals, want 700", len(offs))
	}
	// In the first half of the ramp a quarter of its arrivals happen.
	firstHalf := 0
	for _, o := range offs {
		if o < 5*time.Second {
			firstHalf++
		}
	}
	if firstHalf != 125 {
		t.Fatalf("first half of ramp: got %d, want 125", firstHalf)
	}
	// Falling ramps work too.
	down, _ := NewSchedule(RampProfile(100, 0, 10*time.Second), ArrivalConstant, 0)
	all := drainSchedule(t, down, time.Hour)
	if len(all) != 500 {
		t.Fatalf("falling ramp to 0: got %d arrivals, want 500 then the end", len(all))
	}
}

func TestStepScheduleCountsPerStep(t *testing.T) {
	p := StepProfile(10, 10, time.Second, 3) // 10, 20, 30/s, then hold 30/s
	s, _ := NewSchedule(p, ArrivalConstant, 0)
	offs := drainSchedule(t, s, 4*time.Second)
	perSecond := make([]int, 4)
	for _, o := range offs {
		perSecond[int(o/time.Second)]++
	}
	want := []int{10, 20, 30, 30}
	for i := range want {
		if perSecond[i] != want[i] {
			t.Fatalf("step %d: got %d arrivals, want %d (all %v)", i, perSecond[i], want[i], perSecond)
		}
	}
	if got := p.ExpectedArrivals(4 * time.Second); math.Abs(got-90) > 1e-9 {
		t.Fatalf("ExpectedArrivals = %v, want 90", got)
	}
	if got := p.RateAt(1500 * time.Millisecond); got != 20 {
		t.Fatalf("RateAt(1.5s) = %v, want 20", got)
	}
	if got := p.RateAt(time.Minute); got != 30 {
		t.Fatalf("RateAt after the profile = %v, want the hold rate 30", got)
	}
}

func TestProfileValidation(t *testing.T) {
	cases := map[string]RateProfile{
		"empty":          {},
		"zero duration":  {Segments: []Segment{{From: 1, To: 1}}},
		"negative rate":  {Segments: []Segment{{Duration: time.Second, From: -1, To: 1}}},
		"NaN rate":       {Segments: []Segment{{Duration: time.Second, From: math.NaN(), To: 1}}},
		"infinite rate":  {Segments: []Segment{{Duration: time.Second, From: 1, To: math.Inf(1)}}},
		"never sends":    {Segments: []Segment{{Duration: time.Second}}},
		"unknown spacer": ConstantProfile(1), // checked below with a bad arrival
	}
	for name, p := range cases {
		arrival := ArrivalConstant
		if name == "unknown spacer" {
			arrival = "burst"
		}
		if _, err := NewSchedule(p, arrival, 0); err == nil {
			t.Errorf("%s: NewSchedule accepted it", name)
		}
	}
}

func FuzzScheduleIsMonotonic(f *testing.F) {
	f.Add(10.0, 50.0, int64(time.Second), uint64(1), true)
	f.Add(0.0, 1e5, int64(time.Millisecond), uint64(7), false)
	f.Fuzz(func(t *testing.T, from, to float64, dur int64, seed uint64, poisson bool) {
		p := RampProfile(from, to, time.Duration(dur))
		arrival := ArrivalConstant
		if poisson {
			arrival = ArrivalPoisson
		}
		s, err := NewSchedule(p, arrival, seed)
		if err != nil {
			return
		}
		prev := time.Duration(-1)
		for range 2000 {
			off, ok := s.Next()
			if !ok {
				return
			}
			if off < prev {
				t.Fatalf("offset went backwards: %s after %s", off, prev)
			}
			prev = off
		}
	})
}

func TestParseRate(t *testing.T) {
	good := map[string]float64{
		"20": 20, "20/s": 20, "1200/m": 20, "1200/min": 20, "5/100ms": 50, "3600/h": 1, " 2.5 /s ": 2.5, "0": 0,
	}
	for in, want := range good {
		got, err := ParseRate(in)
		if err != nil || math.Abs(got-want) > 1e-9 {
			t.Errorf("ParseRate(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "fast", "-1/s", "10/fortnight", "10/0s", "NaN", "Inf/s"} {
		if _, err := ParseRate(in); err == nil {
			t.Errorf("ParseRate(%q) accepted it", in)
		}
	}
}
