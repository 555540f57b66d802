package controllers

import (
	"context"
	"fmt"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

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
		demand := capacity.Demand{
			Replicas:             m.Status.DemandReplicas,
			ThroughputPerReplica: float64(m.Spec.Worker.RequestsPerMinutePerReplica),
		}
		claims = append(claims, r.claim(m, model, demand))
	}
	return pool, claims
}

func (r *ClaudeCapacityReconciler) claim(cc *capacityv1alpha1.ClaudeCapacity, model capacity.Model, d capacity.Demand) capacity.Claim {
	return capacity.NewClaim(client.ObjectKeyFromObject(cc).String(), max(cc.Spec.Weight, 1), d,
		cc.Spec.Replicas.Min, cc.Spec.Replicas.Max, specplan.RequestProfile(cc.Spec.Traffic, model))
}

// nudgeSiblings asks the pool's other members to decide again now: this member's claim
// changed, so their shares did too.
func (r *ClaudeCapacityReconciler) nudgeSiblings(s *scope, members []capacityv1alpha1.ClaudeCapacity) {
	self := client.ObjectKeyFromObject(s.cc)
	for i := range members {
		if client.ObjectKeyFromObject(&members[i]) == self {
			continue
		}
		select {
		case r.poolEvents <- event.GenericEvent{Object: members[i].DeepCopy()}:
		default: // the sibling polls soon anyway; never block a reconcile on the nudge
		}
	}
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
