package capacity

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/claudecap/claudecap/pkg/dimension"
)

// prio returns c at priority p with g guaranteed replicas.
func prio(c Claim, p, g int32) Claim {
	c.Priority, c.GuaranteedReplicas = p, g
	return c
}

func TestFairSharePriorities(t *testing.T) {
	type member struct {
		share    PerDimension
		capacity int32
		reason   LimitReason
	}
	tests := []struct {
		name   string
		pool   Pool
		claims []Claim
		want   map[string]member
	}{
		{
			// By weight alone (1:3) high would get 20,250 OTPM and 2 replicas.
			name:   "the high class takes all it claims and the low class gets the rest",
			pool:   tier2,
			claims: []Claim{prio(claim("high", 1, 6), 1, 0), prio(claim("low", 3, 50), 0, 0)},
			want: map[string]member{
				"high": {share: PerDimension{180, 86_400, 54_000}, capacity: 6, reason: LimitedByPoolShare},
				"low":  {share: PerDimension{90, 43_200, 27_000}, capacity: 3, reason: LimitedByPoolShare},
			},
		},
		{
			name: "two members of the high class split by weight and the low class gets nothing",
			pool: tier2,
			claims: []Claim{prio(claim("a", 1, 50), 1, 0), prio(claim("b", 3, 50), 1, 0),
				prio(claim("c", 10, 50), 0, 0)},
			want: map[string]member{
				"a": {share: PerDimension{60, 28_800, 20_250}, capacity: 2, reason: LimitedByPoolShare},
				"b": {share: PerDimension{180, 86_400, 60_750}, capacity: 6, reason: LimitedByPoolShare},
				"c": {share: PerDimension{}, capacity: 0, reason: LimitedByPoolShare},
			},
		},
		{
			name:   "a low member's guarantee is served although the high class could use everything",
			pool:   tier2,
			claims: []Claim{prio(claim("high", 1, 50), 10, 0), prio(claim("low", 1, 50), 0, 2)},
			want: map[string]member{
				"high": {share: PerDimension{210, 100_800, 63_000}, capacity: 7, reason: LimitedByPoolShare},
				"low":  {share: PerDimension{60, 28_800, 18_000}, capacity: 2, reason: LimitedByPoolShare},
			},
		},
		{
			// 10 guaranteed replicas each need 90,000 OTPM of 81,000; priority does not
			// order guarantees, so the low member keeps its weighted part.
			name:   "guarantees beyond the budget are split by weight, whatever the priorities",
			pool:   tier2,
			claims: []Claim{prio(claim("a", 1, 10), 0, 10), prio(claim("b", 3, 10), 5, 10)},
			want: map[string]member{
				"a": {share: PerDimension{60, 28_800, 20_250}, capacity: 2, reason: LimitedByPoolShare},
				"b": {share: PerDimension{180, 86_400, 60_750}, capacity: 6, reason: LimitedByPoolShare},
			},
		},
		{
			// The writer is held to 10 replicas by output tokens, so of its 500 RPM water-
			// filling part it uses 100. Its peer gets the rest of its 600 RPM claim first,
			// and only the 300 RPM left then fall to the low class. (The writer's 100 RPM
			// carry exactly its 10 replicas too, and requests come first in a tie.)
			name: "a member bound by output tokens leaves its request share to its own class first, then to lower ones",
			pool: Pool{Limits: PerDimension{1000, 1000, 10_000}, HeadroomPercent: 100},
			claims: []Claim{
				{Name: "writer", Weight: 1, Replicas: 100, ThroughputPerReplica: 10, Profile: profile(0, 100), Priority: 1},
				{Name: "peer", Weight: 1, Replicas: 60, ThroughputPerReplica: 10, Profile: profile(0, 0), Priority: 1},
				{Name: "low", Weight: 1, Replicas: 100, ThroughputPerReplica: 10, Profile: profile(0, 0)},
			},
			want: map[string]member{
				"writer": {share: PerDimension{100, 0, 10_000}, capacity: 10, reason: LimitedByDimension(dimension.Requests)},
				"peer":   {share: PerDimension{600, 0, 0}, capacity: 60, reason: LimitedByPoolShare},
				"low":    {share: PerDimension{300, 0, 0}, capacity: 30, reason: LimitedByPoolShare},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FairShare(tt.pool, tt.claims)
			if err != nil {
				t.Fatal(err)
			}
			for name, w := range tt.want {
				a, ok := got.Member(name)
				if !ok {
					t.Fatalf("no allocation for %s", name)
				}
				if a.Share != w.share || a.CapReplicas != w.capacity || a.CapReason() != w.reason {
					t.Errorf("%s: share %v cap %d reason %s; want share %v cap %d reason %s",
						name, a.Share, a.CapReplicas, a.CapReason(), w.share, w.capacity, w.reason)
				}
			}
			checkPriorityInvariants(t, tt.pool, tt.claims, got)
		})
	}
}

// TestFairShareLowerPriorityCostsNoReplicas checks what a priority keeps of what it leaves:
// the writer and reader of TestFairShareStrandedSharesArePassedOn reach 13 replicas each
// alone, through headroom. A low-priority member that would take everything they leave must
// not cost them those replicas (plain stages would leave them 10 each and the low member 6).
func TestFairShareLowerPriorityCostsNoReplicas(t *testing.T) {
	pool := Pool{Limits: PerDimension{1_000_000, 100_000, 100_000}, HeadroomPercent: 100}
	high := []Claim{
		{Name: "writer", Weight: 1, Replicas: 100, ThroughputPerReplica: 1, Profile: profile(2000, 5000), Priority: 1},
		{Name: "reader", Weight: 1, Replicas: 100, ThroughputPerReplica: 1, Profile: profile(5000, 2000), Priority: 1},
	}
	low := Claim{Name: "batch", Weight: 1, Replicas: 100, ThroughputPerReplica: 1, Profile: high[0].Profile}
	alone, err := FairShare(pool, high)
	if err != nil {
		t.Fatal(err)
	}
	claims := append(high[:len(high):len(high)], low)
	got, err := FairShare(pool, claims)
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range got.Members[:len(high)] {
		if want := alone.Members[i].CapReplicas; a.CapReplicas != want || want != 13 {
			t.Errorf("%s: cap %d with a low-priority member, %d without it; want 13 both", a.Name, a.CapReplicas, want)
		}
	}
	if b, _ := got.Member("batch"); b.CapReplicas != 1 {
		t.Errorf("batch: cap %d, want 1 (output tokens 9,000 left by the high class)", b.CapReplicas)
	}
	checkPriorityInvariants(t, pool, claims, got)
}

func TestFairShareRefusesNegativeGuarantee(t *testing.T) {
	_, err := FairShare(tier2, []Claim{prio(claim("a", 1, 1), 0, -1)})
	checkErr(t, err, "pool member a: negative guaranteed replicas (-1)")
}

// TestFairShareEqualPrioritiesMatchPreviousSplit checks that priorities and guarantees cost
// nothing when unused: with one priority (any value) and no guarantees the split is exactly
// the one FairShare made before they existed (fairShareBefore).
func TestFairShareEqualPrioritiesMatchPreviousSplit(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for iter := range 3000 {
		pool, claims := randomPool(rng)
		p := []int32{0, 1, -7, 1_000_000}[iter%4]
		for i := range claims {
			claims[i].Priority, claims[i].GuaranteedReplicas = p, 0
		}
		checkMatchesPreviousSplit(t, pool, claims)
		if t.Failed() {
			t.Fatalf("pool %+v claims %+v", pool, claims)
		}
	}
}

func checkMatchesPreviousSplit(t *testing.T, pool Pool, claims []Claim) {
	t.Helper()
	got, err := FairShare(pool, claims)
	if err != nil {
		t.Fatal(err)
	}
	want, err := fairShareBefore(pool, claims)
	if err != nil {
		t.Fatal(err)
	}
	for i := range got.Members {
		if got.Members[i].Priority != claims[i].Priority {
			t.Errorf("%s: priority %d, want %d from the claim", got.Members[i].Name, got.Members[i].Priority, claims[i].Priority)
		}
		want.Members[i].Priority = claims[i].Priority
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("split differs from the one before priorities:\n got %+v\nwant %+v", got, want)
	}
}

// TestFairSharePriorityInvariants checks random pools with random priorities and guarantees
// (see checkPriorityInvariants).
func TestFairSharePriorityInvariants(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 1500 {
		pool, claims := randomPool(rng)
		got, err := FairShare(pool, claims)
		if err != nil {
			t.Fatalf("valid input refused: %v", err)
		}
		checkPriorityInvariants(t, pool, claims, got)
		if t.Failed() {
			t.Fatalf("pool %+v claims %+v", pool, claims)
		}
	}
}

// TestFairSharePriorityFractions checks, where a fraction of a claim is one number (members
// that use no tokens, so only requests count), that a higher-priority member never gets a
// smaller fraction of its claim than a lower one, unless the lower one's guarantee explains
// it: beyond its guaranteed share the lower one then holds less than the rounding remainder
// of the higher class (one unit per member of it).
func TestFairSharePriorityFractions(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for range 1500 {
		pool, claims := randomPool(rng)
		for i := range claims {
			claims[i].Profile = profile(0, 0)
		}
		got, err := FairShare(pool, claims)
		if err != nil {
			t.Fatalf("valid input refused: %v", err)
		}
		checkPriorityInvariants(t, pool, claims, got)
		guaranteed := guaranteedShares(t, pool, claims)
		classSize := map[int32]int64{}
		for _, c := range claims {
			classSize[c.Priority]++
		}
		for _, hi := range got.Members {
			for l, lo := range got.Members {
				if hi.Priority <= lo.Priority {
					continue
				}
				// hi.Share/hi.Claimed < lo.Share/lo.Claimed, by cross-multiplication.
				if cmpProducts(hi.Share[dimension.Requests], lo.Claimed[dimension.Requests], lo.Share[dimension.Requests], hi.Claimed[dimension.Requests]) >= 0 {
					continue
				}
				if beyond := lo.Share[dimension.Requests] - guaranteed[l][dimension.Requests]; beyond >= classSize[hi.Priority] {
					t.Errorf("%s (priority %d) holds %d of %d RPM, %s (priority %d) %d of %d, %d beyond its guarantee",
						hi.Name, hi.Priority, hi.Share[dimension.Requests], hi.Claimed[dimension.Requests],
						lo.Name, lo.Priority, lo.Share[dimension.Requests], lo.Claimed[dimension.Requests], beyond)
				}
			}
		}
		if t.Failed() {
			t.Fatalf("pool %+v claims %+v", pool, claims)
		}
	}
}

// FuzzFairSharePriorities checks the invariants of checkPriorityInvariants, and the split
// before priorities when they are all equal, on pools drawn from a fuzzed seed.
func FuzzFairSharePriorities(f *testing.F) {
	f.Add(uint64(1), uint64(2), false)
	f.Add(uint64(7), uint64(0), true)
	f.Fuzz(func(t *testing.T, s1, s2 uint64, flat bool) {
		pool, claims := randomPool(rand.New(rand.NewPCG(s1, s2)))
		if flat {
			for i := range claims {
				claims[i].Priority, claims[i].GuaranteedReplicas = claims[0].Priority, 0
			}
			checkMatchesPreviousSplit(t, pool, claims)
		}
		got, err := FairShare(pool, claims)
		if err != nil {
			t.Fatalf("valid input refused: %v", err)
		}
		checkPriorityInvariants(t, pool, claims, got)
	})
}

// checkPriorityInvariants asserts, besides checkPoolInvariants (shares within claims, shares
// and headroom within the budget):
//   - every member holds at least its share of the guarantees alone (guaranteedShares), and
//     its whole guarantee when all guarantees fit in the budget;
//   - lower priorities only get what higher ones leave: if every member below a priority
//     claimed only its guarantee, no member at that priority or above would hold another
//     share;
//   - a lower priority never costs a higher member replicas it claims: with no guarantees
//     below it, a member's cap is at least what it would be, up to its claim, without the
//     members below it.
func checkPriorityInvariants(t *testing.T, pool Pool, claims []Claim, got PoolAllocation) {
	t.Helper()
	checkPoolInvariants(t, got, claims)
	guaranteed := guaranteedShares(t, pool, claims)
	allFit := true // every guaranteed replica fits the budget
	unbounded := PerDimension{MaxPerMinute, MaxPerMinute, MaxPerMinute}
	for d, b := range got.Budget {
		var sum int64
		for _, c := range claims {
			sum += claimFor(min(c.GuaranteedReplicas, c.Replicas), c.perReplica(), unbounded)[d]
		}
		allFit = allFit && sum <= b
	}
	for i, a := range got.Members {
		c := claims[i]
		if a.Priority != c.Priority || a.GuaranteedReplicas != c.GuaranteedReplicas {
			t.Errorf("%s: priority %d guarantee %d, want %d and %d from the claim", a.Name, a.Priority,
				a.GuaranteedReplicas, c.Priority, c.GuaranteedReplicas)
		}
		for d := range a.Share {
			if a.Share[d] < guaranteed[i][d] {
				t.Errorf("%s: share %v below its part of the guarantees %v", a.Name, a.Share, guaranteed[i])
				break
			}
		}
		if g := claimFor(min(c.GuaranteedReplicas, c.Replicas), c.perReplica(), got.Budget); allFit && guaranteed[i] != g {
			t.Errorf("%s: guarantees fit the budget but its part is %v, not its guarantee %v", a.Name, guaranteed[i], g)
		}
	}

	for _, p := range priorities(claims) {
		below := make([]Claim, len(claims))
		for i, c := range claims {
			below[i] = c
			if c.Priority < p {
				below[i].Replicas = min(c.GuaranteedReplicas, c.Replicas)
			}
		}
		alt, err := FairShare(pool, below)
		if err != nil {
			t.Fatal(err)
		}
		for i, a := range got.Members {
			if a.Priority >= p && alt.Members[i].Share != a.Share {
				t.Errorf("%s (priority %d): share %v, but %v when every member below priority %d claims only its guarantee",
					a.Name, a.Priority, a.Share, alt.Members[i].Share, p)
			}
		}
	}

	for h, hc := range claims {
		var full, above []Claim
		at := -1
		for _, c := range claims {
			if c.Priority < hc.Priority {
				c.GuaranteedReplicas = 0
			} else {
				if c.Name == hc.Name {
					at = len(above)
				}
				above = append(above, c)
			}
			full = append(full, c)
		}
		with, err := FairShare(pool, full)
		if err != nil {
			t.Fatal(err)
		}
		without, err := FairShare(pool, above)
		if err != nil {
			t.Fatal(err)
		}
		if w, wo := with.Members[h].CapReplicas, without.Members[at].CapReplicas; w < min(wo, hc.Replicas) {
			t.Errorf("%s (priority %d): cap %d with the members below it, %d without them (claim %d)",
				hc.Name, hc.Priority, w, wo, hc.Replicas)
		}
	}
}

// guaranteedShares returns each member's share of the guarantees alone: the split of the
// claims cut to their guaranteed replicas, at one priority, which is FairShare's first stage.
func guaranteedShares(t *testing.T, pool Pool, claims []Claim) []PerDimension {
	t.Helper()
	cut := make([]Claim, len(claims))
	for i, c := range claims {
		cut[i] = c
		cut[i].Replicas = min(c.GuaranteedReplicas, c.Replicas)
		cut[i].Priority, cut[i].GuaranteedReplicas = 0, 0
	}
	got, err := FairShare(pool, cut)
	if err != nil {
		t.Fatal(err)
	}
	shares := make([]PerDimension, len(claims))
	for i, a := range got.Members {
		shares[i] = a.Share
	}
	return shares
}

// priorities returns the distinct priorities of the claims.
func priorities(claims []Claim) []int32 {
	seen := map[int32]bool{}
	var out []int32
	for _, c := range claims {
		if !seen[c.Priority] {
			seen[c.Priority] = true
			out = append(out, c.Priority)
		}
	}
	return out
}

// randomPool draws a contended pool and up to 8 claims over a few priorities, some with
// guarantees; budgets are often small next to the claims so that priorities matter. Half
// the pools hold writers and readers (bound by output and input tokens, as in
// TestFairShareStrandedSharesArePassedOn), whose stranded shares exercise the passes.
func randomPool(rng *rand.Rand) (Pool, []Claim) {
	if rng.IntN(2) == 0 {
		return randomTokenPool(rng)
	}
	logUniform := func(hi int) int64 { return 1 + rng.Int64N(int64(1)<<rng.IntN(hi)) }
	pool := Pool{
		Limits:          PerDimension{logUniform(14), logUniform(24), logUniform(20)},
		HeadroomPercent: int32(1 + rng.IntN(100)),
	}
	if rng.IntN(3) == 0 {
		pool.ExternalUsage[dimension.OutputTokens] = rng.Int64N(pool.Limits[dimension.OutputTokens])
	}
	claims := make([]Claim, rng.IntN(9))
	for i := range claims {
		c := Claim{
			Name:                 fmt.Sprintf("m%d", i),
			Weight:               int32(1 + rng.IntN(10)),
			Replicas:             int32(rng.IntN(120)),
			ThroughputPerReplica: float64(1+rng.IntN(600)) / 4,
			Profile:              profile(float64(rng.IntN(20_000)), float64(rng.IntN(4_000))),
			Priority:             int32(rng.IntN(4)) - 1,
		}
		if rng.IntN(5) == 0 {
			c.Profile[dimension.InputTokens] = 0
		}
		if rng.IntN(3) == 0 {
			c.GuaranteedReplicas = int32(rng.IntN(30))
		}
		claims[i] = c
	}
	return pool, claims
}

// fairShareBefore is FairShare as it was before priorities and guarantees, kept verbatim
// as the reference that one priority without guarantees must match exactly.
func fairShareBefore(pool Pool, claims []Claim) (PoolAllocation, error) {
	budget, err := pool.Budget()
	if err != nil {
		return PoolAllocation{}, fmt.Errorf("pool budget: %w", err)
	}
	seen := make(map[string]bool, len(claims))
	var poolWeight int64
	for _, c := range claims {
		if err := c.validate(); err != nil {
			return PoolAllocation{}, err
		}
		if seen[c.Name] {
			return PoolAllocation{}, fmt.Errorf("pool member %s appears twice", c.Name)
		}
		seen[c.Name] = true
		poolWeight += int64(c.Weight)
	}

	n := len(claims)
	perReplica := make([]dimension.Rates, n)
	weights := make([]int64, n)
	want := make([]PerDimension, n) // what each member claims per dimension, lowered pass by pass
	for i, c := range claims {
		perReplica[i] = c.perReplica()
		weights[i] = int64(c.Weight)
		want[i] = claimFor(c.Replicas, perReplica[i], budget)
	}
	var shares []PerDimension
	for pass := 0; pass <= dimension.Count*n; pass++ {
		shares = splitBudget(budget, want, weights)
		changed := false
		for i := range claims {
			fit, _, _ := fitReplicas(shares[i], perReplica[i])
			for d := range want[i] {
				if replicasIn(shares[i][d], perReplica[i][d]) <= int64(fit) {
					continue
				}
				if usable := ceilAmount(float64(fit) * perReplica[i][d]); usable < want[i][d] {
					want[i][d], changed = usable, true
				}
			}
		}
		if !changed {
			break
		}
	}

	out := PoolAllocation{Budget: budget, Members: make([]Allocation, n)}
	for d := range budget {
		out.Unclaimed[d] = budget[d]
		for i := range shares {
			out.Unclaimed[d] -= shares[i][d]
		}
	}
	for i, c := range claims {
		a := Allocation{
			Name:       c.Name,
			Weight:     int64(c.Weight),
			PoolWeight: poolWeight,
			Claimed:    claimFor(c.Replicas, perReplica[i], budget),
			Share:      shares[i],
			PerReplica: perReplica[i],
			Pool:       pool,
			Budget:     budget,
		}
		var room PerDimension
		for d := range budget {
			a.Headroom[d] = mulDiv(out.Unclaimed[d], a.Weight, poolWeight)
			room[d] = a.Share[d] + a.Headroom[d]
		}
		a.CapReplicas, a.Binding, a.Partial = fitReplicas(room, perReplica[i])
		a.SoloCapReplicas, _, _ = fitReplicas(budget, perReplica[i])
		out.Members[i] = a
	}
	return out, nil
}

// randomTokenPool draws a pool with plenty of requests whose members are writers, readers or
// balanced, so that members of one priority are bound by different token dimensions.
func randomTokenPool(rng *rand.Rand) (Pool, []Claim) {
	profiles := []RequestProfile{
		profile(2000, 5000),
		profile(5000, 2000),
		profile(3000, 3000),
		profile(100, 6000),
	}
	pool := Pool{
		Limits:          PerDimension{1_000_000, 20_000 + rng.Int64N(200_000), 20_000 + rng.Int64N(200_000)},
		HeadroomPercent: 100,
	}
	claims := make([]Claim, 1+rng.IntN(6))
	for i := range claims {
		claims[i] = Claim{
			Name:                 fmt.Sprintf("m%d", i),
			Weight:               int32(1 + rng.IntN(4)),
			Replicas:             int32(rng.IntN(60)),
			ThroughputPerReplica: float64(1 + rng.IntN(3)),
			Profile:              profiles[rng.IntN(len(profiles))],
			Priority:             int32(rng.IntN(3)),
		}
		if rng.IntN(4) == 0 {
			claims[i].GuaranteedReplicas = int32(rng.IntN(5))
		}
	}
	return pool, claims
}
