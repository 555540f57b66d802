package proxy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/claudecap/claudecap/pkg/ratelimit"
)

// Limiter is what the proxy needs from the shared limiter. Pools are named by
// model class within the proxy's organization. RedisLimiter is the real one;
// unit tests of single steps use fakes.
type Limiter interface {
	// TryReserve takes cost from the class's pool now, or refuses with a
	// *ratelimit.RateLimitedError.
	TryReserve(ctx context.Context, class string, cost ratelimit.Amounts) (Reservation, error)
	// Wait reserves, sleeping while the pool has no room, until ctx ends (see
	// ratelimit.Limiter.Wait for the errors).
	Wait(ctx context.Context, class string, cost ratelimit.Amounts) (Reservation, error)
	// RecordUpstream publishes the rate-limit state an upstream response of
	// the class reported.
	RecordUpstream(ctx context.Context, class string, u ratelimit.Upstream) error
	// RecordUpstreamErrors counts 429s and 529s upstream returned for the
	// workload; settlements record everything else.
	RecordUpstreamErrors(ctx context.Context, class string, s ratelimit.UsageSample) error
	// Ready reports whether admission can work now.
	Ready(ctx context.Context) error
}

// Reservation is capacity taken for one call.
type Reservation interface {
	// Settle replaces the estimate with the call's actual usage.
	Settle(ctx context.Context, used ratelimit.Actual) error
	// Cancel gives everything back; only for calls that never reached the API.
	Cancel(ctx context.Context) error
}

// RedisLimiter is the Limiter of pkg/ratelimit: one ratelimit.Limiter per
// model class, created on first use, all in one organization.
type RedisLimiter struct {
	rdb  redis.UniversalClient
	base ratelimit.Options
	mu   sync.Mutex
	// pools is read on every request; it only grows, so a sync.Map keeps the
	// hot path free of the mutex.
	pools sync.Map // class -> *ratelimit.Limiter
}

// NewRedisLimiter returns a limiter for the organization in base.Pool. Each
// request names its own class; the class of base.Pool, when set, is the
// pinned class whose pool readiness checks. base.Workload,
// when set, is the workload whose usage settlements and upstream errors are
// recorded under.
func NewRedisLimiter(rdb redis.UniversalClient, base ratelimit.Options) (*RedisLimiter, error) {
	if rdb == nil {
		return nil, errors.New("proxy limiter: nil Redis client")
	}
	if err := (ratelimit.PoolKey{Organization: base.Pool.Organization, Class: "x"}).Validate(); err != nil {
		return nil, fmt.Errorf("proxy limiter: %w", err)
	}
	if base.Workload != "" {
		if err := ratelimit.ValidateWorkload(base.Workload); err != nil {
			return nil, fmt.Errorf("proxy limiter: %w", err)
		}
	}
	if base.Pod == "" {
		// Chosen here, not inside ratelimit.New, so that settlements and
		// RecordUpstreamErrors report the same pod.
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "claudecap-proxy"
		}
		base.Pod = host
	}
	return &RedisLimiter{rdb: rdb, base: base}, nil
}

// Pool returns (creating it on first use) the limiter of one class.
func (l *RedisLimiter) Pool(class string) (*ratelimit.Limiter, error) {
	if v, ok := l.pools.Load(class); ok {
		return v.(*ratelimit.Limiter), nil //nolint:forcetypeassert // the map only holds *ratelimit.Limiter.
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if v, ok := l.pools.Load(class); ok {
		return v.(*ratelimit.Limiter), nil //nolint:forcetypeassert // the map only holds *ratelimit.Limiter.
	}
	opts := l.base
	opts.Pool.Class = class
	lim, err := ratelimit.New(l.rdb, opts)
	if err != nil {
		return nil, err
	}
	l.pools.Store(class, lim)
	return lim, nil
}

func (l *RedisLimiter) poolKey(class string) ratelimit.PoolKey {
	return ratelimit.PoolKey{Organization: l.base.Pool.Organization, Class: class}
}

// TryReserve implements Limiter.
func (l *RedisLimiter) TryReserve(ctx context.Context, class string, cost ratelimit.Amounts) (Reservation, error) {
	lim, err := l.Pool(class)
	if err != nil {
		return nil, err
	}
	return wrapReservation(lim.TryReserve(ctx, cost))
}

// Wait implements Limiter.
func (l *RedisLimiter) Wait(ctx context.Context, class string, cost ratelimit.Amounts) (Reservation, error) {
	lim, err := l.Pool(class)
	if err != nil {
		return nil, err
	}
	return wrapReservation(lim.Wait(ctx, cost))
}

// wrapReservation keeps a nil *ratelimit.Reservation from becoming a non-nil
// interface.
func wrapReservation(r *ratelimit.Reservation, err error) (Reservation, error) {
	if err != nil {
		return nil, err
	}
	return redisReservation{r}, nil
}

// RecordUpstream implements Limiter.
func (l *RedisLimiter) RecordUpstream(ctx context.Context, class string, u ratelimit.Upstream) error {
	return ratelimit.WriteUpstream(ctx, l.rdb, l.poolKey(class), u)
}

// RecordUpstreamErrors implements Limiter; without a workload there is
// nothing to record under.
func (l *RedisLimiter) RecordUpstreamErrors(ctx context.Context, class string, s ratelimit.UsageSample) error {
	if l.base.Workload == "" {
		return nil
	}
	return ratelimit.RecordUsage(ctx, l.rdb, l.poolKey(class), l.base.Workload, l.base.Pod, s)
}

// Ready implements Limiter: a call could be admitted now. Redis must
// answer (unless the LocalShare policy decides locally while it does not)
// and the pool calls draw from must be configured, or every call would be
// refused with ErrPoolNotConfigured until the controller writes its limits.
// The pool is that of base.Pool.Class when set (the class the proxy pins);
// with no class pinned, calls go to the class of their model, so any pool of
// the organization, among the built-in classes and those already used,
// will do.
func (l *RedisLimiter) Ready(ctx context.Context) error {
	if err := l.rdb.Ping(ctx).Err(); err != nil {
		if l.base.OnUnavailable == ratelimit.LocalShare {
			return nil
		}
		return fmt.Errorf("%w: %w", ratelimit.ErrUnavailable, err)
	}
	classes := []string{l.base.Pool.Class}
	if l.base.Pool.Class == "" {
		classes = builtinClasses()
		l.pools.Range(func(class, _ any) bool {
			classes = append(classes, class.(string)) //nolint:forcetypeassert // the map's keys are classes.
			return true
		})
	}
	return anyPoolConfigured(ctx, l.rdb, l.base.Pool.Organization, classes)
}

// redisReservation adapts *ratelimit.Reservation to Reservation.
type redisReservation struct{ r *ratelimit.Reservation }

func (r redisReservation) Settle(ctx context.Context, used ratelimit.Actual) error {
	_, err := r.r.Settle(ctx, used)
	return err
}

func (r redisReservation) Cancel(ctx context.Context) error {
	_, err := r.r.Cancel(ctx)
	return err
}
