package proxy_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/claudecap/claudecap/internal/testutil/redistest"
	"github.com/claudecap/claudecap/pkg/proxy"
	"github.com/claudecap/claudecap/pkg/ratelimit"
)

const benchMessage = `{"id":"msg_bench","type":"message","role":"assistant","content":[{"type":"text","text":"Hello!"}],` +
	`"model":"claude-sonnet-4-5","stop_reason":"end_turn","stop_sequence":null,` +
	`"usage":{"input_tokens":12,"output_tokens":6,"cache_creation_input_tokens":0,"cache_read_input_tokens":0}}`

const benchStream = "event: message_start\n" +
	`data: {"type":"message_start","message":{"id":"msg_bench","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5",` +
	`"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":1}}}` + "\n\n" +
	"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n" +
	"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello!\"}}\n\n" +
	"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n" +
	"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":6}}\n\n" +
	"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"

// cannedUpstream answers instantly with a small Messages response (or
// stream) and the usual headers.
func cannedUpstream(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	h := w.Header()
	h.Set("Request-Id", "req_bench")
	h.Set("Anthropic-Ratelimit-Requests-Limit", "4000")
	h.Set("Anthropic-Ratelimit-Requests-Remaining", "3999")
	h.Set("Anthropic-Ratelimit-Requests-Reset", "2026-04-01T00:00:00Z")
	if strings.Contains(r.URL.RawQuery, "stream") {
		h.Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, benchStream)
		return
	}
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(benchMessage)))
	_, _ = io.WriteString(w, benchMessage)
}

// BenchmarkProxyOverhead measures the latency the proxy adds: each iteration
// sends the same request once directly to a local upstream and once through
// the proxy (real limiter on a loopback redis-server: one reservation and
// one settlement per call), alternating so both see the same machine noise.
// It reports p50 and p99 of both and the difference.
//
//	go test ./pkg/proxy -run '^$' -bench ProxyOverhead -benchtime 5000x
func BenchmarkProxyOverhead(b *testing.B) {
	for _, mode := range []string{"message", "stream"} {
		b.Run(mode, func(b *testing.B) { benchOverhead(b, mode == "stream") })
	}
}

func benchOverhead(b *testing.B, stream bool) {
	srv := redistest.Start(b)
	limits := ratelimit.Limits{RequestsPerMinute: 1 << 40, InputTokensPerMinute: 1 << 50, OutputTokensPerMinute: 1 << 50}
	if err := ratelimit.WritePoolConfig(context.Background(), srv.Client(), testPool, ratelimit.PoolConfig{Limits: limits}); err != nil {
		b.Fatal(err)
	}
	upstream := httptest.NewServer(http.HandlerFunc(cannedUpstream))
	defer upstream.Close()
	lim, err := proxy.NewRedisLimiter(srv.Client(), ratelimit.Options{Pool: testPool, Workload: testWorkload, Pod: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	p, err := proxy.New(proxy.Config{Upstream: upstream.URL, Logger: slog.New(slog.DiscardHandler)}, lim)
	if err != nil {
		b.Fatal(err)
	}
	front := httptest.NewServer(p.Handler())
	defer front.Close()

	body := `{"model":"claude-sonnet-4-5","max_tokens":256,"stream":` + strconv.FormatBool(stream) +
		`,"messages":[{"role":"user","content":"Say hello in one word."}]}`
	query := ""
	if stream {
		query = "?stream"
	}
	httpc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	send := func(base string) time.Duration {
		req, _ := http.NewRequest(http.MethodPost, base+"/v1/messages"+query, strings.NewReader(body))
		req.Header.Set("X-Api-Key", "bench-key")
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Anthropic-Version", "2023-06-01")
		start := time.Now()
		resp, err := httpc.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, err = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		elapsed := time.Since(start)
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d, %v", resp.StatusCode, err)
		}
		return elapsed
	}
	for range 200 { // warm both keep-alive pools and the script cache
		send(upstream.URL)
		send(front.URL)
	}
	direct := make([]time.Duration, 0, b.N)
	proxied := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		direct = append(direct, send(upstream.URL))
		proxied = append(proxied, send(front.URL))
	}
	b.StopTimer()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		b.Fatal(err)
	}
	d50, d99 := percentile(direct, 0.50), percentile(direct, 0.99)
	p50, p99 := percentile(proxied, 0.50), percentile(proxied, 0.99)
	b.ReportMetric(micros(d50), "direct-p50-µs")
	b.ReportMetric(micros(p50), "proxied-p50-µs")
	b.ReportMetric(micros(p50-d50), "added-p50-µs")
	b.ReportMetric(micros(p99-d99), "added-p99-µs")
	b.ReportMetric(float64(p50)/float64(d50), "ratio-p50")
}

func percentile(samples []time.Duration, q float64) time.Duration {
	s := slices.Clone(samples)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
