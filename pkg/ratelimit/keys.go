package ratelimit

import (
	"fmt"
	"regexp"
)

// PoolKey names a budget pool: the organization's API key scope and the model
// class whose limits are shared. Every Redis key of a pool carries the same hash
// tag, so all of them live in one Redis Cluster slot and a script may touch them
// together.
type PoolKey struct {
	// Organization is the organization the limits belong to (e.g. "acme-prod").
	Organization string
	// Class is the model class the limits apply to (e.g. "sonnet").
	Class string
}

// Names are restricted so that a key can never escape its hash tag or collide
// with another pool's keys (":" separates the tag's parts, braces delimit it).
var (
	poolNamePattern     = regexp.MustCompile(`^[A-Za-z0-9._-]{1,320}$`)
	workloadNamePattern = regexp.MustCompile(`^[A-Za-z0-9._/-]{1,253}$`)
)

// Validate reports whether the key can be used to build Redis keys.
func (p PoolKey) Validate() error {
	if !poolNamePattern.MatchString(p.Organization) {
		return fmt.Errorf("invalid pool organization %q: want 1-320 characters of A-Z a-z 0-9 . _ -", p.Organization)
	}
	if !poolNamePattern.MatchString(p.Class) {
		return fmt.Errorf("invalid pool class %q: want 1-320 characters of A-Z a-z 0-9 . _ -", p.Class)
	}
	return nil
}

// String is the pool's hash tag, which is also how it appears in messages.
func (p PoolKey) String() string {
	return "{ccap:" + p.Organization + ":" + p.Class + "}"
}

// ValidateWorkload reports whether a workload name (typically
// "<namespace>/<name>" of a ClaudeCapacity) can be used in Redis keys.
func ValidateWorkload(workload string) error {
	if !workloadNamePattern.MatchString(workload) {
		return fmt.Errorf("invalid workload name %q: want 1-253 characters of A-Z a-z 0-9 . _ / -", workload)
	}
	return nil
}

// The functions below are the only place a Redis key is spelled. Keep them in
// sync with docs/redis-keys.md.

// bucketKey holds the packed bucket: a copy of the capacities, the three
// levels, the last change time and the change sequence number.
func (p PoolKey) bucketKey() string { return p.String() + ":bucket" }

// limitsKey holds the effective per-minute limits the controller wrote, in
// readable form.
func (p PoolKey) limitsKey() string { return p.String() + ":limits" }

// allocKey maps workload name to its allocation (JSON) within the pool.
func (p PoolKey) allocKey() string { return p.String() + ":alloc" }

// workloadsKey is the sorted set of workloads that reported usage, scored by
// the last report (Redis seconds).
func (p PoolKey) workloadsKey() string { return p.String() + ":workloads" }

// usageKey is the per-second usage ring of one workload.
func (p PoolKey) usageKey(workload string) string { return p.String() + ":usage:" + workload }

// podsKey is the sorted set of a workload's pods, scored by last report.
func (p PoolKey) podsKey(workload string) string { return p.String() + ":pods:" + workload }

// settledKey marks one reservation as settled, so a settlement sent twice
// (a client retry after a lost reply) applies once. It expires after two
// minutes; the nonce is the reservation's own random identifier.
func (p PoolKey) settledKey(nonce string) string { return p.String() + ":settled:" + nonce }

// upstreamKey holds the last anthropic-ratelimit-* values seen upstream.
func (p PoolKey) upstreamKey() string { return p.String() + ":upstream" }
