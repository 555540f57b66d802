package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/claudecap/claudecap/pkg/dimension"

	"github.com/anthropics/anthropic-sdk-go/v2"
)

func TestStreamingMeasuresTTFTAndInterToken(t *testing.T) {
	api := newTestAPI(t, func(a *testAPI) {
		a.ttft = 60 * time.Millisecond
		a.tokenGap = 10 * time.Millisecond
		a.outputTokens = 11
	})
	rep, err := Run(context.Background(), Config{Mode: ModeClosed, Concurrency: 2, MaxRequests: 6},
		newTestSender(t, api.URL(), true, 0))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Requests.Succeeded != 6 {
		t.Fatalf("requests %+v, errors %+v", rep.Requests, rep.ErrorSamples)
	}
	ttft := rep.Latency.TimeToFirstToken
	if ttft.Count != 6 || ttft.P50Ms < 60 || ttft.P50Ms > 500 {
		t.Fatalf("TTFT %+v, want about 60 ms", ttft)
	}
	itl := rep.Latency.InterToken
	if itl.Count != 6 || itl.P50Ms < 9 || itl.P50Ms > 60 {
		t.Fatalf("inter-token %+v, want about 10 ms", itl)
	}
	e2e := rep.Latency.EndToEnd
	if e2e.P50Ms < 160 {
		t.Fatalf("end-to-end p50 %.1f ms, want at least 60 + 10 x 10", e2e.P50Ms)
	}
	if rep.Tokens.Output != 66 || rep.Tokens.Input != 6*testInputTokens {
		t.Fatalf("tokens %+v, want 66 out and %d in", rep.Tokens, 6*testInputTokens)
	}
	if rep.Tokens.AvgOutputTokens != 11 {
		t.Fatalf("avg output %v, want 11", rep.Tokens.AvgOutputTokens)
	}
}

func TestNonStreamingUsageAndHeaders(t *testing.T) {
	api := newTestAPI(t, func(a *testAPI) { a.outputTokens = 7 })
	rep, err := Run(context.Background(), Config{Mode: ModeClosed, Concurrency: 1, MaxRequests: 5},
		newTestSender(t, api.URL(), false, 0))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Tokens.Output != 35 || rep.Latency.TimeToFirstToken.Count != 0 {
		t.Fatalf("tokens %+v ttft %+v", rep.Tokens, rep.Latency.TimeToFirstToken)
	}
	req := rep.RateLimits[DimensionOf(dimension.Requests)]
	// The server counts down from 999 for request 0; request 4 sees 995.
	if req.Limit != 1000 || req.MinRemaining != 995 || req.Responses != 5 {
		t.Fatalf("requests limit observation %+v", req)
	}
	if in := rep.RateLimits[DimensionOf(dimension.InputTokens)]; in.Limit != 30000 || in.MinRemaining != 29000 {
		t.Fatalf("input-tokens observation %+v", in)
	}
	api.mu.Lock()
	defer api.mu.Unlock()
	if api.apiKeys[testAPIKey] != 5 {
		t.Fatalf("server saw keys %v", api.apiKeys)
	}
}

func TestErrorClassesThroughSDK(t *testing.T) {
	statuses := []int{200, 429, 529, 500, 400, 503}
	api := newTestAPI(t, func(a *testAPI) {
		a.status = func(n int64) int { return statuses[n%int64(len(statuses))] }
	})
	rep, err := Run(context.Background(), Config{Mode: ModeClosed, Concurrency: 1, MaxRequests: 12},
		newTestSender(t, api.URL(), false, 0))
	if err != nil {
		t.Fatal(err)
	}
	want := map[Class]int64{ClassOK: 2, ClassRateLimited: 2, ClassOverloaded: 2, ClassServerError: 4, ClassClientError: 2}
	for c, n := range want {
		if rep.Classes[c] != n {
			t.Errorf("%s: got %d, want %d (all %v)", c, rep.Classes[c], n, rep.Classes)
		}
	}
	if rep.StatusCodes["529"] != 2 || rep.StatusCodes["429"] != 2 || rep.Requests.Attempts != 12 {
		t.Errorf("status codes %v attempts %d", rep.StatusCodes, rep.Requests.Attempts)
	}
	if rep.RetryAfter.Seen != 2 || rep.RetryAfter.MaxSeconds != 1 {
		t.Errorf("retry-after %+v, want 2 seen at 1 s", rep.RetryAfter)
	}
	assertNoKey(t, rep)
}

func TestRetriesCountEveryAttempt(t *testing.T) {
	api := newTestAPI(t, func(a *testAPI) {
		a.retryAfter = "0"
		a.status = func(int64) int { return http.StatusTooManyRequests }
	})
	rep, err := Run(context.Background(), Config{Mode: ModeClosed, Concurrency: 1, MaxRequests: 3},
		newTestSender(t, api.URL(), false, 2))
	if err != nil {
		t.Fatal(err)
	}
	if api.requests.Load() != 9 || rep.Requests.Attempts != 9 || rep.StatusCodes["429"] != 9 {
		t.Fatalf("2 retries x 3 requests: server %d, attempts %d, codes %v", api.requests.Load(), rep.Requests.Attempts, rep.StatusCodes)
	}
	if rep.Requests.Sent != 3 || rep.Classes[ClassRateLimited] != 3 {
		t.Fatalf("logical requests %+v classes %v", rep.Requests, rep.Classes)
	}
}

func TestMidStreamErrorAndTruncation(t *testing.T) {
	over := newTestAPI(t, func(a *testAPI) { a.midStreamError = "overloaded_error" })
	rep, err := Run(context.Background(), Config{Mode: ModeClosed, Concurrency: 1, MaxRequests: 2},
		newTestSender(t, over.URL(), true, 0))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Classes[ClassOverloaded] != 2 || rep.MidStreamErrors != 2 || rep.StatusCodes["200"] != 2 {
		t.Fatalf("mid-stream overload: classes %v mid-stream %d codes %v", rep.Classes, rep.MidStreamErrors, rep.StatusCodes)
	}

	cut := newTestAPI(t, func(a *testAPI) { a.truncate = true })
	rep, err = Run(context.Background(), Config{Mode: ModeClosed, Concurrency: 1, MaxRequests: 2},
		newTestSender(t, cut.URL(), true, 0))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Classes[ClassTransport] != 2 || rep.Requests.Succeeded != 0 {
		t.Fatalf("truncated stream must be a transport failure: classes %v", rep.Classes)
	}
}

func TestTransportErrorWhenServerIsGone(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	rep, err := Run(context.Background(), Config{Mode: ModeClosed, Concurrency: 1, MaxRequests: 2},
		newTestSender(t, url, false, 0))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Classes[ClassTransport] != 2 || rep.StatusCodes["transport"] != 2 {
		t.Fatalf("classes %v codes %v", rep.Classes, rep.StatusCodes)
	}
}

// TestNeverFollowsRedirects: a redirect must not carry the request, and
// its x-api-key header, to another host.
func TestNeverFollowsRedirects(t *testing.T) {
	elsewhere := newTestAPI(t, nil)
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL()+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer redirector.Close()
	rep, err := Run(context.Background(), Config{Mode: ModeClosed, Concurrency: 1, MaxRequests: 2},
		newTestSender(t, redirector.URL, false, 0))
	if err != nil {
		t.Fatal(err)
	}
	if elsewhere.requests.Load() != 0 {
		t.Fatalf("the redirect target received %d requests", elsewhere.requests.Load())
	}
	if rep.Requests.Succeeded != 0 || rep.StatusCodes["307"] != 2 {
		t.Fatalf("codes %v", rep.StatusCodes)
	}
}

func TestEnvironmentDoesNotRedirectRequests(t *testing.T) {
	decoy := newTestAPI(t, nil)
	target := newTestAPI(t, nil)
	t.Setenv("ANTHROPIC_BASE_URL", decoy.URL())
	t.Setenv("ANTHROPIC_API_KEY", "sk-ant-env-key")
	_, err := Run(context.Background(), Config{Mode: ModeClosed, Concurrency: 1, MaxRequests: 2},
		newTestSender(t, target.URL(), false, 0))
	if err != nil {
		t.Fatal(err)
	}
	if decoy.requests.Load() != 0 || target.requests.Load() != 2 {
		t.Fatalf("decoy %d, target %d: only the configured base URL may be used", decoy.requests.Load(), target.requests.Load())
	}
	target.mu.Lock()
	defer target.mu.Unlock()
	if target.apiKeys["sk-ant-env-key"] != 0 {
		t.Fatal("the configured key must win over the environment")
	}
}

func assertNoKey(t *testing.T, rep *Report) {
	t.Helper()
	var out bytes.Buffer
	if err := rep.WriteJSON(&out); err != nil {
		t.Fatal(err)
	}
	if err := rep.WriteSummary(&out); err != nil {
		t.Fatal(err)
	}
	if err := rep.WriteHTML(&out); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), testAPIKey) || strings.Contains(out.String(), "SECRET") {
		t.Fatal("a report contains the API key")
	}
}

func TestNewSDKSenderValidation(t *testing.T) {
	req := []anthropic.MessageNewParams{testRequest(t)}
	bad := map[string]SDKSenderConfig{
		"no key":         {BaseURL: "http://127.0.0.1:1", Requests: req},
		"no requests":    {BaseURL: "http://127.0.0.1:1", APIKey: "k"},
		"bad url":        {BaseURL: "127.0.0.1:1", APIKey: "k", Requests: req},
		"negative retry": {BaseURL: "http://127.0.0.1:1", APIKey: "k", Requests: req, MaxRetries: -1},
	}
	for name, cfg := range bad {
		if _, err := NewSDKSender(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestReadRequestsJSONL(t *testing.T) {
	good := `{"model":"claude-haiku-4-5","max_tokens":32,"messages":[{"role":"user","content":"hi"}]}

{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,"system":"be brief","messages":[{"role":"user","content":[{"type":"text","text":"hello"}]}]}
`
	reqs, err := ReadRequestsJSONL(strings.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	if len(reqs) != 2 || reqs[0].Model != "claude-haiku-4-5" || reqs[1].MaxTokens != 64 {
		t.Fatalf("parsed %+v", reqs)
	}
	wire, err := json.Marshal(reqs[0])
	if err != nil || !strings.Contains(string(wire), `"hi"`) || !strings.Contains(string(wire), `"user"`) {
		t.Fatalf("string content lost on the way back to the wire: %s %v", wire, err)
	}
	// The requests really go out as written.
	api := newTestAPI(t, nil)
	s, err := NewSDKSender(SDKSenderConfig{BaseURL: api.URL(), APIKey: "k", Requests: reqs})
	if err != nil {
		t.Fatal(err)
	}
	for seq := range int64(4) {
		if out := s.Send(context.Background(), seq); out.Class != ClassOK {
			t.Fatalf("request %d: %s %v", seq, out.Class, out.Err)
		}
	}

	bad := map[string]string{
		"empty":        "\n\n",
		"not json":     "model: x\n",
		"no model":     `{"max_tokens":1,"messages":[{"role":"user","content":"x"}]}`,
		"zero tokens":  `{"model":"m","max_tokens":0,"messages":[{"role":"user","content":"x"}]}`,
		"no messages":  `{"model":"m","max_tokens":1,"messages":[]}`,
		"second line":  `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}]}` + "\n{",
		"wrong shapes": `{"model":"m","max_tokens":"many","messages":[{"role":"user","content":"x"}]}`,
	}
	for name, in := range bad {
		_, err := ReadRequestsJSONL(strings.NewReader(in))
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if name == "second line" && !strings.Contains(err.Error(), "line 2") {
			t.Errorf("error should name line 2: %v", err)
		}
	}
	if _, err := (RequestSpec{Model: "m", MaxTokens: 0, Prompt: "x"}).Build(); err == nil {
		t.Error("max_tokens 0 accepted")
	}
}
