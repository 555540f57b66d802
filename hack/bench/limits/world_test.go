package limits

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claudecap/claudecap/internal/testutil/redistest"
	"github.com/claudecap/claudecap/pkg/capacity"
	"github.com/claudecap/claudecap/pkg/mockapi"
	"github.com/claudecap/claudecap/pkg/proxy"
	"github.com/claudecap/claudecap/pkg/ratelimit"
)

const (
	// organization owns the pools in each row's Redis.
	organization = "bench-limits"
	// proxies is K, the number of proxies (and of client workers).
	proxies = 4
	// controllerEvery is how often the stand-in controller rewrites the pool config, the
	// controller's limiterSyncInterval.
	controllerEvery = 10 * time.Second
	// stopTimeout bounds a proxy's shutdown, which drains its settlements.
	stopTimeout = 10 * time.Second
)

// world is one row's running parts: Redis, the mock, the proxies or the fixed window, and
// the client workers. Test cleanups stop them, newest first.
type world struct {
	row        row
	rds        *redistest.Server
	ctrlRedis  *redis.Client
	mock       *mockapi.Server
	readsCount bool
	gen        *generator
	// fixedErrors counts fixed-window checks that failed on Redis and let the call through.
	fixedErrors atomic.Int64
	// configured is set once the pool was written, as the controller remembers it: a later
	// write creates a missing bucket empty (ratelimit.PoolConfig.StartEmpty). Only the
	// stand-in controller, one goroutine at a time, touches it.
	configured bool
}

// startWorld starts a row's parts: everything is ready to send when it returns.
func startWorld(t *testing.T, r row, counts *clientCounts) *world {
	t.Helper()
	w := &world{row: r, rds: redistest.Start(t)}
	m, err := capacity.DefaultCatalog().Model(model)
	if err != nil {
		t.Fatalf("looking up %s: %v", model, err)
	}
	w.readsCount = m.CacheReadsCountTowardITPM
	w.mock, err = mockapi.New(mockapi.Config{
		Limits:       map[string]mockapi.Limits{class: r.sc.limits},
		OTPMMode:     r.mode,
		Latency:      r.sc.latency,
		OutputTokens: r.sc.output,
		Seed:         seedOf(r.name()),
	})
	if err != nil {
		t.Fatalf("building the mock: %v", err)
	}
	mockSrv := httptest.NewServer(w.mock)
	t.Cleanup(mockSrv.Close)

	targets := make([]string, proxies)
	for i := range targets {
		targets[i] = mockSrv.URL
	}
	w.gen = &generator{counts: counts}
	switch r.limiter {
	case limiterClaudecap:
		w.ctrlRedis = w.rds.NewClient(func(o *redis.Options) { o.MaxRetries = -1 })
		if err := w.writePool(context.Background()); err != nil {
			t.Fatalf("writing the pool config: %v", err)
		}
		for i := range targets {
			targets[i] = startProxy(t, w.rds, mockSrv.URL, i+1)
		}
	case limiterFixedWindow:
		w.gen.gate = w.fixedWindowGate(t)
	case limiterNone:
	}
	for _, url := range targets {
		wk, err := newWorker(url, r.sc.variants(), counts)
		if err != nil {
			t.Fatalf("building a client: %v", err)
		}
		t.Cleanup(wk.http.CloseIdleConnections)
		w.gen.workers = append(w.gen.workers, wk)
	}
	return w
}

// startProxy serves one proxy on its own loopback listener, with its own Redis client and
// workload name, and returns its URL.
func startProxy(t *testing.T, rds *redistest.Server, upstream string, n int) string {
	t.Helper()
	lim, err := proxy.NewRedisLimiter(rds.NewClient(nil), ratelimit.Options{
		Pool:     ratelimit.PoolKey{Organization: organization},
		Workload: fmt.Sprintf("bench/worker-%d", n),
		Pod:      fmt.Sprintf("worker-%d", n),
	})
	if err != nil {
		t.Fatalf("building proxy %d's limiter: %v", n, err)
	}
	px, err := proxy.New(proxy.Config{Upstream: upstream, Logger: slog.New(slog.DiscardHandler)}, lim)
	if err != nil {
		t.Fatalf("building proxy %d: %v", n, err)
	}
	srv := httptest.NewServer(px.Handler())
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
		defer cancel()
		if err := px.Close(ctx); err != nil {
			t.Logf("proxy %d: draining settlements: %v", n, err)
		}
	})
	return srv.URL
}

// outputRule is the pool rule that mirrors the mock's OTPM mode.
func outputRule(m mockapi.OTPMMode) ratelimit.OutputRule {
	if m == mockapi.OTPMReserveMaxTokens {
		return ratelimit.OutputReserved
	}
	return ratelimit.OutputProduced
}

// writePool writes the pool's limits as the controller does.
func (w *world) writePool(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	err := ratelimit.WritePoolConfig(ctx, w.ctrlRedis, ratelimit.PoolKey{Organization: organization, Class: class},
		ratelimit.PoolConfig{Limits: w.row.enforced(), OutputRule: outputRule(w.row.mode), StartEmpty: w.configured})
	w.configured = w.configured || err == nil
	return err
}

// runController rewrites the pool config every controllerEvery from origin until ctx ends,
// as the controller does; a write while Redis is down fails and waits for the next tick.
func (w *world) runController(ctx context.Context, origin time.Time) {
	if w.ctrlRedis == nil {
		return
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for next := origin.Add(controllerEvery); sleepUntil(ctx, timer, next); next = next.Add(controllerEvery) {
		_ = w.writePool(ctx) // retried at the next tick, like the controller's
	}
}

// fixedWindowGate returns the check the fixed-window baseline makes before each call.
func (w *world) fixedWindowGate(t *testing.T) func(context.Context, int) bool {
	t.Helper()
	fw := &fixedWindow{rdb: w.rds.NewClient(nil), limits: w.row.enforced(), prefix: "fixed-window"}
	vs := w.row.sc.variants()
	costs := make([]ratelimit.Amounts, len(vs))
	for i, v := range vs {
		c, err := fixedWindowCost(v.params)
		if err != nil {
			t.Fatal(err)
		}
		costs[i] = c
	}
	return func(ctx context.Context, v int) bool {
		ok, err := fw.allow(ctx, costs[v], time.Now())
		if err != nil {
			w.fixedErrors.Add(1)
		}
		return ok
	}
}

// trace samples the mock and the pool every second from origin until ctx ends.
func (w *world) trace(ctx context.Context, origin time.Time) []tracePoint {
	var out []tracePoint
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for next := origin; sleepUntil(ctx, timer, next); next = next.Add(time.Second) {
		p := newTracePoint(readUsage(w.mock, w.readsCount), origin)
		if w.ctrlRedis != nil {
			rctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			b, err := ratelimit.ReadBucket(rctx, w.ctrlRedis, ratelimit.PoolKey{Organization: organization, Class: class})
			cancel()
			if err == nil {
				var age time.Duration
				if !b.UpdatedAt.IsZero() {
					age = time.Since(b.UpdatedAt)
				}
				p.Pool = newPoolPoint(b.Level, b.Held, age)
			}
		}
		out = append(out, p)
	}
	return out
}

// seedOf makes a row's random draws repeatable.
func seedOf(name string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(name)) // a hash never fails to write
	return h.Sum64()
}
