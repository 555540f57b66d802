package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"path"
	"strings"
	"time"
)

// newTransport is the upstream connection pool: HTTP/1.1 with keep-alive
// (HTTP/2 is not negotiated: one slow stream must not hold up others on a
// shared connection, and the pool is sized for the sidecar's concurrency),
// no transparent compression (the proxy reads usage from the bytes it
// forwards and the client gets the bytes the API sent), and timeouts on every
// phase before the response starts.
func newTransport(cfg Config) *http.Transport {
	dialer := &net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   cfg.DialTimeout,
		TLSNextProto:          map[string]func(string, *tls.Conn) http.RoundTripper{},
		ForceAttemptHTTP2:     false,
		MaxIdleConns:          cfg.MaxIdleConns,
		MaxIdleConnsPerHost:   cfg.MaxIdleConns,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: cfg.UpstreamHeaderTimeout,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
		ReadBufferSize:        32 << 10,
		WriteBufferSize:       32 << 10,
	}
}

// hopHeaders are meaningful for one connection only and never forwarded
// (RFC 9110 section 7.6.1).
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// copyHeaders copies src into dst without hop-by-hop headers, including the
// ones src's Connection header names.
func copyHeaders(dst, src http.Header) {
	var named []string
	for _, v := range src["Connection"] {
		for f := range strings.SplitSeq(v, ",") {
			if f = textproto.TrimString(f); f != "" {
				named = append(named, http.CanonicalHeaderKey(f))
			}
		}
	}
	for k, vv := range src {
		if isHopHeader(k, named) {
			continue
		}
		dst[k] = append(dst[k][:0:0], vv...)
	}
}

func isHopHeader(k string, named []string) bool {
	for _, h := range hopHeaders {
		if k == h {
			return true
		}
	}
	for _, h := range named {
		if k == h {
			return true
		}
	}
	return false
}

// validAPIPath accepts clean paths under /v1/ only: nothing else of the
// upstream is reachable through the proxy.
func validAPIPath(p string) bool {
	return strings.HasPrefix(p, "/v1/") && path.Clean(p) == p
}

// credentials returns the key the call is made with (for coalescing) and
// whether there is one at all.
func (p *Proxy) credentials(h http.Header) (string, bool) {
	if p.cfg.APIKey != "" {
		return string(p.cfg.APIKey), true
	}
	if k := h.Get("X-Api-Key"); k != "" {
		return k, true
	}
	if a := h.Get("Authorization"); a != "" {
		return a, true
	}
	return "", false
}

// upstreamRequest builds the request to the fixed upstream: only the path
// and query of the client's request are used, never its host.
func (p *Proxy) upstreamRequest(ctx context.Context, r *http.Request, body io.Reader, length int64) (*http.Request, error) {
	target := *p.upstream
	target.Path = p.upstream.Path + r.URL.Path
	target.RawQuery = r.URL.RawQuery
	out, err := http.NewRequestWithContext(ctx, r.Method, target.String(), body)
	if err != nil {
		return nil, err
	}
	copyHeaders(out.Header, r.Header)
	out.Header.Del("Accept-Encoding")
	out.Header.Del("Content-Length")
	out.ContentLength = length
	if length == 0 {
		out.Body = http.NoBody
	}
	if p.cfg.APIKey != "" {
		out.Header.Set("X-Api-Key", string(p.cfg.APIKey))
		out.Header.Del("Authorization")
	}
	return out, nil
}

// neverSent reports whether a round-trip error happened before any byte of
// the request could reach the API (the connection was never made).
func neverSent(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}
