// Package specplan translates a ClaudeCapacity spec into the capacity planner's
// input, so that `claudecap plan -f` and the controller plan the same thing.
package specplan

import (
	capacityv1alpha1 "github.com/claudecap/claudecap/api/v1alpha1"
	"github.com/claudecap/claudecap/pkg/capacity"
)

// DefaultHeadroomPercent is the CRD default of spec.headroomPercent. A manifest read from
// a file has not been through the API server's defaulting, so it is applied here.
const DefaultHeadroomPercent = 90

// PlanInput is what a ClaudeCapacity declares, in the planner's terms.
func PlanInput(spec capacityv1alpha1.ClaudeCapacitySpec) capacity.PlanInput {
	in := capacity.PlanInput{
		Model:                    spec.Model,
		RequestsPerMinute:        float64(spec.Traffic.RequestsPerMinute),
		AvgInputTokens:           float64(spec.Traffic.AvgInputTokens),
		AvgOutputTokens:          float64(spec.Traffic.AvgOutputTokens),
		HeadroomPercent:          float64(spec.HeadroomPercent),
		ReplicaRequestsPerMinute: float64(spec.Worker.RequestsPerMinutePerReplica),
		CacheHitRatio:            valueOr(spec.Traffic.CacheHitRatio, 0),
		BatchShare:               valueOr(spec.Traffic.BatchShare, 0),
	}
	if in.HeadroomPercent == 0 {
		in.HeadroomPercent = DefaultHeadroomPercent
	}
	limits := capacity.PlanLimits{
		Tier:                  string(spec.Limits.Tier),
		RequestsPerMinute:     valueOr(spec.Limits.RequestsPerMinute, 0),
		InputTokensPerMinute:  valueOr(spec.Limits.InputTokensPerMinute, 0),
		OutputTokensPerMinute: valueOr(spec.Limits.OutputTokensPerMinute, 0),
	}
	if limits != (capacity.PlanLimits{}) {
		in.Limits = &limits
	}
	return in
}

func valueOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}
