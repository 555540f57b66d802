package redistest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claudecap/claudecap/internal/testutil/redistest"
)

func TestStartServesAndIsolates(t *testing.T) {
	ctx := context.Background()
	a := redistest.Start(t)
	b := redistest.Start(t)
	if a.Addr() == b.Addr() {
		t.Fatalf("two servers share address %s", a.Addr())
	}
	if err := a.Client().Set(ctx, "k", "from-a", 0).Err(); err != nil {
		t.Fatalf("SET on a: %v", err)
	}
	if got, err := a.Client().Get(ctx, "k").Result(); err != nil || got != "from-a" {
		t.Fatalf("GET on a = %q, %v; want from-a", got, err)
	}
	if err := b.Client().Get(ctx, "k").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET on b = %v; want redis.Nil (servers must not share data)", err)
	}
	// Persistence must be off so Restart really starts empty and tests never
	// write dump files.
	cfg, err := a.Client().ConfigGet(ctx, "save").Result()
	if err != nil || cfg["save"] != "" {
		t.Fatalf("CONFIG GET save = %v, %v; want empty", cfg, err)
	}
}

func TestStopRefusesAndRestartComesBackEmptyOnSamePort(t *testing.T) {
	ctx := context.Background()
	s := redistest.Start(t)
	c := s.NewClient(func(o *redis.Options) { o.MaxRetries = -1 })
	addr := s.Addr()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}

	s.Stop()
	s.Stop() // Idempotent.
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatalf("PING succeeded on a stopped server")
	}

	s.Restart()
	if s.Addr() != addr {
		t.Fatalf("Restart moved the server from %s to %s", addr, s.Addr())
	}
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("existing client did not reconnect after Restart: %v", err)
	}
	if err := c.Get(ctx, "k").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET after Restart = %v; want redis.Nil (fresh data)", err)
	}
}

func TestPauseMakesServerUnresponsive(t *testing.T) {
	ctx := context.Background()
	s := redistest.Start(t)
	c := s.NewClient(func(o *redis.Options) {
		o.ReadTimeout = 100 * time.Millisecond
		o.MaxRetries = -1
	})
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING: %v", err)
	}

	s.Pause(0)
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatalf("PING answered while the server was paused")
	}
	s.Resume()
	// The timed-out connection is discarded; a fresh one must work.
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after Resume: %v", err)
	}

	s.Pause(150 * time.Millisecond)
	start := time.Now()
	slow := s.NewClient(func(o *redis.Options) { o.ReadTimeout = 2 * time.Second })
	if err := slow.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING across a timed pause: %v", err)
	}
	if waited := time.Since(start); waited < 100*time.Millisecond {
		t.Fatalf("PING answered after %s; a 150ms pause should delay it", waited)
	}
}
