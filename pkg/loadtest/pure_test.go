package loadtest

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/claudecap/claudecap/pkg/dimension"
)

func TestParseRateLimitHeaders(t *testing.T) {
	h := http.Header{}
	h.Set("anthropic-ratelimit-requests-limit", "1000")
	h.Set("anthropic-ratelimit-requests-remaining", "999")
	h.Set("anthropic-ratelimit-requests-reset", "2025-08-21T12:40:59Z")
	h.Set("anthropic-ratelimit-output-tokens-limit", "16000")
	h.Set("anthropic-ratelimit-output-tokens-remaining", "garbage")
	h.Set("anthropic-ratelimit-tokens-remaining", "96000")
	got := ParseRateLimitHeaders(h)
	want := RateLimitHeaders{
		DimensionOf(dimension.Requests):     {Limit: 1000, Remaining: 999},
		DimensionOf(dimension.OutputTokens): {Limit: 16000, Remaining: -1},
		DimTokens:                           {Limit: -1, Remaining: 96000},
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for d, b := range want {
		if got[d] != b {
			t.Errorf("%s: got %+v, want %+v", d, got[d], b)
		}
	}
	if ParseRateLimitHeaders(http.Header{}) != nil {
		t.Error("no headers should give nil")
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name string
		h    map[string]string
		want time.Duration
	}{
		{"absent", nil, -1},
		{"seconds", map[string]string{"retry-after": "3"}, 3 * time.Second},
		{"fractional", map[string]string{"retry-after": "0.5"}, 500 * time.Millisecond},
		{"ms wins", map[string]string{"retry-after": "3", "retry-after-ms": "250"}, 250 * time.Millisecond},
		{"http date", map[string]string{"retry-after": "Thu, 01 Jan 2026 00:00:07 GMT"}, 7 * time.Second},
		{"past date", map[string]string{"retry-after": "Wed, 31 Dec 2025 00:00:00 GMT"}, 0},
		{"negative", map[string]string{"retry-after": "-4"}, -1},
		{"garbage", map[string]string{"retry-after": "soon"}, -1},
		{"NaN", map[string]string{"retry-after": "NaN"}, -1},
	}
	for _, c := range cases {
		h := http.Header{}
		for k, v := range c.h {
			h.Set(k, v)
		}
		if got := ParseRetryAfter(h, now); got != c.want {
			t.Errorf("%s: got %s, want %s", c.name, got, c.want)
		}
	}
}

func TestClassify(t *testing.T) {
	status := map[int]Class{
		0: ClassTransport, 200: ClassOK, 204: ClassOK, 429: ClassRateLimited, 529: ClassOverloaded,
		500: ClassServerError, 503: ClassServerError, 400: ClassClientError, 401: ClassClientError, 302: ClassClientError,
	}
	for code, want := range status {
		if got := ClassifyStatus(code); got != want {
			t.Errorf("ClassifyStatus(%d) = %s, want %s", code, got, want)
		}
	}
	types := map[string]Class{
		"rate_limit_error": ClassRateLimited, "overloaded_error": ClassOverloaded,
		"api_error": ClassServerError, "timeout_error": ClassServerError, "weird": ClassStreamError,
	}
	for typ, want := range types {
		if got := ClassifyErrorType(typ); got != want {
			t.Errorf("ClassifyErrorType(%q) = %s, want %s", typ, got, want)
		}
	}
}

func TestSweepPlanner(t *testing.T) {
	target := SweepTarget{Max429Ratio: 0.01}
	pass := func(rate float64) StageResult {
		return StageResult{Rate: rate, Attempts: 100, Succeeded: 100}
	}
	fail := func(rate float64) StageResult {
		return StageResult{Rate: rate, Attempts: 100, Status429: 20, Succeeded: 80}
	}
	// The true capacity is 50: grow 10, 20, 40, 80 (fail), bisect 60
	// (fail), 50 (pass), 55 (fail).
	p, err := NewSweepPlanner(SweepConfig{StartRate: 10, MaxRate: 1000, Growth: 2, Refinements: 3, Target: target})
	if err != nil {
		t.Fatal(err)
	}
	var tried []float64
	for {
		rate, ok := p.Next()
		if !ok {
			break
		}
		tried = append(tried, rate)
		if rate <= 50 {
			p.Observe(pass(rate))
		} else {
			p.Observe(fail(rate))
		}
	}
	want := []float64{10, 20, 40, 80, 60, 50, 55}
	if len(tried) != len(want) {
		t.Fatalf("tried %v, want %v", tried, want)
	}
	for i := range want {
		if tried[i] != want[i] {
			t.Fatalf("tried %v, want %v", tried, want)
		}
	}
	if p.Best() != 50 {
		t.Fatalf("best %v, want 50", p.Best())
	}

	// Passing at the maximum ends the sweep there.
	p, _ = NewSweepPlanner(SweepConfig{StartRate: 10, MaxRate: 30, Growth: 2, Refinements: 3, Target: target})
	tried = tried[:0]
	for rate, ok := p.Next(); ok; rate, ok = p.Next() {
		tried = append(tried, rate)
		p.Observe(pass(rate))
	}
	if len(tried) != 3 || tried[2] != 30 || p.Best() != 30 {
		t.Fatalf("capped sweep tried %v best %v, want [10 20 30] best 30", tried, p.Best())
	}

	// Failing at the start bisects downwards.
	p, _ = NewSweepPlanner(SweepConfig{StartRate: 10, MaxRate: 30, Growth: 2, Refinements: 1, Target: target})
	r, _ := p.Next()
	p.Observe(fail(r))
	if r, _ = p.Next(); r != 5 {
		t.Fatalf("after failing the first stage, next = %v, want 5", r)
	}
}

func TestSweepTarget(t *testing.T) {
	latency := SweepTarget{Max429Ratio: -1, MaxP99: time.Second}
	if !latency.Passes(StageResult{Attempts: 10, Succeeded: 10, Status429: 9, P99: time.Second}) {
		t.Error("latency-only target must ignore 429s")
	}
	if latency.Passes(StageResult{Attempts: 10, Succeeded: 10, P99: time.Second + 1}) {
		t.Error("p99 over the bound must fail")
	}
	if latency.Passes(StageResult{Attempts: 10}) {
		t.Error("a stage without successes must fail")
	}
	bad := []SweepConfig{
		{StartRate: 0, MaxRate: 1, Growth: 2, Target: SweepTarget{Max429Ratio: 0}},
		{StartRate: 2, MaxRate: 1, Growth: 2, Target: SweepTarget{Max429Ratio: 0}},
		{StartRate: 1, MaxRate: 2, Growth: 1, Target: SweepTarget{Max429Ratio: 0}},
		{StartRate: 1, MaxRate: 2, Growth: 2, Target: SweepTarget{Max429Ratio: -1}},
		{StartRate: 1, MaxRate: 2, Growth: 2, Target: SweepTarget{Max429Ratio: 2}},
		{StartRate: 1, MaxRate: 2, Growth: 2, Refinements: -1, Target: SweepTarget{Max429Ratio: 0}},
	}
	for i, c := range bad {
		if err := c.Validate(); err == nil {
			t.Errorf("bad sweep config %d accepted: %+v", i, c)
		}
	}
}

func TestSafety(t *testing.T) {
	realURLs := []string{"", "https://api.anthropic.com", "https://API.Anthropic.com./", "https://api.anthropic.com:443/v1"}
	for _, u := range realURLs {
		if !IsRealAPI(u) {
			t.Errorf("IsRealAPI(%q) = false", u)
		}
	}
	for _, u := range []string{"http://127.0.0.1:8080", "http://localhost:9000", "https://api.anthropic.com.evil.example"} {
		if IsRealAPI(u) {
			t.Errorf("IsRealAPI(%q) = true", u)
		}
	}
	big := Plan{Requests: 101}
	if err := CheckSafety("https://api.anthropic.com", big, false); err == nil {
		t.Error("101 requests to the real API without --yes must be refused")
	}
	if err := CheckSafety("", big, false); err == nil {
		t.Error("an unset base URL is the real API and must be refused")
	}
	if err := CheckSafety("", Plan{Unbounded: true}, false); err == nil {
		t.Error("an unbounded run against the real API must be refused")
	}
	if err := CheckSafety("https://api.anthropic.com", big, true); err != nil {
		t.Errorf("--yes must allow it: %v", err)
	}
	if err := CheckSafety("https://api.anthropic.com", Plan{Requests: 100}, false); err != nil {
		t.Errorf("100 requests is small: %v", err)
	}

	open := Config{Mode: ModeOpen, Profile: ConstantProfile(10), Duration: time.Minute}
	if p := PlanOf(open); p.Requests != 600 || p.Unbounded {
		t.Errorf("open loop 10/s for 1m plans %+v, want 600", p)
	}
	open.MaxRequests = 50
	if p := PlanOf(open); p.Requests != 50 {
		t.Errorf("request bound must cap the plan, got %+v", p)
	}
	if p := PlanOf(Config{Mode: ModeClosed, Concurrency: 4, Duration: time.Minute}); !p.Unbounded {
		t.Errorf("closed loop bounded by time only is unbounded in count, got %+v", p)
	}
	sweep := SweepRun{StageDuration: 10 * time.Second, Sweep: SweepConfig{StartRate: 1, MaxRate: 8, Growth: 2, Refinements: 2}}
	if p := PlanOfSweep(sweep); p.Requests != 8*10*6 {
		t.Errorf("sweep plan %+v, want %d (6 stages at most)", p, 8*10*6)
	}
}

func TestValidateBaseURL(t *testing.T) {
	for _, u := range []string{"http://127.0.0.1:1", "https://api.anthropic.com"} {
		if err := ValidateBaseURL(u); err != nil {
			t.Errorf("ValidateBaseURL(%q): %v", u, err)
		}
	}
	for _, u := range []string{"", "127.0.0.1:80", "ftp://x", "http://", "http://user:hunter2@127.0.0.1", "http://127.0.0.1:1/?key=hunter2", "http://127.0.0.1:1/#x", "ftp://h/?key=hunter2", "http://u:hunter2@[::1"} {
		err := ValidateBaseURL(u)
		if err == nil {
			t.Errorf("ValidateBaseURL(%q) accepted it", u)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("error leaks the password: %v", err)
		}
	}
}

// The report's dimension keys are the table's header names, in table order, then the
// combined tokens bucket.
func TestReportDimensionsFollowTheTable(t *testing.T) {
	var want []Dimension
	for _, d := range dimension.All() {
		want = append(want, Dimension(d.Info().Header))
	}
	want = append(want, DimTokens)
	if !slices.Equal(AllDimensions, want) {
		t.Errorf("AllDimensions = %v, want %v", AllDimensions, want)
	}
}
