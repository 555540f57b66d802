package controllers

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	capacityv1alpha1 "github.com/claudecap/claudecap/api/v1alpha1"
)

// scaleTarget is the managed workload as its /scale subresource shows it. Working through
// /scale keeps the controller independent of the kind: Deployments, StatefulSets, Argo
// Rollouts and custom resources with a scale subresource all look the same.
type scaleTarget struct {
	object *unstructured.Unstructured
	scale  *autoscalingv1.Scale
	// ready is how many pods are ready, when the target's own controller reports it
	// (readyKnown): the replicas that really run, which the throughput estimate counts.
	ready      int32
	readyKnown bool
}

// running is the replica count that really works: ready pods when the target reports
// them, else the replicas asked for (a target whose controller writes no status, such as
// a bare control plane without a kube-controller-manager).
func (t *scaleTarget) running() int32 {
	if t.readyKnown {
		return t.ready
	}
	return t.scale.Spec.Replicas
}

// readTarget reads the scale target through /scale and records its replicas. A missing
// target is a state to report, not an error to retry fast: the watch on Deployments and
// StatefulSets (or the periodic resync for other kinds) brings the next reconcile.
func (r *ClaudeCapacityReconciler) readTarget(ctx context.Context, s *scope) (ctrl.Result, error) {
	cc := s.cc
	ref := cc.Spec.ScaleTargetRef
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		setCondition(cc, capacityv1alpha1.ConditionTargetFound, metav1.ConditionFalse, capacityv1alpha1.ReasonTargetKindUnknown,
			fmt.Sprintf("scaleTargetRef.apiVersion %q is not a valid group/version: %v", ref.APIVersion, err))
		return ctrl.Result{}, nil
	}
	if known, scalable, err := r.scalable.lookup(gv, ref.Kind); err == nil {
		switch {
		case !known:
			setCondition(cc, capacityv1alpha1.ConditionTargetFound, metav1.ConditionFalse, capacityv1alpha1.ReasonTargetKindUnknown,
				fmt.Sprintf("the API server does not serve kind %s in %s", ref.Kind, ref.APIVersion))
			return ctrl.Result{}, nil
		case !scalable:
			setCondition(cc, capacityv1alpha1.ConditionTargetFound, metav1.ConditionFalse, capacityv1alpha1.ReasonTargetNotScalable,
				fmt.Sprintf("kind %s in %s has no /scale subresource; only kinds with one can be scaled", ref.Kind, ref.APIVersion))
			return ctrl.Result{}, nil
		}
	}
	obj := &unstructured.Unstructured{}
	obj.SetGroupVersionKind(gv.WithKind(ref.Kind))
	obj.SetNamespace(cc.Namespace)
	obj.SetName(ref.Name)
	desc := fmt.Sprintf("%s %s/%s", ref.Kind, cc.Namespace, ref.Name)

	scale, ready, err := r.getScale(ctx, obj)
	switch {
	case err == nil:
	case meta.IsNoMatchError(err):
		setCondition(cc, capacityv1alpha1.ConditionTargetFound, metav1.ConditionFalse, capacityv1alpha1.ReasonTargetKindUnknown,
			fmt.Sprintf("the API server does not serve kind %s in %s", ref.Kind, ref.APIVersion))
		return ctrl.Result{}, nil
	case apierrors.IsNotFound(err):
		// Never read the object itself to tell why: it may be of any kind.
		setCondition(cc, capacityv1alpha1.ConditionTargetFound, metav1.ConditionFalse, capacityv1alpha1.ReasonTargetNotFound,
			desc+" does not exist; replicas are managed once it is created")
		return ctrl.Result{}, nil
	default:
		setCondition(cc, capacityv1alpha1.ConditionTargetFound, metav1.ConditionUnknown, capacityv1alpha1.ReasonTargetUnreadable,
			fmt.Sprintf("reading the /scale subresource of %s: %v", desc, err))
		return ctrl.Result{}, fmt.Errorf("reading the /scale subresource of %s: %w", desc, err)
	}

	s.target = &scaleTarget{object: obj, scale: scale}
	cc.Status.Replicas = scale.Status.Replicas
	cc.Status.ReadyReplicas = nil
	if ready != nil {
		s.target.ready, s.target.readyKnown = *ready, true
		cc.Status.ReadyReplicas = ptr.To(*ready)
	}
	setCondition(cc, capacityv1alpha1.ConditionTargetFound, metav1.ConditionTrue, capacityv1alpha1.ReasonTargetFound,
		fmt.Sprintf("%s runs %d of %d replicas", desc, scale.Status.Replicas, scale.Spec.Replicas))
	return ctrl.Result{}, nil
}

// getScale reads the /scale subresource of obj, and the ready pods when the kind reports
// them (nil otherwise). Deployments and StatefulSets are watched anyway, so their scale is
// read from the cache, sparing the API server a request per poll; any other kind is read
// live. The unstructured client only speaks unstructured objects, so a live Scale is read
// as one and converted.
func (r *ClaudeCapacityReconciler) getScale(ctx context.Context, obj *unstructured.Unstructured) (*autoscalingv1.Scale, *int32, error) {
	if scale, ready, ok, err := r.cachedScale(ctx, obj); ok || err != nil {
		return scale, ready, err
	}
	raw := &unstructured.Unstructured{}
	raw.SetGroupVersionKind(autoscalingv1.SchemeGroupVersion.WithKind("Scale"))
	if err := r.SubResource("scale").Get(ctx, obj, raw); err != nil {
		return nil, nil, err
	}
	scale := &autoscalingv1.Scale{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(raw.Object, scale); err != nil {
		return nil, nil, fmt.Errorf("decoding the Scale: %w", err)
	}
	return scale, nil, nil
}

// cachedScale builds the Scale of a Deployment or StatefulSet from the informer cache, as
// the API server's /scale would show it, with the ready pods once the workload's
// controller has reported on it (status.observedGeneration set); ok is false for other
// kinds.
func (r *ClaudeCapacityReconciler) cachedScale(ctx context.Context, obj *unstructured.Unstructured) (_ *autoscalingv1.Scale, ready *int32, ok bool, _ error) {
	gvk := obj.GroupVersionKind()
	if gvk.Group != appsv1.GroupName {
		return nil, nil, false, nil
	}
	key := client.ObjectKeyFromObject(obj)
	var (
		objMeta      metav1.ObjectMeta
		spec, status int32
		selector     *metav1.LabelSelector
	)
	switch gvk.Kind {
	case "Deployment":
		d := &appsv1.Deployment{}
		if err := r.Get(ctx, key, d); err != nil {
			return nil, nil, true, err
		}
		objMeta, spec, status, selector = d.ObjectMeta, ptr.Deref(d.Spec.Replicas, 1), d.Status.Replicas, d.Spec.Selector
		if d.Status.ObservedGeneration > 0 {
			ready = ptr.To(d.Status.ReadyReplicas)
		}
	case "StatefulSet":
		st := &appsv1.StatefulSet{}
		if err := r.Get(ctx, key, st); err != nil {
			return nil, nil, true, err
		}
		objMeta, spec, status, selector = st.ObjectMeta, ptr.Deref(st.Spec.Replicas, 1), st.Status.Replicas, st.Spec.Selector
		if st.Status.ObservedGeneration > 0 {
			ready = ptr.To(st.Status.ReadyReplicas)
		}
	default:
		return nil, nil, false, nil
	}
	scale := &autoscalingv1.Scale{
		TypeMeta:   metav1.TypeMeta{APIVersion: autoscalingv1.SchemeGroupVersion.String(), Kind: "Scale"},
		ObjectMeta: metav1.ObjectMeta{Name: objMeta.Name, Namespace: objMeta.Namespace, UID: objMeta.UID, ResourceVersion: objMeta.ResourceVersion},
		Spec:       autoscalingv1.ScaleSpec{Replicas: spec},
		Status:     autoscalingv1.ScaleStatus{Replicas: status},
	}
	if sel, err := metav1.LabelSelectorAsSelector(selector); err == nil {
		scale.Status.Selector = sel.String()
	}
	return scale, ready, true, nil
}

// replicasOf returns "spec/status" replicas of a watched workload, for change detection.
func replicasOf(obj client.Object) string {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return fmt.Sprintf("%d/%d", ptr.Deref(o.Spec.Replicas, 1), o.Status.Replicas)
	case *appsv1.StatefulSet:
		return fmt.Sprintf("%d/%d", ptr.Deref(o.Spec.Replicas, 1), o.Status.Replicas)
	default:
		return ""
	}
}
