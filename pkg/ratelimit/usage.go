package ratelimit

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claudecap/claudecap/pkg/dimension"
)

// UsageSample is what one workload did, added to the current second of its
// usage ring.
type UsageSample struct {
	// Requests completed (settled).
	Requests int64
	// InputTokens counted against ITPM.
	InputTokens int64
	// OutputTokens generated.
	OutputTokens int64
	// CacheReadInputTokens read from the prompt cache (not charged).
	CacheReadInputTokens int64
	// RateLimited counts 429 responses seen upstream.
	RateLimited int64
	// Overloaded counts 529 responses seen upstream.
	Overloaded int64
	// Throttled counts calls the shared limiter refused: the caller got no
	// admission, either at once or after waiting as long as it would.
	Throttled int64
	// WaitedMillis is the time calls spent waiting for room in the shared
	// limiter, in milliseconds, admitted or not. The controller takes it out of
	// the replica time that measures per-replica throughput.
	WaitedMillis int64
}

// Amounts returns the sample's charged amounts per dimension.
func (s UsageSample) Amounts() Amounts {
	return Amounts{dimension.Requests: s.Requests, dimension.InputTokens: s.InputTokens, dimension.OutputTokens: s.OutputTokens}
}

func (s UsageSample) validate() error {
	if s.Requests < 0 || s.InputTokens < 0 || s.OutputTokens < 0 || s.CacheReadInputTokens < 0 ||
		s.RateLimited < 0 || s.Overloaded < 0 || s.Throttled < 0 || s.WaitedMillis < 0 {
		return fmt.Errorf("negative usage sample %+v", s)
	}
	return nil
}

// WindowUsage is a workload's usage summed over a rolling window ending now
// (the current, partial second included).
type WindowUsage struct {
	UsageSample
	// ActivePods is how many distinct pods reported within the window.
	ActivePods int
	// Window is the window length.
	Window time.Duration
	// At is the Redis time the window ends.
	At time.Time
}

// RecordUsage adds a sample to a workload's usage and marks pod (if not
// empty) active. A zero sample is a heartbeat. Settle records usage itself;
// this is for what happens outside a reservation, such as 429s and 529s.
func RecordUsage(ctx context.Context, rdb redis.UniversalClient, pool PoolKey, workload, pod string, s UsageSample) error {
	if err := pool.Validate(); err != nil {
		return fmt.Errorf("recording usage: %w", err)
	}
	if err := ValidateWorkload(workload); err != nil {
		return fmt.Errorf("recording usage on pool %s: %w", pool, err)
	}
	if err := s.validate(); err != nil {
		return fmt.Errorf("recording usage of %s on pool %s: %w", workload, pool, err)
	}
	err := recordUsageScript.Run(ctx, rdb,
		[]string{pool.usageKey(workload), pool.podsKey(workload), pool.workloadsKey()},
		usageRing, workload, pod,
		s.Requests, s.InputTokens, s.OutputTokens, s.CacheReadInputTokens, s.RateLimited, s.Overloaded,
		s.Throttled, s.WaitedMillis,
	).Err()
	if err != nil {
		return unavailable("recording usage of "+workload, pool, err)
	}
	return nil
}

// ReadUsage sums a workload's usage over the last window (whole seconds, at
// most MaxUsageWindow). The controller divides by the window to get rates.
func ReadUsage(ctx context.Context, rdb redis.UniversalClient, pool PoolKey, workload string, window time.Duration) (WindowUsage, error) {
	if err := pool.Validate(); err != nil {
		return WindowUsage{}, fmt.Errorf("reading usage: %w", err)
	}
	if err := ValidateWorkload(workload); err != nil {
		return WindowUsage{}, fmt.Errorf("reading usage on pool %s: %w", pool, err)
	}
	secs := int64(window / time.Second)
	if secs < 1 || window > MaxUsageWindow {
		return WindowUsage{}, fmt.Errorf("reading usage of %s on pool %s: window %s outside 1s..%s", workload, pool, window, MaxUsageWindow)
	}
	v, err := readUsageScript.Run(ctx, rdb,
		[]string{pool.usageKey(workload), pool.podsKey(workload)}, secs, usageRing).Result()
	if err != nil {
		return WindowUsage{}, unavailable("reading usage of "+workload, pool, err)
	}
	u, err := decodeWindowUsage(v)
	if err != nil {
		return WindowUsage{}, fmt.Errorf("reading usage of %s on pool %s: %w", workload, pool, err)
	}
	u.Window = time.Duration(secs) * time.Second
	return u, nil
}

func decodeWindowUsage(v any) (WindowUsage, error) {
	arr, ok := v.([]any)
	if !ok || len(arr) != 10 {
		return WindowUsage{}, fmt.Errorf("unexpected usage reply %T of %d elements, want 10 integers", v, lenOf(v))
	}
	n := make([]int64, len(arr))
	for i, e := range arr {
		x, ok := e.(int64)
		if !ok {
			return WindowUsage{}, fmt.Errorf("unexpected usage reply element %d: %T, want integer", i, e)
		}
		n[i] = x
	}
	return WindowUsage{
		UsageSample: UsageSample{
			Requests: n[1], InputTokens: n[2], OutputTokens: n[3],
			CacheReadInputTokens: n[4], RateLimited: n[5], Overloaded: n[6],
			Throttled: n[7], WaitedMillis: n[8],
		},
		ActivePods: int(n[9]),
		At:         time.UnixMicro(n[0]),
	}, nil
}

// ReadPoolUsage reads the usage of every workload that reported to the pool
// within the ring (MaxUsageWindow), keyed by workload name.
func ReadPoolUsage(ctx context.Context, rdb redis.UniversalClient, pool PoolKey, window time.Duration) (map[string]WindowUsage, error) {
	if err := pool.Validate(); err != nil {
		return nil, fmt.Errorf("reading pool usage: %w", err)
	}
	workloads, err := rdb.ZRange(ctx, pool.workloadsKey(), 0, -1).Result()
	if err != nil {
		return nil, unavailable("listing workloads", pool, err)
	}
	out := make(map[string]WindowUsage, len(workloads))
	for _, w := range workloads {
		if ValidateWorkload(w) != nil {
			continue // Not written by RecordUsage; never build a key from it.
		}
		u, err := ReadUsage(ctx, rdb, pool, w, window)
		if err != nil {
			return nil, err
		}
		out[w] = u
	}
	return out, nil
}

// Counters are a workload's cumulative counts, kept in its usage hash beside
// the ring. They only grow while the hash lives; it expires MaxUsageWindow after
// the last write (a limiter's heartbeat keeps it alive while any pod runs), and
// a restarted Redis may lose it, so a reader takes a count that went down as a
// reset. The controller differences them between two polls: completions for
// the arrival estimate, refusals and waiting for the throughput estimate.
type Counters struct {
	// Requests settled (calls that completed upstream and were charged).
	Requests int64
	// RateLimited and Overloaded count upstream 429s and 529s.
	RateLimited, Overloaded int64
	// Throttled counts calls the shared limiter refused.
	Throttled int64
	// WaitedMillis is the time calls spent waiting for room in the shared limiter.
	WaitedMillis int64
	// Known is false when the workload has no usage hash (nothing recorded yet,
	// or it expired).
	Known bool
}

// countersFields are the hash fields of Counters, in the order of the struct.
var countersFields = []string{"tot:req", "tot:rl", "tot:ov", "tot:th", "tot:wt"}

// ReadCounters reads a workload's cumulative counters in one round trip.
func ReadCounters(ctx context.Context, rdb redis.UniversalClient, pool PoolKey, workload string) (Counters, error) {
	if err := pool.Validate(); err != nil {
		return Counters{}, fmt.Errorf("reading counters: %w", err)
	}
	if err := ValidateWorkload(workload); err != nil {
		return Counters{}, fmt.Errorf("reading counters on pool %s: %w", pool, err)
	}
	key := pool.usageKey(workload)
	pipe := rdb.Pipeline()
	exists := pipe.Exists(ctx, key)
	values := pipe.HMGet(ctx, key, countersFields...)
	if _, err := pipe.Exec(ctx); err != nil {
		return Counters{}, unavailable("reading the counters of "+workload, pool, err)
	}
	if exists.Val() == 0 {
		return Counters{}, nil
	}
	n := make([]int64, len(countersFields))
	for i, v := range values.Val() {
		if v == nil {
			continue // never incremented: zero
		}
		s, ok := v.(string)
		if !ok {
			return Counters{}, fmt.Errorf("reading counters of %s on pool %s: field %s is %T, want an integer", workload, pool, countersFields[i], v)
		}
		x, err := strconv.ParseInt(s, 10, 64)
		if err != nil || x < 0 {
			return Counters{}, fmt.Errorf("reading counters of %s on pool %s: field %s is %q, want a non-negative integer", workload, pool, countersFields[i], s)
		}
		n[i] = x
	}
	return Counters{Requests: n[0], RateLimited: n[1], Overloaded: n[2], Throttled: n[3], WaitedMillis: n[4], Known: true}, nil
}
