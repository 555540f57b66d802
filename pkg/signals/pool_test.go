package signals_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claudecap/claudecap/internal/testutil/redistest"
	"github.com/claudecap/claudecap/pkg/signals"
)

func TestPoolSharesOneClientPerServerSettings(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	pool := newPool(t, signals.PoolOptions{})
	base := signals.Connection{Address: srv.Addr()}

	acquire := func(c signals.Connection) *signals.Lease {
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
	for _, c := range []signals.Connection{db1, withPassword, withTLS} {
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
	s0, err0 := newReader(t, pool, base, signals.Queue{List: "jobs"}, signals.ReaderOptions{}).Poll(ctx)
	s1, err1 := newReader(t, pool, db1, signals.Queue{List: "jobs"}, signals.ReaderOptions{}).Poll(ctx)
	if err0 != nil || err1 != nil || s0.Backlog != 2 || s1.Backlog != 0 {
		t.Fatalf("db 0 backlog %d (%v), db 1 backlog %d (%v); want 2 and 0", s0.Backlog, err0, s1.Backlog, err1)
	}
	if got := pool.Clients(); got != 4 {
		t.Fatalf("readers added clients: %d, want still 4", got)
	}
}

func TestPoolClosesClientsIdleAfterTheirLastLease(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	pool := newPool(t, signals.PoolOptions{IdleTimeout: 50 * time.Millisecond})
	conn := signals.Connection{Address: srv.Addr()}

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

func TestClosedPoolRefusesAndFailsPolls(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	pool := signals.NewPool(signals.PoolOptions{})
	conn := signals.Connection{Address: srv.Addr()}
	r, err := pool.NewReader(conn, signals.Queue{List: "jobs"}, signals.ReaderOptions{})
	if err != nil {
		t.Fatalf("NewReader: %v", err)
	}
	if err := pool.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := pool.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := r.Poll(ctx); !errors.Is(err, signals.ErrUnavailable) {
		t.Fatalf("Poll on a closed pool = %v, want ErrUnavailable", err)
	}
	r.Close()
	if _, err := pool.Acquire(conn); !errors.Is(err, signals.ErrPoolClosed) {
		t.Fatalf("Acquire on a closed pool = %v, want ErrPoolClosed", err)
	}
}

func TestNewReaderRefusesBadSettings(t *testing.T) {
	pool := newPool(t, signals.PoolOptions{})
	if _, err := pool.NewReader(signals.Connection{Address: "no-port"}, signals.Queue{List: "jobs"}, signals.ReaderOptions{}); err == nil {
		t.Errorf("accepted an address without a port")
	}
	if _, err := pool.NewReader(signals.Connection{Address: "127.0.0.1:6379"}, signals.Queue{}, signals.ReaderOptions{}); err == nil {
		t.Errorf("accepted a queue with neither list nor stream")
	}
	if got := pool.Clients(); got != 0 {
		t.Errorf("refused settings left %d clients behind", got)
	}
}
