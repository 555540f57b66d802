package controllers

import (
	"context"
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	capacityv1alpha1 "github.com/claudecap/claudecap/api/v1alpha1"
	"github.com/claudecap/claudecap/internal/testutil/redistest"
)

// fastBehavior lets tests see the end state of a decision within a poll or two: any step
// up or down per second, no stabilization window.
func fastBehavior() *capacityv1alpha1.Behavior {
	fast := func() *capacityv1alpha1.ScalingRules {
		return &capacityv1alpha1.ScalingRules{
			StabilizationSeconds: ptr.To[int32](0),
			Policies:             []capacityv1alpha1.ScalingPolicy{{Type: capacityv1alpha1.PercentScalingPolicy, Value: 1000, PeriodSeconds: 1}},
		}
	}
	return &capacityv1alpha1.Behavior{ScaleUp: fast(), ScaleDown: fast()}
}

// queued returns a ClaudeCapacity, a private pool, on a Redis list with the seed traffic
// (30 requests per minute per replica, 500 input and 200 output tokens per request) and
// large limits, so that the queue decides unless a test lowers a limit.
func queued(ns, name, addr, list string) *capacityv1alpha1.ClaudeCapacity {
	cc := validClaudeCapacity(ns, name)
	cc.Spec.ScaleTargetRef.Name = name
	cc.Spec.Limits = &capacityv1alpha1.Limits{Tier: capacityv1alpha1.Tier4}
	cc.Spec.HeadroomPercent = 100
	cc.Spec.Traffic = capacityv1alpha1.Traffic{RequestsPerMinute: 30, AvgInputTokens: 500, AvgOutputTokens: 200}
	cc.Spec.Worker.RequestsPerMinutePerReplica = 30
	cc.Spec.Queue = &capacityv1alpha1.Queue{
		Redis: &capacityv1alpha1.RedisQueue{
			RedisConnection: capacityv1alpha1.RedisConnection{Address: addr},
			List:            list,
			ProcessingList:  list + ":processing",
		},
		TargetDrainSeconds: 120,
	}
	// The private pool's limiter shares the queue's server (explicitly: it is never assumed).
	cc.Spec.Limiter = &capacityv1alpha1.Limiter{Redis: capacityv1alpha1.RedisConnection{Address: addr}}
	cc.Spec.Replicas = capacityv1alpha1.Replicas{Min: 0, Max: 100}
	cc.Spec.Behavior = fastBehavior()
	cc.Spec.PollIntervalSeconds = 1
	return cc
}

func push(g Gomega, srv *redistest.Server, list string, n int) {
	jobs := make([]any, n)
	for i := range jobs {
		jobs[i] = fmt.Sprintf("job-%d", i)
	}
	g.Expect(srv.Client().RPush(context.Background(), list, jobs...).Err()).To(Succeed())
}

func specReplicas(g Gomega, ns, name string) int32 {
	d := &appsv1.Deployment{}
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, d)).To(Succeed())
	return ptr.Deref(d.Spec.Replicas, 1)
}

// updateCC changes a ClaudeCapacity, retrying when the controller's status write got in
// between the read and the update.
func updateCC(g Gomega, cc *capacityv1alpha1.ClaudeCapacity, mutate func(*capacityv1alpha1.ClaudeCapacity)) {
	g.Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(cc), cc); err != nil {
			return err
		}
		mutate(cc)
		return k8sClient.Update(context.Background(), cc)
	})).To(Succeed())
}

// backlogged starts the common scenario: 600 jobs already queued in "jobs" (so the first
// poll is the estimator's baseline and demand is exactly 11 replicas of 30/min), a
// Deployment "workers" at 1 replica, and its ClaudeCapacity (a private pool), changed by
// adjust before it is created.
func backlogged(g Gomega, srv *redistest.Server, ns string, adjust func(*capacityv1alpha1.ClaudeCapacity)) *capacityv1alpha1.ClaudeCapacity {
	push(g, srv, "jobs", 600)
	g.Expect(k8sClient.Create(context.Background(), newDeployment(ns, "workers", 1))).To(Succeed())
	cc := queued(ns, "workers", srv.Addr(), "jobs")
	if adjust != nil {
		adjust(cc)
	}
	g.Expect(k8sClient.Create(context.Background(), cc)).To(Succeed())
	return cc
}

// eventuallyReplicas waits until the Deployment "workers" is set to n replicas.
func eventuallyReplicas(g Gomega, ns string, n int32) {
	g.Eventually(func(g Gomega) { g.Expect(specReplicas(g, ns, "workers")).To(Equal(n)) }, eventually).Should(Succeed())
}

func getCC(g Gomega, cc *capacityv1alpha1.ClaudeCapacity) *capacityv1alpha1.ClaudeCapacity {
	got := &capacityv1alpha1.ClaudeCapacity{}
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKeyFromObject(cc), got)).To(Succeed())
	return got
}

func TestBacklogRaisesReplicasToDemand(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	srv := redistest.Start(t)
	ns := newNamespace(t)
	g.Expect(k8sClient.Create(ctx, newDeployment(ns, "workers", 1))).To(Succeed())
	cc := queued(ns, "workers", srv.Addr(), "jobs")
	g.Expect(k8sClient.Create(ctx, cc)).To(Succeed())

	// An empty, quiet queue needs nothing: min replicas is 0.
	g.Eventually(func(g Gomega) {
		got := getCC(g, cc)
		g.Expect(meta.IsStatusConditionTrue(got.Status.Conditions, capacityv1alpha1.ConditionSignalsAvailable)).To(BeTrue())
		g.Expect(got.Status.Queue).NotTo(BeNil())
		g.Expect(got.Status.DemandReplicas).To(BeZero())
	}, eventually).Should(Succeed())

	// 600 jobs to drain in 120 s need at least 10 replicas of 30/min; the burst also
	// raises the arrival estimate above the declared 30/min, so demand is higher still.
	push(g, srv, "jobs", 600)
	g.Eventually(func(g Gomega) {
		got := getCC(g, cc)
		g.Expect(got.Status.Queue.Depth).To(Equal(int64(600)))
		g.Expect(got.Status.DemandReplicas).To(BeNumerically(">=", 11))
		g.Expect(got.Status.DesiredReplicas).To(Equal(got.Status.DemandReplicas))
		g.Expect(specReplicas(g, ns, "workers")).To(Equal(got.Status.DesiredReplicas))
		g.Expect(got.Status.LimitedBy).To(Equal(capacityv1alpha1.LimitedByQueue))
		g.Expect(got.Status.LastScaleTime).NotTo(BeNil())
	}, eventually).Should(Succeed())
}

func TestQueueKnownBeforehandScalesToExactDemand(t *testing.T) {
	g := NewWithT(t)
	srv := redistest.Start(t)
	ns := newNamespace(t)
	// The first poll is the estimator's baseline, so arrivals stay at the declared
	// 30/min: 600/120 s = 300/min plus 30/min is 330/min, 11 replicas of 30/min. One poll
	// decides: later ones would see the undrained backlog nearer its drain deadline.
	cc := backlogged(g, srv, ns, func(cc *capacityv1alpha1.ClaudeCapacity) { cc.Spec.PollIntervalSeconds = 60 })
	g.Eventually(func(g Gomega) {
		g.Expect(specReplicas(g, ns, "workers")).To(Equal(int32(11)))
		got := getCC(g, cc)
		g.Expect(got.Status.DemandReplicas).To(Equal(int32(11)))
		g.Expect(got.Status.Queue.ArrivalsPerMinute).To(Equal(int64(30)))
	}, eventually).Should(Succeed())
}

func TestLowLimitsCapReplicasAndNameTheDimension(t *testing.T) {
	srv := redistest.Start(t)
	// Each replica uses 30 requests, 15,000 input and 6,000 output tokens per minute.
	// Each case leaves room for exactly 3 replicas in one dimension.
	cases := []struct {
		dimension capacityv1alpha1.LimitReason
		limits    *capacityv1alpha1.Limits
	}{
		{capacityv1alpha1.LimitedByRequests, explicitLimits(95, 10_000_000, 10_000_000)},
		{capacityv1alpha1.LimitedByInputTokens, explicitLimits(10_000, 50_000, 10_000_000)},
		{capacityv1alpha1.LimitedByOutputTokens, explicitLimits(10_000, 10_000_000, 20_000)},
	}
	for _, tc := range cases {
		t.Run(string(tc.dimension), func(t *testing.T) {
			g := NewWithT(t)
			ctx := context.Background()
			ns := newNamespace(t)
			list := "jobs-" + string(tc.dimension)
			push(g, srv, list, 600)
			g.Expect(k8sClient.Create(ctx, newDeployment(ns, "workers", 1))).To(Succeed())
			cc := queued(ns, "workers", srv.Addr(), list)
			cc.Spec.Limits = tc.limits
			g.Expect(k8sClient.Create(ctx, cc)).To(Succeed())
			g.Eventually(func(g Gomega) {
				g.Expect(specReplicas(g, ns, "workers")).To(Equal(int32(3)))
				got := getCC(g, cc)
				// 11 for 600 queued at first, more as the undrained backlog nears its deadline.
				g.Expect(got.Status.DemandReplicas).To(BeNumerically(">=", 11))
				g.Expect(*got.Status.CapReplicas).To(Equal(int32(3)))
				g.Expect(got.Status.LimitedBy).To(Equal(tc.dimension))
				limited := conditionOf(g, got, capacityv1alpha1.ConditionScalingLimited)
				g.Expect(limited.Status).To(Equal(metav1.ConditionTrue))
				g.Expect(limited.Reason).To(Equal(string(tc.dimension)))
			}, eventually).Should(Succeed())
		})
	}
}

// conditionOf returns a condition, failing this poll (not the test) while it is not set yet:
// the controller may scale the target before its status patch lands.
func conditionOf(g Gomega, cc *capacityv1alpha1.ClaudeCapacity, condType string) *metav1.Condition {
	c := meta.FindStatusCondition(getCC(g, cc).Status.Conditions, condType)
	g.Expect(c).NotTo(BeNil(), "condition %s is not set yet", condType)
	return c
}

func explicitLimits(rpm, itpm, otpm int64) *capacityv1alpha1.Limits {
	return &capacityv1alpha1.Limits{RequestsPerMinute: &rpm, InputTokensPerMinute: &itpm, OutputTokensPerMinute: &otpm}
}

func TestDeadRedisHoldsReplicasAndRecovers(t *testing.T) {
	g := NewWithT(t)
	srv := redistest.Start(t)
	ns := newNamespace(t)
	cc := backlogged(g, srv, ns, nil)
	eventuallyReplicas(g, ns, 11)

	srv.Stop()
	g.Eventually(func(g Gomega) {
		got := getCC(g, cc)
		sig := conditionOf(g, got, capacityv1alpha1.ConditionSignalsAvailable)
		g.Expect(sig).NotTo(BeNil(), "conditions: %+v", got.Status.Conditions)
		g.Expect(sig.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(sig.Message).To(ContainSubstring(srv.Addr()))
		g.Expect(got.Status.LimitedBy).To(Equal(capacityv1alpha1.LimitedByHeld))
		g.Expect(meta.IsStatusConditionTrue(got.Status.Conditions, capacityv1alpha1.ConditionReady)).To(BeFalse())
	}, eventually).Should(Succeed())
	// Held, not scaled to zero on missing data, for several polls.
	g.Consistently(func(g Gomega) { g.Expect(specReplicas(g, ns, "workers")).To(Equal(int32(11))) }, "4s").Should(Succeed())

	// The restarted server is empty: the queue really is idle now, and the controller
	// follows it down once signals are back.
	srv.Restart()
	g.Eventually(func(g Gomega) {
		got := getCC(g, cc)
		g.Expect(meta.IsStatusConditionTrue(got.Status.Conditions, capacityv1alpha1.ConditionSignalsAvailable)).To(BeTrue())
		g.Expect(specReplicas(g, ns, "workers")).To(Equal(got.Status.DesiredReplicas))
		g.Expect(got.Status.DesiredReplicas).To(BeNumerically("<", 11))
	}, eventually).Should(Succeed())
}

func TestAnotherAutoscalerOnTheTargetIsNotFought(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	srv := redistest.Start(t)
	ns := newNamespace(t)
	g.Expect(k8sClient.Create(ctx, newDeployment(ns, "workers", 2))).To(Succeed())
	hpa := &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "workers"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "workers"},
			MinReplicas:    ptr.To[int32](1),
			MaxReplicas:    5,
		},
	}
	g.Expect(k8sClient.Create(ctx, hpa)).To(Succeed())
	push(g, srv, "jobs", 600)
	cc := queued(ns, "workers", srv.Addr(), "jobs")
	g.Expect(k8sClient.Create(ctx, cc)).To(Succeed())
	g.Eventually(func(g Gomega) {
		active := conditionOf(g, cc, capacityv1alpha1.ConditionScalingActive)
		g.Expect(active).NotTo(BeNil())
		g.Expect(active.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(active.Reason).To(Equal(capacityv1alpha1.ReasonAmbiguousAutoscaler))
		g.Expect(active.Message).To(ContainSubstring("HorizontalPodAutoscaler workers"))
		g.Expect(getCC(g, cc).Status.LimitedBy).To(Equal(capacityv1alpha1.LimitedByHeld))
	}, eventually).Should(Succeed())
	g.Consistently(func(g Gomega) { g.Expect(specReplicas(g, ns, "workers")).To(Equal(int32(2))) }, "3s").Should(Succeed())
}

// Two ClaudeCapacities on one Deployment would each write their own replicas and the
// target would flip between them: the one created first scales, the other holds and says
// why.
func TestSecondClaudeCapacityOnTheTargetHolds(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	srv := redistest.Start(t)
	ns := newNamespace(t)
	first := backlogged(g, srv, ns, nil)
	eventuallyReplicas(g, ns, 11)
	time.Sleep(1100 * time.Millisecond) // Creation times have whole seconds (a tie goes to the smaller name).
	second := queued(ns, "workers", srv.Addr(), "other-jobs")
	second.Name = "second"
	g.Expect(k8sClient.Create(ctx, second)).To(Succeed())
	g.Eventually(func(g Gomega) {
		active := conditionOf(g, second, capacityv1alpha1.ConditionScalingActive)
		g.Expect(active).NotTo(BeNil())
		g.Expect(active.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(active.Reason).To(Equal(capacityv1alpha1.ReasonAmbiguousAutoscaler))
		g.Expect(active.Message).To(ContainSubstring("ClaudeCapacity " + first.Name))
	}, eventually).Should(Succeed())
	// The second's empty queue would want 0 replicas: it never writes them.
	g.Consistently(func(g Gomega) { g.Expect(specReplicas(g, ns, "workers")).To(BeNumerically(">=", 11)) }, "4s").Should(Succeed())
	g.Expect(meta.IsStatusConditionTrue(getCC(g, first).Status.Conditions, capacityv1alpha1.ConditionScalingActive)).To(BeTrue())
}

func TestPauseAnnotations(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	srv := redistest.Start(t)
	ns := newNamespace(t)
	g.Expect(k8sClient.Create(ctx, newDeployment(ns, "workers", 2))).To(Succeed())
	push(g, srv, "jobs", 600)
	cc := queued(ns, "workers", srv.Addr(), "jobs")
	cc.Annotations = map[string]string{capacityv1alpha1.AnnotationPaused: "true"}
	g.Expect(k8sClient.Create(ctx, cc)).To(Succeed())
	g.Eventually(func(g Gomega) {
		active := conditionOf(g, cc, capacityv1alpha1.ConditionScalingActive)
		g.Expect(active).NotTo(BeNil())
		g.Expect(active.Reason).To(Equal(capacityv1alpha1.ReasonPaused))
	}, eventually).Should(Succeed())
	g.Consistently(func(g Gomega) { g.Expect(specReplicas(g, ns, "workers")).To(Equal(int32(2))) }, "3s").Should(Succeed())

	// paused-replicas sets the count once and keeps it.
	updateCC(g, cc, func(cc *capacityv1alpha1.ClaudeCapacity) {
		cc.Annotations = map[string]string{capacityv1alpha1.AnnotationPausedReplicas: "4"}
	})
	g.Eventually(func(g Gomega) { g.Expect(specReplicas(g, ns, "workers")).To(Equal(int32(4))) }, eventually).Should(Succeed())
	g.Consistently(func(g Gomega) { g.Expect(specReplicas(g, ns, "workers")).To(Equal(int32(4))) }, "3s").Should(Succeed())

	// The annotation is not a way around the bounds: a huge count is clamped to max.
	updateCC(g, cc, func(cc *capacityv1alpha1.ClaudeCapacity) {
		cc.Annotations = map[string]string{capacityv1alpha1.AnnotationPausedReplicas: "2147483647"}
	})
	g.Eventually(func(g Gomega) {
		g.Expect(specReplicas(g, ns, "workers")).To(Equal(int32(100)))
		g.Expect(conditionOf(g, cc, capacityv1alpha1.ConditionScalingActive).Message).To(ContainSubstring("clamped to replicas 0..100"))
	}, eventually).Should(Succeed())

	// Unpaused, it follows the queue again (11 for 600 queued at first, more as the
	// undrained backlog nears its deadline).
	updateCC(g, cc, func(cc *capacityv1alpha1.ClaudeCapacity) { cc.Annotations = nil })
	g.Eventually(func(g Gomega) {
		g.Expect(specReplicas(g, ns, "workers")).To(BeNumerically(">=", 11))
		g.Expect(specReplicas(g, ns, "workers")).To(Equal(getCC(g, cc).Status.DesiredReplicas))
	}, eventually).Should(Succeed())
}

func TestScaleDownWaitsForInFlightWork(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	srv := redistest.Start(t)
	ns := newNamespace(t)
	cc := backlogged(g, srv, ns, func(cc *capacityv1alpha1.ClaudeCapacity) { cc.Spec.Traffic.RequestsPerMinute = 1 })
	eventuallyReplicas(g, ns, 11)

	// The backlog is gone but 6 jobs are still being worked on: replicas may fall to what
	// the in-flight work occupies, not below.
	g.Expect(srv.Client().Del(ctx, "jobs").Err()).To(Succeed())
	push(g, srv, "jobs:processing", 6)
	g.Eventually(func(g Gomega) {
		g.Expect(specReplicas(g, ns, "workers")).To(Equal(int32(6)))
		limited := conditionOf(g, cc, capacityv1alpha1.ConditionScalingLimited)
		g.Expect(limited.Reason).To(Equal(string(capacityv1alpha1.LimitedByWorkInFlight)))
	}, eventually).Should(Succeed())
	g.Consistently(func(g Gomega) { g.Expect(specReplicas(g, ns, "workers")).To(Equal(int32(6))) }, "3s").Should(Succeed())

	// Work done: down to zero once idle (no stabilization window in this test).
	g.Expect(srv.Client().Del(ctx, "jobs:processing").Err()).To(Succeed())
	g.Eventually(func(g Gomega) { g.Expect(specReplicas(g, ns, "workers")).To(Equal(int32(0))) }, eventually).Should(Succeed())
}
