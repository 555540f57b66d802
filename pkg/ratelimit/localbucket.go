package ratelimit

import (
	"time"

	"github.com/claudecap/claudecap/pkg/dimension"
)

// localBucket is the in-memory three-dimension bucket used by the LocalShare
// policy. It follows the same rule as the Lua script (capacity = limit, refill
// limit/60 per second, all or nothing, debt allowed) on the local clock, which
// is acceptable here because only this process reads it.
type localBucket struct {
	capacity dimension.Rates
	level    dimension.Rates
	at       time.Time
}

func newEmptyBucket(share Limits, now time.Time) *localBucket {
	b := &localBucket{at: now}
	for d, limit := range share.Capacity() {
		b.capacity[d] = float64(limit)
	}
	return b
}

func (b *localBucket) refill(now time.Time) {
	dt := now.Sub(b.at).Seconds()
	if dt <= 0 {
		return
	}
	b.at = now
	for d := range b.level {
		b.level[d] = min(b.capacity[d], b.level[d]+dt*b.capacity[d]/refillPeriod.Seconds())
	}
}

// take removes cost from all dimensions if each has room. Otherwise it reports
// per dimension the wait until it would, or that the cost exceeds capacity.
func (b *localBucket) take(cost Amounts, now time.Time) (taken bool, waits [dimension.Count]time.Duration, tooLarge [dimension.Count]bool) {
	b.refill(now)
	var need dimension.Rates
	for d, v := range cost {
		need[d] = float64(v)
	}
	fits, large := true, false
	for d := range need {
		if need[d] > b.capacity[d] {
			tooLarge[d], large = true, true
		}
		if b.level[d] < need[d] {
			fits = false
		}
	}
	if large {
		return false, waits, tooLarge
	}
	if !fits {
		for d := range need {
			if b.level[d] < need[d] {
				waits[d] = durationFromSeconds((need[d] - b.level[d]) * refillPeriod.Seconds() / b.capacity[d])
			}
		}
		return false, waits, tooLarge
	}
	for d := range need {
		b.level[d] -= need[d]
	}
	return true, waits, tooLarge
}

// give adds back (or, when negative, charges) amounts, never above capacity.
func (b *localBucket) give(back Amounts, now time.Time) {
	b.refill(now)
	for d, v := range back {
		b.level[d] = min(b.capacity[d], b.level[d]+float64(v))
	}
}
