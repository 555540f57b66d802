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
	"github.com/claudecap/claudecap/internal/specconv"
	"github.com/claudecap/claudecap/pkg/capacity"
	"github.com/claudecap/claudecap/pkg/dimension"
	"github.com/claudecap/claudecap/pkg/ratelimit"
	"github.com/claudecap/claudecap/pkg/redispool"
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

// limiterView is the last limiter state read for one workload.
type limiterView struct {
	readAt   time.Time
	usage    ratelimit.WindowUsage
	pool     poolUsage // every workload of the pool, summed over the window
	upstream ratelimit.Upstream
	hasUp    bool
}

// limiterConnection is where the pool's limiter state lives and the namespace of the
// Secret its password may come from: the organization's Redis (Secret in the operator's
// namespace), or a private pool's spec.limiter.redis (Secret in the workload's namespace).
// nil when there is none (the queue's server is never assumed), or the organization is not
// bound.
func (r *ClaudeCapacityReconciler) limiterConnection(s *scope) (*capacityv1alpha1.RedisConnection, string) {
	cc := s.cc
	switch {
	case s.org != nil:
		red := s.org.Spec.Limiter.Redis
		return &capacityv1alpha1.RedisConnection{Address: red.Address, PasswordSecretRef: red.PasswordSecretRef,
			TLS: red.TLS, Database: red.Database}, r.OperatorNamespace
	case cc.Spec.OrganizationRef != nil:
		return nil, ""
	case cc.Spec.Limiter != nil:
		return &cc.Spec.Limiter.Redis, cc.Namespace
	}
	return nil, ""
}

func poolKey(s *scope) ratelimit.PoolKey {
	return poolKeyFor(s.cc, s.model.Class)
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
	conn, secretNamespace := r.limiterConnection(s)
	if conn == nil || s.model.Class == "" {
		setCondition(cc, capacityv1alpha1.ConditionRateLimited, metav1.ConditionFalse, capacityv1alpha1.ReasonNoLimiter,
			"no shared limiter is configured (spec.limiter.redis): usage is not observed and the pool's limits are not published")
		return ctrl.Result{}, nil
	}
	w := r.memory.get(client.ObjectKeyFromObject(cc))
	s.limiter = w.limiter
	if w.limiter != nil && r.now().Sub(w.limiter.readAt) < limiterSyncInterval {
		// Every poll reports the last view, not only the polls that read it: the status
		// written on a poll between reads would otherwise carry the observations the
		// object was read with, and a fleet whose decisions change every few polls would
		// never show its usage (status.observed stayed at zero in make dev-smoke).
		r.reportLimiterView(cc, w.limiter)
		return ctrl.Result{}, nil
	}
	view, err := r.readLimiterState(ctx, s, w, conn, secretNamespace)
	if err != nil {
		setCondition(cc, capacityv1alpha1.ConditionRateLimited, metav1.ConditionUnknown, capacityv1alpha1.ReasonLimiterUnavailable,
			fmt.Sprintf("reading the limiter state: %v", err))
		if w.lastLimiterError != err.Error() {
			eventf(ctx, r.Recorder, cc, nil, corev1.EventTypeWarning, capacityv1alpha1.ReasonLimiterUnavailable, "ReadLimiter", "%v", err)
			w.lastLimiterError = err.Error()
		}
		return ctrl.Result{}, nil
	}
	w.lastLimiterError = ""
	w.limiter, s.limiter = view, view
	r.reportLimiterView(cc, view)
	return ctrl.Result{}, nil
}

// reportLimiterView writes what the limiters observed to status.observed and RateLimited.
func (r *ClaudeCapacityReconciler) reportLimiterView(cc *capacityv1alpha1.ClaudeCapacity, view *limiterView) {
	perMinute := func(n int64) int64 { return n * int64(time.Minute) / int64(max(view.usage.Window, time.Second)) }
	var rates dimension.Amounts
	for d, n := range view.usage.Amounts() {
		rates[d] = perMinute(n)
	}
	observed := &capacityv1alpha1.ObservedStatus{
		RateStatus:          specconv.RateStatus(rates),
		RateLimitedRequests: view.usage.RateLimited,
		ThrottledRequests:   view.usage.Throttled,
		UpstreamRemaining:   view.upstreamRemaining(r.now()),
	}
	cc.Status.Observed = observed
	if view.usage.RateLimited > 0 {
		setCondition(cc, capacityv1alpha1.ConditionRateLimited, metav1.ConditionTrue, capacityv1alpha1.ReasonUpstream429s,
			fmt.Sprintf("the API answered %d requests with 429 in the last %s", view.usage.RateLimited, view.usage.Window))
	} else {
		setCondition(cc, capacityv1alpha1.ConditionRateLimited, metav1.ConditionFalse, capacityv1alpha1.ReasonNoRateLimits,
			fmt.Sprintf("no 429s from the API in the last %s", view.usage.Window))
	}
}

func (r *ClaudeCapacityReconciler) readLimiterState(ctx context.Context, s *scope, w *workloadMemory,
	conn *capacityv1alpha1.RedisConnection, secretNamespace string) (*limiterView, error) {
	rdb, err := r.limiterClient(ctx, secretNamespace, w, conn)
	if err != nil {
		return nil, err
	}
	pool := poolKey(s)
	ctx, cancel := context.WithTimeout(ctx, redispool.DefaultTimeout)
	defer cancel()
	view := &limiterView{readAt: r.now()}
	if view.usage, err = ratelimit.ReadUsage(ctx, rdb, pool, workloadName(s.cc), usageWindow); err != nil {
		return nil, err
	}
	if view.upstream, view.hasUp, err = ratelimit.ReadUpstream(ctx, rdb, pool); err != nil {
		return nil, err
	}
	if view.hasUp {
		if err := view.readPoolUsage(ctx, rdb, pool); err != nil {
			return nil, err
		}
	}
	return view, nil
}

// poolUsage is what every workload of a pool used over the window.
type poolUsage struct {
	amounts dimension.Amounts
	// RateLimited counts the upstream 429s.
	RateLimited int64
}

// Amounts returns the pool's usage per dimension.
func (p poolUsage) Amounts() dimension.Amounts { return p.amounts }

// readPoolUsage sums every workload's usage of the pool over the window into v.pool.
func (v *limiterView) readPoolUsage(ctx context.Context, rdb *redis.Client, pool ratelimit.PoolKey) error {
	all, err := ratelimit.ReadPoolUsage(ctx, rdb, pool, usageWindow)
	if err != nil {
		return err
	}
	for _, u := range all {
		v.pool.amounts = v.pool.amounts.Add(u.Amounts())
		v.pool.RateLimited += u.RateLimited
	}
	return nil
}

// limiterClient leases a shared client for the limiter's Redis from the Redis pool.
func (r *ClaudeCapacityReconciler) limiterClient(ctx context.Context, secretNamespace string, w *workloadMemory,
	conn *capacityv1alpha1.RedisConnection) (*redis.Client, error) {
	password, err := r.secretsIn(secretNamespace, w).redisPassword(ctx, conn.PasswordSecretRef)
	if err != nil {
		return nil, err
	}
	return w.limiterRedis.client(r.Redis,
		redispool.Connection{Address: conn.Address, Password: password, TLS: conn.TLS, Database: int(conn.Database)})
}

// upstreamRemaining is what the last fresh upstream headers said is left; nil when unknown.
func (v *limiterView) upstreamRemaining(now time.Time) *capacityv1alpha1.RateStatus {
	if !v.hasUp || now.Sub(v.upstream.ObservedAt) > upstreamFresh {
		return nil
	}
	var left dimension.Amounts
	for d, b := range v.upstream.Buckets {
		if b.Known {
			left[d] = b.Remaining
		}
	}
	rem := specconv.RateStatus(left)
	return &rem
}

// externalUsage estimates what callers outside this pool's limiters use per minute: the
// upstream headers show the organization's whole usage (limit - remaining); the pool's own
// usage over the last minute is taken out. Unknown or stale headers count as none.
func (v *limiterView) externalUsage(now time.Time) capacity.PerDimension {
	var ext capacity.PerDimension
	if v == nil || !v.hasUp || now.Sub(v.upstream.ObservedAt) > upstreamFresh {
		return ext
	}
	ours := v.pool.Amounts()
	for d, b := range v.upstream.Buckets {
		if b.Known && b.Limit > 0 {
			ext[d] = max(0, b.Limit-b.Remaining-ours[d])
		}
	}
	return ext
}

// observedProfile replaces the declared tokens per request with the observed averages once
// enough requests back them.
func observedProfile(declared capacity.RequestProfile, v *limiterView) capacity.RequestProfile {
	if v == nil || v.usage.Amounts()[dimension.Requests] < minObservedRequests {
		return declared
	}
	return capacity.ObservedProfile(v.usage.Amounts())
}

// publishLimiter writes a private pool's effective limits and allocation for its limiters
// to enforce, at most every limiterSyncInterval. An organization's pools are written by the
// ClaudeOrganization controller alone, so no member can block or shrink them.
func (r *ClaudeCapacityReconciler) publishLimiter(ctx context.Context, s *scope) (ctrl.Result, error) {
	if s.shares == nil || s.cc.Spec.OrganizationRef != nil {
		return ctrl.Result{}, nil
	}
	w := r.memory.get(client.ObjectKeyFromObject(s.cc))
	rdb := w.limiterRedis.current()
	if rdb == nil || r.now().Sub(w.publishedAt) < limiterSyncInterval {
		return ctrl.Result{}, nil
	}
	b := s.shares.Budget
	cfg := ratelimit.PoolConfig{
		Limits:      ratelimit.LimitsOf(b),
		Allocations: make(map[string]ratelimit.Limits, len(s.shares.Members)),
		OutputRule:  outputRuleOf(s.cc.Spec.Limits.OutputAccounting),
		// Written before by this process: a missing bucket now means Redis lost it.
		StartEmpty: !w.publishedAt.IsZero(),
	}
	for _, m := range s.shares.Members {
		cfg.Allocations[m.Name] = ratelimit.LimitsOf(m.Share.Add(m.Headroom))
	}
	ctx, cancel := context.WithTimeout(ctx, redispool.DefaultTimeout)
	defer cancel()
	if err := ratelimit.WritePoolConfig(ctx, rdb, poolKey(s), cfg); err != nil {
		setCondition(s.cc, capacityv1alpha1.ConditionRateLimited, metav1.ConditionUnknown, capacityv1alpha1.ReasonLimiterUnavailable,
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
	var limits dimension.Amounts
	for d, b := range v.upstream.Buckets {
		if b.Known && b.Limit > 0 {
			limits[d] = b.Limit
		}
	}
	return capacity.TierLimitsOf(limits)
}

// checkLimitsDrift compares the declared limits with the ones the API reports: a
// difference raises LimitsDrift with both figures, and with spec.limits.fromUpstream the
// reported ones replace the declared ones for the decision.
func (r *ClaudeCapacityReconciler) checkLimitsDrift(s *scope) {
	cc := s.cc
	if conn, _ := r.limiterConnection(s); conn == nil {
		meta.RemoveStatusCondition(&cc.Status.Conditions, capacityv1alpha1.ConditionLimitsDrift)
		return
	}
	// The last view read (at most limiterSyncInterval old): every reconcile, not only the
	// polls that read the limiter, must show and use the same limits.
	up := r.memory.get(client.ObjectKeyFromObject(cc)).limiter.upstreamLimits()
	if up == (capacity.TierLimits{}) {
		setCondition(cc, capacityv1alpha1.ConditionLimitsDrift, metav1.ConditionUnknown, capacityv1alpha1.ReasonNoUpstreamLimits,
			"no response of the API has reported its limits yet")
		return
	}
	adopt := s.fromUpstream()
	effective, diffs := adoptUpstream(s.limits, up, adopt)
	if len(diffs) == 0 {
		setCondition(cc, capacityv1alpha1.ConditionLimitsDrift, metav1.ConditionFalse, capacityv1alpha1.ReasonLimitsMatch,
			"the API's reported limits match the declared ones")
		return
	}
	msg := "the API reports " + strings.Join(diffs, ", ")
	switch {
	case adopt:
		s.limits = effective
		limits := rateStatus(effective)
		cc.Status.Limits = &limits
		msg += "; adopted (limits.fromUpstream)"
	case s.org != nil:
		msg += fmt.Sprintf("; the administrators of ClaudeOrganization %s can set limits.fromUpstream: true to adopt them, or correct its limits", s.org.Name)
	default:
		msg += "; set limits.fromUpstream: true to adopt them, or correct spec.limits"
	}
	setCondition(cc, capacityv1alpha1.ConditionLimitsDrift, metav1.ConditionTrue, capacityv1alpha1.ReasonLimitsDiffer, msg)
}
