package closedloop

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
)

// The lab's scores are only as good as the arithmetic under them; these tests pin it down
// on hand-made series, without any process. They run under `go test ./...`.

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestWorldIsTheOneTheDocsDescribe(t *testing.T) {
	perMinute, binding := budgetBoundThroughput(1, [3]float64{})
	if binding != 2 || !near(perMinute, 288) {
		t.Errorf("budget-bound throughput = %v jobs/min bound by %s, want 288 by output tokens", perMinute, dimensionNames[binding])
	}
	if mu := trueMu(); mu < 29.9 || mu > 30.2 {
		t.Errorf("true per-replica throughput = %v, want about 30/min", mu)
	}
	// 40% of the output-token limit taken outside the pool leaves 72,000 - 32,000.
	if perMinute, _ := budgetBoundThroughput(1, [3]float64{0, 0, 32000}); !near(perMinute, 160) {
		t.Errorf("with external usage: %v jobs/min, want 160", perMinute)
	}
	for _, sc := range scenarios() {
		if sc.duration > 180e9 {
			t.Errorf("scenario %s lasts %s, more than the 3 minutes each may take", sc.name, sc.duration)
		}
	}
}

// series builds samples from per-second columns of one workload.
func series(spec, backlog, completed []int64) []sample {
	out := make([]sample, len(spec))
	for i := range spec {
		out[i] = sample{T: float64(i), W: []workloadSample{{Spec: int32(spec[i]), Backlog: backlog[i], Completed: completed[i]}},
			Mock: mockSample{OK: true}}
	}
	return out
}

func TestReplicaMinutesIntegratesTheWatchedChanges(t *testing.T) {
	samples := series([]int64{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, make([]int64, 11), make([]int64, 11))
	changes := []change{{T: 2, From: 1, To: 5}, {T: 6, From: 5, To: 3}}
	// [0,2): 1, [2,6): 5, [6,10]: 3 -> 2 + 20 + 12 = 34 replica-seconds.
	if got := replicaMinutes(samples, changes, 0, 0, 10); !near(got, 34.0/60) {
		t.Errorf("replica-minutes = %v, want %v", got, 34.0/60)
	}
	// From inside a step.
	if got := replicaMinutes(samples, changes, 0, 3, 7); !near(got, (3*5+1*3)/60.0) {
		t.Errorf("replica-minutes over [3,7] = %v", got)
	}
	if got := replicasAt(samples, changes, 0, 1); got != 1 {
		t.Errorf("replicas before the first change = %d, want its From", got)
	}
}

func TestReversalsKnowTheBacklogTrend(t *testing.T) {
	// The backlog only shrinks (a one-off push being drained) while replicas go 1 -> 9 -> 4.
	backlog := []int64{200, 190, 180, 170, 160, 150, 140, 130, 120, 110, 100, 90}
	samples := series(make([]int64, 12), backlog, make([]int64, 12))
	changes := []change{{T: 1, From: 1, To: 9}, {T: 8, From: 9, To: 4}}
	total, against, notes := reversals(samples, changes, 1)
	if total != 1 || against != 1 || !strings.Contains(notes[0], "shrank") {
		t.Errorf("reversals = %d, against trend %d, notes %q; want 1, 1, shrank", total, against, notes)
	}
	// Scaling down once the queue is empty is no reversal against a trend.
	backlog = []int64{200, 150, 100, 50, 0, 0, 0, 0, 0, 0, 0, 0}
	samples = series(make([]int64, 12), backlog, make([]int64, 12))
	if total, against, _ := reversals(samples, changes, 1); total != 1 || against != 0 {
		t.Errorf("after the drain: reversals = %d, against trend %d; want 1, 0", total, against)
	}
	// A noisy, flat backlog has no trend.
	backlog = []int64{20, 25, 18, 24, 19, 26, 17, 23, 20, 25, 18, 22}
	samples = series(make([]int64, 12), backlog, make([]int64, 12))
	if _, against, _ := reversals(samples, changes, 1); against != 0 {
		t.Errorf("flat backlog: against trend %d, want 0", against)
	}
	// Steps in one direction are no reversal at all.
	if total, _, _ := reversals(samples, []change{{T: 1, From: 1, To: 5}, {T: 3, From: 5, To: 9}}, 1); total != 0 {
		t.Errorf("two scale-ups counted as %d reversals", total)
	}
}

func TestUtilizationCountsBackloggedSecondsOnly(t *testing.T) {
	wd := world{Budget: [3]float64{900, 450000, 72000}, Binding: 2}
	samples := series(make([]int64, 5), []int64{10, 10, 0, 10, 10}, []int64{0, 4, 8, 12, 16})
	// 600 output tokens a second = 36,000 a minute = half the budget.
	for i := range samples {
		samples[i].Mock.OutputTokens = int64(600 * i)
	}
	ratio, seconds, perMinute := utilization(samples, wd, 0)
	if !near(ratio, 0.5) || seconds != 3 || !near(perMinute, 240) {
		t.Errorf("utilization = %v over %v s at %v jobs/min; want 0.5 over 3 s at 240", ratio, seconds, perMinute)
	}
	// The external client's tokens are not the pool's, and its rate shrinks the budget.
	for i := range samples {
		samples[i].Ext.OutputTokens = int64(300 * i)
	}
	ratio, _, _ = utilization(samples, wd, 1) // from 1 s, when the external rate is known
	// Pool: 300/s = 18,000/min; budget: 72,000 - 18,000 = 54,000.
	if !near(ratio, 18000.0/54000) {
		t.Errorf("utilization with an external client = %v, want %v", ratio, 18000.0/54000)
	}
}

func TestDrainReactionSplitRecoveryAndBackToMin(t *testing.T) {
	samples := series([]int64{1, 1, 5, 5, 5, 5, 5, 2, 0, 0}, []int64{0, 50, 40, 30, 20, 10, 0, 0, 0, 0}, make([]int64, 10))
	samples[6].W[0].InFlight = 2
	if at, ok := drainedAt(samples, 1); !ok || at != 7 {
		t.Errorf("drained at %v (%v), want 7: the processing list is part of the queue", at, ok)
	}
	changes := []change{{T: 1.4, From: 1, To: 5}, {T: 6.5, From: 5, To: 2}, {T: 7.5, From: 2, To: 0}}
	if r := reaction(changes, 1); r == nil || !near(*r, 0.4) {
		t.Errorf("reaction = %v, want 0.4", r)
	}
	if b := backToMin(samples, changes, 1, 0, 5); b == nil || !near(*b, 2.5) {
		t.Errorf("back to min = %v, want 2.5 s after the last arrival", b)
	}

	two := make([]sample, 4)
	for i := range two {
		two[i] = sample{T: float64(i), W: []workloadSample{{Backlog: 5, Completed: int64(3 * i)}, {Backlog: 5, Completed: int64(6 * i)}}}
	}
	two[2].W[0].Backlog = 0 // this interval does not count
	if share, ok := completionSplit(two, 0); !ok || !near(share, 1.0/3) {
		t.Errorf("split = %v (%v), want 1/3", share, ok)
	}

	// 2 jobs/s before the outage at 30 s, nothing during it, back at 2/s from 45 s.
	var out []sample
	done := int64(0)
	for i := range 70 {
		if i <= 30 || i >= 45 {
			done += 2
		}
		spec := int64(9)
		if i > 30 && i < 40 {
			spec = 7
		}
		out = append(out, sample{T: float64(i), W: []workloadSample{{Spec: int32(spec), Completed: done}}})
	}
	rec := recovery(out, 30, 40)
	// The 10 s ending at 53 holds 9 seconds at full rate: 18 jobs, 90% of 20.
	if rec == nil || !near(*rec, 13) {
		t.Errorf("recovery = %v, want 13 s after the restart", rec)
	}
	if lowest, before := outageReplicas(out, 30, 54); lowest != 7 || before != 9 {
		t.Errorf("outage replicas = %d (before %d), want 7 (9)", lowest, before)
	}
}

func TestReportRendersEveryScenario(t *testing.T) {
	rec := &runRecord{Name: "a", Title: "one-off backlog", About: "a test", Workloads: []string{"batch"}, Weights: []int32{1}}
	fillWorld(rec, scenarios()[0])
	for i := range 90 {
		s := sample{T: float64(i), W: []workloadSample{{Spec: 9, Ready: 9, Backlog: int64(max(0, 240-4*i)), Completed: int64(min(240, 4*i))}}}
		s.Mock = mockSample{OK: true, OutputTokens: int64(1000 * i), LastMinute: [3]int64{0, 0, int64(min(60, i) * 1000)}}
		if i == 50 {
			s.W[0].Backlog, s.Mock.OK = -1, false // Redis and the mock unreachable for a second
		}
		rec.Samples = append(rec.Samples, s)
	}
	rec.Changes = []change{{T: 5.8, From: 1, To: 5}, {T: 36, From: 5, To: 9}}
	rec.Events = []eventRecord{{T: 5.8, Reason: "Scaled", Message: "scaled Deployment batch-workers from 1 to 5: <queue>"}}
	rec.Marks = []mark{{T: 5, Label: "push 240"}}
	rec.Jobs = []jobCounts{{Pushed: 240, AckedOnce: 240}}
	score(rec, scoreInput{drain: true, firstPush: 5, lastBacklogPush: 5, startDelay: 5, mu: trueMu(), jobs: 240})
	if rec.Metrics.DrainSeconds == nil || *rec.Metrics.DrainSeconds != 55 {
		t.Errorf("drain = %v, want 55 s (empty at t=60)", rec.Metrics.DrainSeconds)
	}
	var html, md bytes.Buffer
	if err := writeHTML(&html, []*runRecord{rec}, suiteInfo{Host: "test", Load: "0"}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`id="chart-a"`, "<polyline", "push 240", "&lt;queue&gt;", "<circle"} {
		if !strings.Contains(html.String(), want) {
			t.Errorf("the HTML report lacks %q", want)
		}
	}
	if strings.Contains(html.String(), "NaN") {
		t.Error("the HTML report draws a NaN")
	}
	if err := writeMarkdown(&md, []*runRecord{rec}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md.String(), "| a one-off backlog | 55 s / 55 s = 1.00x, met |") {
		t.Errorf("markdown row:\n%s", md.String())
	}
	if _, err := json.Marshal(rec); err != nil {
		t.Errorf("the record does not encode as JSON: %v", err)
	}
}

func TestSelectScenarios(t *testing.T) {
	all := scenarios()
	got, err := selectScenarios(all, "g, a")
	if err != nil || len(got) != 2 || got[0].name != "a" || got[1].name != "g" {
		t.Errorf("selected %v (%v), want a then g", got, err)
	}
	if _, err := selectScenarios(all, "z"); err == nil {
		t.Error("an unknown scenario was accepted")
	}
	if got, _ := selectScenarios(all, ""); len(got) != len(all) {
		t.Errorf("no selection kept %d of %d", len(got), len(all))
	}
}
