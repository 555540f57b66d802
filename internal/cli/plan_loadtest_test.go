package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/claudecap/claudecap/pkg/dimension"

	"github.com/claudecap/claudecap/pkg/capacity"
	"github.com/claudecap/claudecap/pkg/loadtest"
)

// loadtestReport is what a run measured: 100 successful requests per minute of 500 input
// and 200 output tokens on Sonnet 4, 12.5 requests per minute per unit of concurrency, and
// the API's tier-2 limits in its headers.
func loadtestReport(t *testing.T, mutate func(*loadtest.Report)) string {
	t.Helper()
	r := &loadtest.Report{
		SchemaVersion: loadtest.SchemaVersion,
		Config:        loadtest.RunConfig{Target: loadtest.Target{Model: "claude-sonnet-4-20250514"}},
		Requests:      loadtest.RequestCounts{Sent: 100, Completed: 100, Succeeded: 100, Attempts: 100},
		Tokens:        loadtest.TokenStats{Input: 50_000, Output: 20_000, AvgInputTokens: 500, AvgOutputTokens: 200},
		Throughput:    loadtest.Throughput{RequestsPerMinute: 100, SuccessfulRequestsPerMinute: 100},
		RateLimits: map[loadtest.Dimension]loadtest.LimitObservation{
			loadtest.DimensionOf(dimension.Requests):     {Limit: 1000},
			loadtest.DimensionOf(dimension.InputTokens):  {Limit: 450_000},
			loadtest.DimensionOf(dimension.OutputTokens): {Limit: 90_000},
		},
		PerReplicaEquivalent: loadtest.ReplicaEquivalent{MeanConcurrency: 8, RequestsPerMinute: 12.5},
	}
	if mutate != nil {
		mutate(r)
	}
	var buf bytes.Buffer
	if err := r.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	return writePlanFile(t, "run.json", buf.String())
}

func TestPlanFromLoadtestUsesWhatWasMeasured(t *testing.T) {
	out, err := runPlan(t, "", "--from-loadtest", loadtestReport(t, nil), "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var res capacity.PlanResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("decoding %s: %v", out, err)
	}
	if res.Model != "claude-sonnet-4-20250514" || res.Needed.Ceil() != (capacity.TierLimits{100, 50_000, 20_000}) {
		t.Fatalf("plan of the measured traffic = %s %+v", res.Model, res.Needed)
	}
	if res.Replicas == nil || *res.Replicas != 8 {
		t.Fatalf("replicas = %v, want 8 (100 per minute at 12.5 per replica)", res.Replicas)
	}
	if res.Declared == nil || !res.Declared.Fits || res.Declared.Limits[dimension.OutputTokens] != 90_000 {
		t.Fatalf("declared limits from the report's headers = %+v, want tier 2's, fitting", res.Declared)
	}
}

func TestPlanFromLoadtestFlagsOverrideTheMeasurement(t *testing.T) {
	// Ten times the measured rate no longer fits the limits the API reported.
	out, err := runPlan(t, "", "--from-loadtest", loadtestReport(t, nil), "--rpm", "1000", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var res capacity.PlanResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	if res.Needed[dimension.OutputTokens] != 200_000 || res.Declared.Fits || res.SmallestTier != "tier-4" {
		t.Fatalf("at 1,000 per minute: needed %+v, declared fits %v, smallest %s", res.Needed, res.Declared.Fits, res.SmallestTier)
	}
}

func TestPlanFromLoadtestRefusesEmptyAndForeignReports(t *testing.T) {
	empty := loadtestReport(t, func(r *loadtest.Report) { r.Requests.Succeeded = 0 })
	if _, err := runPlan(t, "", "--from-loadtest", empty); err == nil || !strings.Contains(err.Error(), "completed no request successfully") {
		t.Fatalf("a run without successes: err = %v", err)
	}
	foreign := writePlanFile(t, "other.json", `{"schemaVersion": "something-else"}`)
	if _, err := runPlan(t, "", "--from-loadtest", foreign); err == nil || !strings.Contains(err.Error(), "schemaVersion") {
		t.Fatalf("another schema: err = %v", err)
	}
}
