package ratelimit

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/claudecap/claudecap/pkg/dimension"
)

// usageRing is the number of one-second slots kept per workload, and so the
// longest window ReadUsage can answer.
const usageRing = 180

// MaxUsageWindow is the longest window ReadUsage accepts.
const MaxUsageWindow = usageRing * time.Second

// Reservation is capacity taken from a pool for one call. Settle it with the
// call's real usage, or Cancel it if the call was never sent.
type Reservation struct {
	// Pool is the pool the capacity was taken from.
	Pool PoolKey
	// Cost is what was taken.
	Cost Amounts
	// GrantedAt is the Redis time of admission (local time if Local).
	GrantedAt time.Time
	// LeaseExpiresAt is when an unsettled reservation stops being settleable
	// and stays charged in full. Redis checks it against its own clock, so no
	// per-reservation state is kept: a pod that dies leaves nothing behind.
	LeaseExpiresAt time.Time
	// Seq is the pool's change sequence number after this admission; the
	// order of Seq is the order in which Redis applied changes (0 if Local).
	Seq int64
	// Remaining is the bucket levels right after admission, floored (zero if
	// Local).
	Remaining Amounts
	// Local is set when the LocalShare policy admitted the call in memory.
	Local bool

	limiter *Limiter
	closed  atomic.Bool
	// nonce identifies the reservation to the settle script (see settledKey).
	nonce string
}

// Actual is the usage a call really had, from the response's usage block.
type Actual struct {
	// InputTokens counted against ITPM (input_tokens plus cache creation; cache
	// reads excluded for current models).
	InputTokens int64
	// OutputTokens is usage.output_tokens.
	OutputTokens int64
	// CacheReadInputTokens is usage.cache_read_input_tokens, recorded for the
	// controller but not charged.
	CacheReadInputTokens int64
	// Upstream, when set, is what the API's rate-limit headers of this call
	// reported; the settlement pulls the pool's levels down to it (never up).
	Upstream *Upstream
	// UpstreamAge is how long ago the call was sent, which bounds how long the
	// API has refilled since it reported Upstream.
	UpstreamAge time.Duration
}

// Settlement is the effect of settling or cancelling a reservation.
type Settlement struct {
	// Returned is what went back to the buckets per dimension: reserved minus
	// actual; negative values are overage charged as debt.
	Returned Amounts
	// At is the Redis time of the settlement (local time if Local).
	At time.Time
	// Seq is the pool's change sequence number after the settlement.
	Seq int64
	// Remaining is the bucket levels after the settlement, floored.
	Remaining Amounts
}

// Settle replaces the reservation's estimate with the call's actual usage: the
// unused part goes back, an overage is charged as debt (buckets may go
// negative), and the usage is recorded for the workload. It applies at most
// once, even if it fails (a lost refund only over-counts); after the lease it
// changes nothing and returns ErrLeaseExpired.
func (r *Reservation) Settle(ctx context.Context, used Actual) (Settlement, error) {
	if used.InputTokens < 0 || used.OutputTokens < 0 || used.CacheReadInputTokens < 0 {
		return Settlement{}, fmt.Errorf("settling on pool %s: negative usage %+v", r.Pool, used)
	}
	actual := Amounts{dimension.Requests: r.Cost[dimension.Requests], dimension.InputTokens: used.InputTokens, dimension.OutputTokens: used.OutputTokens}
	return r.close(ctx, actual, used.CacheReadInputTokens, apiState(used), true)
}

// Cancel gives the whole reservation back, the request included. Use it only
// when the call never reached the API (e.g. the connection could not be made);
// a call that reached it, even one that failed, should be settled.
func (r *Reservation) Cancel(ctx context.Context) (Settlement, error) {
	return r.close(ctx, Amounts{}, 0, unknownAPIState, false)
}

// upstreamState is the upstream part of a settlement's arguments: remaining
// per dimension (-1 unknown), limits (0 unknown), µs since the call was sent.
type upstreamState struct {
	remaining dimension.Amounts
	limit     dimension.Amounts
	ageUS     int64
}

var unknownAPIState = upstreamState{remaining: dimension.Amounts{-1, -1, -1}}

// apiState extracts what the settlement script needs from used.Upstream.
func apiState(used Actual) upstreamState {
	st := unknownAPIState
	if used.Upstream == nil {
		return st
	}
	for d, b := range used.Upstream.Buckets {
		if b.Known && b.Remaining >= 0 {
			st.remaining[d], st.limit[d] = b.Remaining, max(b.Limit, 0)
		}
	}
	st.ageUS = max(used.UpstreamAge.Microseconds(), 0)
	return st
}

func (r *Reservation) close(ctx context.Context, actual Amounts, cacheRead int64, api upstreamState, record bool) (Settlement, error) {
	if !r.closed.CompareAndSwap(false, true) {
		return Settlement{}, fmt.Errorf("settling on pool %s: %w", r.Pool, ErrAlreadySettled)
	}
	returned := r.Cost.Sub(actual)
	if r.Local {
		now := time.Now()
		if now.After(r.LeaseExpiresAt) {
			return Settlement{}, fmt.Errorf("settling on pool %s: %w", r.Pool, ErrLeaseExpired)
		}
		r.limiter.local.give(returned, now)
		return Settlement{Returned: returned, At: now}, nil
	}
	// No retry after a failure: the first attempt may have been applied, and a
	// lost refund only over-counts.
	return r.settleInRedis(ctx, actual, cacheRead, api, record)
}

func (r *Reservation) settleInRedis(ctx context.Context, actual Amounts, cacheRead int64, api upstreamState, record bool) (Settlement, error) {
	l, pool := r.limiter, r.Pool
	workload := ""
	if record {
		workload = l.opts.Workload
	}
	keys := append(l.settleKeys[:len(l.settleKeys):len(l.settleKeys)], pool.settledKey(r.nonce))
	v, err := settleScript.Run(ctx, l.rdb, keys,
		r.GrantedAt.UnixMicro(), l.leaseUS,
		r.Cost[dimension.Requests], r.Cost[dimension.InputTokens], r.Cost[dimension.OutputTokens],
		actual[dimension.Requests], actual[dimension.InputTokens], actual[dimension.OutputTokens], cacheRead,
		workload, l.opts.Pod, usageRing,
		api.remaining[0], api.remaining[1], api.remaining[2], api.limit[0], api.limit[1], api.limit[2], api.ageUS,
	).Result()
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return Settlement{}, fmt.Errorf("settling on pool %s: %w", pool, ctxErr)
		}
		return Settlement{}, unavailable("settling", pool, err)
	}
	rep, err := parseReply(v)
	if err != nil {
		return Settlement{}, unavailable("settling", pool, err)
	}
	switch rep.status {
	case statusApplied:
		return Settlement{Returned: r.Cost.Sub(actual), At: rep.at, Seq: rep.seq, Remaining: rep.levels}, nil
	case statusExpired:
		return Settlement{At: rep.at}, fmt.Errorf("settling on pool %s: %w", pool, ErrLeaseExpired)
	case statusSettled:
		// A retry of a settlement whose first run applied: nothing more to do.
		return Settlement{Returned: r.Cost.Sub(actual), At: rep.at}, nil
	case statusNotConfigured:
		return Settlement{At: rep.at}, fmt.Errorf("settling on pool %s: %w", pool, ErrPoolNotConfigured)
	default:
		return Settlement{}, unavailable("settling", pool, fmt.Errorf("unknown script status %d", rep.status))
	}
}
