package proxy_test

// Compatibility tests: the official Go SDK talks through the proxy (with the
// real limiter on a real redis-server) to the mock Messages API.

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/redis/go-redis/v9"

	"github.com/claudecap/claudecap/internal/testutil/redistest"
	"github.com/claudecap/claudecap/pkg/dimension"
	"github.com/claudecap/claudecap/pkg/mockapi"
	"github.com/claudecap/claudecap/pkg/proxy"
	"github.com/claudecap/claudecap/pkg/ratelimit"
)

const (
	testModel    = "claude-sonnet-4-5"
	testWorkload = "ai/summarizer"
	workerKey    = "sk-ant-worker-1234567890"
)

var testPool = ratelimit.PoolKey{Organization: "acme", Class: "sonnet-4"}

// wireResponse is one response exactly as the upstream wrote it.
type wireResponse struct {
	status int
	header http.Header
	body   []byte
}

// wireRecorder wraps the mock and keeps every response's bytes.
type wireRecorder struct {
	next http.Handler
	mu   sync.Mutex
	seen []*wireResponse
}

func (rec *wireRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	resp := &wireResponse{}
	rec.next.ServeHTTP(&recordingWriter{ResponseWriter: w, resp: resp}, r)
	rec.mu.Lock()
	rec.seen = append(rec.seen, resp)
	rec.mu.Unlock()
}

func (rec *wireRecorder) last(t *testing.T) *wireResponse {
	t.Helper()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.seen) == 0 {
		t.Fatal("the upstream saw no request")
	}
	return rec.seen[len(rec.seen)-1]
}

type recordingWriter struct {
	http.ResponseWriter
	resp *wireResponse
}

func (w *recordingWriter) WriteHeader(code int) {
	if w.resp.status == 0 {
		w.resp.status, w.resp.header = code, w.Header().Clone()
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recordingWriter) Write(p []byte) (int, error) {
	if w.resp.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	w.resp.body = append(w.resp.body, p...)
	return w.ResponseWriter.Write(p)
}

func (w *recordingWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// rig is a redis-server, the mock behind a wire recorder, and a proxy.
type rig struct {
	rdb   *redis.Client
	rec   *wireRecorder
	mock  *httptest.Server
	proxy *proxy.Proxy
	url   string
}

func newRig(t *testing.T, mockCfg mockapi.Config, limits ratelimit.Limits, cfg proxy.Config) *rig {
	t.Helper()
	srv := redistest.Start(t)
	r := &rig{rdb: srv.Client()}
	if err := ratelimit.WritePoolConfig(context.Background(), r.rdb, testPool, ratelimit.PoolConfig{Limits: limits}); err != nil {
		t.Fatalf("WritePoolConfig: %v", err)
	}
	m, err := mockapi.New(mockCfg)
	if err != nil {
		t.Fatalf("mockapi.New: %v", err)
	}
	r.rec = &wireRecorder{next: m}
	r.mock = httptest.NewServer(r.rec)
	t.Cleanup(r.mock.Close)
	r.proxy, r.url = r.addProxy(t, cfg)
	return r
}

// addProxy starts one more proxy (a second pod) on the rig's pool.
func (r *rig) addProxy(t *testing.T, cfg proxy.Config) (*proxy.Proxy, string) {
	t.Helper()
	lim, err := proxy.NewRedisLimiter(r.rdb, ratelimit.Options{Pool: testPool, Workload: testWorkload, Pod: "pod-a"})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Upstream = r.mock.URL
	cfg.PublishInterval = -1
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	p, err := proxy.New(cfg, lim)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(p.Handler())
	t.Cleanup(func() {
		hs.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = p.Close(ctx)
	})
	return p, hs.URL
}

func (r *rig) drain(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.proxy.Drain(ctx); err != nil {
		t.Fatal(err)
	}
}

func (r *rig) usage(t *testing.T) ratelimit.WindowUsage {
	t.Helper()
	r.drain(t)
	u, err := ratelimit.ReadUsage(context.Background(), r.rdb, testPool, testWorkload, time.Minute)
	if err != nil {
		t.Fatalf("ReadUsage: %v", err)
	}
	return u
}

// rawCapture keeps the response exactly as the SDK received it.
type rawCapture struct {
	resp *http.Response
	body bytes.Buffer
}

func (c *rawCapture) middleware(req *http.Request, next option.MiddlewareNext) (*http.Response, error) {
	resp, err := next(req)
	if err == nil {
		c.resp = resp
		c.body.Reset()
		resp.Body = teeBody{Reader: io.TeeReader(resp.Body, &c.body), Closer: resp.Body}
	}
	return resp, err
}

type teeBody struct {
	io.Reader
	io.Closer
}

func client(url string, opts ...option.RequestOption) anthropic.Client {
	base := []option.RequestOption{option.WithBaseURL(url), option.WithAPIKey(workerKey), option.WithMaxRetries(0)}
	return anthropic.NewClient(append(base, opts...)...)
}

func params(text string, maxTokens int64) anthropic.MessageNewParams {
	return anthropic.MessageNewParams{
		Model:     testModel,
		MaxTokens: maxTokens,
		Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock(text))},
	}
}

var bigLimits = ratelimit.Limits{RequestsPerMinute: 1000, InputTokensPerMinute: 100000, OutputTokensPerMinute: 100000}

// sameHeaders checks that the client got the upstream's values of the
// headers that matter to workers.
func sameHeaders(t *testing.T, upstream http.Header, got http.Header) {
	t.Helper()
	n := 0
	for k := range upstream {
		lk := strings.ToLower(k)
		if lk == "request-id" || lk == "retry-after" || strings.HasPrefix(lk, "anthropic-ratelimit-") || lk == "content-type" {
			n++
			if got.Get(k) != upstream.Get(k) {
				t.Errorf("header %s: client got %q, upstream sent %q", k, got.Get(k), upstream.Get(k))
			}
		}
	}
	if upstream.Get("Request-Id") == "" || n < 2 {
		t.Errorf("the upstream sent too few headers to compare: %v", upstream)
	}
}

func TestSDKMessageThroughProxy(t *testing.T) {
	r := newRig(t, mockapi.Config{Tier: "tier-4", OutputTokens: mockapi.Fixed(12)}, bigLimits, proxy.Config{})
	var raw rawCapture
	const maxTokens = 4000
	c := client(r.url, option.WithMiddleware(raw.middleware))
	msg, err := c.Messages.New(context.Background(), params("Hello through the proxy", maxTokens))
	if err != nil {
		t.Fatalf("Messages.New: %v", err)
	}
	if msg.Usage.OutputTokens != 12 || len(msg.Content) != 1 || msg.Content[0].Text == "" {
		t.Errorf("message %+v", msg)
	}
	up := r.rec.last(t)
	if !bytes.Equal(raw.body.Bytes(), up.body) {
		t.Errorf("body differs:\nclient   %s\nupstream %s", raw.body.Bytes(), up.body)
	}
	sameHeaders(t, up.header, raw.resp.Header)
	if raw.resp.Header.Get("Anthropic-Ratelimit-Requests-Limit") != "4000" {
		t.Errorf("tier-4 rate-limit headers missing: %v", raw.resp.Header)
	}

	// Settled with the real usage: the workload's usage shows the response's
	// counts, and the output bucket got the unused max_tokens back.
	u := r.usage(t)
	wantIn := msg.Usage.InputTokens + msg.Usage.CacheCreationInputTokens
	if u.Requests != 1 || u.InputTokens != wantIn || u.OutputTokens != 12 || u.ActivePods != 1 {
		t.Errorf("recorded usage %+v, want 1 request, %d input, 12 output", u.UsageSample, wantIn)
	}
	b, err := ratelimit.ReadBucket(context.Background(), r.rdb, testPool)
	if err != nil {
		t.Fatal(err)
	}
	if out := b.Level[dimension.OutputTokens]; out < float64(bigLimits.OutputTokensPerMinute-maxTokens/2) {
		t.Errorf("output bucket at %.0f of %d: the unused reservation of %d was not refunded", out, bigLimits.OutputTokensPerMinute, maxTokens)
	}
	// And the upstream's headers were published to the pool state.
	st, ok, err := ratelimit.ReadUpstream(context.Background(), r.rdb, testPool)
	if err != nil || !ok || st.Status != 200 || !st.Buckets[dimension.Requests].Known || st.Buckets[dimension.Requests].Limit != 4000 {
		t.Errorf("published upstream state %+v ok=%v err=%v", st, ok, err)
	}
}

func TestSDKStreamingThroughProxy(t *testing.T) {
	r := newRig(t, mockapi.Config{Tier: "tier-4", OutputTokens: mockapi.Fixed(30), Latency: mockapi.Latency{TokensPerDelta: 3}},
		bigLimits, proxy.Config{})
	var raw rawCapture
	c := client(r.url, option.WithMiddleware(raw.middleware))
	stream := c.Messages.NewStreaming(context.Background(), params("Stream through the proxy", 2000))
	var acc anthropic.Message
	events := 0
	for stream.Next() {
		events++
		if err := acc.Accumulate(stream.Current()); err != nil {
			t.Fatalf("Accumulate: %v", err)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("stream: %v", err)
	}
	_ = stream.Close()
	if acc.Usage.OutputTokens != 30 || acc.StopReason != anthropic.StopReasonEndTurn || events < 14 {
		t.Errorf("accumulated %d events, usage %+v, stop %q", events, acc.Usage, acc.StopReason)
	}
	up := r.rec.last(t)
	if !bytes.Equal(raw.body.Bytes(), up.body) {
		t.Errorf("stream differs:\nclient   %q\nupstream %q", raw.body.Bytes(), up.body)
	}
	sameHeaders(t, up.header, raw.resp.Header)
	u := r.usage(t)
	if u.Requests != 1 || u.OutputTokens != 30 || u.InputTokens != acc.Usage.InputTokens+acc.Usage.CacheCreationInputTokens {
		t.Errorf("recorded usage %+v, want the stream's %+v", u.UsageSample, acc.Usage)
	}
}

func TestSDKGetsProxyRefusalAndWaiterGetsIn(t *testing.T) {
	// 30 requests per minute: a full bucket admits 29 (the last keeps the admission
	// margin of a quarter second), then one every 2 s.
	limits := ratelimit.Limits{RequestsPerMinute: 30, InputTokensPerMinute: 1000000, OutputTokensPerMinute: 1000000}
	r := newRig(t, mockapi.Config{OutputTokens: mockapi.Fixed(5)}, limits, proxy.Config{})
	c := client(r.url)
	for i := range 29 {
		if _, err := c.Messages.New(context.Background(), params("fill", 10)); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	var raw *http.Response
	_, err := c.Messages.New(context.Background(), params("one too many", 10), option.WithResponseInto(&raw))
	var apiErr *anthropic.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 429 || apiErr.Type() != "rate_limit_error" {
		t.Fatalf("30th call: %v, want a 429 rate_limit_error", err)
	}
	if raw.Header.Get(proxy.HeaderLimited) != "requests" || raw.Header.Get(proxy.HeaderOrigin) != "proxy" ||
		raw.Header.Get("Retry-After") == "" || !strings.HasPrefix(apiErr.RequestID, "req_ccap_") {
		t.Errorf("refusal headers %v, request id %q", raw.Header, apiErr.RequestID)
	}
	// A second pod with waiting on shares the pool and gets in once it has room.
	_, waiterURL := r.addProxy(t, proxy.Config{MaxWait: 10 * time.Second})
	start := time.Now()
	waiter := client(waiterURL)
	if _, err := waiter.Messages.New(context.Background(), params("patient", 10)); err != nil {
		t.Fatalf("waiting call: %v", err)
	}
	// The bucket held about 1 request of the 1.125 a call needs (with the margin):
	// room comes after about a quarter second of refill at one request per 2 s.
	if waited := time.Since(start); waited < 150*time.Millisecond {
		t.Errorf("admitted after %s although the pool had no room for about 0.25 s", waited)
	}
}

func TestSDKGetsUpstreamErrors(t *testing.T) {
	for _, tc := range []struct {
		name     string
		mock     mockapi.Config
		others   int // calls another user of the organization makes first, past the proxy
		calls    int
		status   int
		errType  string
		recorded func(ratelimit.UsageSample) int64
	}{
		{"429", mockapi.Config{Limits: map[string]mockapi.Limits{"sonnet-4": {RequestsPerMinute: 1}}, OutputTokens: mockapi.Fixed(3)},
			1, 1, 429, "rate_limit_error", func(s ratelimit.UsageSample) int64 { return s.RateLimited }},
		{"529", mockapi.Config{Faults: mockapi.Faults{Overloaded: 1}},
			0, 1, 529, "overloaded_error", func(s ratelimit.UsageSample) int64 { return s.Overloaded }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, tc.mock, bigLimits, proxy.Config{})
			direct := client(r.mock.URL)
			for range tc.others {
				if _, err := direct.Messages.New(context.Background(), params("elsewhere", 100)); err != nil {
					t.Fatalf("a call past the proxy: %v", err)
				}
			}
			var raw rawCapture
			var err error
			c := client(r.url, option.WithMiddleware(raw.middleware))
			for range tc.calls {
				_, err = c.Messages.New(context.Background(), params("hi", 100))
			}
			var apiErr *anthropic.Error
			if !errors.As(err, &apiErr) || apiErr.StatusCode != tc.status || string(apiErr.Type()) != tc.errType {
				t.Fatalf("got %v, want %d %s", err, tc.status, tc.errType)
			}
			up := r.rec.last(t)
			if !bytes.Equal(raw.body.Bytes(), up.body) || raw.resp.Header.Get(proxy.HeaderOrigin) != "" || apiErr.RequestID != up.header.Get("Request-Id") {
				t.Errorf("error not passed through unchanged: %q vs %q, headers %v", raw.body.Bytes(), up.body, raw.resp.Header)
			}
			sameHeaders(t, up.header, raw.resp.Header)
			u := r.usage(t)
			if tc.recorded(u.UsageSample) != 1 || u.Requests != int64(tc.calls) {
				t.Errorf("usage %+v: want the upstream %d counted once and %d requests", u.UsageSample, tc.status, tc.calls)
			}
			st, ok, err := ratelimit.ReadUpstream(context.Background(), r.rdb, testPool)
			if err != nil || !ok || st.Status != tc.status {
				t.Errorf("published upstream state %+v ok=%v err=%v", st, ok, err)
			}
		})
	}
}

func TestSDKKeyInjection(t *testing.T) {
	const realKey = "sk-ant-real-key-abcdef"
	mockCfg := mockapi.Config{APIKeys: []string{realKey}, OutputTokens: mockapi.Fixed(2)}
	r := newRig(t, mockCfg, bigLimits, proxy.Config{APIKey: realKey})
	// The worker's own key is wrong; the proxy's replaces it.
	injected := client(r.url)
	if _, err := injected.Messages.New(context.Background(), params("hi", 10)); err != nil {
		t.Fatalf("with an injected key: %v", err)
	}
	// Without injection the worker's wrong key reaches the mock and fails.
	_, plainURL := r.addProxy(t, proxy.Config{})
	plain := client(plainURL)
	_, err := plain.Messages.New(context.Background(), params("hi", 10))
	var apiErr *anthropic.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 401 || apiErr.Type() != "authentication_error" {
		t.Errorf("without injection: %v, want 401 authentication_error", err)
	}
}

func TestReadyzFollowsRedis(t *testing.T) {
	srv := redistest.Start(t)
	for _, tc := range []struct {
		policy   ratelimit.UnavailablePolicy
		downCode int
	}{{ratelimit.FailClosed, 503}, {ratelimit.LocalShare, 200}} {
		// Ready needs the pool configured (a restarted redis-server starts empty).
		if err := ratelimit.WritePoolConfig(context.Background(), srv.Client(), testPool, ratelimit.PoolConfig{Limits: bigLimits}); err != nil {
			t.Fatal(err)
		}
		lim, err := proxy.NewRedisLimiter(srv.Client(), ratelimit.Options{Pool: testPool, OnUnavailable: tc.policy})
		if err != nil {
			t.Fatal(err)
		}
		p, err := proxy.New(proxy.Config{Upstream: "http://127.0.0.1:9", Logger: slog.New(slog.DiscardHandler)}, lim)
		if err != nil {
			t.Fatal(err)
		}
		hs := httptest.NewServer(p.OpsHandler())
		code := func() int {
			resp, err := http.Get(hs.URL + "/readyz")
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
			return resp.StatusCode
		}
		if got := code(); got != 200 {
			t.Errorf("policy %d, Redis up: readyz %d", tc.policy, got)
		}
		srv.Stop()
		if got := code(); got != tc.downCode {
			t.Errorf("policy %d, Redis down: readyz %d, want %d", tc.policy, got, tc.downCode)
		}
		srv.Restart()
		hs.Close()
	}
}

// With Redis down and the default fail-closed policy, calls are refused
// with a clear 503 and never reach the API.
func TestFailClosedWhenRedisIsDown(t *testing.T) {
	srv := redistest.Start(t)
	if err := ratelimit.WritePoolConfig(context.Background(), srv.Client(), testPool, ratelimit.PoolConfig{Limits: bigLimits}); err != nil {
		t.Fatal(err)
	}
	m, err := mockapi.New(mockapi.Config{})
	if err != nil {
		t.Fatal(err)
	}
	rec := &wireRecorder{next: m}
	mock := httptest.NewServer(rec)
	defer mock.Close()
	lim, err := proxy.NewRedisLimiter(srv.Client(), ratelimit.Options{Pool: testPool})
	if err != nil {
		t.Fatal(err)
	}
	p, err := proxy.New(proxy.Config{Upstream: mock.URL, Logger: slog.New(slog.DiscardHandler)}, lim)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(p.Handler())
	defer hs.Close()
	srv.Stop()
	c := client(hs.URL)
	_, err = c.Messages.New(context.Background(), params("hi", 10))
	var apiErr *anthropic.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 503 || !strings.Contains(apiErr.Message, "unavailable") {
		t.Errorf("got %v, want 503 naming the unavailable limiter", err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.seen) != 0 {
		t.Errorf("%d calls reached the API while the limiter was down", len(rec.seen))
	}
}
