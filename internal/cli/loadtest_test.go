package cli

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/claudecap/claudecap/pkg/loadtest"
	"github.com/claudecap/claudecap/pkg/mockapi"
)

const loadtestTestKey = "fake-key-cli-test-SECRET-0123456789"

// runLoadtest executes `claudecap loadtest args...` in-process with a test
// key and no ANTHROPIC_BASE_URL, and returns what it printed.
func runLoadtest(t *testing.T, args ...string) (string, error) {
	t.Helper()
	t.Setenv("ANTHROPIC_API_KEY", loadtestTestKey)
	t.Setenv("ANTHROPIC_BASE_URL", "")
	root := NewRootCommand()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(append([]string{"loadtest"}, args...))
	err := root.ExecuteContext(context.Background())
	if strings.Contains(out.String()+errOut.String(), loadtestTestKey) {
		t.Fatal("the API key was printed")
	}
	if err != nil && strings.Contains(err.Error(), loadtestTestKey) {
		t.Fatal("an error contains the API key")
	}
	return out.String(), err
}

// startMock serves the project's mock API on loopback.
func startMock(t *testing.T, cfg mockapi.Config) string {
	t.Helper()
	mock, err := mockapi.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mock)
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestLoadtestCommandJSONAndHTML(t *testing.T) {
	base := startMock(t, mockapi.Config{Seed: 3, OutputTokens: mockapi.Fixed(20)})
	report := filepath.Join(t.TempDir(), "report.html")
	out, err := runLoadtest(t, "--base-url", base, "--mode", "closed", "--concurrency", "4", "-n", "40",
		"--stream", "--max-tokens", "64", "-o", "json", "--report", report)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := loadtest.ReadReport(strings.NewReader(out))
	if err != nil {
		t.Fatalf("stdout is not a report: %v\n%s", err, out)
	}
	if rep.Requests.Sent != 40 || rep.Requests.Succeeded != 40 || rep.Config.Concurrency != 4 || rep.StopReason != loadtest.StopMaxRequests {
		t.Fatalf("report %+v stop %s", rep.Requests, rep.StopReason)
	}
	if rep.Config.Target.BaseURL != base || !rep.Config.Target.Stream || rep.Config.Target.Model != "claude-sonnet-4-5" {
		t.Fatalf("target %+v", rep.Config.Target)
	}
	if rep.Tokens.AvgOutputTokens != 20 || rep.Latency.TimeToFirstToken.Count != 40 {
		t.Fatalf("tokens %+v ttft %+v", rep.Tokens, rep.Latency.TimeToFirstToken)
	}
	page, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`<svg id="chart-latency"`, `<svg id="chart-status"`, "<polyline"} {
		if !strings.Contains(string(page), want) {
			t.Errorf("HTML report lacks %s", want)
		}
	}
}

func TestLoadtestCommandTableAndRequestFile(t *testing.T) {
	base := startMock(t, mockapi.Config{Seed: 3})
	file := filepath.Join(t.TempDir(), "requests.jsonl")
	lines := `{"model":"claude-haiku-4-5","max_tokens":16,"messages":[{"role":"user","content":"one"}]}
{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[{"role":"user","content":"two"}]}
`
	if err := os.WriteFile(file, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runLoadtest(t, "--base-url", base, "--rate", "50/s", "-n", "10", "--requests-file", file)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"open loop", "sent 10", "ok 10", "end-to-end", "model mixed", "schedule lag"} {
		if !strings.Contains(out, want) {
			t.Errorf("table output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\r") {
		t.Error("progress must not be written when stdout is not a terminal")
	}
}

func TestLoadtestCommandRefusesLargeRealAPIRuns(t *testing.T) {
	cases := [][]string{
		{"--rate", "10/s", "--duration", "1m"},                                     // unset base URL
		{"--base-url", "https://api.anthropic.com", "--rate", "5/s", "-n", "500"},  // explicit
		{"--base-url", "https://api.anthropic.com", "--mode", "closed", "-n", "0"}, // unbounded count
		{"--base-url", "https://api.anthropic.com", "--mode", "sweep", "--sweep-max-rate", "20/s"},
	}
	for _, args := range cases {
		_, err := runLoadtest(t, args...)
		if err == nil || !strings.Contains(err.Error(), "--yes") {
			t.Errorf("%v: want a refusal that mentions --yes, got %v", args, err)
		}
	}
	// The environment's base URL counts as the given one.
	t.Setenv("ANTHROPIC_BASE_URL", "https://api.anthropic.com")
	opts := &loadtestOptions{}
	if got := opts.resolveBaseURL(); got != "https://api.anthropic.com" {
		t.Errorf("resolveBaseURL = %q", got)
	}
}

func TestLoadtestCommandRejectsBadInput(t *testing.T) {
	base := "http://127.0.0.1:1"
	cases := map[string][]string{
		"unknown mode":        {"--mode", "burst"},
		"unknown output":      {"-o", "xml"},
		"bad rate":            {"--rate", "fast"},
		"ramp without target": {"--profile", "ramp"},
		"step without step":   {"--profile", "step"},
		"unknown profile":     {"--profile", "sine"},
		"unknown arrival":     {"--arrival", "bursty"},
		"sweep without max":   {"--mode", "sweep"},
		"no bound":            {"--duration", "0"},
		"no workers":          {"--mode", "closed", "--concurrency", "0"},
		"credentials in url":  {"--base-url", "http://user:pw@127.0.0.1:1"},
		"missing file":        {"--requests-file", filepath.Join(t.TempDir(), "nope.jsonl")},
		"bad max tokens":      {"--max-tokens", "0"},
	}
	for name, args := range cases {
		if name != "credentials in url" {
			args = append([]string{"--base-url", base}, args...)
		}
		if _, err := runLoadtest(t, args...); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	t.Setenv("ANTHROPIC_API_KEY", "")
	root := NewRootCommand()
	root.SetOut(&bytes.Buffer{})
	root.SetErr(&bytes.Buffer{})
	root.SetArgs([]string{"loadtest", "--base-url", base, "-n", "1"})
	if err := root.Execute(); err == nil || !strings.Contains(err.Error(), "ANTHROPIC_API_KEY") {
		t.Errorf("missing key: %v", err)
	}
}

func TestLoadtestCommandFailsWhenNothingSucceeds(t *testing.T) {
	base := startMock(t, mockapi.Config{APIKeys: []string{"some-other-key"}})
	out, err := runLoadtest(t, "--base-url", base, "--mode", "closed", "--concurrency", "1", "-n", "3")
	if err == nil {
		t.Fatal("a run where every request failed must exit non-zero")
	}
	if !strings.Contains(out, "4xx 3") {
		t.Fatalf("the summary must still be printed with the 401s:\n%s", out)
	}
}
