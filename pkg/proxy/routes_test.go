package proxy

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// rawExchange sends one request exactly as written (request line and
// headers, no body) and returns the status and body of the answer.
func rawExchange(t *testing.T, serverURL, method, target string, headers ...string) (int, []byte) {
	t.Helper()
	var b strings.Builder
	b.WriteString(method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n")
	for i := 0; i+1 < len(headers); i += 2 {
		b.WriteString(headers[i] + ": " + headers[i+1] + "\r\n")
	}
	b.WriteString("\r\n")
	return rawRequest(t, serverURL, b.String())
}

// rawRequest writes raw to the server and reads one response.
func rawRequest(t *testing.T, serverURL, raw string) (int, []byte) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(serverURL, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%.40q: no response: %v", raw, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// errorTypeOf is the error type of an API error body ("" if it is none).
func errorTypeOf(body []byte) string {
	var e errorBody
	if json.Unmarshal(body, &e) != nil || e.Type != errorEnvelope {
		return ""
	}
	return e.Error.Type
}

func TestInjectedKeyServesOnlyAllowedRoutes(t *testing.T) {
	up := startUpstream(t, replyJSON(200, okMessage))
	lim := &fakeLimiter{}
	p, hs, _ := startProxy(t, Config{Upstream: up.URL, APIKey: "fake-key-injected"}, lim)
	served := []struct{ method, path string }{
		{http.MethodPost, "/v1/messages"},
		{http.MethodPost, "/v1/messages/count_tokens"},
		{http.MethodGet, "/v1/models"},
		{http.MethodGet, "/v1/models/claude-sonnet-4-5"},
	}
	for _, r := range served {
		body := ""
		if r.method == http.MethodPost {
			body = messagesBody("claude-sonnet-4-5", 10, false, "hi")
		}
		req, _ := http.NewRequest(r.method, hs.URL+r.path, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s %s: %d, want it served", r.method, r.path, resp.StatusCode)
		}
	}
	if n := len(up.received()); n != len(served) {
		t.Fatalf("upstream saw %d requests, want %d", n, len(served))
	}
	refused := []struct{ method, path string }{
		{http.MethodGet, "/v1/files"},
		{http.MethodGet, "/v1/files/file_011CNha8iCJcU1wXNR6q4V8w/content"},
		{http.MethodDelete, "/v1/files/file_011CNha8iCJcU1wXNR6q4V8w"},
		{http.MethodPost, "/v1/messages/batches"},
		{http.MethodGet, "/v1/messages/batches/msgbatch_01/results"},
		{http.MethodPost, "/v1/complete"},
		{http.MethodGet, "/v1/messages"},
		{http.MethodDelete, "/v1/models/claude-sonnet-4-5"},
		{http.MethodGet, "/v1/models/claude-sonnet-4-5/extra"},
		{http.MethodPost, "/v1/messages/count_tokens/x"},
	}
	for _, r := range refused {
		code, body := rawExchange(t, hs.URL, r.method, r.path)
		if code != 404 || errorTypeOf(body) != errNotFound {
			t.Errorf("%s %s with an injected key: %d %s, want 404 not_found_error", r.method, r.path, code, body)
		}
	}
	if n := len(up.received()); n != len(served) {
		t.Errorf("refused routes reached the upstream: it saw %d requests", n)
	}
	if s := lim.snapshot(t, p); len(s.reserved) != 1 {
		t.Errorf("reserved %d times, want once (POST /v1/messages)", len(s.reserved))
	}
}

func TestInjectedKeyExtraPathPrefixes(t *testing.T) {
	up := startUpstream(t, replyJSON(200, `{}`))
	_, hs, _ := startProxy(t, Config{Upstream: up.URL, APIKey: "fake-key-injected",
		AllowedPathPrefixes: []string{"/v1/messages/batches"}}, &fakeLimiter{})
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{http.MethodPost, "/v1/messages/batches", 200},
		{http.MethodGet, "/v1/messages/batches/msgbatch_01/results", 200},
		{http.MethodDelete, "/v1/messages/batches/msgbatch_01", 200},
		{http.MethodGet, "/v1/messages/batchesx", 404},
		{http.MethodGet, "/v1/files", 404},
	} {
		if code, body := rawExchange(t, hs.URL, tc.method, tc.path); code != tc.want {
			t.Errorf("%s %s: %d %s, want %d", tc.method, tc.path, code, body, tc.want)
		}
	}
	for _, r := range up.received() {
		if r.Header.Get("X-Api-Key") != "fake-key-injected" {
			t.Errorf("%s went upstream without the injected key", r.Path)
		}
	}
}

func TestBadPathPrefixesAreRefused(t *testing.T) {
	for _, prefix := range []string{"", "files", "/v1", "/v1/", "/v1/files/", "/v1/../admin", "/v2/files", "/v1/fi%6ces", "/v1/files;x"} {
		_, err := New(Config{APIKey: "k", AllowedPathPrefixes: []string{prefix}}, &fakeLimiter{})
		if err == nil || !strings.Contains(err.Error(), "path prefix") {
			t.Errorf("prefix %q: error %v", prefix, err)
		}
	}
}

func TestWorkerKeyPassesV1Through(t *testing.T) {
	up := startUpstream(t, replyJSON(200, `{}`))
	_, hs, _ := startProxy(t, Config{Upstream: up.URL}, &fakeLimiter{})
	paths := []string{"/v1/files", "/v1/messages/batches/msgbatch_01/results", "/v1/complete"}
	for _, path := range paths {
		if code, body := rawExchange(t, hs.URL, http.MethodGet, path, "X-Api-Key", workerKey); code != 200 {
			t.Errorf("GET %s with the worker's key: %d %s", path, code, body)
		}
	}
	if n := len(up.received()); n != len(paths) {
		t.Errorf("upstream saw %d requests, want %d", n, len(paths))
	}
}

// Spellings of the metered route that an upstream might still read as
// /v1/messages are refused, not forwarded unmetered: with the worker's key
// and with an injected one.
func TestUnplainPathsAreRefused(t *testing.T) {
	targets := []string{
		"/v1/messages%00", "/v1/Messages", "/v1/MESSAGES", "/v1/messages;x=1", "/v1/messages/",
		"/v1//messages", "/v1/./messages", "/v1/x/../messages", "/v1/%6dessages", "/v1/messages%2F",
		"/v1/messages\\", "/v1/messages%0d%0a", "/v1/messages/%2e%2e/messages", "/v1/Messages/count_tokens",
		"/v1/models%2Fclaude", "/v1/messages%20",
	}
	for _, cfg := range []Config{{}, {APIKey: "fake-key-injected"}} {
		up := startUpstream(t, replyJSON(200, okMessage))
		lim := &fakeLimiter{}
		cfg.Upstream = up.URL
		p, hs, _ := startProxy(t, cfg, lim)
		for _, target := range targets {
			code, body := rawExchange(t, hs.URL, http.MethodPost, target, "X-Api-Key", workerKey)
			if code != 404 || errorTypeOf(body) != errNotFound {
				t.Errorf("injected %v, POST %s: %d %s, want 404 not_found_error", cfg.APIKey != "", target, code, body)
			}
		}
		// A method spelled in another case is not POST either.
		if code, body := rawExchange(t, hs.URL, "post", "/v1/messages", "X-Api-Key", workerKey); code != 404 {
			t.Errorf("injected %v, method post: %d %s", cfg.APIKey != "", code, body)
		}
		if n := len(up.received()); n != 0 {
			t.Errorf("injected %v: %d unplain requests reached the upstream: %+v", cfg.APIKey != "", n, up.received())
		}
		if s := lim.snapshot(t, p); len(s.reserved) != 0 {
			t.Errorf("injected %v: reserved for an unplain path", cfg.APIKey != "")
		}
	}
}

func TestPlainPath(t *testing.T) {
	for raw, want := range map[string]bool{
		"/v1/messages": true, "/v1/models/claude-opus-4-1": true, "/v1/files/file_01AbC/content": true,
		"/v1/models/claude.x~y": true,
		"/v1/messages%00":       false, "/v1/%6dessages": false, "/v1/Messages": false, "/v1/messages;x": false,
		"/v1/messages/": false, "/v1/./messages": false, "/v1//messages": false, "/v1/messages/..": false,
		"/v1/mess\\ages": false, "/v1/messages:x": false, "/v1/messages@x": false, "/v1": false,
	} {
		u, err := url.ParseRequestURI(raw)
		if err != nil {
			if want {
				t.Errorf("%q: %v", raw, err)
			}
			continue
		}
		if got := plainPath(u); got != want {
			t.Errorf("plainPath(%q) = %v, want %v", raw, got, want)
		}
	}
}
