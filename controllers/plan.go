package controllers

import (
	"context"
	"fmt"
	"math"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	capacityv1alpha1 "github.com/claudecap/claudecap/api/v1alpha1"
	"github.com/claudecap/claudecap/internal/specconv"
	"github.com/claudecap/claudecap/pkg/capacity"
)

// plan fills status.plan and status.limits from the declared traffic and limits, and
// says in PlanFits whether the traffic fits the limits at the headroom. The result is
// also what later steps use as the pool's effective limits.
func (r *ClaudeCapacityReconciler) plan(_ context.Context, s *scope) (ctrl.Result, error) {
	cc := s.cc
	model, err := r.Catalog.Model(cc.Spec.Model)
	if err != nil {
		cc.Status.Plan = nil
		setCondition(cc, capacityv1alpha1.ConditionPlanFits, metav1.ConditionFalse, capacityv1alpha1.ReasonUnknownModel, err.Error())
		return ctrl.Result{}, nil
	}
	s.model = model
	pool := poolKeyFor(cc, model.Class)
	cc.Status.Pool = pool.Organization + "/" + pool.Class

	in := specconv.PlanInput(cc.Spec)
	if cc.Spec.OrganizationRef != nil {
		// A member's limits and headroom are the organization's; an unbound member has none.
		in.Limits = nil
		if s.org != nil {
			in.Limits = orgPlanLimits(s.org, model.Class)
			in.HeadroomPercent = float64(s.org.Spec.HeadroomPercentOrDefault())
		}
	}
	res, err := capacity.Plan(r.Catalog, in)
	if err != nil {
		cc.Status.Plan = nil
		setCondition(cc, capacityv1alpha1.ConditionPlanFits, metav1.ConditionFalse, capacityv1alpha1.ReasonInvalidPlan, err.Error())
		return ctrl.Result{}, nil
	}

	needed := res.Needed.Ceil()
	cc.Status.Plan = &capacityv1alpha1.PlanStatus{
		RateStatus:        rateStatus(needed),
		CostPerRequestUSD: fmt.Sprintf("%.6f", res.Cost.PerRequestUSD),
		MonthlyCostUSD:    fmt.Sprintf("%.2f", res.Cost.MonthlyUSD),
		SmallestTier:      res.SmallestTier,
		BindingDimension:  string(res.Binding),
	}
	if res.Replicas != nil {
		cc.Status.Plan.Replicas = int32(min(*res.Replicas, math.MaxInt32)) //nolint:gosec // clamped to the int32 range
	}

	declared := res.Declared
	if declared == nil {
		cc.Status.Limits = nil
		switch {
		case cc.Spec.OrganizationRef == nil:
			// The API server requires a tier or all three explicit limits, so Plan always
			// checks declared limits; reaching here means the catalog lacks the class's tiers.
			setCondition(cc, capacityv1alpha1.ConditionPlanFits, metav1.ConditionUnknown, capacityv1alpha1.ReasonInvalidPlan,
				fmt.Sprintf("no limits known for model class %s", model.Class))
		case s.org != nil:
			setCondition(cc, capacityv1alpha1.ConditionPlanFits, metav1.ConditionFalse, capacityv1alpha1.ReasonNoLimitsForClass,
				fmt.Sprintf("ClaudeOrganization %s declares no limits for model class %s (no tier, no entry in limits.classes)",
					s.org.Name, model.Class))
		default:
			setCondition(cc, capacityv1alpha1.ConditionPlanFits, metav1.ConditionUnknown, capacityv1alpha1.ReasonOrganizationNotFound,
				"no limits until the organization binds (see OrganizationBound)")
		}
		return ctrl.Result{}, nil
	}
	s.limits = declared.Limits
	limits := rateStatus(declared.Limits)
	cc.Status.Limits = &limits
	r.checkLimitsDrift(s)
	if declared.Fits {
		setCondition(cc, capacityv1alpha1.ConditionPlanFits, metav1.ConditionTrue, capacityv1alpha1.ReasonPlanFits, declared.Reason)
	} else {
		setCondition(cc, capacityv1alpha1.ConditionPlanFits, metav1.ConditionFalse, capacityv1alpha1.ReasonPlanExceedsLimits, declared.Reason)
	}
	return ctrl.Result{}, nil
}

func rateStatus(l capacity.TierLimits) capacityv1alpha1.RateStatus {
	return specconv.RateStatus(l.Amounts())
}
