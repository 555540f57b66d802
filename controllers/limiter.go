package controllers

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/redis/go-redis/v9"

	capacityv1alpha1 "github.com/claudecap/claudecap/api/v1alpha1"
	"github.com/claudecap/claudecap/pkg/capacity"
	"github.com/claudecap/claudecap/pkg/ratelimit"
	"github.com/claudecap/claudecap/pkg/signals"
)

// The controller and the shared limiters talk through Redis (docs/redis-keys.md): the
// limiters write what the workers used and what the API answered; the controller reads
// that, decides, and writes each pool's effective limits and per-workload allocations.
const (
	// limiterSyncInterval is how often the limiter state is read and the pool config
	// written; queue signals are read every poll, limiter state less often.
	limiterSyncInterval = 10 * time.Second
	// usageWindow is the rolling window observed usage is measured over.
	usageWindow = 60 * time.Second
	// upstreamFresh is how old the last upstream rate-limit headers may be to count.
	upstreamFresh = 60 * time.Second
	// minObservedRequests is how many requests in the window must back observed tokens per
	// request before they replace the declared averages.
	minObservedRequests = 20
)

// Reasons of the RateLimited condition.
const (
	ReasonNoRateLimits       = "NoRateLimits"
	ReasonUpstream429s       = "Upstream429s"
	ReasonLimiterUnavailable = "LimiterUnavailable"
	ReasonNoLimiter          = "NoLimiter"
	ReasonNoUpstreamLimits   = "NoUpstreamLimits"
	ReasonLimitsMatch        = "LimitsMatch"
	ReasonLimitsDiffer       = "LimitsDiffer"
)

// limiterView is the last limiter state read for one workload.
type limiterView struct {
	readAt   time.Time
	usage    ratelimit.WindowUsage
	pool     ratelimit.UsageSample // every workload of the pool, summed over the window
	upstream ratelimit.Upstream
	hasUp    bool
}

// limiterConnection is where the pool's limiter state lives: spec.limiter.redis, else the
// queue's Redis; nil when there is neither.
func limiterConnection(cc *capacityv1alpha1.ClaudeCapacity) *capacityv1alpha1.RedisConnection {
	if cc.Spec.Limiter != nil && cc.Spec.Limiter.Redis != nil {
		return cc.Spec.Limiter.Redis
	}
	if cc.Spec.Queue != nil {
		return &cc.Spec.Queue.Redis
	}
	return nil
}

func poolKey(s *scope) ratelimit.PoolKey {
	return ratelimit.PoolKey{Organization: s.cc.Spec.Organization, Class: string(s.model.Class)}
}

// workloadName is the ClaudeCapacity's name in the limiter's keys.
func workloadName(cc *capacityv1alpha1.ClaudeCapacity) string {
	return client.ObjectKeyFromObject(cc).String()
}

// readLimiter refreshes, at most every limiterSyncInterval, what the limiters observed:
// this workload's usage, the pool's, and the last upstream rate-limit headers. Failure
// here does not stop scaling: the queue and the declared figures still decide.
func (r *ClaudeCapacityReconciler) readLimiter(ctx context.Context, s *scope) (ctrl.Result, error) {
	cc := s.cc
	conn := limiterConnection(cc)
	if conn == nil || s.model.Class == "" {
		setCondition(cc, capacityv1alpha1.ConditionRateLimited, metav1.ConditionFalse, ReasonNoLimiter,
			"no limiter Redis is configured: usage is not observed")
		return ctrl.Result{}, nil
	}
	w := r.memory.get(client.ObjectKeyFromObject(cc))
	s.limiter = w.limiter
	if w.limiter != nil && r.now().Sub(w.limiter.readAt) < limiterSyncInterval {
		return ctrl.Result{}, nil
	}
	view, err := r.readLimiterState(ctx, s, w, conn)
	if err != nil {
		setCondition(cc, capacityv1alpha1.ConditionRateLimited, metav1.ConditionUnknown, ReasonLimiterUnavailable,
			fmt.Sprintf("reading the limiter state: %v", err))
		if w.lastLimiterError != err.Error() {
			r.Recorder.Eventf(cc, nil, corev1.EventTypeWarning, ReasonLimiterUnavailable, "ReadLimiter", "%v", err)
			w.lastLimiterError = err.Error()
		}
		return ctrl.Result{}, nil
	}
	w.lastLimiterError = ""
	w.limiter, s.limiter = view, view

	perMinute := func(n int64) int64 { return n * int64(time.Minute) / int64(max(view.usage.Window, time.Second)) }
	observed := &capacityv1alpha1.ObservedStatus{
		RateStatus: capacityv1alpha1.RateStatus{
			RequestsPerMinute:     perMinute(view.usage.Requests),
			InputTokensPerMinute:  perMinute(view.usage.InputTokens),
			OutputTokensPerMinute: perMinute(view.usage.OutputTokens),
		},
		RateLimitedRequests: view.usage.RateLimited,
		ThrottledRequests:   view.usage.Throttled,
		UpstreamRemaining:   view.upstreamRemaining(r.now()),
	}
	cc.Status.Observed = observed
	if view.usage.RateLimited > 0 {
		setCondition(cc, capacityv1alpha1.ConditionRateLimited, metav1.ConditionTrue, ReasonUpstream429s,
			fmt.Sprintf("the API answered %d requests with 429 in the last %s", view.usage.RateLimited, view.usage.Window))
	} else {
		setCondition(cc, capacityv1alpha1.ConditionRateLimited, metav1.ConditionFalse, ReasonNoRateLimits,
			fmt.Sprintf("no 429s from the API in the last %s", view.usage.Window))
	}
	return ctrl.Result{}, nil
}

func (r *ClaudeCapacityReconciler) readLimiterState(ctx context.Context, s *scope, w *workloadMemory,
	conn *capacityv1alpha1.RedisConnection) (*limiterView, error) {
	rdb, err := r.limiterClient(ctx, s.cc, w, conn)
	if err != nil {
		return nil, err
	}
	pool := poolKey(s)
	ctx, cancel := context.WithTimeout(ctx, signals.DefaultTimeout)
	defer cancel()
	view := &limiterView{readAt: r.now()}
	if view.usage, err = ratelimit.ReadUsage(ctx, rdb, pool, workloadName(s.cc), usageWindow); err != nil {
		return nil, err
	}
	if view.upstream, view.hasUp, err = ratelimit.ReadUpstream(ctx, rdb, pool); err != nil {
		return nil, err
	}
	if view.hasUp {
		all, err := ratelimit.ReadPoolUsage(ctx, rdb, pool, usageWindow)
		if err != nil {
			return nil, err
		}
		for _, u := range all {
			view.pool.Requests += u.Requests
			view.pool.InputTokens += u.InputTokens
			view.pool.OutputTokens += u.OutputTokens
		}
	}
	return view, nil
}

// limiterClient leases a shared client for the limiter's Redis from the signals pool.
func (r *ClaudeCapacityReconciler) limiterClient(ctx context.Context, cc *capacityv1alpha1.ClaudeCapacity, w *workloadMemory,
	conn *capacityv1alpha1.RedisConnection) (*redis.Client, error) {
	password, err := r.redisPassword(ctx, cc.Namespace, conn.PasswordSecretRef, w)
	if err != nil {
		return nil, err
	}
	want := signals.Connection{Address: conn.Address, Password: password, TLS: conn.TLS, Database: int(conn.Database)}
	if w.limiterLease == nil || w.limiterConn != want {
		w.closeLimiter()
		lease, err := r.Signals.Acquire(want)
		if err != nil {
			return nil, err
		}
		w.limiterLease, w.limiterConn = lease, want
	}
	return w.limiterLease.Client(), nil
}

// upstreamRemaining is what the last fresh upstream headers said is left; nil when unknown.
func (v *limiterView) upstreamRemaining(now time.Time) *capacityv1alpha1.RateStatus {
	if !v.hasUp || now.Sub(v.upstream.ObservedAt) > upstreamFresh {
		return nil
	}
	left := func(b ratelimit.UpstreamBucket) int64 {
		if !b.Known {
			return 0
		}
		return b.Remaining
	}
	return &capacityv1alpha1.RateStatus{
		RequestsPerMinute:     left(v.upstream.Requests),
		InputTokensPerMinute:  left(v.upstream.InputTokens),
		OutputTokensPerMinute: left(v.upstream.OutputTokens),
	}
}

// externalUsage estimates what callers outside this pool's limiters use per minute: the
// upstream headers show the organization's whole usage (limit - remaining); the pool's own
// usage over the last minute is taken out. Unknown or stale headers count as none.
func (v *limiterView) externalUsage(now time.Time) capacity.PerDimension {
	var ext capacity.PerDimension
	if v == nil || !v.hasUp || now.Sub(v.upstream.ObservedAt) > upstreamFresh {
		return ext
	}
	used := func(b ratelimit.UpstreamBucket, ours int64) int64 {
		if !b.Known || b.Limit <= 0 {
			return 0
		}
		return max(0, b.Limit-b.Remaining-ours)
	}
	ext[capacity.Requests] = used(v.upstream.Requests, v.pool.Requests)
	ext[capacity.InputTokens] = used(v.upstream.InputTokens, v.pool.InputTokens)
	ext[capacity.OutputTokens] = used(v.upstream.OutputTokens, v.pool.OutputTokens)
	return ext
}

// observedProfile replaces the declared tokens per request with the observed averages once
// enough requests back them.
func observedProfile(declared capacity.RequestProfile, v *limiterView) capacity.RequestProfile {
	if v == nil || v.usage.Requests < minObservedRequests {
		return declared
	}
	n := float64(v.usage.Requests)
	return capacity.RequestProfile{InputTokens: float64(v.usage.InputTokens) / n, OutputTokens: float64(v.usage.OutputTokens) / n}
}

// writesPool says whether this workload writes its pool's config to its limiter's Redis:
// among the members whose limiters use the same Redis (address and database) and that can
// reach it (SignalsAvailable not False), the one with the smallest name does, so a pool of
// a hundred workloads costs one write per interval, not a hundred. Every member computes
// the same split, so which one writes does not matter; but a member with no limiter,
// another Redis or failing signals must not keep the others' limiters unconfigured.
func writesPool(self *capacityv1alpha1.ClaudeCapacity, members []capacityv1alpha1.ClaudeCapacity) bool {
	conn := limiterConnection(self)
	if conn == nil {
		return false
	}
	name := workloadName(self)
	for i := range members {
		m := &members[i]
		other := limiterConnection(m)
		switch {
		case workloadName(m) == name, !m.DeletionTimestamp.IsZero(), other == nil,
			other.Address != conn.Address, other.Database != conn.Database,
			meta.IsStatusConditionFalse(m.Status.Conditions, capacityv1alpha1.ConditionSignalsAvailable):
			continue
		}
		if workloadName(m) < name {
			return false
		}
	}
	return true
}

// publishLimiter writes the pool's effective limits and every member's allocation for the
// limiters to enforce, at most every limiterSyncInterval.
// outputRule is the limiters' mirror of the API's output accounting.
func outputRule(cc *capacityv1alpha1.ClaudeCapacity) ratelimit.OutputRule {
	if cc.Spec.Limits.OutputAccounting == capacityv1alpha1.OutputAccountingReserved {
		return ratelimit.OutputReserved
	}
	return ratelimit.OutputProduced
}

func (r *ClaudeCapacityReconciler) publishLimiter(ctx context.Context, s *scope) (ctrl.Result, error) {
	if s.shares == nil {
		return ctrl.Result{}, nil
	}
	w := r.memory.get(client.ObjectKeyFromObject(s.cc))
	if w.limiterLease == nil || r.now().Sub(w.publishedAt) < limiterSyncInterval || !s.writesPool {
		return ctrl.Result{}, nil
	}
	b := s.shares.Budget
	cfg := ratelimit.PoolConfig{
		Limits: ratelimit.Limits{RequestsPerMinute: b[capacity.Requests], InputTokensPerMinute: b[capacity.InputTokens],
			OutputTokensPerMinute: b[capacity.OutputTokens]},
		Allocations: make(map[string]ratelimit.Limits, len(s.shares.Members)),
		OutputRule:  outputRule(s.cc),
		// Written before by this process: a missing bucket now means Redis lost it.
		StartEmpty: !w.publishedAt.IsZero(),
	}
	for _, m := range s.shares.Members {
		cfg.Allocations[m.Name] = ratelimit.Limits{
			RequestsPerMinute:     m.Share[capacity.Requests] + m.Headroom[capacity.Requests],
			InputTokensPerMinute:  m.Share[capacity.InputTokens] + m.Headroom[capacity.InputTokens],
			OutputTokensPerMinute: m.Share[capacity.OutputTokens] + m.Headroom[capacity.OutputTokens],
		}
	}
	ctx, cancel := context.WithTimeout(ctx, signals.DefaultTimeout)
	defer cancel()
	if err := ratelimit.WritePoolConfig(ctx, w.limiterLease.Client(), poolKey(s), cfg); err != nil {
		setCondition(s.cc, capacityv1alpha1.ConditionRateLimited, metav1.ConditionUnknown, ReasonLimiterUnavailable,
			fmt.Sprintf("writing the pool's limits for the limiters: %v", err))
		return ctrl.Result{}, nil
	}
	w.publishedAt = r.now()
	return ctrl.Result{}, nil
}

// upstreamLimits are the limits the API's headers last reported for the pool, per
// dimension (0 where unknown).
func (v *limiterView) upstreamLimits() capacity.TierLimits {
	if v == nil || !v.hasUp {
		return capacity.TierLimits{}
	}
	limit := func(b ratelimit.UpstreamBucket) int64 {
		if !b.Known || b.Limit <= 0 {
			return 0
		}
		return b.Limit
	}
	return capacity.TierLimits{
		RequestsPerMinute:     limit(v.upstream.Requests),
		InputTokensPerMinute:  limit(v.upstream.InputTokens),
		OutputTokensPerMinute: limit(v.upstream.OutputTokens),
	}
}

// checkLimitsDrift compares the declared limits with the ones the API reports: a
// difference raises LimitsDrift with both figures, and with spec.limits.fromUpstream the
// reported ones replace the declared ones for the decision.
func (r *ClaudeCapacityReconciler) checkLimitsDrift(s *scope) {
	cc := s.cc
	if limiterConnection(cc) == nil {
		meta.RemoveStatusCondition(&cc.Status.Conditions, capacityv1alpha1.ConditionLimitsDrift)
		return
	}
	// The last view read (at most limiterSyncInterval old): every reconcile, not only the
	// polls that read the limiter, must show and use the same limits.
	up := r.memory.get(client.ObjectKeyFromObject(cc)).limiter.upstreamLimits()
	if up == (capacity.TierLimits{}) {
		setCondition(cc, capacityv1alpha1.ConditionLimitsDrift, metav1.ConditionUnknown, ReasonNoUpstreamLimits,
			"no response of the API has reported its limits yet")
		return
	}
	declared := s.limits
	var diffs []string
	adopt := declared
	for _, d := range []struct {
		name           string
		declared, seen int64
		set            func(*capacity.TierLimits, int64)
	}{
		{"requests", declared.RequestsPerMinute, up.RequestsPerMinute, func(l *capacity.TierLimits, v int64) { l.RequestsPerMinute = v }},
		{"input tokens", declared.InputTokensPerMinute, up.InputTokensPerMinute, func(l *capacity.TierLimits, v int64) { l.InputTokensPerMinute = v }},
		{"output tokens", declared.OutputTokensPerMinute, up.OutputTokensPerMinute, func(l *capacity.TierLimits, v int64) { l.OutputTokensPerMinute = v }},
	} {
		if d.seen == 0 || d.seen == d.declared {
			continue
		}
		diffs = append(diffs, fmt.Sprintf("%s %d/min (declared %d)", d.name, d.seen, d.declared))
		d.set(&adopt, d.seen)
	}
	if len(diffs) == 0 {
		setCondition(cc, capacityv1alpha1.ConditionLimitsDrift, metav1.ConditionFalse, ReasonLimitsMatch,
			"the API's reported limits match the declared ones")
		return
	}
	msg := "the API reports " + strings.Join(diffs, ", ")
	if cc.Spec.Limits.FromUpstream {
		s.limits = adopt
		limits := rateStatus(adopt)
		cc.Status.Limits = &limits
		msg += "; adopted (limits.fromUpstream)"
	} else {
		msg += "; set limits.fromUpstream: true to adopt them, or correct spec.limits"
	}
	setCondition(cc, capacityv1alpha1.ConditionLimitsDrift, metav1.ConditionTrue, ReasonLimitsDiffer, msg)
}
