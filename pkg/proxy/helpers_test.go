package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/claudecap/claudecap/pkg/ratelimit"
)

// fakeLimiter records what the proxy asked of the limiter; refuse, when set,
// is every admission's answer.
type fakeLimiter struct {
	mu           sync.Mutex
	refuse       error
	readyErr     error
	reserved     []ratelimit.Amounts
	classes      []string
	settled      []ratelimit.Actual
	cancelled    int
	upstream     []ratelimit.Upstream
	upstreamErrs []ratelimit.UsageSample
}

func (f *fakeLimiter) TryReserve(_ context.Context, class string, cost ratelimit.Amounts) (Reservation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refuse != nil {
		return nil, f.refuse
	}
	f.reserved = append(f.reserved, cost)
	f.classes = append(f.classes, class)
	return &fakeReservation{f: f}, nil
}

// Wait never finds room when refusing: it sleeps until ctx ends, as the real
// Wait does when the pool stays full.
func (f *fakeLimiter) Wait(ctx context.Context, class string, cost ratelimit.Amounts) (Reservation, error) {
	f.mu.Lock()
	refuse := f.refuse
	f.mu.Unlock()
	if refuse != nil {
		<-ctx.Done()
		return nil, fmt.Errorf("waiting: %w", errors.Join(ctx.Err(), refuse))
	}
	return f.TryReserve(ctx, class, cost)
}

func (f *fakeLimiter) RecordUpstream(_ context.Context, _ string, u ratelimit.Upstream) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.upstream = append(f.upstream, u)
	return nil
}

func (f *fakeLimiter) RecordUpstreamErrors(_ context.Context, _ string, s ratelimit.UsageSample) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.upstreamErrs = append(f.upstreamErrs, s)
	return nil
}

func (f *fakeLimiter) Ready(context.Context) error { return f.readyErr }

type fakeReservation struct{ f *fakeLimiter }

func (r *fakeReservation) Settle(_ context.Context, used ratelimit.Actual) error {
	r.f.mu.Lock()
	defer r.f.mu.Unlock()
	r.f.settled = append(r.f.settled, used)
	return nil
}

func (r *fakeReservation) Cancel(context.Context) error {
	r.f.mu.Lock()
	defer r.f.mu.Unlock()
	r.f.cancelled++
	return nil
}

// snapshot copies the recorded calls once the proxy's background work is done.
func (f *fakeLimiter) snapshot(t *testing.T, p *Proxy) fakeLimiter {
	t.Helper()
	drain(t, p)
	f.mu.Lock()
	defer f.mu.Unlock()
	return fakeLimiter{
		reserved: append([]ratelimit.Amounts(nil), f.reserved...), classes: append([]string(nil), f.classes...),
		settled: append([]ratelimit.Actual(nil), f.settled...), cancelled: f.cancelled,
		upstream: append([]ratelimit.Upstream(nil), f.upstream...), upstreamErrs: append([]ratelimit.UsageSample(nil), f.upstreamErrs...),
	}
}

func drain(t testing.TB, p *Proxy) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Drain(ctx); err != nil {
		t.Fatalf("draining the proxy: %v", err)
	}
}

// logBuffer collects log output of concurrent goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startProxy serves a proxy to upstream over a real loopback listener;
// logs go to the returned buffer at debug level.
func startProxy(t testing.TB, cfg Config, lim Limiter) (*Proxy, *httptest.Server, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if cfg.PublishInterval == 0 {
		cfg.PublishInterval = -1
	}
	p, err := New(cfg, lim)
	if err != nil {
		t.Fatalf("proxy.New: %v", err)
	}
	hs := httptest.NewServer(p.Handler())
	t.Cleanup(func() {
		hs.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = p.Close(ctx)
	})
	return p, hs, logs
}

// recordedRequest is what a test upstream received.
type recordedRequest struct {
	Method, Path, Query, Host string
	Header                    http.Header
	Body                      []byte
}

// testUpstream is a scripted upstream that records its requests.
type testUpstream struct {
	*httptest.Server
	mu       sync.Mutex
	requests []recordedRequest
}

func startUpstream(t testing.TB, handler http.HandlerFunc) *testUpstream {
	t.Helper()
	u := &testUpstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.requests = append(u.requests, recordedRequest{r.Method, r.URL.Path, r.URL.RawQuery, r.Host, r.Header.Clone(), body})
		u.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		handler(w, r)
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *testUpstream) received() []recordedRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]recordedRequest(nil), u.requests...)
}

const okMessage = `{"id":"msg_1","type":"message","role":"assistant","content":[{"type":"text","text":"Hello!"}],` +
	`"model":"claude-sonnet-4-5","stop_reason":"end_turn","stop_sequence":null,` +
	`"usage":{"input_tokens":12,"output_tokens":6,"cache_creation_input_tokens":0,"cache_read_input_tokens":0}}`

// replyJSON answers every request with status and body, plus headers.
func replyJSON(status int, body string, headers ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Request-Id", "req_upstream")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

func messagesBody(model string, maxTokens int, stream bool, text string) string {
	return fmt.Sprintf(`{"model":%q,"max_tokens":%d,"stream":%v,"messages":[{"role":"user","content":%q}]}`, model, maxTokens, stream, text)
}

// reply is a response whose body was read and closed.
type reply struct {
	StatusCode int
	Header     http.Header
}

// post sends a Messages request with the given headers (pairs).
func post(t testing.TB, url, body string, headers ...string) (reply, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/v1/messages", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Anthropic-Version", "2023-06-01")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	// A cut body is returned as far as it came; callers compare bytes.
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Logf("reading the response: %v", err)
	}
	return reply{resp.StatusCode, resp.Header}, got
}
