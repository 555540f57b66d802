package mockapi

import (
	"math"
	"testing"

	"github.com/claudecap/claudecap/pkg/dimension"
)

func TestBucketRefillIsExact(t *testing.T) {
	b := newBucket(50, 0)
	for range 50 {
		b.take(1)
	}
	if b.has(1) || b.waitMicros(1) != 1_200_000 {
		t.Fatalf("empty 50 RPM bucket: has=%v wait=%d µs, want 1.2 s", b.has(1), b.waitMicros(1))
	}
	b.refill(1_199_999)
	if b.has(1) {
		t.Fatal("one request back before 1.2 s")
	}
	b.refill(1_200_000)
	if !b.has(1) || b.remaining() != 1 {
		t.Fatalf("after 1.2 s: remaining %d", b.remaining())
	}
	b.refill(1_000_000_000) // long idle: capped at capacity
	if b.remaining() != 50 || b.untilFullMicros() != 0 {
		t.Fatalf("idle bucket: remaining %d", b.remaining())
	}
	b.refill(5) // clock went back: nothing changes
	if b.remaining() != 50 {
		t.Fatal("a backwards clock changed the level")
	}
}

func TestBucketDebt(t *testing.T) {
	b := newBucket(8000, 0)
	b.take(10_000) // a correction beyond what was there
	if b.remaining() != 0 || b.has(1) {
		t.Fatal("a bucket in debt has nothing to give")
	}
	// 2,001 tokens at 8000/60 per second.
	if got, want := b.waitMicros(1), int64(math.Ceil(2001*60e6/8000)); got != want {
		t.Errorf("wait = %d, want %d", got, want)
	}
	b.give(1_000_000)
	if b.remaining() != 8000 {
		t.Errorf("give overfilled to %d", b.remaining())
	}
}

func TestMinuteWindow(t *testing.T) {
	var w minuteWindow
	w.add(1000, 5)
	w.add(1030, 7)
	if cur, prev := w.minutes(1059); cur != 12 || prev != 0 {
		t.Fatalf("at 1059: cur %d prev %d", cur, prev)
	}
	if cur, prev := w.minutes(1060); cur != 7 || prev != 5 {
		t.Fatalf("at 1060: cur %d prev %d", cur, prev)
	}
	w.add(1061, 1)
	if w.peak != 12 {
		t.Errorf("peak = %d", w.peak)
	}
	if cur, prev := w.minutes(1120); cur != 1 || prev != 7 {
		t.Fatalf("at 1120: cur %d prev %d", cur, prev)
	}
	if cur, prev := w.minutes(5000); cur != 0 || prev != 0 {
		t.Fatalf("after a long gap: cur %d prev %d", cur, prev)
	}
	w.add(4000, 3) // late record goes to the head slot
	if cur, _ := w.minutes(5000); cur != 3 {
		t.Errorf("late record: cur %d", cur)
	}
}

func TestParseDistribution(t *testing.T) {
	good := map[string]Distribution{
		"0":                  {},
		"200":                {Kind: DistFixed, Mean: 200},
		"uniform:50,400":     {Kind: DistUniform, Min: 50, Max: 400},
		"normal:200, 50":     {Kind: DistNormal, Mean: 200, StdDev: 50},
		"lognormal:200,120":  {Kind: DistLogNormal, Mean: 200, StdDev: 120},
		"exp:10":             {Kind: DistExponential, Mean: 10},
		"exponential:10":     {Kind: DistExponential, Mean: 10},
		"fixed:3":            {Kind: DistFixed, Mean: 3},
		"normal:600ms,150ms": {},
	}
	for in, want := range good {
		if in == "normal:600ms,150ms" {
			d, err := ParseDurationDistribution(in)
			if err != nil || d != (Distribution{Kind: DistNormal, Mean: 0.6, StdDev: 0.15}) {
				t.Errorf("%s: %+v %v", in, d, err)
			}
			continue
		}
		d, err := ParseCountDistribution(in)
		if err != nil || d != want {
			t.Errorf("%s: got %+v %v, want %+v", in, d, err, want)
		}
		if err == nil && d.Kind != DistZero {
			if back, err := ParseCountDistribution(d.String()); err != nil || back != d {
				t.Errorf("%s does not round-trip through %q", in, d.String())
			}
		}
	}
	for _, bad := range []string{"gauss:1,2", "uniform:5", "uniform:9,1", "normal:-1,2", "fixed:x", "normal:NaN,1"} {
		if _, err := ParseCountDistribution(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestDistributionMeans(t *testing.T) {
	for _, d := range []Distribution{
		{Kind: DistFixed, Mean: 7},
		{Kind: DistUniform, Min: 10, Max: 30},
		{Kind: DistNormal, Mean: 200, StdDev: 20},
		{Kind: DistLogNormal, Mean: 200, StdDev: 120},
		{Kind: DistExponential, Mean: 50},
	} {
		r := newRNG(42, 1)
		var sum float64
		const n = 200_000
		for range n {
			v := d.sample(&r)
			if v < 0 {
				t.Fatalf("%v drew %g", d, v)
			}
			sum += v
		}
		want := d.Mean
		if d.Kind == DistUniform {
			want = (d.Min + d.Max) / 2
		}
		if got := sum / n; math.Abs(got-want) > 0.02*want {
			t.Errorf("%v: mean %g, want %g", d, got, want)
		}
	}
}

func TestRollFaultRatesAndStreamOnly(t *testing.T) {
	f := Faults{Overloaded: 0.1, APIError: 0.1, Dropped: 0.1, StreamError: 0.2}
	counts := map[fault]int{}
	const n = 100_000
	for i := range n {
		r := newRNG(3, uint64(i))
		counts[rollFault(&f, &r, true)]++
		r = newRNG(3, uint64(i))
		if rollFault(&f, &r, false) == faultStreamError {
			t.Fatal("a non-streaming request rolled a mid-stream error")
		}
	}
	for k, want := range map[fault]float64{faultOverloaded: 0.1, faultAPIError: 0.1, faultDropped: 0.1, faultStreamError: 0.2, faultNone: 0.5} {
		if got := float64(counts[k]) / n; math.Abs(got-want) > 0.01 {
			t.Errorf("fault %d rate %g, want %g", k, got, want)
		}
	}
}

func TestDisplayNameAndReleaseDate(t *testing.T) {
	for id, want := range map[string]string{
		"claude-sonnet-4-5-20250929": "Claude Sonnet 4.5",
		"claude-3-5-haiku-20241022":  "Claude 3.5 Haiku",
		"claude-opus-4-6":            "Claude Opus 4.6",
		"claude-opus-4-20250514":     "Claude Opus 4",
	} {
		if got := displayName(id); got != want {
			t.Errorf("displayName(%s) = %q, want %q", id, got, want)
		}
	}
	if d := releaseDate("claude-sonnet-4-5-20250929"); d.Year() != 2025 || d.Month() != 9 || d.Day() != 29 {
		t.Errorf("release date %v", d)
	}
}

func TestAppendJSONString(t *testing.T) {
	got := string(appendJSONString(nil, "a\"b\\c\n\x01<é>"))
	want := `"a\"b\\c\n\u0001\u003cé\u003e"`
	if got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestConfigValidation(t *testing.T) {
	for name, cfg := range map[string]Config{
		"unknown tier":  {Tier: "tier-9"},
		"negative":      {Limits: map[string]Limits{"sonnet-4": {RequestsPerMinute: -1}}},
		"fault sum":     {Faults: Faults{Overloaded: 0.7, APIError: 0.4}},
		"otpm mode":     {OTPMMode: "guess"},
		"bad latency":   {Latency: Latency{PerToken: Distribution{Kind: "weird"}}},
		"accel growth":  {Acceleration: Acceleration{Enabled: true, MaxGrowth: 0.5}},
		"count limit":   {CountTokensRPM: -3},
		"huge limit":    {Limits: map[string]Limits{"sonnet-4": {InputTokensPerMinute: MaxLimit + 1}}},
		"neg per delta": {Latency: Latency{TokensPerDelta: -1}},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	s, err := New(Config{Tier: "tier-2"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Config().CountTokensRPM != 2000 || s.Config().OTPMMode != OTPMCountActual {
		t.Errorf("defaults: %+v", s.Config())
	}
}

// A refusal on a dimension the mock does not count must not be booked as another one.
func TestDimIndexRefusesUnknownDimensions(t *testing.T) {
	for i, d := range dimensions {
		if got := dimIndex(d); got != i {
			t.Errorf("dimIndex(%s) = %d, want %d", d, got, i)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("dimIndex of an unknown dimension did not panic")
		}
	}()
	dimIndex("cache_read_tokens")
}

// The mock's refusal names of the limited dimensions are the table's field names.
func TestRefusalNamesFollowTheDimensionTable(t *testing.T) {
	for d, want := range map[dimension.Dimension]Dimension{
		dimension.Requests: DimensionOf(dimension.Requests), dimension.InputTokens: DimensionOf(dimension.InputTokens), dimension.OutputTokens: DimensionOf(dimension.OutputTokens),
	} {
		if got := Dimension(d.Info().Field); got != want {
			t.Errorf("%s is refused as %q, want the table's %q", d, want, got)
		}
	}
}
