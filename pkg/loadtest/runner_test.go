package loadtest

import (
	"context"
	"math"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// TestOpenLoopHoldsTargetRate is a correctness check of the generator, not
// a speed claim: 200 req/s for 2 s against a trivial local handler must
// send within 5% of 400 requests at a measured rate within 5% of target.
func TestOpenLoopHoldsTargetRate(t *testing.T) {
	api := newTestAPI(t, nil)
	rep, err := Run(context.Background(), Config{
		Mode: ModeOpen, Profile: ConstantProfile(200), Duration: 2 * time.Second,
	}, plainHTTPSender(api.URL()))
	if err != nil {
		t.Fatal(err)
	}
	if got := api.requests.Load(); got < 380 || got > 400 {
		t.Fatalf("server saw %d requests, want 400 (within 5%%)", got)
	}
	if rep.Requests.Sent != api.requests.Load() || rep.Requests.Succeeded != rep.Requests.Sent {
		t.Fatalf("report %+v disagrees with the server's %d", rep.Requests, api.requests.Load())
	}
	if r := rep.Throughput.SentPerSecond; math.Abs(r-200)/200 > 0.05 {
		t.Fatalf("achieved %.1f req/s, want 200 within 5%%", r)
	}
	if rep.Throughput.TargetPerSecond != 200 {
		t.Fatalf("target rate %v, want 200", rep.Throughput.TargetPerSecond)
	}
	if rep.StopReason != StopDuration || rep.DurationSeconds < 2 {
		t.Fatalf("stop %s after %.2fs, want duration after >= 2s", rep.StopReason, rep.DurationSeconds)
	}
	if rep.Latency.ScheduleLag.Count != rep.Requests.Sent {
		t.Fatalf("schedule lag recorded for %d of %d sends", rep.Latency.ScheduleLag.Count, rep.Requests.Sent)
	}
}

// TestOpenLoopMeasuresFromIntendedTime proves the absence of coordinated
// omission: when the in-flight cap forces requests to wait, the wait shows
// up in end-to-end latency and schedule lag, while service time stays at
// the server's own latency.
func TestOpenLoopMeasuresFromIntendedTime(t *testing.T) {
	api := newTestAPI(t, func(a *testAPI) { a.delay = 50 * time.Millisecond })
	rep, err := Run(context.Background(), Config{
		Mode: ModeOpen, Profile: ConstantProfile(100), MaxRequests: 40, MaxInFlight: 1,
	}, plainHTTPSender(api.URL()))
	if err != nil {
		t.Fatal(err)
	}
	if api.maxInFlight.Load() != 1 {
		t.Fatalf("in-flight cap 1 but server saw %d at once", api.maxInFlight.Load())
	}
	// 40 requests due over 0.4 s but served one per 50 ms: the last one
	// starts about 1.6 s late.
	if lag := rep.Latency.ScheduleLag.MaxMs; lag < 1200 {
		t.Fatalf("max schedule lag %.0f ms, want about 1600", lag)
	}
	if e2e, svc := rep.Latency.EndToEnd.P99Ms, rep.Latency.ServiceTime.P99Ms; e2e < 1200 || svc > 500 {
		t.Fatalf("e2e p99 %.0f ms (want > 1200, includes the wait), service p99 %.0f ms (want ~50)", e2e, svc)
	}
}

func TestClosedLoopRespectsConcurrency(t *testing.T) {
	api := newTestAPI(t, func(a *testAPI) { a.delay = 20 * time.Millisecond })
	rep, err := Run(context.Background(), Config{
		Mode: ModeClosed, Concurrency: 8, MaxRequests: 120,
	}, newTestSender(t, api.URL(), false, 0))
	if err != nil {
		t.Fatal(err)
	}
	if got := api.maxInFlight.Load(); got != 8 {
		t.Fatalf("server saw max concurrency %d, want exactly 8", got)
	}
	if got := api.requests.Load(); got != 120 {
		t.Fatalf("server saw %d requests, want exactly 120", got)
	}
	if rep.StopReason != StopMaxRequests || rep.Requests.Succeeded != 120 || rep.Config.Concurrency != 8 {
		t.Fatalf("report: stop %s, %+v", rep.StopReason, rep.Requests)
	}
	if c := rep.PerReplicaEquivalent.MeanConcurrency; c < 6 || c > 8.01 {
		t.Fatalf("mean concurrency %.2f, want about 8", c)
	}
}

func TestStopsByCountAndDuration(t *testing.T) {
	api := newTestAPI(t, nil)
	sender := plainHTTPSender(api.URL())

	rep, err := Run(context.Background(), Config{Mode: ModeOpen, Profile: ConstantProfile(1000), MaxRequests: 37}, sender)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Requests.Sent != 37 || api.requests.Load() != 37 || rep.StopReason != StopMaxRequests {
		t.Fatalf("count bound: sent %d, server %d, stop %s", rep.Requests.Sent, api.requests.Load(), rep.StopReason)
	}

	api.requests.Store(0)
	begin := time.Now()
	rep, err = Run(context.Background(), Config{Mode: ModeClosed, Concurrency: 2, Duration: 300 * time.Millisecond}, sender)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(begin)
	if rep.StopReason != StopDuration || took < 300*time.Millisecond || took > 2*time.Second {
		t.Fatalf("duration bound: stop %s after %s", rep.StopReason, took)
	}
	if rep.Requests.Sent == 0 || rep.Requests.Sent != api.requests.Load() {
		t.Fatalf("duration bound: sent %d, server %d", rep.Requests.Sent, api.requests.Load())
	}

	// Both bounds: whichever comes first wins.
	rep, err = Run(context.Background(), Config{Mode: ModeOpen, Profile: ConstantProfile(50), Duration: 200 * time.Millisecond, MaxRequests: 1000}, sender)
	if err != nil {
		t.Fatal(err)
	}
	if rep.StopReason != StopDuration || rep.Requests.Sent != 10 {
		t.Fatalf("50/s for 200 ms: stop %s, sent %d, want duration and 10", rep.StopReason, rep.Requests.Sent)
	}
}

func TestCancelGivesPartialReport(t *testing.T) {
	api := newTestAPI(t, func(a *testAPI) { a.delay = 10 * time.Second })
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	begin := time.Now()
	rep, err := Run(ctx, Config{Mode: ModeOpen, Profile: ConstantProfile(20), Duration: time.Minute}, newTestSender(t, api.URL(), true, 0))
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(begin); took > 3*time.Second {
		t.Fatalf("cancel took %s to end the run", took)
	}
	if !rep.Interrupted || rep.StopReason != StopInterrupted {
		t.Fatalf("interrupted=%t stop=%s", rep.Interrupted, rep.StopReason)
	}
	if rep.Requests.Sent < 4 || rep.Requests.Canceled != rep.Requests.Sent || rep.Requests.Failed != 0 {
		t.Fatalf("requests %+v: every request in flight must be counted as canceled, not failed", rep.Requests)
	}
}

func TestDrainTimeoutCancelsStragglers(t *testing.T) {
	api := newTestAPI(t, func(a *testAPI) { a.delay = 10 * time.Second })
	begin := time.Now()
	rep, err := Run(context.Background(), Config{
		Mode: ModeClosed, Concurrency: 3, Duration: 100 * time.Millisecond, DrainTimeout: 200 * time.Millisecond,
	}, newTestSender(t, api.URL(), false, 0))
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(begin); took > 3*time.Second {
		t.Fatalf("drain timeout ignored: run took %s", took)
	}
	if rep.Interrupted || rep.Requests.Canceled != 3 {
		t.Fatalf("want a complete run with 3 canceled stragglers, got interrupted=%t %+v", rep.Interrupted, rep.Requests)
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	noop := SenderFunc(func(context.Context, int64) Outcome { return Outcome{Class: ClassOK} })
	bad := map[string]Config{
		"unbounded":      {Mode: ModeOpen, Profile: ConstantProfile(1)},
		"no workers":     {Mode: ModeClosed, MaxRequests: 1},
		"bad profile":    {Mode: ModeOpen, MaxRequests: 1},
		"unknown mode":   {Mode: "burst", MaxRequests: 1},
		"negative bound": {Mode: ModeClosed, Concurrency: 1, MaxRequests: 1, Duration: -1},
	}
	for name, cfg := range bad {
		if _, err := Run(context.Background(), cfg, noop); err == nil {
			t.Errorf("%s: Run accepted it", name)
		}
	}
}

func TestProgressCallback(t *testing.T) {
	var calls atomic.Int64
	var last atomic.Value
	noop := SenderFunc(func(context.Context, int64) Outcome {
		return Outcome{Class: ClassOK, Attempts: []Attempt{{Status: http.StatusOK, RetryAfter: -1}}}
	})
	_, err := Run(context.Background(), Config{
		Mode: ModeOpen, Profile: ConstantProfile(100), Duration: 550 * time.Millisecond,
		ProgressInterval: 100 * time.Millisecond,
		OnProgress: func(p Progress) {
			calls.Add(1)
			last.Store(p)
		},
	}, noop)
	if err != nil {
		t.Fatal(err)
	}
	// Five ticks are due; a loaded machine may coalesce some.
	if n := calls.Load(); n < 2 || n > 6 {
		t.Fatalf("progress called %d times in 550 ms at 100 ms, want about 5", n)
	}
	p, _ := last.Load().(Progress)
	if p.Sent == 0 || p.OK == 0 || FormatProgress(p) == "" {
		t.Fatalf("last progress %+v", p)
	}
}

func TestSweepFindsCapacity(t *testing.T) {
	// The server admits 50 req/s with a burst of 8 (a token bucket), so
	// constant arrivals at 40/s never see a 429 (even after a 200 ms stall
	// of the generator), while a 1 s stage at 60/s gets about 3 of 60.
	bucket := newTestBucket(50, 8)
	api := newTestAPI(t, func(a *testAPI) {
		a.retryAfter = ""
		a.status = func(int64) int {
			if bucket.take(time.Now()) {
				return http.StatusOK
			}
			return http.StatusTooManyRequests
		}
	})
	rep, err := RunSweep(context.Background(), SweepRun{
		Base:          Config{},
		StageDuration: time.Second,
		Sweep: SweepConfig{StartRate: 20, MaxRate: 400, Growth: 2, Refinements: 1,
			Target: SweepTarget{Max429Ratio: 0.02}},
	}, plainHTTPSender(api.URL()))
	if err != nil {
		t.Fatal(err)
	}
	s := rep.Sweep
	if s != nil {
		for _, st := range s.Stages {
			t.Logf("stage %.0f/s: %d attempts, %d 429s, passed %t", st.RatePerSecond, st.Attempts, st.Status429, st.Passed)
		}
	}
	if s == nil || len(s.Stages) != 4 {
		t.Fatalf("want stages 20, 40, 80, 60; got %+v", s)
	}
	if s.BestRatePerSecond != 40 {
		t.Fatalf("best rate %v, want 40 (stages %+v)", s.BestRatePerSecond, s.Stages)
	}
	if s.Stages[2].Passed || s.Stages[2].Status429 == 0 || !s.Stages[1].Passed {
		t.Fatalf("stages %+v", s.Stages)
	}
	if rep.Config.Mode != ModeSweep || rep.Throughput.TargetPerSecond != 40 {
		t.Fatalf("top level must describe the 40/s stage, got mode %s target %v", rep.Config.Mode, rep.Throughput.TargetPerSecond)
	}
}

// testBucket is a continuously refilled token bucket.
type testBucket struct {
	mu     chan struct{}
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
}

func newTestBucket(rate, burst float64) *testBucket {
	b := &testBucket{mu: make(chan struct{}, 1), rate: rate, burst: burst, tokens: burst}
	return b
}

func (b *testBucket) take(now time.Time) bool {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	if !b.last.IsZero() {
		b.tokens = math.Min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true
	}
	return false
}
