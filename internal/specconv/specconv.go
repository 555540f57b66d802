// Package specconv converts a ClaudeCapacity spec into the inputs of the pure packages:
// the planner's input (PlanInput), the scaling behavior (Behavior) and the declared request
// profile (RequestProfile), so that `claudecap plan -f` and the controller compute the same
// thing from the same spec.
package specconv

import (
	"time"

	"k8s.io/utils/ptr"

	capacityv1alpha1 "github.com/claudecap/claudecap/api/v1alpha1"
	"github.com/claudecap/claudecap/pkg/capacity"
	"github.com/claudecap/claudecap/pkg/dimension"
)

// PlanInput is what a ClaudeCapacity declares, in the planner's terms. A member of an
// organization declares no limits: the controller fills in the organization's.
func PlanInput(spec capacityv1alpha1.ClaudeCapacitySpec) capacity.PlanInput {
	in := capacity.PlanInput{
		Model:             spec.Model,
		RequestsPerMinute: float64(spec.Traffic.RequestsPerMinute),
		AvgInputTokens:    float64(spec.Traffic.AvgInputTokens),
		AvgOutputTokens:   float64(spec.Traffic.AvgOutputTokens),
		// A manifest read from a file has not been through the API server's defaulting.
		HeadroomPercent:          float64(spec.HeadroomPercentOrDefault()),
		ReplicaRequestsPerMinute: float64(spec.Worker.RequestsPerMinutePerReplica),
		CacheHitRatio:            ptr.Deref(spec.Traffic.CacheHitRatio, 0),
		BatchShare:               ptr.Deref(spec.Traffic.BatchShare, 0),
	}
	if l := spec.Limits; l != nil {
		limits := capacity.PlanLimits{Tier: string(l.Tier), Explicit: capacity.TierLimits(LimitAmounts(l))}
		if limits != (capacity.PlanLimits{}) {
			in.Limits = &limits
		}
	}
	return in
}

// Behavior is the spec's scaling behavior in the decision's terms: each direction the spec
// leaves out, and each field of a direction it leaves out, keeps capacity.DefaultBehavior.
func Behavior(spec *capacityv1alpha1.Behavior) capacity.Behavior {
	b := capacity.DefaultBehavior()
	if spec == nil {
		return b
	}
	b.ScaleUp = scalingRules(spec.ScaleUp, b.ScaleUp)
	b.ScaleDown = scalingRules(spec.ScaleDown, b.ScaleDown)
	return b
}

func scalingRules(spec *capacityv1alpha1.ScalingRules, def capacity.ScalingRules) capacity.ScalingRules {
	if spec == nil {
		return def
	}
	r := def
	if spec.StabilizationSeconds != nil {
		r.StabilizationWindow = time.Duration(*spec.StabilizationSeconds) * time.Second
	}
	if spec.SelectPolicy != nil {
		r.SelectPolicy = capacity.SelectPolicy(*spec.SelectPolicy)
	}
	if len(spec.Policies) > 0 {
		r.Policies = make([]capacity.ScalingPolicy, 0, len(spec.Policies))
		for _, p := range spec.Policies {
			r.Policies = append(r.Policies, capacity.ScalingPolicy{
				Type:   capacity.PolicyType(p.Type),
				Value:  p.Value,
				Period: time.Duration(p.PeriodSeconds) * time.Second,
			})
		}
	}
	return r
}

// RequestProfile is the declared average request as the token limits count it: input
// tokens less the cache reads where the model's limit excludes them.
func RequestProfile(traffic capacityv1alpha1.Traffic, model capacity.Model) capacity.RequestProfile {
	input := float64(traffic.AvgInputTokens)
	if !model.CacheReadsCountTowardITPM {
		input *= 1 - ptr.Deref(traffic.CacheHitRatio, 0)
	}
	return capacity.ProfileOf(dimension.Rates{dimension.InputTokens: input, dimension.OutputTokens: float64(traffic.AvgOutputTokens)})
}
