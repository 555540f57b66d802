package proxy

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/claudecap/claudecap/pkg/dimension"
	"github.com/claudecap/claudecap/pkg/ratelimit"
)

// Headers the proxy adds to answers it makes itself, so a worker (or a load
// test) can tell the proxy's refusals from the API's.
const (
	// HeaderOrigin is "proxy" on every response the proxy made itself.
	HeaderOrigin = "X-Claudecap-Origin"
	// HeaderLimited names the pool dimension that refused a request:
	// requests, input-tokens or output-tokens.
	HeaderLimited = "X-Claudecap-Limited"
)

// Retry headers of the proxy's 429s, as the API sends them.
const (
	headerRetryAfter   = "Retry-After"
	headerRetryAfterMs = "Retry-After-Ms"
)

// Anthropic error types the proxy answers with.
const (
	errInvalidRequest  = "invalid_request_error"
	errAuthentication  = "authentication_error"
	errNotFound        = "not_found_error"
	errRequestTooLarge = "request_too_large"
	errRateLimit       = "rate_limit_error"
	errAPI             = "api_error"
)

// Messages of answers made on more than one path.
const (
	msgBuildFailed = "claudecap proxy: building the upstream request failed"
	msgUnreachable = "claudecap proxy: the upstream API could not be reached"
)

// errorEnvelope is the top-level type of every error body.
const errorEnvelope = "error"

// answer is a response the proxy makes itself, in the API's error shape.
type answer struct {
	Status  int
	Type    string
	Message string
	// Header holds extra headers (retry-after, x-claudecap-limited, ...).
	Header map[string]string
}

// errorBody is the API's error body.
type errorBody struct {
	Type  string `json:"type"`
	Error struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"error"`
	RequestID string `json:"request_id"`
}

// newRequestID makes a request id for answers of the proxy itself; the
// req_ccap_ prefix tells them from the API's ids in logs.
func newRequestID() string { return "req_ccap_" + rand.Text() }

// render serializes a as the API would.
func (a answer) render(requestID string) []byte {
	var b errorBody
	b.Type, b.Error.Type, b.Error.Message, b.RequestID = errorEnvelope, a.Type, a.Message, requestID
	out, err := json.Marshal(b)
	if err != nil { // Strings always marshal; keep a valid body regardless.
		return []byte(`{"type":"error","error":{"type":"api_error","message":"claudecap proxy error"}}`)
	}
	return out
}

// write sends a to the client.
func (a answer) write(w http.ResponseWriter) {
	id := newRequestID()
	body := a.render(id)
	h := w.Header()
	for k, v := range a.Header {
		h.Set(k, v)
	}
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Request-Id", id)
	h.Set(HeaderOrigin, "proxy")
	w.WriteHeader(a.Status)
	_, _ = w.Write(body) // A client that left cannot be told.
}

// dimensionHeader is the x-claudecap-limited value of a dimension: its
// anthropic-ratelimit-<x> part.
func dimensionHeader(d dimension.Dimension) string { return d.Info().Header }

// dimensionLabel is the metric label of a dimension.
func dimensionLabel(d dimension.Dimension) string { return d.Info().Field }

// retryAfterSeconds is retry-after in whole seconds, rounded up, at least 1:
// a client retrying after the rounded-down value would be refused again.
func retryAfterSeconds(d time.Duration) int64 {
	return max(1, int64(math.Ceil(d.Seconds())))
}

// admissionAnswer turns an admission error into the answer for the client;
// ok is false when the client is gone and nothing should be written. Only a
// cost above the organization's own limit (an *overLimitError) is final; a
// cost above the pool's budget alone is retryable, since the budget comes
// back when the traffic that lowered it fades.
func admissionAnswer(err error, clientErr error) (a answer, ok bool) {
	var rl *ratelimit.RateLimitedError
	var over *overLimitError
	switch {
	case errors.As(err, &over):
		return overLimitAnswer(over), true
	case errors.As(err, &rl) && rl.TooLarge:
		return budgetDipAnswer(rl), true
	case errors.As(err, &rl):
		wait := rl.RetryAfter()
		return answer{
			Status: http.StatusTooManyRequests, Type: errRateLimit,
			Message: fmt.Sprintf("claudecap proxy: pool %s has no room in %s for this request; retry in %s",
				rl.Pool, rl.Binding.Words(), wait.Round(time.Millisecond)),
			Header: map[string]string{
				HeaderLimited:      dimensionHeader(rl.Binding),
				headerRetryAfter:   strconv.FormatInt(retryAfterSeconds(wait), 10),
				headerRetryAfterMs: strconv.FormatInt(max(1, wait.Milliseconds()), 10),
			},
		}, true
	case clientErr != nil:
		return answer{}, false
	case errors.Is(err, context.DeadlineExceeded):
		// The wait bound ran out inside a Redis call rather than between
		// tries: still "no room in time".
		return answer{
			Status: http.StatusTooManyRequests, Type: errRateLimit,
			Message: "claudecap proxy: no room in the pool within the wait bound",
			Header:  map[string]string{headerRetryAfter: "1"},
		}, true
	case errors.Is(err, ratelimit.ErrPoolNotConfigured):
		return answer{Status: http.StatusServiceUnavailable, Type: errAPI,
			Message: "claudecap proxy: " + err.Error() + " (the controller writes them when it reconciles the pool)"}, true
	case errors.Is(err, ratelimit.ErrUnavailable):
		return answer{Status: http.StatusServiceUnavailable, Type: errAPI,
			Message: "claudecap proxy: the shared rate limiter is unavailable, refusing calls to protect the organization's limits"}, true
	default:
		return answer{Status: http.StatusInternalServerError, Type: errAPI, Message: "claudecap proxy: admission failed: " + err.Error()}, true
	}
}

// budgetDipAnswer refuses a call whose cost is above the pool's budget but
// not known to be above the organization's limit: a 429 like any other, which
// SDKs retry after retry-after.
func budgetDipAnswer(rl *ratelimit.RateLimitedError) answer {
	return answer{
		Status: http.StatusTooManyRequests, Type: errRateLimit,
		Message: fmt.Sprintf("claudecap proxy: the budget of pool %s is below this request's %s for now "+
			"(it is lowered while others use the organization); retry in %s", rl.Pool, rl.Binding.Words(), dipRetryAfter),
		Header: map[string]string{
			HeaderLimited:      dimensionHeader(rl.Binding),
			headerRetryAfter:   strconv.FormatInt(retryAfterSeconds(dipRetryAfter), 10),
			headerRetryAfterMs: strconv.FormatInt(dipRetryAfter.Milliseconds(), 10),
		},
	}
}

// overLimitAnswer refuses a call the API would refuse too, for good: 400
// invalid_request_error, as the API answers a request it can never serve
// (413 is for bytes), and x-should-retry: false so SDKs do not retry it.
func overLimitAnswer(e *overLimitError) answer {
	what := e.Dimension.Words()
	if e.Dimension == dimension.InputTokens {
		what = "input tokens (the proxy's conservative estimate)"
	}
	return answer{
		Status: http.StatusBadRequest, Type: errInvalidRequest,
		Message: fmt.Sprintf("claudecap proxy: this request's %d %s exceed the organization's limit of %d %s per minute for the %s models; "+
			"it can never be admitted. Reduce the request (prompt, documents, max_tokens) to fit.", e.Cost, what, e.Limit, e.Dimension.Words(), e.Class),
		Header: map[string]string{HeaderLimited: dimensionHeader(e.Dimension), "X-Should-Retry": "false"},
	}
}
