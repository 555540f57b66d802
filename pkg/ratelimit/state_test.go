package ratelimit

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/claudecap/claudecap/internal/testutil/redistest"
	"github.com/claudecap/claudecap/pkg/dimension"
)

func TestPoolConfigRoundTrip(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Start(t).Client()
	pool := PoolKey{"acme", "sonnet"}
	if _, err := ReadPoolConfig(ctx, rdb, pool); !errors.Is(err, ErrPoolNotConfigured) {
		t.Fatalf("unwritten pool: %v, want ErrPoolNotConfigured", err)
	}
	want := PoolConfig{
		Limits: Limits{900, 405000, 81000},
		Allocations: map[string]Limits{
			"ai/summarizer": {600, 270000, 54000},
			"ai/tagger":     {300, 135000, 27000},
		},
	}
	before := rdb.Time(ctx).Val()
	if err := WritePoolConfig(ctx, rdb, pool, want); err != nil {
		t.Fatal(err)
	}
	got, err := ReadPoolConfig(ctx, rdb, pool)
	if err != nil {
		t.Fatal(err)
	}
	if got.Limits != want.Limits || len(got.Allocations) != 2 || got.Allocations["ai/tagger"] != want.Allocations["ai/tagger"] {
		t.Fatalf("read %+v, want %+v", got, want)
	}
	if got.UpdatedAt.Before(before.Truncate(time.Millisecond)) || got.UpdatedAt.Sub(before) > time.Second {
		t.Fatalf("UpdatedAt %s not the Redis time of the write (~%s)", got.UpdatedAt, before)
	}
	// A rewrite replaces allocations: a workload that left the pool is gone.
	if err := WritePoolConfig(ctx, rdb, pool, PoolConfig{Limits: want.Limits, Allocations: map[string]Limits{"ai/tagger": {1, 2, 3}}}); err != nil {
		t.Fatal(err)
	}
	got, _ = ReadPoolConfig(ctx, rdb, pool)
	if len(got.Allocations) != 1 || got.Allocations["ai/tagger"] != (Limits{1, 2, 3}) {
		t.Fatalf("after rewrite allocations = %+v", got.Allocations)
	}
	for _, bad := range []PoolConfig{
		{Limits: Limits{-1, 0, 0}},
		{Limits: Limits{1, 1, 1}, Allocations: map[string]Limits{"bad name": {}}},
		{Limits: Limits{1, 1, 1}, Allocations: map[string]Limits{"ok": {0, -5, 0}}},
	} {
		if err := WritePoolConfig(ctx, rdb, pool, bad); err == nil {
			t.Errorf("WritePoolConfig(%+v) accepted bad input", bad)
		}
	}
	if err := WritePoolConfig(ctx, rdb, PoolKey{"a}b", "c"}, want); err == nil {
		t.Errorf("WritePoolConfig accepted a pool key that escapes its hash tag")
	}
	// Garbage in Redis is reported, not trusted.
	rdb.HSet(ctx, pool.limitsKey(), "otpm", "lots")
	if _, err := ReadPoolConfig(ctx, rdb, pool); err == nil {
		t.Fatalf("ReadPoolConfig accepted otpm=lots")
	}
}

func TestUsageOverRollingWindow(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	rdb := srv.Client()
	pool := PoolKey{"acme", "sonnet"}
	if err := WritePoolConfig(ctx, rdb, pool, PoolConfig{Limits: Limits{600, 600000, 600000}}); err != nil {
		t.Fatal(err)
	}
	a, _ := New(rdb, Options{Pool: pool, Workload: "ai/a", Pod: "a-1"})
	for range 3 {
		r := mustReserve(t, a, Call(1000, 500))
		if _, err := r.Settle(ctx, Actual{InputTokens: 800, OutputTokens: 120, CacheReadInputTokens: 50}); err != nil {
			t.Fatal(err)
		}
	}
	c := mustReserve(t, a, Call(1000, 500))
	if _, err := c.Cancel(ctx); err != nil { // Cancelled calls are not usage.
		t.Fatal(err)
	}
	if err := RecordUsage(ctx, rdb, pool, "ai/a", "a-2", UsageSample{RateLimited: 2, Overloaded: 1}); err != nil {
		t.Fatal(err)
	}
	if err := RecordUsage(ctx, rdb, pool, "ai/b", "b-1", UsageSample{Requests: 1, InputTokens: 5, OutputTokens: 6}); err != nil {
		t.Fatal(err)
	}

	u, err := ReadUsage(ctx, rdb, pool, "ai/a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	want := UsageSample{Requests: 3, InputTokens: 2400, OutputTokens: 360, CacheReadInputTokens: 150, RateLimited: 2, Overloaded: 1}
	if u.UsageSample != want || u.ActivePods != 2 || u.Window != time.Minute {
		t.Fatalf("usage of ai/a = %+v, want %+v from 2 pods", u, want)
	}
	all, err := ReadPoolUsage(ctx, rdb, pool, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all["ai/b"].OutputTokens != 6 || all["ai/b"].ActivePods != 1 {
		t.Fatalf("pool usage = %+v", all)
	}

	// The window rolls: after 2 s a 1 s window no longer holds the samples,
	// a 1 min window still does.
	time.Sleep(2100 * time.Millisecond)
	u, _ = ReadUsage(ctx, rdb, pool, "ai/a", time.Second)
	if u.Requests != 0 || u.ActivePods != 0 {
		t.Fatalf("1s window 2s later = %+v, want empty", u)
	}
	u, _ = ReadUsage(ctx, rdb, pool, "ai/a", time.Minute)
	if u.Requests != 3 {
		t.Fatalf("1min window 2s later = %+v, want the 3 requests", u)
	}
	// Keys expire with the ring so idle workloads leave nothing behind.
	if ttl := rdb.TTL(ctx, pool.usageKey("ai/a")).Val(); ttl <= 0 || ttl > MaxUsageWindow {
		t.Fatalf("usage key TTL %s, want within (0, %s]", ttl, MaxUsageWindow)
	}
	for _, w := range []time.Duration{0, 500 * time.Millisecond, MaxUsageWindow + time.Second} {
		if _, err := ReadUsage(ctx, rdb, pool, "ai/a", w); err == nil {
			t.Errorf("ReadUsage accepted window %s", w)
		}
	}
	if err := RecordUsage(ctx, rdb, pool, "ai/a", "p", UsageSample{Requests: -1}); err == nil {
		t.Errorf("RecordUsage accepted a negative sample")
	}
}

func TestUsageSlotReuseDropsOldCounts(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Start(t).Client()
	pool := PoolKey{"acme", "sonnet"}
	// Plant a count in the current second's slot as if written one ring ago.
	now := rdb.Time(ctx).Val().Unix()
	slot := now % usageRing
	rdb.HSet(ctx, pool.usageKey("ai/a"), sprintSlot(slot, "t"), now-usageRing, sprintSlot(slot, "req"), 99)
	if err := RecordUsage(ctx, rdb, pool, "ai/a", "p", UsageSample{Requests: 1}); err != nil {
		t.Fatal(err)
	}
	u, err := ReadUsage(ctx, rdb, pool, "ai/a", MaxUsageWindow)
	if err != nil {
		t.Fatal(err)
	}
	if u.Requests != 1 {
		t.Fatalf("requests = %d, want 1: a slot from a previous lap must be reset", u.Requests)
	}
}

func sprintSlot(slot int64, field string) string {
	return strconv.FormatInt(slot, 10) + ":" + field
}

func TestUpstreamRoundTripAndExpiry(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Start(t).Client()
	pool := PoolKey{"acme", "sonnet"}
	if _, ok, err := ReadUpstream(ctx, rdb, pool); ok || err != nil {
		t.Fatalf("nothing written: ok=%v err=%v", ok, err)
	}
	reset := time.Date(2025, 8, 21, 12, 41, 0, 0, time.UTC)
	in := Upstream{Status: 429, RetryAfter: 7 * time.Second}
	in.Buckets[dimension.Requests] = UpstreamBucket{Known: true, Limit: 1000, Remaining: 999, Reset: reset}
	in.Buckets[dimension.OutputTokens] = UpstreamBucket{Known: true, Limit: 16000, Remaining: 4000, Reset: reset}
	if err := WriteUpstream(ctx, rdb, pool, in); err != nil {
		t.Fatal(err)
	}
	got, ok, err := ReadUpstream(ctx, rdb, pool)
	if err != nil || !ok {
		t.Fatalf("ReadUpstream: ok=%v err=%v", ok, err)
	}
	if got.Buckets[dimension.Requests] != in.Buckets[dimension.Requests] || got.Buckets[dimension.OutputTokens] != in.Buckets[dimension.OutputTokens] || got.Buckets[dimension.InputTokens].Known ||
		got.Status != 429 || got.RetryAfter != 7*time.Second {
		t.Fatalf("read %+v, want %+v", got, in)
	}
	if d := time.Since(got.ObservedAt); d < -time.Second || d > 5*time.Second {
		t.Fatalf("ObservedAt %s is not the write time", got.ObservedAt)
	}
	if ttl := rdb.PTTL(ctx, pool.upstreamKey()).Val(); ttl <= 0 || ttl > UpstreamTTL {
		t.Fatalf("upstream TTL %s, want within (0, %s]", ttl, UpstreamTTL)
	}
	// A newer observation without output headers replaces the old one whole.
	newer := Upstream{Status: 200}
	newer.Buckets[dimension.Requests] = in.Buckets[dimension.Requests]
	if err := WriteUpstream(ctx, rdb, pool, newer); err != nil {
		t.Fatal(err)
	}
	got, _, _ = ReadUpstream(ctx, rdb, pool)
	if got.Buckets[dimension.OutputTokens].Known || got.Status != 200 {
		t.Fatalf("stale output bucket survived: %+v", got)
	}
}

// TestCountersRecordWhatTheEstimatorsNeed: settled calls, upstream refusals, calls the
// pool refused and time spent waiting for room add up in the workload's cumulative
// counters, which the controller differences between polls.
func TestCountersRecordWhatTheEstimatorsNeed(t *testing.T) {
	ctx := context.Background()
	// Two requests per minute: the bucket holds 2, then refills one every 30 s.
	srv, l := newTestPool(t, Limits{2, 1_000_000, 1_000_000}, Options{Workload: "ai/a", Pod: "a-1"})
	rdb := srv.Client()
	pool := l.Pool()
	if c, err := ReadCounters(ctx, rdb, pool, "ai/a"); err != nil || c.Known {
		t.Fatalf("before any call: %+v, %v; want unknown", c, err)
	}
	// One reservation of both requests (a call of 1 would leave the admission margin).
	if _, err := mustReserve(t, l, Amounts{2, 10, 10}).Settle(ctx, Actual{InputTokens: 5, OutputTokens: 5}); err != nil {
		t.Fatal(err)
	}
	// The pool is empty: an immediate refusal, then a wait that gives up.
	if _, err := l.TryReserve(ctx, Call(10, 10)); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("third call: %v, want a refusal", err)
	}
	wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := l.Wait(wctx, Call(10, 10)); err == nil {
		t.Fatal("a wait for 30 s of refill ended in admission within 300 ms")
	}
	if err := RecordUsage(ctx, rdb, pool, "ai/a", "a-1", UsageSample{RateLimited: 3, Overloaded: 1}); err != nil {
		t.Fatal(err)
	}
	c, err := ReadCounters(ctx, rdb, pool, "ai/a")
	if err != nil {
		t.Fatal(err)
	}
	if !c.Known || c.Requests != 2 || c.RateLimited != 3 || c.Overloaded != 1 || c.Throttled != 2 {
		t.Errorf("counters %+v, want 2 requests, 3 429s, 1 529, 2 throttled", c)
	}
	if c.WaitedMillis != 0 {
		// Wait returned at once: 30 s of refill is past its deadline, so it never slept.
		t.Errorf("waited %d ms for a wait that never slept", c.WaitedMillis)
	}
	u, err := ReadUsage(ctx, rdb, pool, "ai/a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if u.Throttled != 2 || u.Requests != 2 {
		t.Errorf("window usage %+v, want the same 2 throttled and 2 requests", u.UsageSample)
	}
	// Garbage in a counter is reported, not trusted.
	rdb.HSet(ctx, pool.usageKey("ai/a"), "tot:req", "many")
	if _, err := ReadCounters(ctx, rdb, pool, "ai/a"); err == nil {
		t.Error("ReadCounters accepted tot:req=many")
	}
}

func TestWaitRecordsTheTimeItWaited(t *testing.T) {
	ctx := context.Background()
	// 600 requests per minute: one every 100 ms once the bucket of 600 is spent.
	srv, l := newTestPool(t, Limits{600, 1_000_000_000, 1_000_000_000}, Options{Workload: "ai/w", Pod: "w-1"})
	mustReserve(t, l, Amounts{600, 1, 1})
	start := time.Now()
	for range 3 {
		if _, err := l.Wait(ctx, Call(1, 1)); err != nil {
			t.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	c, err := ReadCounters(ctx, srv.Client(), l.Pool(), "ai/w")
	if err != nil {
		t.Fatal(err)
	}
	if c.Throttled != 0 {
		t.Errorf("%d throttled, want 0: every wait ended in admission", c.Throttled)
	}
	if c.WaitedMillis < 150 || c.WaitedMillis > elapsed.Milliseconds() {
		t.Errorf("waited %d ms in all, want about 300 ms (at most the %v the waits took)", c.WaitedMillis, elapsed)
	}
}
