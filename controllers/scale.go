package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	capacityv1alpha1 "github.com/claudecap/claudecap/api/v1alpha1"
)

// scale writes the desired replicas through /scale, only when they differ from the
// target's and only when scaling is active. A paused-replicas annotation sets that count
// once; a plain pause, a competing autoscaler or held signals leave the target alone.
func (r *ClaudeCapacityReconciler) scale(ctx context.Context, s *scope) (ctrl.Result, error) {
	cc := s.cc
	if s.target == nil {
		return ctrl.Result{}, nil
	}
	current := s.target.scale.Spec.Replicas
	desired, why := current, ""
	switch {
	case s.pausedReplicas != nil:
		desired, why = *s.pausedReplicas, "paused at this count by annotation "+capacityv1alpha1.AnnotationPausedReplicas
		cc.Status.DesiredReplicas, cc.Status.LimitedBy = desired, capacityv1alpha1.LimitedByPaused
	case s.scalingBlocked:
		cc.Status.DesiredReplicas, cc.Status.LimitedBy = current, capacityv1alpha1.LimitedByPaused
		if s.blockedBy != "" {
			cc.Status.LimitedBy = s.blockedBy
		}
	case s.held || s.decision == nil:
		// Status already says why; replicas stay.
	default:
		desired, why = s.decision.DesiredReplicas, s.decision.Message
	}
	if desired == current {
		return ctrl.Result{}, nil
	}
	if err := r.updateScale(ctx, s.target, desired); err != nil {
		return ctrl.Result{}, err
	}
	now := metav1.NewTime(r.now())
	cc.Status.LastScaleTime = &now
	ref := cc.Spec.ScaleTargetRef
	eventf(ctx, r.Recorder, cc, s.target.object, corev1.EventTypeNormal, capacityv1alpha1.EventScaled, "Scale",
		"scaled %s %s from %d to %d: %s", ref.Kind, ref.Name, current, desired, why)
	r.metrics.scaled(cc)
	return ctrl.Result{}, nil
}

// updateScale sets spec.replicas of the target through its /scale subresource, keeping
// the resourceVersion read in this reconcile so a concurrent change is not overwritten.
func (r *ClaudeCapacityReconciler) updateScale(ctx context.Context, t *scaleTarget, replicas int32) error {
	next := t.scale.DeepCopy()
	next.Spec.Replicas = replicas
	raw, err := runtime.DefaultUnstructuredConverter.ToUnstructured(next)
	if err != nil {
		return fmt.Errorf("encoding the Scale: %w", err)
	}
	body := &unstructured.Unstructured{Object: raw}
	body.SetGroupVersionKind(next.GroupVersionKind())
	if body.GetKind() == "" {
		body.SetAPIVersion("autoscaling/v1")
		body.SetKind("Scale")
	}
	if err := r.SubResource("scale").Update(ctx, t.object, client.WithSubResourceBody(body)); err != nil {
		return fmt.Errorf("setting %s %s to %d replicas: %w", t.object.GetKind(), t.object.GetName(), replicas, err)
	}
	t.scale = next
	return nil
}
