package loadtest

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/claudecap/claudecap/pkg/dimension"
)

// Dimension names one of the rate-limit buckets Anthropic reports in
// anthropic-ratelimit-<dimension>-{limit,remaining,reset} headers.
type Dimension string

// DimensionOf returns the Dimension of a limited dimension: its header part ("output-tokens").
func DimensionOf(d dimension.Dimension) Dimension { return Dimension(d.Info().Header) }

// DimTokens is the most restrictive token limit in effect: the API's combined token bucket,
// reported beside the limited dimensions.
const DimTokens Dimension = dimension.CombinedTokensHeader

// AllDimensions lists the dimensions in report order: the table's, then DimTokens.
var AllDimensions = func() []Dimension {
	all := make([]Dimension, 0, dimension.Count+1)
	for _, d := range dimension.All() {
		all = append(all, DimensionOf(d))
	}
	return append(all, DimTokens)
}()

// Bucket is one dimension's header values on one response. A value of -1
// means the header was absent or unreadable.
type Bucket struct {
	Limit     int64
	Remaining int64
}

// RateLimitHeaders holds the anthropic-ratelimit-* values of one response.
type RateLimitHeaders map[Dimension]Bucket

// ParseRateLimitHeaders reads the limit and remaining values of every
// dimension present in h, with dimension.ParseHeaders. Malformed values are
// ignored rather than trusted: a load test should report what it could read,
// not fail on a header.
func ParseRateLimitHeaders(h http.Header) RateLimitHeaders {
	parsed, _ := dimension.ParseHeaders(h) // malformed values come back as -1
	var out RateLimitHeaders
	keep := func(d Dimension, v dimension.HeaderValues) {
		if !v.Present() {
			return
		}
		if out == nil {
			out = make(RateLimitHeaders, len(AllDimensions))
		}
		out[d] = Bucket{Limit: v.Limit, Remaining: v.Remaining}
	}
	for d, v := range parsed.ByDimension {
		keep(DimensionOf(dimension.Dimension(d)), v)
	}
	keep(DimTokens, parsed.CombinedTokens)
	return out
}

// ParseRetryAfter reads retry-after-ms (used by the SDK when present) or
// retry-after, as seconds or as an HTTP date relative to now. It returns -1
// when neither is present or readable.
func ParseRetryAfter(h http.Header, now time.Time) time.Duration {
	if v := strings.TrimSpace(h.Get("retry-after-ms")); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms >= 0 && !math.IsInf(ms, 0) && ms < 1e12 {
			return time.Duration(ms * float64(time.Millisecond))
		}
	}
	v := strings.TrimSpace(h.Get("retry-after"))
	if v == "" {
		return -1
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s < 0 || math.IsNaN(s) || s > 1e9 {
			return -1
		}
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return -1
}
