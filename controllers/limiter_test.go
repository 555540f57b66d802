package controllers

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	capacityv1alpha1 "github.com/claudecap/claudecap/api/v1alpha1"
	"github.com/claudecap/claudecap/internal/testutil/redistest"
	"github.com/claudecap/claudecap/pkg/capacity"
	"github.com/claudecap/claudecap/pkg/ratelimit"
)

func TestLimiterStateFlowsBothWays(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	srv := redistest.Start(t)
	rdb := srv.Client()
	ns := newNamespace(t)
	// 48,000 output tokens per minute carry 8 replicas of 6,000 (30 requests of 200).
	limits := explicitLimits(10_000, 10_000_000, 48_000)
	pool := ratelimit.PoolKey{Organization: ns + ".workers", Class: "sonnet-4"} // a private pool
	workload := ns + "/workers"

	// What the workers' limiters report: 120 requests and 3 refusals from the API in the
	// last minute.
	g.Expect(ratelimit.RecordUsage(ctx, rdb, pool, workload, "pod-a",
		ratelimit.UsageSample{Requests: 120, InputTokens: 60_000, OutputTokens: 24_000, RateLimited: 3})).To(Succeed())
	limits.OutputAccounting = capacityv1alpha1.OutputAccountingReserved
	cc := backlogged(g, srv, ns, func(cc *capacityv1alpha1.ClaudeCapacity) { cc.Spec.Limits = limits })
	g.Eventually(func(g Gomega) { g.Expect(getCC(g, cc).Status.Pool).To(Equal(ns + ".workers/sonnet-4")) }, eventually).Should(Succeed())

	g.Eventually(func(g Gomega) {
		got := getCC(g, cc)
		g.Expect(got.Status.Observed).NotTo(BeNil())
		g.Expect(got.Status.Observed.RequestsPerMinute).To(Equal(int64(120)))
		g.Expect(got.Status.Observed.OutputTokensPerMinute).To(Equal(int64(24_000)))
		g.Expect(got.Status.Observed.RateLimitedRequests).To(Equal(int64(3)))
		limited := conditionOf(g, got, capacityv1alpha1.ConditionRateLimited)
		g.Expect(limited.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(limited.Message).To(ContainSubstring("3 requests with 429"))
	}, eventually).Should(Succeed())

	// The controller publishes the pool's effective limits and this workload's share.
	g.Eventually(func(g Gomega) {
		cfg, err := ratelimit.ReadPoolConfig(ctx, rdb, pool)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(cfg.Limits.OutputTokensPerMinute).To(Equal(int64(48_000)))
		g.Expect(cfg.Allocations).To(HaveKey(workload))
		g.Expect(cfg.Allocations[workload].OutputTokensPerMinute).To(Equal(int64(48_000)))
		g.Expect(cfg.OutputRule).To(Equal(ratelimit.OutputReserved)) // The limiters mirror the declared rule.
	}, eventually).Should(Succeed())

	// Someone else on the same organization key uses output tokens too: the API's headers
	// show all 48,000 used, of which the pool's limiters account for 24,000. The budget
	// shrinks by the other 24,000 and the cap follows. (The 429s above also keep the
	// observed throughput from replacing the declared one, so the numbers stay exact.)
	h := http.Header{}
	h.Set("anthropic-ratelimit-output-tokens-limit", "48000")
	h.Set("anthropic-ratelimit-output-tokens-remaining", "0")
	h.Set("anthropic-ratelimit-output-tokens-reset", time.Now().UTC().Add(time.Minute).Format(time.RFC3339))
	up, err := ratelimit.ParseUpstreamHeaders(h, http.StatusOK)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ratelimit.WriteUpstream(ctx, rdb, pool, up)).To(Succeed())
	g.Eventually(func(g Gomega) {
		got := getCC(g, cc)
		// 48,000 - (48,000 used - 24,000 ours) = 24,000 left: 4 replicas of 6,000.
		g.Expect(got.Status.Allocation.OutputTokensPerMinute).To(Equal(int64(24_000)))
		g.Expect(*got.Status.CapReplicas).To(Equal(int32(4)))
		g.Expect(specReplicas(g, ns, "workers")).To(Equal(int32(4)))
		cfg, err := ratelimit.ReadPoolConfig(ctx, rdb, pool)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(strconv.FormatInt(cfg.Limits.OutputTokensPerMinute, 10)).To(Equal("24000"))
		g.Expect(got.Status.Observed.UpstreamRemaining).NotTo(BeNil())
		g.Expect(got.Status.Observed.UpstreamRemaining.OutputTokensPerMinute).To(BeZero())
	}, 2*eventually).Should(Succeed())
}

// Tier tables change: the limits the API reports in its headers are the truth. A
// difference raises LimitsDrift with both figures; limits.fromUpstream adopts them.
func TestLimitsDriftAndFromUpstream(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	srv := redistest.Start(t)
	ns := newNamespace(t)
	pool := ratelimit.PoolKey{Organization: ns + ".workers", Class: "sonnet-4"}
	h := http.Header{}
	h.Set("anthropic-ratelimit-output-tokens-limit", "16000")
	h.Set("anthropic-ratelimit-output-tokens-remaining", "16000")
	h.Set("anthropic-ratelimit-requests-limit", "10000")
	h.Set("anthropic-ratelimit-requests-remaining", "9999")
	reset := time.Now().UTC().Add(time.Minute).Format(time.RFC3339)
	h.Set("anthropic-ratelimit-output-tokens-reset", reset)
	h.Set("anthropic-ratelimit-requests-reset", reset)
	up, err := ratelimit.ParseUpstreamHeaders(h, http.StatusOK)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ratelimit.WriteUpstream(ctx, srv.Client(), pool, up)).To(Succeed())

	cc := backlogged(g, srv, ns, func(cc *capacityv1alpha1.ClaudeCapacity) {
		cc.Spec.Limits = explicitLimits(10_000, 10_000_000, 48_000)
	})
	g.Eventually(func(g Gomega) {
		drift := conditionOf(g, cc, capacityv1alpha1.ConditionLimitsDrift)
		g.Expect(drift.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(drift.Message).To(ContainSubstring("output tokens 16000/min (declared 48000)"))
		g.Expect(drift.Message).NotTo(ContainSubstring("requests")) // The same figure is no drift.
		g.Expect(getCC(g, cc).Status.Limits.OutputTokensPerMinute).To(Equal(int64(48_000)))
	}, eventually).Should(Succeed())

	updateCC(g, cc, func(cc *capacityv1alpha1.ClaudeCapacity) { cc.Spec.Limits.FromUpstream = true })
	g.Eventually(func(g Gomega) {
		got := getCC(g, cc)
		g.Expect(got.Status.Limits.OutputTokensPerMinute).To(Equal(int64(16_000)))
		g.Expect(conditionOf(g, cc, capacityv1alpha1.ConditionLimitsDrift).Message).To(ContainSubstring("adopted"))
		cfg, err := ratelimit.ReadPoolConfig(ctx, srv.Client(), pool)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(cfg.Limits.OutputTokensPerMinute).To(Equal(int64(16_000))) // headroom 100%
	}, eventually).Should(Succeed())
}

// A poll between two limiter reads (every 10 s) reports the last view. Before, it left the
// observations the object was read with, and since a changed decision writes the status at
// once, a fleet whose decisions changed every few polls kept writing zeros: status.observed
// stayed at zero in make dev-smoke while the workers' calls went through the pool.
func TestPollsBetweenLimiterReadsReportTheLastView(t *testing.T) {
	cc := queued("unit-ns", "cached", "127.0.0.1:1", "jobs")
	cc.Status.Observed = &capacityv1alpha1.ObservedStatus{} // as read from the API: nothing yet
	key := client.ObjectKeyFromObject(cc)
	w := testReconciler.memory.get(key)
	t.Cleanup(func() { testReconciler.memory.forget(key) })
	w.limiter = &limiterView{readAt: time.Now(), usage: ratelimit.WindowUsage{
		UsageSample: ratelimit.UsageSample{Requests: 60, OutputTokens: 12_000, RateLimited: 2}, Window: time.Minute}}
	s := &scope{cc: cc, model: capacity.Model{Class: "sonnet-4"}}
	if _, err := testReconciler.readLimiter(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	o := cc.Status.Observed
	if o == nil || o.RequestsPerMinute != 60 || o.OutputTokensPerMinute != 12_000 || o.RateLimitedRequests != 2 {
		t.Fatalf("observed %+v, want the cached view's 60 requests, 12,000 output tokens and 2 429s per minute", o)
	}
	if s.limiter != w.limiter {
		t.Error("the decision must use the cached view")
	}
}
