package standin

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claudecap/claudecap/pkg/mockapi"
)

// TestEveryJobAckedExactlyOnceWhileScaling pushes jobs and scales 3 -> 1 -> 4 -> 0 while
// they are worked: once every pod has exited, each job is either acknowledged once or
// still queued, and none is in custody; scaled up again, the fleet does every job once.
// Run for a list (non-streaming calls) and a stream (streaming calls).
func TestEveryJobAckedExactlyOnceWhileScaling(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"list", "stream"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			testExactlyOnce(t, kind == "stream")
		})
	}
}

func testExactlyOnce(t *testing.T, stream bool) {
	const n = 200
	w := newWorld(t, 3, mockapi.Config{
		Latency: mockapi.Latency{TimeToFirstToken: mockapi.Fixed(0.05), PerToken: mockapi.Fixed(0.002)},
	})
	cfg := w.config()
	cfg.StartDelay = 200 * time.Millisecond
	cfg.ThinkTime = 10 * time.Millisecond
	jobs := jobNames("job-", n)
	q := custody{w: w}
	if stream {
		cfg.Queue = Queue{Stream: "work", Group: "workers"}
		cfg.Request.Stream = true
		q.stream = true
		for _, j := range jobs {
			if err := w.rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: "work", Values: []any{"job", j}}).Err(); err != nil {
				t.Fatal(err)
			}
		}
	} else {
		w.push(DefaultList, jobs...)
	}
	f := w.start(cfg)

	for _, replicas := range []int32{1, 4, 0} {
		time.Sleep(time.Second)
		w.scale(replicas)
	}
	eventually(t, 5*time.Second, "every pod exited", func() (bool, string) {
		return len(f.Pods()) == 0, podNames(f.Pods())
	})
	acked := f.Acked()
	if len(acked) == 0 || len(acked) == n {
		t.Fatalf("%d of %d jobs done when the fleet reached 0 pods; the scaling did not happen while jobs were worked", len(acked), n)
	}
	if held := q.held(); held != 0 {
		t.Fatalf("%d jobs still in custody after every pod exited", held)
	}
	checkOnce(t, jobs, acked, q.queued())

	w.scale(4)
	eventually(t, 15*time.Second, "every job done", func() (bool, string) {
		return len(f.Acked()) == n, fmt.Sprintf("%d of %d", len(f.Acked()), n)
	})
	checkOnce(t, jobs, f.Acked(), nil)
	if held, queued := q.held(), q.queued(); held != 0 || len(queued) != 0 {
		t.Errorf("%d jobs in custody and %d queued after all were done", held, len(queued))
	}
	if st := f.Stats(); st.JobsCompleted != n || st.CallsOK != n || st.QueueErrors != 0 {
		t.Errorf("stats %+v, want %d jobs completed by %d calls and no queue errors", st, n, n)
	}
}

// checkOnce fails unless every job is acknowledged exactly once or queued exactly once,
// and nothing else was acknowledged or queued.
func checkOnce(t *testing.T, jobs []string, acked map[string]int, queued []string) {
	t.Helper()
	where := map[string]int{}
	for j, times := range acked {
		where[j] += times
	}
	for _, j := range queued {
		where[j]++
	}
	var lost, twice []string
	for _, j := range jobs {
		switch c := where[j]; {
		case c == 0:
			lost = append(lost, j)
		case c > 1:
			twice = append(twice, j)
		}
		delete(where, j)
	}
	sort.Strings(lost)
	sort.Strings(twice)
	if len(lost) > 0 || len(twice) > 0 || len(where) > 0 {
		t.Fatalf("lost %v, done or queued more than once %v, unknown %v", lost, twice, where)
	}
}

// custody reads where jobs are in Redis.
type custody struct {
	w      *world
	stream bool
}

// held counts jobs taken and not yet acknowledged or put back.
func (c custody) held() int64 {
	c.w.t.Helper()
	if !c.stream {
		return int64(len(c.w.list(DefaultProcessingList)))
	}
	p, err := c.w.rdb.XPending(context.Background(), "work", "workers").Result()
	if err != nil {
		c.w.t.Fatalf("reading pending entries: %v", err)
	}
	return p.Count
}

// queued lists the jobs waiting to be taken: a list's items, or a stream's entries after
// the group's last delivered one (a requeued job is a new entry at the end).
func (c custody) queued() []string {
	c.w.t.Helper()
	if !c.stream {
		return c.w.list(DefaultList)
	}
	ctx := context.Background()
	groups, err := c.w.rdb.XInfoGroups(ctx, "work").Result()
	if err != nil || len(groups) != 1 {
		c.w.t.Fatalf("reading the consumer group: %v %v", groups, err)
	}
	entries, err := c.w.rdb.XRange(ctx, "work", "("+groups[0].LastDeliveredID, "+").Result()
	if err != nil {
		c.w.t.Fatalf("reading undelivered entries: %v", err)
	}
	out := make([]string, 0, len(entries))
	for _, e := range entries {
		out = append(out, fmt.Sprint(e.Values["job"]))
	}
	return out
}
