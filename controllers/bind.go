package controllers

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	capacityv1alpha1 "github.com/claudecap/claudecap/api/v1alpha1"
)

// bindOrganization resolves spec.organizationRef: the ClaudeOrganization must exist and
// select the workload's namespace. A workload that does not bind draws on no budget: it
// gets no limits, so decide holds its replicas, and it is never counted in a pool.
func (r *ClaudeCapacityReconciler) bindOrganization(ctx context.Context, s *scope) (ctrl.Result, error) {
	cc := s.cc
	ref := cc.Spec.OrganizationRef
	if ref == nil {
		setCondition(cc, capacityv1alpha1.ConditionOrganizationBound, metav1.ConditionTrue, capacityv1alpha1.ReasonPrivatePool,
			fmt.Sprintf("a private pool of one: spec.limits, shared with nobody (limiter organization %s)",
				privatePoolOrganization(cc.Namespace, cc.Name)))
		return ctrl.Result{}, nil
	}
	org := &capacityv1alpha1.ClaudeOrganization{}
	if err := r.Get(ctx, client.ObjectKey{Name: ref.Name}, org); err != nil {
		if !apierrors.IsNotFound(err) {
			return ctrl.Result{}, fmt.Errorf("reading ClaudeOrganization %s: %w", ref.Name, err)
		}
		setCondition(cc, capacityv1alpha1.ConditionOrganizationBound, metav1.ConditionFalse, capacityv1alpha1.ReasonOrganizationNotFound,
			fmt.Sprintf("ClaudeOrganization %s does not exist; replicas are held until it does", ref.Name))
		return ctrl.Result{}, nil
	}
	selected, err := namespaceSelected(ctx, r.Client, org, cc.Namespace)
	if err != nil {
		return ctrl.Result{}, err
	}
	if !selected {
		setCondition(cc, capacityv1alpha1.ConditionOrganizationBound, metav1.ConditionFalse, capacityv1alpha1.ReasonNamespaceNotSelected,
			fmt.Sprintf("ClaudeOrganization %s does not select namespace %s (its namespaceSelector); the workload draws on no budget and its replicas are held",
				org.Name, cc.Namespace))
		return ctrl.Result{}, nil
	}
	s.org = org
	pc, known := priorityOf(org, cc)
	switch {
	case !known:
		setCondition(cc, capacityv1alpha1.ConditionOrganizationBound, metav1.ConditionTrue, capacityv1alpha1.ReasonUnknownPriorityClass,
			fmt.Sprintf("draws on ClaudeOrganization %s, but it declares no priority class %q: served in its lowest, %s",
				org.Name, cc.Spec.PriorityClassName, pc.Name))
	case pc.Name != "":
		setCondition(cc, capacityv1alpha1.ConditionOrganizationBound, metav1.ConditionTrue, capacityv1alpha1.ReasonBound,
			fmt.Sprintf("draws on ClaudeOrganization %s in priority class %s", org.Name, pc.Name))
	default:
		setCondition(cc, capacityv1alpha1.ConditionOrganizationBound, metav1.ConditionTrue, capacityv1alpha1.ReasonBound,
			fmt.Sprintf("draws on ClaudeOrganization %s", org.Name))
	}
	return ctrl.Result{}, nil
}

// headroom is the pool's headroom: the organization's, or the private pool's.
func (s *scope) headroom() int32 {
	if s.org != nil {
		return s.org.Spec.HeadroomPercentOrDefault()
	}
	return s.cc.Spec.HeadroomPercentOrDefault()
}

// fromUpstream says whether the API's reported limits replace the declared ones.
func (s *scope) fromUpstream() bool {
	if s.org != nil {
		return s.org.Spec.Limits.FromUpstream
	}
	return s.cc.Spec.Limits != nil && s.cc.Spec.Limits.FromUpstream
}
