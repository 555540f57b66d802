package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/claudecap/claudecap/pkg/dimension"
	"github.com/claudecap/claudecap/pkg/ratelimit"
)

func TestParseMessagesRequest(t *testing.T) {
	for _, tc := range []struct {
		body    string
		want    messagesRequest
		wantErr string
	}{
		{`{"model":"claude-sonnet-4-5","max_tokens":100,"messages":[]}`, messagesRequest{Model: "claude-sonnet-4-5", MaxTokens: 100}, ""},
		{`{"model":"m","max_tokens":1,"stream":true}`, messagesRequest{Model: "m", MaxTokens: 1, Stream: true}, ""},
		{`{"model":"m","max_tokens":5,"stream":false}`, messagesRequest{Model: "m", MaxTokens: 5}, ""},
		{`{"max_tokens":5}`, messagesRequest{}, "model: Field required"},
		{`{"model":"","max_tokens":5}`, messagesRequest{}, "model: Field required"},
		{`{"model":"m"}`, messagesRequest{}, "max_tokens: Field required"},
		{`{"model":"m","max_tokens":0}`, messagesRequest{}, "at least 1"},
		{`{"model":"m","max_tokens":-3}`, messagesRequest{}, "at least 1"},
		{`{"model":"m","max_tokens":1.5}`, messagesRequest{}, "at least 1"},
		{`{"model":"m","max_tokens":"10"}`, messagesRequest{}, "at least 1"},
		{`{"model":7,"max_tokens":10}`, messagesRequest{}, "model: wrong type"},
		{`{"model":"m","max_tokens":10`, messagesRequest{}, "not valid JSON"},
		{``, messagesRequest{}, "not valid JSON"},
		{`[]`, messagesRequest{}, "must be a JSON object"},
	} {
		got, err := parseMessagesRequest([]byte(tc.body))
		if tc.wantErr == "" {
			if err != nil || got != tc.want {
				t.Errorf("%s: got %+v, %v; want %+v", tc.body, got, err, tc.want)
			}
			continue
		}
		var re *requestError
		if !errors.As(err, &re) || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: error %v, want a request error containing %q", tc.body, err, tc.wantErr)
		}
	}
}

func TestEstimateInputTokens(t *testing.T) {
	text := `{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hello there"}]}`
	img := strings.Repeat("A", 30000)
	withImage := `{"model":"m","max_tokens":10,"messages":[{"role":"user","content":[` +
		`{"type":"image","source":{"type":"base64","media_type":"image/png","data":"` + img + `"}},` +
		`{"type":"image","source":{"type":"url","url":"https://example.com/a.png"}},` +
		`{"type":"text","text":"what is this?"}]}]}`
	for _, tc := range []struct {
		name string
		body string
		want int64
	}{
		{"empty", ``, 0},
		{"three bytes", `abc`, 1},
		{"four bytes round up", `abcd`, 2},
		{"text request is bytes/3 rounded up", text, tokensForBytes(int64(len(text)))},
		{"images count 1600 each, base64 bytes excluded", withImage, tokensForBytes(int64(len(withImage)-len(img))) + 2*1600},
		{"the word image in text is not an image", `{"content":"an \"image\" of a cat"}`, tokensForBytes(int64(len(`{"content":"an \"image\" of a cat"}`)))},
		{"invalid JSON with image falls back to bytes", `{"type":"image"`, tokensForBytes(15)},
	} {
		if got := EstimateInputTokens([]byte(tc.body)); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
}

// The estimate must not fall below the API's count for plain text; the mock's
// counting rule (about 4 bytes per token plus 3 per message) stands in for it.
func TestEstimateIsConservativeForText(t *testing.T) {
	for _, n := range []int{0, 1, 10, 100, 1000, 100000} {
		prompt := strings.Repeat("word ", n)
		body := fmt.Sprintf(`{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":%q}]}`, prompt)
		apiCount := int64(3 + (len(prompt)+3)/4)
		if est := EstimateInputTokens([]byte(body)); est < apiCount {
			t.Errorf("%d words: estimate %d below the API's count %d", n, est, apiCount)
		}
	}
}

func TestUsageFromMessage(t *testing.T) {
	for _, tc := range []struct {
		body string
		want observedUsage
	}{
		{`{"type":"message","usage":{"input_tokens":12,"output_tokens":6,"cache_creation_input_tokens":3,"cache_read_input_tokens":40}}`,
			observedUsage{InputKnown: true, OutputKnown: true, InputTokens: 12, OutputTokens: 6, CacheCreationInputTokens: 3, CacheReadInputTokens: 40}},
		{`{"usage":{"input_tokens":1,"output_tokens":2}}`, observedUsage{InputKnown: true, OutputKnown: true, InputTokens: 1, OutputTokens: 2}},
		{`{"usage":{"input_tokens":1}}`, observedUsage{Malformed: true}},
		{`{"usage":{"output_tokens":1}}`, observedUsage{Malformed: true}},
		{`{"usage":{"input_tokens":-1,"output_tokens":2}}`, observedUsage{Malformed: true}},
		{`{"usage":{"input_tokens":"1","output_tokens":2}}`, observedUsage{Malformed: true}},
		{`{"type":"message"}`, observedUsage{Malformed: true}},
		{`{"usage":{"input_tokens":1,"output_tokens":2}`, observedUsage{Malformed: true}},
		{`<html>bad gateway</html>`, observedUsage{Malformed: true}},
	} {
		if got := usageFromMessage([]byte(tc.body)); got != tc.want {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.body, got, tc.want)
		}
	}
}

const sampleStream = "event: message_start\n" +
	`data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5",` +
	`"usage":{"input_tokens":25,"cache_creation_input_tokens":5,"cache_read_input_tokens":100,"output_tokens":1}}}` + "\n\n" +
	"event: ping\ndata: {\"type\": \"ping\"}\n\n" +
	"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n" +
	"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n" +
	"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n" +
	"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":15}}\n\n" +
	"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"

// trackAll feeds a stream to a tracker the way copyEventStream does, in
// line fragments of at most chunk bytes.
func trackAll(stream string, chunk int) observedUsage {
	var t sseTracker
	for _, line := range strings.SplitAfter(stream, "\n") {
		for len(line) > chunk {
			t.feed([]byte(line[:chunk]), false)
			line = line[chunk:]
		}
		if line != "" {
			t.feed([]byte(line), strings.HasSuffix(line, "\n"))
		}
	}
	return t.usage
}

func TestSSETracker(t *testing.T) {
	full := observedUsage{InputKnown: true, OutputKnown: true, InputTokens: 25, CacheCreationInputTokens: 5, CacheReadInputTokens: 100, OutputTokens: 15}
	cut := strings.Index(sampleStream, "event: message_delta")
	for _, tc := range []struct {
		name   string
		stream string
		want   observedUsage
	}{
		{"complete", sampleStream, full},
		{"CRLF line endings", strings.ReplaceAll(sampleStream, "\n", "\r\n"), full},
		{"no event lines", strings.ReplaceAll(strings.ReplaceAll(sampleStream, "event: message_start\n", ""), "event: message_delta\n", ""), full},
		{"cut before message_delta", sampleStream[:cut],
			observedUsage{InputKnown: true, InputTokens: 25, CacheCreationInputTokens: 5, CacheReadInputTokens: 100, OutputTokens: 1}},
		{"cut inside message_delta", sampleStream[:cut+40],
			observedUsage{InputKnown: true, InputTokens: 25, CacheCreationInputTokens: 5, CacheReadInputTokens: 100, OutputTokens: 1}},
		{"error event", sampleStream[:cut] + "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
			observedUsage{InputKnown: true, InputTokens: 25, CacheCreationInputTokens: 5, CacheReadInputTokens: 100, OutputTokens: 1, StreamError: true}},
		{"cumulative input in message_delta replaces message_start", strings.Replace(sampleStream, `"usage":{"output_tokens":15}`,
			`"usage":{"input_tokens":30,"cache_read_input_tokens":0,"output_tokens":15}`, 1),
			observedUsage{InputKnown: true, OutputKnown: true, InputTokens: 30, CacheCreationInputTokens: 5, OutputTokens: 15}},
		{"broken message_start JSON", strings.Replace(sampleStream, `"output_tokens":1}}}`, `"output_tokens":1}`, 1),
			observedUsage{OutputKnown: true, OutputTokens: 15, Malformed: true}},
		{"message_delta without usage", strings.Replace(sampleStream, `,"usage":{"output_tokens":15}`, ``, 1),
			observedUsage{InputKnown: true, InputTokens: 25, CacheCreationInputTokens: 5, CacheReadInputTokens: 100, OutputTokens: 1, Malformed: true}},
		{"comments and unknown fields are ignored", ": keepalive\nid: 7\nretry: 10\n" + sampleStream, full},
		{"not SSE at all: nothing known", "<html>\n\n<body>oops</body>\n\n", observedUsage{}},
	} {
		for _, chunk := range []int{1, 7, 64, 1 << 20} {
			if got := trackAll(tc.stream, chunk); got != tc.want {
				t.Errorf("%s (chunks of %d):\n got %+v\nwant %+v", tc.name, chunk, got, tc.want)
			}
		}
	}
}

func TestSSETrackerOverlongEvent(t *testing.T) {
	huge := "event: message_delta\ndata: {\"usage\":{\"output_tokens\":1},\"pad\":\"" + strings.Repeat("x", maxEventData) + "\"}\n\n"
	for _, chunk := range []int{4096, 1 << 21} {
		got := trackAll(huge, chunk)
		if got.OutputKnown || !got.Malformed {
			t.Errorf("chunks of %d: an event over %d bytes gave %+v, want it ignored as malformed", chunk, maxEventData, got)
		}
	}
}

func TestDecideSettlement(t *testing.T) {
	cost := ratelimit.Amounts{dimension.Requests: 1, dimension.InputTokens: 500, dimension.OutputTokens: 1000}
	known := observedUsage{InputKnown: true, OutputKnown: true, InputTokens: 100, CacheCreationInputTokens: 20, CacheReadInputTokens: 300, OutputTokens: 42}
	for _, tc := range []struct {
		name string
		o    outcome
		want settlement
	}{
		{"never sent: cancel", outcome{}, settlement{Kind: settleCancel, Exact: true}},
		{"sent, no response: all stays charged", outcome{Sent: true},
			settlement{Actual: ratelimit.Actual{InputTokens: 500, OutputTokens: 1000}}},
		{"upstream 429: tokens back", outcome{Sent: true, Status: 429}, settlement{Exact: true}},
		{"upstream 529: tokens back", outcome{Sent: true, Status: 529}, settlement{Exact: true}},
		{"upstream 400: tokens back", outcome{Sent: true, Status: 400}, settlement{Exact: true}},
		{"success: measured, cache reads free", outcome{Sent: true, Status: 200, Usage: known},
			settlement{Actual: ratelimit.Actual{InputTokens: 120, OutputTokens: 42, CacheReadInputTokens: 300}, Exact: true}},
		{"success, old model: cache reads count", outcome{Sent: true, Status: 200, Usage: known, CacheReadsCount: true},
			settlement{Actual: ratelimit.Actual{InputTokens: 420, OutputTokens: 42, CacheReadInputTokens: 300}, Exact: true}},
		{"success, usage unreadable: all stays charged", outcome{Sent: true, Status: 200, Usage: observedUsage{Malformed: true}},
			settlement{Actual: ratelimit.Actual{InputTokens: 500, OutputTokens: 1000}}},
		{"cut stream: input measured, output stays reserved", outcome{Sent: true, Status: 200,
			Usage: observedUsage{InputKnown: true, InputTokens: 80, OutputTokens: 1}},
			settlement{Actual: ratelimit.Actual{InputTokens: 80, OutputTokens: 1000}}},
		{"input above the estimate is charged", outcome{Sent: true, Status: 200,
			Usage: observedUsage{InputKnown: true, OutputKnown: true, InputTokens: 900, OutputTokens: 3}},
			settlement{Actual: ratelimit.Actual{InputTokens: 900, OutputTokens: 3}, Exact: true}},
	} {
		if got := decideSettlement(cost, tc.o); got != tc.want {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.name, got, tc.want)
		}
	}
}

func TestAdmissionAnswer(t *testing.T) {
	pool := ratelimit.PoolKey{Organization: "acme", Class: "sonnet-4"}
	refused := &ratelimit.RateLimitedError{Pool: pool, Binding: dimension.OutputTokens,
		Wait: [3]time.Duration{0, 200 * time.Millisecond, 2300 * time.Millisecond}}
	tooBig := &ratelimit.RateLimitedError{Pool: pool, Binding: dimension.InputTokens, TooLarge: true}
	for _, tc := range []struct {
		name       string
		err        error
		clientErr  error
		wantWrite  bool
		status     int
		errType    string
		header     map[string]string
		msgContain string
	}{
		{"no room", refused, nil, true, 429, errRateLimit,
			map[string]string{HeaderLimited: "output-tokens", "Retry-After": "3", "Retry-After-Ms": "2300"}, "output tokens"},
		{"no room after the wait bound", fmt.Errorf("%w: %w", context.DeadlineExceeded, refused), nil, true, 429, errRateLimit,
			map[string]string{HeaderLimited: "output-tokens", "Retry-After": "3"}, "{ccap:acme:sonnet-4}"},
		// Above the pool's current budget only: a dip that passes, so retryable.
		{"too large for the budget", tooBig, nil, true, 429, errRateLimit,
			map[string]string{HeaderLimited: "input-tokens", "Retry-After": "5"}, "budget"},
		{"client left", context.Canceled, context.Canceled, false, 0, "", nil, ""},
		{"wait bound inside a Redis call", fmt.Errorf("reserving: %w", context.DeadlineExceeded), nil, true, 429, errRateLimit,
			map[string]string{"Retry-After": "1"}, "wait bound"},
		{"not configured", fmt.Errorf("reserving: %w", ratelimit.ErrPoolNotConfigured), nil, true, 503, errAPI, nil, "controller"},
		{"redis down", fmt.Errorf("%w: dial tcp", ratelimit.ErrUnavailable), nil, true, 503, errAPI, nil, "unavailable"},
		{"other", errors.New("boom"), nil, true, 500, errAPI, nil, "boom"},
	} {
		a, write := admissionAnswer(tc.err, tc.clientErr)
		if write != tc.wantWrite {
			t.Errorf("%s: write = %v", tc.name, write)
			continue
		}
		if !write {
			continue
		}
		if a.Status != tc.status || a.Type != tc.errType || !strings.Contains(a.Message, tc.msgContain) {
			t.Errorf("%s: got %d %s %q", tc.name, a.Status, a.Type, a.Message)
		}
		for k, v := range tc.header {
			if a.Header[k] != v {
				t.Errorf("%s: header %s = %q, want %q", tc.name, k, a.Header[k], v)
			}
		}
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	for d, want := range map[time.Duration]int64{0: 1, time.Millisecond: 1, time.Second: 1, 1001 * time.Millisecond: 2, 59500 * time.Millisecond: 60} {
		if got := retryAfterSeconds(d); got != want {
			t.Errorf("retryAfterSeconds(%s) = %d, want %d", d, got, want)
		}
	}
}

func TestValidAPIPath(t *testing.T) {
	for p, want := range map[string]bool{
		"/v1/messages": true, "/v1/messages/count_tokens": true, "/v1/models": true,
		"/v1": false, "/": false, "/v2/messages": false, "/v1/../admin": false, "/v1//messages": false,
		"/v1/messages/": false, "/healthz": false, "/v1/./messages": false,
	} {
		if got := validAPIPath(p); got != want {
			t.Errorf("validAPIPath(%q) = %v", p, got)
		}
	}
}

func TestCopyHeadersDropsHopByHop(t *testing.T) {
	src := http.Header{
		"Connection": {"keep-alive, X-Private"}, "X-Private": {"1"}, "Keep-Alive": {"timeout=5"},
		"Transfer-Encoding": {"chunked"}, "Request-Id": {"req_1"}, "Anthropic-Ratelimit-Requests-Limit": {"50"},
	}
	dst := http.Header{}
	copyHeaders(dst, src)
	if len(dst) != 2 || dst.Get("Request-Id") != "req_1" || dst.Get("Anthropic-Ratelimit-Requests-Limit") != "50" {
		t.Errorf("copied %v", dst)
	}
}

func TestParseUpstream(t *testing.T) {
	for raw, wantErr := range map[string]string{
		"https://api.anthropic.com":         "",
		"http://127.0.0.1:9/prefix/":        "",
		"ftp://x":                           "scheme",
		"https://":                          "no host",
		"https://user:secret@example.com":   "credentials",
		"https://example.com/?a=b":          "query",
		"https://u:s3cr3t@exa mple.com/%zz": "cannot be parsed",
	} {
		u, err := parseUpstream(raw)
		switch {
		case wantErr == "" && err != nil:
			t.Errorf("%s: %v", raw, err)
		case wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)):
			t.Errorf("%s: error %v, want %q", raw, err, wantErr)
		case err != nil && (strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "s3cr3t")):
			t.Errorf("%s: error leaks the password: %v", raw, err)
		case err == nil && strings.HasSuffix(u.Path, "/"):
			t.Errorf("%s: trailing slash kept: %q", raw, u.Path)
		}
	}
}

func TestAPIKeyNeverFormats(t *testing.T) {
	cfg := Config{APIKey: "sk-ant-secret-value"}
	for _, s := range []string{fmt.Sprintf("%v", cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), fmt.Sprint(cfg.APIKey)} {
		if strings.Contains(s, "secret-value") {
			t.Errorf("formatted config leaks the key: %s", s)
		}
	}
}

func TestPublishThrottle(t *testing.T) {
	th := publishThrottle{interval: time.Second}
	t0 := time.Unix(1000, 0)
	steps := []struct {
		class string
		at    time.Duration
		want  bool
	}{
		{"sonnet-4", 0, true}, {"sonnet-4", 500 * time.Millisecond, false}, {"haiku-4.5", 500 * time.Millisecond, true},
		{"sonnet-4", time.Second, true}, {"sonnet-4", 1999 * time.Millisecond, false}, {"sonnet-4", 2 * time.Second, true},
	}
	for _, s := range steps {
		if got := th.due(s.class, t0.Add(s.at)); got != s.want {
			t.Errorf("%s at +%s: due = %v, want %v", s.class, s.at, got, s.want)
		}
	}
	always := publishThrottle{interval: -1}
	first, second := always.due("x", t0), always.due("x", t0)
	if !first || !second {
		t.Error("a negative interval must publish every time")
	}
}

func TestBackgroundWaitsForJobs(t *testing.T) {
	b := newBackground(1)
	release := make(chan struct{})
	var order []string
	b.run(func() { <-release; order = append(order, "slow") })
	// The only slot is taken: this job runs inline, before run returns.
	b.run(func() { order = append(order, "inline") })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := b.wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait returned %v while a job was blocked", err)
	}
	close(release)
	if err := b.wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if strings.Join(order, ",") != "inline,slow" {
		t.Errorf("order %v", order)
	}
}
