package queue_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/claudecap/claudecap/internal/testutil/redistest"
	"github.com/claudecap/claudecap/pkg/queue"
	"github.com/claudecap/claudecap/pkg/redispool"
)

func TestPollOnPausedServerReturnsWithinItsTimeout(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	pool := newPool(t, redispool.Options{})
	const timeout = 200 * time.Millisecond
	r := newReader(t, pool, redispool.Connection{Address: srv.Addr()}, queue.RedisQueue{List: "jobs"},
		queue.Env{Timeout: timeout})
	if _, err := r.Poll(ctx); err != nil {
		t.Fatalf("Poll before pause: %v", err)
	}

	srv.Pause(0)
	start := time.Now()
	_, err := r.Poll(ctx)
	took := time.Since(start)
	srv.Resume()
	if !errors.Is(err, queue.ErrUnavailable) || !strings.Contains(err.Error(), srv.Addr()) {
		t.Fatalf("Poll on a paused server = %v, want ErrUnavailable naming %s", err, srv.Addr())
	}
	// The pool's own read timeout is 1 s (the default); the reader's 200 ms must win.
	if took > 900*time.Millisecond {
		t.Fatalf("Poll on a paused server took %v with a %v timeout", took, timeout)
	}
	if _, err := r.Poll(ctx); err != nil {
		t.Fatalf("Poll after resume: %v", err)
	}
}

func TestStoppedServerErrorNamesAddressButNotPassword(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	const password = "pw-Zq81-stopped"
	if err := srv.Client().ConfigSet(ctx, "requirepass", password).Err(); err != nil {
		t.Fatalf("CONFIG SET requirepass: %v", err)
	}
	pool := newPool(t, redispool.Options{})
	r := newReader(t, pool, redispool.Connection{Address: srv.Addr(), Password: password},
		queue.RedisQueue{Stream: "jobs", ConsumerGroup: "workers"}, queue.Env{})

	srv.Stop()
	_, err := r.Poll(ctx)
	if !errors.Is(err, queue.ErrUnavailable) {
		t.Fatalf("Poll on a stopped server = %v, want ErrUnavailable", err)
	}
	msg := err.Error()
	t.Logf("stopped server: %s", msg)
	if !strings.Contains(msg, srv.Addr()) || !strings.Contains(msg, `stream "jobs"`) {
		t.Errorf("error %q should name the address and the queue", msg)
	}
	if strings.Contains(msg, password) {
		t.Errorf("error contains the password: %q", msg)
	}
}

func TestPollRecoversByItselfAfterRestart(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	pool := newPool(t, redispool.Options{})
	r := newReader(t, pool, redispool.Connection{Address: srv.Addr()}, queue.RedisQueue{List: "jobs"}, queue.Env{})
	if err := srv.Client().RPush(ctx, "jobs", "a").Err(); err != nil {
		t.Fatalf("RPUSH: %v", err)
	}
	if s, err := r.Poll(ctx); err != nil || s.Backlog != 1 {
		t.Fatalf("Poll: %+v, %v", s, err)
	}

	srv.Stop()
	if _, err := r.Poll(ctx); !errors.Is(err, queue.ErrUnavailable) {
		t.Fatalf("Poll while stopped = %v, want ErrUnavailable", err)
	}
	srv.Restart() // Comes back empty, on the same port.
	if err := srv.Client().RPush(ctx, "jobs", "b", "c").Err(); err != nil {
		t.Fatalf("RPUSH after restart: %v", err)
	}
	// No reconnect call: the pooled connection died with the old server and
	// the very next poll must dial a new one.
	if s, err := r.Poll(ctx); err != nil || s.Backlog != 2 {
		t.Fatalf("first Poll after restart: %+v, %v; want backlog 2", s, err)
	}
}

func TestPollRecoversAfterALongOutage(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	pool := newPool(t, redispool.Options{PoolSize: 2})
	r := newReader(t, pool, redispool.Connection{Address: srv.Addr()}, queue.RedisQueue{List: "jobs"}, queue.Env{})
	srv.Stop()
	// More failed dials than the pool has connections: go-redis then stops
	// dialing on demand and probes in the background once a second.
	for range 6 {
		if _, err := r.Poll(ctx); err == nil {
			t.Fatalf("Poll succeeded on a stopped server")
		}
	}
	srv.Restart()
	// The controller polls every 2 s by default; recovery must come within a
	// few polls without anyone resetting the client.
	var err error
	for range 20 {
		if _, err = r.Poll(ctx); err == nil {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("still failing 5 s after the restart: %v", err)
}

func TestPasswordProtectedServer(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	const password = "pw-Kx42-right"
	const wrong = "pw-Kx42-wrong"
	if err := srv.Client().RPush(ctx, "jobs", "a", "b").Err(); err != nil {
		t.Fatalf("RPUSH: %v", err)
	}
	// The harness has no flag for requirepass; CONFIG SET turns it on for new
	// connections exactly as the config file would.
	if err := srv.Client().ConfigSet(ctx, "requirepass", password).Err(); err != nil {
		t.Fatalf("CONFIG SET requirepass: %v", err)
	}
	pool := newPool(t, redispool.Options{})
	q := queue.RedisQueue{List: "jobs"}

	s, err := newReader(t, pool, redispool.Connection{Address: srv.Addr(), Password: password}, q, queue.Env{}).Poll(ctx)
	if err != nil || s.Backlog != 2 {
		t.Fatalf("Poll with the right password: %+v, %v", s, err)
	}
	for _, c := range []redispool.Connection{
		{Address: srv.Addr(), Password: wrong},
		{Address: srv.Addr()},
	} {
		_, err := newReader(t, pool, c, q, queue.Env{}).Poll(ctx)
		if !errors.Is(err, queue.ErrAuth) {
			t.Errorf("%v: error %v, want ErrAuth", c, err)
			continue
		}
		t.Logf("%v: %s", c, err)
		if msg := err.Error(); strings.Contains(msg, wrong) || strings.Contains(msg, password) || !strings.Contains(msg, srv.Addr()) {
			t.Errorf("%v: error %q must name the address and hold no password", c, msg)
		}
	}
}
