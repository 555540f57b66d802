package queue_test

import (
	"context"
	"net"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/claudecap/claudecap/pkg/queue"
	"github.com/claudecap/claudecap/pkg/redispool"
)

// roundTripCounter is a go-redis hook that counts what a client sends: commands
// sent on their own, pipelines (each one write and one read of all replies),
// and, below go-redis, Write calls on the sockets it dials.
type roundTripCounter struct {
	commands  atomic.Int64
	pipelines atomic.Int64
	writes    atomic.Int64
}

// roundTrips is how many request/response exchanges the client started.
func (c *roundTripCounter) roundTrips() int64 {
	return c.commands.Load() + c.pipelines.Load()
}

func (c *roundTripCounter) reset() {
	c.commands.Store(0)
	c.pipelines.Store(0)
	c.writes.Store(0)
}

func (c *roundTripCounter) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := next(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &countingConn{Conn: conn, writes: &c.writes}, nil
	}
}

func (c *roundTripCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.commands.Add(1)
		return next(ctx, cmd)
	}
}

func (c *roundTripCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.pipelines.Add(1)
		return next(ctx, cmds)
	}
}

type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// newPool returns a pool closed when the test ends.
func newPool(tb testing.TB, opts redispool.Options) *redispool.Pool {
	tb.Helper()
	p := redispool.New(opts)
	tb.Cleanup(func() {
		if err := p.Close(); err != nil {
			tb.Errorf("closing pool: %v", err)
		}
	})
	return p
}

// newReader returns a Redis source closed when the test ends.
func newReader(tb testing.TB, p *redispool.Pool, conn redispool.Connection, q queue.RedisQueue, env queue.Env) *queue.RedisSource {
	tb.Helper()
	env.Redis = p
	r, err := queue.OpenRedis(env, conn, q)
	if err != nil {
		tb.Fatalf("OpenRedis(%v, %v): %v", conn, q, err)
	}
	tb.Cleanup(r.Close)
	return r
}

// xadd appends n jobs to a stream.
func xadd(tb testing.TB, c *redis.Client, stream string, n int) {
	tb.Helper()
	for i := range n {
		if err := c.XAdd(context.Background(), &redis.XAddArgs{Stream: stream, Values: []any{"job", i}}).Err(); err != nil {
			tb.Fatalf("XADD %s: %v", stream, err)
		}
	}
}

// runtimeProcs is GOMAXPROCS, which RunParallel multiplies its parallelism by.
func runtimeProcs() int {
	return runtime.GOMAXPROCS(0)
}
