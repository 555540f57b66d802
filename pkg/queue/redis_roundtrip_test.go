package queue_test

import (
	"context"
	"testing"

	"github.com/claudecap/claudecap/internal/testutil/redistest"
	"github.com/claudecap/claudecap/pkg/queue"
	"github.com/claudecap/claudecap/pkg/redispool"
)

func TestEachPollIsOneRoundTrip(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	admin := srv.Client()
	if err := admin.XGroupCreateMkStream(ctx, "events", "workers", "0").Err(); err != nil {
		t.Fatalf("XGROUP CREATE: %v", err)
	}
	xadd(t, admin, "events", 3)
	if err := admin.RPush(ctx, "jobs", "a").Err(); err != nil {
		t.Fatalf("RPUSH: %v", err)
	}

	queues := map[string]queue.RedisQueue{
		"list":                 {List: "jobs"},
		"list with processing": {List: "jobs", ProcessingList: "jobs:processing"},
		"stream":               {Stream: "events", ConsumerGroup: "workers"},
	}
	for name, q := range queues {
		t.Run(name, func(t *testing.T) {
			// A pool of one connection, so every write goes through the counted socket.
			pool := newPool(t, redispool.Options{PoolSize: 1})
			r := newReader(t, pool, redispool.Connection{Address: srv.Addr()}, q, queue.Env{})
			lease, err := pool.Acquire(redispool.Connection{Address: srv.Addr()})
			if err != nil {
				t.Fatalf("Acquire: %v", err)
			}
			defer lease.Release()
			counter := &roundTripCounter{}
			lease.Client().AddHook(counter)

			// The first poll also dials and says HELLO; count the polls after it.
			if _, err := r.Poll(ctx); err != nil {
				t.Fatalf("warm-up Poll: %v", err)
			}
			counter.reset()
			const polls = 20
			for range polls {
				if _, err := r.Poll(ctx); err != nil {
					t.Fatalf("Poll: %v", err)
				}
			}
			if got := counter.pipelines.Load(); got != polls {
				t.Errorf("%d pipelines for %d polls, want one each", got, polls)
			}
			if got := counter.commands.Load(); got != 0 {
				t.Errorf("%d commands sent outside the pipeline, want 0", got)
			}
			if got := counter.writes.Load(); got != polls {
				t.Errorf("%d socket writes for %d polls, want one each", got, polls)
			}
		})
	}
}
