package ratelimit

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/claudecap/claudecap/internal/testutil/redistest"
	"github.com/claudecap/claudecap/pkg/dimension"
)

// newTestPool starts a redis-server, writes limits for a fresh pool and
// returns a limiter on it.
func newTestPool(t *testing.T, limits Limits, opts Options) (*redistest.Server, *Limiter) {
	t.Helper()
	srv := redistest.Start(t)
	if opts.Pool == (PoolKey{}) {
		opts.Pool = PoolKey{"acme", "sonnet"}
	}
	if err := WritePoolConfig(context.Background(), srv.Client(), opts.Pool, PoolConfig{Limits: limits}); err != nil {
		t.Fatalf("WritePoolConfig: %v", err)
	}
	l, err := New(srv.Client(), opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return srv, l
}

func mustReserve(t *testing.T, l *Limiter, cost Amounts) *Reservation {
	t.Helper()
	r, err := l.TryReserve(context.Background(), cost)
	if err != nil {
		t.Fatalf("TryReserve(%+v): %v", cost, err)
	}
	return r
}

func refusedWith(t *testing.T, err error) *RateLimitedError {
	t.Helper()
	var rl *RateLimitedError
	if !errors.As(err, &rl) {
		t.Fatalf("got %v, want a *RateLimitedError", err)
	}
	return rl
}

func TestReserveTakesAllThreeOrNone(t *testing.T) {
	ctx := context.Background()
	// Refill per second: 1 request, 100 input, 10 output.
	_, l := newTestPool(t, Limits{60, 6000, 600}, Options{})

	r := mustReserve(t, l, Amounts{1, 1000, 500})
	if r.Remaining != (Amounts{59, 5000, 100}) || r.Seq != 1 || r.Local {
		t.Fatalf("first reservation = %+v, want remaining {59 5000 100} seq 1", r)
	}
	// Output has 100 left: a 150-output call is refused and must take nothing.
	_, err := l.TryReserve(ctx, Amounts{1, 4000, 150})
	rl := refusedWith(t, err)
	if rl.Binding != dimension.OutputTokens || rl.TooLarge || rl.Wait[dimension.Requests] != 0 || rl.Wait[dimension.InputTokens] != 0 {
		t.Fatalf("refusal = %+v, want only OutputTokens short", rl)
	}
	// 50 missing tokens and the 2.5-token admission margin (a quarter second of refill)
	// at 10/s: about 5.25 s (a little less as time passed).
	if w := rl.RetryAfter(); w > 5250*time.Millisecond || w < 4*time.Second {
		t.Fatalf("RetryAfter = %s, want just under 5.25s", w)
	}
	// Nothing was taken by the refusal: the whole input level is still there.
	r2 := mustReserve(t, l, Amounts{1, 4900, 90})
	if r2.Remaining[dimension.InputTokens] != 100 || r2.Seq != 2 {
		t.Fatalf("after refusal: %+v, want the refusal to have taken no input", r2)
	}
}

func TestReserveTooLargeAndNotConfigured(t *testing.T) {
	ctx := context.Background()
	srv, l := newTestPool(t, Limits{60, 6000, 600}, Options{})
	_, err := l.TryReserve(ctx, Amounts{1, 6001, 1})
	rl := refusedWith(t, err)
	if !rl.TooLarge || rl.Binding != dimension.InputTokens || !errors.Is(err, ErrExceedsLimit) {
		t.Fatalf("oversized call: %v, want ErrExceedsLimit on InputTokens", err)
	}
	if _, err := l.Wait(ctx, Amounts{1, 6001, 1}); !errors.Is(err, ErrExceedsLimit) {
		t.Fatalf("Wait on an oversized call = %v, want ErrExceedsLimit at once", err)
	}
	if _, err := l.TryReserve(ctx, Amounts{-1, 0, 0}); err == nil {
		t.Fatalf("negative cost accepted")
	}

	other, err := New(srv.Client(), Options{Pool: PoolKey{"acme", "haiku"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.TryReserve(ctx, Call(1, 1)); !errors.Is(err, ErrPoolNotConfigured) {
		t.Fatalf("unconfigured pool: %v, want ErrPoolNotConfigured", err)
	}
}

func TestSettleRefundsUnusedAndChargesOverage(t *testing.T) {
	ctx := context.Background()
	_, l := newTestPool(t, Limits{60, 6000, 600}, Options{})

	r := mustReserve(t, l, Amounts{1, 1000, 600})
	if _, err := l.TryReserve(ctx, Amounts{1, 100, 400}); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("output bucket is empty, got %v", err)
	}
	s, err := r.Settle(ctx, Actual{InputTokens: 800, OutputTokens: 150})
	if err != nil {
		t.Fatalf("Settle: %v", err)
	}
	if s.Returned != (Amounts{0, 200, 450}) || s.Seq != 2 {
		t.Fatalf("settlement = %+v, want returned {0 200 450} seq 2", s)
	}
	// The charge of 150 of the 600 held left room: the refused call now fits.
	mustReserve(t, l, Amounts{1, 100, 400})

	if _, err := r.Settle(ctx, Actual{}); !errors.Is(err, ErrAlreadySettled) {
		t.Fatalf("second Settle = %v, want ErrAlreadySettled", err)
	}

	// Overage: reserve 45 output (the last 50 less the admission margin), use 300: the
	// bucket goes into debt.
	r3 := mustReserve(t, l, Amounts{1, 10, 45})
	s, err = r3.Settle(ctx, Actual{InputTokens: 10, OutputTokens: 300})
	if err != nil {
		t.Fatal(err)
	}
	if s.Returned[dimension.OutputTokens] != -255 || s.Remaining[dimension.OutputTokens] >= 0 {
		t.Fatalf("overage settlement = %+v, want output debt", s)
	}
	_, err = l.TryReserve(ctx, Amounts{1, 0, 1})
	if rl := refusedWith(t, err); rl.Binding != dimension.OutputTokens || rl.RetryAfter() < 5*time.Second {
		t.Fatalf("in debt: %+v, want a wait of over 5s on output", rl)
	}
}

func TestCancelGivesBackTheRequestToo(t *testing.T) {
	ctx := context.Background()
	_, l := newTestPool(t, Limits{1, 1000, 1000}, Options{})
	r := mustReserve(t, l, Call(10, 10))
	if _, err := l.TryReserve(ctx, Call(10, 10)); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("1 rpm pool admitted a second call: %v", err)
	}
	s, err := r.Cancel(ctx)
	if err != nil || s.Returned != (Amounts{1, 10, 10}) {
		t.Fatalf("Cancel = %+v, %v", s, err)
	}
	mustReserve(t, l, Call(10, 10))
}

func TestLeaseExpiryKeepsReservationCharged(t *testing.T) {
	ctx := context.Background()
	srv, l := newTestPool(t, Limits{600, 60000, 600}, Options{Lease: 100 * time.Millisecond})
	keys := srv.Client().DBSize(ctx).Val()
	r := mustReserve(t, l, Amounts{1, 100, 600})
	// Unsettled reservations leave no per-reservation state behind: a pod
	// that dies with many of them open leaves the pool as it is.
	for range 50 {
		mustReserve(t, l, Amounts{1, 1, 0})
	}
	if n := srv.Client().DBSize(ctx).Val(); n != keys {
		t.Fatalf("keys grew from %d to %d with open reservations", keys, n)
	}
	time.Sleep(150 * time.Millisecond) // The lease ran out before Settle.

	// A late settlement refunds nothing: the reservation stays charged.
	if _, err := r.Settle(ctx, Actual{InputTokens: 1, OutputTokens: 1}); !errors.Is(err, ErrLeaseExpired) {
		t.Fatalf("late Settle = %v, want ErrLeaseExpired", err)
	}
	_, err := l.TryReserve(ctx, Amounts{1, 1, 300})
	if rl := refusedWith(t, err); rl.Binding != dimension.OutputTokens {
		t.Fatalf("expired reservation was refunded: %+v", rl)
	}

	// Within the lease the same settlement applies; the lease is checked with
	// Redis time (the reply's At), not the pod's clock.
	r2 := mustReserve(t, l, Amounts{1, 1, 0})
	s, err := r2.Settle(ctx, Actual{})
	if err != nil || s.At.After(r2.LeaseExpiresAt) || s.Returned[dimension.InputTokens] != 1 {
		t.Fatalf("Settle within lease = %+v, %v", s, err)
	}
}

func TestDecisionsUseRedisClock(t *testing.T) {
	ctx := context.Background()
	srv, l := newTestPool(t, Limits{600, 60000, 60000}, Options{})
	for range 5 {
		before := srv.Client().Time(ctx).Val()
		r := mustReserve(t, l, Call(1, 1))
		after := srv.Client().Time(ctx).Val()
		if r.GrantedAt.Before(before) || r.GrantedAt.After(after) {
			t.Fatalf("GrantedAt %s outside Redis TIME [%s, %s]", r.GrantedAt, before, after)
		}
		if !r.LeaseExpiresAt.Equal(r.GrantedAt.Add(DefaultLease)) {
			t.Fatalf("lease %s not measured from Redis time %s", r.LeaseExpiresAt, r.GrantedAt)
		}
	}
	// The stored change time is the server's.
	st, err := ReadBucket(ctx, srv.Client(), l.Pool())
	if err != nil {
		t.Fatal(err)
	}
	now := srv.Client().Time(ctx).Val()
	if d := now.Sub(st.UpdatedAt); d < 0 || d > time.Second {
		t.Fatalf("bucket time %s is %s from Redis TIME", st.UpdatedAt, d)
	}
	// While Redis is blocked, its clock keeps running: after DEBUG SLEEP the
	// bucket has refilled by the slept time, which only TIME can know.
	drain := mustReserve(t, l, Amounts{0, 59000, 0})
	if err := srv.Client().Do(ctx, "DEBUG", "SLEEP", "0.5").Err(); err != nil {
		t.Fatal(err)
	}
	r := mustReserve(t, l, Amounts{0, 0, 0})
	if gained := r.Remaining[dimension.InputTokens] - drain.Remaining[dimension.InputTokens]; gained < 500 {
		t.Fatalf("input refilled by %d over a 0.5s server sleep, want >= 500", gained)
	}
}

func TestScriptReloadedAfterFlush(t *testing.T) {
	ctx := context.Background()
	srv, l := newTestPool(t, Limits{600, 60000, 60000}, Options{})
	mustReserve(t, l, Call(1, 1))
	if err := srv.Client().ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if ok := srv.Client().ScriptExists(ctx, reserveScript.Hash()).Val(); ok[0] {
		t.Fatalf("script still cached after SCRIPT FLUSH")
	}
	r := mustReserve(t, l, Call(1, 1))
	if r.Seq != 2 {
		t.Fatalf("after NOSCRIPT recovery seq = %d, want 2", r.Seq)
	}
	if ok := srv.Client().ScriptExists(ctx, reserveScript.Hash()).Val(); !ok[0] {
		t.Fatalf("script not cached again after the NOSCRIPT fallback")
	}
	if _, err := r.Settle(ctx, Actual{InputTokens: 1, OutputTokens: 1}); err != nil {
		t.Fatalf("Settle after flush: %v", err)
	}
}

func TestWaitSleepsUntilAdmitted(t *testing.T) {
	ctx := context.Background()
	// 1200 rpm = 20 requests per second: a drained bucket has room after 50ms.
	_, l := newTestPool(t, Limits{1200, 1_000_000, 1_000_000}, Options{})
	mustReserve(t, l, Amounts{1200, 0, 0})
	start := time.Now()
	r, err := l.Wait(ctx, Call(1, 1))
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	// One request and the admission margin (5 requests, a quarter second of refill).
	if waited := time.Since(start); waited < 250*time.Millisecond {
		t.Fatalf("Wait admitted after %s, before the bucket could refill (300ms)", waited)
	}
	if r.Remaining[dimension.Requests] != 5 {
		t.Fatalf("remaining requests = %d, want the margin of 5", r.Remaining[dimension.Requests])
	}

	// A deadline shorter than the needed wait fails at once with both errors.
	mustReserve(t, l, Amounts{0, 1_000_000, 0})
	dctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err = l.Wait(dctx, Call(5000, 1)) // Needs 300ms of input refill.
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrRateLimited) {
		t.Fatalf("Wait past deadline = %v, want DeadlineExceeded and ErrRateLimited", err)
	}
	var rl *RateLimitedError
	if !errors.As(err, &rl) || rl.Binding != dimension.InputTokens {
		t.Fatalf("Wait past deadline lost the refusal details: %v", err)
	}
	if time.Since(start) > 50*time.Millisecond {
		t.Fatalf("Wait slept %s although it could not succeed before the deadline", time.Since(start))
	}

	// A cancelled context ends a wait.
	cctx, cancel2 := context.WithCancel(ctx)
	go func() { time.Sleep(30 * time.Millisecond); cancel2() }()
	if _, err := l.Wait(cctx, Call(50000, 1)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait after cancel = %v, want context.Canceled", err)
	}
}

func TestLimitsChangeTakesEffect(t *testing.T) {
	ctx := context.Background()
	srv, l := newTestPool(t, Limits{600, 60000, 60000}, Options{})
	mustReserve(t, l, Call(1, 1))
	// The controller lowers the limits: the bucket is clamped to the new capacity.
	if err := WritePoolConfig(ctx, srv.Client(), l.Pool(), PoolConfig{Limits: Limits{600, 60000, 100}}); err != nil {
		t.Fatal(err)
	}
	// The first call, unsettled, still holds its 1 output token; the admission margin
	// keeps 0.42 more.
	if _, err := l.TryReserve(ctx, Amounts{0, 0, 99}); err == nil {
		t.Fatalf("admitted 99 output tokens of 99 available: no margin was kept")
	}
	r := mustReserve(t, l, Amounts{0, 0, 98})
	if r.Remaining[dimension.OutputTokens] != 1 {
		t.Fatalf("remaining output %d after lowering the limit to 100, want 1", r.Remaining[dimension.OutputTokens])
	}
}
