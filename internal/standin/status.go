package standin

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
)

// replicaCounts are the Deployment status fields the workload controller keeps.
type replicaCounts struct {
	observedGeneration                               int64
	replicas, updated, ready, available, unavailable int32
}

func countsOf(s *appsv1.DeploymentStatus) replicaCounts {
	return replicaCounts{s.ObservedGeneration, s.Replicas, s.UpdatedReplicas, s.ReadyReplicas, s.AvailableReplicas, s.UnavailableReplicas}
}

func (c replicaCounts) apply(s *appsv1.DeploymentStatus) {
	s.ObservedGeneration = c.observedGeneration
	s.Replicas, s.UpdatedReplicas, s.ReadyReplicas = c.replicas, c.updated, c.ready
	s.AvailableReplicas, s.UnavailableReplicas = c.available, c.unavailable
}

// countsFor is the status the pods give dep. As in a cluster, replicas counts the pods
// not terminating, every pod runs the current template, and a Ready pod is available at
// once (minReadySeconds 0).
func (f *Fleet) countsFor(dep *appsv1.Deployment) replicaCounts {
	var live, ready int32
	for _, p := range f.Pods() {
		switch p.Phase {
		case PhaseStarting:
			live++
		case PhaseReady:
			live++
			ready++
		case PhaseTerminating:
		}
	}
	spec := ptr.Deref(dep.Spec.Replicas, 1)
	return replicaCounts{
		observedGeneration: dep.Generation,
		replicas:           live, updated: live, ready: ready, available: ready,
		unavailable: max(0, spec-ready),
	}
}

// writeStatus updates dep's status through the status subresource when a number changed.
// dep was just read; after a conflict (the operator scaled it meanwhile) it is read again.
func (f *Fleet) writeStatus(ctx context.Context, dep *appsv1.Deployment) error {
	if f.countsFor(dep) == countsOf(&dep.Status) {
		return nil
	}
	fresh := true
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if !fresh {
			if err := f.cfg.Client.Get(ctx, f.key, dep); err != nil {
				return err
			}
		}
		fresh = false
		want := f.countsFor(dep)
		if want == countsOf(&dep.Status) {
			return nil
		}
		want.apply(&dep.Status)
		return f.cfg.Client.Status().Update(ctx, dep)
	})
}
