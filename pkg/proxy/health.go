package proxy

import (
	"context"
	"net/http"
	"time"
)

// readyTimeout bounds the limiter check of /readyz.
const readyTimeout = 2 * time.Second

// Handler serves the API paths and, next to them, /healthz, /readyz and
// /metrics. It is what the worker-facing listener runs.
func (p *Proxy) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !p.serveOps(w, r) {
			p.ServeHTTP(w, r)
		}
	})
}

// OpsHandler serves only /healthz, /readyz and /metrics, for a listener the
// kubelet and Prometheus reach while the API listener stays on loopback.
func (p *Proxy) OpsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !p.serveOps(w, r) {
			http.NotFound(w, r)
		}
	})
}

func (p *Proxy) serveOps(w http.ResponseWriter, r *http.Request) bool {
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
			return true
		}
		writeText(w, http.StatusOK, "ready\n")
	case "/metrics":
		p.metricsH.ServeHTTP(w, r)
	default:
		return false
	}
	return true
}

func writeText(w http.ResponseWriter, status int, s string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(s))
}
