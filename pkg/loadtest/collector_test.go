package loadtest

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/claudecap/claudecap/pkg/dimension"
)

func near(got, want, tol float64) bool { return math.Abs(got-want) <= tol }

// collectorFixture feeds hand-made samples: 10 successes, one every
// 100 ms, each 1 s end to end with 50 ms of schedule lag, streaming 11
// output tokens over 500 ms after a 200 ms first token; then a 429 after a
// retry (two attempts), a 529, a transport error and a cancel. The run
// lasts 2 s.
func collectorFixture() *Report {
	t0 := time.Date(2026, 4, 1, 12, 0, 0, 0, time.UTC)
	c := NewCollector(t0)
	limits := RateLimitHeaders{
		DimensionOf(dimension.Requests):     {Limit: 50, Remaining: 40},
		DimensionOf(dimension.OutputTokens): {Limit: 8000, Remaining: 7000},
	}
	for i := range 10 {
		intended := t0.Add(time.Duration(i) * 100 * time.Millisecond)
		start := intended.Add(50 * time.Millisecond)
		c.Started(intended, start)
		att := Attempt{Status: 200, RateLimit: limits, RetryAfter: -1}
		if i == 9 {
			att.RateLimit = RateLimitHeaders{DimensionOf(dimension.Requests): {Limit: 50, Remaining: 3}}
		}
		c.Record(Sample{Intended: intended, Start: start, End: intended.Add(time.Second), Outcome: Outcome{
			Class:      ClassOK,
			Attempts:   []Attempt{att},
			Usage:      Usage{InputTokens: 100, OutputTokens: 11, CacheCreationInputTokens: 20, CacheReadInputTokens: 80},
			FirstToken: intended.Add(200 * time.Millisecond),
			LastToken:  intended.Add(700 * time.Millisecond),
		}})
	}
	failures := []struct {
		class    Class
		attempts []Attempt
	}{
		{ClassRateLimited, []Attempt{{Status: 429, RetryAfter: 2 * time.Second}, {Status: 429, RetryAfter: 5 * time.Second}}},
		{ClassOverloaded, []Attempt{{Status: 529, RetryAfter: -1}}},
		{ClassTransport, []Attempt{{Status: 0, RetryAfter: -1}}},
		{ClassCanceled, []Attempt{{Status: 0, RetryAfter: -1}}},
	}
	for i, f := range failures {
		at := t0.Add(time.Duration(1100+i*100) * time.Millisecond)
		c.Started(at, at)
		c.Record(Sample{Intended: at, Start: at, End: at.Add(10 * time.Millisecond), Outcome: Outcome{
			Class: f.class, Attempts: f.attempts, Err: errors.New("boom " + string(f.class)),
		}})
	}
	return c.Report(t0.Add(2*time.Second), RunConfig{Mode: ModeOpen}, StopDuration)
}

func TestCollectorCounts(t *testing.T) {
	r := collectorFixture()
	if r.Requests != (RequestCounts{Sent: 14, Completed: 14, Succeeded: 10, Failed: 3, Canceled: 1, Attempts: 15}) {
		t.Errorf("requests = %+v", r.Requests)
	}
	wantCodes := map[string]int64{"200": 10, "429": 2, "529": 1, "transport": 2}
	if !reflect.DeepEqual(r.StatusCodes, wantCodes) {
		t.Errorf("status codes = %v, want %v", r.StatusCodes, wantCodes)
	}
	if r.RetryAfter != (RetryAfterStats{Seen: 2, MinSeconds: 2, MaxSeconds: 5}) {
		t.Errorf("retry-after = %+v", r.RetryAfter)
	}
	if len(r.ErrorSamples) != 3 {
		t.Errorf("error samples = %+v, want the three failures (not the cancel)", r.ErrorSamples)
	}
	// Everything ends between 1.0 s and 1.9 s.
	if len(r.Timeline) != 2 || r.Timeline[0].Completed != 0 || r.Timeline[1].Completed != 14 ||
		r.Timeline[1].Attempts != 15 || r.Timeline[1].Classes[ClassRateLimited] != 1 || r.Timeline[1].OutputTokens != 110 {
		t.Errorf("timeline = %+v", r.Timeline)
	}
}

func TestCollectorThroughputAndTokens(t *testing.T) {
	r := collectorFixture()
	// 2 s run: 15 attempts = 450/min; ITPM counts input + cache creation.
	th := r.Throughput
	if !near(th.RequestsPerMinute, 450, 1e-9) || !near(th.InputTokensPerMinute, 10*120*30, 1e-9) ||
		!near(th.OutputTokensPerMinute, 110*30, 1e-9) || !near(th.SuccessfulRequestsPerMinute, 300, 1e-9) {
		t.Errorf("throughput = %+v", th)
	}
	// 14 starts from 50 ms to 1400 ms: 13 intervals over 1.35 s.
	if !near(th.SentPerSecond, 13/1.35, 1e-9) {
		t.Errorf("sent/s = %v, want %v", th.SentPerSecond, 13/1.35)
	}
	tk := r.Tokens
	if tk.AvgInputTokens != 200 || tk.AvgOutputTokens != 11 || !near(tk.CacheHitRatio, 0.4, 1e-12) {
		t.Errorf("tokens = %+v", tk)
	}
	// Busy time: 10 x 950 ms + 4 x 10 ms over 2 s.
	wantConc := (10*0.95 + 4*0.01) / 2
	if pr := r.PerReplicaEquivalent; !near(pr.MeanConcurrency, wantConc, 1e-9) || !near(pr.RequestsPerMinute, 300/wantConc, 1e-6) {
		t.Errorf("per replica = %+v, want concurrency %v", pr, wantConc)
	}
}

func TestCollectorLatencies(t *testing.T) {
	r := collectorFixture()
	// End to end is measured from the intended time (1000 ms), service
	// time from the actual start (950 ms).
	if l := r.Latency.EndToEnd; l.Count != 10 || !near(l.P50Ms, 1000, 1) || !near(l.MaxMs, 1000, 1) {
		t.Errorf("end-to-end = %+v", l)
	}
	if l := r.Latency.ServiceTime; !near(l.P99Ms, 950, 1) {
		t.Errorf("service time = %+v", l)
	}
	if l := r.Latency.TimeToFirstToken; l.Count != 10 || !near(l.P50Ms, 200, 0.5) {
		t.Errorf("ttft = %+v", l)
	}
	if l := r.Latency.InterToken; !near(l.P50Ms, 50, 0.1) {
		t.Errorf("inter-token = %+v, want 500 ms / 10 gaps", l)
	}
	if l := r.Latency.ScheduleLag; l.Count != 14 || !near(l.MaxMs, 50, 0.1) {
		t.Errorf("schedule lag = %+v", l)
	}
}

func TestCollectorRateLimits(t *testing.T) {
	r := collectorFixture()
	req := r.RateLimits[DimensionOf(dimension.Requests)]
	if req.Limit != 50 || req.MinRemaining != 3 || req.Responses != 10 || !near(req.Utilization, 450.0/50, 1e-9) {
		t.Errorf("requests limit = %+v", req)
	}
	if out := r.RateLimits[DimensionOf(dimension.OutputTokens)]; out.MinRemaining != 7000 || out.Responses != 9 {
		t.Errorf("output limit = %+v", out)
	}
	if _, ok := r.RateLimits[DimensionOf(dimension.InputTokens)]; ok {
		t.Error("a dimension never reported must be absent")
	}
}

func TestTimelineCompacts(t *testing.T) {
	tl := newTimeline()
	for s := range 3 * maxWindows {
		tl.record(time.Duration(s)*time.Second, &Sample{Outcome: Outcome{Class: ClassOK}}, time.Millisecond)
	}
	if tl.width != 4*time.Second {
		t.Fatalf("width = %s, want 4s after two compactions", tl.width)
	}
	if len(tl.windows) > maxWindows {
		t.Fatalf("%d windows, want at most %d", len(tl.windows), maxWindows)
	}
	total := int64(0)
	for _, w := range tl.export() {
		total += w.Completed
		if w.EndToEnd.Count != w.Completed {
			t.Fatalf("window latency count %d != completed %d", w.EndToEnd.Count, w.Completed)
		}
	}
	if total != 3*maxWindows {
		t.Fatalf("compaction lost samples: %d of %d", total, 3*maxWindows)
	}
}

func TestReportJSONRoundTrip(t *testing.T) {
	r := sampleReport(t)
	var buf bytes.Buffer
	if err := r.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	back, err := ReadReport(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(r, back) {
		t.Fatalf("round trip changed the report:\n%+v\n%+v", r, back)
	}
	var again bytes.Buffer
	if err := back.WriteJSON(&again); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), again.Bytes()) {
		t.Fatal("re-encoding differs")
	}
	for _, field := range []string{`"schemaVersion": "loadtest.claudecap.io/v1"`, `"avgInputTokens"`, `"avgOutputTokens"`,
		`"requestsPerMinute"`, `"perReplicaEquivalent"`, `"p999Ms"`, `"minRemaining"`} {
		if !strings.Contains(buf.String(), field) {
			t.Errorf("JSON lacks %s", field)
		}
	}
	if _, err := ReadReport(strings.NewReader(`{"schemaVersion":"loadtest.claudecap.io/v0"}`)); err == nil {
		t.Error("an unknown schema version must be refused")
	}
	if _, err := ReadReport(strings.NewReader(`{`)); err == nil {
		t.Error("broken JSON must be refused")
	}
}

// sampleReport builds a small but complete report through the collector.
func sampleReport(t *testing.T) *Report {
	t.Helper()
	t0 := time.Date(2026, 4, 1, 12, 0, 0, 0, time.UTC)
	c := NewCollector(t0)
	for i := range 30 {
		at := t0.Add(time.Duration(i) * 100 * time.Millisecond)
		class := ClassOK
		status := 200
		if i%7 == 3 {
			class, status = ClassRateLimited, 429
		}
		c.Started(at, at.Add(time.Millisecond))
		c.Record(Sample{Intended: at, Start: at.Add(time.Millisecond), End: at.Add(time.Duration(100+i*10) * time.Millisecond), Outcome: Outcome{
			Class:      class,
			Attempts:   []Attempt{{Status: status, RetryAfter: -1, RateLimit: RateLimitHeaders{DimensionOf(dimension.Requests): {Limit: 50, Remaining: int64(49 - i)}}}},
			Usage:      Usage{InputTokens: 10, OutputTokens: 5},
			FirstToken: at.Add(30 * time.Millisecond),
			LastToken:  at.Add(90 * time.Millisecond),
		}})
	}
	return c.Report(t0.Add(3500*time.Millisecond), RunConfig{
		Mode: ModeOpen, Arrival: ArrivalConstant, Profile: profileSegments(ConstantProfile(10)),
		DurationSeconds: 3, Target: Target{BaseURL: "http://127.0.0.1:1", Model: "claude-sonnet-4-5", Stream: true},
	}, StopDuration)
}
