package standin

import (
	"context"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// defaultTerminationGracePeriod is what the API server gives a Pod that declares none.
const defaultTerminationGracePeriod = 30 * time.Second

// syncFollowed is one poll with Config.FollowPods: list the Deployment's Pods (those its
// selector matches) and match the fleet's pods to them. The Deployment itself is only
// read, never written: the controller-manager keeps its status.
func (f *Fleet) syncFollowed(ctx context.Context) {
	dep := &appsv1.Deployment{}
	err := f.cfg.Client.Get(ctx, f.key, dep)
	switch {
	case apierrors.IsNotFound(err):
		// Its Pods are garbage collected: keep following them with the selector last read.
	case err != nil:
		f.kubeError(ctx, "reading the deployment", err)
		return
	default:
		selector, err := metav1.LabelSelectorAsSelector(dep.Spec.Selector)
		if err != nil {
			f.kubeError(ctx, "reading the deployment's selector", err)
			return
		}
		f.selector = selector
	}
	if f.selector == nil {
		return // no Deployment yet, so no Pods of it
	}
	pods := &corev1.PodList{}
	if err := f.cfg.Client.List(ctx, pods, client.InNamespace(f.cfg.Namespace),
		client.MatchingLabelsSelector{Selector: f.selector}); err != nil {
		f.kubeError(ctx, "listing the deployment's pods", err)
		return
	}
	f.followPods(pods.Items)
	f.lastErr = ""
}

// followPods matches the fleet's pods to the real Pods listed, as a kubelet does with the
// Pods bound to its node:
//
//   - a Pod seen for the first time gets a pod of its own (its sidecar starts at once);
//   - once the Pod is Ready, that pod's worker starts taking jobs;
//   - once the Pod has a deletionTimestamp, the pod is sent "SIGTERM": it takes no new
//     job and has until the deletionTimestamp (the end of the Pod's grace period, which
//     the API server set to the time of the deletion plus the grace period) to finish the
//     job in hand; then its call is cancelled and the job requeued ("SIGKILL");
//   - a Pod gone from the list (removed, force-deleted, or no longer matching the
//     selector) has its pod killed at once.
//
// A Pod first seen when already terminating or finished never gets a pod.
func (f *Fleet) followPods(items []corev1.Pod) {
	f.mu.Lock()
	defer f.mu.Unlock()
	listed := make(map[types.UID]bool, len(items))
	for i := range items {
		kp := &items[i]
		listed[kp.UID] = true
		p, known := f.followed[kp.UID]
		if !known {
			if kp.DeletionTimestamp != nil || podFinished(kp) {
				f.followed[kp.UID] = nil
				continue
			}
			p = f.createFollowedPodLocked(kp)
			f.followed[kp.UID] = p
		}
		switch {
		case p == nil:
		case kp.DeletionTimestamp != nil:
			deadline := kp.DeletionTimestamp.Time
			if p.terminateBy(deadline) {
				f.log.Info("pod terminating", "pod", p.name,
					"gracePeriod", time.Until(deadline).Round(time.Millisecond), "deadline", deadline)
			}
		case podFinished(kp):
			if p.terminateBy(time.Now()) {
				f.log.Info("pod finished; its worker is stopped", "pod", p.name, "phase", kp.Status.Phase)
			}
		case podReady(kp):
			p.markKubeReady()
		}
	}
	for uid, p := range f.followed {
		if listed[uid] {
			continue
		}
		delete(f.followed, uid) // a UID is never reused
		if p != nil && p.terminateBy(time.Now()) {
			f.log.Info("pod gone; its worker is stopped at once", "pod", p.name)
		}
	}
}

// createFollowedPodLocked starts a pod that plays kp.
func (f *Fleet) createFollowedPodLocked(kp *corev1.Pod) *pod {
	f.seq++
	grace := defaultTerminationGracePeriod
	if s := kp.Spec.TerminationGracePeriodSeconds; s != nil {
		grace = time.Duration(*s) * time.Second
	}
	p := newFollowedPod(f.base, kp.Name, f.seq, grace)
	f.pods = append(f.pods, p)
	f.log.Info("pod seen", "pod", p.name, "node", kp.Spec.NodeName)
	go f.runPod(p)
	return p
}

func podReady(kp *corev1.Pod) bool {
	for _, c := range kp.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func podFinished(kp *corev1.Pod) bool {
	return kp.Status.Phase == corev1.PodSucceeded || kp.Status.Phase == corev1.PodFailed
}
