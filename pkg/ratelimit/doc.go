// Package ratelimit is the shared, Redis-backed limiter every Claude API call of
// a pool goes through, so that all pods together stay under the organization's
// per-minute limits at request time.
//
// A pool is one organization and one model class ([PoolKey]); Anthropic limits
// requests, input tokens and output tokens per minute per pool with
// continuously refilled buckets, and this package mirrors those three buckets in
// Redis. One Lua script takes from all three atomically (all or nothing) using
// Redis TIME as the only clock, so pods with skewed clocks still agree.
//
// A call is Reserve -> Settle: [Limiter.TryReserve] or [Limiter.Wait] takes a
// conservative estimate before the call (output = max_tokens) and
// [Reservation.Settle] corrects it with the real usage afterwards, refunding the
// unused output and charging any overage as debt. A reservation that is never
// settled within its lease (the pod died) simply stays charged in full, which
// over-counts and so can never push the organization past its limits. The
// lease is checked against Redis time at settlement, so nothing is stored per
// reservation and a dead pod leaves nothing to clean up.
//
// A workload may have to leave a reserve in the pool for higher-priority
// workloads (PoolConfig.Reserves): the same admission script reads it from the
// bucket and admits the workload's call only if every level less the reserve
// covers the cost, so a batch burst cannot starve the interactive calls after it.
//
// When Redis is unavailable the default policy fails closed (ErrUnavailable);
// the LocalShare policy enforces this pod's share of the limits in memory
// (without reserves).
//
// The package also owns the rest of the pool's Redis schema (limits written by
// the controller, per-workload usage, the last upstream rate-limit headers)
// behind typed readers and writers; no other package spells a key. The schema is
// documented in docs/redis-keys.md.
package ratelimit
