package capacity

import (
	"encoding/binary"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/claudecap/claudecap/pkg/dimension"
)

// byteReader hands out fuzz bytes as small numbers, and zeros once they run out.
type byteReader struct{ b []byte }

func (r *byteReader) u16() uint16 {
	if len(r.b) < 2 {
		r.b = nil
		return 0
	}
	v := binary.LittleEndian.Uint16(r.b)
	r.b = r.b[2:]
	return v
}

func (r *byteReader) intn(n int) int { return int(r.u16()) % n }

// claimsFrom builds up to 12 valid claims from fuzz bytes.
func claimsFrom(data []byte) []Claim {
	r := &byteReader{b: data}
	n := r.intn(13)
	claims := make([]Claim, n)
	for i := range claims {
		claims[i] = Claim{
			Name:                 fmt.Sprintf("m%d", i),
			Weight:               int32(1 + r.intn(100)),
			Replicas:             int32(r.intn(300)),
			ThroughputPerReplica: float64(1+r.intn(600)) / 4,
			Profile:              profile(float64(r.intn(20_000)), float64(r.intn(4_000))),
		}
	}
	return claims
}

func poolFrom(rpm, itpm, otpm int64, headroom uint8, ext int64) Pool {
	pos := func(v int64) int64 { return 1 + (v&math.MaxInt64)%(1<<40) }
	return Pool{
		Limits:          PerDimension{pos(rpm), pos(itpm), pos(otpm)},
		HeadroomPercent: int32(1 + int(headroom)%100),
		ExternalUsage:   PerDimension{(ext & math.MaxInt64) % (pos(rpm) + 1), 0, (ext & math.MaxInt64) % (pos(otpm) + 1)},
	}
}

// FuzzFairShare checks every split of a pool: shares within claims, shares and headroom within
// the budget in every dimension, caps that fit in what was given (unless Partial), and caps
// never below plain per-dimension water-filling without the refinement.
func FuzzFairShare(f *testing.F) {
	f.Add(int64(1000), int64(450_000), int64(90_000), uint8(89), int64(0), []byte{2, 0, 1, 0, 50, 0, 120, 0, 224, 1, 44, 1, 3, 0, 50, 0})
	f.Add(int64(50), int64(30_000), int64(8_000), uint8(99), int64(7_000), []byte{5, 0, 9, 9, 9, 9, 9, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Add(int64(1), int64(1), int64(1), uint8(0), int64(0), []byte{12, 0, 255, 255, 255, 255, 255, 255, 255, 255})
	f.Fuzz(func(t *testing.T, rpm, itpm, otpm int64, headroom uint8, ext int64, data []byte) {
		pool := poolFrom(rpm, itpm, otpm, headroom, ext)
		claims := claimsFrom(data)
		got, err := FairShare(pool, claims)
		if err != nil {
			t.Fatalf("valid input refused: %v", err)
		}
		checkPoolInvariants(t, got, claims)

		// Plain water-filling of the original claims, for comparison.
		weights := make([]int64, len(claims))
		want := make([]PerDimension, len(claims))
		for i, c := range claims {
			weights[i] = int64(c.Weight)
			want[i] = claimFor(c.Replicas, c.perReplica(), got.Budget)
		}
		plain := splitBudget(got.Budget, want, weights)
		for i, a := range got.Members {
			refined, _, _ := fitReplicas(a.Share, a.PerReplica)
			unrefined, _, _ := fitReplicas(plain[i], a.PerReplica)
			if refined < unrefined {
				t.Errorf("%s: refinement lowered the replicas its share holds from %d to %d", a.Name, unrefined, refined)
			}
			if a.CapReplicas < refined {
				t.Errorf("%s: cap %d below the %d replicas its share holds", a.Name, a.CapReplicas, refined)
			}
		}
	})
}

// FuzzFairShareWeights checks that weights are respected: members with the same request
// profile and excess demand get shares of the binding dimension in exactly the ratio of their
// weights (to the unit, since shares are rounded down).
func FuzzFairShareWeights(f *testing.F) {
	f.Add(uint16(1), uint16(3), int64(90_000), uint16(120), uint16(480), uint16(300))
	f.Add(uint16(7), uint16(7), int64(8_000), uint16(4), uint16(1), uint16(1))
	f.Fuzz(func(t *testing.T, w1, w2 uint16, otpm int64, mu, in, out uint16) {
		// Requests and input tokens are plentiful so that output tokens bind.
		pool := Pool{Limits: PerDimension{MaxPerMinute, MaxPerMinute, 1 + (otpm&math.MaxInt64)%(1<<40)}, HeadroomPercent: 100}
		profile := profile(float64(in%100), float64(1+out))
		a := Claim{Name: "a", Weight: int32(1 + w1%1000), Replicas: math.MaxInt32, ThroughputPerReplica: float64(1 + mu), Profile: profile}
		b := a
		b.Name, b.Weight = "b", int32(1+w2%1000)
		got, err := FairShare(pool, []Claim{a, b})
		if err != nil {
			t.Fatal(err)
		}
		budget := got.Budget[dimension.OutputTokens]
		total := int64(a.Weight) + int64(b.Weight)
		for i, c := range []Claim{a, b} {
			m := got.Members[i]
			if want := mulDiv(budget, int64(c.Weight), total); m.Share[dimension.OutputTokens] != want {
				t.Errorf("%s (weight %d of %d): output share %d, want %d", c.Name, c.Weight, total, m.Share[dimension.OutputTokens], want)
			}
		}
	})
}

// FuzzDecide checks every decision: desired within [min, max]; never above the cap unless
// min forces it, and then AboveCap says so; no scale-down below the replicas busy with
// in-flight work unless a ceiling forces it; and the same over a second decision fed the
// first one's history.
func FuzzDecide(f *testing.F) {
	f.Add(uint16(600), uint16(0), uint16(300), uint16(30), uint16(2), uint16(50), uint16(9), uint16(3), uint8(0), []byte{})
	f.Add(uint16(0), uint16(5), uint16(0), uint16(30), uint16(0), uint16(10), uint16(0), uint16(8), uint8(1), []byte{1, 2, 3, 4})
	f.Add(uint16(0), uint16(0), uint16(0), uint16(1), uint16(0), uint16(0), uint16(0), uint16(0), uint8(2), []byte{9, 9})
	f.Fuzz(func(t *testing.T, backlog, inFlight, arrivals, mu, lo, span, capReplicas, current uint16, shape uint8, hist []byte) {
		demand, err := ComputeDemand(DemandInput{
			Backlog: int64(backlog), InFlight: int64(inFlight),
			Arrivals:             ArrivalEstimate{PerMinute: float64(arrivals), LastArrivals: int64(arrivals % 2)},
			ThroughputPerReplica: float64(1 + mu%500), DrainTime: 2 * time.Minute,
		})
		if err != nil {
			t.Fatal(err)
		}
		behaviors := []Behavior{
			DefaultBehavior(),
			{},
			{ScaleUp: rules(time.Minute, SelectMin, pods(1, 10*time.Second), percent(10, time.Minute)),
				ScaleDown: rules(30*time.Second, SelectMax, pods(3, 20*time.Second))},
			{ScaleUp: rules(0, SelectDisabled), ScaleDown: rules(0, SelectDisabled)},
			{ScaleDown: rules(0, SelectMin, percent(100, time.Second))},
		}
		r := &byteReader{b: hist}
		var history History
		for range r.intn(20) {
			history.Recommendations = append(history.Recommendations, ReplicaPoint{Time: at(float64(r.intn(1200))), Replicas: int32(r.intn(60))})
			history.Observed = append(history.Observed, ReplicaPoint{Time: at(float64(r.intn(1200))), Replicas: int32(r.intn(60))})
		}
		in := DecisionInput{
			Now:                   at(1000),
			CurrentReplicas:       int32(current % 100),
			MinReplicas:           int32(lo % 20),
			MaxReplicas:           int32(lo%20) + int32(span%60),
			Demand:                demand,
			Allocation:            Allocation{CapReplicas: int32(capReplicas % 80), Pool: tier2, PoolWeight: 1, Weight: 1},
			ConcurrencyPerReplica: int32(shape % 3),
			Behavior:              behaviors[int(shape)%len(behaviors)],
			History:               history,
		}
		d, err := Decide(in)
		if err != nil {
			t.Fatalf("valid input refused: %v", err)
		}
		checkDecisionInvariants(t, in, d)
		if len(d.History.Recommendations) > maxHistoryPoints || len(d.History.Observed) > maxHistoryPoints {
			t.Fatalf("history grew to %d/%d points", len(d.History.Recommendations), len(d.History.Observed))
		}
		in.Now, in.CurrentReplicas, in.History = at(1002), d.DesiredReplicas, d.History
		d2, err := Decide(in)
		if err != nil {
			t.Fatalf("second decision refused: %v", err)
		}
		checkDecisionInvariants(t, in, d2)
	})
}

// FuzzArrivalEstimator checks that any sequence of polls keeps the estimate finite and
// non-negative, and that malformed polls are refused rather than folded in.
func FuzzArrivalEstimator(f *testing.F) {
	f.Add(uint16(300), []byte{0, 0, 10, 0, 5, 0, 100, 0, 2, 0, 20, 0, 10, 0, 145, 0})
	f.Fuzz(func(t *testing.T, prior uint16, data []byte) {
		e, err := NewArrivalEstimator(float64(prior), time.Duration(1+prior%120)*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		r := &byteReader{b: data}
		for range r.intn(50) {
			s := QueueSample{
				Time:           at(float64(r.intn(600))),
				Backlog:        int64(r.u16()) - 10,
				InFlight:       int64(r.u16()),
				Completed:      int64(r.u16()),
				CompletedKnown: r.intn(2) == 0,
			}
			err := e.Observe(s)
			if (s.Backlog < 0) != (err != nil) {
				t.Fatalf("sample %+v: error %v", s, err)
			}
			got := e.Estimate()
			if math.IsNaN(got.PerMinute) || math.IsInf(got.PerMinute, 0) || got.PerMinute < 0 || got.LastArrivals < 0 {
				t.Fatalf("estimate %+v after %+v", got, s)
			}
		}
	})
}
