package capacity

import (
	"strings"
	"testing"
	"time"

	"github.com/claudecap/claudecap/pkg/dimension"
)

// demandOf returns the demand of a summarizer queue (30 requests/min per replica, 2 min drain).
func demandOf(t *testing.T, backlog, inFlight int64, arrivalsPerMinute float64) Demand {
	t.Helper()
	last := int64(0)
	if arrivalsPerMinute > 0 {
		last = 1
	}
	d, err := ComputeDemand(DemandInput{
		Backlog: backlog, InFlight: inFlight,
		Arrivals:             ArrivalEstimate{PerMinute: arrivalsPerMinute, LastArrivals: last},
		ThroughputPerReplica: 30, DrainTime: 2 * time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// shareOf returns the named member's allocation of the pool.
func shareOf(t *testing.T, pool Pool, name string, claims ...Claim) Allocation {
	t.Helper()
	p, err := FairShare(pool, claims)
	if err != nil {
		t.Fatal(err)
	}
	a, ok := p.Member(name)
	if !ok {
		t.Fatalf("no member %s", name)
	}
	return a
}

func TestDecide(t *testing.T) {
	now := at(1000)
	alone := func(replicas int32) Allocation { return shareOf(t, tier2, "me", claim("me", 1, replicas)) }
	idleFor := func(seconds float64) History {
		return History{Recommendations: points(1000-seconds, 0), Observed: points(1000-seconds, 3)}
	}
	tests := []struct {
		name          string
		in            DecisionInput
		want          int32
		wantLimitedBy LimitReason
		wantRestraint Restraint
		wantAboveCap  bool
		wantMessage   string
	}{
		{
			name: "the queue binds: demand within the cap",
			in: DecisionInput{CurrentReplicas: 4, MaxReplicas: 50,
				Demand: demandOf(t, 240, 0, 0), Allocation: alone(4)},
			want: 4, wantLimitedBy: LimitedByQueue,
			wantMessage: "4 replicas for the queue: 0 arrivals/min + 240 queued over 2m0s = 120 requests/min at 30 per replica",
		},
		{
			name: "output tokens cap the demand",
			in: DecisionInput{CurrentReplicas: 9, MaxReplicas: 50,
				Demand: demandOf(t, 0, 0, 360), Allocation: alone(12)},
			want: 9, wantLimitedBy: LimitedByDimension(dimension.OutputTokens),
			wantMessage: "capped at 9 replicas: output tokens 81,000/90,000 per minute at 90% headroom; the queue wants 12",
		},
		{
			name: "usage outside the pool is named in the message",
			in: DecisionInput{CurrentReplicas: 4, MaxReplicas: 50, Demand: demandOf(t, 0, 0, 360),
				Allocation: shareOf(t, Pool{Limits: tier2.Limits, HeadroomPercent: 90, ExternalUsage: PerDimension{0, 0, 45_000}},
					"me", claim("me", 1, 12))},
			want: 4, wantLimitedBy: LimitedByDimension(dimension.OutputTokens),
			wantMessage: "capped at 4 replicas: output tokens 36,000/90,000 per minute at 90% headroom less 45,000 used outside the pool; the queue wants 12",
		},
		{
			name: "requests cap a member with tiny requests",
			in: DecisionInput{CurrentReplicas: 15, MaxReplicas: 100, Demand: demandOf(t, 0, 0, 3000),
				Allocation: shareOf(t, tier2, "c", Claim{Name: "c", Weight: 1, Replicas: 100, ThroughputPerReplica: 30,
					Profile: profile(50, 1)})},
			want: 30, wantLimitedBy: LimitedByDimension(dimension.Requests),
			wantMessage: "capped at 30 replicas: requests 900/1,000 per minute at 90% headroom; the queue wants 100",
		},
		{
			name: "input tokens cap a member with long prompts",
			in: DecisionInput{CurrentReplicas: 2, MaxReplicas: 100, Demand: demandOf(t, 0, 0, 300),
				Allocation: shareOf(t, tier2, "rag", Claim{Name: "rag", Weight: 1, Replicas: 10, ThroughputPerReplica: 30,
					Profile: profile(5000, 10)})},
			want: 2, wantLimitedBy: LimitedByDimension(dimension.InputTokens),
			wantMessage: "capped at 2 replicas: input tokens 405,000/450,000 per minute at 90% headroom; the queue wants 10",
		},
		{
			name: "the pool share binds when others hold theirs",
			in: DecisionInput{CurrentReplicas: 2, MaxReplicas: 50, Demand: demandOf(t, 0, 0, 1500),
				Allocation: shareOf(t, tier2, "a", claim("a", 1, 50), claim("b", 3, 50))},
			want: 2, wantLimitedBy: LimitedByPoolShare,
			wantMessage: "capped at 2 replicas: pool share of output tokens 20,250 of 81,000 per minute at weight 1 of 4; the queue wants 50",
		},
		{
			name: "max replicas bind below demand and cap",
			in: DecisionInput{CurrentReplicas: 5, MaxReplicas: 5,
				Demand: demandOf(t, 0, 0, 360), Allocation: alone(5)},
			want: 5, wantLimitedBy: LimitedByMaxReplicas, wantMessage: "at max 5 replicas; the queue wants 12",
		},
		{
			name: "min replicas hold an idle queue",
			in: DecisionInput{CurrentReplicas: 2, MinReplicas: 2, MaxReplicas: 5,
				Demand: demandOf(t, 0, 0, 0), Allocation: alone(2)},
			want: 2, wantLimitedBy: LimitedByMinReplicas, wantMessage: "at min 2 replicas; the queue wants 0",
		},
		{
			name: "min above the cap: min wins and the decision says so",
			in: DecisionInput{CurrentReplicas: 0, MinReplicas: 1, MaxReplicas: 5, Demand: demandOf(t, 10, 0, 0),
				Allocation: shareOf(t, Pool{Limits: tier2.Limits, HeadroomPercent: 90, ExternalUsage: PerDimension{0, 0, 90_000}},
					"me", claim("me", 1, 1))},
			want: 1, wantLimitedBy: LimitedByMinReplicas, wantAboveCap: true,
			wantMessage: "at min 1 replica; the queue wants 1, above the budget cap of 0 (output tokens 0/90,000 per minute at 90% headroom less 90,000 used outside the pool)",
		},
		{
			name: "a pool too small for one replica runs one and says the limiter paces it",
			in: DecisionInput{CurrentReplicas: 1, MaxReplicas: 5, Demand: demandOf(t, 0, 0, 90),
				Allocation: shareOf(t, Pool{Limits: PerDimension{50, 30_000, 8_000}, HeadroomPercent: 90}, "me", claim("me", 1, 3))},
			want: 1, wantLimitedBy: LimitedByDimension(dimension.OutputTokens),
			wantMessage: "capped at 1 replica: output tokens 7,200/8,000 per minute at 90% headroom, less than the 9,000 one replica uses, so the shared limiter paces it; the queue wants 3",
		},
		{
			name: "in-flight work holds a scale-down at one replica per job",
			in: DecisionInput{CurrentReplicas: 8, MaxReplicas: 50,
				Demand: demandOf(t, 0, 5, 0), Allocation: alone(1)},
			want: 5, wantLimitedBy: LimitedByWorkInFlight, wantRestraint: RestraintWorkInFlight,
			wantMessage: "1 replica for the queue: 0 arrivals/min + 0 queued over 2m0s = 0 requests/min at 30 per replica, 5 in flight; scale-down held at 5 while 5 jobs are in flight",
		},
		{
			name: "in-flight work counts jobs per replica when workers run several at once",
			in: DecisionInput{CurrentReplicas: 8, MaxReplicas: 50, ConcurrencyPerReplica: 4,
				Demand: demandOf(t, 0, 5, 0), Allocation: alone(1)},
			want: 2, wantLimitedBy: LimitedByWorkInFlight, wantRestraint: RestraintWorkInFlight,
		},
		{
			name: "in-flight work never holds more than current",
			in: DecisionInput{CurrentReplicas: 3, MaxReplicas: 50,
				Demand: demandOf(t, 0, 40, 0), Allocation: alone(1)},
			want: 3, wantLimitedBy: LimitedByWorkInFlight, wantRestraint: RestraintWorkInFlight,
		},
		{
			name: "a cap that falls below current follows the scale-down window: the limiter keeps the limits meanwhile",
			in: DecisionInput{CurrentReplicas: 12, MaxReplicas: 50, Behavior: DefaultBehavior(),
				History: History{Recommendations: points(600, 12)},
				Demand:  demandOf(t, 0, 0, 360), Allocation: alone(12)},
			want: 12, wantLimitedBy: LimitedByScaleDownStabilization, wantRestraint: RestraintScaleDownStabilized,
			wantMessage: "capped at 9 replicas: output tokens 81,000/90,000 per minute at 90% headroom; the queue wants 12; scale-down held at 12, the highest recommendation in the last 5m0s",
		},
		{
			name: "after upstream 429s the cap holds at once, over in-flight work and the scale-down window",
			in: DecisionInput{CurrentReplicas: 12, MaxReplicas: 50, Behavior: DefaultBehavior(), CapCut: CapCutUpstreamRefusals,
				History: History{Recommendations: points(600, 12)},
				Demand:  demandOf(t, 0, 12, 360), Allocation: alone(12)},
			want: 9, wantLimitedBy: LimitedByDimension(dimension.OutputTokens),
			wantMessage: "capped at 9 replicas: output tokens 81,000/90,000 per minute at 90% headroom; the queue wants 12; " +
				"cut to the cap at once, not at the scale-down pace, because the API answered this workload's calls with 429 or 529",
		},
		{
			name: "a member over its pool share gives it back at once: its siblings claim it",
			in: DecisionInput{CurrentReplicas: 4, MaxReplicas: 50, Behavior: DefaultBehavior(),
				History: History{Recommendations: points(600, 4)},
				Demand:  demandOf(t, 0, 0, 1500), Allocation: shareOf(t, tier2, "a", claim("a", 1, 50), claim("b", 3, 50))},
			want: 2, wantLimitedBy: LimitedByPoolShare,
			wantMessage: "capped at 2 replicas: pool share of output tokens 20,250 of 81,000 per minute at weight 1 of 4; the queue wants 50; " +
				"cut to the cap at once, not at the scale-down pace, because other workloads of the pool claim their weighted shares",
		},
		{
			name: "a lowered limit cuts at once too",
			in: DecisionInput{CurrentReplicas: 12, MaxReplicas: 50, Behavior: DefaultBehavior(), CapCut: CapCutLimitLowered,
				History: History{Recommendations: points(600, 12)},
				Demand:  demandOf(t, 0, 0, 360), Allocation: alone(12)},
			want: 9, wantLimitedBy: LimitedByDimension(dimension.OutputTokens),
		},
		{
			name: "max holds at once over the scale-down window",
			in: DecisionInput{CurrentReplicas: 20, MaxReplicas: 10, Behavior: DefaultBehavior(),
				History: History{Recommendations: points(600, 20)},
				Demand:  demandOf(t, 0, 0, 600), Allocation: shareOf(t, Pool{Limits: PerDimension{1e6, 1e9, 1e9}, HeadroomPercent: 90}, "me", claim("me", 1, 10))},
			want: 10, wantLimitedBy: LimitedByMaxReplicas,
		},
		{
			name: "scale to zero after the queue was idle for the whole window",
			in: DecisionInput{CurrentReplicas: 3, MaxReplicas: 10, Behavior: DefaultBehavior(),
				History: idleFor(301), Demand: demandOf(t, 0, 0, 0), Allocation: alone(0)},
			want: 0, wantLimitedBy: LimitedByQueue,
			wantMessage: "0 replicas for the queue: nothing queued, in flight or arriving",
		},
		{
			name: "no scale to zero before the window has passed",
			in: DecisionInput{CurrentReplicas: 3, MaxReplicas: 10, Behavior: DefaultBehavior(),
				History: idleFor(200), Demand: demandOf(t, 0, 0, 0), Allocation: alone(0)},
			want: 3, wantLimitedBy: LimitedByScaleDownStabilization, wantRestraint: RestraintScaleDownStabilized,
			wantMessage: "0 replicas for the queue: nothing queued, in flight or arriving; scale-down held at 3, the highest recommendation in the last 5m0s",
		},
		{
			name: "an operator restart mid-spike resumes from the stored history and does not drop",
			in: DecisionInput{CurrentReplicas: 9, MaxReplicas: 50, Behavior: DefaultBehavior(),
				History: History{Recommendations: points(900, 9, 990, 9), Observed: points(900, 9)},
				Demand:  demandOf(t, 0, 0, 30), Allocation: alone(1)},
			want: 9, wantLimitedBy: LimitedByScaleDownStabilization, wantRestraint: RestraintScaleDownStabilized,
		},
		{
			name: "scale-up follows the default policy",
			in: DecisionInput{CurrentReplicas: 2, MaxReplicas: 50, Behavior: DefaultBehavior(),
				Demand: demandOf(t, 600, 0, 0), Allocation: shareOf(t, Pool{Limits: PerDimension{1e6, 1e9, 1e9}, HeadroomPercent: 90}, "me", claim("me", 1, 10))},
			want: 6, wantLimitedBy: LimitedByScaleUpPolicy, wantRestraint: RestraintScaleUpLimit,
			wantMessage: "10 replicas for the queue: 0 arrivals/min + 600 queued over 2m0s = 300 requests/min at 30 per replica; scale-up limited to 6 by policy over 30s",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.in.Now = now
			got, err := Decide(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got.DesiredReplicas != tt.want || got.LimitedBy != tt.wantLimitedBy || got.Restraint != tt.wantRestraint || got.AboveCap != tt.wantAboveCap {
				t.Errorf("desired %d limitedBy %s restraint %q aboveCap %v; want %d %s %q %v\n%s",
					got.DesiredReplicas, got.LimitedBy, got.Restraint, got.AboveCap,
					tt.want, tt.wantLimitedBy, tt.wantRestraint, tt.wantAboveCap, got.Message)
			}
			if tt.wantMessage != "" && got.Message != tt.wantMessage {
				t.Errorf("message\n %q\nwant\n %q", got.Message, tt.wantMessage)
			}
			checkDecisionInvariants(t, tt.in, got)
		})
	}
}

func TestDecideRefusesMalformedInput(t *testing.T) {
	good := DecisionInput{Now: t0, CurrentReplicas: 1, MaxReplicas: 3}
	tests := []struct {
		name    string
		mutate  func(*DecisionInput)
		wantErr string
	}{
		{name: "no time", mutate: func(in *DecisionInput) { in.Now = time.Time{} }, wantErr: "without a time"},
		{name: "min above max", mutate: func(in *DecisionInput) { in.MinReplicas = 4 }, wantErr: "min 4, max 3"},
		{name: "negative min", mutate: func(in *DecisionInput) { in.MinReplicas = -1 }, wantErr: "min -1"},
		{name: "negative current", mutate: func(in *DecisionInput) { in.CurrentReplicas = -2 }, wantErr: "negative current replicas -2"},
		{name: "negative demand", mutate: func(in *DecisionInput) { in.Demand.InFlight = -1 }, wantErr: "negative demand"},
		{name: "negative cap", mutate: func(in *DecisionInput) { in.Allocation.CapReplicas = -1 }, wantErr: "negative cap"},
		{name: "negative concurrency", mutate: func(in *DecisionInput) { in.ConcurrencyPerReplica = -1 }, wantErr: "concurrency"},
		{name: "bad behavior", mutate: func(in *DecisionInput) { in.Behavior.ScaleUp.SelectPolicy = "Fastest" }, wantErr: "behavior: scale-up"},
		{name: "bad history", mutate: func(in *DecisionInput) { in.History.Recommendations = points(-10, -3) },
			wantErr: "recommendation history: negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := good
			tt.mutate(&in)
			_, err := Decide(in)
			checkErr(t, err, tt.wantErr)
		})
	}
}

// TestDecideTimeline runs the whole pure loop the controller runs, poll by poll: estimator,
// demand, fair share, decision, with the replicas applied at once. A backlog of 600 jobs
// lands, workers drain it, then the queue stays empty.
func TestDecideTimeline(t *testing.T) {
	const poll = 2 * time.Second
	est, err := NewArrivalEstimator(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var (
		history             History
		replicas            int32 = 1
		backlog, completed  int64
		inFlight            int64
		firstZero, lastBusy time.Time
		peak                int32
	)
	for i := range 600 {
		now := at(float64(i) * poll.Seconds())
		if i == 5 {
			backlog += 600
		}
		// Each replica finishes one job per 2 s poll (30/min) and holds one in flight.
		done := min(int64(replicas), backlog+inFlight)
		completed += done
		inFlight = min(int64(replicas), backlog+inFlight-done)
		backlog = max(backlog-done, 0)
		backlog = max(backlog-inFlight, 0)
		if err := est.Observe(QueueSample{Time: now, Backlog: backlog, InFlight: inFlight, Completed: completed, CompletedKnown: true}); err != nil {
			t.Fatal(err)
		}
		demand, err := ComputeDemand(DemandInput{Backlog: backlog, InFlight: inFlight, Arrivals: est.Estimate(),
			ThroughputPerReplica: 30, DrainTime: 2 * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		alloc := shareOf(t, tier2, "me", NewClaim("me", 1, demand, 0, 50, summarizer))
		in := DecisionInput{Now: now, CurrentReplicas: replicas, MaxReplicas: 50, Demand: demand,
			Allocation: alloc, Behavior: DefaultBehavior(), History: history}
		d, err := Decide(in)
		if err != nil {
			t.Fatal(err)
		}
		checkDecisionInvariants(t, in, d)
		history = d.History
		replicas = d.DesiredReplicas
		peak = max(peak, replicas)
		if backlog > 0 || inFlight > 0 {
			lastBusy = now
		}
		if replicas == 0 && firstZero.IsZero() {
			firstZero = now
		}
	}
	if peak < 5 || peak > 9 {
		t.Errorf("peak %d replicas, want between the first scale-up step (5) and the output-token cap of 9", peak)
	}
	if firstZero.IsZero() {
		t.Fatal("never scaled to zero")
	}
	if idle := firstZero.Sub(lastBusy); idle < 300*time.Second {
		t.Errorf("scaled to zero %v after the last work, want at least the 5m0s window", idle)
	}
}

// checkDecisionInvariants asserts what every decision must satisfy.
func checkDecisionInvariants(t *testing.T, in DecisionInput, d Decision) {
	t.Helper()
	if d.DesiredReplicas < in.MinReplicas || d.DesiredReplicas > in.MaxReplicas {
		t.Fatalf("desired %d outside [%d, %d]", d.DesiredReplicas, in.MinReplicas, in.MaxReplicas)
	}
	// Never up past the cap; past it only on the way down at the behavior's pace, unless a
	// CapCut makes the cap hold at once.
	allowed := max(in.Allocation.CapReplicas, in.MinReplicas)
	if in.CapCut == CapCutNone && in.Allocation.CapReason() != LimitedByPoolShare {
		allowed = max(allowed, min(in.CurrentReplicas, in.MaxReplicas))
	}
	if d.DesiredReplicas > allowed {
		t.Fatalf("desired %d above cap %d (current %d, min %d, cut %q)", d.DesiredReplicas, in.Allocation.CapReplicas,
			in.CurrentReplicas, in.MinReplicas, in.CapCut)
	}
	if d.DesiredReplicas > in.Allocation.CapReplicas && d.DesiredReplicas > in.CurrentReplicas && !d.AboveCap && d.DesiredReplicas > 0 {
		t.Fatalf("desired %d above cap %d, but the decision does not say so", d.DesiredReplicas, in.Allocation.CapReplicas)
	}
	ceiling := in.MaxReplicas
	if in.CapCut != CapCutNone || in.Allocation.CapReason() == LimitedByPoolShare {
		ceiling = clampReplicas(in.Allocation.CapReplicas, in.MinReplicas, in.MaxReplicas)
	}
	if in.Demand.InFlight > 0 && d.DesiredReplicas < in.CurrentReplicas && d.DesiredReplicas < ceiling {
		concurrency := int64(max(in.ConcurrencyPerReplica, 1))
		busy := (in.Demand.InFlight + concurrency - 1) / concurrency
		if int64(d.DesiredReplicas) < busy {
			t.Fatalf("scaled down %d -> %d below the %d replicas busy with %d jobs in flight",
				in.CurrentReplicas, d.DesiredReplicas, busy, in.Demand.InFlight)
		}
	}
	if in.Demand.InFlight > 0 && d.DesiredReplicas == 0 && in.CurrentReplicas > 0 && ceiling > 0 {
		t.Fatalf("scaled to zero with %d jobs in flight", in.Demand.InFlight)
	}
	if d.Message == "" || strings.Contains(d.Message, "%!") {
		t.Fatalf("bad message %q", d.Message)
	}
}

// TestWorkedExample is the example of docs/scaling.md; keep the two in step.
func TestWorkedExample(t *testing.T) {
	pool := Pool{Limits: PerDimension{1000, 450_000, 90_000}, HeadroomPercent: 90}
	drain := 2 * time.Minute
	summarizer, err := ComputeDemand(DemandInput{Backlog: 600, Arrivals: ArrivalEstimate{PerMinute: 180, LastArrivals: 6},
		ThroughputPerReplica: 30, DrainTime: drain})
	if err != nil {
		t.Fatal(err)
	}
	translator, err := ComputeDemand(DemandInput{InFlight: 4, Arrivals: ArrivalEstimate{PerMinute: 120, LastArrivals: 4},
		ThroughputPerReplica: 30, DrainTime: drain})
	if err != nil {
		t.Fatal(err)
	}
	if summarizer.Replicas != 16 || translator.Replicas != 4 {
		t.Fatalf("demands %d and %d, want 16 and 4", summarizer.Replicas, translator.Replicas)
	}
	split, err := FairShare(pool, []Claim{
		NewClaim("ai/summarizer", 1, summarizer, 0, 50, profile(480, 300)),
		NewClaim("ai/translator", 3, translator, 1, 20, profile(480, 300)),
	})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := split.Member("ai/summarizer")
	tr, _ := split.Member("ai/translator")
	if s.Share != (PerDimension{150, 72_000, 45_000}) || tr.Share != (PerDimension{120, 57_600, 36_000}) ||
		s.CapReplicas != 5 || tr.CapReplicas != 4 {
		t.Fatalf("shares %v cap %d and %v cap %d", s.Share, s.CapReplicas, tr.Share, tr.CapReplicas)
	}
	d, err := Decide(DecisionInput{Now: t0, CurrentReplicas: 2, MaxReplicas: 50, Demand: summarizer, Allocation: s,
		Behavior: DefaultBehavior()})
	if err != nil {
		t.Fatal(err)
	}
	want := "capped at 5 replicas: pool share of output tokens 45,000 of 81,000 per minute at weight 1 of 4; the queue wants 16"
	if d.DesiredReplicas != 5 || d.LimitedBy != LimitedByPoolShare || d.Message != want {
		t.Fatalf("summarizer: %d %s %q", d.DesiredReplicas, d.LimitedBy, d.Message)
	}
}
