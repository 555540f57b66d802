package mockapi

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// endpoint indexes the per-endpoint request counters.
type endpoint int

const (
	epMessages endpoint = iota
	epCountTokens
	epModels
	epCount
)

var endpointNames = [epCount]string{"messages", "count_tokens", "models"}

// serverStats are the counters not tied to a model class. Hot-path updates
// are atomic adds; only reading and resetting take the lock.
type serverStats struct {
	mu        sync.Mutex // guards since and the status map of rare codes
	since     time.Time
	endpoints [epCount]atomic.Int64
	common    [len(commonStatuses)]atomic.Int64
	other     map[int]int64
	refusals  atomic.Int64
	faults    [len(faultNames)]atomic.Int64
}

// commonStatuses get a lock-free counter each.
var commonStatuses = [...]int{200, 400, 401, 404, 413, 429, 500, 529}

func newServerStats(now time.Time) *serverStats {
	return &serverStats{since: now, other: map[int]int64{}}
}

func (s *serverStats) endpoint(e endpoint) { s.endpoints[e].Add(1) }
func (s *serverStats) rateLimited()        { s.refusals.Add(1) }
func (s *serverStats) fault(f fault)       { s.faults[f].Add(1) }

func (s *serverStats) status(code int) {
	for i, c := range commonStatuses {
		if c == code {
			s.common[i].Add(1)
			return
		}
	}
	s.mu.Lock()
	s.other[code]++
	s.mu.Unlock()
}

func (s *serverStats) reset(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.since = now
	clear(s.other)
	for i := range s.endpoints {
		s.endpoints[i].Store(0)
	}
	for i := range s.common {
		s.common[i].Store(0)
	}
	for i := range s.faults {
		s.faults[i].Store(0)
	}
	s.refusals.Store(0)
}

// Stats is the body of GET /mock/stats.
type Stats struct {
	// Since is when counting started (server start or the last reset).
	Since time.Time `json:"since"`
	// Requests counts API requests (messages, count_tokens, models).
	Requests int64 `json:"requests"`
	// ByEndpoint splits Requests by endpoint.
	ByEndpoint map[string]int64 `json:"by_endpoint"`
	// ByStatus counts responses by HTTP status ("200", "429", ...); dropped
	// connections have none.
	ByStatus map[string]int64 `json:"by_status"`
	// RateLimited counts 429 responses by the dimension that refused them,
	// over all classes, plus "count_tokens" for the token counting limit.
	RateLimited map[string]int64 `json:"rate_limited"`
	// Faults counts injected faults by kind.
	Faults map[string]int64 `json:"faults"`
	// Tokens sums usage over all classes.
	Tokens TokenStats `json:"tokens"`
	// Classes holds per model class (per key too, with LimitsPerAPIKey)
	// limits, counts and peak per-minute usage.
	Classes map[string]ClassStats `json:"classes"`
}

// TokenStats are token totals as usage reports them.
type TokenStats struct {
	// Input is uncached input tokens.
	Input int64 `json:"input"`
	// CacheCreationInput is input tokens written to the cache.
	CacheCreationInput int64 `json:"cache_creation_input"`
	// CacheReadInput is input tokens read from the cache.
	CacheReadInput int64 `json:"cache_read_input"`
	// Output is output tokens produced.
	Output int64 `json:"output"`
}

// ClassStats describe one set of buckets.
type ClassStats struct {
	// Limits are the class's limits (zero: not limited).
	Limits Limits `json:"limits"`
	// Admitted counts requests that passed the rate limits.
	Admitted int64 `json:"admitted"`
	// RateLimited counts 429s by refusing dimension.
	RateLimited map[string]int64 `json:"rate_limited"`
	// Tokens are the class's token totals.
	Tokens TokenStats `json:"tokens"`
	// PeakPerMinute is the highest usage seen in any sliding 60-second
	// window (60 one-second slots), counted as the limits count it:
	// requests, ITPM input tokens, output tokens. A continuously refilled
	// bucket admits up to twice its limit in one window (a full bucket plus
	// a minute of refill), so a peak above the limit alone is no violation.
	PeakPerMinute Usage `json:"peak_per_minute"`
	// LastMinute is the usage of the current sliding window.
	LastMinute Usage `json:"last_minute"`
}

// Usage is per-minute usage in the three limited dimensions.
type Usage struct {
	// Requests per minute.
	Requests int64 `json:"requests"`
	// InputTokens per minute, counted as ITPM counts them.
	InputTokens int64 `json:"input_tokens"`
	// OutputTokens per minute.
	OutputTokens int64 `json:"output_tokens"`
}

// Stats returns the counters as of now.
func (s *Server) Stats() Stats {
	now := s.cfg.Clock.Now()
	st := s.stats
	out := Stats{
		ByEndpoint:  map[string]int64{},
		ByStatus:    map[string]int64{},
		RateLimited: map[string]int64{},
		Faults:      map[string]int64{},
		Classes:     map[string]ClassStats{},
	}
	st.mu.Lock()
	out.Since = st.since
	for code, n := range st.other {
		out.ByStatus[strconv.Itoa(code)] = n
	}
	st.mu.Unlock()
	for i, name := range endpointNames {
		n := st.endpoints[i].Load()
		out.ByEndpoint[name] = n
		out.Requests += n
	}
	for i, code := range commonStatuses {
		if n := st.common[i].Load(); n > 0 {
			out.ByStatus[strconv.Itoa(code)] = n
		}
	}
	for f, name := range faultNames {
		if name != "" {
			out.Faults[name] = st.faults[f].Load()
		}
	}
	for _, d := range dimensions {
		out.RateLimited[string(d)] = 0
	}

	s.limitersMu.RLock()
	keys := make([]limiterKey, 0, len(s.limiters))
	for k := range s.limiters {
		keys = append(keys, k)
	}
	s.limitersMu.RUnlock()
	slices.SortFunc(keys, func(a, b limiterKey) int {
		if a.class != b.class {
			return compareStrings(string(a.class), string(b.class))
		}
		return compareStrings(a.apiKey, b.apiKey)
	})
	sec := now.Unix()
	var classRefusals int64
	for i, k := range keys {
		s.limitersMu.RLock()
		l := s.limiters[k]
		s.limitersMu.RUnlock()
		cs := l.stats(sec)
		name := string(k.class)
		if k.apiKey != "" {
			name += "/key-" + strconv.Itoa(i+1) // never the key itself
		}
		out.Classes[name] = cs
		for d, n := range cs.RateLimited {
			out.RateLimited[d] += n
			classRefusals += n
		}
		out.Tokens.Input += cs.Tokens.Input
		out.Tokens.CacheCreationInput += cs.Tokens.CacheCreationInput
		out.Tokens.CacheReadInput += cs.Tokens.CacheReadInput
		out.Tokens.Output += cs.Tokens.Output
	}
	out.RateLimited["count_tokens"] = st.refusals.Load() - classRefusals
	return out
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	default:
		return 0
	}
}

// stats reads one limiter's statistics as of second sec.
func (l *classLimiter) stats(sec int64) ClassStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	u := &l.usage
	cs := ClassStats{
		Limits:      l.limits,
		Admitted:    u.admitted,
		RateLimited: map[string]int64{},
		Tokens: TokenStats{
			Input: u.inputTokens, CacheCreationInput: u.cacheCreation,
			CacheReadInput: u.cacheRead, Output: u.outputTokens,
		},
	}
	for i, d := range dimensions {
		cs.RateLimited[string(d)] = u.refused[i]
	}
	cs.LastMinute.Requests, _ = u.reqWindow.minutes(sec)
	cs.LastMinute.InputTokens, _ = u.inputWindow.minutes(sec)
	cs.LastMinute.OutputTokens, _ = u.outputWindow.minutes(sec)
	cs.PeakPerMinute = Usage{Requests: u.reqWindow.peak, InputTokens: u.inputWindow.peak, OutputTokens: u.outputWindow.peak}
	return cs
}

// handleStats serves GET /mock/stats.
func (s *Server) handleStats(rc *requestContext) {
	b, err := json.Marshal(s.Stats())
	if err != nil {
		s.fail(rc, &apiError{typ: ErrAPI, message: "encoding stats: " + err.Error()})
		return
	}
	rc.w.Header()[hdrContentType] = valJSON
	rc.w.WriteHeader(http.StatusOK)
	_, _ = rc.w.Write(b)
}
