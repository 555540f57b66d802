package proxy

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/claudecap/claudecap/pkg/dimension"
	"github.com/claudecap/claudecap/pkg/ratelimit"
)

const workerKey = "fake-key-worker-key-0123456789"

func TestForwardsAndSettlesFromUsage(t *testing.T) {
	up := startUpstream(t, replyJSON(200, okMessage, "Anthropic-Ratelimit-Requests-Limit", "50",
		"Anthropic-Ratelimit-Requests-Remaining", "49", "Anthropic-Ratelimit-Requests-Reset", "2026-04-01T00:00:00Z"))
	lim := &fakeLimiter{}
	p, hs, _ := startProxy(t, Config{Upstream: up.URL}, lim)
	body := messagesBody("claude-sonnet-4-5", 300, false, "hello")
	resp, got := post(t, hs.URL, body, "X-Api-Key", workerKey, "Anthropic-Beta", "tools-2024", "X-Custom", "kept")
	if resp.StatusCode != 200 || string(got) != okMessage {
		t.Fatalf("got %d %s", resp.StatusCode, got)
	}
	if resp.Header.Get("Request-Id") != "req_upstream" || resp.Header.Get("Anthropic-Ratelimit-Requests-Remaining") != "49" {
		t.Errorf("response headers not passed through: %v", resp.Header)
	}
	if resp.Header.Get(HeaderOrigin) != "" {
		t.Error("a passed-through response must not claim to come from the proxy")
	}
	reqs := up.received()
	if len(reqs) != 1 {
		t.Fatalf("upstream got %d requests", len(reqs))
	}
	r := reqs[0]
	if r.Path != "/v1/messages" || string(r.Body) != body || r.Header.Get("X-Api-Key") != workerKey ||
		r.Header.Get("Anthropic-Beta") != "tools-2024" || r.Header.Get("X-Custom") != "kept" || r.Header.Get("Anthropic-Version") != "2023-06-01" {
		t.Errorf("upstream request: %+v", r)
	}
	if r.Header.Get("Accept-Encoding") != "" {
		t.Errorf("the proxy must ask for an uncompressed answer, sent Accept-Encoding %q", r.Header.Get("Accept-Encoding"))
	}
	s := lim.snapshot(t, p)
	wantCost := ratelimit.Call(EstimateInputTokens([]byte(body)), 300)
	if len(s.reserved) != 1 || s.reserved[0] != wantCost || s.classes[0] != "sonnet-4" {
		t.Errorf("reserved %v in %v, want %+v in sonnet-4", s.reserved, s.classes, wantCost)
	}
	if len(s.settled) != 1 || s.settled[0].InputTokens != 12 || s.settled[0].OutputTokens != 6 || s.settled[0].CacheReadInputTokens != 0 {
		t.Errorf("settled %+v, want the response's usage", s.settled)
	}
	if len(s.upstream) != 1 || !s.upstream[0].Buckets[dimension.Requests].Known || s.upstream[0].Buckets[dimension.Requests].Remaining != 49 || s.upstream[0].Status != 200 {
		t.Errorf("published upstream state %+v", s.upstream)
	}
}

func TestPoolRefusalIsAnthropicShaped429(t *testing.T) {
	up := startUpstream(t, replyJSON(200, okMessage))
	refusal := &ratelimit.RateLimitedError{Pool: ratelimit.PoolKey{Organization: "acme", Class: "sonnet-4"},
		Binding: dimension.InputTokens, Wait: [3]time.Duration{0, 1500 * time.Millisecond, 0}}
	lim := &fakeLimiter{refuse: refusal}
	p, hs, _ := startProxy(t, Config{Upstream: up.URL}, lim)
	resp, got := post(t, hs.URL, messagesBody("claude-sonnet-4-5", 10, false, "hi"), "X-Api-Key", workerKey)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "2" || resp.Header.Get(HeaderLimited) != "input-tokens" ||
		resp.Header.Get(HeaderOrigin) != "proxy" || !strings.HasPrefix(resp.Header.Get("Request-Id"), "req_ccap_") {
		t.Errorf("got %d with headers %v", resp.StatusCode, resp.Header)
	}
	var e errorBody
	if err := json.Unmarshal(got, &e); err != nil || e.Type != "error" || e.Error.Type != "rate_limit_error" || e.RequestID != resp.Header.Get("Request-Id") {
		t.Errorf("body %s (%v)", got, err)
	}
	if n := len(up.received()); n != 0 {
		t.Errorf("a refused call reached the upstream %d times", n)
	}
	if s := lim.snapshot(t, p); len(s.settled)+s.cancelled != 0 {
		t.Errorf("nothing was reserved, yet %d settlements", len(s.settled)+s.cancelled)
	}
}

func TestWaitingIsBounded(t *testing.T) {
	up := startUpstream(t, replyJSON(200, okMessage))
	refusal := &ratelimit.RateLimitedError{Pool: ratelimit.PoolKey{Organization: "acme", Class: "sonnet-4"},
		Binding: dimension.Requests, Wait: [3]time.Duration{30 * time.Second, 0, 0}}
	bound := 150 * time.Millisecond
	_, hs, _ := startProxy(t, Config{Upstream: up.URL, MaxWait: bound}, &fakeLimiter{refuse: refusal})
	start := time.Now()
	resp, _ := post(t, hs.URL, messagesBody("claude-sonnet-4-5", 10, false, "hi"), "X-Api-Key", workerKey)
	if waited := time.Since(start); waited < bound {
		t.Errorf("answered after %s, before the wait bound %s", waited, bound)
	}
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "30" || resp.Header.Get(HeaderLimited) != "requests" {
		t.Errorf("got %d %v", resp.StatusCode, resp.Header)
	}
}

func TestAPIKeyInjection(t *testing.T) {
	up := startUpstream(t, replyJSON(200, okMessage))
	const injected = "fake-key-injected-key-9876543210"
	_, hs, _ := startProxy(t, Config{Upstream: up.URL, APIKey: injected}, &fakeLimiter{})
	// A worker with no key at all, and one with a stale key and a bearer token.
	post(t, hs.URL, messagesBody("claude-sonnet-4-5", 10, false, "a"))
	post(t, hs.URL, messagesBody("claude-sonnet-4-5", 10, false, "b"), "X-Api-Key", workerKey, "Authorization", "Bearer tok")
	for i, r := range up.received() {
		if r.Header.Get("X-Api-Key") != injected || r.Header.Get("Authorization") != "" {
			t.Errorf("request %d went upstream with x-api-key %q authorization %q", i, r.Header.Get("X-Api-Key"), r.Header.Get("Authorization"))
		}
	}
}

func TestRequestsWithoutCredentialsAreRefused(t *testing.T) {
	up := startUpstream(t, replyJSON(200, okMessage))
	_, hs, _ := startProxy(t, Config{Upstream: up.URL}, &fakeLimiter{})
	resp, got := post(t, hs.URL, messagesBody("claude-sonnet-4-5", 10, false, "a"))
	if resp.StatusCode != 401 || !strings.Contains(string(got), "authentication_error") || len(up.received()) != 0 {
		t.Errorf("got %d %s, upstream saw %d", resp.StatusCode, got, len(up.received()))
	}
}

func TestOnlyV1PathsReachTheFixedUpstream(t *testing.T) {
	up := startUpstream(t, replyJSON(200, `{"data":[]}`))
	// evil.example is allowed so that the request below passes the Host check.
	_, hs, _ := startProxy(t, Config{Upstream: up.URL, AllowedHosts: []string{"evil.example"}}, &fakeLimiter{})
	for _, path := range []string{"/admin", "/v1/../admin", "/v2/messages", "/v1", "/mock/stats"} {
		req, _ := http.NewRequest(http.MethodGet, hs.URL+path, nil)
		req.URL.Path = path // keep dot segments as sent
		req.Header.Set("X-Api-Key", workerKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != 404 || !strings.Contains(string(body), "not_found_error") {
			t.Errorf("%s: %d %s", path, resp.StatusCode, body)
		}
	}
	// A request naming another host (absolute form, or Host header) still goes
	// to the configured upstream.
	conn, err := net.Dial("tcp", strings.TrimPrefix(hs.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	_, _ = io.WriteString(conn, "GET http://evil.example/v1/models?limit=2 HTTP/1.1\r\nHost: evil.example\r\nX-Api-Key: k\r\nConnection: close\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	reqs := up.received()
	if resp.StatusCode != 200 || len(reqs) != 1 || reqs[0].Path != "/v1/models" || reqs[0].Query != "limit=2" ||
		reqs[0].Host != strings.TrimPrefix(up.URL, "http://") {
		t.Errorf("status %d, upstream saw %+v", resp.StatusCode, reqs)
	}
}

func TestBodySizeLimit(t *testing.T) {
	up := startUpstream(t, replyJSON(200, okMessage))
	_, hs, _ := startProxy(t, Config{Upstream: up.URL, MaxBodyBytes: 1000}, &fakeLimiter{})
	big := messagesBody("claude-sonnet-4-5", 10, false, strings.Repeat("x", 2000))
	resp, got := post(t, hs.URL, big, "X-Api-Key", workerKey)
	if resp.StatusCode != 413 || !strings.Contains(string(got), `"type":"request_too_large"`) {
		t.Errorf("with Content-Length: %d %s", resp.StatusCode, got)
	}
	// Chunked: the size is only known while reading.
	req, _ := http.NewRequest(http.MethodPost, hs.URL+"/v1/messages", io.MultiReader(strings.NewReader(big)))
	req.Header.Set("X-Api-Key", workerKey)
	chunked, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ = io.ReadAll(chunked.Body)
	_ = chunked.Body.Close()
	if chunked.StatusCode != 413 || !strings.Contains(string(got), "request_too_large") {
		t.Errorf("chunked: %d %s", chunked.StatusCode, got)
	}
	if n := len(up.received()); n != 0 {
		t.Errorf("oversized bodies reached the upstream %d times", n)
	}
}

func TestBadRequestsAreAnsweredWithoutReserving(t *testing.T) {
	up := startUpstream(t, replyJSON(200, okMessage))
	lim := &fakeLimiter{}
	p, hs, _ := startProxy(t, Config{Upstream: up.URL}, lim)
	for body, want := range map[string]string{
		`{"model":"claude-sonnet-4-5","messages":[]}`: "max_tokens",
		`not json`:                                      "not valid JSON",
		messagesBody("gpt-17", 10, false, "hi"):         "knows no rate-limit pool",
		`{"model":"claude-sonnet-4-5","max_tokens":-1}`: "max_tokens",
	} {
		resp, got := post(t, hs.URL, body, "X-Api-Key", workerKey)
		if resp.StatusCode != 400 || !strings.Contains(string(got), "invalid_request_error") || !strings.Contains(string(got), want) {
			t.Errorf("%s: %d %s", body, resp.StatusCode, got)
		}
	}
	if s := lim.snapshot(t, p); len(s.reserved) != 0 || len(up.received()) != 0 {
		t.Errorf("bad requests reserved %d times and reached upstream %d times", len(s.reserved), len(up.received()))
	}
}

func TestPinnedClassAcceptsUnknownModels(t *testing.T) {
	up := startUpstream(t, replyJSON(200, okMessage))
	lim := &fakeLimiter{}
	p, hs, _ := startProxy(t, Config{Upstream: up.URL, Class: "opus-4"}, lim)
	if resp, got := post(t, hs.URL, messagesBody("claude-future-9", 10, false, "hi"), "X-Api-Key", workerKey); resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, got)
	}
	if s := lim.snapshot(t, p); len(s.classes) != 1 || s.classes[0] != "opus-4" {
		t.Errorf("classes %v", s.classes)
	}
}

func TestUpstreamErrorsSettleAndArePublished(t *testing.T) {
	for _, tc := range []struct {
		status int
		want   ratelimit.UsageSample
	}{
		{429, ratelimit.UsageSample{RateLimited: 1}},
		{529, ratelimit.UsageSample{Overloaded: 1}},
	} {
		body := `{"type":"error","error":{"type":"x","message":"y"},"request_id":"req_u"}`
		up := startUpstream(t, replyJSON(tc.status, body, "Retry-After", "7"))
		lim := &fakeLimiter{}
		p, hs, _ := startProxy(t, Config{Upstream: up.URL, PublishInterval: time.Hour}, lim)
		resp, got := post(t, hs.URL, messagesBody("claude-sonnet-4-5", 10, false, "hi"), "X-Api-Key", workerKey)
		if resp.StatusCode != tc.status || string(got) != body || resp.Header.Get("Retry-After") != "7" || resp.Header.Get(HeaderOrigin) != "" {
			t.Errorf("%d: passed through as %d %s %v", tc.status, resp.StatusCode, got, resp.Header)
		}
		s := lim.snapshot(t, p)
		if len(s.settled) != 1 || s.settled[0] != (ratelimit.Actual{}) {
			t.Errorf("%d: settled %+v, want tokens refunded (request kept)", tc.status, s.settled)
		}
		if len(s.upstreamErrs) != 1 || s.upstreamErrs[0] != tc.want {
			t.Errorf("%d: recorded %+v", tc.status, s.upstreamErrs)
		}
		// Published despite the throttle: limited answers always are.
		if len(s.upstream) != 1 || s.upstream[0].Status != tc.status || s.upstream[0].RetryAfter != 7*time.Second {
			t.Errorf("%d: published %+v", tc.status, s.upstream)
		}
	}
}

func TestUnreachableUpstreamCancelsTheReservation(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	_ = ln.Close()
	lim := &fakeLimiter{}
	p, hs, _ := startProxy(t, Config{Upstream: dead}, lim)
	resp, got := post(t, hs.URL, messagesBody("claude-sonnet-4-5", 10, false, "hi"), "X-Api-Key", workerKey)
	if resp.StatusCode != 502 || !strings.Contains(string(got), "api_error") || resp.Header.Get(HeaderOrigin) != "proxy" {
		t.Errorf("got %d %s", resp.StatusCode, got)
	}
	if s := lim.snapshot(t, p); s.cancelled != 1 || len(s.settled) != 0 {
		t.Errorf("cancelled %d settled %d: a call that never left must be given back", s.cancelled, len(s.settled))
	}
}

// Malformed upstream answers pass through byte for byte and keep what is
// unknown charged; the proxy keeps serving.
func TestMalformedUpstreamResponses(t *testing.T) {
	cut := strings.Index(sampleStream, "event: message_delta")
	for _, tc := range []struct {
		name        string
		contentType string
		body        string
		cutConn     bool
		want        ratelimit.Actual
	}{
		{"bad JSON", "application/json", `{"usage":{"input_tokens":1,`, false, ratelimit.Actual{InputTokens: -1, OutputTokens: 50}},
		{"no usage", "application/json", `{"type":"message","content":[]}`, false, ratelimit.Actual{InputTokens: -1, OutputTokens: 50}},
		{"HTML", "text/html", `<html>gateway</html>`, false, ratelimit.Actual{InputTokens: -1, OutputTokens: 50}},
		{"stream cut after message_start", "text/event-stream", sampleStream[:cut], true,
			ratelimit.Actual{InputTokens: 30, OutputTokens: 50, CacheReadInputTokens: 100}},
		{"stream ended without message_delta", "text/event-stream", sampleStream[:cut], false,
			ratelimit.Actual{InputTokens: 30, OutputTokens: 50, CacheReadInputTokens: 100}},
		{"stream of garbage", "text/event-stream", "data: {{{\n\nevent: message_delta\ndata: nope\n\n", false,
			ratelimit.Actual{InputTokens: -1, OutputTokens: 50}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := startUpstream(t, func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", tc.contentType)
				if tc.cutConn {
					w.Header().Set("Content-Length", strconv.Itoa(len(tc.body)+100))
				}
				_, _ = io.WriteString(w, tc.body)
			})
			lim := &fakeLimiter{}
			p, hs, _ := startProxy(t, Config{Upstream: up.URL}, lim)
			body := messagesBody("claude-sonnet-4-5", 50, tc.contentType == "text/event-stream", "hi")
			req, _ := http.NewRequest(http.MethodPost, hs.URL+"/v1/messages", strings.NewReader(body))
			req.Header.Set("X-Api-Key", workerKey)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, readErr := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if string(got) != tc.body {
				t.Errorf("client got %q, upstream sent %q", got, tc.body)
			}
			if tc.cutConn && readErr == nil {
				t.Error("a cut upstream body must reach the client as a cut body, not a clean end")
			}
			s := lim.snapshot(t, p)
			want := tc.want
			if want.InputTokens == -1 {
				want.InputTokens = s.reserved[0][dimension.InputTokens]
			}
			if len(s.settled) != 1 || s.settled[0] != want {
				t.Errorf("settled %+v, want %+v", s.settled, want)
			}
			// Still serving.
			if resp, _ := post(t, hs.URL, `{}`, "X-Api-Key", workerKey); resp.StatusCode != 400 {
				t.Errorf("proxy answered %d after a malformed upstream response", resp.StatusCode)
			}
		})
	}
}

// The first event must reach the client while the upstream still holds the
// rest back: the proxy does not buffer streams.
func TestStreamsAreNotBuffered(t *testing.T) {
	release := make(chan struct{})
	first := "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n"
	rest := "event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":4}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
	up := startUpstream(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, first)
		w.(http.Flusher).Flush()
		<-release
		_, _ = io.WriteString(w, rest)
	})
	lim := &fakeLimiter{}
	p, hs, _ := startProxy(t, Config{Upstream: up.URL}, lim)
	req, _ := http.NewRequest(http.MethodPost, hs.URL+"/v1/messages", strings.NewReader(messagesBody("claude-haiku-4-5", 64, true, "hi")))
	req.Header.Set("X-Api-Key", workerKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	buf := make([]byte, len(first))
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != first {
		t.Fatalf("first event: %q %v", buf, err)
	}
	close(release)
	tail, err := io.ReadAll(resp.Body)
	if err != nil || string(tail) != rest {
		t.Fatalf("rest: %q %v", tail, err)
	}
	s := lim.snapshot(t, p)
	if len(s.settled) != 1 || s.settled[0] != (ratelimit.Actual{InputTokens: 3, OutputTokens: 4}) || s.classes[0] != "haiku-4.5" {
		t.Errorf("settled %+v in %v", s.settled, s.classes)
	}
}

func TestCoalescing(t *testing.T) {
	gate := make(chan struct{})
	up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.Header.Get("X-Api-Key"), "first") {
			<-gate
		}
		replyJSON(200, okMessage)(w, r)
	})
	lim := &fakeLimiter{}
	p, _, _ := startProxy(t, Config{Upstream: up.URL, Coalesce: true}, lim)
	// Count arrivals in front of the proxy, to release the upstream only
	// once every caller is in.
	var arrived atomic.Int32
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived.Add(1)
		p.Handler().ServeHTTP(w, r)
	}))
	defer hs.Close()
	body := messagesBody("claude-sonnet-4-5", 100, false, "same question")
	const n = 8
	var wg sync.WaitGroup
	bodies := make([]string, n)
	ids := make([]string, n)
	for i := range n {
		wg.Go(func() {
			resp, got := post(t, hs.URL, body, "X-Api-Key", "key-first")
			bodies[i], ids[i] = string(got), resp.Header.Get("Request-Id")
		})
	}
	deadline := time.Now().Add(10 * time.Second)
	for (arrived.Load() < n || len(up.received()) == 0) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // from the arrival counter into the shared call
	close(gate)
	wg.Wait()
	// Another key, or a different body, is a call of its own.
	post(t, hs.URL, body, "X-Api-Key", "key-second")
	post(t, hs.URL, messagesBody("claude-sonnet-4-5", 100, false, "other question"), "X-Api-Key", "key-second")
	for i := range n {
		if bodies[i] != okMessage || ids[i] != "req_upstream" {
			t.Errorf("caller %d got %q (%s)", i, bodies[i], ids[i])
		}
	}
	s := lim.snapshot(t, p)
	if calls := len(up.received()); calls != 3 || len(s.reserved) != 3 || len(s.settled) != 3 {
		t.Errorf("%d upstream calls, %d reservations, %d settlements; want 3 each (8 identical calls shared one)", calls, len(s.reserved), len(s.settled))
	}
}

func TestStreamingRequestsAreNotCoalesced(t *testing.T) {
	up := startUpstream(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, sampleStream)
	})
	_, hs, _ := startProxy(t, Config{Upstream: up.URL, Coalesce: true}, &fakeLimiter{})
	body := messagesBody("claude-sonnet-4-5", 100, true, "same")
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			if _, got := post(t, hs.URL, body, "X-Api-Key", workerKey); string(got) != sampleStream {
				t.Errorf("stream body %q", got)
			}
		})
	}
	wg.Wait()
	if n := len(up.received()); n != 3 {
		t.Errorf("%d upstream calls for 3 streams", n)
	}
}

// No log line, at any level, may contain an API key: neither the worker's
// nor the injected one, on success or failure paths.
func TestLogsNeverContainKeys(t *testing.T) {
	const injected = "fake-key-injected-secret-5555"
	up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.Contains(r.URL.Path, "models"):
			replyJSON(200, `{"data":[]}`)(w, r)
		default:
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", "500")
			_, _ = io.WriteString(w, `{"usage":`) // cut
		}
	})
	for _, cfg := range []Config{{Upstream: up.URL}, {Upstream: up.URL, APIKey: injected}} {
		refusal := &ratelimit.RateLimitedError{Pool: ratelimit.PoolKey{Organization: "o", Class: "sonnet-4"}, Wait: [3]time.Duration{time.Second}}
		for _, lim := range []*fakeLimiter{{}, {refuse: refusal}} {
			p, hs, logs := startProxy(t, cfg, lim)
			post(t, hs.URL, messagesBody("claude-sonnet-4-5", 10, false, "hi"), "X-Api-Key", workerKey)
			post(t, hs.URL, messagesBody("claude-sonnet-4-5", 10, true, "hi"), "Authorization", "Bearer "+workerKey)
			req, _ := http.NewRequest(http.MethodGet, hs.URL+"/v1/models", nil)
			req.Header.Set("X-Api-Key", workerKey)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				_ = resp.Body.Close()
			}
			drain(t, p)
			out := logs.String()
			if out == "" {
				t.Fatal("nothing was logged; the test would prove nothing")
			}
			if strings.Contains(out, workerKey) || strings.Contains(out, injected) {
				t.Errorf("logs contain an API key:\n%s", out)
			}
		}
	}
}

func TestHealthAndReadiness(t *testing.T) {
	up := startUpstream(t, replyJSON(200, okMessage))
	lim := &fakeLimiter{}
	p, hs, _ := startProxy(t, Config{Upstream: up.URL}, lim)
	get := func(h http.Handler, path string) (int, string) {
		srv := hs.URL
		if h != nil {
			ts := startServer(t, h)
			srv = ts
		}
		resp, err := http.Get(srv + path)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get(nil, "/healthz"); code != 200 {
		t.Errorf("healthz %d", code)
	}
	if code, _ := get(nil, "/readyz"); code != 200 {
		t.Errorf("readyz %d", code)
	}
	lim.readyErr = ratelimit.ErrUnavailable
	if code, body := get(p.OpsHandler(), "/readyz"); code != 503 || !strings.Contains(body, "unavailable") {
		t.Errorf("readyz with the limiter down: %d %s", code, body)
	}
	if code, _ := get(p.OpsHandler(), "/healthz"); code != 200 {
		t.Errorf("healthz must not depend on the limiter, got %d", code)
	}
	if code, _ := get(p.OpsHandler(), "/v1/messages"); code != 404 {
		t.Errorf("the ops listener must not proxy, got %d", code)
	}
}

func startServer(t *testing.T, h http.Handler) string {
	t.Helper()
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts.URL
}

func TestMetricsExposed(t *testing.T) {
	up := startUpstream(t, replyJSON(200, okMessage))
	refusal := &ratelimit.RateLimitedError{Pool: ratelimit.PoolKey{Organization: "o", Class: "sonnet-4"},
		Binding: dimension.OutputTokens, Wait: [3]time.Duration{0, 0, time.Second}}
	lim := &fakeLimiter{}
	p, hs, _ := startProxy(t, Config{Upstream: up.URL}, lim)
	post(t, hs.URL, messagesBody("claude-sonnet-4-5", 10, false, "hi"), "X-Api-Key", workerKey)
	lim.mu.Lock()
	lim.refuse = refusal
	lim.mu.Unlock()
	post(t, hs.URL, messagesBody("claude-sonnet-4-5", 10, false, "hi"), "X-Api-Key", workerKey)
	drain(t, p)
	resp, err := http.Get(hs.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		`claudecap_proxy_admitted_total{class="sonnet-4"} 1`,
		`claudecap_proxy_refused_total{class="sonnet-4",dimension="output_tokens",reason="no_room"} 1`,
		`claudecap_proxy_upstream_responses_total{code="200"} 1`,
		`claudecap_proxy_tokens_total{class="sonnet-4",dimension="input"} 12`,
		`claudecap_proxy_tokens_total{class="sonnet-4",dimension="output"} 6`,
		`claudecap_proxy_settlements_total{class="sonnet-4",result="exact"} 1`,
		`claudecap_proxy_admission_wait_seconds_count{class="sonnet-4"} 2`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
