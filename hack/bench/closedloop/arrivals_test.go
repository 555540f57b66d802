package closedloop

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// pusher is a workload's load generator: it pushes uniquely named jobs into the workload's
// list and keeps the ledger of what it pushed, for the exactly-once check.
type pusher struct {
	rdb    *redis.Client
	list   string
	prefix string
	origin time.Time

	mu     sync.Mutex
	seq    int
	pushed map[string]float64 // payload -> seconds after origin it was pushed
	failed map[string]bool    // pushes Redis did not confirm
}

func newPusher(rdb *redis.Client, list, prefix string, origin time.Time) *pusher {
	return &pusher{rdb: rdb, list: list, prefix: prefix, origin: origin,
		pushed: map[string]float64{}, failed: map[string]bool{}}
}

// push adds n jobs in one RPUSH. A failed push is remembered apart: Redis may or may not
// have them.
func (p *pusher) push(ctx context.Context, n int) error {
	p.mu.Lock()
	payloads := make([]any, n)
	for i := range payloads {
		p.seq++
		payloads[i] = fmt.Sprintf("%s-%06d", p.prefix, p.seq)
	}
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	err := p.rdb.RPush(ctx, p.list, payloads...).Err()
	at := time.Since(p.origin).Seconds()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, v := range payloads {
		if err != nil {
			p.failed[v.(string)] = true
		} else {
			p.pushed[v.(string)] = at
		}
	}
	return err
}

// poisson pushes one job at a time, with exponential gaps of mean 60/perMinute seconds, from
// from until until (times after origin), or until ctx ends.
func (p *pusher) poisson(ctx context.Context, rng *rand.Rand, perMinute float64, from, until time.Duration) {
	next := from
	for {
		next += time.Duration(rng.ExpFloat64() * 60 / perMinute * float64(time.Second))
		if next >= until {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(p.origin.Add(next))):
		}
		_ = p.push(ctx, 1) // a failure is in the ledger; Redis may be down on purpose
	}
}

// ledger returns copies of what was pushed and what may have been.
func (p *pusher) ledger() (pushed map[string]float64, failed map[string]bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pushed = make(map[string]float64, len(p.pushed))
	for k, v := range p.pushed {
		pushed[k] = v
	}
	failed = make(map[string]bool, len(p.failed))
	for k := range p.failed {
		failed[k] = true
	}
	return pushed, failed
}

// externalClient is another user of the organization's limits that does not go through the
// limiter: plain HTTP straight at the mock, in an open loop at a fixed rate.
type externalClient struct {
	url string

	sent, ok, rateLimited, failed, outputTokens atomic.Int64
	wg                                          sync.WaitGroup
}

func (e *externalClient) counters() externalCounters {
	if e == nil {
		return externalCounters{}
	}
	return externalCounters{
		Sent: e.sent.Load(), OK: e.ok.Load(), RateLimited: e.rateLimited.Load(),
		Failed: e.failed.Load(), OutputTokens: e.outputTokens.Load(),
	}
}

// run sends perMinute calls a minute from the time origin+from until ctx ends, each in its
// own goroutine so a slow call does not delay the next.
func (e *externalClient) run(ctx context.Context, origin time.Time, from time.Duration, perMinute float64) {
	body, _ := json.Marshal(map[string]any{
		"model": model, "max_tokens": outputTokens,
		"messages": []map[string]string{{"role": "user", "content": "An external batch job, not behind the limiter."}},
	})
	httpc := &http.Client{Timeout: 30 * time.Second}
	gap := time.Duration(60 / perMinute * float64(time.Second))
	for next := from; ; next += gap {
		select {
		case <-ctx.Done():
			e.wg.Wait()
			return
		case <-time.After(time.Until(origin.Add(next))):
		}
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			e.call(ctx, httpc, body)
		}()
	}
}

func (e *externalClient) call(ctx context.Context, httpc *http.Client, body []byte) {
	e.sent.Add(1)
	req, err := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodPost, e.url+"/v1/messages", bytes.NewReader(body))
	if err != nil {
		e.failed.Add(1)
		return
	}
	req.Header.Set("content-type", "application/json")
	req.Header.Set("anthropic-version", "2023-06-01")
	req.Header.Set("x-api-key", "external-client")
	resp, err := httpc.Do(req)
	if err != nil {
		e.failed.Add(1)
		return
	}
	defer func() { _ = resp.Body.Close() }()
	raw, _ := io.ReadAll(resp.Body)
	switch resp.StatusCode {
	case http.StatusOK:
		var msg struct {
			Usage struct {
				OutputTokens int64 `json:"output_tokens"`
			} `json:"usage"`
		}
		if json.Unmarshal(raw, &msg) != nil {
			e.failed.Add(1)
			return
		}
		e.ok.Add(1)
		e.outputTokens.Add(msg.Usage.OutputTokens)
	case http.StatusTooManyRequests:
		e.rateLimited.Add(1)
	default:
		e.failed.Add(1)
	}
}
