package mockapi_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/claudecap/claudecap/pkg/mockapi"
)

// FuzzMessagesBody: no body, however malformed, may crash the handler or
// produce anything but a 200 or a documented error status.
func FuzzMessagesBody(f *testing.F) {
	for _, seed := range []string{
		benchBody, benchStreamBody, `{}`, `[]`, `null`, `{"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"x","content":[{"type":"text","text":"y"}]}]}]}`,
		`{"model":"claude-sonnet-4-5","max_tokens":5,"cache_control":{"type":"ephemeral"},"messages":[{"role":"user","content":[{"type":"text","text":"a","cache_control":{"type":"ephemeral","ttl":"1h"}}]}]}`,
	} {
		f.Add(seed)
	}
	s, err := mockapi.New(mockapi.Config{OutputTokens: mockapi.Fixed(3), MinCacheableTokens: 1})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body string) {
		for _, path := range []string{"/v1/messages", "/v1/messages/count_tokens"} {
			req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
			req.Header.Set("X-Api-Key", "k")
			req.Header.Set("Anthropic-Version", "2023-06-01")
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, req)
			switch rec.Code {
			case 200, 400, 404:
			default:
				t.Fatalf("%s: status %d for %q", path, rec.Code, body)
			}
			if rec.Code != 200 && !strings.Contains(rec.Body.String(), `"type":"error"`) {
				t.Fatalf("error without an error body: %s", rec.Body.String())
			}
		}
	})
}
