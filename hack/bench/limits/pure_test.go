package limits

import (
	"bytes"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	limitdim "github.com/claudecap/claudecap/pkg/dimension"
	"github.com/claudecap/claudecap/pkg/mockapi"
	"github.com/claudecap/claudecap/pkg/ratelimit"
)

func scenarioNamed(t *testing.T, name string) *scenario {
	t.Helper()
	for _, sc := range scenarios() {
		if sc.name == name {
			return sc
		}
	}
	t.Fatalf("no scenario %s", name)
	return nil
}

func TestMeanCapped(t *testing.T) {
	u := uniform(100, 200)
	for _, tc := range []struct {
		max  int64
		want float64
	}{{300, 150}, {200, 150}, {100, 100}, {50, 50}, {150, 137.5}} {
		if got := meanCapped(u, tc.max); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("uniform 100-200 capped at %d: %g, want %g", tc.max, got, tc.want)
		}
	}
	if got := meanCapped(mockapi.Fixed(40), 32); got != 32 {
		t.Errorf("fixed 40 capped at 32: %g", got)
	}
}

// Every scenario binds where it says it does, and the reproduction's numbers come out.
func TestScenariosBindAsDesigned(t *testing.T) {
	want := map[string]dimension{
		"steady-requests": dimRequests, "steady-output": dimOutput, "long-streams": dimOutput,
		"mixed-cached": dimInput, "images-docs": dimInput, "redis-restart": dimOutput,
	}
	for _, sc := range scenarios() {
		_, got := ratedLoad(meanCost(sc.mix, sc.output), scaleLimits(sc.limits, 0.9))
		if got != want[sc.name] {
			t.Errorf("%s binds on %s, want %s", sc.name, got, want[sc.name])
		}
	}
	long := scenarioNamed(t, "long-streams")
	pool := scaleLimits(long.limits, 0.9)
	if pool != (ratelimit.Limits{RequestsPerMinute: 450, InputTokensPerMinute: 360_000, OutputTokensPerMinute: 18_000}) {
		t.Errorf("reproduction pool %+v", pool)
	}
	// 3x 18,000 output tokens per minute at 90 tokens a call.
	if offered, _ := ratedLoad(meanCost(long.mix, long.output), pool); math.Abs(offered-600) > 1e-9 {
		t.Errorf("long-streams burst: %g calls/min, want 600", offered)
	}
}

// The costs the scenarios are sized with are what the mock really counts: count_tokens
// gives the whole prompt, which for a cached call also holds the cached system prompt.
func TestVariantInputMatchesMock(t *testing.T) {
	m, err := mockapi.New(mockapi.Config{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(m)
	defer srv.Close()
	for _, sc := range scenarios() {
		for _, v := range sc.variants() {
			body, err := json.Marshal(v.params)
			if err != nil {
				t.Fatal(err)
			}
			req, err := http.NewRequest(http.MethodPost, srv.URL+"/v1/messages/count_tokens", bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("X-Api-Key", benchAPIKey)
			req.Header.Set("Anthropic-Version", "2023-06-01")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var got struct {
				InputTokens float64 `json:"input_tokens"`
			}
			err = json.NewDecoder(resp.Body).Decode(&got)
			_ = resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("%s/%s: status %d, %v", sc.name, v.name, resp.StatusCode, err)
			}
			want := v.input
			if len(v.params.System) > 0 {
				want += tokensOf(cachedSystemBytes)
			}
			if got.InputTokens != want {
				t.Errorf("%s/%s: the mock counts %g input tokens, the scenario %g", sc.name, v.name, got.InputTokens, want)
			}
			cost, err := fixedWindowCost(v.params)
			if err != nil {
				t.Fatal(err)
			}
			if float64(cost[limitdim.InputTokens]) < want {
				t.Errorf("%s/%s: the proxy estimates %d input tokens, below the mock's %g", sc.name, v.name, cost[limitdim.InputTokens], want)
			}
		}
	}
}

func TestRowsAndFilter(t *testing.T) {
	rows := allRows(scenarios())
	if len(rows) != 6*6 {
		t.Fatalf("%d rows, want 36", len(rows))
	}
	seen := map[string]bool{}
	for _, r := range rows {
		if seen[r.name()] {
			t.Errorf("duplicate row %s", r.name())
		}
		seen[r.name()] = true
	}
	for _, name := range []string{"long-streams/claudecap/actual/90", "long-streams/claudecap/reserve/100",
		"long-streams/none/actual", "long-streams/fixed-window/actual/90"} {
		if !seen[name] {
			t.Errorf("no row %s", name)
		}
	}
	got, err := selectRows(rows, "long-streams/claudecap/.*/90, long-streams/none,steady-requests/claudecap/actual/100")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range got {
		names = append(names, r.name())
	}
	want := "steady-requests/claudecap/actual/100 long-streams/claudecap/actual/90 long-streams/claudecap/reserve/90 long-streams/none/actual"
	if strings.Join(names, " ") != want {
		t.Errorf("selected %v, want %s", names, want)
	}
	if _, err := selectRows(rows, "long-stream/,nothing-like-this"); err == nil || !strings.Contains(err.Error(), "nothing-like-this") {
		t.Errorf("an unmatched pattern: %v", err)
	}
	if _, err := selectRows(rows, "("); err == nil {
		t.Error("a bad pattern was accepted")
	}
	if all, err := selectRows(rows, " "); err != nil || len(all) != len(rows) {
		t.Errorf("an empty filter keeps %d rows, %v", len(all), err)
	}
}

func TestRowTimes(t *testing.T) {
	steady := row{sc: scenarioNamed(t, "steady-output"), limiter: limiterClaudecap, mode: mockapi.OTPMCountActual, headroom: 0.9}
	if w := steady.window(); w.start != 15*time.Second || w.length != 30*time.Second {
		t.Errorf("steady window %+v", w)
	}
	fixed := steady
	fixed.limiter = limiterFixedWindow
	if got := fixed.window().length; got != time.Minute {
		t.Errorf("fixed-window rows measure a whole minute, got %s", got)
	}
	p := steady.profile(2700)
	if got := p.RateAt(5 * time.Second); math.Abs(got-2700.0/60*warmupOverload/overload) > 1e-9 {
		t.Errorf("warm-up rate %g/s", got)
	}
	if got := p.RateAt(time.Minute); math.Abs(got-45) > 1e-9 {
		t.Errorf("steady rate %g/s, want 45", got)
	}
	long := row{sc: scenarioNamed(t, "long-streams"), limiter: limiterNone, mode: mockapi.OTPMCountActual, headroom: 1}
	lp := long.profile(600)
	if lp.RateAt(44*time.Second) != 0 || lp.RateAt(46*time.Second) != 10 {
		t.Errorf("burst profile: %g at 44 s, %g at 46 s", lp.RateAt(44*time.Second), lp.RateAt(46*time.Second))
	}
	restart := row{sc: scenarioNamed(t, "redis-restart"), limiter: limiterClaudecap, mode: mockapi.OTPMCountActual, headroom: 0.9}
	var kinds []eventKind
	for _, ev := range timeline(restart) {
		kinds = append(kinds, ev.kind)
	}
	if want := []eventKind{evWindowStart, evRedisDown, evRedisUp, evWindowEnd}; !equal(kinds, want) {
		t.Errorf("restart timeline %v, want %v", kinds, want)
	}
	if order := longestFirst([]row{steady, long, fixed}); order[0] != 1 || order[1] != 2 {
		t.Errorf("longest first: %v", order)
	}
}

func equal[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestSteadyStateStatistics(t *testing.T) {
	t0 := time.Unix(1000, 0)
	from := usage{at: t0, charged: perDim{100, 10_000, 2_000}}
	to := usage{at: t0.Add(30 * time.Second), charged: perDim{550, 110_000, 42_000}}
	rate := perMinute(from, to)
	if rate != (perDim{900, 200_000, 80_000}) {
		t.Fatalf("per minute %v", rate)
	}
	share := shareOf(rate, perDim{1000, 400_000, 0})
	if share != (perDim{0.9, 0.5, 0}) {
		t.Errorf("shares %v (an unlimited dimension has none)", share)
	}
	if mostUsed(share) != dimRequests || mostUsed(perDim{0.2, 0.3, 0.99}) != dimOutput {
		t.Error("most used dimension")
	}
	if perMinute(to, to) != (perDim{}) {
		t.Error("an empty window has no rate")
	}
}

func TestFixedWindowPureParts(t *testing.T) {
	if got := windowKey("fw", dimOutput, 29_000_000); got != "fw:otpm:29000000" {
		t.Errorf("key %s", got)
	}
	l := ratelimit.Limits{RequestsPerMinute: 10, InputTokensPerMinute: 100}
	if !withinLimits([dimCount]int64{10, 100, 1 << 40}, l) {
		t.Error("counts at the limits (and an unlimited dimension) are within")
	}
	if withinLimits([dimCount]int64{11, 1, 1}, l) || withinLimits([dimCount]int64{1, 101, 1}, l) {
		t.Error("a count over its limit is not within")
	}
}

func TestPicker(t *testing.T) {
	mix := []variant{{name: "a", weight: 3}, {name: "b", weight: 1}}
	p, q := newPicker(mix, 7), newPicker(mix, 7)
	var counts [2]int
	for range 4000 {
		i := p.next()
		if i != q.next() {
			t.Fatal("same seed, different draws")
		}
		counts[i]++
	}
	if math.Abs(float64(counts[0])/4000-0.75) > 0.03 {
		t.Errorf("weights 3:1 drew %v", counts)
	}
}

func sampleResult(name, limiter string, headroom float64, upstream int64, outputShare float64) *rowResult {
	e := dims{Requests: 0.5, InputTokens: 0.2, OutputTokens: outputShare}
	return &rowResult{
		Name: name, Limiter: limiter, Headroom: headroom, ExpectedBinding: dimOutput.String(), OfferedPerMinute: 600,
		Client:   clientResult{Calls: 1000, RateLimited: 640, Unavailable: 3},
		Upstream: upstreamResult{RateLimited: upstream},
		Steady: steadyResult{ShareOfAPI: dims{0.45, 0.18, outputShare * 0.9}, ShareOfEnforced: &e,
			Binding: dimOutput.String()},
	}
}

func TestJudgeAndTable(t *testing.T) {
	ok := sampleResult("a/claudecap/actual/90", "claudecap", 0.9, 0, 0.991)
	low := sampleResult("a/claudecap/reserve/90", "claudecap", 0.9, 0, 0.93)
	over := sampleResult("a/claudecap/actual/100", "claudecap", 1, 327, 0.5)
	none := sampleResult("a/none/actual", "none", 1, 1234, 1.1)
	none.Steady.ShareOfEnforced = nil
	none.Steady.Binding = dimRequests.String()
	after := int64(12)
	over.Upstream.AfterRestart = &after
	for _, r := range []*rowResult{ok, low, over, none} {
		judge(r)
	}
	if !ok.Targets.ShareApplies || !ok.Targets.ShareMet || !ok.Targets.StretchMet || len(ok.Targets.Misses) != 0 {
		t.Errorf("a row meeting both targets: %+v", ok.Targets)
	}
	if low.Targets.ShareMet || len(low.Targets.Misses) != 1 {
		t.Errorf("93%% of the pool misses: %+v", low.Targets)
	}
	if over.Targets.ShareApplies || over.Targets.ZeroUpstream429 {
		t.Errorf("100%% rows are judged on 429s only: %+v", over.Targets)
	}
	outage := sampleResult("redis-restart/claudecap/actual/90", "claudecap", 0.9, 0, 0.88)
	outage.Outage = true
	judge(outage)
	if outage.Targets.ShareApplies || len(outage.Targets.Misses) != 0 {
		t.Errorf("a row whose window spans a Redis outage is judged on 429s only: %+v", outage.Targets)
	}
	ok.Trace = []tracePoint{newTracePoint(usage{at: time.Unix(10, 1234567), charged: perDim{1, 2.4, 3.6}}, time.Unix(0, 0))}
	ok.Trace[0].Pool = newPoolPoint([dimCount]float64{1, 2, 3}, 90.2, 1500*time.Microsecond)
	if p := ok.Trace[0]; p.T != 10.001 || p.Charged != [dimCount]int64{1, 2, 4} || p.Pool.AgeSeconds != 0.002 {
		t.Errorf("trace point %+v, pool %+v", p, *p.Pool)
	}
	var b bytes.Buffer
	rep := &report{WallSeconds: 61, Host: "test", Load: "0.1 0.1 0.1", Rows: []*rowResult{ok, low, over, none, failedRow(row{
		sc: scenarioNamed(t, "steady-requests"), limiter: limiterNone, mode: baselineMode, headroom: 1}, "redis did not start")}}
	if err := writeMarkdown(&b, rep); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{
		"| a/claudecap/actual/90 | 600/min | 0 | 640 (64.0%) | 3 | 45.0% · 50.0% | 18.0% · 20.0% | 89.2% · 99.1% | output tokens | met |",
		"| ✗ output tokens at 93.0% of the pool (< 95.0%) |",
		"| 327 (12 after restart) |",
		"| ✗ 327 upstream 429s |",
		"| 99.0% · - | requests (sized for output tokens) | ✗ 1,234 upstream 429s |",
		"| steady-requests/none/actual | - | - |",
		"✗ row failed: redis did not start |",
		"5 rows in 1m1s",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("the table lacks %q:\n%s", want, md)
		}
	}
	if n := strings.Count(md, "\n|"); n != 2+5 {
		t.Errorf("%d table lines, want header, separator and 5 rows:\n%s", n, md)
	}

	dir := t.TempDir()
	if err := writeReport(dir, rep); err != nil {
		t.Fatal(err)
	}
	var traces map[string][]tracePoint
	raw, err := os.ReadFile(dir + "/trace.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &traces); err != nil || len(traces[ok.Name]) != 1 || traces[ok.Name][0].Pool.Held != 90 {
		t.Errorf("trace.json does not read back: %v %+v", err, traces)
	}
	var back report
	raw, err = os.ReadFile(dir + "/report.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &back); err != nil || len(back.Rows) != 5 || back.Rows[2].Upstream.AfterRestart == nil {
		t.Errorf("report.json does not read back: %v", err)
	}
}

func TestFormatting(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -45000: "-45,000"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %s, want %s", n, got, want)
		}
	}
	if got := percent(0.98765); got != "98.8%" {
		t.Errorf("percent %s", got)
	}
}
