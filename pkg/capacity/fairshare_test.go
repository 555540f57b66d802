package capacity

import (
	"math"
	"strings"
	"testing"

	"github.com/claudecap/claudecap/pkg/dimension"
)

// tier2 is a Sonnet tier-2 pool at 90% headroom: budget 900 RPM, 405,000 ITPM, 81,000 OTPM.
var tier2 = Pool{Limits: PerDimension{1000, 450_000, 90_000}, HeadroomPercent: 90}

// summarizer is a typical request: 1,200 input tokens at a 60% cache hit ratio count as 480,
// 300 output tokens; at 30 requests/min a replica uses 30 RPM, 14,400 ITPM and 9,000 OTPM.
var summarizer = profile(480, 300)

func claim(name string, weight, replicas int32) Claim {
	return Claim{Name: name, Weight: weight, Replicas: replicas, ThroughputPerReplica: 30, Profile: summarizer}
}

func TestPoolBudget(t *testing.T) {
	tests := []struct {
		name    string
		pool    Pool
		want    PerDimension
		wantErr string
	}{
		{name: "headroom takes its share of every limit", pool: tier2, want: PerDimension{900, 405_000, 81_000}},
		{name: "full headroom is the limit", pool: Pool{Limits: PerDimension{50, 30_000, 8_000}, HeadroomPercent: 100},
			want: PerDimension{50, 30_000, 8_000}},
		{name: "headroom rounds down", pool: Pool{Limits: PerDimension{7, 7, 7}, HeadroomPercent: 50}, want: PerDimension{3, 3, 3}},
		{name: "usage outside the pool is subtracted",
			pool: Pool{Limits: tier2.Limits, HeadroomPercent: 90, ExternalUsage: PerDimension{100, 5_000, 20_000}},
			want: PerDimension{800, 400_000, 61_000}},
		{name: "usage outside the pool beyond the budget leaves zero, not less",
			pool: Pool{Limits: tier2.Limits, HeadroomPercent: 90, ExternalUsage: PerDimension{0, 0, 95_000}},
			want: PerDimension{900, 405_000, 0}},
		{name: "headroom 0 is refused", pool: Pool{Limits: tier2.Limits}, wantErr: "headroom 0% is outside 1..100"},
		{name: "headroom over 100 is refused", pool: Pool{Limits: tier2.Limits, HeadroomPercent: 101}, wantErr: "outside 1..100"},
		{name: "a zero limit is refused", pool: Pool{Limits: PerDimension{1000, 0, 90_000}, HeadroomPercent: 90},
			wantErr: "input tokens limit 0 per minute"},
		{name: "a huge limit is refused", pool: Pool{Limits: PerDimension{1000, 1, MaxPerMinute + 1}, HeadroomPercent: 90},
			wantErr: "output tokens limit"},
		{name: "negative external usage is refused",
			pool:    Pool{Limits: tier2.Limits, HeadroomPercent: 90, ExternalUsage: PerDimension{-1, 0, 0}},
			wantErr: "external requests usage -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.pool.Budget()
			checkErr(t, err, tt.wantErr)
			if err == nil && got != tt.want {
				t.Errorf("budget %v, want %v", got, tt.want)
			}
		})
	}
}

func TestWaterFill(t *testing.T) {
	tests := []struct {
		name    string
		budget  int64
		claims  []int64
		weights []int64
		want    []int64
	}{
		{name: "weights 1:3 under excess demand give 1:3", budget: 81_000,
			claims: []int64{81_000, 81_000}, weights: []int64{1, 3}, want: []int64{20_250, 60_750}},
		{name: "a member needing less than its share leaves the rest to the others", budget: 900,
			claims: []int64{100, 900, 900}, weights: []int64{1, 1, 1}, want: []int64{100, 400, 400}},
		{name: "every claim fits: each gets its claim and the rest stays unclaimed", budget: 1000,
			claims: []int64{100, 200}, weights: []int64{5, 1}, want: []int64{100, 200}},
		{name: "an idle member gets nothing and the busy one everything", budget: 1000,
			claims: []int64{0, 5000}, weights: []int64{3, 1}, want: []int64{0, 1000}},
		{name: "weighted level: the heavy member is satisfied first", budget: 100,
			claims: []int64{60, 60}, weights: []int64{3, 1}, want: []int64{60, 40}},
		{name: "shares round down and never exceed the budget", budget: 10,
			claims: []int64{10, 10, 10}, weights: []int64{1, 1, 1}, want: []int64{3, 3, 3}},
		{name: "zero budget gives nothing", budget: 0, claims: []int64{5, 5}, weights: []int64{1, 1}, want: []int64{0, 0}},
		{name: "no members", budget: 10, want: []int64{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := waterFill(tt.budget, tt.claims, tt.weights)
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("got %v, want %v", got, tt.want)
				}
			}
		})
	}
}

func TestFairShare(t *testing.T) {
	type member struct {
		share    PerDimension
		capacity int32
		reason   LimitReason
		partial  bool
	}
	tests := []struct {
		name   string
		pool   Pool
		claims []Claim
		want   map[string]member
	}{
		{
			name:   "alone and within budget: share is the claim, the cap is what the whole budget holds",
			pool:   tier2,
			claims: []Claim{claim("ai/summarizer", 1, 4)},
			want: map[string]member{"ai/summarizer": {
				share: PerDimension{120, 57_600, 36_000}, capacity: 9, reason: LimitedByDimension(dimension.OutputTokens)}},
		},
		{
			name:   "alone beyond budget: capped by output tokens, the binding dimension keeps its whole budget",
			pool:   tier2,
			claims: []Claim{claim("ai/summarizer", 1, 12)},
			want: map[string]member{"ai/summarizer": {
				share: PerDimension{270, 129_600, 81_000}, capacity: 9, reason: LimitedByDimension(dimension.OutputTokens)}},
		},
		{
			name:   "weights 1:3 under excess demand: output shares 1:3, both limited by their pool share",
			pool:   tier2,
			claims: []Claim{claim("a", 1, 50), claim("b", 3, 50)},
			want: map[string]member{
				"a": {share: PerDimension{60, 28_800, 20_250}, capacity: 2, reason: LimitedByPoolShare},
				"b": {share: PerDimension{180, 86_400, 60_750}, capacity: 6, reason: LimitedByPoolShare},
			},
		},
		{
			name:   "one member idle: the other gets the whole budget",
			pool:   tier2,
			claims: []Claim{claim("idle", 3, 0), claim("busy", 1, 50)},
			want: map[string]member{
				"idle": {share: PerDimension{}, capacity: 0, reason: LimitedByPoolShare},
				"busy": {share: PerDimension{270, 129_600, 81_000}, capacity: 9, reason: LimitedByDimension(dimension.OutputTokens)},
			},
		},
		{
			name:   "usage outside the pool lowers the cap",
			pool:   Pool{Limits: tier2.Limits, HeadroomPercent: 90, ExternalUsage: PerDimension{0, 0, 45_000}},
			claims: []Claim{claim("ai/summarizer", 1, 12)},
			want: map[string]member{"ai/summarizer": {
				share: PerDimension{120, 57_600, 36_000}, capacity: 4, reason: LimitedByDimension(dimension.OutputTokens)}},
		},
		{
			name:   "a budget smaller than one replica still runs one, paced by the limiter",
			pool:   Pool{Limits: PerDimension{50, 30_000, 8_000}, HeadroomPercent: 90},
			claims: []Claim{claim("tier1", 1, 3)},
			want: map[string]member{"tier1": {
				share: PerDimension{45, 27_000, 7_200}, capacity: 1, reason: LimitedByDimension(dimension.OutputTokens), partial: true}},
		},
		{
			name:   "no budget left at all: cap 0",
			pool:   Pool{Limits: tier2.Limits, HeadroomPercent: 90, ExternalUsage: PerDimension{0, 0, 81_000}},
			claims: []Claim{claim("starved", 1, 3)},
			want: map[string]member{"starved": {
				share: PerDimension{0, 0, 0}, capacity: 0, reason: LimitedByDimension(dimension.OutputTokens)}},
		},
		{
			name: "requests bind a member with tiny requests",
			pool: tier2,
			claims: []Claim{{Name: "classifier", Weight: 1, Replicas: 100, ThroughputPerReplica: 60,
				Profile: profile(50, 1)}},
			want: map[string]member{"classifier": {
				share: PerDimension{900, 45_000, 900}, capacity: 15, reason: LimitedByDimension(dimension.Requests)}},
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
				if a.Share != w.share || a.CapReplicas != w.capacity || a.CapReason() != w.reason || a.Partial != w.partial {
					t.Errorf("%s: share %v cap %d reason %s partial %v; want share %v cap %d reason %s partial %v",
						name, a.Share, a.CapReplicas, a.CapReason(), a.Partial, w.share, w.capacity, w.reason, w.partial)
				}
			}
			checkPoolInvariants(t, got, tt.claims)
		})
	}
}

// TestFairShareStrandedSharesArePassedOn checks the refinement: two members each bound by a
// different dimension leave what they cannot use of the other dimension to each other.
// Plain per-dimension water-filling gives each 50,000 of both and a cap of 10 replicas.
func TestFairShareStrandedSharesArePassedOn(t *testing.T) {
	pool := Pool{Limits: PerDimension{1_000_000, 100_000, 100_000}, HeadroomPercent: 100}
	claims := []Claim{
		{Name: "writer", Weight: 1, Replicas: 100, ThroughputPerReplica: 1, Profile: profile(2000, 5000)},
		{Name: "reader", Weight: 1, Replicas: 100, ThroughputPerReplica: 1, Profile: profile(5000, 2000)},
	}
	got, err := FairShare(pool, claims)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range got.Members {
		if a.CapReplicas != 13 || a.CapReason() != LimitedByPoolShare {
			t.Errorf("%s: cap %d (%s), want 13 (PoolShare)", a.Name, a.CapReplicas, a.CapReason())
		}
	}
	writer, _ := got.Member("writer")
	if writer.Share[dimension.InputTokens] != 20_000 || writer.Share[dimension.OutputTokens] != 50_000 {
		t.Errorf("writer share %v, want input lowered to 20,000 (10 replicas) and output kept at 50,000", writer.Share)
	}
	checkPoolInvariants(t, got, claims)
}

func TestFairShareRefusesMalformedClaims(t *testing.T) {
	ok := claim("a", 1, 1)
	tests := []struct {
		name    string
		mutate  func(c *Claim)
		twice   bool
		wantErr string
	}{
		{name: "empty name", mutate: func(c *Claim) { c.Name = "" }, wantErr: "without a name"},
		{name: "zero weight", mutate: func(c *Claim) { c.Weight = 0 }, wantErr: "weight 0 is outside"},
		{name: "weight too large", mutate: func(c *Claim) { c.Weight = MaxWeight + 1 }, wantErr: "weight"},
		{name: "negative replicas", mutate: func(c *Claim) { c.Replicas = -1 }, wantErr: "negative replicas"},
		{name: "zero throughput", mutate: func(c *Claim) { c.ThroughputPerReplica = 0 }, wantErr: "throughput per replica 0"},
		{name: "infinite throughput", mutate: func(c *Claim) { c.ThroughputPerReplica = math.Inf(1) }, wantErr: "throughput"},
		{name: "NaN tokens", mutate: func(c *Claim) { c.Profile[dimension.OutputTokens] = math.NaN() }, wantErr: "tokens per request NaN"},
		{name: "negative tokens", mutate: func(c *Claim) { c.Profile[dimension.InputTokens] = -1 }, wantErr: "tokens per request -1"},
		{name: "duplicate member", mutate: func(*Claim) {}, twice: true, wantErr: "appears twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.mutate(&c)
			claims := []Claim{c}
			if tt.twice {
				claims = append(claims, c)
			}
			_, err := FairShare(tier2, claims)
			checkErr(t, err, tt.wantErr)
		})
	}
	_, err := FairShare(Pool{}, []Claim{ok})
	checkErr(t, err, "pool budget: headroom 0%")
}

// checkPoolInvariants asserts what must hold for every split of a pool.
func checkPoolInvariants(t *testing.T, got PoolAllocation, claims []Claim) {
	t.Helper()
	if len(got.Members) != len(claims) {
		t.Fatalf("%d allocations for %d claims", len(got.Members), len(claims))
	}
	var shares, rooms PerDimension
	var partialUse dimension.Rates
	for i, a := range got.Members {
		c := claims[i]
		if a.Name != c.Name {
			t.Fatalf("allocation %d is %s, want %s", i, a.Name, c.Name)
		}
		for d := range shares {
			if a.Share[d] < 0 || a.Headroom[d] < 0 {
				t.Errorf("%s: negative share or headroom in %s: %v %v", a.Name, dimension.Dimension(d), a.Share, a.Headroom)
			}
			if a.Share[d] > a.Claimed[d] {
				t.Errorf("%s: share %d of %s exceeds its claim %d", a.Name, a.Share[d], dimension.Dimension(d), a.Claimed[d])
			}
			shares[d] += a.Share[d]
			rooms[d] += a.Share[d] + a.Headroom[d]
			planned := float64(a.CapReplicas) * a.PerReplica[d]
			if a.Partial {
				partialUse[d] += planned
			} else if planned > float64(a.Share[d]+a.Headroom[d])+1e-6 {
				t.Errorf("%s: cap %d uses %.0f %s, more than share+headroom %d", a.Name, a.CapReplicas, planned,
					dimension.Dimension(d), a.Share[d]+a.Headroom[d])
			}
		}
		if a.CapReplicas > a.SoloCapReplicas {
			t.Errorf("%s: cap %d above the cap of the whole budget %d", a.Name, a.CapReplicas, a.SoloCapReplicas)
		}
	}
	for d := range shares {
		if shares[d] > got.Budget[d] || rooms[d] > got.Budget[d] {
			t.Errorf("%s: shares %d, shares+headroom %d exceed the budget %d", dimension.Dimension(d), shares[d], rooms[d], got.Budget[d])
		}
		if got.Unclaimed[d] != got.Budget[d]-shares[d] {
			t.Errorf("%s: unclaimed %d, want budget-shares %d", dimension.Dimension(d), got.Unclaimed[d], got.Budget[d]-shares[d])
		}
	}
}

func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case want != "" && err == nil:
		t.Fatalf("no error, want one containing %q", want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Fatalf("error %q, want one containing %q", err, want)
	}
}

// A binding dimension is reported by its table name, which is the API's limitedBy value.
func TestDimensionReasonIsTheTableName(t *testing.T) {
	want := map[dimension.Dimension]LimitReason{
		dimension.Requests: "Requests", dimension.InputTokens: "InputTokens", dimension.OutputTokens: "OutputTokens",
	}
	for _, d := range dimension.All() {
		if got := LimitedByDimension(d); got != want[d] {
			t.Errorf("%s: reason %q, want %q", d, got, want[d])
		}
	}
}

// profile is the request profile of in input and out output tokens per request.
func profile(in, out float64) RequestProfile {
	return ProfileOf(dimension.Rates{dimension.InputTokens: in, dimension.OutputTokens: out})
}

// A request costs one request; a profile that says otherwise (one built without ProfileOf)
// must not pass as free.
func TestRequestProfileCostsOneRequest(t *testing.T) {
	p := profile(3, 5)
	if got := (Claim{ThroughputPerReplica: 2, Profile: p}).perReplica(); got != (dimension.Rates{2, 6, 10}) {
		t.Errorf("per replica %v, want [2 6 10]", got)
	}
	free := Claim{Name: "free", Weight: 1, Replicas: 1, ThroughputPerReplica: 2,
		Profile: RequestProfile{dimension.InputTokens: 3, dimension.OutputTokens: 5}}
	if err := free.validate(); err == nil || !strings.Contains(err.Error(), "costs 0 requests") {
		t.Errorf("a profile without its request validated: %v", err)
	}
}
