package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/claudecap/claudecap/pkg/dimension"

	"sigs.k8s.io/yaml"

	"github.com/claudecap/claudecap/pkg/capacity"
)

// runPlan executes `claudecap plan args...` in-process, through the root command as a user
// would, and returns what it printed.
func runPlan(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	root := NewRootCommand()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(append([]string{"plan"}, args...))
	err := root.Execute()
	return out.String(), err
}

func writePlanFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

var planSeedArgs = []string{"--rpm", "100", "--input-tokens", "500", "--output-tokens", "200", "--model", "claude-sonnet-4"}

func TestPlanCommandPrintsSeedExample(t *testing.T) {
	out, err := runPlan(t, "", planSeedArgs...)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		`Model +claude-sonnet-4-20250514 \(rate-limit pool sonnet-4, catalog as of 2026-04\)`,
		`\n  Requests +100\n`,
		`\n  Input tokens +50,000\n`,
		`\n  Output tokens +20,000\n`,
		`\n  Per request +\$0\.0045\n`,
		`\n  Per month +\$19,440\.00 +\(30 days\)\n`,
		`\ntier-1 +200% of 50 +166\.7% of 30,000 +250% of 8,000 +no\n`,
		`\ntier-2 +10% of 1,000 +11\.1% of 450,000 +22\.2% of 90,000 +yes  <- smallest\n`,
		`\nSmallest tier +tier-2, bound by output tokens\n`,
		`output tokens 20,000/min needed, 8,000 allowed`,
	} {
		if !regexp.MustCompile(line).MatchString(out) {
			t.Errorf("output does not match %s:\n%s", line, out)
		}
	}
	if strings.Contains(out, "Replicas") || strings.Contains(out, "Declared") {
		t.Errorf("replicas or declared limits printed without being asked for:\n%s", out)
	}
}

func TestPlanCommandJSONAndYAML(t *testing.T) {
	args := append([]string{"--per-replica-rpm", "30", "--tier", "tier-1"}, planSeedArgs...)
	decoders := map[string]func([]byte, any) error{"json": json.Unmarshal, "yaml": func(b []byte, v any) error { return yaml.UnmarshalStrict(b, v) }}
	for format, decode := range decoders {
		t.Run(format, func(t *testing.T) {
			out, err := runPlan(t, "", append(args, "-o", format)...)
			if err != nil {
				t.Fatal(err)
			}
			var res capacity.PlanResult
			if err := decode([]byte(out), &res); err != nil {
				t.Fatalf("decoding %s output: %v\n%s", format, err, out)
			}
			if res.Needed != (capacity.PlanRates{100, 50_000, 20_000}) {
				t.Errorf("needed = %+v", res.Needed)
			}
			if res.Cost.PerRequestUSD != 0.0045 || res.Cost.MonthlyUSD != 19_440 {
				t.Errorf("cost = %+v", res.Cost)
			}
			if res.SmallestTier != "tier-2" || res.Binding != capacity.PlanDimensionOf(dimension.OutputTokens) || len(res.Tiers) != 4 {
				t.Errorf("tier %s binding %s tiers %d", res.SmallestTier, res.Binding, len(res.Tiers))
			}
			if res.Replicas == nil || *res.Replicas != 4 {
				t.Errorf("replicas = %v, want 4", res.Replicas)
			}
			if res.Declared == nil || res.Declared.Fits || res.Input.Limits.Tier != "tier-1" {
				t.Errorf("declared = %+v, want tier-1 not to fit", res.Declared)
			}
		})
	}
}

func TestPlanCommandRejectsBadInput(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"unknown model", []string{"--model", "gpt-4o"}, `unknown model "gpt-4o"`},
		{"negative traffic", []string{"--rpm", "-5"}, "requests per minute must be between 0 and 1,000,000,000, got -5"},
		{"cache hit ratio above 1", []string{"--cache-hit-ratio", "1.5"}, "cache hit ratio must be between 0 and 1, got 1.5"},
		{"batch share above 1", []string{"--batch-share", "2"}, "batch share must be between 0 and 1, got 2"},
		{"cache shares over 1", []string{"--cache-hit-ratio", "0.8", "--cache-write-ratio", "0.3"}, "must add up to at most 1"},
		{"headroom zero", []string{"--headroom", "0"}, "--headroom must be above 0 and at most 100 percent, got 0"},
		{"headroom over 100", []string{"--headroom", "101"}, "headroom must be above 0 and at most 100 percent, got 101"},
		{"unknown output", []string{"-o", "xml"}, `unknown output format "xml": use table, json or yaml`},
		{"unknown tier", []string{"--tier", "tier-7"}, `unknown tier "tier-7": known tiers are tier-1, tier-2, tier-3, tier-4`},
		{"non-positive limit", []string{"--limit-otpm", "0"}, "--limit-otpm must be a positive number"},
		{"not a number", []string{"--input-tokens", "lots"}, `invalid argument "lots"`},
		{"stray argument", []string{"extra"}, `unknown command "extra"`},
		{"missing catalog", []string{"--catalog", "/nonexistent/catalog.yaml"}, "reading model catalog"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Later flags win, so each case overrides one value of the otherwise valid seed.
			_, err := runPlan(t, "", append(append([]string{}, planSeedArgs...), tc.args...)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	t.Run("unknown model lists the known ones", func(t *testing.T) {
		_, err := runPlan(t, "", "--rpm", "1", "--input-tokens", "1", "--output-tokens", "1", "--model", "claude-9")
		if err == nil || !strings.Contains(err.Error(), "claude-sonnet-4-5-20250929 (claude-sonnet-4-5)") {
			t.Errorf("error = %v", err)
		}
	})
	t.Run("traffic required without a manifest", func(t *testing.T) {
		_, err := runPlan(t, "", "--rpm", "100")
		if err == nil || !strings.Contains(err.Error(), "describe the traffic with --input-tokens, --output-tokens, or plan a manifest with -f FILE") {
			t.Errorf("error = %v", err)
		}
	})
}

const planSummarizerManifest = `# a Deployment next to its ClaudeCapacity, as kubectl apply -f files often have
apiVersion: apps/v1
kind: Deployment
metadata: {name: summarizer-workers}
---
apiVersion: capacity.claudecap.io/v1alpha1
kind: ClaudeCapacity
metadata: {name: summarizer, namespace: ai}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: summarizer-workers}
  model: claude-sonnet-4-5
  limits:
    tier: tier-2
    outputTokensPerMinute: 60000
  traffic:
    requestsPerMinute: 300
    avgInputTokens: 1200
    avgOutputTokens: 300
    cacheHitRatio: 0.6
    batchShare: 0.2
  worker: {requestsPerMinutePerReplica: 30}
  replicas: {min: 0, max: 50}
`

func TestPlanCommandReadsManifest(t *testing.T) {
	path := writePlanFile(t, "summarizer.yaml", planSummarizerManifest)
	decode := func(t *testing.T, out string) capacity.PlanResult {
		t.Helper()
		var res capacity.PlanResult
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return res
	}

	t.Run("as declared", func(t *testing.T) {
		out, err := runPlan(t, "", "-f", path, "-o", "json")
		if err != nil {
			t.Fatal(err)
		}
		res := decode(t, out)
		want := capacity.PlanInput{Model: "claude-sonnet-4-5", RequestsPerMinute: 300, AvgInputTokens: 1200, AvgOutputTokens: 300,
			CacheHitRatio: 0.6, BatchShare: 0.2, HeadroomPercent: 90, ReplicaRequestsPerMinute: 30,
			Limits: &capacity.PlanLimits{Tier: "tier-2", Explicit: capacity.TierLimits{dimension.OutputTokens: 60_000}}}
		if res.Input.Limits == nil || *res.Input.Limits != *want.Limits {
			t.Fatalf("limits = %+v, want %+v", res.Input.Limits, want.Limits)
		}
		got := res.Input
		got.Limits, want.Limits = nil, nil
		if got != want {
			t.Errorf("input = %+v, want %+v (headroom defaults to the CRD's 90)", got, want)
		}
		// 240 Messages RPM * 300 output tokens = 72,000 OTPM: over the declared 60,000 * 90%.
		if res.Declared == nil || res.Declared.Fits || !strings.Contains(res.Declared.Reason, "output tokens 72,000/min needed, 54,000 allowed") {
			t.Errorf("declared = %+v", res.Declared)
		}
		if res.Replicas == nil || *res.Replicas != 8 {
			t.Errorf("replicas = %v, want 240/30 = 8", res.Replicas)
		}
	})

	t.Run("a member of an organization plans offline", func(t *testing.T) {
		member := strings.Replace(planSummarizerManifest, "  limits:\n    tier: tier-2\n    outputTokensPerMinute: 60000\n",
			"  organizationRef: {name: acme-prod}\n", 1)
		if member == planSummarizerManifest {
			t.Fatal("the manifest's limits were not replaced")
		}
		out, err := runPlan(t, "", "-f", writePlanFile(t, "member.yaml", member), "-o", "json")
		if err != nil {
			t.Fatal(err)
		}
		res := decode(t, out)
		// The organization's limits live in the cluster: the plan says which tier fits.
		if res.Input.Limits != nil || res.Declared != nil || res.SmallestTier != "tier-2" {
			t.Errorf("limits %+v, declared %+v, smallest tier %q", res.Input.Limits, res.Declared, res.SmallestTier)
		}
	})

	t.Run("explicit flags override, defaults do not", func(t *testing.T) {
		out, err := runPlan(t, "", "-f", path, "-o", "json", "--model", "claude-haiku-4-5", "--rpm", "600", "--limit-otpm", "200000")
		if err != nil {
			t.Fatal(err)
		}
		in := decode(t, out).Input
		if in.Model != "claude-haiku-4-5" || in.RequestsPerMinute != 600 || in.Limits.Explicit[dimension.OutputTokens] != 200_000 {
			t.Errorf("flags did not override: %+v", in)
		}
		if in.HeadroomPercent != 90 || in.AvgInputTokens != 1200 || in.CacheHitRatio != 0.6 || in.Limits.Tier != "tier-2" {
			t.Errorf("flag defaults replaced manifest values: %+v", in)
		}
	})

	t.Run("stdin and table", func(t *testing.T) {
		out, err := runPlan(t, planSummarizerManifest, "-f", "-", "--headroom", "100")
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"Prompt cache", "60% of input tokens read from cache", "Message Batches", "20% of requests (60/min)",
			"DO NOT FIT (tier-2)", "output tokens 72,000/min needed, 60,000 allowed"} {
			if !strings.Contains(out, want) {
				t.Errorf("table misses %q:\n%s", want, out)
			}
		}
		for _, want := range []string{`\nHeadroom +100% of each limit\n`, `\nReplicas +8 +\(at 30 requests/min each\)\n`} {
			if !regexp.MustCompile(want).MatchString(out) {
				t.Errorf("table does not match %s:\n%s", want, out)
			}
		}
	})
}

func TestPlanCommandRejectsBadManifests(t *testing.T) {
	second := strings.Replace(planSummarizerManifest[strings.Index(planSummarizerManifest, "---"):], "name: summarizer,", "name: translator,", 1)
	cases := []struct {
		name, content, want string
	}{
		{"no ClaudeCapacity", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n", "holds no ClaudeCapacity"},
		{"two ClaudeCapacities", planSummarizerManifest + second, "holds 2 ClaudeCapacities (summarizer, translator); plan one at a time"},
		{"misspelled field", "apiVersion: capacity.claudecap.io/v1alpha1\nkind: ClaudeCapacity\nspec: {traffic: {requestsPerMinutes: 5}}\n", `unknown field "requestsPerMinutes"`},
		{"other API group", "apiVersion: example.com/v1\nkind: ClaudeCapacity\n", `apiVersion "example.com/v1" is not capacity.claudecap.io/v1alpha1`},
		{"not YAML", "kind: [\n", "manifest"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := writePlanFile(t, "cc.yaml", tc.content)
			_, err := runPlan(t, "", "-f", path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	if _, err := runPlan(t, "", "-f", filepath.Join(t.TempDir(), "missing.yaml")); err == nil || !strings.Contains(err.Error(), "reading manifest") {
		t.Errorf("missing manifest: %v", err)
	}
}

func TestPlanCommandUsesCatalogFile(t *testing.T) {
	catalog := writePlanFile(t, "catalog.yaml", `
asOf: "2026-07-01"
classes:
  opus-4:
    limits:
      tier-1: {requestsPerMinute: 100, inputTokensPerMinute: 60000, outputTokensPerMinute: 16000}
models:
  - {id: claude-opus-4-7, class: opus-4, prices: {inputPerMTok: 5, outputPerMTok: 25}}
`)
	out, err := runPlan(t, "", "--catalog", catalog, "--model", "claude-opus-4-7", "--rpm", "100", "--input-tokens", "500", "--output-tokens", "100", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var res capacity.PlanResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	// (500*5 + 100*25) / 1e6 = $0.005; tier-1 now carries 100 RPM and 50,000 ITPM.
	if res.CatalogAsOf != "2026-07-01" || res.Cost.PerRequestUSD != 0.005 || res.SmallestTier != "tier-1" {
		t.Errorf("catalog override not used: as of %s, cost %v, tier %s", res.CatalogAsOf, res.Cost.PerRequestUSD, res.SmallestTier)
	}

	bad := writePlanFile(t, "bad.yaml", "models:\n- {id: x, class: c, prices: {inputPerMTok: -1, outputPerMTok: 1}}\n")
	if _, err := runPlan(t, "", append([]string{"--catalog", bad}, planSeedArgs...)...); err == nil || !strings.Contains(err.Error(), "bad.yaml") {
		t.Errorf("bad catalog: %v", err)
	}
}

// TestPlanCommandCompletion asks cobra's hidden completion command what a shell would.
func TestPlanCommandCompletion(t *testing.T) {
	complete := func(t *testing.T, args ...string) []string {
		t.Helper()
		root := NewRootCommand()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&bytes.Buffer{})
		root.SetArgs(append([]string{"__complete", "plan"}, args...))
		if err := root.Execute(); err != nil {
			t.Fatal(err)
		}
		return strings.Split(strings.TrimSpace(out.String()), "\n")
	}
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"models", []string{"--model", "claude-so"}, []string{"claude-sonnet-4-5", "claude-sonnet-4-5-20250929", "claude-sonnet-4-6", ":4"}},
		{"output formats", []string{"-o", ""}, []string{"table\taligned text for people", "json\tthe full plan as JSON", "yaml\tthe full plan as YAML", ":4"}},
		{"tiers", []string{"--tier", "t"}, []string{"tier-1", "tier-4", ":4"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := complete(t, tc.args...)
			for _, want := range tc.want {
				if !planHasLine(got, want) {
					t.Errorf("completions %q miss %q", got, want)
				}
			}
		})
	}
	t.Run("models from the catalog in use", func(t *testing.T) {
		catalog := writePlanFile(t, "catalog.yaml", "models:\n- {id: claude-opus-4-7, class: opus-4, prices: {inputPerMTok: 5, outputPerMTok: 25}}\n")
		if got := complete(t, "--catalog", catalog, "--model", "claude-opus-4-"); !planHasLine(got, "claude-opus-4-7") {
			t.Errorf("completions %q miss the catalog file's model", got)
		}
	})
}

func planHasLine(lines []string, want string) bool {
	for _, l := range lines {
		if l == want {
			return true
		}
	}
	return false
}
