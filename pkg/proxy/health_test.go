package proxy_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/claudecap/claudecap/internal/testutil/redistest"
	"github.com/claudecap/claudecap/pkg/proxy"
	"github.com/claudecap/claudecap/pkg/ratelimit"
)

// readyz returns the status and body of /readyz on the ops listener of a
// proxy using lim.
func readyz(t *testing.T, lim proxy.Limiter) (int, string) {
	t.Helper()
	p, err := proxy.New(proxy.Config{Upstream: "http://127.0.0.1:9", Logger: slog.New(slog.DiscardHandler)}, lim)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(p.OpsHandler())
	defer hs.Close()
	resp, err := http.Get(hs.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// Ready means a call could be admitted: Redis answers and the pool the
// calls draw from is configured.
func TestReadyzNeedsAConfiguredPool(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	pinned, err := proxy.NewRedisLimiter(srv.Client(), ratelimit.Options{Pool: ratelimit.PoolKey{Organization: "acme", Class: "opus-4"}})
	if err != nil {
		t.Fatal(err)
	}
	anyClass, err := proxy.NewRedisLimiter(srv.Client(), ratelimit.Options{Pool: ratelimit.PoolKey{Organization: "acme"}})
	if err != nil {
		t.Fatal(err)
	}
	for name, lim := range map[string]proxy.Limiter{"pinned": pinned, "any class": anyClass} {
		if code, body := readyz(t, lim); code != 503 || !strings.Contains(body, "not configured") {
			t.Errorf("%s, no pool: %d %q, want 503 saying the pool is not configured", name, code, body)
		}
	}
	// Another organization's pool, and another class than the pinned one, do not count.
	limits := ratelimit.PoolConfig{Limits: bigLimits}
	for _, pool := range []ratelimit.PoolKey{{Organization: "other", Class: "opus-4"}, {Organization: "acme", Class: "sonnet-4"}} {
		if err := ratelimit.WritePoolConfig(ctx, srv.Client(), pool, limits); err != nil {
			t.Fatal(err)
		}
	}
	if code, body := readyz(t, pinned); code != 503 || !strings.Contains(body, "opus-4") {
		t.Errorf("pinned opus-4, only sonnet-4 configured: %d %q", code, body)
	}
	if code, body := readyz(t, anyClass); code != 200 {
		t.Errorf("no class pinned, sonnet-4 configured: %d %q", code, body)
	}
	if err := ratelimit.WritePoolConfig(ctx, srv.Client(), ratelimit.PoolKey{Organization: "acme", Class: "opus-4"}, limits); err != nil {
		t.Fatal(err)
	}
	if code, body := readyz(t, pinned); code != 200 {
		t.Errorf("pinned opus-4, configured: %d %q", code, body)
	}
}
