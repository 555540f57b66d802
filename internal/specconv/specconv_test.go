package specconv

import (
	"reflect"
	"testing"
	"time"

	"github.com/claudecap/claudecap/pkg/dimension"

	"k8s.io/utils/ptr"

	capacityv1alpha1 "github.com/claudecap/claudecap/api/v1alpha1"
	"github.com/claudecap/claudecap/pkg/capacity"
)

func TestPlanInputCarriesEverySpecField(t *testing.T) {
	spec := capacityv1alpha1.ClaudeCapacitySpec{
		Model:   "claude-haiku-4-5",
		Limits:  &capacityv1alpha1.Limits{Tier: capacityv1alpha1.Tier3, OutputTokensPerMinute: ptr.To[int64](7)},
		Traffic: capacityv1alpha1.Traffic{RequestsPerMinute: 11, AvgInputTokens: 13, AvgOutputTokens: 17, CacheHitRatio: ptr.To(0.25), BatchShare: ptr.To(0.5)},
		Worker:  capacityv1alpha1.Worker{RequestsPerMinutePerReplica: 19},
	}
	got := PlanInput(spec)
	want := capacity.PlanInput{
		Model: "claude-haiku-4-5", RequestsPerMinute: 11, AvgInputTokens: 13, AvgOutputTokens: 17,
		CacheHitRatio: 0.25, BatchShare: 0.5, HeadroomPercent: float64(capacityv1alpha1.DefaultHeadroomPercent), ReplicaRequestsPerMinute: 19,
		Limits: &capacity.PlanLimits{Tier: "tier-3", Explicit: capacity.TierLimits{dimension.OutputTokens: 7}},
	}
	if got.Limits == nil || *got.Limits != *want.Limits {
		t.Fatalf("limits = %+v, want %+v", got.Limits, want.Limits)
	}
	got.Limits, want.Limits = nil, nil
	if got != want {
		t.Fatalf("PlanInput = %+v, want %+v", got, want)
	}

	spec.HeadroomPercent = 40
	spec.Limits = nil
	got = PlanInput(spec)
	if got.HeadroomPercent != 40 || got.Limits != nil {
		t.Fatalf("explicit headroom and no limits: got headroom %v limits %+v", got.HeadroomPercent, got.Limits)
	}
}

func TestBehaviorKeepsDefaultsForWhatTheSpecLeavesOut(t *testing.T) {
	def := capacity.DefaultBehavior()
	if got := Behavior(nil); !reflect.DeepEqual(got, def) {
		t.Fatalf("no behavior: %+v, want the default %+v", got, def)
	}
	spec := &capacityv1alpha1.Behavior{ScaleDown: &capacityv1alpha1.ScalingRules{
		StabilizationSeconds: ptr.To[int32](60),
		SelectPolicy:         ptr.To(capacityv1alpha1.SelectMin),
		Policies:             []capacityv1alpha1.ScalingPolicy{{Type: capacityv1alpha1.PodsScalingPolicy, Value: 2, PeriodSeconds: 30}},
	}}
	got := Behavior(spec)
	if !reflect.DeepEqual(got.ScaleUp, def.ScaleUp) {
		t.Fatalf("scale-up not in the spec must stay the default, got %+v", got.ScaleUp)
	}
	want := capacity.ScalingRules{
		StabilizationWindow: time.Minute,
		SelectPolicy:        capacity.SelectMin,
		Policies:            []capacity.ScalingPolicy{{Type: capacity.PodsPolicy, Value: 2, Period: 30 * time.Second}},
	}
	if !reflect.DeepEqual(got.ScaleDown, want) {
		t.Fatalf("scale-down = %+v, want %+v", got.ScaleDown, want)
	}
	// A direction that sets only its window keeps the default policies.
	onlyWindow := Behavior(&capacityv1alpha1.Behavior{ScaleUp: &capacityv1alpha1.ScalingRules{StabilizationSeconds: ptr.To[int32](15)}})
	if onlyWindow.ScaleUp.StabilizationWindow != 15*time.Second || !reflect.DeepEqual(onlyWindow.ScaleUp.Policies, def.ScaleUp.Policies) {
		t.Fatalf("window only: %+v", onlyWindow.ScaleUp)
	}
}

func TestRequestProfileCountsTokensAsTheLimitDoes(t *testing.T) {
	traffic := capacityv1alpha1.Traffic{AvgInputTokens: 1000, AvgOutputTokens: 300, CacheHitRatio: ptr.To(0.75)}
	current := RequestProfile(traffic, capacity.Model{CacheReadsCountTowardITPM: false})
	if current != (capacity.RequestProfile{dimension.Requests: 1, dimension.InputTokens: 250, dimension.OutputTokens: 300}) {
		t.Fatalf("current model: %+v, want cache reads excluded (250 input)", current)
	}
	old := RequestProfile(traffic, capacity.Model{CacheReadsCountTowardITPM: true})
	if old[dimension.InputTokens] != 1000 {
		t.Fatalf("a model whose cache reads count: %+v, want all 1000 input tokens", old)
	}
}
