package mockapi

// unitsPerToken scales bucket levels so refill is exact integer arithmetic:
// a bucket whose limit is L per minute gains L units per microsecond, and one
// token is worth 60,000,000 units (one minute in microseconds). Floating point
// would make "advance 1.2 s, one request of a 50 RPM bucket is back" depend on
// rounding; integers make it exact.
const unitsPerToken = 60_000_000

// maxRefillMicros bounds the elapsed time credited in one refill so the
// multiplication cannot overflow for any supported limit; a bucket is full
// again long before that anyway.
const maxRefillMicros = 3_600_000_000

// MaxLimit is the largest per-minute limit a bucket supports: its capacity in
// units must fit in an int64.
const MaxLimit = 1_000_000_000

// bucket is one continuously refilled token bucket, the algorithm Anthropic
// documents: capacity equals the per-minute limit and it refills at limit/60
// per second. The level may go negative when an end-of-request correction
// charges more than was reserved; the debt is repaid by refill like any
// other deficit.
type bucket struct {
	limit int64 // tokens per minute, and the capacity in tokens
	level int64 // units (tokens * unitsPerToken); may be negative
	last  int64 // microseconds of the last refill
}

// newBucket returns a full bucket for limit, as of now (microseconds).
func newBucket(limit, now int64) bucket {
	return bucket{limit: limit, level: limit * unitsPerToken, last: now}
}

// capacity is the bucket size in units.
func (b *bucket) capacity() int64 { return b.limit * unitsPerToken }

// refill credits the time elapsed since the last refill. A clock that goes
// backwards credits nothing and does not move last back.
func (b *bucket) refill(now int64) {
	if now <= b.last {
		return
	}
	elapsed := min(now-b.last, maxRefillMicros)
	b.level = min(b.level+elapsed*b.limit, b.capacity())
	b.last = now
}

// has reports whether tokens can be taken now.
func (b *bucket) has(tokens int64) bool { return b.level >= tokens*unitsPerToken }

// take removes tokens; the level may go negative.
func (b *bucket) take(tokens int64) { b.level -= tokens * unitsPerToken }

// give returns tokens, never above capacity.
func (b *bucket) give(tokens int64) { b.level = min(b.level+tokens*unitsPerToken, b.capacity()) }

// waitMicros is how long until tokens can be taken (0 if now).
func (b *bucket) waitMicros(tokens int64) int64 {
	deficit := tokens*unitsPerToken - b.level
	if deficit <= 0 {
		return 0
	}
	return ceilDiv(deficit, b.limit)
}

// untilFullMicros is how long until the bucket is full again.
func (b *bucket) untilFullMicros() int64 {
	return ceilDiv(b.capacity()-b.level, b.limit)
}

// remaining is the whole tokens available now, never negative.
func (b *bucket) remaining() int64 {
	if b.level <= 0 {
		return 0
	}
	return b.level / unitsPerToken
}

// ceilDiv divides non-negative a by positive b, rounding up.
func ceilDiv(a, b int64) int64 {
	if a <= 0 {
		return 0
	}
	return (a + b - 1) / b
}
