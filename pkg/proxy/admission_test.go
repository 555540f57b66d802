package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/claudecap/claudecap/internal/testutil/redistest"
	"github.com/claudecap/claudecap/pkg/dimension"
	"github.com/claudecap/claudecap/pkg/ratelimit"
)

// sonnetPool is the pool claude-sonnet-4-5 calls draw from in these tests.
var sonnetPool = ratelimit.PoolKey{Organization: "acme", Class: "sonnet-4"}

// limitHeaders are the anthropic-ratelimit-* headers of an organization
// whose input-token limit is itpm.
func limitHeaders(itpm int64) []string {
	reset := time.Now().Add(time.Minute).UTC().Format(time.RFC3339)
	n := strconv.FormatInt(itpm, 10)
	return []string{
		"Anthropic-Ratelimit-Requests-Limit", "4000", "Anthropic-Ratelimit-Requests-Remaining", "3999", "Anthropic-Ratelimit-Requests-Reset", reset,
		"Anthropic-Ratelimit-Input-Tokens-Limit", n, "Anthropic-Ratelimit-Input-Tokens-Remaining", n, "Anthropic-Ratelimit-Input-Tokens-Reset", reset,
	}
}

// limitedRig is a proxy with the real limiter on a throwaway redis-server,
// in front of an upstream that reports an input-token limit of orgITPM.
type limitedRig struct {
	p     *Proxy
	url   string
	redis *redistest.Server
}

func startLimitedRig(t *testing.T, budget ratelimit.Limits, orgITPM int64, cfg Config) limitedRig {
	t.Helper()
	srv := redistest.Start(t)
	r := limitedRig{redis: srv}
	r.setBudget(t, budget)
	lim, err := NewRedisLimiter(srv.Client(), ratelimit.Options{Pool: sonnetPool, Pod: "test"})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Upstream = startUpstream(t, replyJSON(200, okMessage, limitHeaders(orgITPM)...)).URL
	var hs *httptest.Server
	r.p, hs, _ = startProxy(t, cfg, lim)
	r.url = hs.URL
	return r
}

// setBudget writes the pool's budget, as the controller does on every poll.
func (r limitedRig) setBudget(t *testing.T, l ratelimit.Limits) {
	t.Helper()
	if err := ratelimit.WritePoolConfig(context.Background(), r.redis.Client(), sonnetPool, ratelimit.PoolConfig{Limits: l}); err != nil {
		t.Fatal(err)
	}
}

// learnLimits makes one small call so the proxy sees the upstream's headers.
func (r limitedRig) learnLimits(t *testing.T) {
	t.Helper()
	if resp, body := post(t, r.url, messagesBody("claude-sonnet-4-5", 10, false, "hi"), "X-Api-Key", workerKey); resp.StatusCode != 200 {
		t.Fatalf("small call: %d %s", resp.StatusCode, body)
	}
	drain(t, r.p)
}

// budget is a pool budget of itpm input tokens and room for everything else.
func budget(itpm int64) ratelimit.Limits {
	return ratelimit.Limits{RequestsPerMinute: 1000, InputTokensPerMinute: itpm, OutputTokensPerMinute: 1_000_000}
}

// costing is a request whose input estimate is about tokens.
func costing(tokens int) string {
	return messagesBody("claude-sonnet-4-5", 10, false, strings.Repeat("x", 3*tokens))
}

// errorType reads an error body's error.type.
func errorType(t *testing.T, body []byte) string {
	t.Helper()
	var e errorBody
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body %s: %v", body, err)
	}
	return e.Error.Type
}

// A cost above the pool's budget but within the organization's limit only
// waits for the budget to come back: a retryable 429 with retry-after, never
// x-should-retry: false (review finding 4).
func TestBudgetBelowOneCallIsRetryable(t *testing.T) {
	for _, learned := range []bool{false, true} {
		r := startLimitedRig(t, budget(1000), 100_000, Config{})
		if learned {
			r.learnLimits(t)
		}
		resp, body := post(t, r.url, costing(2000), "X-Api-Key", workerKey)
		retryAfter, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
		if resp.StatusCode != 429 || errorType(t, body) != errRateLimit || retryAfter < 1 ||
			resp.Header.Get("X-Should-Retry") == "false" || resp.Header.Get(HeaderLimited) != "input-tokens" {
			t.Errorf("static limit known %v: %d %v %s", learned, resp.StatusCode, resp.Header, body)
		}
	}
}

// A cost above the organization's own limit can never be admitted, by the
// proxy or by the API: a final 400, answered at once even when waiting is on.
func TestCostAboveTheOrganizationLimitIsFinal(t *testing.T) {
	r := startLimitedRig(t, budget(1000), 1500, Config{MaxWait: 5 * time.Second})
	r.learnLimits(t)
	start := time.Now()
	resp, body := post(t, r.url, costing(2000), "X-Api-Key", workerKey)
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("a call that can never be admitted waited %s", took)
	}
	if resp.StatusCode != 400 || errorType(t, body) != errInvalidRequest || resp.Header.Get("X-Should-Retry") != "false" ||
		resp.Header.Get(HeaderLimited) != "input-tokens" || !strings.Contains(string(body), "1500") {
		t.Errorf("got %d %v %s", resp.StatusCode, resp.Header, body)
	}
	if got := counterValue(t, r.p.metrics.refused.WithLabelValues("sonnet-4", "input_tokens", "too_large")); got != 1 {
		t.Errorf("refused{too_large} = %v", got)
	}
}

// With waiting on, a call above a dipped budget retries admission and gets
// in once the controller raises the budget again.
func TestWaitingOutABudgetDip(t *testing.T) {
	r := startLimitedRig(t, budget(1000), 100_000, Config{MaxWait: 10 * time.Second})
	r.learnLimits(t)
	raised := make(chan struct{})
	go func() {
		defer close(raised)
		time.Sleep(700 * time.Millisecond)
		r.setBudget(t, budget(600_000))
	}()
	start := time.Now()
	resp, body := post(t, r.url, costing(2000), "X-Api-Key", workerKey)
	<-raised
	if resp.StatusCode != 200 {
		t.Fatalf("got %d %v %s", resp.StatusCode, resp.Header, body)
	}
	if took := time.Since(start); took < 600*time.Millisecond || took > 5*time.Second {
		t.Errorf("admitted after %s; the budget was raised after 700ms", took)
	}
}

// A dip that outlasts the wait bound ends in the retryable 429, after the
// bound and not long after it.
func TestBudgetDipWaitIsBounded(t *testing.T) {
	bound := 1200 * time.Millisecond
	r := startLimitedRig(t, budget(1000), 100_000, Config{MaxWait: bound})
	start := time.Now()
	resp, body := post(t, r.url, costing(2000), "X-Api-Key", workerKey)
	took := time.Since(start)
	if resp.StatusCode != 429 || resp.Header.Get("X-Should-Retry") == "false" || resp.Header.Get("Retry-After") == "" {
		t.Errorf("got %d %v %s", resp.StatusCode, resp.Header, body)
	}
	if took < bound || took > bound+time.Second {
		t.Errorf("answered after %s, want just after the %s bound", took, bound)
	}
}

func TestStaticLimitsAreLearnedFromHeaders(t *testing.T) {
	var s staticLimits
	cost := ratelimit.Call(2000, 500)
	if _, _, over := s.exceeded("sonnet-4", cost); over {
		t.Error("nothing known yet, yet a cost is over a limit")
	}
	s.observe("sonnet-4", nil)
	s.observe("sonnet-4", http.Header{"Anthropic-Ratelimit-Input-Tokens-Limit": {"1500"}, "Anthropic-Ratelimit-Output-Tokens-Limit": {"junk"}})
	if d, limit, over := s.exceeded("sonnet-4", cost); !over || d != dimension.InputTokens || limit != 1500 {
		t.Errorf("exceeded = %v %d %v, want input tokens over 1500", d, limit, over)
	}
	if _, _, over := s.exceeded("opus-4", cost); over {
		t.Error("limits of one class applied to another")
	}
	// A later response reporting only output keeps the input limit; a raised
	// limit replaces the old one.
	s.observe("sonnet-4", http.Header{"Anthropic-Ratelimit-Output-Tokens-Limit": {"400"}})
	if d, _, over := s.exceeded("sonnet-4", ratelimit.Call(1000, 500)); !over || d != dimension.OutputTokens {
		t.Errorf("output limit not learned: %v %v", d, over)
	}
	s.observe("sonnet-4", http.Header{"Anthropic-Ratelimit-Input-Tokens-Limit": {" 450000 "}, "Anthropic-Ratelimit-Output-Tokens-Limit": {"90000"}})
	if _, _, over := s.exceeded("sonnet-4", cost); over {
		t.Error("a raised limit was not learned")
	}
}

func TestAdmissionAnswerTellsDipsFromOrgLimits(t *testing.T) {
	tooBig := &ratelimit.RateLimitedError{Pool: sonnetPool, Binding: dimension.InputTokens, TooLarge: true}
	dip, _ := admissionAnswer(tooBig, nil)
	if dip.Status != 429 || dip.Type != errRateLimit || dip.Header["Retry-After"] != "5" || dip.Header["Retry-After-Ms"] != "5000" ||
		dip.Header["X-Should-Retry"] != "" || dip.Header[HeaderLimited] != "input-tokens" {
		t.Errorf("budget dip: %+v", dip)
	}
	var s staticLimits
	s.observe("sonnet-4", http.Header{"Anthropic-Ratelimit-Input-Tokens-Limit": {"1500"}})
	err := s.judge("sonnet-4", ratelimit.Call(2000, 10), fmt.Errorf("reserving: %w", tooBig))
	if !errors.Is(err, ratelimit.ErrExceedsLimit) {
		t.Errorf("judged %v: the limiter's refusal must stay in the chain", err)
	}
	final, _ := admissionAnswer(err, nil)
	if final.Status != 400 || final.Type != errInvalidRequest || final.Header["X-Should-Retry"] != "false" ||
		final.Header[HeaderLimited] != "input-tokens" || !strings.Contains(final.Message, "2000") || !strings.Contains(final.Message, "1500") {
		t.Errorf("over the organization's limit: %+v", final)
	}
	if err := s.judge("sonnet-4", ratelimit.Call(1000, 10), tooBig); !isBudgetDip(err) {
		t.Errorf("a cost within the limit was judged %v", err)
	}
	refused := &ratelimit.RateLimitedError{Pool: sonnetPool, Binding: dimension.InputTokens, Wait: [3]time.Duration{0, time.Second, 0}}
	var over *overLimitError
	if err := s.judge("sonnet-4", ratelimit.Call(2000, 10), refused); errors.As(err, &over) || isBudgetDip(err) {
		t.Errorf("a full pool was judged %v", err)
	}
}

// dipLimiter refuses the first dips admissions for a cost above the pool's
// budget, then admits.
type dipLimiter struct {
	fakeLimiter
	dips  int
	tries []time.Time
}

func (d *dipLimiter) TryReserve(ctx context.Context, class string, cost ratelimit.Amounts) (Reservation, error) {
	d.mu.Lock()
	d.tries = append(d.tries, time.Now())
	refuse := len(d.tries) <= d.dips
	d.mu.Unlock()
	if refuse {
		return nil, &ratelimit.RateLimitedError{Pool: sonnetPool, Binding: dimension.InputTokens, TooLarge: true}
	}
	return d.fakeLimiter.TryReserve(ctx, class, cost)
}

// Wait returns a too-large refusal at once, as ratelimit.Limiter.Wait does.
func (d *dipLimiter) Wait(ctx context.Context, class string, cost ratelimit.Amounts) (Reservation, error) {
	return d.TryReserve(ctx, class, cost)
}

func (d *dipLimiter) attempts() []time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]time.Time(nil), d.tries...)
}

func TestDipsAreRetriedEveryHalfSecond(t *testing.T) {
	up := startUpstream(t, replyJSON(200, okMessage))
	lim := &dipLimiter{dips: 3}
	p, hs, _ := startProxy(t, Config{Upstream: up.URL, MaxWait: 10 * time.Second}, lim)
	if resp, body := post(t, hs.URL, messagesBody("claude-sonnet-4-5", 10, false, "hi"), "X-Api-Key", workerKey); resp.StatusCode != 200 {
		t.Fatalf("got %d %s", resp.StatusCode, body)
	}
	tries := lim.attempts()
	if len(tries) != 4 {
		t.Fatalf("%d admission attempts, want 4", len(tries))
	}
	for i := 1; i < len(tries); i++ {
		if gap := tries[i].Sub(tries[i-1]); gap < 400*time.Millisecond || gap > 900*time.Millisecond {
			t.Errorf("retry %d after %s, want about %s", i, gap, dipRetryInterval)
		}
	}
	if got := counterValue(t, p.metrics.admitted.WithLabelValues("sonnet-4")); got != 1 {
		t.Errorf("admitted counter %v", got)
	}
}

func TestDipsAreNotRetriedWithoutWaiting(t *testing.T) {
	up := startUpstream(t, replyJSON(200, okMessage))
	lim := &dipLimiter{dips: 1}
	p, hs, _ := startProxy(t, Config{Upstream: up.URL}, lim)
	resp, _ := post(t, hs.URL, messagesBody("claude-sonnet-4-5", 10, false, "hi"), "X-Api-Key", workerKey)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "5" || len(lim.attempts()) != 1 {
		t.Errorf("got %d %v after %d attempts", resp.StatusCode, resp.Header, len(lim.attempts()))
	}
	if got := counterValue(t, p.metrics.refused.WithLabelValues("sonnet-4", "input_tokens", "no_room")); got != 1 {
		t.Errorf("refused{no_room} = %v", got)
	}
}

// counterValue reads a counter of the proxy's metrics.
func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
