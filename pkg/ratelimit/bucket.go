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

// bucketStateSize is the packed bucket: eight little-endian float64 values, as
// written by Lua's struct.pack('<dddddddd', ...).
const bucketStateSize = 8 * 8

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
	if len(raw) != bucketStateSize {
		return BucketState{}, fmt.Errorf("bucket state is %d bytes, want %d", len(raw), bucketStateSize)
	}
	var f [8]float64
	for i := range f {
		f[i] = math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:]))
	}
	st := BucketState{
		Capacity: [3]float64{f[0], f[1], f[2]},
		Level:    [3]float64{f[3], f[4], f[5]},
		Seq:      int64(f[7]),
	}
	if f[6] > 0 {
		st.UpdatedAt = time.UnixMicro(int64(f[6]))
	}
	return st, nil
}
