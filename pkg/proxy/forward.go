package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
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
// and query of the client's request are used, never its host. The path is
// sent exactly as the metering decision saw it: plain (see plainPath), so
// its escaped and decoded forms are the same bytes.
func (p *Proxy) upstreamRequest(ctx context.Context, r *http.Request, body io.Reader, length int64) (*http.Request, error) {
	if !plainPath(r.URL) {
		return nil, errUnplainPath
	}
	target := *p.upstream
	target.Path = p.upstream.Path + r.URL.Path
	target.RawPath = ""
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

// errMalformedStatus is an upstream response whose status is no HTTP
// status: it cannot be passed on (net/http panics on a status below 100)
// and says nothing about what the API did.
var errMalformedStatus = errors.New("upstream answered with a status outside 100-599")

// checkStatus turns a response with a malformed status into an error,
// closing its body.
func checkStatus(resp *http.Response) error {
	if validStatus(resp.StatusCode) {
		return nil
	}
	_ = resp.Body.Close()
	return fmt.Errorf("%w: %d", errMalformedStatus, resp.StatusCode)
}

// validStatus reports whether an upstream status can be passed on.
func validStatus(code int) bool { return code >= 100 && code <= 599 }

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

// failedUpstreamAnswer is the client's answer when the upstream gave no
// valid response: 504 on a timeout, 502 otherwise.
func failedUpstreamAnswer(err error) answer {
	var ne net.Error
	switch {
	case errors.Is(err, errMalformedStatus):
		return answer{Status: http.StatusBadGateway, Type: errAPI, Message: "claudecap proxy: the upstream API sent a malformed response"}
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		return answer{Status: http.StatusGatewayTimeout, Type: "timeout_error", Message: "claudecap proxy: the upstream API did not answer in time"}
	}
	return answer{Status: http.StatusBadGateway, Type: errAPI, Message: msgUnreachable}
}
