package loadtest

import (
	"strconv"
	"time"
)

// Class is what became of one HTTP attempt or one logical request. The
// classes separate the causes an operator acts on differently: a 429 means
// the organization's quota is exhausted (scale down or buy a tier), a 529
// means Anthropic is overloaded globally (back off, nothing to resize), other
// 5xx and transport errors point at the path in between.
type Class string

const (
	// ClassOK is a 2xx response whose body (or stream) completed.
	ClassOK Class = "ok"
	// ClassRateLimited is HTTP 429, or a rate_limit_error stream event.
	ClassRateLimited Class = "rate_limited"
	// ClassOverloaded is HTTP 529, or an overloaded_error stream event.
	ClassOverloaded Class = "overloaded"
	// ClassServerError is any other 5xx, or an api_error stream event.
	ClassServerError Class = "server_error"
	// ClassClientError is a 4xx other than 429: the request itself is wrong
	// (bad model, bad key), so the test's numbers are meaningless.
	ClassClientError Class = "client_error"
	// ClassTransport is a connection that failed or dropped without an HTTP
	// status, or a body that could not be read or decoded.
	ClassTransport Class = "transport"
	// ClassStreamError is an error event after HTTP 200 that is none of the
	// above.
	ClassStreamError Class = "stream_error"
	// ClassCanceled is a request cut short because the test was interrupted
	// or its drain timeout expired; it is neither a success nor a failure of
	// the server.
	ClassCanceled Class = "canceled"
)

// AllClasses lists the classes in the order reports show them.
var AllClasses = []Class{
	ClassOK, ClassRateLimited, ClassOverloaded, ClassServerError,
	ClassClientError, ClassTransport, ClassStreamError, ClassCanceled,
}

// ClassifyStatus maps an HTTP status to a Class. Status 0 means no response.
func ClassifyStatus(status int) Class {
	switch {
	case status == 0:
		return ClassTransport
	case status >= 200 && status < 300:
		return ClassOK
	case status == 429:
		return ClassRateLimited
	case status == 529:
		return ClassOverloaded
	case status >= 500:
		return ClassServerError
	default:
		return ClassClientError
	}
}

// ClassifyErrorType maps an Anthropic error body's error.type (as sent in a
// mid-stream error event) to a Class.
func ClassifyErrorType(errorType string) Class {
	switch errorType {
	case "rate_limit_error":
		return ClassRateLimited
	case "overloaded_error":
		return ClassOverloaded
	case "api_error", "timeout_error":
		return ClassServerError
	default:
		return ClassStreamError
	}
}

// statusKey is the key of an attempt in the status-code table: the code, or
// "transport" when there was no response.
func statusKey(status int) string {
	if status == 0 {
		return "transport"
	}
	return strconv.Itoa(status)
}

// Attempt is one HTTP exchange. With SDK retries enabled one logical request
// can make several, and each costs one unit of the requests-per-minute
// bucket, so each is counted.
type Attempt struct {
	// Status is the HTTP status, or 0 when the connection failed.
	Status int
	// RateLimit is what the anthropic-ratelimit-* headers said.
	RateLimit RateLimitHeaders
	// RetryAfter is the retry-after header, or -1 when absent.
	RetryAfter time.Duration
}

// Usage is the token accounting of one successful request, as the API
// reported it.
type Usage struct {
	InputTokens              int64
	OutputTokens             int64
	CacheCreationInputTokens int64
	CacheReadInputTokens     int64
}

// Outcome is what a Sender reports about one logical request. Timing of the
// whole request is measured by the runner; the Sender only knows when tokens
// arrived.
type Outcome struct {
	// Class is the final result of the request.
	Class Class
	// Attempts holds every HTTP attempt in order; empty only when the
	// request never reached the transport.
	Attempts []Attempt
	// Usage is the token usage; zero unless Class is ClassOK (a stream that
	// failed part way keeps what it saw).
	Usage Usage
	// FirstToken and LastToken are when the first and last content delta
	// arrived on a stream; zero for non-streaming requests.
	FirstToken time.Time
	LastToken  time.Time
	// MidStream is true when the error arrived as an event after HTTP 200.
	MidStream bool
	// Err describes a failure for the user; it never contains credentials.
	Err error
}

// Sample is one finished logical request as the collector sees it.
type Sample struct {
	// Intended is when the schedule wanted the request sent (equal to Start
	// in a closed loop).
	Intended time.Time
	// Start is when the Sender was called.
	Start time.Time
	// End is when the Sender returned.
	End time.Time
	Outcome
}
