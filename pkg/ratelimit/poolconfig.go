package ratelimit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claudecap/claudecap/pkg/dimension"
)

// OutputRule is how the API charges output tokens against the OTPM limit. The
// limiter mirrors it so that the pool never believes it has more than the API.
type OutputRule string

const (
	// OutputProduced charges output as it is generated; max_tokens does not count
	// (the API's rule since 2026). The default: it is also safe under the older rule.
	OutputProduced OutputRule = "produced"
	// OutputReserved takes max_tokens at the start of a call and gives back the
	// unused part at its end (the API's rule in 2025).
	OutputReserved OutputRule = "reserved"
)

// PoolConfig is what the controller tells the limiters about a pool.
type PoolConfig struct {
	// Limits are the effective per-minute limits every limiter enforces: the
	// org limit times headroom, less what others are seen using upstream.
	Limits Limits
	// Allocations maps workload name to its share of Limits (weighted max-min
	// fair). Limiters do not enforce it per call (unused share may be borrowed);
	// the LocalShare policy splits it across the workload's pods.
	Allocations map[string]Limits
	// Reserves maps workload name to what each call of that workload must
	// leave in every bucket for higher-priority workloads, in the buckets'
	// units (per-minute limit units): a call of workload w is admitted only if
	// level - Reserves[w] covers its cost in every dimension (output: level -
	// held - reserve), so a low-priority burst cannot drain the pool for the
	// calls of higher priority that arrive after it. A workload without an
	// entry (or a limiter without a workload) has no reserve. Reserves are
	// independent of Allocations. A reserve above the pool's limit is clamped
	// to the limit when written; a call larger than limit - reserve is admitted
	// only from a full bucket (a reserve never makes a call impossible). The
	// LocalShare fallback ignores reserves.
	Reserves map[string]Limits
	// OutputRule is the API's output accounting the pool mirrors; empty means
	// OutputProduced.
	OutputRule OutputRule
	// StartEmpty creates a missing bucket empty (refilling from now) instead of
	// full. The controller sets it once it has configured the pool before: a
	// bucket missing then means Redis lost its data, and the API may have no
	// room left. It changes nothing for a bucket that exists.
	StartEmpty bool
	// UpdatedAt is the Redis time of the last write (ignored by the writer).
	UpdatedAt time.Time
}

// WritePoolConfig replaces a pool's limits and allocations in one atomic step.
// The controller is its only caller.
func WritePoolConfig(ctx context.Context, rdb redis.UniversalClient, pool PoolKey, cfg PoolConfig) error {
	if err := pool.Validate(); err != nil {
		return fmt.Errorf("writing pool config: %w", err)
	}
	if err := cfg.Limits.Validate(); err != nil {
		return fmt.Errorf("writing pool config of %s: %w", pool, err)
	}
	rule := cfg.OutputRule
	if rule == "" {
		rule = OutputProduced
	}
	if rule != OutputProduced && rule != OutputReserved {
		return fmt.Errorf("writing pool config of %s: unknown output rule %q (want %q or %q)", pool, rule, OutputProduced, OutputReserved)
	}
	startEmpty := "0"
	if cfg.StartEmpty {
		startEmpty = "1"
	}
	reserves, err := encodeReserves(cfg.Limits, cfg.Reserves)
	if err != nil {
		return fmt.Errorf("writing pool config of %s: %w", pool, err)
	}
	args := []any{cfg.Limits.RequestsPerMinute, cfg.Limits.InputTokensPerMinute, cfg.Limits.OutputTokensPerMinute, string(rule), startEmpty, reserves}
	workloads := make([]string, 0, len(cfg.Allocations))
	for w := range cfg.Allocations {
		workloads = append(workloads, w)
	}
	sort.Strings(workloads)
	for _, w := range workloads {
		alloc := cfg.Allocations[w]
		if err := ValidateWorkload(w); err != nil {
			return fmt.Errorf("writing pool config of %s: %w", pool, err)
		}
		if err := alloc.Validate(); err != nil {
			return fmt.Errorf("writing pool config of %s: allocation of %s: %w", pool, w, err)
		}
		raw, err := json.Marshal(alloc)
		if err != nil {
			return fmt.Errorf("writing pool config of %s: encoding allocation of %s: %w", pool, w, err)
		}
		args = append(args, w, raw)
	}
	err = writePoolConfigScript.Run(ctx, rdb, []string{pool.limitsKey(), pool.allocKey(), pool.bucketKey()}, args...).Err()
	if err != nil {
		return unavailable("writing pool config", pool, err)
	}
	return nil
}

// encodeReserves is the reserve table stored after the bucket's ring (see
// reserve_of in scripts.go): "\n<workload> <requests> <input> <output>" per
// workload with a non-zero reserve, sorted by name, each amount clamped to
// the pool's limit.
func encodeReserves(limits Limits, reserves map[string]Limits) (string, error) {
	workloads := make([]string, 0, len(reserves))
	for w := range reserves {
		workloads = append(workloads, w)
	}
	sort.Strings(workloads)
	var b strings.Builder
	for _, w := range workloads {
		r := reserves[w]
		if err := ValidateWorkload(w); err != nil {
			return "", fmt.Errorf("reserve: %w", err)
		}
		if err := r.Validate(); err != nil {
			return "", fmt.Errorf("reserve of %s: %w", w, err)
		}
		reserve, limit := r.Capacity(), limits.Capacity()
		for d := range reserve {
			reserve[d] = min(reserve[d], limit[d])
		}
		if reserve == (Amounts{}) {
			continue
		}
		b.WriteString("\n" + w)
		for _, v := range reserve {
			fmt.Fprintf(&b, " %d", v)
		}
	}
	return b.String(), nil
}

// decodeReserves parses the reserve table; nil when it is empty.
func decodeReserves(table string) (map[string]Limits, error) {
	if table == "" {
		return nil, nil
	}
	if !strings.HasPrefix(table, "\n") {
		return nil, fmt.Errorf("reserve table %.40q does not start with a newline", table)
	}
	out := map[string]Limits{}
	for _, line := range strings.Split(table[1:], "\n") {
		f := strings.Split(line, " ")
		if len(f) != 1+dimension.Count || ValidateWorkload(f[0]) != nil {
			return nil, fmt.Errorf("reserve entry %.80q is not \"<workload> <requests> <input> <output>\"", line)
		}
		var v Amounts
		for i := range v {
			n, err := strconv.ParseInt(f[i+1], 10, 64)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("reserve entry %.80q: amount %q is not a non-negative integer", line, f[i+1])
			}
			v[i] = n
		}
		out[f[0]] = LimitsOf(v)
	}
	return out, nil
}

// ReadPoolConfig returns a pool's limits, allocations and reserves (as
// enforced: zero reserves left out, amounts clamped to the limits). It returns
// ErrPoolNotConfigured when no limits were written.
func ReadPoolConfig(ctx context.Context, rdb redis.UniversalClient, pool PoolKey) (PoolConfig, error) {
	if err := pool.Validate(); err != nil {
		return PoolConfig{}, fmt.Errorf("reading pool config: %w", err)
	}
	var limits *redis.SliceCmd
	var alloc *redis.MapStringStringCmd
	var reserves *redis.StringCmd
	_, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		limits = p.HMGet(ctx, pool.limitsKey(), limitFields...)
		alloc = p.HGetAll(ctx, pool.allocKey())
		reserves = p.GetRange(ctx, pool.bucketKey(), bucketStateSize, -1)
		return nil
	})
	if err != nil {
		return PoolConfig{}, unavailable("reading pool config", pool, err)
	}
	fields := make(map[string]string, len(limitFields))
	for i, v := range limits.Val() {
		if str, ok := v.(string); ok {
			fields[limitFields[i]] = str
		}
	}
	cfg, err := decodePoolConfig(fields, alloc.Val())
	if err != nil {
		return PoolConfig{}, fmt.Errorf("reading pool config of %s: %w", pool, err)
	}
	if cfg.Reserves, err = decodeReserves(reserves.Val()); err != nil {
		return PoolConfig{}, fmt.Errorf("reading pool config of %s: %w", pool, err)
	}
	return cfg, nil
}

// limitFields are the limits hash fields: each dimension's limit, then the others.
var limitFields = func() []string {
	fields := make([]string, 0, dimension.Count+2)
	for _, d := range dimension.All() {
		fields = append(fields, d.Info().LimitRedisField)
	}
	return append(fields, "updated_ms", "output_rule")
}()

// decodePoolConfig parses the limits and alloc hashes. An empty limits hash is
// ErrPoolNotConfigured; anything malformed is an error naming the field.
func decodePoolConfig(limits, alloc map[string]string) (PoolConfig, error) {
	if len(limits) == 0 {
		return PoolConfig{}, ErrPoolNotConfigured
	}
	var cfg PoolConfig
	var errs []error
	field := func(name string) int64 {
		v, err := strconv.ParseInt(limits[name], 10, 64)
		if err != nil || v < 0 {
			errs = append(errs, fmt.Errorf("limits field %s=%q is not a non-negative integer", name, limits[name]))
		}
		return v
	}
	var l Amounts
	for _, d := range dimension.All() {
		l[d] = field(d.Info().LimitRedisField)
	}
	cfg.Limits = LimitsOf(l)
	switch rule := OutputRule(limits["output_rule"]); rule {
	case "", OutputProduced:
		cfg.OutputRule = OutputProduced // Written before the rule existed: produced.
	case OutputReserved:
		cfg.OutputRule = rule
	default:
		errs = append(errs, fmt.Errorf("limits field output_rule=%q is not %q or %q", rule, OutputProduced, OutputReserved))
	}
	if ms, ok := limits["updated_ms"]; ok {
		v, err := strconv.ParseInt(ms, 10, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("limits field updated_ms=%q is not an integer", ms))
		}
		cfg.UpdatedAt = time.UnixMilli(v)
	}
	if len(alloc) > 0 {
		cfg.Allocations = make(map[string]Limits, len(alloc))
	}
	for w, raw := range alloc {
		var l Limits
		if err := json.Unmarshal([]byte(raw), &l); err != nil {
			errs = append(errs, fmt.Errorf("allocation of %s: %w", w, err))
			continue
		}
		if err := l.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("allocation of %s: %w", w, err))
			continue
		}
		cfg.Allocations[w] = l
	}
	return cfg, errors.Join(errs...)
}
