package mockapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/claudecap/claudecap/pkg/mockapi"
)

// Every response says it comes from the mock, errors and its own endpoints
// included: the load tester tells the mock from the real API by it.
func TestEveryResponseIdentifiesTheMock(t *testing.T) {
	_, hs := startMock(t, mockapi.Config{APIKeys: []string{testKey}})
	for _, tc := range []struct {
		method, path, key, body string
	}{
		{http.MethodPost, "/v1/messages", testKey, `{"model":"claude-sonnet-4-5","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`},
		{http.MethodPost, "/v1/messages", "wrong-key", `{}`},
		{http.MethodPost, "/v1/messages", testKey, `not json`},
		{http.MethodGet, "/v1/models", testKey, ""},
		{http.MethodGet, "/v1/models", "", ""},
		{http.MethodGet, "/v1/nothing-here", testKey, ""},
		{http.MethodGet, "/mock/stats", "", ""},
		{http.MethodPost, "/mock/reset", "", ""},
	} {
		req, err := http.NewRequest(tc.method, hs.URL+tc.path, strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		if tc.key != "" {
			req.Header.Set("X-Api-Key", tc.key)
		}
		req.Header.Set("Anthropic-Version", "2023-06-01")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if got := resp.Header.Get("X-Claudecap-Mock"); got != "1" {
			t.Errorf("%s %s (%d): x-claudecap-mock %q, want 1", tc.method, tc.path, resp.StatusCode, got)
		}
	}
}
