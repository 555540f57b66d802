package proxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// bufferedResponse is a whole response kept in memory to be written to
// every caller that shared it.
type bufferedResponse struct {
	// own is set when the proxy answered itself (a refusal); each caller
	// gets it with a request id of its own.
	own    *answer
	status int
	header http.Header
	body   []byte
}

func (b *bufferedResponse) write(w http.ResponseWriter) {
	if b.own != nil {
		b.own.write(w)
		return
	}
	copyHeaders(w.Header(), b.header)
	w.Header().Set("Content-Length", strconv.Itoa(len(b.body)))
	w.WriteHeader(b.status)
	_, _ = w.Write(b.body) // A client that left cannot be told.
}

// coalesceKey identifies calls that must get the same answer: same
// credentials, endpoint, API version, betas and body. It is a hash, so the
// key itself never sits in the map.
func coalesceKey(credential string, r *http.Request, body []byte) string {
	h := sha256.New()
	for _, part := range []string{
		credential, r.URL.Path, r.URL.RawQuery,
		r.Header.Get("Anthropic-Version"), strings.Join(r.Header.Values("Anthropic-Beta"), ","),
	} {
		_, _ = io.WriteString(h, part)
		_, _ = h.Write([]byte{0})
	}
	_, _ = h.Write(body)
	return string(h.Sum(nil))
}

// serveCoalesced answers a non-streaming call from one shared upstream
// call: the first caller (the leader) reserves, forwards and settles; those
// arriving while it is in flight get the same bytes and cost nothing.
func (p *Proxy) serveCoalesced(w http.ResponseWriter, r *http.Request, body []byte, c *call) {
	cred, _ := p.credentials(r.Header)
	leader := false
	v, _, _ := p.flights.Do(coalesceKey(cred, r, body), func() (any, error) {
		leader = true
		return p.roundTripBuffered(r, body, c), nil
	})
	if !leader {
		p.metrics.coalesced.WithLabelValues(c.class).Inc()
	}
	v.(*bufferedResponse).write(w) //nolint:forcetypeassert // the function above returns nothing else.
}

// roundTripBuffered is the leader's call. It does not stop when the leader's
// client leaves: others may be waiting for it.
func (p *Proxy) roundTripBuffered(r *http.Request, body []byte, c *call) *bufferedResponse {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), p.cfg.RequestTimeout)
	defer cancel()
	if a, ok := p.admit(ctx, c); !ok {
		return &bufferedResponse{own: &a}
	}
	out, err := p.upstreamRequest(ctx, r, bytes.NewReader(body), int64(len(body)))
	if err != nil {
		p.finish(c, outcome{Sent: false}, nil)
		return &bufferedResponse{own: &answer{Status: http.StatusInternalServerError, Type: errAPI, Message: msgBuildFailed}}
	}
	resp, err := p.client.Do(out)
	if err == nil {
		err = checkStatus(resp) // A status outside 100-599 is no response at all.
	}
	if err != nil {
		p.metrics.upstreamStatus(0)
		p.finish(c, outcome{Sent: !neverSent(err)}, nil)
		p.log.Warn("upstream request failed", "class", c.class, "error", err)
		a := failedUpstreamAnswer(err)
		return &bufferedResponse{own: &a}
	}
	defer func() { _ = resp.Body.Close() }()
	p.metrics.upstreamStatus(resp.StatusCode)
	var buf bytes.Buffer
	_, readErr := io.Copy(&buf, io.LimitReader(resp.Body, p.cfg.MaxResponseCapture+1))
	tooBig := int64(buf.Len()) > p.cfg.MaxResponseCapture
	var usage observedUsage
	switch {
	case readErr != nil || tooBig:
		usage.Malformed = true
	case resp.StatusCode >= 200 && resp.StatusCode <= 299:
		usage = usageFromMessage(buf.Bytes())
	}
	p.finish(c, outcome{Sent: true, Status: resp.StatusCode, Usage: usage, CacheReadsCount: c.cacheReadsCount}, resp.Header)
	if readErr != nil || tooBig {
		p.log.Warn("upstream response unreadable for coalescing", "class", c.class, "status", resp.StatusCode, "too_big", tooBig, "error", readErr)
		return &bufferedResponse{own: &answer{Status: http.StatusBadGateway, Type: errAPI, Message: "claudecap proxy: the upstream response was cut short"}}
	}
	return &bufferedResponse{status: resp.StatusCode, header: resp.Header, body: buf.Bytes()}
}
