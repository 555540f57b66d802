package priority

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/redis/go-redis/v9"

	"github.com/claudecap/claudecap/internal/benchenv"
	"github.com/claudecap/claudecap/internal/kubeenv"
	"github.com/claudecap/claudecap/internal/testutil/redistest"
	"github.com/claudecap/claudecap/pkg/ratelimit"
)

// enableEnv turns the benchmark on; without it TestPriority skips, so `go test ./...` does
// not spend a minute and a half here.
const enableEnv = "CLAUDECAP_PRIORITY"

var reportFlag = flag.String("report", "", "directory of report.md and report.json (default bin/priority)")

// The pool and the traffic (see doc.go).
var (
	poolLimits = ratelimit.Limits{RequestsPerMinute: 600, InputTokensPerMinute: 400_000, OutputTokensPerMinute: 80_000}
	// reserveShare of each limit is the batch workload's reserve in the reserve row.
	reserveShare = 0.20

	// Bulk batch work: many small calls (e.g. classifying documents). Interactive calls carry
	// a conversation, so each is larger than a batch call: without a reserve a batch waiter
	// takes the refill before it ever covers an interactive call.
	batchCall       = callShape{input: 1000, maxTokens: 400, outMin: 100, outMax: 400, durMin: 2 * time.Second, durMax: 5 * time.Second}
	interactiveCall = callShape{input: 1500, maxTokens: 512, outMin: 100, outMax: 400, durMin: time.Second, durMax: 3 * time.Second}
)

const (
	batchWorkload       = "bench/batch"
	interactiveWorkload = "bench/interactive"
	batchPods           = 2
	batchCallersPerPod  = 64
	// interactiveRate is the interactive workload's Poisson arrival rate per second.
	interactiveRate = 3.0
	// lead is how long the flood runs before the first interactive call; window is how
	// long interactive calls arrive.
	lead   = time.Second
	window = 25 * time.Second
	// waitTimeout bounds an interactive call's Wait (a proxy holding a request).
	waitTimeout = 10 * time.Second
)

// callShape is one kind of call: its estimate, the output it produces and how long it runs.
type callShape struct {
	input, maxTokens int64
	outMin, outMax   int64
	durMin, durMax   time.Duration
}

func (c callShape) output(rng *rand.Rand) int64 { return c.outMin + rng.Int64N(c.outMax-c.outMin+1) }

func (c callShape) duration(rng *rand.Rand) time.Duration {
	return c.durMin + time.Duration(rng.Int64N(int64(c.durMax-c.durMin)+1))
}

// row is one configuration.
type row struct {
	Name    string `json:"name"`
	Flood   bool   `json:"flood"`
	Reserve bool   `json:"reserve"`
}

var rows = []row{
	{Name: "interactive alone"},
	{Name: "+ batch flood, no reserve", Flood: true},
	{Name: fmt.Sprintf("+ batch flood, batch reserve %.0f%%", reserveShare*100), Flood: true, Reserve: true},
}

// result is what one row measured.
type result struct {
	Row row `json:"row"`
	// Interactive calls that arrived, were refused by TryReserve (the proxy's 429s), and
	// were not admitted by Wait within waitTimeout.
	Interactive         int64 `json:"interactive_calls"`
	InteractiveRefused  int64 `json:"interactive_429s"`
	InteractiveTimedOut int64 `json:"interactive_timed_out"`
	// Latency from arrival to admission of the interactive calls, in ms; a call that timed
	// out counts with the time it waited (a lower bound).
	LatencyP50Ms float64 `json:"latency_p50_ms"`
	LatencyP99Ms float64 `json:"latency_p99_ms"`
	LatencyMaxMs float64 `json:"latency_max_ms"`
	// BatchAdmitted counts batch admissions from the start of the flood to the end of the row.
	BatchAdmitted int64 `json:"batch_admitted"`
	// InputUsed is the input tokens both workloads were admitted over the row, as a share of
	// capacity + refill over the row.
	InputUsed float64 `json:"input_used_share"`
	// OutputUsed is the output tokens charged by settlements over the row, as a share of
	// capacity + refill over the row.
	OutputUsed float64 `json:"output_used_share"`
	// Errors counts limiter errors other than refusals and the row's own cancellation.
	Errors    int64   `json:"errors"`
	FirstErr  string  `json:"first_error,omitempty"`
	WallSecs  float64 `json:"wall_seconds"`
	ReserveOf string  `json:"batch_reserve,omitempty"`
}

// TestPriority runs the three rows one after another and writes the report. Targets are
// reported, never asserted; the test fails only when a row cannot run or the limiter errs.
func TestPriority(t *testing.T) {
	if os.Getenv(enableEnv) == "" {
		t.Skipf("the priority benchmark runs only with %s=1 (make bench-priority); it takes about 90 s", enableEnv)
	}
	outDir := *reportFlag
	if outDir == "" {
		root, err := kubeenv.ModuleRoot()
		if err != nil {
			t.Fatal(err)
		}
		outDir = filepath.Join(root, "bin", "priority")
	}
	started := time.Now()
	var results []*result
	for i, r := range rows {
		t.Run(fmt.Sprintf("row%d", i), func(t *testing.T) {
			// The same seed in every row: the same interactive arrivals and call shapes.
			res := runRow(t, r, 1)
			results = append(results, res)
			t.Logf("%s", strings.Join(tableRow(res), " | "))
			if res.Errors > 0 {
				t.Errorf("%s: %d limiter errors, first: %s", r.Name, res.Errors, res.FirstErr)
			}
		})
	}
	rep := &report{Started: started, WallSeconds: time.Since(started).Seconds(), Host: benchenv.Host(), Load: benchenv.LoadAverage(), Rows: results}
	if err := writeReport(outDir, rep); err != nil {
		t.Errorf("writing the report: %v", err)
	}
	if err := writeMarkdown(os.Stdout, rep); err != nil {
		t.Error(err)
	}
	fmt.Printf("\nReport: %s\n", filepath.Join(outDir, "report.md"))
}

// errCounter keeps the count and the first of the limiter's unexpected errors.
type errCounter struct {
	n     atomic.Int64
	mu    sync.Mutex
	first string
}

func (e *errCounter) add(err error) {
	if e.n.Add(1) == 1 {
		e.mu.Lock()
		e.first = err.Error()
		e.mu.Unlock()
	}
}

func runRow(t *testing.T, r row, seed uint64) *result {
	t.Helper()
	srv := redistest.Start(t)
	pool := ratelimit.PoolKey{Organization: "bench", Class: "sonnet"}
	cfg := ratelimit.PoolConfig{Limits: poolLimits}
	res := &result{Row: r}
	if r.Reserve {
		reserve := ratelimit.Limits{
			RequestsPerMinute:     int64(float64(poolLimits.RequestsPerMinute) * reserveShare),
			InputTokensPerMinute:  int64(float64(poolLimits.InputTokensPerMinute) * reserveShare),
			OutputTokensPerMinute: int64(float64(poolLimits.OutputTokensPerMinute) * reserveShare),
		}
		cfg.Reserves = map[string]ratelimit.Limits{batchWorkload: reserve}
		res.ReserveOf = fmt.Sprintf("%d requests, %d input, %d output", reserve.RequestsPerMinute, reserve.InputTokensPerMinute, reserve.OutputTokensPerMinute)
	}
	if err := ratelimit.WritePoolConfig(context.Background(), srv.Client(), pool, cfg); err != nil {
		t.Fatalf("WritePoolConfig: %v", err)
	}
	newLimiter := func(workload, pod string, conns int) *ratelimit.Limiter {
		rdb := srv.NewClient(func(o *redis.Options) { o.PoolSize = conns })
		l, err := ratelimit.New(rdb, ratelimit.Options{Pool: pool, Workload: workload, Pod: pod})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}

	var errs errCounter
	var inputAdmitted, outputCharged, batchAdmitted atomic.Int64
	start := time.Now()
	end := start.Add(lead + window)
	flood, stopFlood := context.WithCancel(context.Background())
	defer stopFlood()
	var batch sync.WaitGroup
	if r.Flood {
		for p := range batchPods {
			lim := newLimiter(batchWorkload, fmt.Sprintf("batch-%d", p), batchCallersPerPod+4)
			for c := range batchCallersPerPod {
				rng := rand.New(rand.NewPCG(seed, uint64(1000*p+c)))
				batch.Go(func() {
					for flood.Err() == nil {
						res, err := lim.Wait(flood, ratelimit.Call(batchCall.input, batchCall.maxTokens))
						if err != nil {
							if flood.Err() == nil {
								errs.add(err)
								time.Sleep(100 * time.Millisecond)
							}
							continue
						}
						if time.Now().Before(end) {
							batchAdmitted.Add(1)
							inputAdmitted.Add(batchCall.input)
						}
						settleAfter(flood, res, batchCall, rng, end, &outputCharged, &errs)
					}
				})
			}
		}
	}

	// Interactive calls: Poisson arrivals from start+lead to end.
	lim := newLimiter(interactiveWorkload, "interactive-0", 64)
	hist := hdrhistogram.New(1, int64(2*waitTimeout/time.Microsecond), 3)
	var histMu sync.Mutex
	var calls sync.WaitGroup
	var interactive, refused, timedOut atomic.Int64
	arrivals := rand.New(rand.NewPCG(seed, 7))
	next := start.Add(lead)
	for i := 0; ; i++ {
		next = next.Add(time.Duration(arrivals.ExpFloat64() / interactiveRate * float64(time.Second)))
		if !next.Before(end) {
			break
		}
		time.Sleep(time.Until(next))
		rng := rand.New(rand.NewPCG(seed, uint64(100_000+i)))
		interactive.Add(1)
		calls.Go(func() {
			arrived := time.Now()
			cost := ratelimit.Call(interactiveCall.input, interactiveCall.maxTokens)
			res, err := lim.TryReserve(context.Background(), cost)
			if errors.Is(err, ratelimit.ErrRateLimited) {
				refused.Add(1)
				ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
				res, err = lim.Wait(ctx, cost)
				cancel()
				if errors.Is(err, context.DeadlineExceeded) {
					// Counted in the latency at the time it gave up: a lower bound.
					timedOut.Add(1)
					histMu.Lock()
					_ = hist.RecordValue(max(1, time.Since(arrived).Microseconds()))
					histMu.Unlock()
					return
				}
			}
			if err != nil {
				errs.add(err)
				return
			}
			waited := time.Since(arrived)
			if time.Now().Before(end) {
				inputAdmitted.Add(interactiveCall.input)
			}
			histMu.Lock()
			_ = hist.RecordValue(max(1, waited.Microseconds()))
			histMu.Unlock()
			settleAfter(context.Background(), res, interactiveCall, rng, end, &outputCharged, &errs)
		})
	}
	// The flood goes on until the last interactive call is admitted or gives up, so a call
	// still waiting at the end meets the same competition; admissions after the end do not
	// count in the input share.
	time.Sleep(time.Until(end))
	elapsed := time.Since(start)
	calls.Wait()
	stopFlood()
	batch.Wait()

	allowed := func(limit int64) float64 { return float64(limit) * (1 + elapsed.Minutes()) }
	res.Interactive, res.InteractiveRefused, res.InteractiveTimedOut = interactive.Load(), refused.Load(), timedOut.Load()
	ms := func(q float64) float64 { return float64(hist.ValueAtQuantile(q)) / 1000 }
	res.LatencyP50Ms, res.LatencyP99Ms, res.LatencyMaxMs = ms(50), ms(99), float64(hist.Max())/1000
	res.BatchAdmitted = batchAdmitted.Load()
	res.InputUsed = float64(inputAdmitted.Load()) / allowed(poolLimits.InputTokensPerMinute)
	res.OutputUsed = float64(outputCharged.Load()) / allowed(poolLimits.OutputTokensPerMinute)
	res.Errors, res.FirstErr = errs.n.Load(), errs.first
	res.WallSecs = time.Since(start).Seconds()
	return res
}

// settleAfter holds an admitted call for its simulated duration (cut short when ctx ends)
// and settles it with the output it produced, adding that output to charged when the
// settlement comes before end.
func settleAfter(ctx context.Context, res *ratelimit.Reservation, shape callShape, rng *rand.Rand, end time.Time, charged *atomic.Int64, errs *errCounter) {
	timer := time.NewTimer(shape.duration(rng))
	select {
	case <-timer.C:
	case <-ctx.Done():
		timer.Stop()
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out := shape.output(rng)
	if time.Now().Before(end) {
		charged.Add(out)
	}
	if _, err := res.Settle(sctx, ratelimit.Actual{InputTokens: shape.input, OutputTokens: out}); err != nil {
		errs.add(err)
	}
}

// report is the benchmark's result.
type report struct {
	Started     time.Time `json:"started"`
	WallSeconds float64   `json:"wall_seconds"`
	Host        string    `json:"host"`
	Load        string    `json:"load_average"`
	Rows        []*result `json:"rows"`
}

var tableHeader = []string{
	"row", "interactive calls", "429s (TryReserve refused)", "wait p50", "wait p99", "wait max", "timed out",
	"batch admitted", "pool used: input · output (of capacity + refill)",
}

func tableRow(r *result) []string {
	pct := func(n, of int64) string {
		if of == 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f%%", 100*float64(n)/float64(of))
	}
	batch := "-"
	if r.Row.Flood {
		batch = fmt.Sprint(r.BatchAdmitted)
	}
	return []string{
		r.Row.Name, fmt.Sprint(r.Interactive),
		fmt.Sprintf("%d (%s)", r.InteractiveRefused, pct(r.InteractiveRefused, r.Interactive)),
		fmtMs(r.LatencyP50Ms), fmtMs(r.LatencyP99Ms), fmtMs(r.LatencyMaxMs), fmt.Sprint(r.InteractiveTimedOut),
		batch, fmt.Sprintf("%.1f%% · %.1f%%", 100*r.InputUsed, 100*r.OutputUsed),
	}
}

func fmtMs(ms float64) string {
	if ms < 10 {
		return fmt.Sprintf("%.2f ms", ms)
	}
	return fmt.Sprintf("%.0f ms", ms)
}

func writeMarkdown(w io.Writer, rep *report) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "Priority benchmark: %d rows in %s (%s; load average %s). Pool %d RPM, %d ITPM, %d OTPM. "+
		"Batch: %d callers (Limiter.Wait) of %d input / max_tokens %d, held %s-%s. "+
		"Interactive: %.0f calls/s (Poisson) of %d input / max_tokens %d from %s after the flood starts, for %s; "+
		"each tries TryReserve (a refusal is the proxy's 429) then waits with Wait (up to %s); wait = arrival to admission, "+
		"a call that timed out counted with the time it waited. Pool used: input admitted and output charged by settlements "+
		"over the row, of capacity + refill.\n\n",
		len(rep.Rows), (time.Duration(rep.WallSeconds) * time.Second).Round(time.Second), rep.Host, rep.Load,
		poolLimits.RequestsPerMinute, poolLimits.InputTokensPerMinute, poolLimits.OutputTokensPerMinute,
		batchPods*batchCallersPerPod, batchCall.input, batchCall.maxTokens, batchCall.durMin, batchCall.durMax,
		interactiveRate, interactiveCall.input, interactiveCall.maxTokens, lead, window, waitTimeout)
	rows := make([][]string, 0, len(rep.Rows))
	for _, r := range rep.Rows {
		rows = append(rows, tableRow(r))
	}
	b.WriteString(benchenv.MarkdownTable(tableHeader, rows))
	_, err := w.Write(b.Bytes())
	return err
}

func writeReport(dir string, rep *report) error {
	var md bytes.Buffer
	if err := writeMarkdown(&md, rep); err != nil {
		return err
	}
	return benchenv.WriteReport(dir, md.Bytes(), rep)
}
