package proxy

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/claudecap/claudecap/pkg/ratelimit"
)

// Label names and values used more than once.
const (
	labelClass = "class"
	// noResponse is the code label of calls that got no upstream response.
	noResponse = "error"
)

// metrics are the proxy's Prometheus series, on a registry of its own so
// that several proxies (tests, benchmarks) can live in one process.
type metrics struct {
	registry    *prometheus.Registry
	admitted    *prometheus.CounterVec
	waited      *prometheus.HistogramVec
	refused     *prometheus.CounterVec
	limiterErrs *prometheus.CounterVec
	upstream    *prometheus.CounterVec
	tokens      *prometheus.CounterVec
	coalesced   *prometheus.CounterVec
	settlements *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		admitted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "claudecap_proxy_admitted_total",
			Help: "Messages API calls the shared limiter admitted.",
		}, []string{labelClass}),
		waited: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "claudecap_proxy_admission_wait_seconds",
			Help:    "Time from request to admission or refusal, waiting for room included.",
			Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60},
		}, []string{labelClass}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "claudecap_proxy_refused_total",
			Help: "Calls the proxy answered 429 itself, by the dimension that had no room (too_large: can never fit).",
		}, []string{labelClass, "dimension", "reason"}),
		limiterErrs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "claudecap_proxy_limiter_errors_total",
			Help: "Calls refused because the limiter failed: unavailable (fail closed), not_configured, other.",
		}, []string{labelClass, "reason"}),
		upstream: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "claudecap_proxy_upstream_responses_total",
			Help: "Upstream responses by HTTP status code (\"error\": no response).",
		}, []string{"code"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "claudecap_proxy_tokens_total",
			Help: "Tokens settled, by dimension: input (as ITPM counts it), output, cache_read.",
		}, []string{labelClass, "dimension"}),
		coalesced: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "claudecap_proxy_coalesced_total",
			Help: "Calls answered with another identical in-flight call's response.",
		}, []string{labelClass}),
		settlements: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "claudecap_proxy_settlements_total",
			Help: "Reservations closed: exact, conservative (something unknown stayed charged), cancelled, failed.",
		}, []string{labelClass, "result"}),
	}
	m.registry.MustRegister(m.admitted, m.waited, m.refused, m.limiterErrs, m.upstream, m.tokens, m.coalesced, m.settlements,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry})
}

// upstreamStatus counts one upstream response; 0 means none came.
func (m *metrics) upstreamStatus(status int) {
	code := noResponse
	if status > 0 {
		code = strconv.Itoa(status)
	}
	m.upstream.WithLabelValues(code).Inc()
}

// settled counts tokens of a settlement.
func (m *metrics) settled(class string, a ratelimit.Actual) {
	m.tokens.WithLabelValues(class, "input").Add(float64(a.InputTokens))
	m.tokens.WithLabelValues(class, "output").Add(float64(a.OutputTokens))
	m.tokens.WithLabelValues(class, "cache_read").Add(float64(a.CacheReadInputTokens))
}
