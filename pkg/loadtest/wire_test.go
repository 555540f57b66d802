package loadtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
)

// testAPI is a small server speaking the Messages wire format: enough of
// POST /v1/messages (JSON and SSE) for the official SDK to parse, with
// knobs for latency, token timing, error statuses and rate-limit headers,
// and counters the tests assert on.
type testAPI struct {
	srv *httptest.Server

	requests    atomic.Int64
	inFlight    atomic.Int64
	maxInFlight atomic.Int64

	// delay is slept before the response headers.
	delay time.Duration
	// ttft and tokenGap time a stream's first and following deltas.
	ttft, tokenGap time.Duration
	// outputTokens is the number of deltas (one token each).
	outputTokens int
	// status picks the status of request n (0-based); nil means 200.
	status func(n int64) int
	// midStreamError, if set, is the error.type sent after the first delta.
	midStreamError string
	// truncate ends the stream after the first delta without message_stop.
	truncate bool
	// retryAfter is sent on 429s.
	retryAfter string

	mu      sync.Mutex
	apiKeys map[string]int
}

const testInputTokens = 12

func newTestAPI(t testing.TB, configure func(*testAPI)) *testAPI {
	t.Helper()
	a := &testAPI{outputTokens: 5, retryAfter: "1", apiKeys: map[string]int{}}
	if configure != nil {
		configure(a)
	}
	a.srv = httptest.NewServer(http.HandlerFunc(a.handle))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *testAPI) URL() string { return a.srv.URL }

func (a *testAPI) handle(w http.ResponseWriter, r *http.Request) {
	n := a.requests.Add(1) - 1
	cur := a.inFlight.Add(1)
	defer a.inFlight.Add(-1)
	for {
		old := a.maxInFlight.Load()
		if cur <= old || a.maxInFlight.CompareAndSwap(old, cur) {
			break
		}
	}
	a.mu.Lock()
	// SDK v2 sends the key as a bearer token; older clients use x-api-key.
	key := r.Header.Get("x-api-key")
	if bearer, ok := strings.CutPrefix(r.Header.Get("authorization"), "Bearer "); ok {
		key = bearer
	}
	a.apiKeys[key]++
	a.mu.Unlock()

	if r.Method != http.MethodPost || r.URL.Path != "/v1/messages" {
		writeAPIError(w, http.StatusNotFound, "not_found_error")
		return
	}
	var body struct {
		Model     string `json:"model"`
		MaxTokens int    `json:"max_tokens"`
		Stream    bool   `json:"stream"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Model == "" || body.MaxTokens <= 0 {
		writeAPIError(w, http.StatusBadRequest, "invalid_request_error")
		return
	}
	if !sleepOrDone(r.Context(), a.delay) {
		return
	}
	a.writeRateLimitHeaders(w, n)
	status := http.StatusOK
	if a.status != nil {
		status = a.status(n)
	}
	if status != http.StatusOK {
		if status == http.StatusTooManyRequests && a.retryAfter != "" {
			w.Header().Set("retry-after", a.retryAfter)
		}
		writeAPIError(w, status, errorTypeFor(status))
		return
	}
	if body.Stream {
		a.stream(w, r, body.Model)
		return
	}
	w.Header().Set("content-type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"id": "msg_test", "type": "message", "role": "assistant", "model": body.Model,
		"content":     []map[string]any{{"type": "text", "text": "hello"}},
		"stop_reason": "end_turn", "stop_sequence": nil,
		"usage": map[string]any{"input_tokens": testInputTokens, "output_tokens": a.outputTokens,
			"cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
	})
}

func (a *testAPI) writeRateLimitHeaders(w http.ResponseWriter, n int64) {
	h := w.Header()
	h.Set("request-id", "req_"+strconv.FormatInt(n, 10))
	h.Set("anthropic-ratelimit-requests-limit", "1000")
	h.Set("anthropic-ratelimit-requests-remaining", strconv.FormatInt(max(999-n, 0), 10))
	h.Set("anthropic-ratelimit-input-tokens-limit", "30000")
	h.Set("anthropic-ratelimit-input-tokens-remaining", "29000")
	h.Set("anthropic-ratelimit-output-tokens-limit", "8000")
	h.Set("anthropic-ratelimit-output-tokens-remaining", "8000")
}

func (a *testAPI) stream(w http.ResponseWriter, r *http.Request, model string) {
	w.Header().Set("content-type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	send := func(event string, data any) {
		b, _ := json.Marshal(data)
		_, _ = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b)
		if flusher != nil {
			flusher.Flush()
		}
	}
	send("message_start", map[string]any{"type": "message_start", "message": map[string]any{
		"id": "msg_test", "type": "message", "role": "assistant", "model": model, "content": []any{},
		"stop_reason": nil, "usage": map[string]any{"input_tokens": testInputTokens, "output_tokens": 1}}})
	send("content_block_start", map[string]any{"type": "content_block_start", "index": 0,
		"content_block": map[string]any{"type": "text", "text": ""}})
	send("ping", map[string]any{"type": "ping"})
	for i := range a.outputTokens {
		gap := a.tokenGap
		if i == 0 {
			gap = a.ttft
		}
		if !sleepOrDone(r.Context(), gap) {
			return
		}
		send("content_block_delta", map[string]any{"type": "content_block_delta", "index": 0,
			"delta": map[string]any{"type": "text_delta", "text": "tok "}})
		if i == 0 && a.midStreamError != "" {
			send("error", map[string]any{"type": "error", "error": map[string]any{"type": a.midStreamError, "message": "injected"}})
			return
		}
		if i == 0 && a.truncate {
			return
		}
	}
	send("content_block_stop", map[string]any{"type": "content_block_stop", "index": 0})
	send("message_delta", map[string]any{"type": "message_delta",
		"delta": map[string]any{"stop_reason": "end_turn", "stop_sequence": nil},
		"usage": map[string]any{"output_tokens": a.outputTokens}})
	send("message_stop", map[string]any{"type": "message_stop"})
}

func sleepOrDone(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func errorTypeFor(status int) string {
	switch status {
	case http.StatusTooManyRequests:
		return "rate_limit_error"
	case 529:
		return "overloaded_error"
	case http.StatusUnauthorized:
		return "authentication_error"
	case http.StatusBadRequest:
		return "invalid_request_error"
	case http.StatusNotFound:
		return "not_found_error"
	default:
		return "api_error"
	}
}

func writeAPIError(w http.ResponseWriter, status int, typ string) {
	w.Header().Set("content-type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"type": "error",
		"error": map[string]any{"type": typ, "message": "test error"}, "request_id": "req_test"})
}

const testAPIKey = "fake-key-test-SECRET-do-not-print-0123456789"

func testRequest(t testing.TB) anthropic.MessageNewParams {
	t.Helper()
	p, err := RequestSpec{Model: "claude-sonnet-4-5", MaxTokens: 64, Prompt: "Say hello."}.Build()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// newTestSender returns an SDK sender pointed at the test server.
func newTestSender(t testing.TB, baseURL string, stream bool, retries int) *SDKSender {
	t.Helper()
	s, err := NewSDKSender(SDKSenderConfig{
		BaseURL:    baseURL,
		APIKey:     testAPIKey,
		Requests:   []anthropic.MessageNewParams{testRequest(t)},
		Stream:     stream,
		MaxRetries: retries,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// plainHTTPSender is the cheapest possible Sender: one POST with net/http.
// It isolates the generator's timing from the SDK's per-request cost.
func plainHTTPSender(url string) Sender {
	client := NewHTTPClient()
	body := `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"hi"}]}`
	return SenderFunc(func(ctx context.Context, _ int64) Outcome {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/messages", strings.NewReader(body))
		if err != nil {
			return Outcome{Class: ClassTransport, Err: err}
		}
		res, err := client.Do(req)
		if err != nil {
			return Outcome{Class: ClassTransport, Attempts: []Attempt{{RetryAfter: -1}}, Err: err}
		}
		_, _ = io.Copy(io.Discard, res.Body)
		_ = res.Body.Close()
		return Outcome{Class: ClassifyStatus(res.StatusCode), Attempts: []Attempt{{Status: res.StatusCode, RetryAfter: -1}}}
	})
}
