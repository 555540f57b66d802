package specplan

import (
	"testing"

	"k8s.io/utils/ptr"

	capacityv1alpha1 "github.com/claudecap/claudecap/api/v1alpha1"
	"github.com/claudecap/claudecap/pkg/capacity"
)

func TestPlanInputCarriesEverySpecField(t *testing.T) {
	spec := capacityv1alpha1.ClaudeCapacitySpec{
		Model:   "claude-haiku-4-5",
		Limits:  capacityv1alpha1.Limits{Tier: capacityv1alpha1.Tier3, OutputTokensPerMinute: ptr.To[int64](7)},
		Traffic: capacityv1alpha1.Traffic{RequestsPerMinute: 11, AvgInputTokens: 13, AvgOutputTokens: 17, CacheHitRatio: ptr.To(0.25), BatchShare: ptr.To(0.5)},
		Worker:  capacityv1alpha1.Worker{RequestsPerMinutePerReplica: 19},
	}
	got := PlanInput(spec)
	want := capacity.PlanInput{
		Model: "claude-haiku-4-5", RequestsPerMinute: 11, AvgInputTokens: 13, AvgOutputTokens: 17,
		CacheHitRatio: 0.25, BatchShare: 0.5, HeadroomPercent: DefaultHeadroomPercent, ReplicaRequestsPerMinute: 19,
		Limits: &capacity.PlanLimits{Tier: "tier-3", OutputTokensPerMinute: 7},
	}
	if got.Limits == nil || *got.Limits != *want.Limits {
		t.Fatalf("limits = %+v, want %+v", got.Limits, want.Limits)
	}
	got.Limits, want.Limits = nil, nil
	if got != want {
		t.Fatalf("PlanInput = %+v, want %+v", got, want)
	}

	spec.HeadroomPercent = 40
	spec.Limits = capacityv1alpha1.Limits{}
	got = PlanInput(spec)
	if got.HeadroomPercent != 40 || got.Limits != nil {
		t.Fatalf("explicit headroom and no limits: got headroom %v limits %+v", got.HeadroomPercent, got.Limits)
	}
}
