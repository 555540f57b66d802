package controllers

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	capacityv1alpha1 "github.com/claudecap/claudecap/api/v1alpha1"
)

const eventually = 20 * time.Second

func newDeployment(ns, name string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "worker", Image: "busybox"}}},
			},
		},
	}
}

// planOnly is a ClaudeCapacity without a queue: this stage of the controller plans and
// reports; it does not read signals.
func planOnly(ns, name string) *capacityv1alpha1.ClaudeCapacity {
	cc := validClaudeCapacity(ns, name)
	cc.Spec.Queue = nil
	cc.Spec.Limits = &capacityv1alpha1.Limits{Tier: capacityv1alpha1.Tier2}
	cc.Spec.HeadroomPercent = 100
	return cc
}

func condition(g Gomega, key client.ObjectKey, condType string) *metav1.Condition {
	cc := &capacityv1alpha1.ClaudeCapacity{}
	g.Expect(k8sClient.Get(context.Background(), key, cc)).To(Succeed())
	return meta.FindStatusCondition(cc.Status.Conditions, condType)
}

func TestReconcileFillsPlanFromTheSeedExample(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	g.Expect(k8sClient.Create(ctx, newDeployment(ns, "workers", 2))).To(Succeed())
	cc := planOnly(ns, "seed")
	g.Expect(k8sClient.Create(ctx, cc)).To(Succeed())

	got := &capacityv1alpha1.ClaudeCapacity{}
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(cc), got)).To(Succeed())
		g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
		g.Expect(got.Status.Plan).NotTo(BeNil())
	}, eventually).Should(Succeed())

	// plan_capacity(100, 500, 200) on Sonnet: 100 RPM, 50,000 ITPM, 20,000 OTPM,
	// $0.0045 per request, $19,440 per month, tier 2 the smallest that fits.
	p := got.Status.Plan
	g.Expect(p.RequestsPerMinute).To(Equal(int64(100)))
	g.Expect(p.InputTokensPerMinute).To(Equal(int64(50_000)))
	g.Expect(p.OutputTokensPerMinute).To(Equal(int64(20_000)))
	g.Expect(p.CostPerRequestUSD).To(Equal("0.004500"))
	g.Expect(p.MonthlyCostUSD).To(Equal("19440.00"))
	g.Expect(p.SmallestTier).To(Equal("tier-2"))
	g.Expect(p.Replicas).To(Equal(int32(10)))
	g.Expect(got.Status.Limits).To(Equal(&capacityv1alpha1.RateStatus{
		RequestsPerMinute: 1000, InputTokensPerMinute: 450_000, OutputTokensPerMinute: 90_000}))
	// /scale's status.replicas counts the target's pods, and envtest runs no controller that
	// would create them: the Deployment asks for 2 and has 0.
	g.Expect(got.Status.Replicas).To(BeZero(), "status.replicas is the pods the target has, not what it asks for")

	ready := meta.FindStatusCondition(got.Status.Conditions, capacityv1alpha1.ConditionReady)
	g.Expect(ready).NotTo(BeNil())
	g.Expect(ready.Status).To(Equal(metav1.ConditionTrue), ready.Message)
	fits := meta.FindStatusCondition(got.Status.Conditions, capacityv1alpha1.ConditionPlanFits)
	g.Expect(fits.Status).To(Equal(metav1.ConditionTrue))
}

func TestReconcileReportsMissingTargetUntilItIsCreated(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	cc := planOnly(ns, "orphan")
	g.Expect(k8sClient.Create(ctx, cc)).To(Succeed())
	key := client.ObjectKeyFromObject(cc)

	g.Eventually(func(g Gomega) {
		found := condition(g, key, capacityv1alpha1.ConditionTargetFound)
		g.Expect(found).NotTo(BeNil())
		g.Expect(found.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(found.Reason).To(Equal(capacityv1alpha1.ReasonTargetNotFound))
		g.Expect(found.Message).To(ContainSubstring("Deployment " + ns + "/workers does not exist"))
		ready := condition(g, key, capacityv1alpha1.ConditionReady)
		g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(ready.Reason).To(Equal(capacityv1alpha1.ReasonTargetNotFound))
	}, eventually).Should(Succeed())

	// Creating the Deployment is enough: the watch on Deployments maps it back.
	g.Expect(k8sClient.Create(ctx, newDeployment(ns, "workers", 3))).To(Succeed())
	g.Eventually(func(g Gomega) {
		found := condition(g, key, capacityv1alpha1.ConditionTargetFound)
		g.Expect(found.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(found.Message).To(MatchRegexp(`Deployment \S+/workers runs \d+ of \d+ replicas`))
		g.Expect(condition(g, key, capacityv1alpha1.ConditionReady).Status).To(Equal(metav1.ConditionTrue))
	}, eventually).Should(Succeed())
}

func TestReconcileSaysWhenTargetHasNoScaleSubresource(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	g.Expect(k8sClient.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "workers"}})).To(Succeed())
	cc := planOnly(ns, "configmap")
	cc.Spec.ScaleTargetRef = capacityv1alpha1.ScaleTargetRef{APIVersion: "v1", Kind: "ConfigMap", Name: "workers"}
	g.Expect(k8sClient.Create(ctx, cc)).To(Succeed())
	g.Eventually(func(g Gomega) {
		found := condition(g, client.ObjectKeyFromObject(cc), capacityv1alpha1.ConditionTargetFound)
		g.Expect(found).NotTo(BeNil())
		g.Expect(found.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(found.Reason).To(Equal(capacityv1alpha1.ReasonTargetNotScalable))
	}, eventually).Should(Succeed())

	// A kind without /scale is never read: whether a Secret of that name exists or not,
	// the answer is the same, so a ClaudeCapacity cannot probe for Secrets.
	g.Expect(k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db"}})).To(Succeed())
	messages := map[string]string{}
	for _, name := range []string{"db", "missing"} {
		probe := planOnly(ns, "probe-"+name)
		probe.Spec.ScaleTargetRef = capacityv1alpha1.ScaleTargetRef{APIVersion: "v1", Kind: "Secret", Name: name}
		g.Expect(k8sClient.Create(ctx, probe)).To(Succeed())
		g.Eventually(func(g Gomega) {
			found := condition(g, client.ObjectKeyFromObject(probe), capacityv1alpha1.ConditionTargetFound)
			g.Expect(found).NotTo(BeNil())
			g.Expect(found.Reason).To(Equal(capacityv1alpha1.ReasonTargetNotScalable))
			messages[name] = found.Message
		}, eventually).Should(Succeed())
	}
	g.Expect(messages["db"]).To(Equal(messages["missing"]))

	unknown := planOnly(ns, "unknown-kind")
	unknown.Spec.ScaleTargetRef = capacityv1alpha1.ScaleTargetRef{APIVersion: "example.com/v1", Kind: "Worker", Name: "w"}
	g.Expect(k8sClient.Create(ctx, unknown)).To(Succeed())
	g.Eventually(func(g Gomega) {
		found := condition(g, client.ObjectKeyFromObject(unknown), capacityv1alpha1.ConditionTargetFound)
		g.Expect(found).NotTo(BeNil())
		g.Expect(found.Reason).To(Equal(capacityv1alpha1.ReasonTargetKindUnknown))
		g.Expect(found.Message).To(ContainSubstring("does not serve kind Worker in example.com/v1"))
	}, eventually).Should(Succeed())
}

func TestReconcileSaysWhenThePlanDoesNotFitTheLimits(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	g.Expect(k8sClient.Create(ctx, newDeployment(ns, "workers", 1))).To(Succeed())
	cc := planOnly(ns, "too-small")
	// 20,000 output tokens per minute do not fit tier 1's 8,000.
	cc.Spec.Limits = &capacityv1alpha1.Limits{Tier: capacityv1alpha1.Tier1}
	g.Expect(k8sClient.Create(ctx, cc)).To(Succeed())
	key := client.ObjectKeyFromObject(cc)
	g.Eventually(func(g Gomega) {
		fits := condition(g, key, capacityv1alpha1.ConditionPlanFits)
		g.Expect(fits).NotTo(BeNil())
		g.Expect(fits.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(fits.Reason).To(Equal(capacityv1alpha1.ReasonPlanExceedsLimits))
		g.Expect(fits.Message).To(ContainSubstring("20,000"))
		g.Expect(fits.Message).To(ContainSubstring("8,000"))
		ready := condition(g, key, capacityv1alpha1.ConditionReady)
		g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(ready.Reason).To(Equal(capacityv1alpha1.ReasonPlanExceedsLimits))
	}, eventually).Should(Succeed())

	// Raising the limits in place makes the same object fit: spec changes are picked up.
	updateCC(g, cc, func(cc *capacityv1alpha1.ClaudeCapacity) {
		cc.Spec.Limits.OutputTokensPerMinute = ptr.To[int64](30_000)
		cc.Spec.Limits.InputTokensPerMinute = ptr.To[int64](60_000)
		cc.Spec.Limits.RequestsPerMinute = ptr.To[int64](200)
	})
	g.Eventually(func(g Gomega) {
		g.Expect(condition(g, key, capacityv1alpha1.ConditionPlanFits).Status).To(Equal(metav1.ConditionTrue))
		g.Expect(condition(g, key, capacityv1alpha1.ConditionReady).Status).To(Equal(metav1.ConditionTrue))
	}, eventually).Should(Succeed())
}

func TestReconcileSaysWhenTheModelIsUnknown(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	g.Expect(k8sClient.Create(ctx, newDeployment(ns, "workers", 1))).To(Succeed())
	cc := planOnly(ns, "no-such-model")
	cc.Spec.Model = "claude-sonnet-9"
	g.Expect(k8sClient.Create(ctx, cc)).To(Succeed())
	g.Eventually(func(g Gomega) {
		fits := condition(g, client.ObjectKeyFromObject(cc), capacityv1alpha1.ConditionPlanFits)
		g.Expect(fits).NotTo(BeNil())
		g.Expect(fits.Reason).To(Equal(capacityv1alpha1.ReasonUnknownModel))
		g.Expect(fits.Message).To(ContainSubstring("claude-sonnet-9"))
		g.Expect(fits.Message).To(ContainSubstring("claude-sonnet-4-5"))
	}, eventually).Should(Succeed())
}
