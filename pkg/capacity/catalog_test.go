package capacity

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/claudecap/claudecap/pkg/dimension"
)

func TestBuiltinCatalogParses(t *testing.T) {
	if builtinCatalog.broken != nil {
		t.Fatalf("embedded catalog.yaml does not parse: %v", builtinCatalog.broken)
	}
	c := DefaultCatalog()
	if c.AsOf != "2026-04" {
		t.Errorf("AsOf = %q, want 2026-04", c.AsOf)
	}
	if got, want := c.Tiers(), []string{"tier-1", "tier-2", "tier-3", "tier-4"}; !slices.Equal(got, want) {
		t.Errorf("Tiers() = %v, want %v", got, want)
	}
}

// TestBuiltinModels pins every model of the reference sheet: class, prices with the cache
// multipliers applied, batch discount and how cache reads count.
func TestBuiltinModels(t *testing.T) {
	type want struct {
		id         string
		class      ModelClass
		in, out    float64
		readsCount bool
	}
	cases := map[string]want{
		"claude-opus-4-6":            {"claude-opus-4-6", "opus-4", 5, 25, false},
		"claude-opus-4-5":            {"claude-opus-4-5-20251101", "opus-4", 5, 25, false},
		"claude-opus-4-5-20251101":   {"claude-opus-4-5-20251101", "opus-4", 5, 25, false},
		"claude-opus-4-1":            {"claude-opus-4-1-20250805", "opus-4", 15, 75, false},
		"claude-opus-4-20250514":     {"claude-opus-4-20250514", "opus-4", 15, 75, false},
		"claude-opus-4-0":            {"claude-opus-4-20250514", "opus-4", 15, 75, false},
		"claude-sonnet-4-6":          {"claude-sonnet-4-6", "sonnet-4", 3, 15, false},
		"claude-sonnet-4-5":          {"claude-sonnet-4-5-20250929", "sonnet-4", 3, 15, false},
		"claude-sonnet-4-5-20250929": {"claude-sonnet-4-5-20250929", "sonnet-4", 3, 15, false},
		"claude-sonnet-4-20250514":   {"claude-sonnet-4-20250514", "sonnet-4", 3, 15, false},
		"claude-sonnet-4":            {"claude-sonnet-4-20250514", "sonnet-4", 3, 15, false},
		"claude-haiku-4-5":           {"claude-haiku-4-5-20251001", "haiku-4.5", 1, 5, false},
		"claude-haiku-4-5-20251001":  {"claude-haiku-4-5-20251001", "haiku-4.5", 1, 5, false},
		"claude-3-5-haiku-20241022":  {"claude-3-5-haiku-20241022", "haiku-3.5", 0.8, 4, true},
		"claude-3-5-haiku-latest":    {"claude-3-5-haiku-20241022", "haiku-3.5", 0.8, 4, true},
		"  Claude-Sonnet-4-5 ":       {"claude-sonnet-4-5-20250929", "sonnet-4", 3, 15, false},
	}
	c := DefaultCatalog()
	for name, w := range cases {
		t.Run(name, func(t *testing.T) {
			m, err := c.Model(name)
			if err != nil {
				t.Fatal(err)
			}
			if m.ID != w.id || m.Class != w.class || m.CacheReadsCountTowardITPM != w.readsCount {
				t.Errorf("got id %s class %s readsCount %v, want %s %s %v", m.ID, m.Class, m.CacheReadsCountTowardITPM,
					w.id, w.class, w.readsCount)
			}
			wantPrices := Prices{InputPerMTok: w.in, OutputPerMTok: w.out, CacheWrite5mPerMTok: 1.25 * w.in,
				CacheWrite1hPerMTok: 2 * w.in, CacheReadPerMTok: 0.1 * w.in, BatchDiscount: 0.5}
			if m.Prices != wantPrices {
				t.Errorf("prices = %+v, want %+v", m.Prices, wantPrices)
			}
		})
	}
	if got := len(c.Models()); got != 9 {
		t.Errorf("catalog has %d models, want the 9 of the reference sheet", got)
	}
}

func TestBuiltinLimitsMatchReferenceTable(t *testing.T) {
	opusSonnet := []TierLimits{{50, 30_000, 8_000}, {1_000, 450_000, 90_000}, {2_000, 800_000, 160_000}, {4_000, 2_000_000, 400_000}}
	haiku := []TierLimits{{50, 50_000, 10_000}, {1_000, 450_000, 90_000}, {2_000, 1_000_000, 200_000}, {4_000, 4_000_000, 800_000}}
	want := map[ModelClass][]TierLimits{"opus-4": opusSonnet, "sonnet-4": opusSonnet, "haiku-4.5": haiku}
	c := DefaultCatalog()
	for class, tiers := range want {
		for i, tier := range c.Tiers() {
			got, err := c.Limits(class, tier)
			if err != nil {
				t.Fatalf("Limits(%s, %s): %v", class, tier, err)
			}
			if got != tiers[i] {
				t.Errorf("Limits(%s, %s) = %+v, want %+v", class, tier, got, tiers[i])
			}
		}
	}
}

func TestCatalogLookupErrors(t *testing.T) {
	c := DefaultCatalog()

	_, err := c.Model("gpt-4o")
	if !errors.Is(err, ErrUnknownModel) {
		t.Fatalf("Model(gpt-4o) error = %v, want ErrUnknownModel", err)
	}
	for _, part := range []string{`"gpt-4o"`, "claude-sonnet-4-5-20250929 (claude-sonnet-4-5)", "claude-haiku-4-5-20251001", "2026-04"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("unknown-model error %q does not mention %q", err, part)
		}
	}

	_, err = c.Limits("sonnet-4", "tier-5")
	if !errors.Is(err, ErrUnknownTier) || !strings.Contains(err.Error(), "tier-1, tier-2, tier-3, tier-4") {
		t.Errorf("Limits(tier-5) error = %v, want ErrUnknownTier listing the tiers", err)
	}
	_, err = c.Limits("haiku-3.5", "tier-2")
	if !errors.Is(err, ErrNoTierLimits) || !strings.Contains(err.Error(), "haiku-3.5") {
		t.Errorf("Limits(haiku-3.5) error = %v, want ErrNoTierLimits naming the class", err)
	}
	if l, err := c.Limits("sonnet-4", " Tier-2 "); err != nil || l[dimension.Requests] != 1000 {
		t.Errorf("Limits with spaces and capitals = %+v, %v", l, err)
	}
}

func TestCatalogIsNotSharedMutableState(t *testing.T) {
	a := DefaultCatalog()
	a.AsOf = "changed"
	tiers := a.Tiers()
	tiers[0] = "changed"
	models := a.Models()
	models[0].ID = "changed"
	b := DefaultCatalog()
	if b.AsOf != "2026-04" || b.Tiers()[0] != "tier-1" || b.Models()[0].ID == "changed" {
		t.Error("changes to one catalog leaked into another")
	}
}

func TestModelNamesCoverIDsAndAliases(t *testing.T) {
	c := DefaultCatalog()
	names := c.ModelNames()
	if !slices.IsSorted(names) {
		t.Error("ModelNames is not sorted")
	}
	for _, name := range names {
		if _, err := c.Model(name); err != nil {
			t.Errorf("ModelNames lists %s, which does not resolve: %v", name, err)
		}
	}
	for _, name := range []string{"claude-sonnet-4-5", "claude-sonnet-4-5-20250929", "claude-3-5-haiku-latest"} {
		if !slices.Contains(names, name) {
			t.Errorf("ModelNames misses %s", name)
		}
	}
}

func writeCatalogFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "catalog.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadCatalogOverridesAndExtends(t *testing.T) {
	path := writeCatalogFile(t, `
asOf: "2026-07-01"
pricing:
  cacheReadMultiplier: 0.05
classes:
  sonnet-4:
    limits:
      tier-2: {requestsPerMinute: 1500, inputTokensPerMinute: 600000, outputTokensPerMinute: 120000}
  opus-4-7:
    limits:
      tier-1: {requestsPerMinute: 60, inputTokensPerMinute: 40000, outputTokensPerMinute: 9000}
models:
  - id: claude-sonnet-4-5-20250929
    aliases: [claude-sonnet-4-5]
    class: sonnet-4
    prices: {inputPerMTok: 2, outputPerMTok: 10, cacheWrite5mPerMTok: 2.4}
  - id: claude-opus-4-7
    class: opus-4-7
    prices: {inputPerMTok: 5, outputPerMTok: 25, batchDiscount: 0.4}
`)
	c, err := LoadCatalog(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.AsOf != "2026-07-01" {
		t.Errorf("AsOf = %q", c.AsOf)
	}
	sonnet, err := c.Model("claude-sonnet-4-5")
	if err != nil {
		t.Fatal(err)
	}
	wantSonnet := Prices{InputPerMTok: 2, OutputPerMTok: 10, CacheWrite5mPerMTok: 2.4, CacheWrite1hPerMTok: 4,
		CacheReadPerMTok: 0.1, BatchDiscount: 0.5}
	if sonnet.Prices != wantSonnet {
		t.Errorf("replaced sonnet prices = %+v, want %+v", sonnet.Prices, wantSonnet)
	}
	if sonnet.LongContext != nil {
		t.Error("a replaced model keeps the built-in longContext it no longer declares")
	}
	opus, err := c.Model("claude-opus-4-7")
	if err != nil || opus.Class != "opus-4-7" || opus.Prices.BatchDiscount != 0.4 || opus.Prices.CacheReadPerMTok != 0.25 {
		t.Errorf("added model = %+v, %v", opus, err)
	}
	if l, _ := c.Limits("sonnet-4", "tier-2"); l != (TierLimits{1500, 600_000, 120_000}) {
		t.Errorf("overridden tier-2 = %+v", l)
	}
	if l, _ := c.Limits("sonnet-4", "tier-3"); l != (TierLimits{2000, 800_000, 160_000}) {
		t.Errorf("untouched tier-3 = %+v", l)
	}
	if _, err := c.Limits("opus-4-7", "tier-2"); !errors.Is(err, ErrNoTierLimits) {
		t.Errorf("added class without tier-2 limits: err = %v", err)
	}
	// Built-in models the file does not mention stay, with the new pricing rule applied.
	haiku, err := c.Model("claude-haiku-4-5")
	if err != nil || haiku.Prices.CacheReadPerMTok != 0.05 {
		t.Errorf("untouched haiku = %+v, %v", haiku, err)
	}
	if d := DefaultCatalog(); d.AsOf != "2026-04" {
		t.Error("LoadCatalog changed the built-in catalog")
	}
}

func TestLoadCatalogRejectsBadFiles(t *testing.T) {
	cases := []struct {
		name, content, wantErr string
	}{
		{"typo in a field", "modles: []\n", `unknown field "modles"`},
		{"not YAML", "models: [\n", "parsing catalog YAML"},
		{"negative price", "models:\n- {id: x, class: c, prices: {inputPerMTok: -1, outputPerMTok: 1}}\n", "prices.inputPerMTok must be a finite number >= 0"},
		{"missing output price", "models:\n- {id: x, class: c, prices: {inputPerMTok: 1}}\n", "prices.inputPerMTok and prices.outputPerMTok are required"},
		{"no class", "models:\n- {id: x, prices: {inputPerMTok: 1, outputPerMTok: 1}}\n", "model x: class is required"},
		{"no id", "models:\n- {class: c, prices: {inputPerMTok: 1, outputPerMTok: 1}}\n", "has no id"},
		{"alias taken", "models:\n- {id: x, aliases: [claude-sonnet-4-5], class: c, prices: {inputPerMTok: 1, outputPerMTok: 1}}\n", `"claude-sonnet-4-5" is used twice`},
		{"batch discount above 1", "models:\n- {id: x, class: c, prices: {inputPerMTok: 1, outputPerMTok: 1, batchDiscount: 1.5}}\n", "batchDiscount must be between 0 and 1"},
		{"unknown tier", "classes:\n  sonnet-4:\n    limits:\n      tier-9: {requestsPerMinute: 1, inputTokensPerMinute: 1, outputTokensPerMinute: 1}\n", `unknown tier "tier-9"`},
		{"zero limit", "classes:\n  sonnet-4:\n    limits:\n      tier-1: {requestsPerMinute: 0, inputTokensPerMinute: 1, outputTokensPerMinute: 1}\n", "must all be positive"},
		{"bigger tier smaller", "classes:\n  sonnet-4:\n    limits:\n      tier-3: {requestsPerMinute: 10, inputTokensPerMinute: 10, outputTokensPerMinute: 10}\n", "tier-3 limits are below tier-2 limits"},
		{"duplicate tier", "tiers: [tier-1, tier-1]\n", "tier-1 is listed twice"},
		{"bad long context", "models:\n- {id: x, class: c, prices: {inputPerMTok: 1, outputPerMTok: 1}, longContext: {aboveInputTokens: 0, inputPerMTok: 2, outputPerMTok: 2}}\n", "longContext needs aboveInputTokens > 0"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadCatalog(writeCatalogFile(t, tc.content))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), "catalog.yaml") {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
	if _, err := LoadCatalog(filepath.Join(t.TempDir(), "missing.yaml")); err == nil || !strings.Contains(err.Error(), "reading model catalog") {
		t.Errorf("missing file: error = %v", err)
	}
}

func TestBrokenBuiltinCatalogExplainsItselfInsteadOfPanicking(t *testing.T) {
	c := parseBuiltinCatalog([]byte("tiers: [\n"))
	if _, err := c.Model("claude-sonnet-4-5"); err == nil || !strings.Contains(err.Error(), "built-in model catalog") {
		t.Errorf("Model on a broken catalog: %v", err)
	}
	if _, err := c.Limits("sonnet-4", "tier-1"); err == nil {
		t.Error("Limits on a broken catalog returned no error")
	}
	if _, err := Plan(c, PlanInput{Model: "claude-sonnet-4-5", RequestsPerMinute: 1}); err == nil {
		t.Error("Plan on a broken catalog returned no error")
	}
	if _, err := c.Overlay([]byte("asOf: x\n")); err == nil {
		t.Error("Overlay on a broken catalog returned no error")
	}
	if c := parseBuiltinCatalog([]byte("asOf: x\n")); c.broken == nil || !strings.Contains(c.broken.Error(), "tiers is required") {
		t.Errorf("catalog without tiers: %v", c.broken)
	}
}

// FuzzCatalogOverlay feeds arbitrary bytes as a user catalog: nothing panics, and any catalog
// that loads is consistent (every name resolves, tiers never shrink, prices are not negative)
// and can be planned with.
func FuzzCatalogOverlay(f *testing.F) {
	f.Add([]byte("asOf: x\n"))
	f.Add([]byte("models:\n- {id: m, aliases: [n], class: k, prices: {inputPerMTok: 1, outputPerMTok: 2}}\nclasses:\n  k:\n    limits:\n      tier-1: {requestsPerMinute: 5, inputTokensPerMinute: 5, outputTokensPerMinute: 5}\n"))
	f.Add([]byte("tiers: [a, b]\nclasses:\n  sonnet-4:\n    limits:\n      b: {requestsPerMinute: 1, inputTokensPerMinute: 1, outputTokensPerMinute: 1}\n"))
	f.Add([]byte("pricing: {cacheReadMultiplier: 3, batchDiscount: 1}\n"))
	f.Add([]byte("{]"))
	base := DefaultCatalog()
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := base.Overlay(data)
		if err != nil {
			return
		}
		tiers := c.Tiers()
		for _, m := range c.Models() {
			for _, name := range append([]string{m.ID}, m.Aliases...) {
				got, err := c.Model(name)
				if err != nil || got.ID != m.ID {
					t.Fatalf("name %q of model %q resolves to %q, %v", name, m.ID, got.ID, err)
				}
			}
			p := m.Prices
			for _, v := range []float64{p.InputPerMTok, p.OutputPerMTok, p.CacheWrite5mPerMTok, p.CacheWrite1hPerMTok, p.CacheReadPerMTok} {
				if !finiteAtLeastZero(v) {
					t.Fatalf("model %s has price %v", m.ID, v)
				}
			}
			var prev TierLimits
			for _, tier := range tiers {
				l, err := c.Limits(m.Class, tier)
				if err != nil {
					continue
				}
				if l.Amounts().Sub(prev.Amounts()).AnyNegative() {
					t.Fatalf("class %s: %s limits %+v shrink below %+v", m.Class, tier, l, prev)
				}
				prev = l
			}
			res, err := Plan(c, PlanInput{Model: m.ID, RequestsPerMinute: 100, AvgInputTokens: 500, AvgOutputTokens: 200})
			if err != nil {
				t.Fatalf("planning %s: %v", m.ID, err)
			}
			if res.Cost.MonthlyUSD < 0 {
				t.Fatalf("negative cost %v", res.Cost.MonthlyUSD)
			}
		}
	})
}

// TierLimits and the plan's per-dimension types are arrays in code and objects with one
// member per dimension in catalog.yaml and in `claudecap plan -o json`.
func TestPerDimensionJSON(t *testing.T) {
	for _, tc := range []struct {
		value any
		want  string
	}{
		{TierLimits{50, 30_000, 8_000}, `{"requestsPerMinute":50,"inputTokensPerMinute":30000,"outputTokensPerMinute":8000}`},
		{PlanRates{1.5, 2, 3}, `{"requestsPerMinute":1.5,"inputTokensPerMinute":2,"outputTokensPerMinute":3}`},
		{PlanUtilization{0.5, 0, 1}, `{"requests":0.5,"inputTokens":0,"outputTokens":1}`},
		{PlanLimits{}, `{}`},
		{PlanLimits{Tier: "tier-2"}, `{"tier":"tier-2"}`},
		{PlanLimits{Tier: "tier-2", Explicit: TierLimits{dimension.OutputTokens: 7}}, `{"tier":"tier-2","outputTokensPerMinute":7}`},
		{PlanLimits{Explicit: TierLimits{dimension.Requests: 5}}, `{"requestsPerMinute":5}`},
	} {
		got, err := json.Marshal(tc.value)
		if err != nil || string(got) != tc.want {
			t.Errorf("%#v: got %s (%v), want %s", tc.value, got, err, tc.want)
			continue
		}
		back := reflect.New(reflect.TypeOf(tc.value))
		if err := json.Unmarshal(got, back.Interface()); err != nil || back.Elem().Interface() != tc.value {
			t.Errorf("%s read back as %#v (%v)", got, back.Elem().Interface(), err)
		}
	}
	var l PlanLimits
	if err := json.Unmarshal([]byte(`{"tier":"tier-1","tiers":"x"}`), &l); err == nil {
		t.Error("PlanLimits accepted an unknown member")
	}
}
