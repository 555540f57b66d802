package mockapi

import (
	"sync"

	"github.com/claudecap/claudecap/pkg/dimension"
)

// countTokensLimiter is the separate requests-per-minute bucket of
// /v1/messages/count_tokens, shared by every model.
type countTokensLimiter struct {
	mu    sync.Mutex
	limit int64
	b     bucket
}

func newCountTokensLimiter(limit, now int64) *countTokensLimiter {
	return &countTokensLimiter{limit: limit, b: newBucket(limit, now)}
}

// admit takes one request if the bucket has it.
func (l *countTokensLimiter) admit(now int64) verdict {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.refill(now)
	v := verdict{admitted: l.b.has(1)}
	if v.admitted {
		l.b.take(1)
	} else {
		v.refusedBy = DimensionOf(dimension.Requests)
		v.retryAfter = max(1, ceilDiv(l.b.waitMicros(1), 1_000_000))
	}
	v.state = limitState{now: now, req: dimState{limit: l.limit, remaining: l.b.remaining(), fullMicros: l.b.untilFullMicros()}}
	return v
}

func (l *countTokensLimiter) reset(now int64) {
	l.mu.Lock()
	l.b = newBucket(l.limit, now)
	l.mu.Unlock()
}
