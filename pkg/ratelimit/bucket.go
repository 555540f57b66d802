package ratelimit

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/redis/go-redis/v9"
)

// The packed bucket (see bucketPrelude in scripts.go): a header of eleven
// little-endian float64 values, as written by Lua's struct.pack, then the ring
// of output holds, holdSlots pairs of (lease period, output held), then the
// reserve table (text, see encodeReserves; empty without reserves). Buckets
// written before holds existed are the first eight values alone.
const (
	legacyBucketSize = 8 * 8
	bucketHeaderSize = 11 * 8
	holdSlots        = 16
	bucketStateSize  = bucketHeaderSize + holdSlots*16
)

// BucketState is a pool's bucket as last written, before any refill since.
type BucketState struct {
	// Capacity per dimension (the limits in force).
	Capacity [3]float64
	// Level per dimension at UpdatedAt; negative means debt.
	Level [3]float64
	// UpdatedAt is the Redis time of the last admission or settlement (zero if
	// the bucket was never used: it is full).
	UpdatedAt time.Time
	// Seq counts admissions and settlements applied to the pool.
	Seq int64
	// Held is the output held by unsettled calls (their max_tokens), outside
	// the output level: what admission may take is Level[2] - Held.
	Held float64
	// OutputRule is the API's output accounting the bucket mirrors.
	OutputRule OutputRule
}

// ReadBucket returns a pool's raw bucket state, for status displays and tests.
// It returns ErrPoolNotConfigured when the pool has no bucket.
func ReadBucket(ctx context.Context, rdb redis.UniversalClient, pool PoolKey) (BucketState, error) {
	if err := pool.Validate(); err != nil {
		return BucketState{}, fmt.Errorf("reading bucket: %w", err)
	}
	raw, err := rdb.Get(ctx, pool.bucketKey()).Bytes()
	if errors.Is(err, redis.Nil) {
		return BucketState{}, fmt.Errorf("reading bucket of %s: %w", pool, ErrPoolNotConfigured)
	}
	if err != nil {
		return BucketState{}, unavailable("reading bucket", pool, err)
	}
	st, err := decodeBucket(raw)
	if err != nil {
		return BucketState{}, fmt.Errorf("reading bucket of %s: %w", pool, err)
	}
	return st, nil
}

func decodeBucket(raw []byte) (BucketState, error) {
	if len(raw) < bucketStateSize && len(raw) != legacyBucketSize {
		return BucketState{}, fmt.Errorf("bucket state is %d bytes, want %d", len(raw), bucketStateSize)
	}
	var f [11]float64
	for i := range min(len(raw), bucketHeaderSize) / 8 {
		f[i] = math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:]))
	}
	st := BucketState{
		Capacity:   [3]float64{f[0], f[1], f[2]},
		Level:      [3]float64{f[3], f[4], f[5]},
		Seq:        int64(f[7]),
		Held:       f[8],
		OutputRule: OutputProduced,
	}
	if f[9] == 1 {
		st.OutputRule = OutputReserved
	}
	if f[6] > 0 {
		st.UpdatedAt = time.UnixMicro(int64(f[6]))
	}
	return st, nil
}
