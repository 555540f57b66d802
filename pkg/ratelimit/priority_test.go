package ratelimit

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claudecap/claudecap/internal/testutil/redistest"
	"github.com/claudecap/claudecap/pkg/dimension"
)

// Workloads of the priority tests: batch has a reserve, chat (higher
// priority) has none.
const (
	batchWorkload = "ai/batch"
	chatWorkload  = "ai/chat"
)

// newPriorityPool writes limits and reserves for a fresh pool and returns a
// limiter per workload name.
func newPriorityPool(t *testing.T, limits Limits, reserves map[string]Limits, workloads ...string) (*redistest.Server, PoolKey, map[string]*Limiter) {
	t.Helper()
	srv := redistest.Start(t)
	pool := PoolKey{"acme", "sonnet"}
	if err := WritePoolConfig(context.Background(), srv.Client(), pool, PoolConfig{Limits: limits, Reserves: reserves}); err != nil {
		t.Fatalf("WritePoolConfig: %v", err)
	}
	lims := map[string]*Limiter{}
	for _, w := range workloads {
		l, err := New(srv.Client(), Options{Pool: pool, Workload: w, Pod: "pod-0"})
		if err != nil {
			t.Fatalf("New(%q): %v", w, err)
		}
		lims[w] = l
	}
	return srv, pool, lims
}

// drain admits cost until the limiter is refused and returns the number of
// admissions and the refusal.
func drain(t *testing.T, l *Limiter, cost Amounts) (int, *RateLimitedError) {
	t.Helper()
	for n := 0; n < 1000; n++ {
		_, err := l.TryReserve(context.Background(), cost)
		if err != nil {
			return n, refusedWith(t, err)
		}
	}
	t.Fatalf("drain: 1000 admissions of %+v and no refusal", cost)
	return 0, nil
}

// A batch burst stops at its reserve in every dimension; a workload without a
// reserve then still finds the reserve in the pool, and may take it.
func TestReserveHonouredForLowNotHigh(t *testing.T) {
	limits := Limits{60, 60_000, 6000} // Refill per second: 1 request, 1000 input, 100 output.
	reserves := map[string]Limits{batchWorkload: {12, 12_000, 1200}}
	for _, binding := range []dimension.Dimension{dimension.Requests, dimension.InputTokens, dimension.OutputTokens} {
		t.Run(binding.String(), func(t *testing.T) {
			_, pool, lims := newPriorityPool(t, limits, reserves, batchWorkload, chatWorkload)
			// A cost binding in one dimension (48 calls leave the reserve), small in the others.
			cost := Amounts{1, 100, 10}
			switch binding {
			case dimension.Requests:
			case dimension.InputTokens:
				cost = Amounts{0, 2000, 10} // 24 calls leave 12,000.
			case dimension.OutputTokens:
				cost = Amounts{0, 100, 200} // 24 calls leave 1200.
			}
			want := int((limits.Capacity()[binding] - reserves[batchWorkload].Capacity()[binding]) / cost[binding])
			n, rl := drain(t, lims[batchWorkload], cost)
			// The admission margin (a quarter second of refill) may cost the last call;
			// refill while draining may give one more.
			if n < want-1 || n > want+1 {
				t.Fatalf("batch admitted %d calls of %+v, want about %d (capacity less the reserve)", n, cost, want)
			}
			if rl.Binding != binding || rl.TooLarge {
				t.Fatalf("batch refusal %+v, want %s binding", rl, binding)
			}
			st, err := ReadBucket(context.Background(), lims[chatWorkload].rdb, pool)
			if err != nil {
				t.Fatal(err)
			}
			avail := st.Level[binding]
			if binding == dimension.OutputTokens {
				avail -= st.Held
			}
			if r := float64(reserves[batchWorkload].Capacity()[binding]); avail < r-float64(cost[binding]) {
				t.Fatalf("batch left %.1f %s, want at least its reserve %.0f less one call", avail, binding, r)
			}
			// The higher-priority workload takes the reserve.
			m, _ := drain(t, lims[chatWorkload], cost)
			if wantChat := int(reserves[batchWorkload].Capacity()[binding]/cost[binding]) - 1; m < wantChat {
				t.Fatalf("chat admitted %d calls after the batch burst, want at least %d (the reserve)", m, wantChat)
			}
		})
	}
}

// A refused call's wait counts until level - reserve covers the cost (for
// output: level - held - reserve); the same call of a workload without a
// reserve is admitted.
func TestReserveWaitIncludesReserve(t *testing.T) {
	ctx := context.Background()
	limits := Limits{60, 6000, 600} // Refill per second: 1 request, 100 input, 10 output.
	_, _, lims := newPriorityPool(t, limits, map[string]Limits{batchWorkload: {30, 0, 120}}, batchWorkload, chatWorkload)
	chat, batch := lims[chatWorkload], lims[batchWorkload]

	mustReserve(t, chat, Amounts{50, 0, 0}) // 10 requests left.
	_, err := batch.TryReserve(ctx, Amounts{1, 0, 0})
	rl := refusedWith(t, err)
	// 1 request + 30 reserved + 0.25 margin - 10 in the bucket, at 1 per second.
	if rl.Binding != dimension.Requests || rl.RetryAfter() > 21250*time.Millisecond || rl.RetryAfter() < 20*time.Second {
		t.Fatalf("batch refusal %+v (retry after %s), want requests binding, just under 21.25s", rl, rl.RetryAfter())
	}
	mustReserve(t, chat, Amounts{1, 0, 0})

	// Output: chat holds 500 of 600 (100 available); batch must leave 120.
	mustReserve(t, chat, Amounts{0, 0, 500})
	_, err = batch.TryReserve(ctx, Amounts{0, 0, 10})
	rl = refusedWith(t, err)
	// 10 output + 120 reserved + 2.5 margin - 100 available, at 10 per second.
	if w := rl.Wait[dimension.OutputTokens]; w > 3250*time.Millisecond || w < 3*time.Second {
		t.Fatalf("batch refusal %+v: output wait %s, want just under 3.25s", rl, w)
	}
	// A call must leave the reserve even in a dimension it takes nothing of:
	// 30 reserved requests less the 9 in the bucket.
	if rl.Binding != dimension.Requests || rl.Wait[dimension.Requests] < 19*time.Second || rl.Wait[dimension.Requests] > 21*time.Second {
		t.Fatalf("batch refusal %+v: want the requests wait of its reserve (about 21s) binding", rl)
	}
	mustReserve(t, chat, Amounts{0, 0, 10})
}

// A reserve larger than capacity - cost never makes the call impossible: the
// call is admitted from a full bucket (and only from a full one).
func TestReserveNeverMakesACallImpossible(t *testing.T) {
	ctx := context.Background()
	limits := Limits{60, 6000, 600}
	srv, pool, lims := newPriorityPool(t, limits, map[string]Limits{batchWorkload: {12, 6000, 0}}, batchWorkload)
	batch := lims[batchWorkload]
	mustReserve(t, batch, Amounts{55, 100, 10}) // From the full bucket.
	_, err := batch.TryReserve(ctx, Amounts{1, 100, 0})
	rl := refusedWith(t, err)
	if rl.TooLarge || rl.Binding != dimension.Requests {
		t.Fatalf("refusal %+v, want requests binding, not too large", rl)
	}
	// Input: the reserve (the whole capacity) clamps to capacity - cost: the
	// 100-token call waits for a full input bucket (100 tokens at 100/s).
	if rl.Wait[dimension.InputTokens] > time.Second || rl.Wait[dimension.InputTokens] < 900*time.Millisecond {
		t.Fatalf("input wait %s, want just under 1s (until the bucket is full again)", rl.Wait[dimension.InputTokens])
	}
	// A reserve above the limit is clamped to it when written.
	got, err := ReadPoolConfig(ctx, srv.Client(), pool)
	if err != nil || got.Reserves[batchWorkload] != (Limits{12, 6000, 0}) {
		t.Fatalf("ReadPoolConfig = %+v, %v", got.Reserves, err)
	}
	if err := WritePoolConfig(ctx, srv.Client(), pool, PoolConfig{Limits: limits, Reserves: map[string]Limits{batchWorkload: {100, 1 << 40, 1}}}); err != nil {
		t.Fatal(err)
	}
	got, err = ReadPoolConfig(ctx, srv.Client(), pool)
	if err != nil || got.Reserves[batchWorkload] != (Limits{60, 6000, 1}) {
		t.Fatalf("a reserve above the limit: ReadPoolConfig = %+v, %v; want it clamped to {60 6000 1}", got.Reserves, err)
	}
}

// A new config without the reserve applies to the very next admission, and
// admissions and settlements keep the reserve table the config wrote.
func TestReserveRemovedByNewConfigStopsAtOnce(t *testing.T) {
	ctx := context.Background()
	limits := Limits{60, 6000, 600}
	reserves := map[string]Limits{batchWorkload: {30, 0, 0}, "ai/other": {1, 2, 3}}
	srv, pool, lims := newPriorityPool(t, limits, reserves, batchWorkload, chatWorkload)
	rdb := srv.Client()
	chat, batch := lims[chatWorkload], lims[batchWorkload]

	// Admissions and a settlement rewrite the bucket's header and ring only.
	r := mustReserve(t, chat, Amounts{40, 100, 100})
	if _, err := r.Settle(ctx, Actual{InputTokens: 100, OutputTokens: 50}); err != nil {
		t.Fatal(err)
	}
	got, err := ReadPoolConfig(ctx, rdb, pool)
	if err != nil || !reflect.DeepEqual(got.Reserves, reserves) {
		t.Fatalf("after traffic ReadPoolConfig reserves = %+v, %v; want %+v", got.Reserves, err, reserves)
	}
	if st, err := ReadBucket(ctx, rdb, pool); err != nil || st.Seq != 2 {
		t.Fatalf("ReadBucket of a bucket with reserves = %+v, %v", st, err)
	}
	_, err = batch.TryReserve(ctx, Amounts{1, 0, 0})
	if rl := refusedWith(t, err); rl.RetryAfter() < 10*time.Second {
		t.Fatalf("batch refusal %+v, want a wait of about 11s for its reserve", rl)
	}

	if err := WritePoolConfig(ctx, rdb, pool, PoolConfig{Limits: limits}); err != nil {
		t.Fatal(err)
	}
	mustReserve(t, batch, Amounts{1, 0, 0})
	raw, err := rdb.Get(ctx, pool.bucketKey()).Bytes()
	if err != nil || len(raw) != bucketStateSize {
		t.Fatalf("bucket after removing every reserve: %d bytes, %v; want %d", len(raw), err, bucketStateSize)
	}
	if got, err := ReadPoolConfig(ctx, rdb, pool); err != nil || got.Reserves != nil {
		t.Fatalf("ReadPoolConfig reserves after removal = %+v, %v; want none", got.Reserves, err)
	}
}

// Only the limiter of the named workload leaves the reserve: names that share
// a prefix or a suffix with it, a workload absent from the config and a
// limiter without a workload ignore it.
func TestReserveOfAnotherWorkloadIsIgnored(t *testing.T) {
	limits := Limits{60, 6000, 600}
	reserves := map[string]Limits{batchWorkload: {59, 5900, 590}, "ai/ghost": {59, 5900, 590}}
	for _, w := range []string{"", "ai/batc", "ai/batch-2", "x/ai/batch", "batch", chatWorkload} {
		_, _, lims := newPriorityPool(t, limits, reserves, w)
		if n, _ := drain(t, lims[w], Amounts{1, 0, 0}); n < 59 {
			t.Errorf("workload %q admitted %d calls, want the whole pool (59 or 60): another workload's reserve applied", w, n)
		}
	}
}

func TestWritePoolConfigValidatesReserves(t *testing.T) {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // Never reached: validation fails first.
	defer func() { _ = rdb.Close() }()
	pool := PoolKey{"acme", "sonnet"}
	for _, reserves := range []map[string]Limits{
		{"bad name": {1, 1, 1}},
		{"bad\nname": {1, 1, 1}},
		{"": {1, 1, 1}},
		{"ok": {0, -1, 0}},
	} {
		err := WritePoolConfig(ctx, rdb, pool, PoolConfig{Limits: Limits{10, 10, 10}, Reserves: reserves})
		if err == nil || errors.Is(err, ErrUnavailable) {
			t.Errorf("WritePoolConfig with reserves %v = %v, want a validation error", reserves, err)
		}
	}
	table, err := encodeReserves(Limits{10, 100, 1000}, map[string]Limits{"b/x": {20, 50, 0}, "a/y": {0, 0, 0}, "a/z": {1, 2, 3}})
	if err != nil || table != "\na/z 1 2 3\nb/x 10 50 0" {
		t.Fatalf("encodeReserves = %q, %v; want sorted entries, zero reserves left out, amounts clamped", table, err)
	}
	back, err := decodeReserves(table)
	if err != nil || !reflect.DeepEqual(back, map[string]Limits{"a/z": {1, 2, 3}, "b/x": {10, 50, 0}}) {
		t.Fatalf("decodeReserves = %+v, %v", back, err)
	}
	for _, bad := range []string{"a/z 1 2 3", "\na/z 1 2", "\na/z 1 2 -3", "\nbad name 1 2 3 4"} {
		if _, err := decodeReserves(bad); err == nil || !strings.Contains(err.Error(), "reserve") {
			t.Errorf("decodeReserves(%q) = %v, want an error", bad, err)
		}
	}
}
