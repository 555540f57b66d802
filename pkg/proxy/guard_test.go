package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// guardedGet sends GET path to srv with the given Host and Origin ("" for
// none) and returns the status and body.
func guardedGet(t *testing.T, srv, path, host, origin string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, srv+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	req.Header.Set("X-Api-Key", workerKey)
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

func TestHostMustBeLoopbackOrAllowed(t *testing.T) {
	up := startUpstream(t, replyJSON(200, `{"data":[]}`))
	_, hs, _ := startProxy(t, Config{Upstream: up.URL, AllowedHosts: []string{"claudecap-proxy.internal", "10.0.0.7"}}, &fakeLimiter{})
	for host, want := range map[string]int{
		"localhost": 200, "localhost:8081": 200, "LocalHost:8081": 200, "127.0.0.1": 200, "127.0.0.1:8081": 200,
		"127.1.2.3:80": 200, "[::1]:8081": 200, "[::1]": 200,
		"claudecap-proxy.internal:8081": 200, "CLAUDECAP-PROXY.internal": 200, "10.0.0.7:8081": 200,
		"evil.example": 403, "evil.example:8081": 403, "localhost.evil.example": 403, "127.0.0.1.nip.io:8081": 403,
		"10.0.0.8:8081": 403, "[::2]:8081": 403, "claudecap-proxy.internal.evil.example": 403,
	} {
		for _, path := range []string{"/v1/models", "/healthz", "/readyz", "/metrics"} {
			code, body := guardedGet(t, hs.URL, path, host, "")
			if code != want {
				t.Errorf("Host %q, %s: %d %s, want %d", host, path, code, body, want)
			}
			if want == 403 && errorTypeOf(body) != "permission_error" {
				t.Errorf("Host %q, %s: body %s, want the API's error shape", host, path, body)
			}
		}
	}
	if n := len(up.received()); n != 11 {
		t.Errorf("upstream saw %d requests, want one per served host", n)
	}
	// HTTP/1.0 allows no Host at all: not a loopback name either.
	if code, _ := rawExchangeNoHost(t, hs.URL); code != 403 {
		t.Errorf("no Host: %d, want 403", code)
	}
}

func TestOriginMustBeAllowed(t *testing.T) {
	up := startUpstream(t, replyJSON(200, `{"data":[]}`))
	_, hs, _ := startProxy(t, Config{Upstream: up.URL}, &fakeLimiter{})
	_, allowing, _ := startProxy(t, Config{Upstream: up.URL, AllowedOrigins: []string{"https://tool.example"}}, &fakeLimiter{})
	for _, tc := range []struct {
		srv, origin string
		want        int
	}{
		{hs.URL, "", 200},
		{hs.URL, "https://evil.example", 403},
		{hs.URL, "null", 403},
		{hs.URL, "http://localhost:8081", 403},
		{allowing.URL, "https://tool.example", 200},
		{allowing.URL, "HTTPS://TOOL.EXAMPLE", 200},
		{allowing.URL, "https://tool.example:8443", 403},
		{allowing.URL, "https://evil.example", 403},
	} {
		for _, path := range []string{"/v1/models", "/healthz"} {
			code, body := guardedGet(t, tc.srv, path, "127.0.0.1", tc.origin)
			if code != tc.want {
				t.Errorf("Origin %q, %s: %d %s, want %d", tc.origin, path, code, body, tc.want)
			}
		}
	}
	// A browser's cross-origin POST is refused before anything is reserved or sent.
	resp, body := post(t, hs.URL, messagesBody("claude-sonnet-4-5", 10, false, "hi"), "X-Api-Key", workerKey, "Origin", "https://evil.example")
	if resp.StatusCode != 403 || errorTypeOf(body) != "permission_error" {
		t.Errorf("cross-origin POST: %d %s", resp.StatusCode, body)
	}
	if n := len(up.received()); n != 3 {
		t.Errorf("upstream saw %d requests, want 3", n)
	}
}

// Kubelet probes and Prometheus address the ops listener by the pod IP, so
// it checks no Host; it still refuses browser origins.
func TestOpsHandlerChecksNoHost(t *testing.T) {
	lim := &fakeLimiter{}
	p, err := New(Config{Upstream: "http://127.0.0.1:9"}, lim)
	if err != nil {
		t.Fatal(err)
	}
	ops := httptest.NewServer(p.OpsHandler())
	defer ops.Close()
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		if code, body := guardedGet(t, ops.URL, path, "10.244.1.17:8082", ""); code != 200 {
			t.Errorf("ops %s with the pod IP as Host: %d %s", path, code, body)
		}
		if code, _ := guardedGet(t, ops.URL, path, "10.244.1.17:8082", "https://evil.example"); code != 403 {
			t.Errorf("ops %s with a foreign Origin: %d, want 403", path, code)
		}
	}
	if code, _ := guardedGet(t, ops.URL, "/v1/models", "127.0.0.1", ""); code != 404 {
		t.Errorf("the ops listener must not proxy, got %d", code)
	}
}

func TestBadGuardConfigIsRefused(t *testing.T) {
	for _, cfg := range []Config{
		{AllowedHosts: []string{""}},
		{AllowedHosts: []string{"proxy.internal:8081"}},
		{AllowedHosts: []string{"http://proxy.internal"}},
		{AllowedHosts: []string{"proxy internal"}},
		{AllowedOrigins: []string{"tool.example"}},
		{AllowedOrigins: []string{"https://tool.example/"}},
		{AllowedOrigins: []string{"https://tool.example/app"}},
		{AllowedOrigins: []string{"*"}},
	} {
		if _, err := New(cfg, &fakeLimiter{}); err == nil {
			t.Errorf("accepted %+v", cfg)
		}
	}
}

// rawExchangeNoHost sends an HTTP/1.0 request without a Host header.
func rawExchangeNoHost(t *testing.T, serverURL string) (int, []byte) {
	t.Helper()
	return rawRequest(t, serverURL, "GET /v1/models HTTP/1.0\r\nX-Api-Key: "+workerKey+"\r\n\r\n")
}
