package cli

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"

	"github.com/claudecap/claudecap/internal/testutil/redistest"
	"github.com/claudecap/claudecap/pkg/mockapi"
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
		"--organization", "acme", "--wait", "3s", "--coalesce", "--class", "opus-4", "--api-key-file", keyFile,
		"--max-body-bytes", "1000", "--upstream", "http://127.0.0.1:9", "--publish-interval", "0",
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
		{[]string{}, "--organization is required"},
		{[]string{"--organization", "acme", "--api-key-file", twoLines}, "one non-empty line"},
		{[]string{"--organization", "acme", "--api-key-file", filepath.Join(dir, "missing")}, "reading the API key file"},
		{[]string{"--organization", "acme", "--api-key-env", "CLAUDECAP_TEST_UNSET_KEY"}, "holds no API key"},
		{[]string{"--organization", "acme", "--api-key-env", "X", "--api-key-file", twoLines}, "exclusive"},
		{[]string{"--organization", "acme", "--on-redis-unavailable", "pray"}, "fail-closed or local-share"},
		{[]string{"--organization", "acme", "--log-level", "chatty"}, "--log-level"},
		{[]string{"--organization", "acme", "--wait", "-1s"}, "--wait"},
		{[]string{"--organization", "no spaces allowed"}, "invalid pool organization"},
		{[]string{"--organization", "acme", "--upstream", "ftp://x"}, "scheme"},
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
