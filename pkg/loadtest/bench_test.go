package loadtest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/anthropics/anthropic-sdk-go/v2"
	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// The generator benchmark runs the target server in a child process (this
// test binary, re-executed with benchServerEnv set), so getrusage on the
// benchmark process counts the generator's CPU only.
const benchServerEnv = "CLAUDECAP_LOADTEST_BENCH_SERVER"

func TestMain(m *testing.M) {
	if os.Getenv(benchServerEnv) != "" {
		serveCannedMessages()
		return
	}
	os.Exit(m.Run())
}

// cannedMessage is a small, valid Messages API response.
var cannedMessage = []byte(`{"id":"msg_bench","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929",` +
	`"content":[{"type":"text","text":"Hello!"}],"stop_reason":"end_turn","stop_sequence":null,` +
	`"usage":{"input_tokens":12,"output_tokens":6,"cache_creation_input_tokens":0,"cache_read_input_tokens":0}}`)

// serveCannedMessages answers every request with cannedMessage, prints its
// address, and exits when its parent closes stdin.
func serveCannedMessages() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		hd := w.Header()
		hd["Content-Type"] = []string{"application/json"}
		hd["Request-Id"] = []string{"req_bench"}
		_, _ = w.Write(cannedMessage)
	})
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	fmt.Printf("ADDR %s\n", ln.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin)
	_ = srv.Close()
}

// startBenchServer re-executes the test binary as the server.
func startBenchServer(b *testing.B) string {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), benchServerEnv+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ADDR ") {
		b.Fatalf("bench server did not start: %q %v", line, err)
	}
	return "http://" + strings.TrimSpace(strings.TrimPrefix(line, "ADDR "))
}

// genResult is one generator's run at one rate.
type genResult struct {
	name     string
	target   float64
	sent     int64
	ok       int64
	achieved float64 // (n-1) / (last send - first send)
	lagP99   time.Duration
	cpuPer1k time.Duration
}

// cpuTime is the user+system CPU this process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func measureCPU(b *testing.B, run func() int64) (int64, time.Duration) {
	runtime.GC()
	before := cpuTime(b)
	n := run()
	used := cpuTime(b) - before
	if n == 0 {
		return 0, 0
	}
	return n, used * 1000 / time.Duration(n)
}

// runClaudecap runs this package's open loop through the given sender.
func runClaudecap(b *testing.B, name string, sender Sender, rate float64, d time.Duration) genResult {
	var rep *Report
	_, per1k := measureCPU(b, func() int64 {
		var err error
		rep, err = Run(context.Background(), Config{Mode: ModeOpen, Profile: ConstantProfile(rate), Duration: d, DrainTimeout: 10 * time.Second}, sender)
		if err != nil {
			b.Fatal(err)
		}
		return rep.Requests.Sent
	})
	return genResult{
		name: name, target: rate, sent: rep.Requests.Sent, ok: rep.Requests.Succeeded,
		achieved: rep.Throughput.SentPerSecond,
		lagP99:   fromMs(rep.Latency.ScheduleLag.P99Ms),
		cpuPer1k: per1k,
	}
}

// runVegeta runs vegeta's library at the same rate against the same
// server. Vegeta's constant pacer sends hit n at began + (n+1)/rate; the lag
// is measured against that schedule the same way as ours.
func runVegeta(b *testing.B, base string, rate float64, d time.Duration) genResult {
	body := []byte(`{"model":"claude-sonnet-4-5","max_tokens":256,"messages":[{"role":"user","content":"Write one sentence about rate limits."}]}`)
	targeter := vegeta.NewStaticTargeter(vegeta.Target{
		Method: http.MethodPost, URL: base + "/v1/messages", Body: body,
		Header: http.Header{"Content-Type": {"application/json"}, "Anthropic-Version": {"2023-06-01"}, "X-Api-Key": {"bench"}},
	})
	pacer := vegeta.ConstantPacer{Freq: int(rate), Per: time.Second}
	interval := time.Second / time.Duration(rate)
	lag := newLatencyHistogram(summaryDigits)
	res := genResult{name: "vegeta lib", target: rate}
	_, res.cpuPer1k = measureCPU(b, func() int64 {
		attacker := vegeta.NewAttacker()
		began := time.Now()
		var first, last time.Time
		for r := range attacker.Attack(targeter, pacer, d, "bench") {
			res.sent++
			if r.Code == http.StatusOK {
				res.ok++
			}
			if first.IsZero() || r.Timestamp.Before(first) {
				first = r.Timestamp
			}
			if r.Timestamp.After(last) {
				last = r.Timestamp
			}
			intended := began.Add(time.Duration(r.Seq+1) * interval)
			recordDuration(lag, r.Timestamp.Sub(intended))
		}
		if span := last.Sub(first); res.sent > 1 && span > 0 {
			res.achieved = float64(res.sent-1) / span.Seconds()
		}
		return res.sent
	})
	res.lagP99 = histDuration(lag, 99)
	return res
}

func fromMs(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }

func histDuration(h *hdrhistogram.Histogram, q float64) time.Duration {
	return time.Duration(h.ValueAtQuantile(q)) * time.Microsecond
}

// BenchmarkGenerator measures the open-loop generator's accuracy and
// ceiling: at 500, 2,000 and 5,000 req/s against a canned loopback server in
// a child process, it compares achieved rate, schedule-lag p99 and CPU per
// 1,000 requests of
//   - claudecap with the official SDK (the tool's real request path),
//   - claudecap's scheduler with a bare net/http sender (no SDK), which
//     separates scheduling from SDK cost,
//   - vegeta's library, the baseline, in the same run.
//
// The machine is shared, so each rate runs the three generators in turn
// several times and the table shows medians (and the worst lag p99): every
// generator sees the same kinds of interference.
//
// Run: go test -run '^$' -bench BenchmarkGenerator ./pkg/loadtest/
// CLAUDECAP_BENCH_SECONDS (default 1.5) and CLAUDECAP_BENCH_REPEATS
// (default 3) change the length and number of runs.
func BenchmarkGenerator(b *testing.B) {
	// The CLI runs with GOGC=400 (internal/cli/loadtest.go); so does this
	// benchmark, for every generator alike.
	if os.Getenv("GOGC") == "" {
		defer debug.SetGCPercent(debug.SetGCPercent(400))
	}
	base := startBenchServer(b)
	d := envDuration("CLAUDECAP_BENCH_SECONDS", 1500*time.Millisecond)
	repeats := envInt("CLAUDECAP_BENCH_REPEATS", 3)
	req, err := RequestSpec{Model: "claude-sonnet-4-5", MaxTokens: 256, Prompt: "Write one sentence about rate limits."}.Build()
	if err != nil {
		b.Fatal(err)
	}
	sdk, err := NewSDKSender(SDKSenderConfig{BaseURL: base, APIKey: "bench", Requests: []anthropic.MessageNewParams{req}})
	if err != nil {
		b.Fatal(err)
	}
	bare := plainHTTPSender(base)
	var table []genSummary
	for _, rate := range []float64{500, 2000, 5000} {
		b.Run(fmt.Sprintf("rate=%.0f", rate), func(b *testing.B) {
			for range b.N {
				var ours, plain, veg []genResult
				for range repeats {
					ours = append(ours, runClaudecap(b, "claudecap (SDK)", sdk, rate, d))
					plain = append(plain, runClaudecap(b, "claudecap scheduler + net/http", bare, rate, d))
					veg = append(veg, runVegeta(b, base, rate, d))
				}
				o, p, v := summarizeRuns(ours), summarizeRuns(plain), summarizeRuns(veg)
				table = append(table, o, p, v)
				b.ReportMetric(o.achieved, "sdk_req/s")
				b.ReportMetric(v.achieved, "vegeta_req/s")
				b.ReportMetric(ms(o.lagP99), "sdk_lag_p99_ms")
				b.ReportMetric(ms(v.lagP99), "vegeta_lag_p99_ms")
				b.ReportMetric(ms(o.cpuPer1k), "sdk_cpu_ms/1k")
				b.ReportMetric(ms(v.cpuPer1k), "vegeta_cpu_ms/1k")
				if v.cpuPer1k > 0 {
					b.ReportMetric(float64(o.cpuPer1k)/float64(v.cpuPer1k), "sdk_cpu_vs_vegeta")
				}
			}
		})
	}
	fmt.Printf("\n%d runs of %s per generator and rate, medians (GOMAXPROCS=%d):\n", repeats, d, runtime.GOMAXPROCS(0))
	printGeneratorTable(os.Stdout, table)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func envDuration(key string, def time.Duration) time.Duration {
	if v := os.Getenv(key); v != "" {
		if secs, err := time.ParseDuration(v + "s"); err == nil && secs > 0 {
			return secs
		}
	}
	return def
}

func envInt(key string, def int) int {
	if v := os.Getenv(key); v != "" {
		var n int
		if _, err := fmt.Sscan(v, &n); err == nil && n > 0 {
			return n
		}
	}
	return def
}

// genSummary is the median of several runs of one generator at one rate.
type genSummary struct {
	name      string
	target    float64
	runs      int
	achieved  float64
	lagP99    time.Duration
	worstP99  time.Duration
	cpuPer1k  time.Duration
	allOK     bool
	totalSent int64
}

func summarizeRuns(runs []genResult) genSummary {
	s := genSummary{name: runs[0].name, target: runs[0].target, runs: len(runs), allOK: true}
	achieved := make([]float64, 0, len(runs))
	lags := make([]time.Duration, 0, len(runs))
	cpus := make([]time.Duration, 0, len(runs))
	for _, r := range runs {
		achieved = append(achieved, r.achieved)
		lags = append(lags, r.lagP99)
		cpus = append(cpus, r.cpuPer1k)
		s.worstP99 = max(s.worstP99, r.lagP99)
		s.totalSent += r.sent
		s.allOK = s.allOK && r.ok == r.sent
	}
	s.achieved = median(achieved)
	s.lagP99 = median(lags)
	s.cpuPer1k = median(cpus)
	return s
}

func median[T int64 | float64 | time.Duration](v []T) T {
	sorted := append([]T(nil), v...)
	slices.Sort(sorted)
	return sorted[len(sorted)/2]
}

func printGeneratorTable(w io.Writer, rows []genSummary) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	_, _ = fmt.Fprintf(tw, "generator\ttarget/s\tachieved/s\terror\tlag p99\tworst lag p99\tCPU/1k req\tall 200\t\n")
	for _, r := range rows {
		_, _ = fmt.Fprintf(tw, "%s\t%.0f\t%.1f\t%+.2f%%\t%s\t%s\t%s\t%t\t\n", r.name, r.target, r.achieved,
			100*(r.achieved-r.target)/r.target, r.lagP99.Round(10*time.Microsecond), r.worstP99.Round(10*time.Microsecond),
			r.cpuPer1k.Round(100*time.Microsecond), r.allOK)
	}
	_ = tw.Flush()
}
