package controllers

import (
	"context"
	"fmt"
	"strconv"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	capacityv1alpha1 "github.com/claudecap/claudecap/api/v1alpha1"
)

// kedaScaledObjectLabel is the label KEDA puts on the HPA it creates for a ScaledObject.
const kedaScaledObjectLabel = "scaledobject.keda.sh/name"

// checkScalingActive decides whether this reconcile may change replicas: not when paused
// by annotation (KEDA's convention), and not when another autoscaler already targets the
// same object, because two autoscalers on one target fight. KEDA's ScaledObjects show up
// as the HPA KEDA creates for them.
func (r *ClaudeCapacityReconciler) checkScalingActive(ctx context.Context, s *scope) (ctrl.Result, error) {
	cc := s.cc
	if v, ok := cc.Annotations[capacityv1alpha1.AnnotationPausedReplicas]; ok {
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil || n < 0 {
			s.scalingBlocked = true
			setCondition(cc, capacityv1alpha1.ConditionScalingActive, metav1.ConditionFalse, capacityv1alpha1.ReasonInvalidAnnotation,
				fmt.Sprintf("annotation %s=%q is not a replica count; scaling is paused", capacityv1alpha1.AnnotationPausedReplicas, v))
			return ctrl.Result{}, nil
		}
		// The bounds still hold: an annotation is not a way around spec.replicas.max.
		replicas := cc.Spec.Replicas.Max
		if n < int64(replicas) {
			replicas = max(int32(n), cc.Spec.Replicas.Min) // n < Max fits in int32.
		}
		s.pausedReplicas = &replicas
		msg := fmt.Sprintf("paused at %d replicas by annotation %s", replicas, capacityv1alpha1.AnnotationPausedReplicas)
		if int64(replicas) != n {
			msg = fmt.Sprintf("paused at %d replicas by annotation %s (asked %d, clamped to replicas %d..%d)",
				replicas, capacityv1alpha1.AnnotationPausedReplicas, n, cc.Spec.Replicas.Min, cc.Spec.Replicas.Max)
		}
		setCondition(cc, capacityv1alpha1.ConditionScalingActive, metav1.ConditionFalse, capacityv1alpha1.ReasonPaused, msg)
		return ctrl.Result{}, nil
	}
	if cc.Annotations[capacityv1alpha1.AnnotationPaused] == "true" {
		s.scalingBlocked = true
		setCondition(cc, capacityv1alpha1.ConditionScalingActive, metav1.ConditionFalse, capacityv1alpha1.ReasonPaused,
			fmt.Sprintf("paused by annotation %s: replicas are left as they are", capacityv1alpha1.AnnotationPaused))
		return ctrl.Result{}, nil
	}

	other, err := r.competingAutoscaler(ctx, cc)
	if err == nil && other == "" {
		other, err = r.olderClaudeCapacity(ctx, cc)
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	if other != "" {
		s.scalingBlocked, s.blockedBy = true, capacityv1alpha1.LimitedByHeld
		setCondition(cc, capacityv1alpha1.ConditionScalingActive, metav1.ConditionFalse, capacityv1alpha1.ReasonAmbiguousAutoscaler,
			fmt.Sprintf("%s already scales %s %s; claudecap will not fight it: remove one of the two",
				other, cc.Spec.ScaleTargetRef.Kind, cc.Spec.ScaleTargetRef.Name))
		return ctrl.Result{}, nil
	}
	if s.target == nil {
		setCondition(cc, capacityv1alpha1.ConditionScalingActive, metav1.ConditionFalse, capacityv1alpha1.ReasonTargetMissing,
			"nothing to scale until the target exists")
		return ctrl.Result{}, nil
	}
	setCondition(cc, capacityv1alpha1.ConditionScalingActive, metav1.ConditionTrue, capacityv1alpha1.ReasonScalingActive,
		"the controller manages the target's replicas")
	return ctrl.Result{}, nil
}

// competingAutoscaler names an HPA (or the KEDA ScaledObject behind it) in the namespace
// that targets the same object, or returns "".
func (r *ClaudeCapacityReconciler) competingAutoscaler(ctx context.Context, cc *capacityv1alpha1.ClaudeCapacity) (string, error) {
	var hpas autoscalingv2.HorizontalPodAutoscalerList
	if err := r.List(ctx, &hpas, client.InNamespace(cc.Namespace)); err != nil {
		return "", fmt.Errorf("listing HorizontalPodAutoscalers in %s: %w", cc.Namespace, err)
	}
	ref := cc.Spec.ScaleTargetRef
	for i := range hpas.Items {
		hpa := &hpas.Items[i]
		t := hpa.Spec.ScaleTargetRef
		if t.Kind != ref.Kind || t.Name != ref.Name || !sameGroup(t.APIVersion, ref.APIVersion) {
			continue
		}
		if so := hpa.Labels[kedaScaledObjectLabel]; so != "" {
			return fmt.Sprintf("KEDA ScaledObject %s (through HorizontalPodAutoscaler %s)", so, hpa.Name), nil
		}
		return "HorizontalPodAutoscaler " + hpa.Name, nil
	}
	return "", nil
}

// olderClaudeCapacity names another ClaudeCapacity in the namespace that targets the same
// object and was created first (the oldest wins; the name breaks a tie), or returns "".
// Two of them on one target would each write their own replicas, and the target would
// flip between them.
func (r *ClaudeCapacityReconciler) olderClaudeCapacity(ctx context.Context, cc *capacityv1alpha1.ClaudeCapacity) (string, error) {
	var list capacityv1alpha1.ClaudeCapacityList
	// Only those on the same target (field index), read-only: no deep copy of the namespace.
	if err := r.List(ctx, &list, client.InNamespace(cc.Namespace), client.UnsafeDisableDeepCopy,
		client.MatchingFields{targetIndexKey: targetIndexValue(cc.Spec.ScaleTargetRef.Kind, cc.Spec.ScaleTargetRef.Name)}); err != nil {
		return "", fmt.Errorf("listing ClaudeCapacities in %s: %w", cc.Namespace, err)
	}
	ref := cc.Spec.ScaleTargetRef
	for i := range list.Items {
		o := &list.Items[i]
		t := o.Spec.ScaleTargetRef
		if o.Name == cc.Name || !o.DeletionTimestamp.IsZero() || t.Kind != ref.Kind || t.Name != ref.Name || !sameGroup(t.APIVersion, ref.APIVersion) {
			continue
		}
		older := o.CreationTimestamp.Before(&cc.CreationTimestamp) ||
			(o.CreationTimestamp.Equal(&cc.CreationTimestamp) && o.Name < cc.Name)
		if older {
			return "ClaudeCapacity " + o.Name + " (created first)", nil
		}
	}
	return "", nil
}

// sameGroup compares the API groups of two apiVersions; versions of one group name the
// same object.
func sameGroup(a, b string) bool {
	ga, errA := schema.ParseGroupVersion(a)
	gb, errB := schema.ParseGroupVersion(b)
	return errA == nil && errB == nil && ga.Group == gb.Group
}
