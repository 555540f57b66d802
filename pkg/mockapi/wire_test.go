package mockapi_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/claudecap/claudecap/pkg/mockapi"
)

// TestStreamEventSequence reads the raw stream: the exact event order, the
// ping, deltas that add up to the text, and cumulative usage.
func TestStreamEventSequence(t *testing.T) {
	_, hs := startMock(t, mockapi.Config{OutputTokens: mockapi.Fixed(7)})
	res := rawPost(t, hs.URL+"/v1/messages", `{"model":"claude-haiku-4-5","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"hello"}]}`, nil)
	defer func() { _ = res.Body.Close() }()
	if ct := res.Header.Get("content-type"); !strings.HasPrefix(ct, "text/event-stream") || res.Header.Get("request-id") == "" {
		t.Fatalf("content-type %q request-id %q", ct, res.Header.Get("request-id"))
	}
	events := readSSE(t, res.Body)
	var names []string
	var text strings.Builder
	for _, e := range events {
		names = append(names, e.name)
		var data struct {
			Type  string `json:"type"`
			Delta struct {
				Type string `json:"type"`
				Text string `json:"text"`
			} `json:"delta"`
			Usage map[string]int64 `json:"usage"`
		}
		if err := json.Unmarshal([]byte(e.data), &data); err != nil {
			t.Fatalf("event %s data %q: %v", e.name, e.data, err)
		}
		if data.Type != e.name {
			t.Errorf("event %s carries type %s", e.name, data.Type)
		}
		if e.name == "content_block_delta" {
			text.WriteString(data.Delta.Text)
		}
		if e.name == "message_delta" && (data.Usage["output_tokens"] != 7 || data.Usage["input_tokens"] != 5) {
			t.Errorf("message_delta usage = %v, want output 7 and input 5", data.Usage)
		}
	}
	want := "message_start content_block_start ping" + strings.Repeat(" content_block_delta", 7) + " content_block_stop message_delta message_stop"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("events:\n got %s\nwant %s", got, want)
	}
	if text.Len() != 28 {
		t.Errorf("streamed %d bytes of text, want 28", text.Len())
	}
}

func TestRequestValidation(t *testing.T) {
	_, hs := startMock(t, mockapi.Config{})
	tests := []struct {
		name, body string
		hdr        map[string]string
		status     int
		errType    string
		msgHas     string
	}{
		{"not json", `{"model":`, nil, 400, "invalid_request_error", "parsing the body"},
		{"not an object", `[1,2]`, nil, 400, "invalid_request_error", "body"},
		{"no model", `{"max_tokens":5,"messages":[{"role":"user","content":"x"}]}`, nil, 400, "invalid_request_error", "model: Field required"},
		{"no max_tokens", `{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"x"}]}`, nil, 400, "invalid_request_error", "max_tokens: Field required"},
		{"zero max_tokens", `{"model":"claude-sonnet-4-5","max_tokens":0,"messages":[{"role":"user","content":"x"}]}`, nil, 400, "invalid_request_error", "max_tokens"},
		{"no messages", `{"model":"claude-sonnet-4-5","max_tokens":5}`, nil, 400, "invalid_request_error", "messages: Field required"},
		{"empty messages", `{"model":"claude-sonnet-4-5","max_tokens":5,"messages":[]}`, nil, 400, "invalid_request_error", "at least one message"},
		{"bad role", `{"model":"claude-sonnet-4-5","max_tokens":5,"messages":[{"role":"system","content":"x"}]}`, nil, 400, "invalid_request_error", "messages.0.role"},
		{"content number", `{"model":"claude-sonnet-4-5","max_tokens":5,"messages":[{"role":"user","content":7}]}`, nil, 400, "invalid_request_error", "content"},
		{"stream not bool", `{"model":"claude-sonnet-4-5","max_tokens":5,"stream":"yes","messages":[{"role":"user","content":"x"}]}`, nil, 400, "invalid_request_error", "stream: Input should be a valid boolean"},
		{"temperature", `{"model":"claude-sonnet-4-5","max_tokens":5,"temperature":2,"messages":[{"role":"user","content":"x"}]}`, nil, 400, "invalid_request_error", "temperature"},
		{"unknown block", `{"model":"claude-sonnet-4-5","max_tokens":5,"messages":[{"role":"user","content":[{"type":"hologram"}]}]}`, nil, 400, "invalid_request_error", "messages.0.content.0.type"},
		{"five breakpoints", `{"model":"claude-sonnet-4-5","max_tokens":5,"system":[` + strings.Repeat(`{"type":"text","text":"s","cache_control":{"type":"ephemeral"}},`, 4) + `{"type":"text","text":"s","cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":"x"}]}`, nil, 400, "invalid_request_error", "maximum of 4"},
		{"1h after 5m", `{"model":"claude-sonnet-4-5","max_tokens":5,"system":[{"type":"text","text":"a","cache_control":{"type":"ephemeral"}},{"type":"text","text":"b","cache_control":{"type":"ephemeral","ttl":"1h"}}],"messages":[{"role":"user","content":"x"}]}`, nil, 400, "invalid_request_error", "ttl"},
		{"thinking budget", `{"model":"claude-sonnet-4-5","max_tokens":2000,"thinking":{"type":"enabled","budget_tokens":4000},"messages":[{"role":"user","content":"x"}]}`, nil, 400, "invalid_request_error", "budget_tokens"},
		{"no key", `{}`, map[string]string{"x-api-key": ""}, 401, "authentication_error", "x-api-key"},
		{"no version", `{}`, map[string]string{"anthropic-version": ""}, 400, "invalid_request_error", "anthropic-version"},
		{"bad version", `{}`, map[string]string{"anthropic-version": "yesterday"}, 400, "invalid_request_error", "anthropic-version"},
		{"unknown model", `{"model":"gpt-4","max_tokens":5,"messages":[{"role":"user","content":"x"}]}`, nil, 404, "not_found_error", "gpt-4"},
		{"prompt too long", `{"model":"claude-sonnet-4-5","max_tokens":5,"messages":[{"role":"user","content":"` + strings.Repeat("x", 800_004) + `"}]}`, nil, 400, "invalid_request_error", "prompt is too long"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := rawPost(t, hs.URL+"/v1/messages", tc.body, tc.hdr)
			defer func() { _ = res.Body.Close() }()
			id := res.Header.Get("request-id")
			e := readError(t, res)
			if res.StatusCode != tc.status || e.Type != "error" || e.Error.Type != tc.errType || !strings.Contains(e.Error.Message, tc.msgHas) {
				t.Errorf("got %d %+v, want %d %s containing %q", res.StatusCode, e, tc.status, tc.errType, tc.msgHas)
			}
			if id == "" || e.RequestID != id {
				t.Errorf("request-id header %q, body %q", id, e.RequestID)
			}
		})
	}
}

func TestBearerAuthAndUnknownPath(t *testing.T) {
	_, hs := startMock(t, mockapi.Config{APIKeys: []string{"sk-good"}})
	res := rawPost(t, hs.URL+"/v1/messages", `{"model":"claude-sonnet-4-5","max_tokens":5,"messages":[{"role":"user","content":"x"}]}`,
		map[string]string{"x-api-key": "", "authorization": "Bearer sk-good"})
	_ = res.Body.Close()
	if res.StatusCode != 200 {
		t.Errorf("bearer auth: %d", res.StatusCode)
	}
	res = rawPost(t, hs.URL+"/v1/nothing", `{}`, nil)
	defer func() { _ = res.Body.Close() }()
	if e := readError(t, res); res.StatusCode != 404 || e.Error.Type != "not_found_error" || res.Header.Get("request-id") == "" {
		t.Errorf("unknown path: %d %+v", res.StatusCode, e)
	}
}

// endlessReader yields n bytes of 'a' with no declared length, so the
// request is chunked and the server must count bytes itself.
type endlessReader struct{ left int }

func (r *endlessReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	n := min(len(p), r.left)
	for i := range n {
		p[i] = 'a'
	}
	r.left -= n
	return n, nil
}

func TestRequestTooLarge(t *testing.T) {
	_, hs := startMock(t, mockapi.Config{})
	req, err := http.NewRequest(http.MethodPost, hs.URL+"/v1/messages", &endlessReader{left: mockapi.MaxRequestBytes + 1})
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("x-api-key", testKey)
	req.Header.Set("anthropic-version", "2023-06-01")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = res.Body.Close() }()
	if e := readError(t, res); res.StatusCode != 413 || e.Error.Type != "request_too_large" {
		t.Errorf("33 MB body: %d %+v", res.StatusCode, e)
	}
}

// TestLatencyModel uses the fake clock, whose Sleep advances it: a plain
// message must take exactly TTFT + (n-1) per-token times.
func TestLatencyModel(t *testing.T) {
	clock := mockapi.NewFakeClock(t0)
	_, hs := startMock(t, mockapi.Config{
		Clock: clock, OutputTokens: mockapi.Fixed(11),
		Latency: mockapi.Latency{TimeToFirstToken: mockapi.Fixed(0.5), PerToken: mockapi.Fixed(0.02)},
	})
	for _, stream := range []string{"false", "true"} {
		before := clock.Now()
		res := rawPost(t, hs.URL+"/v1/messages", `{"model":"claude-sonnet-4-5","max_tokens":100,"stream":`+stream+`,"messages":[{"role":"user","content":"x"}]}`, nil)
		_, _ = io.Copy(io.Discard, res.Body)
		_ = res.Body.Close()
		if got, want := clock.Now().Sub(before), 700*time.Millisecond; got != want {
			t.Errorf("stream=%s took %v of simulated time, want %v", stream, got, want)
		}
	}
}

// TestSeededDeterminism: two servers with one seed give the same outputs and
// faults in the same order; another seed differs.
func TestSeededDeterminism(t *testing.T) {
	run := func(seed uint64) string {
		_, hs := startMock(t, mockapi.Config{Seed: seed, OutputTokens: mockapi.Distribution{Kind: mockapi.DistUniform, Min: 1, Max: 40}, Faults: mockapi.Faults{Overloaded: 0.2}})
		var out strings.Builder
		for range 20 {
			res := rawPost(t, hs.URL+"/v1/messages", `{"model":"claude-sonnet-4-5","max_tokens":100,"messages":[{"role":"user","content":"x"}]}`, nil)
			b, _ := io.ReadAll(res.Body)
			_ = res.Body.Close()
			var m struct {
				Content []struct{ Text string } `json:"content"`
			}
			_ = json.Unmarshal(b, &m)
			out.WriteString(res.Status)
			if len(m.Content) > 0 {
				out.WriteString(m.Content[0].Text)
			}
			out.WriteByte('|')
		}
		return out.String()
	}
	a, b, c := run(7), run(7), run(8)
	if a != b {
		t.Error("same seed, different runs")
	}
	if a == c {
		t.Error("different seeds, same runs")
	}
	if !strings.Contains(a, "529") || !strings.Contains(a, "200") {
		t.Errorf("expected both 200s and 529s in %q", a)
	}
}

func TestFaultRates(t *testing.T) {
	srv, hs := startMock(t, mockapi.Config{Seed: 1, OutputTokens: mockapi.Fixed(1), Faults: mockapi.Faults{Overloaded: 0.25, APIError: 0.1}})
	const n = 2000
	for range n {
		res := rawPost(t, hs.URL+"/v1/messages", `{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":"x"}]}`, nil)
		_, _ = io.Copy(io.Discard, res.Body)
		_ = res.Body.Close()
	}
	st := srv.Stats()
	// Binomial standard deviations: about 19 and 13; allow five of them.
	if got := st.ByStatus["529"]; got < 500-95 || got > 500+95 {
		t.Errorf("529s = %d of %d, want about 500", got, n)
	}
	if got := st.ByStatus["500"]; got < 200-65 || got > 200+65 {
		t.Errorf("500s = %d of %d, want about 200", got, n)
	}
	if st.Faults["overloaded"] != st.ByStatus["529"] || st.ByStatus["200"]+st.ByStatus["529"]+st.ByStatus["500"] != n {
		t.Errorf("stats disagree: %+v", st)
	}
}

func TestStatsResetEndpoints(t *testing.T) {
	clock := mockapi.NewFakeClock(t0)
	_, hs := startMock(t, mockapi.Config{Tier: "tier-1", Clock: clock, OutputTokens: mockapi.Fixed(2)})
	for range 3 {
		res := rawPost(t, hs.URL+"/v1/messages", `{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":"x"}]}`, nil)
		_ = res.Body.Close()
	}
	st := getStats(t, hs)
	if st.Requests != 3 || st.Tokens.Output != 6 || st.Classes[testClass].LastMinute.Requests != 3 {
		t.Fatalf("before reset: %+v", st)
	}
	res, err := http.Post(hs.URL+"/mock/stats/reset", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	st = getStats(t, hs)
	if st.Requests != 0 || st.Tokens.Output != 0 || st.Classes[testClass].Admitted != 0 || st.Classes[testClass].PeakPerMinute.Requests != 0 {
		t.Errorf("after stats reset: %+v", st)
	}
	// Buckets keep their state across a stats reset: the fourth request
	// leaves 46, not 49.
	res = rawPost(t, hs.URL+"/v1/messages", `{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":"x"}]}`, nil)
	_ = res.Body.Close()
	if got := res.Header.Get("anthropic-ratelimit-requests-remaining"); got != "46" {
		t.Errorf("remaining after stats reset = %s, want 46", got)
	}
	res, err = http.Post(hs.URL+"/mock/reset", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	res = rawPost(t, hs.URL+"/v1/messages", `{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":"x"}]}`, nil)
	_ = res.Body.Close()
	if got := res.Header.Get("anthropic-ratelimit-requests-remaining"); got != "49" {
		t.Errorf("remaining after full reset = %s, want 49", got)
	}
}
