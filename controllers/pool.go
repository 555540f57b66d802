package controllers

import (
	"context"

	"sigs.k8s.io/controller-runtime/pkg/client"

	capacityv1alpha1 "github.com/claudecap/claudecap/api/v1alpha1"
	"github.com/claudecap/claudecap/internal/specconv"
	"github.com/claudecap/claudecap/pkg/capacity"
	"github.com/claudecap/claudecap/pkg/dimension"
)

// poolIndexKey indexes the ClaudeCapacities bound to an organization by
// "<organization>/<model class>", the budget pool they share. Private pools are not indexed:
// they have one member.
const poolIndexKey = "spec.pool"

// poolIndex is the index function: a private pool, or a ClaudeCapacity whose model is
// unknown, is in no shared pool.
func (r *ClaudeCapacityReconciler) poolIndex(obj client.Object) []string {
	cc := obj.(*capacityv1alpha1.ClaudeCapacity)
	if cc.Spec.OrganizationRef == nil {
		return nil
	}
	model, err := r.Catalog.Model(cc.Spec.Model)
	if err != nil {
		return nil
	}
	return []string{orgPoolIndexValue(cc.Spec.OrganizationRef.Name, model.Class)}
}

// poolMembers lists the other members of this workload's pool: the organization's members
// of the same class (itself included), or nothing for a private pool. The items are the
// cache's own objects: callers must not modify them.
func (r *ClaudeCapacityReconciler) poolMembers(ctx context.Context, s *scope) ([]capacityv1alpha1.ClaudeCapacity, error) {
	if s.org == nil {
		return nil, nil
	}
	return orgMembers(ctx, r.Client, s.org, s.model.Class)
}

// poolClaims builds the pool and every member's claim. The pool's limits and headroom are
// the organization's (or the private pool's): members cannot change them. This
// ClaudeCapacity claims its fresh demand; the others claim the demand their last reconcile
// wrote to status, so each member's decision sees the others as of at most one poll ago.
func (r *ClaudeCapacityReconciler) poolClaims(s *scope, members []capacityv1alpha1.ClaudeCapacity, own capacity.Demand) (capacity.Pool, []capacity.Claim) {
	pool := capacity.Pool{
		Limits:          s.limits.Amounts(),
		HeadroomPercent: s.headroom(),
	}
	self := client.ObjectKeyFromObject(s.cc)
	claims := []capacity.Claim{newClaim(s.org, s.cc, s.model, own)}
	for i := range members {
		m := &members[i]
		if client.ObjectKeyFromObject(m) == self {
			continue
		}
		if c, ok := memberClaim(r.Catalog, s.org, m); ok {
			claims = append(claims, c)
		}
	}
	return pool, claims
}

// observedRateProfile replaces a sibling's declared tokens per request with those its
// status reports, once enough requests back them.
func observedRateProfile(declared capacity.RequestProfile, o *capacityv1alpha1.ObservedStatus) capacity.RequestProfile {
	if o == nil {
		return declared
	}
	usage := specconv.RateAmounts(o.RateStatus)
	if usage[dimension.Requests] < minObservedRequests {
		return declared
	}
	return capacity.ObservedProfile(usage)
}
