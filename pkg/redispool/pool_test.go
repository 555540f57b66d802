package redispool_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claudecap/claudecap/internal/testutil/redistest"
	"github.com/claudecap/claudecap/pkg/redispool"
)

func TestPoolSharesOneClientPerServerSettings(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	pool := newPool(t, redispool.Options{})
	base := redispool.Connection{Address: srv.Addr()}

	acquire := func(c redispool.Connection) *redispool.Lease {
		t.Helper()
		l, err := pool.Acquire(c)
		if err != nil {
			t.Fatalf("Acquire(%v): %v", c, err)
		}
		t.Cleanup(l.Release)
		return l
	}
	a, b := acquire(base), acquire(base)
	if a.Client() != b.Client() {
		t.Fatalf("same settings got two clients")
	}
	db1 := base
	db1.Database = 1
	withPassword := base
	withPassword.Password = "other"
	withTLS := base
	withTLS.TLS = true
	for _, c := range []redispool.Connection{db1, withPassword, withTLS} {
		if acquire(c).Client() == a.Client() {
			t.Errorf("%v shares the client of %v", c, base)
		}
	}
	if got := pool.Clients(); got != 4 {
		t.Fatalf("pool holds %d clients, want 4", got)
	}

	// The database really is part of the identity: readers of db 0 and db 1 see their own lists.
	if err := srv.Client().RPush(ctx, "jobs", "x", "y").Err(); err != nil {
		t.Fatalf("RPUSH: %v", err)
	}
	n0, err0 := acquire(base).Client().LLen(ctx, "jobs").Result()
	n1, err1 := acquire(db1).Client().LLen(ctx, "jobs").Result()
	if err0 != nil || err1 != nil || n0 != 2 || n1 != 0 {
		t.Fatalf("db 0 LLEN %d (%v), db 1 LLEN %d (%v); want 2 and 0", n0, err0, n1, err1)
	}
	if got := pool.Clients(); got != 4 {
		t.Fatalf("more leases added clients: %d, want still 4", got)
	}
}

func TestPoolClosesClientsIdleAfterTheirLastLease(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	pool := newPool(t, redispool.Options{IdleTimeout: 50 * time.Millisecond})
	conn := redispool.Connection{Address: srv.Addr()}

	first, err := pool.Acquire(conn)
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	client := first.Client()
	first.Release()
	first.Release() // Idempotent: must not take a second lease's count away.

	// Leased again within the idle timeout: the same, still open client.
	second, err := pool.Acquire(conn)
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	if second.Client() != client {
		t.Fatalf("re-acquired within the idle timeout but got a new client")
	}
	time.Sleep(150 * time.Millisecond)
	if err := client.Ping(ctx).Err(); err != nil {
		t.Fatalf("leased client was closed: %v", err)
	}

	second.Release()
	deadline := time.Now().Add(5 * time.Second)
	for pool.Clients() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := pool.Clients(); got != 0 {
		t.Fatalf("pool still holds %d clients after the idle timeout", got)
	}
	if err := client.Ping(ctx).Err(); !errors.Is(err, redis.ErrClosed) {
		t.Fatalf("evicted client Ping = %v, want redis.ErrClosed", err)
	}
	third, err := pool.Acquire(conn)
	if err != nil {
		t.Fatalf("Acquire after eviction: %v", err)
	}
	defer third.Release()
	if third.Client() == client {
		t.Fatalf("got the evicted client back")
	}
}

func TestClosedPoolRefusesAndClosesLeasedClients(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	pool := redispool.New(redispool.Options{})
	conn := redispool.Connection{Address: srv.Addr()}
	lease, err := pool.Acquire(conn)
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	if err := lease.Client().Ping(ctx).Err(); err != nil {
		t.Fatalf("Ping before Close: %v", err)
	}
	if err := pool.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := pool.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := lease.Client().Ping(ctx).Err(); !errors.Is(err, redis.ErrClosed) {
		t.Fatalf("Ping on a closed pool's client = %v, want redis.ErrClosed", err)
	}
	lease.Release()
	if _, err := pool.Acquire(conn); !errors.Is(err, redispool.ErrPoolClosed) {
		t.Fatalf("Acquire on a closed pool = %v, want ErrPoolClosed", err)
	}
}

func TestAcquireRefusesBadSettings(t *testing.T) {
	pool := newPool(t, redispool.Options{})
	for _, c := range []redispool.Connection{{Address: "no-port"}, {Address: ":6379"}, {Address: "redis:6379", Database: -1}} {
		if _, err := pool.Acquire(c); err == nil {
			t.Errorf("Acquire(%v) accepted bad settings", c)
		}
	}
	if got := pool.Clients(); got != 0 {
		t.Errorf("refused settings left %d clients behind", got)
	}
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
