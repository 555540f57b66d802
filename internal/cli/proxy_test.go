package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"

	"github.com/claudecap/claudecap/internal/testutil/redistest"
	"github.com/claudecap/claudecap/pkg/mockapi"
	"github.com/claudecap/claudecap/pkg/proxy"
	"github.com/claudecap/claudecap/pkg/ratelimit"
)

func TestProxyFlagsToConfig(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte("  sk-ant-from-file \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	o := &proxyOptions{}
	cmd := proxyCommand(o)
	if err := cmd.Flags().Parse([]string{
		"--organization", "acme", "--workload", "ai/summarizer", "--wait", "3s", "--coalesce", "--class", "opus-4", "--api-key-file", keyFile,
		"--max-body-bytes", "1000", "--upstream", "http://127.0.0.1:9", "--publish-interval", "0",
		"--allow-path-prefix", "/v1/messages/batches,/v1/files", "--allowed-host", "proxy.internal", "--allowed-origin", "https://tool.example",
	}); err != nil {
		t.Fatal(err)
	}
	cfg, err := o.config(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MaxWait != 3*time.Second || !cfg.Coalesce || cfg.Class != "opus-4" || string(cfg.APIKey) != "sk-ant-from-file" ||
		cfg.MaxBodyBytes != 1000 || cfg.Upstream != "http://127.0.0.1:9" || cfg.PublishInterval != -1 {
		t.Errorf("config %+v", cfg)
	}
	if !slices.Equal(cfg.AllowedPathPrefixes, []string{"/v1/messages/batches", "/v1/files"}) ||
		!slices.Equal(cfg.AllowedHosts, []string{"proxy.internal"}) || !slices.Equal(cfg.AllowedOrigins, []string{"https://tool.example"}) {
		t.Errorf("allowlists %q %q %q", cfg.AllowedPathPrefixes, cfg.AllowedHosts, cfg.AllowedOrigins)
	}
	o.apiKeyFile, o.apiKeyEnv = "", "MY_KEY"
	cfg, err = o.config(func(name string) string {
		if name == "MY_KEY" {
			return "sk-ant-from-env"
		}
		return ""
	})
	if err != nil || string(cfg.APIKey) != "sk-ant-from-env" {
		t.Errorf("key from env: %v %v", cfg.APIKey == "sk-ant-from-env", err)
	}
}

func TestProxyWithoutOrganizationDrawsOnThePrivatePool(t *testing.T) {
	o := &proxyOptions{}
	cmd := proxyCommand(o)
	if err := cmd.Flags().Parse([]string{"--workload", "ai/classifier", "--publish-interval", "0"}); err != nil {
		t.Fatal(err)
	}
	if _, err := o.config(func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	// The controller keys a private pool <namespace>.<name> (ClaudeCapacity status.pool).
	if o.organization != "ai.classifier" {
		t.Errorf("organization = %q, want the private pool ai.classifier", o.organization)
	}
}

func TestProxyFlagErrors(t *testing.T) {
	dir := t.TempDir()
	twoLines := filepath.Join(dir, "two")
	if err := os.WriteFile(twoLines, []byte("sk-ant-secret-a\nsk-ant-secret-b\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{}, "--workload is required"},
		{[]string{"--organization", "acme"}, "--workload is required"},
		{[]string{"--workload", "x"}, "want <namespace>/<name>"},
		{[]string{"--workload", "ai/x/y"}, "want <namespace>/<name>"},
		{[]string{"--organization", "acme", "--workload", "ai/x", "--api-key-file", twoLines}, "one non-empty line"},
		{[]string{"--organization", "acme", "--workload", "ai/x", "--api-key-file", filepath.Join(dir, "missing")}, "reading the API key file"},
		{[]string{"--organization", "acme", "--workload", "ai/x", "--api-key-env", "CLAUDECAP_TEST_UNSET_KEY"}, "holds no API key"},
		{[]string{"--organization", "acme", "--workload", "ai/x", "--api-key-env", "X", "--api-key-file", twoLines}, "exclusive"},
		{[]string{"--organization", "acme", "--workload", "ai/x", "--on-redis-unavailable", "pray"}, "fail-closed or local-share"},
		{[]string{"--organization", "acme", "--workload", "ai/x", "--log-level", "chatty"}, "--log-level"},
		{[]string{"--organization", "acme", "--workload", "ai/x", "--wait", "-1s"}, "--wait"},
		{[]string{"--organization", "no spaces allowed", "--workload", "ai/x"}, "invalid pool organization"},
		{[]string{"--organization", "acme", "--workload", "no spaces"}, "invalid workload name"},
		{[]string{"--organization", "acme", "--workload", "ai/x", "--upstream", "ftp://x"}, "scheme"},
		{[]string{"--organization", "acme", "--workload", "ai/x", "--read-timeout", "0"}, "must be positive"},
		{[]string{"--organization", "acme", "--workload", "ai/x", "--allowed-host", "http://x"}, "allowed host"},
		{[]string{"--organization", "acme", "--workload", "ai/x", "--allow-path-prefix", "/v1/files/"}, "allowed path prefix"},
	} {
		cmd := newProxyCommand()
		var stderr bytes.Buffer
		cmd.SetArgs(append(tc.args, "--listen", "127.0.0.1:0", "--ops-listen", ""))
		cmd.SetOut(io.Discard)
		cmd.SetErr(&stderr)
		err := cmd.ExecuteContext(context.Background())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error()+stderr.String(), "sk-ant-secret") {
			t.Errorf("%v: the error shows the key file's content: %v", tc.args, err)
		}
	}
}

// proxyLogBuffer is a bytes.Buffer safe for a writer and a poller.
type proxyLogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *proxyLogBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *proxyLogBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The command end to end: real Redis, the mock as upstream, the SDK as
// worker, with an injected key; then a clean shutdown.
func TestProxyCommandServes(t *testing.T) {
	srv := redistest.Start(t)
	pool := ratelimit.PoolKey{Organization: "acme", Class: "sonnet-4"}
	limits := ratelimit.Limits{RequestsPerMinute: 100, InputTokensPerMinute: 100000, OutputTokensPerMinute: 100000}
	if err := ratelimit.WritePoolConfig(context.Background(), srv.Client(), pool, ratelimit.PoolConfig{Limits: limits}); err != nil {
		t.Fatal(err)
	}
	const realKey = "sk-ant-cli-real-key"
	m, err := mockapi.New(mockapi.Config{APIKeys: []string{realKey}, OutputTokens: mockapi.Fixed(4)})
	if err != nil {
		t.Fatal(err)
	}
	upstream := httptest.NewServer(m)
	defer upstream.Close()
	t.Setenv("CLAUDECAP_TEST_PROXY_KEY", realKey)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out, logs := &proxyLogBuffer{}, &proxyLogBuffer{}
	cmd := newProxyCommand()
	cmd.SetArgs([]string{
		"--organization", "acme", "--workload", "ai/cli-test", "--redis-addr", srv.Addr(), "--upstream", upstream.URL,
		"--api-key-env", "CLAUDECAP_TEST_PROXY_KEY", "--listen", "127.0.0.1:0", "--ops-listen", "127.0.0.1:0", "--log-level", "debug",
	})
	cmd.SetOut(out)
	cmd.SetErr(logs)
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()

	addrs := regexp.MustCompile(`http://(127\.0\.0\.1:\d+)`)
	var found [][]string
	for deadline := time.Now().Add(10 * time.Second); len(found) < 3 && time.Now().Before(deadline); {
		select {
		case err := <-done:
			t.Fatalf("the command ended early: %v\n%s", err, logs.String())
		case <-time.After(10 * time.Millisecond):
		}
		found = addrs.FindAllStringSubmatch(out.String(), -1)
	}
	if len(found) < 3 {
		t.Fatalf("no listen addresses in %q", out.String())
	}
	api, ops := found[0][1], found[2][1]

	c := anthropic.NewClient(option.WithBaseURL("http://"+api), option.WithAPIKey("sk-ant-worker-wrong"), option.WithMaxRetries(0))
	msg, err := c.Messages.New(context.Background(), anthropic.MessageNewParams{
		Model: "claude-sonnet-4-5", MaxTokens: 50,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hello"))},
	})
	if err != nil {
		t.Fatalf("call through the command's proxy: %v", err)
	}
	if msg.Usage.OutputTokens != 4 {
		t.Errorf("usage %+v", msg.Usage)
	}
	resp, err := http.Get("http://" + ops + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("readyz %d", resp.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("shutdown: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the command did not stop")
	}
	// Shutdown drained the settlement: the usage is recorded.
	u, err := ratelimit.ReadUsage(context.Background(), srv.Client(), pool, "ai/cli-test", time.Minute)
	if err != nil || u.Requests != 1 || u.OutputTokens != 4 {
		t.Errorf("usage after shutdown %+v, %v", u.UsageSample, err)
	}
	if strings.Contains(logs.String(), realKey) || strings.Contains(logs.String(), "sk-ant-worker-wrong") || !strings.Contains(logs.String(), "call finished") {
		t.Errorf("logs leak a key or lack the call:\n%s", logs.String())
	}
}

// stubLimiter admits everything and counts settlements.
type stubLimiter struct{ settled chan ratelimit.Actual }

func (s *stubLimiter) TryReserve(context.Context, string, ratelimit.Amounts) (proxy.Reservation, error) {
	return stubReservation{s}, nil
}

func (s *stubLimiter) Wait(ctx context.Context, class string, cost ratelimit.Amounts) (proxy.Reservation, error) {
	return s.TryReserve(ctx, class, cost)
}

func (*stubLimiter) RecordUpstream(context.Context, string, ratelimit.Upstream) error { return nil }

func (*stubLimiter) RecordUpstreamErrors(context.Context, string, ratelimit.UsageSample) error {
	return nil
}

func (*stubLimiter) Ready(context.Context) error { return nil }

type stubReservation struct{ s *stubLimiter }

func (r stubReservation) Settle(_ context.Context, used ratelimit.Actual) error {
	r.s.settled <- used
	return nil
}

func (stubReservation) Cancel(context.Context) error { return nil }

// startProxyCommand runs runProxy with o (listening on loopback, ops on the
// API listener) in front of upstream until the test ends; it returns the
// API address.
func startProxyCommand(t *testing.T, o *proxyOptions, upstream string, lim proxy.Limiter) string {
	t.Helper()
	o.listen, o.opsListen = "127.0.0.1:0", ""
	ctx, cancel := context.WithCancel(context.Background())
	out := &proxyLogBuffer{}
	done := make(chan error, 1)
	cfg := proxy.Config{Upstream: upstream, Logger: slog.New(slog.DiscardHandler), SettleTimeout: time.Second}
	go func() { done <- runProxy(ctx, out, o, cfg, lim) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("the proxy ended with %v", err)
		}
	})
	return waitForAddr(t, out, "listening on ", done)
}

// Slow clients are cut off by the timeouts the options set.
func TestProxyServerCutsSlowClients(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"data":[]}`)
	}))
	defer upstream.Close()
	addr := startProxyCommand(t, &proxyOptions{timeouts: shortTimeouts}, upstream.URL, &stubLimiter{settled: make(chan ratelimit.Actual, 10)})
	assertSlowClientsCut(t, addr, "/v1/messages")
}

// A client that stops reading a stream is cut off after --write-idle-timeout:
// the call is settled and the upstream released, while a stream that keeps
// flowing has no overall write timeout.
func TestProxyServerCutsClientsThatStopReading(t *testing.T) {
	event := "event: content_block_delta\ndata: " + strings.Repeat("x", 32<<10) + "\n\n"
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for range 8 << 10 { // 256 MiB at most: far more than socket buffers hold
			if _, err := io.WriteString(w, event); err != nil {
				return
			}
		}
	}))
	defer upstream.Close()
	lim := &stubLimiter{settled: make(chan ratelimit.Actual, 10)}
	addr := startProxyCommand(t, &proxyOptions{timeouts: shortTimeouts}, upstream.URL, lim)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	body := `{"model":"claude-sonnet-4-5","max_tokens":10,"stream":true,"messages":[{"role":"user","content":"hi"}]}`
	_, err = fmt.Fprintf(conn, "POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Api-Key: k\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	if err != nil {
		t.Fatal(err)
	}
	// The client never reads.
	select {
	case <-lim.settled:
	case <-time.After(10 * time.Second):
		t.Fatal("a client that stopped reading still holds its call after 10 s (--write-idle-timeout 500ms)")
	}
}
