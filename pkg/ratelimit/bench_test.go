package ratelimit

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/claudecap/claudecap/internal/testutil/redistest"
)

// BenchmarkDecisions compares the three-dimension reserve script with
// go-redis/redis_rate (GCRA, one dimension, AllowN) on the same loopback
// redis-server in the same run, with 1, 8 and 64 concurrent callers.
//
// mode=admit: limits so high every decision admits (the write path).
// mode=contended: 600 per minute (burst 600, 10/s) for both limiters, so most
// decisions refuse and over-grant can be measured: admissions beyond
// burst + rate x elapsed Redis time, in percent (must be 0).
//
// Metrics: decisions/s (ours), baseline-decisions/s (redis_rate), ratio
// (ours / baseline), over-grant-% and baseline-over-grant-%.
//
//	go test -run '^$' -bench BenchmarkDecisions -benchtime 20000x ./pkg/ratelimit/
func BenchmarkDecisions(b *testing.B) {
	for _, mode := range []string{"admit", "contended"} {
		for _, callers := range []int{1, 8, 64} {
			b.Run(fmt.Sprintf("mode=%s/callers=%d", mode, callers), func(b *testing.B) {
				benchDecisions(b, mode == "contended", callers)
			})
		}
	}
}

func benchDecisions(b *testing.B, contended bool, callers int) {
	ctx := context.Background()
	srv := redistest.Start(b)
	rdb := srv.NewClient(func(o *redis.Options) { o.PoolSize = max(callers, 10) })
	pool := PoolKey{"bench", "sonnet"}

	perMinute := int64(1) << 40
	if contended {
		perMinute = 600
	}
	if err := WritePoolConfig(ctx, rdb, pool, PoolConfig{Limits: Limits{perMinute, 1 << 40, 1 << 40}}); err != nil {
		b.Fatal(err)
	}
	// A short lease keeps the unsettled reservations of the benchmark from
	// piling up in the lease set; production settles each one.
	ours, err := New(rdb, Options{Pool: pool, Lease: 2 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	baseline := redis_rate.NewLimiter(rdb)
	limit := redis_rate.Limit{Rate: int(perMinute), Burst: int(perMinute), Period: time.Minute}

	oursDecide := func() (bool, error) {
		_, err := ours.TryReserve(ctx, Call(1, 1))
		if err == nil {
			return true, nil
		}
		var rl *RateLimitedError
		if asRateLimited(err, &rl) {
			return false, nil
		}
		return false, err
	}
	baseDecide := func() (bool, error) {
		res, err := baseline.AllowN(ctx, "bench", limit, 1)
		if err != nil {
			return false, err
		}
		return res.Allowed > 0, nil
	}

	// Warm both scripts into the server's cache.
	if _, err := oursDecide(); err != nil {
		b.Fatal(err)
	}
	if _, err := baseDecide(); err != nil {
		b.Fatal(err)
	}
	oursRun, baseRun := &decisionRun{}, &decisionRun{}
	oursRun.start(ctx, b, rdb)
	baseRun.start(ctx, b, rdb)

	b.ResetTimer()
	// Alternate in rounds so that drift in machine load hits both equally;
	// each limiter makes b.N decisions in all.
	const rounds = 10
	for i := range rounds {
		n := b.N/rounds + boolToInt(i < b.N%rounds)
		oursRun.run(b, callers, n, oursDecide)
		baseRun.run(b, callers, n, baseDecide)
	}
	b.StopTimer()

	oursRun.finish(ctx, b, rdb)
	baseRun.finish(ctx, b, rdb)
	oursDPS, baseDPS := oursRun.rate(), baseRun.rate()
	b.ReportMetric(oursDPS, "decisions/s")
	b.ReportMetric(baseDPS, "baseline-decisions/s")
	b.ReportMetric(oursDPS/baseDPS, "ratio")
	// Both limiters allow the warm-up decision too, so count it in.
	b.ReportMetric(oursRun.overGrantPercent(perMinute, 1), "over-grant-%")
	b.ReportMetric(baseRun.overGrantPercent(perMinute, 1), "baseline-over-grant-%")
}

func asRateLimited(err error, target **RateLimitedError) bool {
	rl, ok := err.(*RateLimitedError) //nolint:errorlint // TryReserve returns it unwrapped; avoid errors.As cost in the hot loop.
	if ok {
		*target = rl
	}
	return ok
}

// decisionRun times decisions and counts admissions between two Redis TIME
// readings, which bound what a correct limiter may admit.
type decisionRun struct {
	elapsed   time.Duration
	decisions int64
	admitted  atomic.Int64
	from, to  time.Time
}

func (r *decisionRun) start(ctx context.Context, b *testing.B, rdb *redis.Client) {
	r.from = redisNow(ctx, b, rdb)
}

func (r *decisionRun) finish(ctx context.Context, b *testing.B, rdb *redis.Client) {
	r.to = redisNow(ctx, b, rdb)
}

func redisNow(ctx context.Context, b *testing.B, rdb *redis.Client) time.Time {
	now, err := rdb.Time(ctx).Result()
	if err != nil {
		b.Fatal(err)
	}
	return now
}

func (r *decisionRun) run(b *testing.B, callers, n int, decide func() (bool, error)) {
	var wg sync.WaitGroup
	var next atomic.Int64
	var failed atomic.Value
	start := time.Now()
	for range callers {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				ok, err := decide()
				if err != nil {
					failed.Store(err)
					return
				}
				if ok {
					r.admitted.Add(1)
				}
			}
		})
	}
	wg.Wait()
	r.elapsed += time.Since(start)
	r.decisions += int64(n)
	if err := failed.Load(); err != nil {
		b.Fatalf("decision failed: %v", err)
	}
}

func (r *decisionRun) rate() float64 {
	return float64(r.decisions) / r.elapsed.Seconds()
}

// overGrantPercent is admissions beyond burst + refill over the Redis time the
// run spanned, as a percentage of that allowance.
func (r *decisionRun) overGrantPercent(perMinute, extra int64) float64 {
	allowed := float64(perMinute) + float64(perMinute)*r.to.Sub(r.from).Seconds()/60
	over := float64(r.admitted.Load()+extra) - math.Floor(allowed)
	if over <= 0 {
		return 0
	}
	return 100 * over / allowed
}

func boolToInt(v bool) int {
	if v {
		return 1
	}
	return 0
}
