package limits

import (
	"context"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/claudecap/claudecap/pkg/loadtest"
	"github.com/claudecap/claudecap/pkg/proxy"
)

// benchAPIKey is what the clients send; the mock accepts any key and the proxies pass it on.
const benchAPIKey = "sk-ant-bench-limits"

// clientCounts is what the clients saw over a row. With retries off every call is one
// attempt, so attempts and calls match.
type clientCounts struct {
	mu       sync.Mutex
	calls    int64
	classes  map[loadtest.Class]int64
	statuses map[int]int64 // every HTTP attempt by status, 0 when no response came
	// 429s by who answered them: a proxy, the API (passed through), or the fixed window
	// (the call was never sent).
	proxy429, api429, window429 int64
}

func newClientCounts() *clientCounts {
	return &clientCounts{classes: map[loadtest.Class]int64{}, statuses: map[int]int64{}}
}

func (c *clientCounts) call() {
	c.mu.Lock()
	c.calls++
	c.mu.Unlock()
}

func (c *clientCounts) attempt(status int, fromProxy bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.statuses[status]++
	if status == http.StatusTooManyRequests {
		if fromProxy {
			c.proxy429++
		} else {
			c.api429++
		}
	}
}

func (c *clientCounts) result(cl loadtest.Class) {
	c.mu.Lock()
	c.classes[cl]++
	c.mu.Unlock()
}

func (c *clientCounts) refusedByWindow() {
	c.mu.Lock()
	c.window429++
	c.classes[loadtest.ClassRateLimited]++
	c.mu.Unlock()
}

// countingTransport counts every attempt's status and whether a proxy made the answer.
type countingTransport struct {
	next   http.RoundTripper
	counts *clientCounts
}

func (t countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		t.counts.attempt(0, false)
		return nil, err
	}
	t.counts.attempt(resp.StatusCode, resp.Header.Get(proxy.HeaderOrigin) == "proxy")
	return resp, nil
}

// worker is one client process: the official SDK (retries off) against one base URL, one
// sender for plain calls and one for streams.
type worker struct {
	plain, streaming *loadtest.SDKSender
	http             *http.Client
}

func newWorker(baseURL string, variants []variant, counts *clientCounts) (*worker, error) {
	hc := loadtest.NewHTTPClient()
	hc.Transport = countingTransport{next: hc.Transport, counts: counts}
	w := &worker{http: hc}
	for _, stream := range []bool{false, true} {
		s, err := loadtest.NewSDKSender(loadtest.SDKSenderConfig{
			BaseURL: baseURL, APIKey: benchAPIKey, Requests: paramsOf(variants), Stream: stream, HTTPClient: hc,
		})
		if err != nil {
			return nil, err
		}
		if stream {
			w.streaming = s
		} else {
			w.plain = s
		}
	}
	return w, nil
}

// generator sends a row's calls round-robin over its workers.
type generator struct {
	workers []*worker
	// gate, when set, decides before each call whether it may be sent (the fixed window).
	gate   func(ctx context.Context, variant int) bool
	counts *clientCounts
	calls  sync.WaitGroup
	turn   atomic.Uint64
}

// send starts one call of variant v on the next worker.
func (g *generator) send(ctx context.Context, v int, stream bool) {
	w := g.workers[int(g.turn.Add(1)%uint64(len(g.workers)))]
	g.counts.call()
	g.calls.Add(1)
	go func() {
		defer g.calls.Done()
		if g.gate != nil && !g.gate(ctx, v) {
			g.counts.refusedByWindow()
			return
		}
		s := w.plain
		if stream {
			s = w.streaming
		}
		g.counts.result(s.Send(ctx, int64(v)).Class)
	}()
}

// runMix sends the rated mix at the times sched gives, every other call streaming, until
// stop ends. Calls run on callCtx, which outlives stop so that calls under way can finish.
func (g *generator) runMix(stop, callCtx context.Context, origin time.Time, sched *loadtest.Schedule, p *picker) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for n := 0; ; n++ {
		off, ok := sched.Next()
		if !ok || !sleepUntil(stop, timer, origin.Add(off)) {
			return
		}
		g.send(callCtx, p.next(), n%2 == 1)
	}
}

// wait waits for the calls under way, at most timeout; false if some are still running.
func (g *generator) wait(timeout time.Duration) bool {
	done := make(chan struct{})
	go func() {
		g.calls.Wait()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// sleepUntil waits for t on timer; false when ctx ends first.
func sleepUntil(ctx context.Context, timer *time.Timer, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer.Reset(d)
	select {
	case <-ctx.Done():
		timer.Stop() // Go 1.23 timers: no stale tick is left to drain
		return false
	case <-timer.C:
		return true
	}
}

// picker draws variants of the mix by weight, repeatably for a seed.
type picker struct {
	cum []float64
	rng *rand.Rand
}

func newPicker(mix []variant, seed uint64) *picker {
	p := &picker{rng: rand.New(rand.NewPCG(seed, seed^0x5bd1e995))}
	var total float64
	for _, v := range mix {
		total += v.weight
		p.cum = append(p.cum, total)
	}
	for i := range p.cum {
		p.cum[i] /= total
	}
	return p
}

// next returns the index of the drawn variant.
func (p *picker) next() int {
	x := p.rng.Float64()
	for i, c := range p.cum {
		if x < c {
			return i
		}
	}
	return len(p.cum) - 1
}
