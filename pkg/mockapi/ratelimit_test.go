package mockapi_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"

	"github.com/claudecap/claudecap/pkg/mockapi"
)

// TestTier1RequestsBucket drives tier-1 (50 RPM) with the SDK on a frozen
// clock: 50 requests pass, the 51st is refused on requests with
// retry-after 2 (one request refills in 1.2 s), and after 1.2 s exactly one
// more passes. The mock's own stats must agree.
func TestTier1RequestsBucket(t *testing.T) {
	clock := mockapi.NewFakeClock(t0)
	_, hs := startMock(t, mockapi.Config{Tier: "tier-1", Clock: clock, OutputTokens: mockapi.Fixed(5)})
	client := newClient(hs, option.WithMaxRetries(0))
	ctx := context.Background()
	// call returns the response headers (the SDK has closed the body).
	call := func() (http.Header, error) {
		var raw *http.Response
		_, err := client.Messages.New(ctx, userParams("hi", 50), option.WithResponseInto(&raw))
		if raw == nil {
			return nil, err
		}
		return raw.Header, err
	}
	for i := range 50 {
		hdr, err := call()
		if err != nil {
			t.Fatalf("request %d: %v", i+1, err)
		}
		if got, want := hdr.Get("anthropic-ratelimit-requests-remaining"), strconv.Itoa(49-i); got != want {
			t.Fatalf("request %d: requests-remaining %s, want %s", i+1, got, want)
		}
	}
	_, err := call()
	var apiErr *anthropic.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 429 || apiErr.Type() != "rate_limit_error" {
		t.Fatalf("51st request: %v, want 429 rate_limit_error", err)
	}
	if ra := apiErr.Response.Header.Get("retry-after"); ra != "2" {
		t.Errorf("retry-after = %q, want 2", ra)
	}
	if !strings.Contains(apiErr.Message, "50 requests per minute") {
		t.Errorf("message %q does not name the limit", apiErr.Message)
	}

	clock.Advance(1199 * time.Millisecond)
	if _, err := call(); err == nil {
		t.Fatal("admitted after 1.199 s; the bucket holds less than one request")
	}
	clock.Advance(time.Millisecond)
	if _, err := call(); err != nil {
		t.Fatalf("refused after 1.2 s: %v", err)
	}
	if _, err := call(); err == nil {
		t.Fatal("two requests admitted after 1.2 s")
	}

	st := getStats(t, hs)
	cs := st.Classes[testClass]
	if cs.Admitted != 51 || cs.RateLimited["requests"] != 3 || st.RateLimited["requests"] != 3 {
		t.Errorf("stats: admitted %d, refused %v", cs.Admitted, cs.RateLimited)
	}
	if cs.PeakPerMinute.Requests != 51 || cs.Limits.RequestsPerMinute != 50 || st.ByStatus["429"] != 3 {
		t.Errorf("stats: peak %+v limits %+v statuses %v", cs.PeakPerMinute, cs.Limits, st.ByStatus)
	}
}

// TestRateLimitHeadersExact checks every header against values worked out by
// hand from the bucket rule.
func TestRateLimitHeadersExact(t *testing.T) {
	clock := mockapi.NewFakeClock(t0) // 12:40:58.300
	_, hs := startMock(t, mockapi.Config{Tier: "tier-1", Clock: clock, OutputTokens: mockapi.Fixed(10)})
	// "hi" costs 3 + 1 = 4 input tokens.
	res := rawPost(t, hs.URL+"/v1/messages", `{"model":"claude-sonnet-4-5","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}`, nil)
	_ = res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
	want := map[string]string{
		// 1 of 50 taken: full again 1.2 s later, 12:40:59.5 -> rounded up.
		"requests-limit": "50", "requests-remaining": "49", "requests-reset": "2025-08-21T12:41:00Z",
		// 4 of 30,000: 29,996 rounds to 30,000; refilled in 8 ms.
		"input-tokens-limit": "30000", "input-tokens-remaining": "30000", "input-tokens-reset": "2025-08-21T12:40:59Z",
		// Count-actual mode: output is charged after the response, so the
		// headers (sent before it) still show a full bucket.
		"output-tokens-limit": "8000", "output-tokens-remaining": "8000", "output-tokens-reset": "2025-08-21T12:40:59Z",
		"tokens-limit": "38000", "tokens-remaining": "38000", "tokens-reset": "2025-08-21T12:40:59Z",
	}
	for k, v := range want {
		if got := res.Header.Get("anthropic-ratelimit-" + k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	// The 10 output tokens are charged at the end: the next response shows
	// them (7,990 rounds to 8,000, so look at the reset instead: 10 tokens at
	// 133.3/s take 75 ms, which stays within 12:40:59).
	clock.Advance(900 * time.Millisecond) // 12:40:59.200
	res = rawPost(t, hs.URL+"/v1/messages", `{"model":"claude-sonnet-4-5","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}`, nil)
	_ = res.Body.Close()
	// 49 + 0.75 refilled - 1 = 48.75: 48 whole requests, full again after
	// 1.25 / (50/60) = 1.5 s, at 12:41:00.7.
	if got := res.Header.Get("anthropic-ratelimit-requests-remaining"); got != "48" {
		t.Errorf("second requests-remaining = %s, want 48", got)
	}
	if got := res.Header.Get("anthropic-ratelimit-requests-reset"); got != "2025-08-21T12:41:01Z" {
		t.Errorf("second requests-reset = %s, want 12:41:01", got)
	}
}

func TestInputTokensDimension(t *testing.T) {
	clock := mockapi.NewFakeClock(t0)
	_, hs := startMock(t, mockapi.Config{Tier: "tier-1", Clock: clock, OutputTokens: mockapi.Fixed(5)})
	client := newClient(hs, option.WithMaxRetries(0))
	prompt := strings.Repeat("abcd", 16000) // 16,003 tokens with the message overhead
	if _, err := client.Messages.New(context.Background(), userParams(prompt, 10)); err != nil {
		t.Fatal(err)
	}
	_, err := client.Messages.New(context.Background(), userParams(prompt, 10))
	var apiErr *anthropic.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 429 {
		t.Fatalf("second big prompt: %v, want 429", err)
	}
	// 13,997 left, 16,003 needed: 2,006 tokens at 500/s = 4.012 s -> 5.
	if ra := apiErr.Response.Header.Get("retry-after"); ra != "5" {
		t.Errorf("retry-after = %s, want 5", ra)
	}
	if st := getStats(t, hs); st.Classes[testClass].RateLimited["input_tokens"] != 1 {
		t.Errorf("refusals = %v", st.Classes[testClass].RateLimited)
	}
	clock.Advance(4012 * time.Millisecond)
	if _, err := client.Messages.New(context.Background(), userParams(prompt, 10)); err != nil {
		t.Fatalf("after the computed wait: %v", err)
	}

	huge := strings.Repeat("abcd", 31000)
	_, err = client.Messages.New(context.Background(), userParams(huge, 10))
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 429 || !strings.Contains(apiErr.Message, "never be admitted") {
		t.Fatalf("prompt above the ITPM limit itself: %v", err)
	}
}

func TestOutputTokensModes(t *testing.T) {
	t.Run("actual", func(t *testing.T) {
		clock := mockapi.NewFakeClock(t0)
		_, hs := startMock(t, mockapi.Config{Tier: "tier-1", Clock: clock, OutputTokens: mockapi.Fixed(5000)})
		client := newClient(hs, option.WithMaxRetries(0), option.WithRequestTimeout(time.Minute))
		// 8,000 OTPM: 5,000 then 5,000 more (admitted while >= 1 token is
		// left) leaves 2,000 of debt; the third waits for 2,001 tokens at
		// 133.33/s = 15.0075 s -> 16.
		for i := range 2 {
			if _, err := client.Messages.New(context.Background(), userParams("x", 6000)); err != nil {
				t.Fatalf("request %d: %v", i+1, err)
			}
		}
		_, err := client.Messages.New(context.Background(), userParams("x", 6000))
		var apiErr *anthropic.Error
		if !errors.As(err, &apiErr) || apiErr.Response.Header.Get("retry-after") != "16" {
			t.Fatalf("third: %v (retry-after %q), want 429 with 16", err, retryAfter(apiErr))
		}
		if got := apiErr.Response.Header.Get("anthropic-ratelimit-output-tokens-remaining"); got != "0" {
			t.Errorf("output remaining = %s, want 0", got)
		}
		if st := getStats(t, hs); st.Classes[testClass].RateLimited["output_tokens"] != 1 || st.Classes[testClass].PeakPerMinute.OutputTokens != 10000 {
			t.Errorf("stats = %+v", st.Classes[testClass])
		}
	})
	t.Run("reserve", func(t *testing.T) {
		clock := mockapi.NewFakeClock(t0)
		_, hs := startMock(t, mockapi.Config{Tier: "tier-1", Clock: clock, OTPMMode: mockapi.OTPMReserveMaxTokens, OutputTokens: mockapi.Fixed(1000)})
		client := newClient(hs, option.WithMaxRetries(0), option.WithRequestTimeout(time.Minute))
		var raw *http.Response
		// Reserve 6,000 (2,000 left in the headers), then settle to 1,000 used.
		if _, err := client.Messages.New(context.Background(), userParams("x", 6000), option.WithResponseInto(&raw)); err != nil {
			t.Fatal(err)
		}
		if got := raw.Header.Get("anthropic-ratelimit-output-tokens-remaining"); got != "2000" {
			t.Errorf("remaining after reserving = %s, want 2000", got)
		}
		// Settled: 7,000 left. Each 6,000 reservation nets 1,000 once
		// settled: 7,000 -> 6,000 -> 5,000; the fourth does not fit.
		for i := range 2 {
			if _, err := client.Messages.New(context.Background(), userParams("x", 6000)); err != nil {
				t.Fatalf("reservation %d: %v", i+2, err)
			}
		}
		_, err := client.Messages.New(context.Background(), userParams("x", 6000))
		var apiErr *anthropic.Error
		if !errors.As(err, &apiErr) || !strings.Contains(apiErr.Message, "output tokens per minute") {
			t.Fatalf("fourth reservation: %v, want a 429 on output tokens", err)
		}
		// 1,000 short at 133.33/s: 7.5 s -> 8.
		if ra := retryAfter(apiErr); ra != "8" {
			t.Errorf("retry-after = %s, want 8", ra)
		}
		if _, err := client.Messages.New(context.Background(), userParams("x", 5000)); err != nil {
			t.Fatalf("a 5,000 reservation must fit in the 5,000 left: %v", err)
		}
	})
}

func retryAfter(e *anthropic.Error) string {
	if e == nil || e.Response == nil {
		return ""
	}
	return e.Response.Header.Get("retry-after")
}

// TestSDKRetriesHonorRetryAfter makes the mock refuse until the SDK retries:
// the SDK must wait the retry-after second (its own backoff would be at most
// 0.5 s) and send X-Stainless-Retry-Count 0 then 1.
func TestSDKRetriesHonorRetryAfter(t *testing.T) {
	clock := mockapi.NewFakeClock(t0)
	srv, err := mockapi.New(mockapi.Config{Limits: map[string]mockapi.Limits{testClass: {RequestsPerMinute: 60}}, Clock: clock, OutputTokens: mockapi.Fixed(3)})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var counts []string
	var times []time.Time
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		counts = append(counts, r.Header.Get("X-Stainless-Retry-Count"))
		times = append(times, time.Now())
		mu.Unlock()
		if r.Header.Get("X-Stainless-Retry-Count") == "1" {
			clock.Advance(time.Second) // simulated time passes as the SDK waited
		}
		srv.ServeHTTP(w, r)
	}))
	defer hs.Close()
	for range 60 { // drain the bucket outside the SDK
		res := rawPost(t, hs.URL+"/v1/messages", `{"model":"claude-sonnet-4-5","max_tokens":5,"messages":[{"role":"user","content":"x"}]}`, map[string]string{"X-Stainless-Retry-Count": "drain"})
		_ = res.Body.Close()
	}
	mu.Lock()
	counts, times = nil, nil
	mu.Unlock()

	client := newClient(hs, option.WithMaxRetries(2))
	msg, err := client.Messages.New(context.Background(), userParams("x", 5))
	if err != nil {
		t.Fatalf("SDK with retries: %v", err)
	}
	if msg.Usage.OutputTokens != 3 {
		t.Errorf("output = %d", msg.Usage.OutputTokens)
	}
	if strings.Join(counts, ",") != "0,1" {
		t.Fatalf("retry counts = %v, want 0,1", counts)
	}
	if wait := times[1].Sub(times[0]); wait < 950*time.Millisecond {
		t.Errorf("SDK retried after %v; retry-after said 1 s", wait)
	}
	if st := srv.Stats(); st.ByStatus["429"] != 1 || st.Classes[testClass].Admitted != 61 {
		t.Errorf("stats: %v, admitted %d", st.ByStatus, st.Classes[testClass].Admitted)
	}
}

func TestAccelerationLimit(t *testing.T) {
	clock := mockapi.NewFakeClock(t0)
	_, hs := startMock(t, mockapi.Config{
		Limits:       map[string]mockapi.Limits{testClass: {RequestsPerMinute: 1000}},
		Acceleration: mockapi.Acceleration{Enabled: true, MaxGrowth: 2, Floor: 10},
		Clock:        clock, OutputTokens: mockapi.Fixed(1),
	})
	send := func() int {
		res := rawPost(t, hs.URL+"/v1/messages", `{"model":"claude-sonnet-4-5","max_tokens":5,"messages":[{"role":"user","content":"x"}]}`, nil)
		_ = res.Body.Close()
		return res.StatusCode
	}
	// From nothing, only the floor of 10 passes in the first minute.
	for i := range 10 {
		if code := send(); code != 200 {
			t.Fatalf("request %d: %d", i+1, code)
		}
	}
	if code := send(); code != 429 {
		t.Fatalf("11th request in a cold minute: %d, want 429", code)
	}
	// A minute later the previous minute had 10: 10 + 2 x 10 = 30 allowed.
	clock.Advance(60 * time.Second)
	ok := 0
	for range 40 {
		if send() == 200 {
			ok++
		}
	}
	if ok != 30 {
		t.Errorf("admitted %d in the second minute, want 30", ok)
	}
	if st := getStats(t, hs); st.RateLimited["acceleration"] != 11 {
		t.Errorf("acceleration refusals = %d, want 11", st.RateLimited["acceleration"])
	}
}

func TestCountTokensRateLimit(t *testing.T) {
	clock := mockapi.NewFakeClock(t0)
	_, hs := startMock(t, mockapi.Config{Tier: "tier-1", Clock: clock})
	body := `{"model":"claude-haiku-4-5","messages":[{"role":"user","content":"x"}]}`
	for i := range 100 {
		res := rawPost(t, hs.URL+"/v1/messages/count_tokens", body, nil)
		_ = res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("count %d: %d", i+1, res.StatusCode)
		}
	}
	res := rawPost(t, hs.URL+"/v1/messages/count_tokens", body, nil)
	defer func() { _ = res.Body.Close() }()
	e := readError(t, res)
	if res.StatusCode != 429 || e.Error.Type != "rate_limit_error" || res.Header.Get("retry-after") != "1" {
		t.Errorf("101st count: %d %+v retry-after %q", res.StatusCode, e, res.Header.Get("retry-after"))
	}
	if st := getStats(t, hs); st.RateLimited["count_tokens"] != 1 || st.RateLimited["requests"] != 0 {
		t.Errorf("stats rate_limited = %v", st.RateLimited)
	}
}
