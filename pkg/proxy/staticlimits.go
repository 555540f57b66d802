package proxy

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/claudecap/claudecap/pkg/dimension"
	"github.com/claudecap/claudecap/pkg/ratelimit"
)

// Retrying a call whose cost is above the pool's budget.
const (
	// dipRetryInterval is how often a waiting call retries admission while
	// the pool's budget is below its cost. The budget only changes when the
	// controller rewrites it (every poll, 2 s by default), so retrying
	// faster would only load Redis.
	dipRetryInterval = 500 * time.Millisecond
	// dipRetryAfter is the retry-after of a call refused for such a dip: a
	// couple of the controller's polls, by which time the budget has
	// usually come back as the other traffic it saw fades.
	dipRetryAfter = 5 * time.Second
)

// staticLimits keeps, per class, the organization's own per-minute limits as
// the API last reported them in its anthropic-ratelimit-<x>-limit headers
// (zero while unknown). The pool's budget is lower and moves: the controller
// takes headroom and what others use of the organization off it. So a cost
// above the budget may fit later, while a cost above these limits never will,
// by the proxy or by the API. The zero value is ready to use.
type staticLimits struct {
	mu      sync.Mutex
	byClass map[string]ratelimit.Amounts
}

// observe keeps the limits a response of class reported in its
// anthropic-ratelimit-<dimension>-limit headers; h may be nil. Dimensions it
// does not report keep their last value. anthropic-ratelimit-tokens-limit is
// left out: it names whichever token limit is most restrictive, not one
// dimension.
func (s *staticLimits) observe(class string, h http.Header) {
	var seen ratelimit.Amounts
	reported := false
	for _, d := range dimension.All() {
		if v, ok := d.ParseLimit(h); ok {
			seen[d], reported = v, true
		}
	}
	if !reported {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byClass == nil {
		s.byClass = make(map[string]ratelimit.Amounts)
	}
	known := s.byClass[class]
	for d, v := range seen {
		if v > 0 {
			known[d] = v
		}
	}
	s.byClass[class] = known
}

// exceeded returns the first dimension in which cost is above the class's
// known limit; ok is false when it fits every limit known.
func (s *staticLimits) exceeded(class string, cost ratelimit.Amounts) (d dimension.Dimension, limit int64, ok bool) {
	s.mu.Lock()
	known := s.byClass[class]
	s.mu.Unlock()
	for _, dim := range dimension.All() {
		if l := known[dim]; l > 0 && cost[dim] > l {
			return dim, l, true
		}
	}
	return 0, 0, false
}

// judge turns a refusal for a cost above the pool's budget into an
// overLimitError when the cost is also above the organization's limit; any
// other error comes back as it is.
func (s *staticLimits) judge(class string, cost ratelimit.Amounts, err error) error {
	var rl *ratelimit.RateLimitedError
	if !errors.As(err, &rl) || !rl.TooLarge {
		return err
	}
	if d, limit, over := s.exceeded(class, cost); over {
		return &overLimitError{Class: class, Dimension: d, Cost: cost[d], Limit: limit, refusal: err}
	}
	return err
}

// overLimitError is a refusal no wait can fix: the call's cost is above the
// organization's own limit, so the API would refuse it too.
type overLimitError struct {
	Class     string
	Dimension dimension.Dimension
	Cost      int64
	Limit     int64
	refusal   error
}

func (e *overLimitError) Error() string {
	return fmt.Sprintf("cost of %d %s exceeds the organization's limit of %d per minute for class %s",
		e.Cost, e.Dimension.Words(), e.Limit, e.Class)
}

func (e *overLimitError) Unwrap() error { return e.refusal }

// isBudgetDip reports a refusal for a cost above the pool's budget that is
// not known to be above the organization's limit: waiting may fix it.
func isBudgetDip(err error) bool {
	var rl *ratelimit.RateLimitedError
	var over *overLimitError
	return errors.As(err, &rl) && rl.TooLarge && !errors.As(err, &over)
}

// reserve takes c.cost from the pool: at once, or with waiting on within
// MaxWait. The limiter's own wait covers a pool that is only full; a budget
// dipped below the cost is retried here every dipRetryInterval or so.
func (p *Proxy) reserve(ctx context.Context, c *call) (Reservation, error) {
	if p.cfg.MaxWait <= 0 {
		res, err := p.limiter.TryReserve(ctx, c.class, c.cost)
		return res, p.static.judge(c.class, c.cost, err)
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.MaxWait)
	defer cancel()
	for {
		res, err := p.limiter.Wait(ctx, c.class, c.cost)
		err = p.static.judge(c.class, c.cost, err)
		if !isBudgetDip(err) || !sleep(ctx, jittered(dipRetryInterval)) {
			return res, err
		}
	}
}

// jittered spreads d by ±20% so calls refused together do not retry together.
func jittered(d time.Duration) time.Duration {
	return d - d/5 + rand.N(2*d/5+1) // #nosec G404 -- jitter, not a secret.
}

// sleep waits d, or less if ctx ends first (then it returns false).
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
