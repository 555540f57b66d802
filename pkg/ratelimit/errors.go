package ratelimit

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/claudecap/claudecap/pkg/dimension"
)

var (
	// ErrUnavailable means Redis could not be reached or did not answer, and the
	// limiter failed closed: the call must not be made. It wraps the cause.
	ErrUnavailable = errors.New("rate limiter unavailable")
	// ErrRateLimited means the pool has no room for the request right now; the
	// error is a *RateLimitedError that says how long to wait.
	ErrRateLimited = errors.New("pool rate limit reached")
	// ErrExceedsLimit means the request is larger than a bucket's capacity and
	// can never be admitted under the current limits.
	ErrExceedsLimit = errors.New("request exceeds pool limit")
	// ErrPoolNotConfigured means no limits were written for the pool yet (the
	// controller has not reconciled it, or Redis lost its data).
	ErrPoolNotConfigured = errors.New("pool limits not configured")
	// ErrLeaseExpired means a reservation was settled after its lease ran out;
	// it stayed charged in full and the settlement changed nothing.
	ErrLeaseExpired = errors.New("reservation lease expired")
	// ErrAlreadySettled means the reservation was settled or cancelled before.
	ErrAlreadySettled = errors.New("reservation already settled")
)

// RateLimitedError explains a refusal: per dimension, how long until the
// request would fit, and which dimension binds (waits longest).
type RateLimitedError struct {
	// Pool is the pool that refused.
	Pool PoolKey
	// Binding is the dimension with the longest wait.
	Binding dimension.Dimension
	// Wait is, per dimension, the time until that bucket holds the request's
	// cost (zero for dimensions with room).
	Wait [dimension.Count]time.Duration
	// TooLarge is set when the cost exceeds a bucket's capacity: no wait helps.
	TooLarge bool
	// At is the Redis time of the decision (local time in local-share mode).
	At time.Time
}

// RetryAfter is how long until all three buckets hold the request's cost,
// assuming nobody else takes from them meanwhile.
func (e *RateLimitedError) RetryAfter() time.Duration {
	return e.Wait[e.Binding]
}

// Error names the pool, the binding dimension and the wait.
func (e *RateLimitedError) Error() string {
	var b strings.Builder
	if e.TooLarge {
		fmt.Fprintf(&b, "%v: %s cost exceeds the %s capacity of pool %s", ErrExceedsLimit, e.Binding.Name(), e.Binding.Name(), e.Pool)
		return b.String()
	}
	fmt.Fprintf(&b, "%v: pool %s has no room in %s for %s", ErrRateLimited, e.Pool, e.Binding.Name(), e.RetryAfter().Round(time.Millisecond))
	return b.String()
}

// Is makes errors.Is(err, ErrRateLimited) true for every refusal and
// errors.Is(err, ErrExceedsLimit) true for refusals no wait can fix.
func (e *RateLimitedError) Is(target error) bool {
	return target == ErrRateLimited || (e.TooLarge && target == ErrExceedsLimit)
}

// unavailable wraps a Redis failure. go-redis errors carry the address and the
// server's message but never the configured password, so the cause is kept for
// errors.Is/As (e.g. net.Error).
func unavailable(op string, pool PoolKey, cause error) error {
	return fmt.Errorf("%w: %s on pool %s: %w", ErrUnavailable, op, pool, cause)
}
