package ratelimit

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	mathrand "math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claudecap/claudecap/pkg/dimension"
)

// UnavailablePolicy says what a limiter does when Redis cannot be reached.
type UnavailablePolicy int

const (
	// FailClosed refuses every call with ErrUnavailable while Redis is down: the
	// org limit is never at risk, at the price of availability. The default.
	FailClosed UnavailablePolicy = iota
	// LocalShare enforces, in memory, this pod's share of the limits: its
	// workload's allocation (or the pool limit) divided by the last known number
	// of active pods. Shares add up to the limit only if that count is current,
	// so this trades a small risk of 429s upstream for availability.
	LocalShare
)

// Defaults for Options.
const (
	// DefaultLease is long enough for a slow streamed response; a reservation
	// not settled within it stays charged in full.
	DefaultLease = 10 * time.Minute
	// MaxLease is the longest lease: the bucket's ring of output holds covers
	// leases up to 15 slots of 60 s (see bucketPrelude).
	MaxLease = 15 * time.Minute
	// DefaultProbeInterval is how long a LocalShare limiter keeps deciding
	// locally after a Redis failure before it tries Redis again.
	DefaultProbeInterval = time.Second
	// DefaultRefreshInterval is how often a limiter re-reads the pool config and
	// active pods (for LocalShare) and reports its pod as active.
	DefaultRefreshInterval = 10 * time.Second
	// activityWindow is the window over which pods count as active.
	activityWindow = time.Minute
	// refreshTimeout bounds a background refresh.
	refreshTimeout = 2 * time.Second
)

// Options configure a Limiter.
type Options struct {
	// Pool is the pool every call of this limiter draws from. Required.
	Pool PoolKey
	// Workload names the workload (e.g. "<namespace>/<name>") whose usage
	// Settle records for the controller, and whose reserve (PoolConfig.Reserves)
	// every admission leaves in the pool. Empty disables usage recording and
	// has no reserve.
	Workload string
	// Pod identifies this process among the workload's active pods. Defaults
	// to the host name (the pod name in Kubernetes).
	Pod string
	// Lease is how long a reservation may stay unsettled. Default DefaultLease.
	Lease time.Duration
	// OnUnavailable is the policy when Redis fails. Default FailClosed.
	OnUnavailable UnavailablePolicy
	// ProbeInterval applies to LocalShare. Default DefaultProbeInterval.
	ProbeInterval time.Duration
	// RefreshInterval: see DefaultRefreshInterval.
	RefreshInterval time.Duration
}

// Limiter admits calls against one pool. It is safe for concurrent use; create
// one per pool and process.
type Limiter struct {
	rdb     redis.UniversalClient
	opts    Options
	leaseUS int64
	// Keys are built once; the hot path allocates no key strings.
	reserveKeys []string
	settleKeys  []string

	local       localShare
	refreshing  atomic.Bool
	lastRefresh atomic.Int64 // Unix nanoseconds of the last refresh attempt.
}

// New validates opts, fills in defaults and returns a limiter using rdb (a
// *redis.Client, *redis.ClusterClient or anything else that runs scripts).
func New(rdb redis.UniversalClient, opts Options) (*Limiter, error) {
	if rdb == nil {
		return nil, errors.New("ratelimit: nil Redis client")
	}
	if err := opts.Pool.Validate(); err != nil {
		return nil, fmt.Errorf("ratelimit: %w", err)
	}
	if opts.Workload != "" {
		if err := ValidateWorkload(opts.Workload); err != nil {
			return nil, fmt.Errorf("ratelimit: %w", err)
		}
	}
	if opts.Pod == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "pod-" + rand.Text()[:8]
		}
		opts.Pod = host
	}
	if opts.Lease <= 0 {
		opts.Lease = DefaultLease
	}
	if opts.Lease > MaxLease {
		return nil, fmt.Errorf("ratelimit: lease %s is longer than the longest supported, %s", opts.Lease, MaxLease)
	}
	if opts.ProbeInterval <= 0 {
		opts.ProbeInterval = DefaultProbeInterval
	}
	if opts.RefreshInterval <= 0 {
		opts.RefreshInterval = DefaultRefreshInterval
	}
	if opts.OnUnavailable != FailClosed && opts.OnUnavailable != LocalShare {
		return nil, fmt.Errorf("ratelimit: unknown unavailable policy %d", opts.OnUnavailable)
	}
	p := opts.Pool
	return &Limiter{
		rdb:         rdb,
		opts:        opts,
		leaseUS:     opts.Lease.Microseconds(),
		reserveKeys: []string{p.bucketKey()},
		settleKeys:  []string{p.bucketKey(), p.usageKey(opts.Workload), p.podsKey(opts.Workload), p.workloadsKey()},
	}, nil
}

// Pool returns the pool this limiter draws from.
func (l *Limiter) Pool() PoolKey { return l.opts.Pool }

// Call is the cost of one Messages API call: one request, the caller's
// conservative estimate of input tokens, and max_tokens of output.
func Call(inputTokens, maxTokens int64) Amounts {
	return Amounts{dimension.Requests: 1, dimension.InputTokens: inputTokens, dimension.OutputTokens: maxTokens}
}

// TryReserve takes cost from the pool's three buckets if all have room, and
// never blocks beyond one Redis round trip. A refusal is a *RateLimitedError
// (errors.Is ErrRateLimited) telling how long to wait; a Redis failure is
// ErrUnavailable unless the LocalShare policy decides locally. A refusal is
// counted in the workload's usage (Throttled), so the controller knows this
// time was bounded by the pool, not by the workers.
func (l *Limiter) TryReserve(ctx context.Context, cost Amounts) (*Reservation, error) {
	res, err := l.reserve(ctx, cost)
	if errors.Is(err, ErrRateLimited) {
		l.recordThrottle(ctx, 0, true)
	}
	return res, err
}

func (l *Limiter) reserve(ctx context.Context, cost Amounts) (*Reservation, error) {
	if err := validateCost(cost); err != nil {
		return nil, fmt.Errorf("reserving on pool %s: %w", l.opts.Pool, err)
	}
	l.maybeRefresh()
	if l.opts.OnUnavailable == LocalShare && l.local.isDown(time.Now()) {
		return l.reserveLocally(cost, nil)
	}
	res, err := l.reserveInRedis(ctx, cost)
	if l.opts.OnUnavailable != LocalShare {
		return res, err
	}
	if !errors.Is(err, ErrUnavailable) {
		l.local.markUp()
		return res, err
	}
	l.local.markDown(time.Now(), l.opts.ProbeInterval)
	return l.reserveLocally(cost, err)
}

// recordTimeout bounds the usage record of a throttled or waiting call; the
// record is telemetry and never holds a call up for long.
const recordTimeout = 250 * time.Millisecond

// recordThrottle records, for a limiter with a workload, that a call waited
// for room and whether it was refused in the end.
func (l *Limiter) recordThrottle(ctx context.Context, waited time.Duration, refused bool) {
	if l.opts.Workload == "" || (l.opts.OnUnavailable == LocalShare && l.local.isDown(time.Now())) {
		return
	}
	s := UsageSample{WaitedMillis: waited.Milliseconds()}
	if refused {
		s.Throttled = 1
	}
	if s == (UsageSample{}) {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	_ = RecordUsage(rctx, l.rdb, l.opts.Pool, l.opts.Workload, l.opts.Pod, s) // telemetry: a lost record only biases an estimate
}

func (l *Limiter) reserveInRedis(ctx context.Context, cost Amounts) (*Reservation, error) {
	pool := l.opts.Pool
	v, err := reserveScript.Run(ctx, l.rdb, l.reserveKeys,
		cost[dimension.Requests], cost[dimension.InputTokens], cost[dimension.OutputTokens], l.leaseUS, l.opts.Workload).Result()
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("reserving on pool %s: %w", pool, ctxErr)
		}
		return nil, unavailable("reserving", pool, err)
	}
	r, err := parseReply(v)
	if err != nil {
		return nil, unavailable("reserving", pool, err)
	}
	switch r.status {
	case statusAdmitted:
		return &Reservation{
			Pool:           pool,
			Cost:           cost,
			GrantedAt:      r.at,
			LeaseExpiresAt: r.at.Add(l.opts.Lease),
			Seq:            r.seq,
			Remaining:      r.levels,
			limiter:        l,
			nonce:          rand.Text(),
		}, nil
	case statusRefused, statusTooLarge:
		return nil, refusal(pool, r)
	case statusNotConfigured:
		return nil, fmt.Errorf("reserving on pool %s: %w", pool, ErrPoolNotConfigured)
	default:
		return nil, unavailable("reserving", pool, fmt.Errorf("unknown script status %d", r.status))
	}
}

// Wait reserves cost, sleeping while the pool is out of room, until it is
// admitted or ctx ends. If ctx's deadline comes before the pool would have
// room, Wait returns at once with an error that is both
// context.DeadlineExceeded and the *RateLimitedError (so a proxy can answer 429
// with retry-after). Errors other than a refusal are returned immediately.
func (l *Limiter) Wait(ctx context.Context, cost Amounts) (res *Reservation, err error) {
	start := time.Now()
	refusedOnce := false
	defer func() {
		if refusedOnce {
			l.recordThrottle(ctx, time.Since(start), err != nil)
		}
	}()
	for {
		res, err := l.reserve(ctx, cost)
		var rl *RateLimitedError
		if err == nil || !errors.As(err, &rl) || rl.TooLarge {
			return res, err
		}
		refusedOnce = true
		sleep := withJitter(rl.RetryAfter())
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < rl.RetryAfter() {
			return nil, fmt.Errorf("%w before pool %s has room: %w", context.DeadlineExceeded, l.opts.Pool, err)
		}
		timer := time.NewTimer(sleep)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, fmt.Errorf("waiting for pool %s: %w", l.opts.Pool, errors.Join(ctx.Err(), err))
		case <-timer.C:
		}
	}
}

// withJitter spreads waiters that were refused together so they do not all
// retry in the same millisecond; at least 1 ms so a tiny wait cannot spin.
func withJitter(d time.Duration) time.Duration {
	extra := min(d/8, 20*time.Millisecond)
	if extra > 0 {
		d += time.Duration(mathrand.Int64N(int64(extra))) // #nosec G404 -- jitter, not a secret.
	}
	return max(d, time.Millisecond)
}

// maybeRefresh starts a background refresh when the cached pool view is older
// than RefreshInterval. Only LocalShare needs the view, and only limiters with
// a workload report their pod as active, so others skip it.
func (l *Limiter) maybeRefresh() {
	if l.opts.OnUnavailable != LocalShare && l.opts.Workload == "" {
		return
	}
	now := time.Now().UnixNano()
	if now-l.lastRefresh.Load() < int64(l.opts.RefreshInterval) || !l.refreshing.CompareAndSwap(false, true) {
		return
	}
	l.lastRefresh.Store(now)
	go func() {
		defer l.refreshing.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), refreshTimeout)
		defer cancel()
		_ = l.Refresh(ctx) // A failed refresh keeps the last known view.
	}()
}

// Refresh reports this pod as active (when a workload is set) and re-reads the
// pool config and active pod counts that LocalShare falls back on. Limiters call
// it in the background every RefreshInterval; call it directly to warm the view
// at startup.
func (l *Limiter) Refresh(ctx context.Context) error {
	l.lastRefresh.Store(time.Now().UnixNano())
	if l.opts.Workload != "" {
		if err := RecordUsage(ctx, l.rdb, l.opts.Pool, l.opts.Workload, l.opts.Pod, UsageSample{}); err != nil {
			return err
		}
	}
	if l.opts.OnUnavailable != LocalShare {
		return nil
	}
	cfg, err := ReadPoolConfig(ctx, l.rdb, l.opts.Pool)
	if err != nil {
		return err
	}
	usage, err := ReadPoolUsage(ctx, l.rdb, l.opts.Pool, activityWindow)
	if err != nil {
		return err
	}
	poolPods := 0
	for _, u := range usage {
		poolPods += u.ActivePods
	}
	l.local.setView(cfg, usage[l.opts.Workload].ActivePods, poolPods)
	return nil
}

// LocalShareLimits is what this pod would enforce on its own if Redis failed
// now, from the last refreshed view; ok is false when no view was read yet.
func (l *Limiter) LocalShareLimits() (Limits, bool) {
	return l.local.share(l.opts.Workload)
}

func (l *Limiter) reserveLocally(cost Amounts, cause error) (*Reservation, error) {
	pool := l.opts.Pool
	now := time.Now()
	taken, waits, tooLarge, ok := l.local.take(l.opts.Workload, cost, now)
	if !ok {
		if cause == nil {
			cause = errors.New("redis marked down")
		}
		return nil, unavailable("reserving (no pool view for local share)", pool, cause)
	}
	if !taken {
		e := &RateLimitedError{Pool: pool, At: now}
		for _, d := range dimension.All() {
			if tooLarge[d] {
				e.TooLarge, e.Binding = true, d
				return nil, e
			}
			e.Wait[d] = waits[d]
			if waits[d] > e.Wait[e.Binding] {
				e.Binding = d
			}
		}
		return nil, e
	}
	return &Reservation{
		Pool:           pool,
		Cost:           cost,
		GrantedAt:      now,
		LeaseExpiresAt: now.Add(l.opts.Lease),
		Local:          true,
		limiter:        l,
	}, nil
}

// localShare is the in-memory state behind the LocalShare policy.
type localShare struct {
	mu           sync.Mutex
	cfg          *PoolConfig
	workloadPods int
	poolPods     int
	downUntil    time.Time
	bucket       *localBucket
}

func (s *localShare) setView(cfg PoolConfig, workloadPods, poolPods int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfg, s.workloadPods, s.poolPods = &cfg, workloadPods, poolPods
}

func (s *localShare) share(workload string) (Limits, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cfg == nil {
		return Limits{}, false
	}
	return shareOf(*s.cfg, workload, s.workloadPods, s.poolPods), true
}

func (s *localShare) isDown(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return now.Before(s.downUntil)
}

// markDown starts (or continues) local decisions. A new local bucket starts
// EMPTY: this pod does not know what the pool spent in the last minute, and an
// empty start means all pods together admit at most the refill rate.
func (s *localShare) markDown(now time.Time, probe time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.downUntil = now.Add(probe)
}

// markUp drops the local bucket once Redis answers again; reservations taken
// locally are then settled into nothing, which only over-counts.
func (s *localShare) markUp() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bucket != nil || !s.downUntil.IsZero() {
		s.bucket = nil
		s.downUntil = time.Time{}
	}
}

func (s *localShare) take(workload string, cost Amounts, now time.Time) (
	taken bool, waits [dimension.Count]time.Duration, tooLarge [dimension.Count]bool, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cfg == nil {
		return false, waits, tooLarge, false
	}
	if s.bucket == nil {
		s.bucket = newEmptyBucket(shareOf(*s.cfg, workload, s.workloadPods, s.poolPods), now)
	}
	taken, waits, tooLarge = s.bucket.take(cost, now)
	return taken, waits, tooLarge, true
}

func (s *localShare) give(back Amounts, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bucket != nil {
		s.bucket.give(back, now)
	}
}

// shareOf is one pod's share for local enforcement: its workload's allocation
// split across the workload's pods when the controller wrote one, else the
// pool limit split across all the pool's pods. A pod always counts itself, so
// an unknown count means "alone".
func shareOf(cfg PoolConfig, workload string, workloadPods, poolPods int) Limits {
	total, pods := cfg.Limits, poolPods
	if alloc, ok := cfg.Allocations[workload]; ok && workload != "" {
		total, pods = alloc, workloadPods
	}
	n := int64(max(pods, 1))
	var share Amounts
	for d, limit := range total.Capacity() {
		share[d] = limit / n
	}
	return LimitsOf(share)
}

// durationFromSeconds converts a float number of seconds, saturating instead of
// overflowing for absurd values.
func durationFromSeconds(s float64) time.Duration {
	if s >= math.MaxInt64/float64(time.Second) {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(math.Ceil(s * float64(time.Second)))
}
