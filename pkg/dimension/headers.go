package dimension

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// HeaderNames are the canonical names of one anthropic-ratelimit-<x>-* header triple.
type HeaderNames struct {
	// Limit is anthropic-ratelimit-<x>-limit: the limit per minute.
	Limit string
	// Remaining is anthropic-ratelimit-<x>-remaining: what is left now.
	Remaining string
	// Reset is anthropic-ratelimit-<x>-reset: when the bucket is full again (RFC 3339).
	Reset string
}

// CombinedTokensHeader is the header part of anthropic-ratelimit-tokens-*, the API's
// combined token bucket: it repeats whichever token limit is most restrictive (or sums
// input and output), so it is not a dimension of its own.
const CombinedTokensHeader = "tokens"

// headerNamesOf builds the canonical names of the triple anthropic-ratelimit-<part>-*.
func headerNamesOf(part string) HeaderNames {
	prefix := http.CanonicalHeaderKey("anthropic-ratelimit-" + part + "-")
	return HeaderNames{Limit: prefix + "Limit", Remaining: prefix + "Remaining", Reset: prefix + "Reset"}
}

// Built once: the proxy and the mock use them on every response.
var (
	dimensionHeaders [Count]HeaderNames
	combinedHeaders  = headerNamesOf(CombinedTokensHeader)
)

func init() {
	for _, d := range All() {
		dimensionHeaders[d] = headerNamesOf(table[d].Header)
	}
}

// Headers returns the names of the dimension's anthropic-ratelimit-* headers.
func (d Dimension) Headers() HeaderNames {
	if !d.Valid() {
		panic(fmt.Sprintf("dimension %d is not in the table", int(d)))
	}
	return dimensionHeaders[d]
}

// CombinedTokensHeaders returns the names of the anthropic-ratelimit-tokens-* headers.
func CombinedTokensHeaders() HeaderNames { return combinedHeaders }

// HeaderValues is one header triple as a response carried it.
type HeaderValues struct {
	// Limit is the -limit value, or -1 when the header was absent or malformed.
	Limit int64
	// Remaining is the -remaining value, or -1 when absent or malformed.
	Remaining int64
	// Reset is the -reset time, or zero when absent or malformed.
	Reset time.Time
}

// Present reports whether the response carried the limit or the remaining value.
func (v HeaderValues) Present() bool { return v.Limit >= 0 || v.Remaining >= 0 }

// Complete reports whether all three values were present and well formed.
func (v HeaderValues) Complete() bool { return v.Limit >= 0 && v.Remaining >= 0 && !v.Reset.IsZero() }

// ResponseHeaders are the anthropic-ratelimit-* values of one response.
type ResponseHeaders struct {
	// ByDimension holds each dimension's triple, indexed by Dimension.
	ByDimension [Count]HeaderValues
	// CombinedTokens is the anthropic-ratelimit-tokens-* triple.
	CombinedTokens HeaderValues
}

// ParseHeaders reads every anthropic-ratelimit-* triple of h. It is the one parser of these
// headers: each caller keeps what its use needs (the limiter only complete triples, the load
// tester whatever is readable). Each value is read on its own; a malformed value, or a
// triple with some of its three headers missing, is reported in the error (naming the header,
// never another header's value) and left at -1 or zero, and the rest is still returned.
func ParseHeaders(h http.Header) (ResponseHeaders, error) {
	var out ResponseHeaders
	var errs []error
	for _, d := range All() {
		out.ByDimension[d] = parseTriple(h, dimensionHeaders[d], &errs)
	}
	out.CombinedTokens = parseTriple(h, combinedHeaders, &errs)
	return out, errors.Join(errs...)
}

// ParseLimit reads the dimension's -limit header alone; ok is false when it is absent,
// malformed or not positive. The proxy calls it on every response.
func (d Dimension) ParseLimit(h http.Header) (limit int64, ok bool) {
	v, err := strconv.ParseInt(strings.TrimSpace(h.Get(d.Headers().Limit)), 10, 64)
	return v, err == nil && v > 0
}

func parseTriple(h http.Header, names HeaderNames, errs *[]error) HeaderValues {
	v := HeaderValues{Limit: -1, Remaining: -1}
	limit, remaining, reset := h.Get(names.Limit), h.Get(names.Remaining), h.Get(names.Reset)
	if limit == "" && remaining == "" && reset == "" {
		return v
	}
	count := func(name, s string) int64 {
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil || n < 0 {
			*errs = append(*errs, fmt.Errorf("header %s: %q is not a non-negative integer", strings.ToLower(name), s))
			return -1
		}
		return n
	}
	v.Limit, v.Remaining = count(names.Limit, limit), count(names.Remaining, remaining)
	if t, err := time.Parse(time.RFC3339, strings.TrimSpace(reset)); err == nil {
		v.Reset = t
	} else {
		*errs = append(*errs, fmt.Errorf("header %s: %q is not an RFC 3339 time", strings.ToLower(names.Reset), reset))
	}
	return v
}
