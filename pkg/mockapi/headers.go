package mockapi

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/claudecap/claudecap/pkg/dimension"
)

// HeaderMock is set to "1" on every response of the mock, whatever its
// status or path, so that a client (the load tester's real-API guard) can
// tell the mock, or a claudecap proxy in front of it, which passes upstream
// headers through, from Anthropic's API or a gateway to it.
const HeaderMock = "X-Claudecap-Mock"

// Header names in canonical form, assigned to the header map directly to
// skip canonicalization on every response.
const (
	hdrRequestID    = "Request-Id"
	hdrOrgID        = "Anthropic-Organization-Id"
	hdrRetryAfter   = "Retry-After"
	hdrContentType  = "Content-Type"
	hdrCacheControl = "Cache-Control"
	hdrShouldRetry  = "X-Should-Retry"
)

// Constant header values shared by every response (never mutated).
var (
	valJSON        = []string{"application/json"}
	valEventStream = []string{"text/event-stream; charset=utf-8"}
	valNoCache     = []string{"no-cache"}
	valTrue        = []string{"true"}
	valMock        = []string{"1"}
)

// roundThousand rounds a token count to the nearest thousand, as the API
// does for the token -remaining headers.
func roundThousand(n int64) int64 { return (n + 500) / 1000 * 1000 }

// resetSecond is when a bucket that is full after fullMicros will be full,
// as a unix second rounded up so the header never claims fullness early.
func resetSecond(now, fullMicros int64) int64 { return ceilDiv(now+fullMicros, 1_000_000) }

// rateLimitHeaders computes the anthropic-ratelimit-* header values for a
// snapshot: the requests, input-tokens and output-tokens triples for every
// limited dimension, and the tokens triple, which combines input and output
// (limit and remaining are the sums; reset is when the combined deficit is
// refilled at the combined rate) or repeats the only token limit in effect.
type rateLimitHeaders struct {
	set [4]struct {
		on                     bool
		limit, remaining, rset int64 // rset is a unix second
	}
}

const (
	hsRequests = iota
	hsInput
	hsOutput
	hsTokens
)

func computeRateLimitHeaders(s *limitState) rateLimitHeaders {
	var h rateLimitHeaders
	put := func(i int, d dimState, round bool) {
		if d.limit == 0 {
			return
		}
		rem := d.remaining
		if round {
			rem = roundThousand(rem)
		}
		h.set[i].on, h.set[i].limit, h.set[i].remaining, h.set[i].rset = true, d.limit, rem, resetSecond(s.now, d.fullMicros)
	}
	put(hsRequests, s.req, false)
	put(hsInput, s.input, true)
	put(hsOutput, s.output, true)
	switch {
	case s.input.limit > 0 && s.output.limit > 0:
		limit := s.input.limit + s.output.limit
		full := (s.input.fullMicros*s.input.limit + s.output.fullMicros*s.output.limit) / limit
		put(hsTokens, dimState{limit: limit, remaining: s.input.remaining + s.output.remaining, fullMicros: full}, true)
	case s.input.limit > 0:
		put(hsTokens, s.input, true)
	case s.output.limit > 0:
		put(hsTokens, s.output, true)
	}
	return h
}

// headerNames are the anthropic-ratelimit-* names of each rateLimitHeaders set,
// from the dimension table.
var headerNames = [4]dimension.HeaderNames{
	hsRequests: dimension.Requests.Headers(),
	hsInput:    dimension.InputTokens.Headers(),
	hsOutput:   dimension.OutputTokens.Headers(),
	hsTokens:   dimension.CombinedTokensHeaders(),
}

// writeRateLimitHeaders sets the headers of s on h with one allocation for
// all value slices.
func writeRateLimitHeaders(h http.Header, s *limitState, times *timeCache) {
	rl := computeRateLimitHeaders(s)
	vals := make([]string, 0, 12)
	for i := range rl.set {
		e := &rl.set[i]
		if !e.on {
			continue
		}
		n := len(vals)
		vals = append(vals, strconv.FormatInt(e.limit, 10), strconv.FormatInt(e.remaining, 10), times.format(e.rset))
		h[headerNames[i].Limit] = vals[n : n+1 : n+1]
		h[headerNames[i].Remaining] = vals[n+1 : n+2 : n+2]
		h[headerNames[i].Reset] = vals[n+2 : n+3 : n+3]
	}
}

// timeCache memoizes RFC 3339 renderings of recent unix seconds; the reset
// headers of nearly all responses fall in the same few seconds.
type timeCache struct {
	slots [64]atomic.Pointer[formattedSecond]
}

type formattedSecond struct {
	sec int64
	s   string
}

// format renders a unix second as RFC 3339 UTC ("2025-08-21T12:40:59Z").
func (c *timeCache) format(sec int64) string {
	slot := &c.slots[sec&(int64(len(c.slots))-1)]
	if f := slot.Load(); f != nil && f.sec == sec {
		return f.s
	}
	f := &formattedSecond{sec: sec, s: time.Unix(sec, 0).UTC().Format(time.RFC3339)}
	slot.Store(f)
	return f.s
}
