package capacity

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/claudecap/claudecap/pkg/dimension"
)

// planClose compares money and rates computed in floating point.
func planClose(got, want float64) bool {
	return math.Abs(got-want) <= 1e-9*math.Max(1, math.Max(math.Abs(got), math.Abs(want)))
}

func mustPlan(t *testing.T, in PlanInput) PlanResult {
	t.Helper()
	res, err := Plan(nil, in)
	if err != nil {
		t.Fatalf("Plan(%+v): %v", in, err)
	}
	return res
}

// TestPlanSeedExample is the seed's plan_capacity(100, 500, 200) on Sonnet 4 at $3/$15, to
// the cent: 100 RPM, 50,000 ITPM, 20,000 OTPM, $0.0045 per request, $19,440 per month, and
// tier 2 the smallest tier that fits because tier 1 allows 8,000 output tokens per minute.
func TestPlanSeedExample(t *testing.T) {
	for _, model := range []string{"claude-sonnet-4-20250514", "claude-sonnet-4-5"} {
		t.Run(model, func(t *testing.T) {
			res := mustPlan(t, PlanInput{Model: model, RequestsPerMinute: 100, AvgInputTokens: 500, AvgOutputTokens: 200})
			if got, want := res.Needed.Ceil(), (TierLimits{100, 50_000, 20_000}); got != want {
				t.Errorf("needed = %+v, want %+v", got, want)
			}
			if res.Needed != (PlanRates{100, 50_000, 20_000}) {
				t.Errorf("needed rates are not exact: %+v", res.Needed)
			}
			if res.Cost.PerRequestUSD != 0.0045 || FormatUSD(res.Cost.PerRequestUSD) != "$0.0045" {
				t.Errorf("cost per request = %v (%s), want exactly 0.0045", res.Cost.PerRequestUSD, FormatUSD(res.Cost.PerRequestUSD))
			}
			if res.Cost.MonthlyUSD != 19_440 || FormatUSD(res.Cost.MonthlyUSD) != "$19,440.00" {
				t.Errorf("monthly cost = %v (%s), want exactly 19440", res.Cost.MonthlyUSD, FormatUSD(res.Cost.MonthlyUSD))
			}
			if res.SmallestTier != "tier-2" || res.Binding != PlanDimensionOf(dimension.OutputTokens) {
				t.Errorf("smallest tier %s binding %s, want tier-2 bound by output tokens", res.SmallestTier, res.Binding)
			}
			tier1 := res.Tiers[0]
			if tier1.Fits || !slices.Contains(tier1.Short, PlanDimensionOf(dimension.OutputTokens)) || tier1.Utilization[dimension.OutputTokens] != 2.5 {
				t.Errorf("tier-1 = %+v, want short on output tokens at 250%%", tier1)
			}
			if !strings.Contains(res.TierReason, "output tokens 20,000/min needed, 8,000 allowed") ||
				!strings.HasPrefix(res.TierReason, "tier-2 is the smallest tier that fits") {
				t.Errorf("tier reason = %q", res.TierReason)
			}
			if res.Input.HeadroomPercent != 100 || res.Replicas != nil || res.Declared != nil {
				t.Errorf("defaults: headroom %v replicas %v declared %v", res.Input.HeadroomPercent, res.Replicas, res.Declared)
			}
		})
	}
}

func TestPlanPromptCache(t *testing.T) {
	cases := []struct {
		name          string
		in            PlanInput
		itpm, allIn   float64
		perRequest    float64
		cacheSavingsM float64
	}{
		{
			// 200 plain input tokens at $3, 800 cache reads at $0.30, 100 output at $15.
			name: "sonnet reads excluded from ITPM",
			in:   PlanInput{Model: "claude-sonnet-4-5", RequestsPerMinute: 10, AvgInputTokens: 1000, AvgOutputTokens: 100, CacheHitRatio: 0.8},
			itpm: 2_000, allIn: 10_000, perRequest: 0.00234, cacheSavingsM: 10 * 43_200 * 2160e-6,
		},
		{
			name: "haiku 3.5 counts cache reads",
			in:   PlanInput{Model: "claude-3-5-haiku-latest", RequestsPerMinute: 10, AvgInputTokens: 1000, AvgOutputTokens: 100, CacheHitRatio: 0.8},
			itpm: 10_000, allIn: 10_000, perRequest: (200*0.8 + 800*0.08 + 100*4) / 1e6, cacheSavingsM: 10 * 43_200 * 576e-6,
		},
		{
			// The reference formula: in*P + cw5m*1.25P + cw1h*2P + cr*0.1P + out*Pout, Opus 4.5 at $5/$25:
			// 1,000*5 + 2,000*6.25 + 1,000*10 + 6,000*0.5 + 500*25 = 43,000 micro-dollars.
			name: "cache writes at both TTLs",
			in: PlanInput{Model: "claude-opus-4-5", RequestsPerMinute: 1, AvgInputTokens: 10_000, AvgOutputTokens: 500,
				CacheHitRatio: 0.6, CacheWrite5mRatio: 0.2, CacheWrite1hRatio: 0.1},
			itpm: 4_000, allIn: 10_000, perRequest: 0.043, cacheSavingsM: 43_200 * 19_500e-6,
		},
		{
			name: "writes without reads cost more than no cache",
			in: PlanInput{Model: "claude-haiku-4-5", RequestsPerMinute: 1, AvgInputTokens: 1000, AvgOutputTokens: 0,
				CacheWrite1hRatio: 1},
			itpm: 1_000, allIn: 1_000, perRequest: 0.002, cacheSavingsM: -43_200 * 1000e-6,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := mustPlan(t, tc.in)
			if !planClose(res.Needed[dimension.InputTokens], tc.itpm) || !planClose(res.InputTokensPerMinuteAll, tc.allIn) {
				t.Errorf("ITPM %v all input %v, want %v and %v", res.Needed[dimension.InputTokens], res.InputTokensPerMinuteAll, tc.itpm, tc.allIn)
			}
			if !planClose(res.Cost.PerRequestUSD, tc.perRequest) {
				t.Errorf("cost per request = %v, want %v", res.Cost.PerRequestUSD, tc.perRequest)
			}
			if !planClose(res.Cost.MonthlyCacheSavingsUSD, tc.cacheSavingsM) {
				t.Errorf("monthly cache savings = %v, want %v", res.Cost.MonthlyCacheSavingsUSD, tc.cacheSavingsM)
			}
		})
	}
}

func TestPlanBatchShare(t *testing.T) {
	res := mustPlan(t, PlanInput{Model: "claude-sonnet-4", RequestsPerMinute: 100, AvgInputTokens: 500, AvgOutputTokens: 200, BatchShare: 0.5})
	if res.Needed != (PlanRates{50, 25_000, 10_000}) || res.BatchRequestsPerMinute != 50 {
		t.Errorf("needed %+v batch %v: batch requests must not count against Messages limits", res.Needed, res.BatchRequestsPerMinute)
	}
	// Half the requests at half price: 0.0045 * 0.75.
	if !planClose(res.Cost.PerRequestUSD, 0.003375) || !planClose(res.Cost.MonthlyUSD, 14_580) || !planClose(res.Cost.MonthlyBatchSavingsUSD, 4_860) {
		t.Errorf("cost %+v", res.Cost)
	}
	// 50 RPM and 25,000 ITPM fit tier 1; 10,000 OTPM does not.
	if res.SmallestTier != "tier-2" || !slices.Equal(res.Tiers[0].Short, []PlanDimension{PlanDimensionOf(dimension.OutputTokens)}) {
		t.Errorf("smallest %s, tier-1 short on %v", res.SmallestTier, res.Tiers[0].Short)
	}
}

func TestPlanSmallestTier(t *testing.T) {
	cases := []struct {
		name       string
		in         PlanInput
		tier       string
		binding    PlanDimension
		reasonPart string
	}{
		{"exactly at tier-1 limits", PlanInput{Model: "claude-sonnet-4-5", RequestsPerMinute: 50, AvgInputTokens: 600, AvgOutputTokens: 160},
			"tier-1", PlanDimensionOf(dimension.Requests), "tier-1, the smallest tier, fits"},
		{"fits tier-2 at full headroom", PlanInput{Model: "claude-sonnet-4-5", RequestsPerMinute: 950, AvgInputTokens: 100, AvgOutputTokens: 50},
			"tier-2", PlanDimensionOf(dimension.Requests), "requests come closest to the limit at 95%"},
		{"90% headroom pushes to tier-3", PlanInput{Model: "claude-sonnet-4-5", RequestsPerMinute: 950, AvgInputTokens: 100, AvgOutputTokens: 50, HeadroomPercent: 90},
			"tier-3", PlanDimensionOf(dimension.Requests), "requests 950/min needed, 900 allowed"},
		{"haiku's larger tier-3 input limit", PlanInput{Model: "claude-haiku-4-5", RequestsPerMinute: 1_500, AvgInputTokens: 600, AvgOutputTokens: 100},
			"tier-3", PlanDimensionOf(dimension.InputTokens), "input tokens 900,000/min needed, 450,000 allowed"},
		{"nothing fits", PlanInput{Model: "claude-opus-4-6", RequestsPerMinute: 5_000, AvgInputTokens: 100, AvgOutputTokens: 100},
			TierCustom, PlanDimensionOf(dimension.Requests), "custom limits beyond tier-4: the traffic exceeds tier-4 at 100% headroom: requests 5,000/min needed, 4,000 allowed"},
		{"no tier data for the class", PlanInput{Model: "claude-3-5-haiku", RequestsPerMinute: 1, AvgInputTokens: 1, AvgOutputTokens: 1},
			TierCustom, "", "no tier limits for model class haiku-3.5"},
		{"idle workload", PlanInput{Model: "claude-sonnet-4-5"},
			"tier-1", "", "it needs nothing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := mustPlan(t, tc.in)
			if res.SmallestTier != tc.tier || res.Binding != tc.binding {
				t.Errorf("smallest tier %q binding %q, want %q %q", res.SmallestTier, res.Binding, tc.tier, tc.binding)
			}
			// The reason is either why the smallest tier was chosen or how it fits.
			reasons := res.TierReason
			for _, fit := range res.Tiers {
				if fit.Name == res.SmallestTier {
					reasons += " | " + fit.Reason
				}
			}
			if !strings.Contains(reasons, tc.reasonPart) {
				t.Errorf("reasons %q do not contain %q", reasons, tc.reasonPart)
			}
			if res.Tiers == nil {
				t.Error("Tiers is nil; want an empty list")
			}
		})
	}
}

func TestPlanDeclaredLimits(t *testing.T) {
	seed := PlanInput{Model: "claude-sonnet-4-5", RequestsPerMinute: 100, AvgInputTokens: 500, AvgOutputTokens: 200, HeadroomPercent: 90}
	cases := []struct {
		name       string
		limits     PlanLimits
		fits       bool
		short      []PlanDimension
		reasonPart string
	}{
		{"tier-2", PlanLimits{Tier: "tier-2"}, true, nil, "fits the declared limits at 90% headroom; output tokens come closest to the limit at 22.22%"},
		{"tier-1", PlanLimits{Tier: "tier-1"}, false,
			[]PlanDimension{PlanDimensionOf(dimension.Requests), PlanDimensionOf(dimension.InputTokens), PlanDimensionOf(dimension.OutputTokens)}, "requests 100/min needed, 45 allowed"},
		{"tier-2 with a lower explicit OTPM", PlanLimits{Tier: "tier-2", Explicit: TierLimits{dimension.OutputTokens: 20_000}}, false,
			[]PlanDimension{PlanDimensionOf(dimension.OutputTokens)}, "output tokens 20,000/min needed, 18,000 allowed"},
		{"explicit only, one dimension", PlanLimits{Explicit: TierLimits{dimension.OutputTokens: 100_000}}, true, nil, "output tokens come closest to the limit at 20%"},
		{"explicit, all three", PlanLimits{Explicit: TierLimits{dimension.Requests: 120, dimension.InputTokens: 50_000, dimension.OutputTokens: 30_000}}, false,
			[]PlanDimension{PlanDimensionOf(dimension.InputTokens)}, "input tokens 50,000/min needed, 45,000 allowed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := seed
			limits := tc.limits
			in.Limits = &limits
			res := mustPlan(t, in)
			d := res.Declared
			if d == nil {
				t.Fatal("no declared fit")
			}
			if d.Fits != tc.fits || !slices.Equal(d.Short, tc.short) || !strings.Contains(d.Reason, tc.reasonPart) {
				t.Errorf("declared = fits %v short %v reason %q; want %v %v containing %q", d.Fits, d.Short, d.Reason, tc.fits, tc.short, tc.reasonPart)
			}
		})
	}

	t.Run("unchecked dimensions read zero", func(t *testing.T) {
		in := seed
		in.Limits = &PlanLimits{Explicit: TierLimits{dimension.OutputTokens: 100_000}}
		d := mustPlan(t, in).Declared
		if d.Utilization[dimension.Requests] != 0 || d.Utilization[dimension.InputTokens] != 0 || d.Utilization[dimension.OutputTokens] != 0.2 {
			t.Errorf("utilization %+v", d.Utilization)
		}
	})
	t.Run("float rounding on the limit still fits", func(t *testing.T) {
		// 1 - 0.7 is 0.30000000000000004 in binary: ITPM lands a hair above 30,000.
		res := mustPlan(t, PlanInput{Model: "claude-sonnet-4-5", RequestsPerMinute: 100, AvgInputTokens: 1000, AvgOutputTokens: 80,
			CacheHitRatio: 0.7, Limits: &PlanLimits{Explicit: TierLimits{dimension.Requests: 100, dimension.InputTokens: 30_000, dimension.OutputTokens: 8_000}}})
		if !res.Declared.Fits || res.Needed.Ceil()[dimension.InputTokens] != 30_000 {
			t.Errorf("declared %+v, needed %+v", res.Declared, res.Needed)
		}
	})
	errorCases := []struct {
		name   string
		limits PlanLimits
		want   error
	}{
		{"unknown tier", PlanLimits{Tier: "tier-9"}, ErrUnknownTier},
		{"nothing declared", PlanLimits{}, ErrInvalidPlanInput},
		{"negative", PlanLimits{Tier: "tier-1", Explicit: TierLimits{dimension.Requests: -1}}, ErrInvalidPlanInput},
	}
	for _, tc := range errorCases {
		t.Run(tc.name, func(t *testing.T) {
			in := seed
			limits := tc.limits
			in.Limits = &limits
			if _, err := Plan(nil, in); !errors.Is(err, tc.want) {
				t.Errorf("error = %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("tier without data for the class", func(t *testing.T) {
		in := PlanInput{Model: "claude-3-5-haiku", RequestsPerMinute: 1, Limits: &PlanLimits{Tier: "tier-1"}}
		if _, err := Plan(nil, in); !errors.Is(err, ErrNoTierLimits) || !strings.Contains(err.Error(), "declare explicit limits") {
			t.Errorf("error = %v", err)
		}
		in.Limits = &PlanLimits{Explicit: TierLimits{dimension.Requests: 10, dimension.InputTokens: 10, dimension.OutputTokens: 10}}
		if res, err := Plan(nil, in); err != nil || !res.Declared.Fits {
			t.Errorf("explicit limits for a class without tier data: %+v, %v", res.Declared, err)
		}
	})
}

func TestPlanReplicas(t *testing.T) {
	cases := []struct {
		name string
		in   PlanInput
		want int64
	}{
		{"round up", PlanInput{RequestsPerMinute: 100, ReplicaRequestsPerMinute: 30}, 4},
		{"exact", PlanInput{RequestsPerMinute: 90, ReplicaRequestsPerMinute: 30}, 3},
		{"float noise is not a replica", PlanInput{RequestsPerMinute: 30, BatchShare: 0.9, ReplicaRequestsPerMinute: 1}, 3},
		{"batch requests take no replica", PlanInput{RequestsPerMinute: 100, BatchShare: 1, ReplicaRequestsPerMinute: 30}, 0},
		{"idle", PlanInput{ReplicaRequestsPerMinute: 30}, 0},
		{"slow workers", PlanInput{RequestsPerMinute: 1, ReplicaRequestsPerMinute: 0.25}, 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.Model = "claude-haiku-4-5"
			res := mustPlan(t, tc.in)
			if res.Replicas == nil || *res.Replicas != tc.want {
				t.Errorf("replicas = %v, want %d", res.Replicas, tc.want)
			}
		})
	}
}

func TestPlanLongContextPricing(t *testing.T) {
	cases := []struct {
		model      string
		input      float64
		perRequest float64
		long       bool
	}{
		{"claude-sonnet-4-5", 250_000, (250_000*6 + 1_000*22.5) / 1e6, true},
		{"claude-sonnet-4-5", 200_000, (200_000*3 + 1_000*15) / 1e6, false},
		{"claude-sonnet-4", 250_000, (250_000*6 + 1_000*22.5) / 1e6, true},
		{"claude-haiku-4-5", 250_000, (250_000*1 + 1_000*5) / 1e6, false},
	}
	for _, tc := range cases {
		res := mustPlan(t, PlanInput{Model: tc.model, RequestsPerMinute: 1, AvgInputTokens: tc.input, AvgOutputTokens: 1_000})
		if !planClose(res.Cost.PerRequestUSD, tc.perRequest) || res.Cost.LongContextPricing != tc.long {
			t.Errorf("%s with %v input tokens: cost %v long %v, want %v %v", tc.model, tc.input, res.Cost.PerRequestUSD,
				res.Cost.LongContextPricing, tc.perRequest, tc.long)
		}
	}
	// Cache reads keep their 0.1x ratio to the long-context input price.
	res := mustPlan(t, PlanInput{Model: "claude-sonnet-4-5", RequestsPerMinute: 1, AvgInputTokens: 300_000, CacheHitRatio: 1})
	if !planClose(res.Cost.PerRequestUSD, 300_000*0.6/1e6) {
		t.Errorf("long-context cache reads cost %v", res.Cost.PerRequestUSD)
	}
}

func TestPlanRejectsImpossibleInput(t *testing.T) {
	valid := PlanInput{Model: "claude-sonnet-4-5", RequestsPerMinute: 100, AvgInputTokens: 500, AvgOutputTokens: 200}
	cases := []struct {
		name   string
		change func(*PlanInput)
		want   string
	}{
		{"negative rpm", func(in *PlanInput) { in.RequestsPerMinute = -1 }, "requests per minute must be between 0 and 1,000,000,000, got -1"},
		{"NaN tokens", func(in *PlanInput) { in.AvgInputTokens = math.NaN() }, "average input tokens must be between 0"},
		{"infinite output", func(in *PlanInput) { in.AvgOutputTokens = math.Inf(1) }, "average output tokens must be between 0"},
		{"hit ratio above 1", func(in *PlanInput) { in.CacheHitRatio = 1.5 }, "cache hit ratio must be between 0 and 1, got 1.5"},
		{"negative batch share", func(in *PlanInput) { in.BatchShare = -0.1 }, "batch share must be between 0 and 1"},
		{"cache shares over 1", func(in *PlanInput) { in.CacheHitRatio, in.CacheWrite5mRatio = 0.7, 0.4 }, "must add up to at most 1"},
		{"headroom over 100", func(in *PlanInput) { in.HeadroomPercent = 120 }, "headroom must be above 0 and at most 100 percent, got 120"},
		{"negative headroom", func(in *PlanInput) { in.HeadroomPercent = -5 }, "headroom must be above 0"},
		{"tiny replica throughput", func(in *PlanInput) { in.ReplicaRequestsPerMinute = 1e-9 }, "requests per minute per replica"},
		{"no model", func(in *PlanInput) { in.Model = " " }, "model is required"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := valid
			tc.change(&in)
			_, err := Plan(nil, in)
			if !errors.Is(err, ErrInvalidPlanInput) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want ErrInvalidPlanInput containing %q", err, tc.want)
			}
		})
	}
	t.Run("every problem at once", func(t *testing.T) {
		_, err := Plan(nil, PlanInput{Model: "claude-sonnet-4-5", RequestsPerMinute: -1, CacheHitRatio: 2})
		if err == nil || !strings.Contains(err.Error(), "requests per minute") || !strings.Contains(err.Error(), "cache hit ratio") {
			t.Errorf("error = %v, want both problems", err)
		}
	})
	t.Run("unknown model", func(t *testing.T) {
		in := valid
		in.Model = "claude-sonnet-9"
		if _, err := Plan(nil, in); !errors.Is(err, ErrUnknownModel) {
			t.Errorf("error = %v, want ErrUnknownModel", err)
		}
	})
}

func TestPlanDoesNotAliasItsInput(t *testing.T) {
	limits := &PlanLimits{Tier: "tier-2"}
	res := mustPlan(t, PlanInput{Model: "claude-sonnet-4-5", RequestsPerMinute: 1, Limits: limits})
	limits.Tier = "tier-4"
	if res.Input.Limits.Tier != "tier-2" {
		t.Error("the result shares the caller's Limits")
	}
}

func TestFormatQuantity(t *testing.T) {
	cases := map[float64]string{
		0: "0", 7: "7", 999: "999", 1_000: "1,000", 20_000.000000000004: "20,000", 1_234_567: "1,234,567",
		22.2222: "22.22", 0.5: "0.5", 1_500.25: "1,500.25", -1_000: "-1,000", math.Copysign(0, -1): "0",
		1e9: "1,000,000,000",
	}
	for v, want := range cases {
		if got := FormatQuantity(v); got != want {
			t.Errorf("FormatQuantity(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestFormatUSD(t *testing.T) {
	cases := map[float64]string{
		0: "$0.00", 0.0045: "$0.0045", 0.003375: "$0.003375", 0.5: "$0.50", 0.1234567: "$0.1235", 1: "$1.00",
		19_440: "$19,440.00", 1_234_567.891: "$1,234,567.89", -4_860: "-$4,860.00", 0.00000012346: "$0.0000001235",
	}
	for v, want := range cases {
		if got := FormatUSD(v); got != want {
			t.Errorf("FormatUSD(%v) = %q, want %q", v, got, want)
		}
	}
}

// planTierIndex ranks a plan's smallest tier: its position, or past the end for custom.
func planTierIndex(res PlanResult) int {
	for i, fit := range res.Tiers {
		if fit.Name == res.SmallestTier {
			return i
		}
	}
	return len(res.Tiers)
}

// planNotBelow is a >= b up to float rounding.
func planNotBelow(a, b float64) bool {
	return a >= b || planClose(a, b)
}

// FuzzPlan checks the planner's invariants on arbitrary input: it never panics, refuses
// impossible input with ErrInvalidPlanInput, never returns a negative or non-finite cost,
// a bigger tier never fits worse, and more traffic never needs fewer replicas, a smaller
// tier, or less money. Run it with `go test -run '^$' -fuzz FuzzPlan -fuzztime 10s` in this
// package.
func FuzzPlan(f *testing.F) {
	f.Add(100.0, 500.0, 200.0, 0.0, 0.0, 0.0, 0.0, 100.0, 0.0, uint8(0))
	f.Add(950.0, 100.0, 50.0, 0.0, 0.0, 0.0, 0.0, 90.0, 30.0, uint8(3))
	f.Add(300.0, 1200.0, 300.0, 0.6, 0.1, 0.05, 0.2, 90.0, 30.0, uint8(7))
	f.Add(5000.0, 250000.0, 4000.0, 0.9, 0.0, 0.1, 0.5, 50.0, 0.5, uint8(11))
	f.Add(-1.0, math.NaN(), math.Inf(1), 2.0, -1.0, 0.5, 1.5, 0.0, -3.0, uint8(255))
	f.Add(1e9, 1e7, 1e7, 0.0, 0.0, 0.0, 0.0, 1.0, 1e-3, uint8(5))
	catalog := DefaultCatalog()
	models := catalog.ModelNames()
	f.Fuzz(func(t *testing.T, rpm, input, output, hit, write5m, write1h, batch, headroom, perReplica float64, model uint8) {
		in := PlanInput{Model: models[int(model)%len(models)], RequestsPerMinute: rpm, AvgInputTokens: input,
			AvgOutputTokens: output, CacheHitRatio: hit, CacheWrite5mRatio: write5m, CacheWrite1hRatio: write1h,
			BatchShare: batch, HeadroomPercent: headroom, ReplicaRequestsPerMinute: perReplica}
		if _, err := Plan(catalog, in); err != nil && !errors.Is(err, ErrInvalidPlanInput) {
			t.Fatalf("Plan(%+v) failed with %v, not ErrInvalidPlanInput", in, err)
		}
		// Most random floats are out of range; fold them into range so the invariants below
		// see as many valid plans as possible.
		in = foldPlanInput(in)
		rpm, output, hit, write5m, write1h, batch = in.RequestsPerMinute, in.AvgOutputTokens, in.CacheHitRatio,
			in.CacheWrite5mRatio, in.CacheWrite1hRatio, in.BatchShare
		res := mustPlan(t, in)
		checkPlanResult(t, res)

		// More traffic never needs less of anything.
		more := in
		more.RequestsPerMinute = math.Min(MaxPlanRequestsPerMinute, rpm*1.5+1)
		more.AvgOutputTokens = math.Min(MaxPlanTokensPerRequest, output*1.5+1)
		bigger := mustPlan(t, more)
		checkPlanResult(t, bigger)
		if !planNotBelow(bigger.Needed[dimension.Requests], res.Needed[dimension.Requests]) ||
			!planNotBelow(bigger.Needed[dimension.InputTokens], res.Needed[dimension.InputTokens]) ||
			!planNotBelow(bigger.Needed[dimension.OutputTokens], res.Needed[dimension.OutputTokens]) {
			t.Fatalf("more traffic needs less: %+v then %+v", res.Needed, bigger.Needed)
		}
		if res.Replicas != nil && *bigger.Replicas < *res.Replicas {
			t.Fatalf("more traffic needs fewer replicas: %d then %d", *res.Replicas, *bigger.Replicas)
		}
		if planTierIndex(bigger) < planTierIndex(res) {
			t.Fatalf("more traffic fits a smaller tier: %s then %s", res.SmallestTier, bigger.SmallestTier)
		}
		if !planNotBelow(bigger.Cost.MonthlyUSD, res.Cost.MonthlyUSD) || !planNotBelow(bigger.Cost.PerRequestUSD, res.Cost.PerRequestUSD) {
			t.Fatalf("more traffic costs less: %+v then %+v", res.Cost, bigger.Cost)
		}

		// More headroom never needs a bigger tier.
		roomier := in
		roomier.HeadroomPercent = math.Min(100, res.Input.HeadroomPercent+10)
		if got := mustPlan(t, roomier); planTierIndex(got) > planTierIndex(res) {
			t.Fatalf("more headroom needs a bigger tier: %s then %s", res.SmallestTier, got.SmallestTier)
		}

		// More cache hits never count more input tokens nor cost more (reads are the cheapest input).
		cached := in
		cached.CacheHitRatio = hit + (1-hit-write5m-write1h)/2
		if cached.CacheHitRatio >= hit && cached.CacheHitRatio <= 1 {
			got := mustPlan(t, cached)
			if !planNotBelow(res.Needed[dimension.InputTokens], got.Needed[dimension.InputTokens]) ||
				!planNotBelow(res.Cost.PerRequestUSD, got.Cost.PerRequestUSD) {
				t.Fatalf("more cache hits cost more: ITPM %v -> %v, $%v -> $%v", res.Needed[dimension.InputTokens],
					got.Needed[dimension.InputTokens], res.Cost.PerRequestUSD, got.Cost.PerRequestUSD)
			}
		}

		// Moving requests to Message Batches never raises Messages load nor cost.
		batched := in
		batched.BatchShare = batch + (1-batch)/2
		got := mustPlan(t, batched)
		if !planNotBelow(res.Needed[dimension.Requests], got.Needed[dimension.Requests]) || !planNotBelow(res.Cost.MonthlyUSD, got.Cost.MonthlyUSD) ||
			planTierIndex(got) > planTierIndex(res) {
			t.Fatalf("more batching raised load or cost: %+v %+v then %+v %+v", res.Needed, res.Cost, got.Needed, got.Cost)
		}
	})
}

// foldPlanInput maps any numbers into the valid range of each field.
func foldPlanInput(in PlanInput) PlanInput {
	fold := func(v, limit float64) float64 {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return 0
		}
		return math.Mod(math.Abs(v), limit)
	}
	in.RequestsPerMinute = fold(in.RequestsPerMinute, MaxPlanRequestsPerMinute)
	in.AvgInputTokens = fold(in.AvgInputTokens, MaxPlanTokensPerRequest)
	in.AvgOutputTokens = fold(in.AvgOutputTokens, MaxPlanTokensPerRequest)
	in.BatchShare = fold(in.BatchShare, 1)
	in.CacheHitRatio, in.CacheWrite5mRatio, in.CacheWrite1hRatio = fold(in.CacheHitRatio, 1), fold(in.CacheWrite5mRatio, 1), fold(in.CacheWrite1hRatio, 1)
	if sum := in.CacheHitRatio + in.CacheWrite5mRatio + in.CacheWrite1hRatio; sum > 1 {
		in.CacheHitRatio, in.CacheWrite5mRatio, in.CacheWrite1hRatio = in.CacheHitRatio/sum, in.CacheWrite5mRatio/sum, in.CacheWrite1hRatio/sum
	}
	in.HeadroomPercent = 1 + fold(in.HeadroomPercent, 99)
	if in.ReplicaRequestsPerMinute = fold(in.ReplicaRequestsPerMinute, 1e6); in.ReplicaRequestsPerMinute < MinPlanReplicaRequestsPerMinute {
		in.ReplicaRequestsPerMinute = 0
	}
	return in
}

// checkPlanResult asserts what holds for every plan on its own.
func checkPlanResult(t *testing.T, res PlanResult) {
	t.Helper()
	c := res.Cost
	for _, v := range []float64{c.PerRequestUSD, c.MonthlyUSD, c.MonthlyBatchSavingsUSD, res.Needed[dimension.Requests],
		res.Needed[dimension.InputTokens], res.Needed[dimension.OutputTokens], res.BatchRequestsPerMinute, res.InputTokensPerMinuteAll} {
		if !finiteAtLeastZero(v) {
			t.Fatalf("negative or non-finite amount %v in %+v", v, res)
		}
	}
	if math.IsNaN(c.MonthlyCacheSavingsUSD) || math.IsInf(c.MonthlyCacheSavingsUSD, 0) {
		t.Fatalf("cache savings %v", c.MonthlyCacheSavingsUSD)
	}
	if !planClose(c.MonthlyUSD, c.PerRequestUSD*res.Input.RequestsPerMinute*MinutesPerMonth) {
		t.Fatalf("monthly %v is not per request %v * rate * minutes", c.MonthlyUSD, c.PerRequestUSD)
	}
	if !planNotBelow(res.InputTokensPerMinuteAll, res.Needed[dimension.InputTokens]) {
		t.Fatalf("counted input %v exceeds all input %v", res.Needed[dimension.InputTokens], res.InputTokensPerMinuteAll)
	}

	// A bigger tier never fits worse, and the smallest tier is the first that fits.
	firstFit := -1
	for i, fit := range res.Tiers {
		if firstFit >= 0 && !fit.Fits {
			t.Fatalf("%s fits but the bigger %s does not: %+v", res.Tiers[firstFit].Name, fit.Name, res.Tiers)
		}
		if fit.Fits && firstFit < 0 {
			firstFit = i
		}
		if i > 0 {
			prev := res.Tiers[i-1].Utilization
			for _, d := range dimension.All() {
				if fit.Utilization[d] <= prev[d] {
					continue
				}
				t.Fatalf("%s is more utilized than the smaller tier: %+v", fit.Name, res.Tiers)
			}
		}
	}
	if want := TierCustom; firstFit >= 0 {
		want = res.Tiers[firstFit].Name
		if res.SmallestTier != want {
			t.Fatalf("smallest tier %s, first fitting %s", res.SmallestTier, want)
		}
	} else if res.SmallestTier != want {
		t.Fatalf("no tier fits but smallest tier is %s", res.SmallestTier)
	}

	// Replicas are the fewest that carry the Messages requests.
	if r := res.Replicas; r != nil {
		per := res.Input.ReplicaRequestsPerMinute
		carried := float64(*r) * per
		if *r < 0 || !planNotBelow(carried, res.Needed[dimension.Requests]) ||
			(*r > 0 && carried-per >= res.Needed[dimension.Requests]*(1+1e-9)) {
			t.Fatalf("%d replicas at %v each for %v requests/min", *r, per, res.Needed[dimension.Requests])
		}
	}
}

func TestPlanDimensionWords(t *testing.T) {
	cases := map[PlanDimension]string{PlanDimensionOf(dimension.Requests): "requests", PlanDimensionOf(dimension.InputTokens): "input tokens",
		PlanDimensionOf(dimension.OutputTokens): "output tokens", "PoolShare": "PoolShare"}
	for d, want := range cases {
		if got := d.Words(); got != want {
			t.Errorf("%s.Words() = %q, want %q", d, got, want)
		}
	}
}
