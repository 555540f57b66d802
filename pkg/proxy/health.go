package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claudecap/claudecap/pkg/capacity"
	"github.com/claudecap/claudecap/pkg/ratelimit"
)

// readyTimeout bounds the limiter check of /readyz.
const readyTimeout = 2 * time.Second

// Handler serves the API paths and, next to them, /healthz, /readyz and
// /metrics. It is what the worker-facing listener runs, so every path on it
// is guarded alike: the Host must be a loopback name or an allowed host, and
// a request with an Origin needs an allowed one (see guard.go). With the ops
// endpoints on this listener only (--ops-listen ""), probes must send an
// allowed Host (the kubelet's httpGet takes an httpHeaders Host entry).
func (p *Proxy) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isOpsPath(r.URL.Path) {
			p.ServeHTTP(w, r)
			return
		}
		if a, ok := p.cfg.guard.admitsClient(r, true); !ok {
			a.write(w)
			return
		}
		p.serveOps(w, r)
	})
}

// OpsHandler serves only /healthz, /readyz and /metrics, for a listener the
// kubelet and Prometheus reach while the API listener stays on loopback.
// They address it by the pod IP, so it checks no Host; it serves nothing a
// rebound page could use (no key, no upstream, no budget). Browser origins
// are still refused.
func (p *Proxy) OpsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isOpsPath(r.URL.Path) {
			http.NotFound(w, r)
			return
		}
		if a, ok := p.cfg.guard.admitsClient(r, false); !ok {
			a.write(w)
			return
		}
		p.serveOps(w, r)
	})
}

func isOpsPath(path string) bool {
	return path == "/healthz" || path == "/readyz" || path == "/metrics"
}

// serveOps serves one of the paths isOpsPath accepts.
func (p *Proxy) serveOps(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/healthz":
		// The process is alive and serving; nothing else is checked, so a
		// Redis outage never gets the pod restarted.
		writeText(w, http.StatusOK, "ok\n")
	case "/readyz":
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		if err := p.limiter.Ready(ctx); err != nil {
			writeText(w, http.StatusServiceUnavailable, "not ready: "+err.Error()+"\n")
			return
		}
		writeText(w, http.StatusOK, "ready\n")
	case "/metrics":
		p.metricsH.ServeHTTP(w, r)
	}
}

func writeText(w http.ResponseWriter, status int, s string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(s))
}

// builtinClasses are the model classes of the built-in catalog, sorted.
var builtinClasses = sync.OnceValue(func() []string {
	models := capacity.DefaultCatalog().Models()
	classes := make([]string, 0, len(models))
	for _, m := range models {
		classes = append(classes, string(m.Class))
	}
	slices.Sort(classes)
	return slices.Compact(classes)
})

// anyPoolConfigured returns nil when the pool of at least one of classes in
// organization has limits, else why not: Redis failing, or no pool
// configured (ErrPoolNotConfigured, naming what was checked; never a secret).
func anyPoolConfigured(ctx context.Context, rdb redis.UniversalClient, organization string, classes []string) error {
	classes = slices.Compact(slices.Sorted(slices.Values(classes)))
	var malformed error
	for _, class := range classes {
		_, err := ratelimit.ReadPoolConfig(ctx, rdb, ratelimit.PoolKey{Organization: organization, Class: class})
		switch {
		case err == nil:
			return nil
		case errors.Is(err, ratelimit.ErrUnavailable):
			return err
		case !errors.Is(err, ratelimit.ErrPoolNotConfigured):
			malformed = err
		}
	}
	if malformed != nil {
		return malformed
	}
	if len(classes) == 1 {
		return fmt.Errorf("pool %s: %w (the controller writes them when it reconciles a ClaudeCapacity of the pool)",
			ratelimit.PoolKey{Organization: organization, Class: classes[0]}, ratelimit.ErrPoolNotConfigured)
	}
	return fmt.Errorf("no pool of organization %s (classes %s): %w (the controller writes them when it reconciles a ClaudeCapacity)",
		organization, strings.Join(classes, ", "), ratelimit.ErrPoolNotConfigured)
}
