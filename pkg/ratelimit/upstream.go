package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claudecap/claudecap/pkg/dimension"
)

// UpstreamTTL is how long the last upstream observation is kept without a
// newer one; older values say nothing about the org's current headroom.
const UpstreamTTL = 10 * time.Minute

// UpstreamBucket is one anthropic-ratelimit-<name>-* triple.
type UpstreamBucket struct {
	// Known is set when the response carried this bucket's headers.
	Known bool
	// Limit is -limit: the org's limit per minute.
	Limit int64
	// Remaining is -remaining (tokens rounded to the nearest thousand).
	Remaining int64
	// Reset is -reset: when the bucket is full again.
	Reset time.Time
}

// Upstream is the last rate-limit state the API reported for a pool. Others
// using the same organization shrink Remaining, which our own usage does not
// show; the controller subtracts it from the budget.
type Upstream struct {
	// Buckets holds anthropic-ratelimit-<dimension>-* per dimension, indexed by
	// dimension.Dimension.
	Buckets [dimension.Count]UpstreamBucket
	// Tokens is anthropic-ratelimit-tokens-* (the most restrictive token limit).
	Tokens UpstreamBucket
	// Status is the HTTP status of the response the values came from.
	Status int
	// RetryAfter is the retry-after header (429 and 529 responses).
	RetryAfter time.Duration
	// ObservedAt is the Redis time the observation was written (set by
	// WriteUpstream, ignored on input).
	ObservedAt time.Time
}

// Known reports whether any bucket was reported.
func (u *Upstream) Known() bool {
	for _, b := range u.Buckets {
		if b.Known {
			return true
		}
	}
	return u.Tokens.Known
}

// upstreamBucket is one bucket of Upstream with its Redis field prefix, so that
// encoding and decoding walk the same list.
type upstreamBucket struct {
	field string
	get   func(*Upstream) *UpstreamBucket
}

// upstreamBuckets lists every bucket of Upstream: one per dimension, named by the
// dimension table, then the combined tokens bucket.
var upstreamBuckets = func() []upstreamBucket {
	out := make([]upstreamBucket, 0, dimension.Count+1)
	for _, d := range dimension.All() {
		out = append(out, upstreamBucket{d.Info().Field, func(u *Upstream) *UpstreamBucket { return &u.Buckets[d] }})
	}
	return append(out, upstreamBucket{dimension.CombinedTokensHeader, func(u *Upstream) *UpstreamBucket { return &u.Tokens }})
}()

// ParseUpstreamHeaders extracts the anthropic-ratelimit-* and retry-after
// headers of a response. Buckets whose headers are absent stay unknown; a
// malformed value is reported (with the header name, never other headers) and
// leaves its bucket unknown, the rest is still returned.
func ParseUpstreamHeaders(h http.Header, status int) (Upstream, error) {
	u := Upstream{Status: status}
	parsed, err := dimension.ParseHeaders(h)
	errs := []error{err}
	for d, v := range parsed.ByDimension {
		u.Buckets[d] = bucketOf(v)
	}
	u.Tokens = bucketOf(parsed.CombinedTokens)
	if ra := h.Get("Retry-After"); ra != "" {
		secs, err := strconv.ParseFloat(ra, 64)
		if err != nil || secs < 0 || math.IsNaN(secs) || math.IsInf(secs, 0) {
			errs = append(errs, fmt.Errorf("header retry-after: %q is not a non-negative number of seconds", ra))
		} else {
			u.RetryAfter = durationFromSeconds(secs)
		}
	}
	return u, errors.Join(errs...)
}

// bucketOf keeps a header triple only when all three values were readable.
func bucketOf(v dimension.HeaderValues) UpstreamBucket {
	if !v.Complete() {
		return UpstreamBucket{}
	}
	return UpstreamBucket{Known: true, Limit: v.Limit, Remaining: v.Remaining, Reset: v.Reset}
}

// WriteUpstream replaces the pool's last upstream observation; it expires
// after UpstreamTTL. The proxy calls it for responses that carry headers.
func WriteUpstream(ctx context.Context, rdb redis.UniversalClient, pool PoolKey, u Upstream) error {
	if err := pool.Validate(); err != nil {
		return fmt.Errorf("writing upstream state: %w", err)
	}
	args := []any{UpstreamTTL.Milliseconds(), "status", u.Status, "retry_after_ms", u.RetryAfter.Milliseconds()}
	for _, b := range upstreamBuckets {
		bucket := b.get(&u)
		if !bucket.Known {
			continue
		}
		args = append(args,
			b.field+"_limit", bucket.Limit,
			b.field+"_remaining", bucket.Remaining,
			b.field+"_reset", bucket.Reset.Unix())
	}
	if err := writeUpstreamScript.Run(ctx, rdb, []string{pool.upstreamKey()}, args...).Err(); err != nil {
		return unavailable("writing upstream state", pool, err)
	}
	return nil
}

// ReadUpstream returns the pool's last upstream observation; ok is false when
// there is none (never written, or older than UpstreamTTL).
func ReadUpstream(ctx context.Context, rdb redis.UniversalClient, pool PoolKey) (u Upstream, ok bool, err error) {
	if err := pool.Validate(); err != nil {
		return Upstream{}, false, fmt.Errorf("reading upstream state: %w", err)
	}
	fields, err := rdb.HGetAll(ctx, pool.upstreamKey()).Result()
	if err != nil {
		return Upstream{}, false, unavailable("reading upstream state", pool, err)
	}
	if len(fields) == 0 {
		return Upstream{}, false, nil
	}
	u, err = decodeUpstream(fields)
	if err != nil {
		return Upstream{}, false, fmt.Errorf("reading upstream state of %s: %w", pool, err)
	}
	return u, true, nil
}

func decodeUpstream(fields map[string]string) (Upstream, error) {
	var u Upstream
	var errs []error
	num := func(name string) int64 {
		v, err := strconv.ParseInt(fields[name], 10, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("field %s=%q is not an integer", name, fields[name]))
		}
		return v
	}
	u.ObservedAt = time.UnixMilli(num("at_ms"))
	u.Status = int(num("status"))
	u.RetryAfter = time.Duration(num("retry_after_ms")) * time.Millisecond
	for _, b := range upstreamBuckets {
		if _, ok := fields[b.field+"_limit"]; !ok {
			continue
		}
		*b.get(&u) = UpstreamBucket{
			Known:     true,
			Limit:     num(b.field + "_limit"),
			Remaining: num(b.field + "_remaining"),
			Reset:     time.Unix(num(b.field+"_reset"), 0).UTC(),
		}
	}
	return u, errors.Join(errs...)
}
