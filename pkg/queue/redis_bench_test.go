package queue_test

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claudecap/claudecap/internal/testutil/redistest"
	"github.com/claudecap/claudecap/pkg/queue"
	"github.com/claudecap/claudecap/pkg/redispool"
)

// benchReaders is the fleet size of the design's scale goal: one manager, 500
// ClaudeCapacities.
const benchReaders = 500

// benchParallelism multiplies GOMAXPROCS into the goroutines that poll at once,
// standing in for the controller's concurrent reconciles.
const benchParallelism = 4

// BenchmarkPoll measures polls per second and Redis round trips per poll
// against a loopback redis-server. Each case also times PING, the cheapest
// possible round trip, on a client with the same pool size in the same run,
// and reports the poll's cost as a multiple of it (x-ping): near 1 means a
// poll costs one round trip and little else.
//
//	go test ./pkg/queue -run '^$' -bench Poll -benchtime 3s
func BenchmarkPoll(b *testing.B) {
	ctx := context.Background()
	srv := redistest.Start(b)
	admin := srv.Client()
	for i := range benchReaders {
		if err := admin.RPush(ctx, "jobs:"+strconv.Itoa(i), "a", "b", "c").Err(); err != nil {
			b.Fatalf("RPUSH: %v", err)
		}
	}
	if err := admin.XGroupCreateMkStream(ctx, "events", "workers", "0").Err(); err != nil {
		b.Fatalf("XGROUP CREATE: %v", err)
	}
	xadd(b, admin, "events", 100)
	conn := redispool.Connection{Address: srv.Addr()}

	b.Run("list/one-reader", func(b *testing.B) {
		benchSerial(b, srv, conn, queue.RedisQueue{List: "jobs:0", ProcessingList: "jobs:0:processing"})
	})
	b.Run("stream/one-reader", func(b *testing.B) {
		benchSerial(b, srv, conn, queue.RedisQueue{Stream: "events", ConsumerGroup: "workers"})
	})
	b.Run("list/500-readers-one-pool", func(b *testing.B) {
		benchFleet(b, srv, conn)
	})
}

func benchSerial(b *testing.B, srv *redistest.Server, conn redispool.Connection, q queue.RedisQueue) {
	ctx := context.Background()
	pool := newPool(b, redispool.Options{})
	counter := countRoundTrips(b, pool, conn)
	r := newReader(b, pool, conn, q, queue.Env{})
	if _, err := r.Poll(ctx); err != nil {
		b.Fatalf("warm-up Poll: %v", err)
	}
	ping := pingCost(b, srv, 1)
	counter.reset()
	b.ResetTimer()
	for b.Loop() {
		if _, err := r.Poll(ctx); err != nil {
			b.Fatalf("Poll: %v", err)
		}
	}
	reportPolls(b, counter, ping)
}

func benchFleet(b *testing.B, srv *redistest.Server, conn redispool.Connection) {
	ctx := context.Background()
	pool := newPool(b, redispool.Options{})
	counter := countRoundTrips(b, pool, conn)
	readers := make([]*queue.RedisSource, benchReaders)
	for i := range readers {
		name := "jobs:" + strconv.Itoa(i)
		readers[i] = newReader(b, pool, conn, queue.RedisQueue{List: name, ProcessingList: name + ":processing"}, queue.Env{})
		if _, err := readers[i].Poll(ctx); err != nil {
			b.Fatalf("warm-up Poll: %v", err)
		}
	}
	if got := pool.Clients(); got != 1 {
		b.Fatalf("%d readers of one server built %d clients, want 1", benchReaders, got)
	}
	ping := pingCost(b, srv, benchParallelism)
	counter.reset()
	var next atomic.Int64
	b.SetParallelism(benchParallelism)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r := readers[next.Add(1)%benchReaders]
			if _, err := r.Poll(ctx); err != nil {
				b.Errorf("Poll: %v", err)
				return
			}
		}
	})
	reportPolls(b, counter, ping)
	b.ReportMetric(float64(pool.Clients()), "clients")
}

// countRoundTrips hooks the pool's client for conn (before it first dials, so
// sockets are counted too) and keeps a lease on it for the benchmark.
func countRoundTrips(b *testing.B, pool *redispool.Pool, conn redispool.Connection) *roundTripCounter {
	lease, err := pool.Acquire(conn)
	if err != nil {
		b.Fatalf("Acquire: %v", err)
	}
	b.Cleanup(lease.Release)
	counter := &roundTripCounter{}
	lease.Client().AddHook(counter)
	return counter
}

// pingCost is the time per PING with the given parallelism, on a separate
// client with the pool's default size: the baseline a poll is compared with.
func pingCost(b *testing.B, srv *redistest.Server, parallelism int) time.Duration {
	const pings = 4000
	ctx := context.Background()
	c := srv.NewClient(func(o *redis.Options) { o.PoolSize = redispool.DefaultPoolSize })
	if err := c.Ping(ctx).Err(); err != nil {
		b.Fatalf("PING: %v", err)
	}
	workers := parallelism * max(1, runtimeProcs())
	var wg sync.WaitGroup
	var left atomic.Int64
	left.Store(pings)
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for left.Add(-1) >= 0 {
				if err := c.Ping(ctx).Err(); err != nil {
					b.Errorf("PING: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	return time.Since(start) / pings
}

func reportPolls(b *testing.B, counter *roundTripCounter, ping time.Duration) {
	b.StopTimer()
	n := float64(b.N)
	elapsed := b.Elapsed()
	b.ReportMetric(n/elapsed.Seconds(), "polls/s")
	b.ReportMetric(float64(counter.roundTrips())/n, "roundtrips/poll")
	b.ReportMetric(float64(counter.writes.Load())/n, "writes/poll")
	if ping > 0 {
		b.ReportMetric(float64(elapsed)/n/float64(ping), "x-ping")
	}
}
