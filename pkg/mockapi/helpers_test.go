package mockapi_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"

	"github.com/claudecap/claudecap/pkg/mockapi"
)

const (
	testKey   = "test-key"
	testModel = "claude-sonnet-4-5"
	testClass = "sonnet-4"
)

// startMock runs a mock server for one test.
func startMock(t testing.TB, cfg mockapi.Config) (*mockapi.Server, *httptest.Server) {
	t.Helper()
	s, err := mockapi.New(cfg)
	if err != nil {
		t.Fatalf("mockapi.New: %v", err)
	}
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	return s, hs
}

// newClient is the official SDK pointed at the mock.
func newClient(hs *httptest.Server, opts ...option.RequestOption) anthropic.Client {
	base := []option.RequestOption{option.WithBaseURL(hs.URL), option.WithAPIKey(testKey)}
	return anthropic.NewClient(append(base, opts...)...)
}

// userParams is a one-message request.
func userParams(text string, maxTokens int64) anthropic.MessageNewParams {
	return anthropic.MessageNewParams{
		Model:     testModel,
		MaxTokens: maxTokens,
		Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock(text))},
	}
}

// ruleTokens applies the documented counting rule to one user message.
func ruleTokens(text string) int64 { return 3 + int64((len(text)+3)/4) }

// rawPost sends a JSON body with the usual headers; extra headers override.
func rawPost(t testing.TB, url string, body string, hdr map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("content-type", "application/json")
	req.Header.Set("x-api-key", testKey)
	req.Header.Set("anthropic-version", "2023-06-01")
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	return res
}

// errorBody is the documented error shape.
type errorBody struct {
	Type  string `json:"type"`
	Error struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"error"`
	RequestID string `json:"request_id"`
}

func readError(t testing.TB, res *http.Response) errorBody {
	t.Helper()
	defer func() { _ = res.Body.Close() }()
	var e errorBody
	if err := json.NewDecoder(res.Body).Decode(&e); err != nil {
		t.Fatalf("decoding error body: %v", err)
	}
	return e
}

// sseEvent is one server-sent event.
type sseEvent struct {
	name string
	data string
}

// readSSE parses a whole event stream.
func readSSE(t testing.TB, r io.Reader) []sseEvent {
	t.Helper()
	var events []sseEvent
	var cur sseEvent
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.name != "" || cur.data != "" {
				events = append(events, cur)
			}
			cur = sseEvent{}
		case strings.HasPrefix(line, "event: "):
			cur.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			cur.data += strings.TrimPrefix(line, "data: ")
		}
	}
	return events
}

func getStats(t testing.TB, hs *httptest.Server) mockapi.Stats {
	t.Helper()
	res, err := http.Get(hs.URL + "/mock/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = res.Body.Close() }()
	var st mockapi.Stats
	if err := json.NewDecoder(res.Body).Decode(&st); err != nil {
		t.Fatalf("decoding stats: %v", err)
	}
	return st
}

var t0 = time.Date(2025, 8, 21, 12, 40, 58, 300_000_000, time.UTC)
