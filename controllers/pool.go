package controllers

import (
	"context"
	"fmt"

	"sigs.k8s.io/controller-runtime/pkg/client"

	capacityv1alpha1 "github.com/claudecap/claudecap/api/v1alpha1"
	"github.com/claudecap/claudecap/internal/specplan"
	"github.com/claudecap/claudecap/pkg/capacity"
)

// poolIndexKey indexes ClaudeCapacities by "<organization>/<model class>", the budget
// pool they share.
const poolIndexKey = "spec.pool"

func poolName(organization string, class capacity.ModelClass) string {
	return organization + "/" + string(class)
}

// poolIndex is the index function: a ClaudeCapacity whose model is unknown is in no pool.
func (r *ClaudeCapacityReconciler) poolIndex(obj client.Object) []string {
	cc := obj.(*capacityv1alpha1.ClaudeCapacity)
	model, err := r.Catalog.Model(cc.Spec.Model)
	if err != nil {
		return nil
	}
	return []string{poolName(cc.Spec.Organization, model.Class)}
}

// poolMembers lists every ClaudeCapacity in the same pool, across namespaces, itself included.
// The items are the cache's own objects: callers must not modify them.
func (r *ClaudeCapacityReconciler) poolMembers(ctx context.Context, s *scope) ([]capacityv1alpha1.ClaudeCapacity, error) {
	var list capacityv1alpha1.ClaudeCapacityList
	pool := poolName(s.cc.Spec.Organization, s.model.Class)
	// Read-only use: skip the cache's deep copy of every member on every poll.
	if err := r.List(ctx, &list, client.MatchingFields{poolIndexKey: pool}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing the members of pool %s: %w", pool, err)
	}
	return list.Items, nil
}

// poolClaims builds the pool and every member's claim. This ClaudeCapacity claims its
// fresh demand; siblings claim the demand their last reconcile wrote to status, so each
// member's decision sees the others as of at most one poll ago. The pool's limits and
// headroom are the most conservative any member declares: members that disagree about the
// organization's limits must not together exceed the smallest.
func (r *ClaudeCapacityReconciler) poolClaims(s *scope, members []capacityv1alpha1.ClaudeCapacity, own capacity.Demand) (capacity.Pool, []capacity.Claim) {
	pool := capacity.Pool{
		Limits: capacity.PerDimension{
			s.limits.RequestsPerMinute, s.limits.InputTokensPerMinute, s.limits.OutputTokensPerMinute,
		},
		HeadroomPercent: s.cc.Spec.HeadroomPercent,
	}
	self := client.ObjectKeyFromObject(s.cc)
	claims := []capacity.Claim{r.claim(s.cc, s.model, own)}
	for i := range members {
		m := &members[i]
		if client.ObjectKeyFromObject(m) == self || !m.DeletionTimestamp.IsZero() {
			continue
		}
		if l := m.Status.Limits; l != nil {
			pool.Limits = capacity.PerDimension{
				minPositive(pool.Limits[capacity.Requests], l.RequestsPerMinute),
				minPositive(pool.Limits[capacity.InputTokens], l.InputTokensPerMinute),
				minPositive(pool.Limits[capacity.OutputTokens], l.OutputTokensPerMinute),
			}
		}
		pool.HeadroomPercent = min(pool.HeadroomPercent, max(m.Spec.HeadroomPercent, 1))
		model, err := r.Catalog.Model(m.Spec.Model)
		if err != nil {
			continue
		}
		// A sibling claims what its last reconcile saw: its demand, and its measured
		// throughput and tokens per request where it has them, so that its claim in tokens
		// is what its replicas really use.
		demand := capacity.Demand{
			Replicas:             m.Status.DemandReplicas,
			ThroughputPerReplica: float64(m.Spec.Worker.RequestsPerMinutePerReplica),
		}
		if o := m.Status.Observed; o != nil && o.PerReplicaRequestsPerMinute > 0 {
			demand.ThroughputPerReplica = float64(o.PerReplicaRequestsPerMinute)
		}
		c := r.claim(m, model, demand)
		c.Profile = observedRateProfile(c.Profile, m.Status.Observed)
		claims = append(claims, c)
	}
	return pool, claims
}

func (r *ClaudeCapacityReconciler) claim(cc *capacityv1alpha1.ClaudeCapacity, model capacity.Model, d capacity.Demand) capacity.Claim {
	return capacity.NewClaim(client.ObjectKeyFromObject(cc).String(), max(cc.Spec.Weight, 1), d,
		cc.Spec.Replicas.Min, cc.Spec.Replicas.Max, specplan.RequestProfile(cc.Spec.Traffic, model))
}

func minPositive(a, b int64) int64 {
	switch {
	case a <= 0:
		return b
	case b <= 0:
		return a
	default:
		return min(a, b)
	}
}

// observedRateProfile replaces a sibling's declared tokens per request with those its
// status reports, once enough requests back them.
func observedRateProfile(declared capacity.RequestProfile, o *capacityv1alpha1.ObservedStatus) capacity.RequestProfile {
	if o == nil || o.RequestsPerMinute < minObservedRequests {
		return declared
	}
	n := float64(o.RequestsPerMinute)
	return capacity.RequestProfile{InputTokens: float64(o.InputTokensPerMinute) / n, OutputTokens: float64(o.OutputTokensPerMinute) / n}
}
