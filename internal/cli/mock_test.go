package cli

import (
	"bytes"
	"context"
	"net/http"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"

	"github.com/claudecap/claudecap/pkg/mockapi"
)

func TestMockFlagsToConfig(t *testing.T) {
	o := &mockOptions{}
	cmd := mockCommand(o)
	err := cmd.Flags().Parse([]string{
		"--tier", "tier-2", "--limit", "sonnet-4=10/2_000/300", "--otpm-mode", "reserve",
		"--ttft", "normal:600ms,150ms", "--per-token", "fixed:10ms", "--output-tokens", "uniform:5,9",
		"--fault-overloaded", "0.1", "--seed", "9", "--acceleration",
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := o.config()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Tier != "tier-2" || cfg.Limits["sonnet-4"] != (mockapi.Limits{RequestsPerMinute: 10, InputTokensPerMinute: 2000, OutputTokensPerMinute: 300}) {
		t.Errorf("limits: %+v", cfg)
	}
	if cfg.OTPMMode != mockapi.OTPMReserveMaxTokens || cfg.Seed != 9 || !cfg.Acceleration.Enabled || cfg.Faults.Overloaded != 0.1 {
		t.Errorf("switches: %+v", cfg)
	}
	if cfg.Latency.TimeToFirstToken != (mockapi.Distribution{Kind: mockapi.DistNormal, Mean: 0.6, StdDev: 0.15}) ||
		cfg.Latency.PerToken != mockapi.Fixed(0.01) || cfg.OutputTokens != (mockapi.Distribution{Kind: mockapi.DistUniform, Min: 5, Max: 9}) {
		t.Errorf("distributions: %+v %+v", cfg.Latency, cfg.OutputTokens)
	}
}

func TestMockFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--limit", "sonnet-4=10/20"},
		{"--limit", "=1/2/3"},
		{"--limit", "sonnet-4=a/2/3"},
		{"--ttft", "soon"},
		{"--output-tokens", "0"},
		{"--tier", "tier-7"},
		{"--fault-dropped", "2"},
	} {
		cmd := newMockCommand()
		cmd.SetArgs(append(args, "--listen", "127.0.0.1:0"))
		cmd.SetOut(&bytes.Buffer{})
		cmd.SetErr(&bytes.Buffer{})
		if err := cmd.ExecuteContext(context.Background()); err == nil {
			t.Errorf("%v: accepted", args)
		}
	}
}

// syncBuffer is a goroutine-safe output sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestMockCommandServes runs the command, talks to it with the SDK, and
// stops it by cancelling its context.
func TestMockCommandServes(t *testing.T) {
	out := &syncBuffer{}
	cmd := newMockCommand()
	cmd.SetArgs([]string{"--listen", "127.0.0.1:0", "--tier", "tier-1", "--output-tokens", "fixed:4"})
	cmd.SetOut(out)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()

	re := regexp.MustCompile(`listening on (http://127\.0\.0\.1:\d+)`)
	var url string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			url = m[1]
			break
		}
	}
	if url == "" {
		cancel()
		t.Fatalf("no address printed: %q", out.String())
	}
	client := anthropic.NewClient(option.WithBaseURL(url), option.WithAPIKey("test-key"))
	var raw *http.Response
	msg, err := client.Messages.New(ctx, anthropic.MessageNewParams{
		Model: "claude-haiku-4-5", MaxTokens: 10,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("ping"))},
	}, option.WithResponseInto(&raw))
	if err != nil {
		t.Fatal(err)
	}
	if msg.Usage.OutputTokens != 4 || raw.Header.Get("anthropic-ratelimit-requests-limit") != "50" {
		t.Errorf("output %d, requests-limit %q", msg.Usage.OutputTokens, raw.Header.Get("anthropic-ratelimit-requests-limit"))
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("command ended with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("command did not stop after cancel")
	}
}

// Slow clients are cut off by the timeouts the flags set.
func TestMockServerCutsSlowClients(t *testing.T) {
	o := &mockOptions{}
	cmd := mockCommand(o)
	cmd.SetArgs([]string{"--listen", "127.0.0.1:0", "--read-header-timeout", "300ms", "--read-timeout", "600ms", "--idle-timeout", "300ms"})
	out := &syncBuffer{}
	cmd.SetOut(out)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("the mock ended with %v", err)
		}
	})
	addr := waitForAddr(t, out, "listening on ", done)
	if want := (serverTimeouts{readHeader: 300 * time.Millisecond, read: 600 * time.Millisecond, idle: 300 * time.Millisecond, writeIdle: 2 * time.Minute}); o.timeouts != want {
		t.Errorf("flags set %+v, want %+v", o.timeouts, want)
	}
	assertSlowClientsCut(t, addr, "/v1/messages")
}
