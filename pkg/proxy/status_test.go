package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"

	"github.com/claudecap/claudecap/pkg/dimension"
	"github.com/claudecap/claudecap/pkg/ratelimit"
)

// startRawUpstream answers every request on a loopback listener with the
// bytes of raw, then closes the connection: an upstream that does not speak
// HTTP correctly.
func startRawUpstream(t *testing.T, raw string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer func() { _ = conn.Close() }()
				req, err := http.ReadRequest(bufio.NewReader(conn))
				if err != nil {
					return
				}
				_, _ = io.Copy(io.Discard, req.Body)
				_, _ = io.WriteString(conn, raw)
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// An upstream status outside 100-599 is no answer: the client gets 502
// api_error, a metered call stays charged in full, and nothing panics.
func TestMalformedUpstreamStatus(t *testing.T) {
	for _, status := range []string{"042 Weird", "000 Zero", "600 Beyond", "999 Max"} {
		t.Run(status, func(t *testing.T) {
			upstream := startRawUpstream(t, "HTTP/1.1 "+status+"\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
			lim := &fakeLimiter{}
			p, hs, _ := startProxy(t, Config{Upstream: upstream}, lim)
			body := messagesBody("claude-sonnet-4-5", 50, false, "hi")
			resp, got := post(t, hs.URL, body, "X-Api-Key", workerKey)
			if resp.StatusCode != http.StatusBadGateway || errorTypeOf(got) != errAPI || resp.Header.Get(HeaderOrigin) != "proxy" {
				t.Errorf("metered call: %d %s, want the proxy's 502 api_error", resp.StatusCode, got)
			}
			s := lim.snapshot(t, p)
			want := ratelimit.Actual{InputTokens: ratelimit.Call(EstimateInputTokens([]byte(body)), 50)[dimension.InputTokens], OutputTokens: 50}
			if s.cancelled != 0 || len(s.settled) != 1 || s.settled[0] != want {
				t.Errorf("settled %+v cancelled %d, want everything kept charged (%+v)", s.settled, s.cancelled, want)
			}
			// Coalesced calls are buffered by a leader: the same answer, the same settlement.
			cp, chs, _ := startProxy(t, Config{Upstream: upstream, Coalesce: true}, lim)
			resp, got = post(t, chs.URL, body, "X-Api-Key", workerKey)
			if resp.StatusCode != http.StatusBadGateway || errorTypeOf(got) != errAPI {
				t.Errorf("coalesced call: %d %s, want the proxy's 502 api_error", resp.StatusCode, got)
			}
			if s := lim.snapshot(t, cp); s.cancelled != 0 || len(s.settled) != 2 || s.settled[1] != want {
				t.Errorf("coalesced: settled %+v cancelled %d, want everything kept charged", s.settled, s.cancelled)
			}
			code, got := rawExchange(t, hs.URL, http.MethodGet, "/v1/models", "X-Api-Key", workerKey)
			if code != http.StatusBadGateway || errorTypeOf(got) != errAPI {
				t.Errorf("pass-through: %d %s, want 502 api_error", code, got)
			}
		})
	}
}
