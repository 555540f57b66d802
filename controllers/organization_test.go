package controllers

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	capacityv1alpha1 "github.com/claudecap/claudecap/api/v1alpha1"
	"github.com/claudecap/claudecap/internal/testutil/redistest"
	"github.com/claudecap/claudecap/pkg/ratelimit"
)

// testOrgLabel is the namespace label the test organizations select on; its value is the
// organization's name.
const testOrgLabel = "capacity.claudecap.io/test-organization"

// newOrganization creates a ClaudeOrganization named after the test's first namespace, with
// the limits given (tier 4 when nil) at 100% headroom, its limiter on addr, selecting the
// namespaces labelled for it; and labels the given namespaces so. adjust changes it first.
func newOrganization(g Gomega, t *testing.T, addr string, limits *capacityv1alpha1.ClassLimits,
	adjust func(*capacityv1alpha1.ClaudeOrganization), namespaces ...string) *capacityv1alpha1.ClaudeOrganization {
	t.Helper()
	org := &capacityv1alpha1.ClaudeOrganization{
		ObjectMeta: metav1.ObjectMeta{Name: "org-" + namespaces[0]},
		Spec: capacityv1alpha1.ClaudeOrganizationSpec{
			Limits:            capacityv1alpha1.OrganizationLimits{Tier: capacityv1alpha1.Tier4},
			HeadroomPercent:   100,
			Limiter:           capacityv1alpha1.OrganizationLimiter{Redis: capacityv1alpha1.OrganizationRedis{Address: addr}},
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{testOrgLabel: "org-" + namespaces[0]}},
		},
	}
	if limits != nil {
		org.Spec.Limits = capacityv1alpha1.OrganizationLimits{Classes: []capacityv1alpha1.ClassLimits{*limits}}
	}
	if adjust != nil {
		adjust(org)
	}
	g.Expect(k8sClient.Create(context.Background(), org)).To(Succeed())
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), org) })
	for _, ns := range namespaces {
		setNamespaceLabel(g, ns, testOrgLabel, org.Name)
	}
	return org
}

func setNamespaceLabel(g Gomega, ns, key, value string) {
	g.Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n := &corev1.Namespace{}
		if err := k8sClient.Get(context.Background(), client.ObjectKey{Name: ns}, n); err != nil {
			return err
		}
		if n.Labels == nil {
			n.Labels = map[string]string{}
		}
		n.Labels[key] = value
		return k8sClient.Update(context.Background(), n)
	})).To(Succeed())
}

// sonnetLimits are explicit limits for the sonnet-4 class.
func sonnetLimits(rpm, itpm, otpm int64) *capacityv1alpha1.ClassLimits {
	return &capacityv1alpha1.ClassLimits{Class: "sonnet-4", RequestsPerMinute: &rpm, InputTokensPerMinute: &itpm, OutputTokensPerMinute: &otpm}
}

// joins makes a ClaudeCapacity a member of the organization.
func joins(org string) func(*capacityv1alpha1.ClaudeCapacity) {
	return func(cc *capacityv1alpha1.ClaudeCapacity) {
		cc.Spec.Limits, cc.Spec.Limiter = nil, nil
		cc.Spec.OrganizationRef = &capacityv1alpha1.OrganizationRef{Name: org}
	}
}

func getOrg(g Gomega, org *capacityv1alpha1.ClaudeOrganization) *capacityv1alpha1.ClaudeOrganization {
	got := &capacityv1alpha1.ClaudeOrganization{}
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKeyFromObject(org), got)).To(Succeed())
	return got
}

func orgCondition(g Gomega, org *capacityv1alpha1.ClaudeOrganization, condType string) *metav1.Condition {
	c := meta.FindStatusCondition(getOrg(g, org).Status.Conditions, condType)
	g.Expect(c).NotTo(BeNil(), "condition %s", condType)
	return c
}

// The first version's pools were matched by a string: a ClaudeCapacity in any namespace
// that named the same organization with 1 RPM and 1% headroom took a backlogged victim
// from 11 replicas to 0. Now a namespace the organization does not select cannot join,
// and a private pool with tiny limits is a pool of its own.
func TestCrossNamespaceTakeoverIsRefused(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	srv := redistest.Start(t)
	victimNS, attackerNS := newNamespace(t), newNamespace(t)
	org := newOrganization(g, t, srv.Addr(), nil, nil, victimNS)
	victim := backlogged(g, srv, victimNS, joins(org.Name))
	eventuallyReplicas(g, victimNS, 11)

	// From a namespace the organization does not select.
	g.Expect(k8sClient.Create(ctx, newDeployment(attackerNS, "workers", 1))).To(Succeed())
	intruder := queued(attackerNS, "workers", srv.Addr(), "attacker-jobs")
	joins(org.Name)(intruder)
	g.Expect(k8sClient.Create(ctx, intruder)).To(Succeed())
	// A private pool with the smallest limits there are, on the same Redis.
	tiny := queued(attackerNS, "tiny", srv.Addr(), "attacker-jobs")
	tiny.Spec.Limits, tiny.Spec.HeadroomPercent = explicitLimits(1, 1, 1), 1
	g.Expect(k8sClient.Create(ctx, tiny)).To(Succeed())

	g.Eventually(func(g Gomega) {
		conds := getCC(g, intruder).Status.Conditions
		g.Expect(conds).To(HaveCondition(capacityv1alpha1.ConditionOrganizationBound, metav1.ConditionFalse, capacityv1alpha1.ReasonNamespaceNotSelected))
		g.Expect(conds).To(HaveCondition(capacityv1alpha1.ConditionReady, metav1.ConditionFalse, capacityv1alpha1.ReasonNamespaceNotSelected))
		got := getOrg(g, org)
		g.Expect(got.Status.Members).To(Equal(int32(1)))
		g.Expect(got.Status.Refused).To(Equal(int32(1)))
		g.Expect(getCC(g, tiny).Status.Pool).To(Equal(attackerNS + ".tiny/sonnet-4"))
	}, eventually).Should(Succeed())
	g.Consistently(func(g Gomega) {
		// The backlog ages without workers, so demand only grows; it never collapses.
		g.Expect(specReplicas(g, victimNS, "workers")).To(BeNumerically(">=", 11))
		g.Expect(getCC(g, victim).Status.Limits.OutputTokensPerMinute).To(BeNumerically(">", 1))
	}, "4s").Should(Succeed())
	g.Expect(specReplicas(g, attackerNS, "workers")).To(Equal(int32(1)), "an unbound member's replicas are held")
	cfg, err := ratelimit.ReadPoolConfig(ctx, srv.Client(), ratelimit.PoolKey{Organization: org.Name, Class: "sonnet-4"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cfg.Allocations).To(HaveLen(1))
	g.Expect(cfg.Allocations).To(HaveKey(victimNS + "/workers"))

	// Selected by the administrators, the same ClaudeCapacity joins without a change of its own.
	setNamespaceLabel(g, attackerNS, testOrgLabel, org.Name)
	g.Eventually(func(g Gomega) {
		g.Expect(conditionOf(g, intruder, capacityv1alpha1.ConditionOrganizationBound).Status).To(Equal(metav1.ConditionTrue))
		g.Expect(getOrg(g, org).Status.Members).To(Equal(int32(2)))
	}, eventually).Should(Succeed())
}

// A member that cannot act (no target, a dead queue Redis) and has the smallest name kept a
// pool's limiters unconfigured in the first version. The organization's controller writes
// the pool whatever its members do.
func TestABlockingMemberCannotSwitchThePoolOff(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	limiter, queue := redistest.Start(t), redistest.Start(t)
	ns := newNamespace(t)
	org := newOrganization(g, t, limiter.Addr(), nil, nil, ns)
	// "aaa" sorts first, has no target and its queue's Redis is gone.
	blocker := queued(ns, "aaa", "127.0.0.1:1", "jobs")
	joins(org.Name)(blocker)
	g.Expect(k8sClient.Create(ctx, blocker)).To(Succeed())
	backlogged(g, queue, ns, joins(org.Name))

	pool := ratelimit.PoolKey{Organization: org.Name, Class: "sonnet-4"}
	g.Eventually(func(g Gomega) {
		cfg, err := ratelimit.ReadPoolConfig(ctx, limiter.Client(), pool)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(cfg.Allocations).To(HaveKey(ns + "/workers"))
		conds := getOrg(g, org).Status.Conditions
		g.Expect(conds).To(HaveCondition(capacityv1alpha1.ConditionPoolsConfigured, metav1.ConditionTrue, capacityv1alpha1.ReasonPoolsConfigured))
		g.Expect(conds).To(HaveCondition(capacityv1alpha1.ConditionReady, metav1.ConditionTrue, capacityv1alpha1.ReasonReady))
	}, eventually).Should(Succeed())
	eventuallyReplicas(g, ns, 11)
}

// Members share by weight inside a class; a member whose queue empties leaves its share to
// the others. The organization's status shows every member's demand and allocation.
func TestPoolIsSharedByWeightAndIdleSharesGoToOthers(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	srv := redistest.Start(t)
	ns := newNamespace(t)
	// 48,000 output tokens per minute carry 8 replicas of 6,000; both queues want 11.
	org := newOrganization(g, t, srv.Addr(), sonnetLimits(10_000, 10_000_000, 48_000), nil, ns)
	small := queued(ns, "small", srv.Addr(), "small-jobs")
	joins(org.Name)(small)
	big := queued(ns, "big", srv.Addr(), "big-jobs")
	joins(org.Name)(big)
	big.Spec.Weight = 3
	push(g, srv, "small-jobs", 600)
	push(g, srv, "big-jobs", 600)
	for _, cc := range []*capacityv1alpha1.ClaudeCapacity{small, big} {
		g.Expect(k8sClient.Create(ctx, newDeployment(ns, cc.Name, 1))).To(Succeed())
		g.Expect(k8sClient.Create(ctx, cc)).To(Succeed())
	}

	g.Eventually(func(g Gomega) {
		s, b := getCC(g, small), getCC(g, big)
		g.Expect(s.Status.Allocation).NotTo(BeNil())
		g.Expect(b.Status.Allocation).NotTo(BeNil())
		g.Expect(s.Status.Allocation.OutputTokensPerMinute * 3).To(Equal(b.Status.Allocation.OutputTokensPerMinute))
		g.Expect(s.Status.Allocation.OutputTokensPerMinute + b.Status.Allocation.OutputTokensPerMinute).To(BeNumerically("<=", 48_000))
		g.Expect(specReplicas(g, ns, "small")).To(Equal(int32(2)))
		g.Expect(specReplicas(g, ns, "big")).To(Equal(int32(6)))
		g.Expect(s.Status.LimitedBy).To(Equal(capacityv1alpha1.LimitedByPoolShare))
		// The organization computes the same split.
		st := getOrg(g, org).Status
		g.Expect(st.Classes).To(HaveLen(1))
		g.Expect(st.Classes[0].Budget.OutputTokensPerMinute).To(Equal(int64(48_000)))
		g.Expect(st.Classes[0].Members).To(ConsistOf(
			And(HaveField("Name", "small"), HaveField("DemandReplicas", s.Status.DemandReplicas), HaveField("AllocatedReplicas", int32(2))),
			And(HaveField("Name", "big"), HaveField("DemandReplicas", b.Status.DemandReplicas), HaveField("AllocatedReplicas", int32(6))),
		))
	}, eventually).Should(Succeed())

	// The big workload's queue empties (and its declared traffic is idle): the small one
	// gets what the big one no longer claims.
	g.Expect(srv.Client().Del(ctx, "big-jobs").Err()).To(Succeed())
	updateCC(g, big, func(cc *capacityv1alpha1.ClaudeCapacity) { cc.Spec.Traffic.RequestsPerMinute = 1 })
	g.Eventually(func(g Gomega) {
		b := getCC(g, big)
		g.Expect(b.Status.DemandReplicas).To(BeNumerically("<=", 1))
		s := getCC(g, small)
		g.Expect(*s.Status.CapReplicas).To(BeNumerically(">=", 7))
		g.Expect(specReplicas(g, ns, "small")).To(BeNumerically(">=", 7))
	}, eventually).Should(Succeed())
}

// Higher priority classes are served first; a guaranteed minimum comes before any class;
// lower classes' calls leave the declared reserve in the bucket.
func TestPrioritiesSplitAsDeclared(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	srv := redistest.Start(t)
	ns := newNamespace(t)
	org := newOrganization(g, t, srv.Addr(), sonnetLimits(10_000, 10_000_000, 48_000), func(o *capacityv1alpha1.ClaudeOrganization) {
		o.Spec.PriorityClasses = []capacityv1alpha1.PriorityClass{
			{Name: "interactive", Value: 100, ReservePercent: 25},
			{Name: "batch", Value: 10},
		}
	}, ns)
	chat := queued(ns, "chat", srv.Addr(), "chat-jobs")
	joins(org.Name)(chat)
	chat.Spec.PriorityClassName = "interactive"
	batch := queued(ns, "batch", srv.Addr(), "batch-jobs")
	joins(org.Name)(batch) // no class: the lowest
	push(g, srv, "chat-jobs", 600)
	push(g, srv, "batch-jobs", 600)
	for _, cc := range []*capacityv1alpha1.ClaudeCapacity{chat, batch} {
		g.Expect(k8sClient.Create(ctx, newDeployment(ns, cc.Name, 1))).To(Succeed())
		g.Expect(k8sClient.Create(ctx, cc)).To(Succeed())
	}
	// 8 replicas fit; the interactive workload wants 11 and takes all 8.
	g.Eventually(func(g Gomega) {
		g.Expect(specReplicas(g, ns, "chat")).To(Equal(int32(8)))
		g.Expect(specReplicas(g, ns, "batch")).To(Equal(int32(0)))
	}, eventually).Should(Succeed())

	// Every batch call leaves a quarter of each limit for interactive calls.
	pool := ratelimit.PoolKey{Organization: org.Name, Class: "sonnet-4"}
	g.Eventually(func(g Gomega) {
		cfg, err := ratelimit.ReadPoolConfig(ctx, srv.Client(), pool)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(cfg.Reserves).To(HaveKeyWithValue(ns+"/batch", ratelimit.Limits{
			RequestsPerMinute: 2_500, InputTokensPerMinute: 2_500_000, OutputTokensPerMinute: 12_000}))
		g.Expect(cfg.Reserves).NotTo(HaveKey(ns + "/chat"))
	}, eventually).Should(Succeed())

	// A guaranteed minimum is served before any class.
	updateCC(g, batch, func(cc *capacityv1alpha1.ClaudeCapacity) { cc.Spec.GuaranteedReplicas = 2 })
	g.Eventually(func(g Gomega) {
		g.Expect(specReplicas(g, ns, "batch")).To(Equal(int32(2)))
		g.Expect(specReplicas(g, ns, "chat")).To(Equal(int32(6)))
	}, eventually).Should(Succeed())
}

// The organization's controller writes a pool when what it should hold changes, not every
// sync; after an operator restart it finds the pool as it left it and writes nothing.
func TestOrganizationWritesEachPoolOncePerChange(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	srv := redistest.Start(t)
	ns := newNamespace(t)
	org := newOrganization(g, t, srv.Addr(), sonnetLimits(10_000, 10_000_000, 48_000), nil, ns)
	// Declared traffic, no queue: a steady demand.
	cc := queued(ns, "workers", srv.Addr(), "jobs")
	joins(org.Name)(cc)
	cc.Spec.Queue = nil
	cc.Spec.Traffic.RequestsPerMinute = 90
	g.Expect(k8sClient.Create(ctx, newDeployment(ns, "workers", 1))).To(Succeed())
	g.Expect(k8sClient.Create(ctx, cc)).To(Succeed())
	eventuallyReplicas(g, ns, 3)
	pool := ratelimit.PoolKey{Organization: org.Name, Class: "sonnet-4"}
	g.Eventually(func(g Gomega) {
		_, err := ratelimit.ReadPoolConfig(ctx, srv.Client(), pool)
		g.Expect(err).NotTo(HaveOccurred())
	}, eventually).Should(Succeed())
	writes := testOrgReconciler.poolWrites(org.Name, "sonnet-4")
	g.Expect(writes).To(BeNumerically(">=", 1))
	// Two syncs later, nothing changed and nothing was written.
	g.Consistently(func() int { return testOrgReconciler.poolWrites(org.Name, "sonnet-4") },
		limiterSyncInterval*2+time.Second).Should(Equal(writes))

	// A new limit is one write.
	g.Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		got := getOrg(g, org)
		got.Spec.Limits.Classes[0].OutputTokensPerMinute = ptr.To[int64](36_000)
		return k8sClient.Update(ctx, got)
	})).To(Succeed())
	g.Eventually(func(g Gomega) {
		cfg, err := ratelimit.ReadPoolConfig(ctx, srv.Client(), pool)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(cfg.Limits.OutputTokensPerMinute).To(Equal(int64(36_000)))
	}, eventually).Should(Succeed())
	g.Expect(testOrgReconciler.poolWrites(org.Name, "sonnet-4")).To(Equal(writes + 1))

	// A restart loses nothing: the pool is as it was, the replicas stay, and a Redis that
	// lost its data gets the pool back.
	testReconciler.memory.reset()
	testOrgReconciler.forget(org.Name)
	g.Consistently(func(g Gomega) {
		g.Expect(specReplicas(g, ns, "workers")).To(Equal(int32(3)))
		cfg, err := ratelimit.ReadPoolConfig(ctx, srv.Client(), pool)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(cfg.Limits.OutputTokensPerMinute).To(Equal(int64(36_000)))
	}, "3s").Should(Succeed())
	g.Expect(srv.Client().FlushAll(ctx).Err()).To(Succeed())
	g.Eventually(func(g Gomega) {
		cfg, err := ratelimit.ReadPoolConfig(ctx, srv.Client(), pool)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(cfg.Allocations).To(HaveKey(ns + "/workers"))
	}, 2*eventually).Should(Succeed())
}

// An organization's limiter password comes only from the operator's namespace: a member's
// namespace cannot supply it, and a tenant cannot point the organization anywhere.
func TestOrganizationPasswordComesFromTheOperatorNamespace(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	const value = "TOP-SECRET-tenant-password"
	g.Expect(k8sClient.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "limiter-redis",
			Labels: map[string]string{capacityv1alpha1.LabelRedisCredentials: "true"}},
		Data: map[string][]byte{"password": []byte(value)},
	})).To(Succeed())
	rec := startAuthRecorder(t)
	org := newOrganization(g, t, rec.addr, nil, func(o *capacityv1alpha1.ClaudeOrganization) {
		o.Spec.Limiter.Redis.PasswordSecretRef = &capacityv1alpha1.SecretKeyRef{Name: "limiter-redis", Key: "password"}
	}, ns)
	srv := redistest.Start(t)
	backlogged(g, srv, ns, joins(org.Name))
	g.Eventually(func(g Gomega) {
		g.Expect(getOrg(g, org).Status.Conditions).To(HaveCondition(capacityv1alpha1.ConditionReady, metav1.ConditionFalse,
			capacityv1alpha1.ReasonLimiterUnavailable))
		c := orgCondition(g, org, capacityv1alpha1.ConditionReady)
		g.Expect(c.Message).To(ContainSubstring(operatorNamespace + "/limiter-redis"))
		g.Expect(c.Message).NotTo(ContainSubstring(value))
	}, eventually).Should(Succeed())
	g.Consistently(func() bool { return rec.received(value) }, "2s").Should(BeFalse())
}
