package controllers

import (
	"context"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	dto "github.com/prometheus/client_model/go"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	capacityv1alpha1 "github.com/claudecap/claudecap/api/v1alpha1"
	"github.com/claudecap/claudecap/internal/testutil/redistest"
)

func TestOperatorRestartMidSpikeDoesNotFlap(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	srv := redistest.Start(t)
	ns := newNamespace(t)
	// Fast up, but the default five-minute scale-down window.
	cc := backlogged(g, srv, ns, func(cc *capacityv1alpha1.ClaudeCapacity) { cc.Spec.Behavior.ScaleDown = nil })
	eventuallyReplicas(g, ns, 11)

	// The spike ends and the operator restarts: all it remembers is in status.
	g.Expect(srv.Client().Del(ctx, "jobs").Err()).To(Succeed())
	testReconciler.memory.reset()
	g.Eventually(func(g Gomega) {
		got := getCC(g, cc)
		g.Expect(got.Status.DemandReplicas).To(BeZero())
		g.Expect(got.Status.History).NotTo(BeNil())
		g.Expect(got.Status.History.Recommendations).NotTo(BeEmpty())
		limited := conditionOf(g, got, capacityv1alpha1.ConditionScalingLimited)
		g.Expect(limited.Reason).To(Equal(string(capacityv1alpha1.LimitedByScaleDownStabilization)))
		g.Expect(got.Status.LimitedBy).To(Equal(capacityv1alpha1.LimitedByScaleDownStabilization))
	}, eventually).Should(Succeed())
	g.Consistently(func(g Gomega) { g.Expect(specReplicas(g, ns, "workers")).To(Equal(int32(11))) }, "4s").Should(Succeed())
}

func TestTargetDeletedAndRecreated(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	srv := redistest.Start(t)
	ns := newNamespace(t)
	cc := backlogged(g, srv, ns, nil)
	eventuallyReplicas(g, ns, 11)

	g.Expect(k8sClient.Delete(ctx, newDeployment(ns, "workers", 1))).To(Succeed())
	g.Eventually(func(g Gomega) {
		found := conditionOf(g, cc, capacityv1alpha1.ConditionTargetFound)
		g.Expect(found.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(found.Reason).To(Equal(capacityv1alpha1.ReasonTargetNotFound))
	}, eventually).Should(Succeed())

	// Recreated with one replica, it is sized to the queue again: at least the 11 of the
	// first poll (the backlog has not drained, so its drain deadline asks for more since).
	g.Expect(k8sClient.Create(ctx, newDeployment(ns, "workers", 1))).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(specReplicas(g, ns, "workers")).To(BeNumerically(">=", 11))
		g.Expect(specReplicas(g, ns, "workers")).To(Equal(getCC(g, cc).Status.DesiredReplicas))
		g.Expect(meta.IsStatusConditionTrue(getCC(g, cc).Status.Conditions, capacityv1alpha1.ConditionTargetFound)).To(BeTrue())
	}, eventually).Should(Succeed())
}

func TestMetricsDescribeEachWorkload(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	srv := redistest.Start(t)
	ns := newNamespace(t)
	cc := backlogged(g, srv, ns, func(cc *capacityv1alpha1.ClaudeCapacity) {
		cc.Spec.Limits = explicitLimits(10_000, 10_000_000, 20_000)
	})

	gauge := func(g Gomega, name string, extra map[string]string) float64 {
		families, err := ctrlmetrics.Registry.Gather()
		g.Expect(err).NotTo(HaveOccurred())
		for _, f := range families {
			if f.GetName() != name {
				continue
			}
			for _, m := range f.GetMetric() {
				if hasLabels(m, map[string]string{"namespace": ns, "name": "workers"}) && hasLabels(m, extra) {
					return m.GetGauge().GetValue()
				}
			}
		}
		g.Expect(name).To(Equal("present"), "metric %s for %s/workers not found", name, ns)
		return 0
	}
	g.Eventually(func(g Gomega) {
		g.Expect(gauge(g, "claudecap_demand_replicas", nil)).To(Equal(11.0))
		g.Expect(gauge(g, "claudecap_cap_replicas", nil)).To(Equal(3.0))
		g.Expect(gauge(g, "claudecap_desired_replicas", nil)).To(Equal(3.0))
		g.Expect(gauge(g, "claudecap_queue_backlog", nil)).To(Equal(600.0))
		g.Expect(gauge(g, "claudecap_allocation_per_minute", map[string]string{"dimension": "OutputTokens"})).To(Equal(20_000.0))
	}, eventually).Should(Succeed())

	// Deleting the ClaudeCapacity removes its series.
	g.Expect(k8sClient.Delete(ctx, cc)).To(Succeed())
	g.Eventually(func(g Gomega) {
		families, err := ctrlmetrics.Registry.Gather()
		g.Expect(err).NotTo(HaveOccurred())
		for _, f := range families {
			if !strings.HasPrefix(f.GetName(), "claudecap_") {
				continue
			}
			for _, m := range f.GetMetric() {
				g.Expect(hasLabels(m, map[string]string{"namespace": ns, "name": "workers"})).To(BeFalse(), f.GetName())
			}
		}
	}, eventually).Should(Succeed())
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	found := 0
	for _, l := range m.GetLabel() {
		if v, ok := want[l.GetName()]; ok && v == l.GetValue() {
			found++
		}
	}
	return found == len(want)
}

// TestDecisionsWaitForAFreshPoll: the watch event of our own scale write, and status
// updates of the target, must not make the controller decide again on the same
// observation; a spec change does.
func TestDecisionsWaitForAFreshPoll(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	srv := redistest.Start(t)
	ns := newNamespace(t)
	cc := backlogged(g, srv, ns, func(cc *capacityv1alpha1.ClaudeCapacity) { cc.Spec.PollIntervalSeconds = 30 })
	eventuallyReplicas(g, ns, 11)
	polled := time.Now()

	// More work arrives, and the target reports its pods: a decision now would scale up,
	// but the next poll is not due for 30 s.
	push(g, srv, "jobs", 600)
	d := &appsv1.Deployment{}
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "workers"}, d)).To(Succeed())
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: 11, ReadyReplicas: 9, UpdatedReplicas: 11}
	g.Expect(k8sClient.Status().Update(ctx, d)).To(Succeed())
	g.Eventually(func(g Gomega) {
		got := getCC(g, cc)
		g.Expect(got.Status.ReadyReplicas).NotTo(BeNil())
		g.Expect(*got.Status.ReadyReplicas).To(Equal(int32(9)))
	}, eventually).Should(Succeed())
	g.Consistently(func(g Gomega) { g.Expect(specReplicas(g, ns, "workers")).To(Equal(int32(11))) }, "4s").Should(Succeed())
	g.Expect(time.Since(polled)).To(BeNumerically("<", 25*time.Second), "the test must act before the next poll")

	// A spec change is decided at once, on a fresh sample: 1,200 queued need at least 21
	// (more as the backlog's drain deadline nears).
	updateCC(g, cc, func(cc *capacityv1alpha1.ClaudeCapacity) { cc.Spec.Weight = 2 })
	g.Eventually(func(g Gomega) {
		got := getCC(g, cc)
		g.Expect(specReplicas(g, ns, "workers")).To(BeNumerically(">=", 21), "status: %+v", got.Status)
	}, "5s").Should(Succeed())
}
