package mockapi_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/claudecap/claudecap/pkg/mockapi"
)

const benchBody = `{"model":"claude-sonnet-4-5","max_tokens":256,"messages":[{"role":"user","content":"Summarize the following ticket in one sentence: the checkout page times out when the cart has more than fifty items."}]}`
const benchStreamBody = `{"model":"claude-sonnet-4-5","max_tokens":256,"stream":true,"messages":[{"role":"user","content":"Summarize the following ticket in one sentence: the checkout page times out when the cart has more than fifty items."}]}`

// discardWriter is the cheapest ResponseWriter, so the benchmark measures the
// mock and not a recorder.
type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(code int)        { w.status = code }
func (w *discardWriter) Flush()                      {}

// limitsOn are limits far above what a benchmark reaches: every request goes
// through the buckets, none is refused.
func limitsOn() map[string]mockapi.Limits {
	l := mockapi.Limits{RequestsPerMinute: mockapi.MaxLimit, InputTokensPerMinute: mockapi.MaxLimit, OutputTokensPerMinute: mockapi.MaxLimit}
	return map[string]mockapi.Limits{"opus-4": l, "sonnet-4": l, "haiku-4.5": l, "haiku-3.5": l}
}

// serveN runs n requests through the handler on all procs and returns
// requests per second.
func serveN(b *testing.B, h http.Handler, body string, n int) float64 {
	b.Helper()
	var wg sync.WaitGroup
	workers := 4
	per := n / workers
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &discardWriter{h: http.Header{}}
			rd := strings.NewReader(body)
			req := httptest.NewRequest(http.MethodPost, "/v1/messages", rd)
			req.Header.Set("X-Api-Key", "bench")
			req.Header.Set("Anthropic-Version", "2023-06-01")
			for range per {
				rd.Reset(body)
				req.Body = io.NopCloser(rd)
				req.ContentLength = int64(len(body))
				clear(w.h)
				h.ServeHTTP(w, req)
				if w.status != http.StatusOK {
					b.Errorf("status %d", w.status)
					return
				}
			}
		}()
	}
	wg.Wait()
	return float64(per*workers) / time.Since(start).Seconds()
}

// BenchmarkMockThroughput measures the handler's own cost (no network) with
// rate limiting off (the baseline) and on, in the same run, and reports both
// rates and their ratio. Latency is zero; output is 200 tokens.
func BenchmarkMockThroughput(b *testing.B) {
	for _, tc := range []struct{ name, body string }{{"plain", benchBody}, {"stream", benchStreamBody}} {
		b.Run(tc.name, func(b *testing.B) {
			off, err := mockapi.New(mockapi.Config{OutputTokens: mockapi.Fixed(200)})
			if err != nil {
				b.Fatal(err)
			}
			on, err := mockapi.New(mockapi.Config{Limits: limitsOn(), OutputTokens: mockapi.Fixed(200)})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			n := max(b.N, 4)
			offRate := serveN(b, off, tc.body, n)
			onRate := serveN(b, on, tc.body, n)
			b.ReportMetric(offRate, "req/s-limits-off")
			b.ReportMetric(onRate, "req/s-limits-on")
			b.ReportMetric(onRate/offRate, "on/off")
		})
	}
}

// BenchmarkMockLoopback measures requests per second over real HTTP on
// loopback (client cost included), limits off and on in the same run.
func BenchmarkMockLoopback(b *testing.B) {
	run := func(cfg mockapi.Config) float64 {
		s, err := mockapi.New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		hs := httptest.NewServer(s)
		defer hs.Close()
		tr := &http.Transport{MaxIdleConnsPerHost: 64}
		defer tr.CloseIdleConnections()
		client := &http.Client{Transport: tr}
		var wg sync.WaitGroup
		const workers = 16
		per := max(b.N/workers, 1)
		start := time.Now()
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range per {
					req, _ := http.NewRequest(http.MethodPost, hs.URL+"/v1/messages", bytes.NewReader([]byte(benchBody)))
					req.Header.Set("X-Api-Key", "bench")
					req.Header.Set("Anthropic-Version", "2023-06-01")
					res, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, res.Body)
					_ = res.Body.Close()
				}
			}()
		}
		wg.Wait()
		return float64(per*workers) / time.Since(start).Seconds()
	}
	b.ResetTimer()
	offRate := run(mockapi.Config{OutputTokens: mockapi.Fixed(200)})
	onRate := run(mockapi.Config{Limits: limitsOn(), OutputTokens: mockapi.Fixed(200)})
	b.ReportMetric(offRate, "req/s-limits-off")
	b.ReportMetric(onRate, "req/s-limits-on")
	b.ReportMetric(onRate/offRate, "on/off")
}
