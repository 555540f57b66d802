package ratelimit

import (
	"context"
	"encoding/binary"
	"math"
	"testing"
	"time"

	"github.com/claudecap/claudecap/internal/testutil/redistest"
	"github.com/claudecap/claudecap/pkg/dimension"
)

// newRulePool is newTestPool with an output rule.
func newRulePool(t *testing.T, limits Limits, rule OutputRule) (*redistest.Server, *Limiter) {
	t.Helper()
	srv := redistest.Start(t)
	pool := PoolKey{"acme", "sonnet"}
	if err := WritePoolConfig(context.Background(), srv.Client(), pool, PoolConfig{Limits: limits, OutputRule: rule}); err != nil {
		t.Fatalf("WritePoolConfig: %v", err)
	}
	l, err := New(srv.Client(), Options{Pool: pool, Workload: "ai/test"})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return srv, l
}

func mustSettle(t *testing.T, r *Reservation, used Actual) Settlement {
	t.Helper()
	s, err := r.Settle(context.Background(), used)
	if err != nil {
		t.Fatalf("Settle(%+v): %v", used, err)
	}
	return s
}

// available is the output an admission could take now (a zero-cost
// reservation refills the bucket and reports it).
func available(t *testing.T, l *Limiter) float64 {
	t.Helper()
	return float64(mustReserve(t, l, Amounts{}).Remaining[dimension.OutputTokens])
}

// The reproduction of the issue, scaled to seconds: long streams reserve most of
// the output, the bucket would refill underneath them, and the API (charging
// output when it is produced) ends with far less than the old pool believed. The
// pool must never show more output than the API has.
func TestLongStreamsLeaveNoRoomTheAPIDoesNotHave(t *testing.T) {
	ctx := context.Background()
	const capacity = 6000 // 100 output tokens per second.
	_, l := newRulePool(t, Limits{6000, 6_000_000, capacity}, OutputProduced)

	streams := make([]*Reservation, 4)
	for i := range streams {
		streams[i] = mustReserve(t, l, Amounts{1, 10, 1490})
	}
	// Nothing else fits while the streams hold all the output, however long they run.
	time.Sleep(1500 * time.Millisecond)
	if _, err := l.TryReserve(ctx, Amounts{1, 10, 100}); err == nil {
		t.Fatalf("admitted output held by four streams in flight")
	}
	// The API charged 4 x 1400 as the streams ran; its bucket was full until then,
	// so it has 6000 - 5600 = 400 left (plus the refill since the last charge).
	settled := time.Now()
	for _, r := range streams {
		mustSettle(t, r, Actual{InputTokens: 10, OutputTokens: 1400})
	}
	api := 400 + time.Since(settled).Seconds()*capacity/60
	if got := available(t, l); got > api+1 {
		t.Fatalf("pool shows %.0f output tokens available, the API has %.0f", got, api)
	}
	if _, err := l.TryReserve(ctx, Amounts{1, 10, 600}); err == nil {
		t.Fatalf("admitted 600 output tokens when the API has about 400")
	}
	mustReserve(t, l, Amounts{1, 10, 350})
}

// Under the older rule the API takes max_tokens at the start and refills
// underneath it; the pool refills the same way, and no further.
func TestReservedRuleRefillsUnderHolds(t *testing.T) {
	const capacity = 6000
	_, l := newRulePool(t, Limits{6000, 6_000_000, capacity}, OutputReserved)
	r := mustReserve(t, l, Amounts{1, 10, capacity})
	time.Sleep(time.Second)
	got := available(t, l)
	if got < 90 || got > 130 {
		t.Fatalf("after 1 s under the reserved rule, %.0f output available, want the 1 s refill (~100)", got)
	}
	// The end of the call gives back the unused part, as the API does, capped at the capacity.
	mustSettle(t, r, Actual{InputTokens: 10, OutputTokens: 1000})
	if got := available(t, l); got < capacity-1000 || got > capacity {
		t.Fatalf("after settling 1000 of 6000, %.0f available, want the capacity less the 1000 charged (refill aside)", got)
	}

	_, lP := newRulePool(t, Limits{6000, 6_000_000, capacity}, OutputProduced)
	mustReserve(t, lP, Amounts{1, 10, capacity})
	time.Sleep(time.Second)
	if got := available(t, lP); got > 1e-6 {
		t.Fatalf("under the produced rule %.0f output available while the whole capacity is held, want 0", got)
	}
}

func upstreamView(remaining Amounts, limits Limits) *Upstream {
	u := &Upstream{}
	for d, limit := range limits.Capacity() {
		u.Buckets[d] = UpstreamBucket{Known: true, Limit: limit, Remaining: remaining[d]}
	}
	return u
}

// The API's remaining headers pull the pool down when they show less, never up;
// token counts are rounded by the API to the nearest thousand, so 500 less.
func TestUpstreamRemainingPullsTheLevelDownNeverUp(t *testing.T) {
	limits := Limits{600, 600_000, 60_000}
	_, l := newRulePool(t, limits, OutputProduced)
	r := mustReserve(t, l, Amounts{1, 1000, 1000})
	s := mustSettle(t, r, Actual{InputTokens: 1000, OutputTokens: 200,
		Upstream: upstreamView(Amounts{100, 20_000, 5000}, limits), UpstreamAge: 0})
	if s.Remaining[dimension.Requests] > 100 || s.Remaining[dimension.InputTokens] > 19_500+100 || s.Remaining[dimension.OutputTokens] > 5000-500-200+10 {
		t.Fatalf("after the API reported 100/20000/5000 remaining, the pool shows %+v", s.Remaining)
	}
	// The API refilled since it answered: a report 30 s old allows half a minute more.
	_, fresh := newRulePool(t, limits, OutputProduced)
	r = mustReserve(t, fresh, Amounts{1, 1000, 1000})
	s = mustSettle(t, r, Actual{InputTokens: 1000, OutputTokens: 0,
		Upstream: upstreamView(Amounts{0, 0, 0}, limits), UpstreamAge: 30 * time.Second})
	if s.Remaining[dimension.Requests] < 295 || s.Remaining[dimension.Requests] > 301 {
		t.Fatalf("a 30 s old report of 0 requests left %d, want the 300 the API refilled since", s.Remaining[dimension.Requests])
	}
	// A report of more than the pool has changes nothing.
	before := available(t, l)
	r = mustReserve(t, l, Amounts{1, 1, 10})
	mustSettle(t, r, Actual{InputTokens: 1, OutputTokens: 10, Upstream: upstreamView(Amounts{600, 600_000, 60_000}, limits)})
	if after := available(t, l); after > before+1 {
		t.Fatalf("a report of a full API raised the output from %.0f to %.0f", before, after)
	}
}

// packBucket writes a bucket state the scripts read, with holds in the given
// lease periods (60 s each), for tests of states that take minutes to reach.
func packBucket(capacity, level [3]float64, at int64, seq, held float64, nextExpiry int64, holds map[int64]float64) string {
	buf := make([]byte, bucketStateSize)
	header := []float64{capacity[0], capacity[1], capacity[2], level[0], level[1], level[2], float64(at), seq, held, 0, float64(nextExpiry)}
	for i, f := range header {
		binary.LittleEndian.PutUint64(buf[8*i:], math.Float64bits(f))
	}
	for period, amount := range holds {
		off := bucketHeaderSize + int(period%holdSlots)*16
		binary.LittleEndian.PutUint64(buf[off:], math.Float64bits(float64(period)))
		binary.LittleEndian.PutUint64(buf[off+8:], math.Float64bits(amount))
	}
	return string(buf)
}

func redisMicros(t *testing.T, srv *redistest.Server) int64 {
	t.Helper()
	now, err := srv.Client().Time(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	return now.UnixMicro()
}

// A call that never settles keeps its hold until its lease ends; then the hold is
// charged in full (it may have produced all of it) and released.
func TestExpiredHoldIsChargedInFullAndReleased(t *testing.T) {
	ctx := context.Background()
	srv, l := newRulePool(t, Limits{600, 600_000, 6000}, OutputProduced)
	now := redisMicros(t, srv)
	const slot = 60_000_000
	ended := now/slot - 1 // A lease period that ended.
	state := packBucket([3]float64{600, 600_000, 6000}, [3]float64{600, 600_000, 6000}, now, 1, 4000, (ended+1)*slot, map[int64]float64{ended: 4000})
	if err := srv.Client().Set(ctx, l.Pool().bucketKey(), state, 0).Err(); err != nil {
		t.Fatal(err)
	}
	r := mustReserve(t, l, Amounts{1, 1, 100})
	if r.Remaining[dimension.OutputTokens] > 6000-4000-100+5 || r.Remaining[dimension.OutputTokens] < 6000-4000-100-5 {
		t.Fatalf("after an expired 4000 hold and a 100 reservation, %d available, want about 1900", r.Remaining[dimension.OutputTokens])
	}
	st, err := ReadBucket(ctx, srv.Client(), l.Pool())
	if err != nil {
		t.Fatal(err)
	}
	if st.Held != 100 {
		t.Fatalf("held %v after the sweep, want only the new call's 100", st.Held)
	}
}

// Redis TIME may step back (a failover to a replica on another host): an
// interval already refilled is not refilled again.
func TestClockStepBackRefillsNothingTwice(t *testing.T) {
	ctx := context.Background()
	srv, l := newRulePool(t, Limits{60, 600_000, 60_000}, OutputProduced) // 1 request per second.
	ahead := redisMicros(t, srv) + 3_000_000
	state := packBucket([3]float64{60, 600_000, 60_000}, [3]float64{10, 600_000, 60_000}, ahead, 1, 0, 0, nil)
	if err := srv.Client().Set(ctx, l.Pool().bucketKey(), state, 0).Err(); err != nil {
		t.Fatal(err)
	}
	for range 9 { // The tenth would eat into the admission margin.
		mustReserve(t, l, Amounts{1, 0, 0})
	}
	time.Sleep(1500 * time.Millisecond)
	if _, err := l.TryReserve(ctx, Amounts{1, 0, 0}); err == nil {
		t.Fatalf("admitted a request refilled in time the bucket had already counted")
	}
}

// A wait too long to represent comes back capped at an hour, not as 0 (which
// made Wait poll Redis hundreds of times a second).
func TestHugeWaitIsCapped(t *testing.T) {
	ctx := context.Background()
	srv, l := newRulePool(t, Limits{60, 600_000, 60_000}, OutputProduced)
	state := packBucket([3]float64{60, 600_000, 60_000}, [3]float64{-1e18, 600_000, 60_000}, redisMicros(t, srv), 1, 0, 0, nil)
	if err := srv.Client().Set(ctx, l.Pool().bucketKey(), state, 0).Err(); err != nil {
		t.Fatal(err)
	}
	_, err := l.TryReserve(ctx, Amounts{1, 0, 0})
	if rl := refusedWith(t, err); rl.RetryAfter() != time.Hour {
		t.Fatalf("retry after %s for a bucket deep in debt, want the 1 h cap", rl.RetryAfter())
	}
}

// Buckets written before holds existed (64 bytes) keep working and are upgraded.
func TestLegacyBucketIsUpgraded(t *testing.T) {
	ctx := context.Background()
	srv, l := newRulePool(t, Limits{600, 600_000, 6000}, OutputProduced)
	legacy := packBucket([3]float64{600, 600_000, 6000}, [3]float64{600, 600_000, 3000}, redisMicros(t, srv), 7, 0, 0, nil)[:legacyBucketSize]
	if err := srv.Client().Set(ctx, l.Pool().bucketKey(), legacy, 0).Err(); err != nil {
		t.Fatal(err)
	}
	r := mustReserve(t, l, Amounts{1, 1, 1000})
	if r.Seq != 8 || r.Remaining[dimension.OutputTokens] < 1999 || r.Remaining[dimension.OutputTokens] > 2010 {
		t.Fatalf("reservation on a legacy bucket = seq %d remaining %+v, want seq 8 and about 2000 output", r.Seq, r.Remaining)
	}
	st, err := ReadBucket(ctx, srv.Client(), l.Pool())
	if err != nil || st.Held != 1000 {
		t.Fatalf("upgraded bucket = %+v, %v; want 1000 held", st, err)
	}
}

// The API admits a call milliseconds after the pool did, and calls do not arrive in
// the order they were admitted: the pool keeps a quarter second of refill in hand so
// that two calls admitted one refill apart cannot find the API's bucket a fraction short.
func TestAdmissionKeepsAQuarterSecondMargin(t *testing.T) {
	ctx := context.Background()
	_, l := newRulePool(t, Limits{60, 600_000, 60_000}, OutputProduced) // 1 request per second.
	mustReserve(t, l, Amounts{60, 0, 0})                                // A call of the whole capacity keeps no margin.
	time.Sleep(1050 * time.Millisecond)
	_, err := l.TryReserve(ctx, Amounts{1, 0, 0})
	if rl := refusedWith(t, err); rl.RetryAfter() < 100*time.Millisecond || rl.RetryAfter() > 250*time.Millisecond {
		t.Fatalf("with 1.05 requests in the bucket: retry after %s, want the rest of the 1.25", rl.RetryAfter())
	}
	time.Sleep(250 * time.Millisecond)
	mustReserve(t, l, Amounts{1, 0, 0})
}

// go-redis sends a script again when the reply of the first run was lost (a read
// timeout): the second run of a settlement must not give back a second time.
func TestSettlementSentTwiceAppliesOnce(t *testing.T) {
	ctx := context.Background()
	_, l := newRulePool(t, Limits{600, 600_000, 60_000}, OutputProduced)
	r := mustReserve(t, l, Amounts{1, 5000, 1000})
	actual := Amounts{dimension.Requests: 1, dimension.InputTokens: 100, dimension.OutputTokens: 100}
	first, err := r.settleInRedis(ctx, actual, 0, unknownAPIState, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.settleInRedis(ctx, actual, 0, unknownAPIState, true); err != nil {
		t.Fatalf("the repeated settlement: %v, want it acknowledged", err)
	}
	after := mustReserve(t, l, Amounts{})
	if after.Remaining[dimension.InputTokens] > first.Remaining[dimension.InputTokens]+1000 || after.Seq != first.Seq+1 { // A second refund would add 4,900.
		t.Fatalf("after a repeated settlement: input %d, seq %d; after the first: input %d, seq %d (want nothing applied twice)",
			after.Remaining[dimension.InputTokens], after.Seq, first.Remaining[dimension.InputTokens], first.Seq)
	}
}

// A pool configured before whose bucket is gone (Redis lost its data) starts empty and
// refills from then: the API may have no room left. A bucket that exists is untouched.
func TestLostBucketComesBackEmpty(t *testing.T) {
	ctx := context.Background()
	limits := Limits{60, 600_000, 60_000} // 1 request per second.
	srv, l := newRulePool(t, limits, OutputProduced)
	mustReserve(t, l, Amounts{1, 10, 10})
	// An existing bucket keeps its levels whatever the flag says.
	if err := WritePoolConfig(ctx, srv.Client(), l.Pool(), PoolConfig{Limits: limits, StartEmpty: true}); err != nil {
		t.Fatal(err)
	}
	if r := mustReserve(t, l, Amounts{}); r.Remaining[dimension.Requests] < 58 {
		t.Fatalf("an existing bucket was emptied: %+v", r.Remaining)
	}
	srv.Client().FlushAll(ctx)
	if err := WritePoolConfig(ctx, srv.Client(), l.Pool(), PoolConfig{Limits: limits, StartEmpty: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.TryReserve(ctx, Amounts{1, 10, 10}); err == nil {
		t.Fatalf("a bucket lost with Redis's data came back with room")
	}
	time.Sleep(1300 * time.Millisecond)
	mustReserve(t, l, Amounts{1, 10, 10}) // It refills from the moment it was written.
	// Without the flag (a pool never configured before) a missing bucket starts full.
	srv.Client().FlushAll(ctx)
	if err := WritePoolConfig(ctx, srv.Client(), l.Pool(), PoolConfig{Limits: limits}); err != nil {
		t.Fatal(err)
	}
	if r := mustReserve(t, l, Amounts{1, 10, 10}); r.Remaining[dimension.Requests] != 59 {
		t.Fatalf("a new pool's bucket: %+v, want full", r.Remaining)
	}
}
