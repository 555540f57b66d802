package queue_test

import (
	"context"
	"errors"
	"testing"

	"github.com/claudecap/claudecap/internal/testutil/redistest"
	"github.com/claudecap/claudecap/pkg/queue"
	"github.com/claudecap/claudecap/pkg/redispool"
)

func TestClosedPoolFailsPollsAndOpens(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	pool := redispool.New(redispool.Options{})
	conn := redispool.Connection{Address: srv.Addr()}
	r, err := queue.OpenRedis(queue.Env{Redis: pool}, conn, queue.RedisQueue{List: "jobs"})
	if err != nil {
		t.Fatalf("OpenRedis: %v", err)
	}
	if _, err := r.Poll(ctx); err != nil {
		t.Fatalf("Poll before Close: %v", err)
	}
	if err := pool.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := r.Poll(ctx); !errors.Is(err, queue.ErrUnavailable) {
		t.Fatalf("Poll on a closed pool = %v, want ErrUnavailable", err)
	}
	r.Close()
	r.Close() // Idempotent.
	if _, err := queue.OpenRedis(queue.Env{Redis: pool}, conn, queue.RedisQueue{List: "jobs"}); !errors.Is(err, queue.ErrUnavailable) {
		t.Fatalf("OpenRedis on a closed pool = %v, want ErrUnavailable", err)
	}
}

func TestOpenRedisRefusesBadSettings(t *testing.T) {
	pool := newPool(t, redispool.Options{})
	env := queue.Env{Redis: pool}
	if _, err := queue.OpenRedis(env, redispool.Connection{Address: "no-port"}, queue.RedisQueue{List: "jobs"}); !errors.Is(err, queue.ErrInvalid) {
		t.Errorf("address without a port: %v, want ErrInvalid", err)
	}
	if _, err := queue.OpenRedis(env, redispool.Connection{Address: "127.0.0.1:6379"}, queue.RedisQueue{}); !errors.Is(err, queue.ErrInvalid) {
		t.Errorf("queue with neither list nor stream: %v, want ErrInvalid", err)
	}
	if _, err := queue.OpenRedis(queue.Env{}, redispool.Connection{Address: "127.0.0.1:6379"}, queue.RedisQueue{List: "jobs"}); !errors.Is(err, queue.ErrInvalid) {
		t.Errorf("no pool: %v, want ErrInvalid", err)
	}
	if got := pool.Clients(); got != 0 {
		t.Errorf("refused settings left %d clients behind", got)
	}
}
