package ratelimit

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claudecap/claudecap/internal/testutil/redistest"
	"github.com/claudecap/claudecap/pkg/dimension"
)

const testPassword = "hunter2-do-not-log"

func TestFailClosedWhenRedisIsDown(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	pool := PoolKey{"acme", "sonnet"}
	if err := WritePoolConfig(ctx, srv.Client(), pool, PoolConfig{Limits: Limits{600, 60000, 60000}}); err != nil {
		t.Fatal(err)
	}
	rdb := srv.NewClient(func(o *redis.Options) {
		o.Password = testPassword // Not required by the server; must never leak.
		o.MaxRetries = -1
		o.DialTimeout = 200 * time.Millisecond
		o.ReadTimeout = 200 * time.Millisecond
	})
	_ = srv.Client().ConfigSet(ctx, "requirepass", testPassword).Err()
	l, err := New(rdb, Options{Pool: pool})
	if err != nil {
		t.Fatal(err)
	}
	r := mustReserve(t, l, Call(1, 1))

	srv.Stop()
	_, err = l.TryReserve(ctx, Call(1, 1))
	assertUnavailable(t, "stopped", err)
	_, err = l.Wait(ctx, Call(1, 1))
	assertUnavailable(t, "Wait on stopped", err)
	_, err = r.Settle(ctx, Actual{InputTokens: 1, OutputTokens: 1})
	assertUnavailable(t, "Settle on stopped", err)

	// A server that accepts connections but never answers is down too.
	srv.Restart()
	if err := WritePoolConfig(ctx, srv.Client(), pool, PoolConfig{Limits: Limits{600, 60000, 60000}}); err != nil {
		t.Fatal(err)
	}
	srv.Pause(0)
	_, err = l.TryReserve(ctx, Call(1, 1))
	assertUnavailable(t, "paused", err)
	srv.Resume()
	mustReserve(t, l, Call(1, 1))

	// Wrong password: the server's refusal is unavailability, still without the secret.
	if err := srv.Client().ConfigSet(ctx, "requirepass", "other-secret").Err(); err != nil {
		t.Fatal(err)
	}
	bad := srv.NewClient(func(o *redis.Options) { o.Password = testPassword })
	lb, _ := New(bad, Options{Pool: pool})
	_, err = lb.TryReserve(ctx, Call(1, 1))
	assertUnavailable(t, "wrong password", err)
}

func assertUnavailable(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("%s: %v, want ErrUnavailable", what, err)
	}
	if strings.Contains(err.Error(), testPassword) {
		t.Fatalf("%s: error leaks the password: %v", what, err)
	}
	if !strings.Contains(err.Error(), "{ccap:acme:sonnet}") {
		t.Fatalf("%s: error %q does not name the pool", what, err)
	}
}

func TestLocalShareEnforcesPodShareWhileRedisIsDown(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	pool := PoolKey{"acme", "sonnet"}
	// Workload ai/a is allocated 1200 rpm; with 4 active pods each pod may do
	// 300 rpm = 5 requests per second on its own.
	cfg := PoolConfig{
		Limits:      Limits{6000, 6_000_000, 6_000_000},
		Allocations: map[string]Limits{"ai/a": {1200, 1_200_000, 1_200_000}},
	}
	if err := WritePoolConfig(ctx, srv.Client(), pool, cfg); err != nil {
		t.Fatal(err)
	}
	for _, pod := range []string{"a-2", "a-3", "a-4"} {
		if err := RecordUsage(ctx, srv.Client(), pool, "ai/a", pod, UsageSample{}); err != nil {
			t.Fatal(err)
		}
	}
	rdb := srv.NewClient(func(o *redis.Options) { o.MaxRetries = -1; o.DialTimeout = 200 * time.Millisecond })
	l, err := New(rdb, Options{Pool: pool, Workload: "ai/a", Pod: "a-1", OnUnavailable: LocalShare, ProbeInterval: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := l.LocalShareLimits(); ok {
		t.Fatalf("a share before any refresh")
	}
	if err := l.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	share, ok := l.LocalShareLimits()
	if !ok || share != (Limits{300, 300_000, 300_000}) {
		t.Fatalf("share = %+v, want 1200/4 pods = 300 rpm", share)
	}
	if r := mustReserve(t, l, Call(1, 1)); r.Local {
		t.Fatalf("decided locally while Redis is up")
	}

	srv.Stop()
	// The local bucket starts empty: the first call waits 1/5 s.
	_, err = l.TryReserve(ctx, Call(1, 1))
	if rl := refusedWith(t, err); rl.Binding != dimension.Requests || rl.RetryAfter() > 200*time.Millisecond || rl.RetryAfter() < 150*time.Millisecond {
		t.Fatalf("first local decision = %+v, want a wait of ~200ms on Requests", rl)
	}
	// Over one second of waiting callers, the pod admits about its share of 5.
	deadline := time.Now().Add(time.Second)
	admitted := 0
	for time.Now().Before(deadline) {
		wctx, cancel := context.WithDeadline(ctx, deadline)
		r, err := l.Wait(wctx, Call(1, 1))
		cancel()
		if err != nil {
			break
		}
		if !r.Local {
			t.Fatalf("admitted through Redis while it is stopped")
		}
		if _, err := r.Settle(ctx, Actual{InputTokens: 1, OutputTokens: 1}); err != nil {
			t.Fatalf("local Settle: %v", err)
		}
		admitted++
	}
	if admitted < 3 || admitted > 6 {
		t.Fatalf("admitted %d calls in 1s locally, want about 5 (share 300 rpm)", admitted)
	}

	// Redis comes back (empty): after the probe interval the limiter uses it again.
	srv.Restart()
	if err := WritePoolConfig(ctx, srv.Client(), pool, cfg); err != nil {
		t.Fatal(err)
	}
	time.Sleep(350 * time.Millisecond)
	r, err := l.TryReserve(ctx, Call(1, 1))
	if err != nil || r.Local {
		t.Fatalf("after Redis returned: %+v, %v; want a Redis decision", r, err)
	}
}

func TestLocalShareWithoutViewFailsClosed(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	rdb := srv.NewClient(func(o *redis.Options) { o.MaxRetries = -1 })
	l, err := New(rdb, Options{Pool: PoolKey{"acme", "sonnet"}, OnUnavailable: LocalShare})
	if err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	if _, err := l.TryReserve(ctx, Call(1, 1)); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("no pool view yet: %v, want ErrUnavailable", err)
	}
}
