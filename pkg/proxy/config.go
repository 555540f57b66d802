package proxy

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/claudecap/claudecap/pkg/capacity"
)

// Defaults for Config.
const (
	// DefaultUpstream is Anthropic's API.
	DefaultUpstream = "https://api.anthropic.com"
	// DefaultListenAddr is where workers reach the proxy. Loopback only: a
	// proxy that injects the API key must not be reachable from other pods.
	DefaultListenAddr = "127.0.0.1:8081"
	// DefaultOpsListenAddr serves /metrics, /healthz and /readyz to the
	// kubelet and Prometheus, which reach the pod IP, not loopback.
	DefaultOpsListenAddr = ":8082"
	// DefaultMaxBodyBytes is the Messages API's own request size limit.
	DefaultMaxBodyBytes = 32 << 20
	// DefaultUpstreamHeaderTimeout covers a non-streaming call, whose headers
	// only come once the whole answer is generated; the SDKs refuse
	// non-streaming calls expected to take longer than 10 minutes.
	DefaultUpstreamHeaderTimeout = 10 * time.Minute
	// DefaultRequestTimeout bounds one upstream call end to end, long
	// streams included.
	DefaultRequestTimeout = time.Hour
	// DefaultStreamIdleTimeout ends a stream that sent nothing (not even a
	// ping) for this long.
	DefaultStreamIdleTimeout = 5 * time.Minute
	// DefaultMaxIdleConns is the keep-alive pool size to the upstream.
	DefaultMaxIdleConns = 256
	// DefaultPublishInterval limits upstream header publication to one Redis
	// write per class per interval; 429 and 529 are always published.
	DefaultPublishInterval = time.Second
	// DefaultMaxResponseCapture is how much of a non-streaming response is
	// kept to read its usage (and to share it when coalescing).
	DefaultMaxResponseCapture = 32 << 20
)

// APIKey is an Anthropic API key. It formats as a fixed placeholder in logs,
// errors and %v so a key can never leak through a printed Config.
type APIKey string

// String hides the key.
func (APIKey) String() string { return "[redacted]" }

// GoString hides the key from %#v.
func (APIKey) GoString() string { return "[redacted]" }

// LogValue hides the key from log/slog.
func (APIKey) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// Config configures a Proxy. The zero value of every field except Upstream
// takes its default.
type Config struct {
	// Upstream is the one API every request goes to (scheme and host, and
	// optionally a path prefix). Never taken from a request. Default
	// DefaultUpstream.
	Upstream string
	// APIKey, when set, replaces the worker's credentials on every request
	// (x-api-key is set, Authorization removed). When empty the worker's own
	// x-api-key or Authorization header is passed through.
	APIKey APIKey
	// AllowedPathPrefixes widens what is served while APIKey is injected.
	// With an injected key the proxy serves only POST /v1/messages, POST
	// /v1/messages/count_tokens, GET /v1/models and GET /v1/models/{id}: any
	// other route would spend the organization's key on behalf of whoever
	// reaches the listener (files, batches, legacy completions). Each prefix
	// (a clean path under /v1/, such as "/v1/messages/batches") serves
	// itself and every path below it, any method, unmetered. Without APIKey
	// every clean /v1/ path passes with the worker's own key and this is
	// ignored.
	AllowedPathPrefixes []string
	// AllowedHosts are the host names or IP addresses (any port) that the
	// API listener answers besides loopback ones (localhost, 127.0.0.0/8,
	// ::1). A request naming any other Host gets 403: that is what stops a
	// web page from reaching a proxy on a workstation by DNS rebinding.
	// The ops listener (OpsHandler) checks no Host: probes use the pod IP.
	AllowedHosts []string
	// AllowedOrigins are the browser origins ("https://tool.example", with
	// a port when not the default) whose requests are served; any request
	// with an Origin header not listed gets 403. SDK clients outside a
	// browser send no Origin. Default: none.
	AllowedOrigins []string
	// Class pins every request to one pool's model class. When empty the
	// class comes from the request's model through Catalog.
	Class string
	// Catalog maps model names to classes. Default capacity.DefaultCatalog().
	Catalog *capacity.Catalog
	// MaxWait is how long a request may wait for room in the pool; 0 answers
	// 429 at once.
	MaxWait time.Duration
	// Coalesce lets identical in-flight non-streaming requests (same body,
	// same credentials, same API version and betas) share one upstream call.
	Coalesce bool
	// MaxBodyBytes limits request bodies. Default DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// MaxResponseCapture limits how much of a non-streaming response is kept
	// for reading usage. Default DefaultMaxResponseCapture.
	MaxResponseCapture int64
	// UpstreamHeaderTimeout: see DefaultUpstreamHeaderTimeout.
	UpstreamHeaderTimeout time.Duration
	// RequestTimeout: see DefaultRequestTimeout.
	RequestTimeout time.Duration
	// StreamIdleTimeout: see DefaultStreamIdleTimeout.
	StreamIdleTimeout time.Duration
	// DialTimeout bounds connecting (and the TLS handshake) to the upstream.
	// Default 10 s.
	DialTimeout time.Duration
	// MaxIdleConns: see DefaultMaxIdleConns.
	MaxIdleConns int
	// PublishInterval: see DefaultPublishInterval. Negative publishes every
	// response.
	PublishInterval time.Duration
	// SettleTimeout bounds a settlement and the publication of upstream state.
	// Default 5 s.
	SettleTimeout time.Duration
	// Logger receives one line per proxied call (debug) and problems (warn).
	// Default slog.Default().
	Logger *slog.Logger

	// guard is the allowlists above, checked and normalized by withDefaults.
	guard guard
}

// withDefaults fills unset fields and checks the rest; it returns the parsed
// upstream URL.
func (c Config) withDefaults() (Config, *url.URL, error) {
	if c.Upstream == "" {
		c.Upstream = DefaultUpstream
	}
	u, err := parseUpstream(c.Upstream)
	if err != nil {
		return c, nil, err
	}
	if c.Catalog == nil {
		c.Catalog = capacity.DefaultCatalog()
	}
	setDefault(&c.MaxBodyBytes, DefaultMaxBodyBytes)
	setDefault(&c.MaxResponseCapture, DefaultMaxResponseCapture)
	setDefault(&c.UpstreamHeaderTimeout, DefaultUpstreamHeaderTimeout)
	setDefault(&c.RequestTimeout, DefaultRequestTimeout)
	setDefault(&c.StreamIdleTimeout, DefaultStreamIdleTimeout)
	setDefault(&c.DialTimeout, 10*time.Second)
	setDefault(&c.MaxIdleConns, DefaultMaxIdleConns)
	setDefault(&c.SettleTimeout, 5*time.Second)
	if c.PublishInterval == 0 {
		c.PublishInterval = DefaultPublishInterval
	}
	if c.MaxWait < 0 {
		return c, nil, fmt.Errorf("max wait %s is negative", c.MaxWait)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.guard, err = newGuard(c); err != nil {
		return c, nil, err
	}
	return c, u, nil
}

func setDefault[T int | int64 | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// parseUpstream accepts an absolute http or https URL without credentials,
// query or fragment; a trailing slash of its path is dropped.
func parseUpstream(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// The raw URL is not repeated: it may carry credentials.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("upstream URL cannot be parsed: %w", err)
	}
	if u.User != nil {
		return nil, errors.New("upstream URL must not carry credentials; use an API key instead")
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("upstream %q: scheme must be http or https", u.Redacted())
	case u.Host == "":
		return nil, fmt.Errorf("upstream %q: no host", u.Redacted())
	case u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("upstream %q: no query or fragment allowed", u.Redacted())
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}
