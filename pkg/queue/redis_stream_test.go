package queue_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claudecap/claudecap/internal/testutil/redistest"
	"github.com/claudecap/claudecap/pkg/capacity"
	"github.com/claudecap/claudecap/pkg/queue"
	"github.com/claudecap/claudecap/pkg/redispool"
)

// readGroup delivers up to n new entries to consumer c and returns their IDs.
func readGroup(tb testing.TB, c *redis.Client, stream, group string, n int64) []string {
	tb.Helper()
	res, err := c.XReadGroup(context.Background(), &redis.XReadGroupArgs{
		Group: group, Consumer: "worker-1", Streams: []string{stream, ">"}, Count: n, Block: -1,
	}).Result()
	if err != nil {
		tb.Fatalf("XREADGROUP: %v", err)
	}
	var ids []string
	for _, s := range res {
		for _, m := range s.Messages {
			ids = append(ids, m.ID)
		}
	}
	return ids
}

func TestStreamLagPendingAndCompletions(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	admin := srv.Client()
	if err := admin.XGroupCreateMkStream(ctx, "jobs", "workers", "$").Err(); err != nil {
		t.Fatalf("XGROUP CREATE: %v", err)
	}
	xadd(t, admin, "jobs", 10)
	ids := readGroup(t, admin, "jobs", "workers", 4)
	if err := admin.XAck(ctx, "jobs", "workers", ids[:3]...).Err(); err != nil {
		t.Fatalf("XACK: %v", err)
	}

	clock := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	pool := newPool(t, redispool.Options{})
	r := newReader(t, pool, redispool.Connection{Address: srv.Addr()},
		queue.RedisQueue{Stream: "jobs", ConsumerGroup: "workers"},
		queue.Env{Now: func() time.Time { return clock }})

	first, err := r.Poll(ctx)
	if err != nil {
		t.Fatalf("Poll: %v", err)
	}
	// 10 added, 4 delivered (6 undelivered), 3 of them acknowledged (1 pending).
	if first.Backlog != 6 || first.InFlight != 1 || first.Completed != 3 || !first.CompletedKnown {
		t.Fatalf("sample %+v; want backlog 6, in flight 1, completed 3 (known)", first)
	}
	if first.BacklogSource != queue.BacklogGroupLag {
		t.Fatalf("backlog source %q, want GroupLag", first.BacklogSource)
	}

	// Between two polls: 5 jobs arrive, 4 are delivered and 4 acknowledged.
	xadd(t, admin, "jobs", 5)
	ids = readGroup(t, admin, "jobs", "workers", 4)
	if err := admin.XAck(ctx, "jobs", "workers", ids...).Err(); err != nil {
		t.Fatalf("XACK: %v", err)
	}
	clock = clock.Add(2 * time.Second)
	second, err := r.Poll(ctx)
	if err != nil {
		t.Fatalf("Poll: %v", err)
	}
	if second.Backlog != 7 || second.InFlight != 1 || second.Completed != 7 {
		t.Fatalf("second sample %+v; want backlog 7, in flight 1, completed 7", second)
	}

	// The counter is honest if the estimator, fed these samples, counts
	// exactly the 5 jobs that arrived.
	est, err := capacity.NewArrivalEstimator(0, 0)
	if err != nil {
		t.Fatalf("NewArrivalEstimator: %v", err)
	}
	for _, s := range []queue.Sample{first, second} {
		if err := est.Observe(s.QueueSample); err != nil {
			t.Fatalf("Observe: %v", err)
		}
	}
	if got := est.Estimate().LastArrivals; got != 5 {
		t.Fatalf("estimator saw %d arrivals between polls, want 5", got)
	}
}

func TestStreamBacklogFallsBackToXLENWhenLagUnknown(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	admin := srv.Client()
	xadd(t, admin, "jobs", 5)
	if err := admin.XGroupCreate(ctx, "jobs", "workers", "0").Err(); err != nil {
		t.Fatalf("XGROUP CREATE: %v", err)
	}
	readGroup(t, admin, "jobs", "workers", 1)
	// Deleting an entry past the group's position leaves Redis unable to
	// compute the lag: XINFO GROUPS reports nil.
	all, err := admin.XRange(ctx, "jobs", "-", "+").Result()
	if err != nil {
		t.Fatalf("XRANGE: %v", err)
	}
	if err := admin.XDel(ctx, "jobs", all[2].ID).Err(); err != nil {
		t.Fatalf("XDEL: %v", err)
	}
	raw, err := admin.Do(ctx, "XINFO", "GROUPS", "jobs").Result()
	if err != nil {
		t.Fatalf("XINFO GROUPS: %v", err)
	}
	if g := raw.([]any)[0].(map[any]any); g["lag"] != nil {
		t.Fatalf("precondition: lag is %v, want nil after XDEL", g["lag"])
	}

	pool := newPool(t, redispool.Options{})
	s, err := newReader(t, pool, redispool.Connection{Address: srv.Addr()},
		queue.RedisQueue{Stream: "jobs", ConsumerGroup: "workers"}, queue.Env{}).Poll(ctx)
	if err != nil {
		t.Fatalf("Poll: %v", err)
	}
	if s.Backlog != 4 || s.BacklogSource != queue.BacklogStreamLength || s.InFlight != 1 || s.CompletedKnown {
		t.Fatalf("sample %+v; want backlog 4 from XLEN, in flight 1, no completion counter", s)
	}
}

func TestMissingStreamOrGroupIsQueueNotFound(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	admin := srv.Client()
	if err := admin.XGroupCreateMkStream(ctx, "jobs", "workers", "$").Err(); err != nil {
		t.Fatalf("XGROUP CREATE: %v", err)
	}
	pool := newPool(t, redispool.Options{})
	conn := redispool.Connection{Address: srv.Addr()}
	tests := []struct {
		q        queue.RedisQueue
		mentions string
	}{
		{queue.RedisQueue{Stream: "no-such-stream", ConsumerGroup: "workers"}, "no-such-stream"},
		{queue.RedisQueue{Stream: "jobs", ConsumerGroup: "no-such-group"}, "no-such-group"},
	}
	for _, tt := range tests {
		_, err := newReader(t, pool, conn, tt.q, queue.Env{}).Poll(ctx)
		if !errors.Is(err, queue.ErrQueueNotFound) || errors.Is(err, queue.ErrUnavailable) {
			t.Errorf("%v: error %v, want ErrQueueNotFound and not ErrUnavailable", tt.q, err)
			continue
		}
		if !strings.Contains(err.Error(), tt.mentions) || !strings.Contains(err.Error(), srv.Addr()) {
			t.Errorf("%v: error %q should name %q and the address", tt.q, err, tt.mentions)
		}
	}
}
