package queue_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/claudecap/claudecap/internal/testutil/redistest"
	"github.com/claudecap/claudecap/pkg/queue"
	"github.com/claudecap/claudecap/pkg/redispool"
)

func TestListBacklogAndInFlight(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	admin := srv.Client()
	if err := admin.RPush(ctx, "jobs", "a", "b", "c", "d", "e").Err(); err != nil {
		t.Fatalf("RPUSH: %v", err)
	}
	// Two workers take a job each the reliable way.
	for range 2 {
		if err := admin.LMove(ctx, "jobs", "jobs:processing", "LEFT", "RIGHT").Err(); err != nil {
			t.Fatalf("LMOVE: %v", err)
		}
	}
	stamp := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	pool := newPool(t, redispool.Options{})
	r := newReader(t, pool, redispool.Connection{Address: srv.Addr()},
		queue.RedisQueue{List: "jobs", ProcessingList: "jobs:processing"},
		queue.Env{Now: func() time.Time { return stamp }})

	s, err := r.Poll(ctx)
	if err != nil {
		t.Fatalf("Poll: %v", err)
	}
	if s.Backlog != 3 || s.InFlight != 2 {
		t.Fatalf("backlog %d, in flight %d; want 3 and 2", s.Backlog, s.InFlight)
	}
	if s.CompletedKnown || s.BacklogSource != queue.BacklogListLength || !s.Time.Equal(stamp) {
		t.Fatalf("sample %+v: want no completion counter, source ListLength, time %v", s, stamp)
	}

	// A worker finishes: LREM from the processing list.
	if err := admin.LRem(ctx, "jobs:processing", 1, "a").Err(); err != nil {
		t.Fatalf("LREM: %v", err)
	}
	if s, err = r.Poll(ctx); err != nil || s.Backlog != 3 || s.InFlight != 1 {
		t.Fatalf("after one finished: %+v, %v; want backlog 3, in flight 1", s, err)
	}
}

func TestListWithoutProcessingListAndMissingList(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	if err := srv.Client().RPush(ctx, "jobs", 1, 2, 3, 4).Err(); err != nil {
		t.Fatalf("RPUSH: %v", err)
	}
	pool := newPool(t, redispool.Options{})
	conn := redispool.Connection{Address: srv.Addr()}

	s, err := newReader(t, pool, conn, queue.RedisQueue{List: "jobs"}, queue.Env{}).Poll(ctx)
	if err != nil || s.Backlog != 4 || s.InFlight != 0 {
		t.Fatalf("list without processing list: %+v, %v; want backlog 4, in flight 0", s, err)
	}
	if s.Time.IsZero() {
		t.Fatalf("sample has no time")
	}
	// An empty list does not exist in Redis: that is an empty queue, not an error.
	s, err = newReader(t, pool, conn, queue.RedisQueue{List: "nothing-here", ProcessingList: "nor-here"}, queue.Env{}).Poll(ctx)
	if err != nil || s.Backlog != 0 || s.InFlight != 0 {
		t.Fatalf("missing list: %+v, %v; want an empty sample", s, err)
	}
}

func TestWrongKeyTypeIsReported(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	admin := srv.Client()
	xadd(t, admin, "a-stream", 1)
	if err := admin.RPush(ctx, "a-list", "job").Err(); err != nil {
		t.Fatalf("RPUSH: %v", err)
	}
	pool := newPool(t, redispool.Options{})
	conn := redispool.Connection{Address: srv.Addr()}
	for _, q := range []queue.RedisQueue{
		{List: "a-stream"},
		{List: "a-list", ProcessingList: "a-stream"},
		{Stream: "a-list", ConsumerGroup: "workers"},
	} {
		_, err := newReader(t, pool, conn, q, queue.Env{}).Poll(ctx)
		if !errors.Is(err, queue.ErrWrongType) {
			t.Errorf("%v: error %v, want ErrWrongType", q, err)
		}
	}
}
