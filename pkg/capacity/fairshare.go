package capacity

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"

	"github.com/claudecap/claudecap/pkg/dimension"
)

// PerDimension holds one per-minute amount for each limited dimension, indexed by
// dimension.Dimension: limits, budgets, shares.
type PerDimension = dimension.Amounts

// LimitedByDimension returns the limitedBy value that names a dimension whose budget caps
// replicas below demand: its table Name ("OutputTokens").
func LimitedByDimension(d dimension.Dimension) LimitReason {
	return LimitReason(d.Name())
}

// Limits on inputs, so that products and sums below stay exact in int64 and float64.
const (
	// MaxPerMinute bounds any limit, budget or usage figure (about 10^15 per minute).
	MaxPerMinute int64 = 1 << 50
	// MaxWeight bounds a pool member's weight.
	MaxWeight int32 = 1_000_000
	// maxPerRequest bounds the throughput and tokens-per-request inputs.
	maxPerRequest = 1e9
)

// Pool is one budget pool: an organization's limits for one model class, shared by every
// ClaudeCapacity that names the same organization and class.
type Pool struct {
	// Limits are the organization's per-minute limits for the class.
	Limits PerDimension
	// HeadroomPercent is the share of each limit the pool may plan to use, 1..100.
	HeadroomPercent int32
	// ExternalUsage is what callers outside the pool use per minute (seen in the upstream
	// rate-limit headers); it is taken out of the budget. Zero when unknown.
	ExternalUsage PerDimension
}

// Budget returns what the pool may plan to use per minute in each dimension:
// floor(limit * headroom / 100) - external usage, never below zero.
func (p Pool) Budget() (PerDimension, error) {
	if p.HeadroomPercent < 1 || p.HeadroomPercent > 100 {
		return PerDimension{}, fmt.Errorf("headroom %d%% is outside 1..100", p.HeadroomPercent)
	}
	var b PerDimension
	for _, d := range dimension.All() {
		limit := p.Limits[d]
		if limit <= 0 || limit > MaxPerMinute {
			return PerDimension{}, fmt.Errorf("%s limit %d per minute is outside 1..%d", d, limit, MaxPerMinute)
		}
		ext := p.ExternalUsage[d]
		if ext < 0 || ext > MaxPerMinute {
			return PerDimension{}, fmt.Errorf("external %s usage %d per minute is outside 0..%d", d, ext, MaxPerMinute)
		}
		b[d] = max(0, limit*int64(p.HeadroomPercent)/100-ext)
	}
	return b, nil
}

// RequestProfile is what one request costs in each dimension, on average, indexed by
// dimension: exactly 1 in Requests, and its tokens in the token dimensions. Input tokens are
// counted as the ITPM limit counts them: input_tokens plus cache_creation_input_tokens,
// without cache reads for current models; the caller applies the cache hit ratio and the
// model's counting rule. ProfileOf builds one from token amounts; a usage figure divided by
// its own request count is one already. Claim validation rejects a Requests entry other
// than 1, so that a profile built without it cannot pass requests as free.
type RequestProfile dimension.Rates

// ProfileOf returns the profile of a request that costs tokens[d] in each token dimension;
// the Requests entry of tokens is ignored (a request costs one request).
func ProfileOf(tokens dimension.Rates) RequestProfile {
	tokens[dimension.Requests] = 1
	return RequestProfile(tokens)
}

// ObservedProfile returns the average request of usage: each dimension's amount divided by
// the requests it counts (so exactly 1 in Requests). usage must count at least one request.
func ObservedProfile(usage PerDimension) RequestProfile {
	var p RequestProfile
	n := float64(usage[dimension.Requests])
	for d, v := range usage {
		p[d] = float64(v) / n
	}
	return p
}

// Claim is one pool member's request for a share of the budget.
type Claim struct {
	// Name identifies the member (namespace/name); it must be unique within the pool.
	Name string
	// Weight is the member's share of a contended pool relative to the others, 1..MaxWeight.
	Weight int32
	// Replicas is what the member asks for: its demand clamped to its [min, max] replicas,
	// because min replicas run whatever the queue says and max is all it could ever use.
	Replicas int32
	// ThroughputPerReplica is one replica's requests per minute (mu).
	ThroughputPerReplica float64
	// Profile is the member's average request.
	Profile RequestProfile
	// Priority ranks the member inside the pool: higher priorities are served first, and
	// members of one priority share what is left by weight. Any value; only the order counts.
	Priority int32
	// GuaranteedReplicas is a minimum served before any priority: the member gets a share
	// for min(GuaranteedReplicas, Replicas) replicas whatever higher priorities claim, and
	// guarantees the budget cannot cover are split by weight. At least 0.
	GuaranteedReplicas int32
}

// perReplica returns what one replica of the member consumes per minute in each dimension.
func (c Claim) perReplica() dimension.Rates {
	var r dimension.Rates
	for _, d := range dimension.All() {
		r[d] = c.ThroughputPerReplica * c.Profile[d]
	}
	return r
}

func (c Claim) validate() error {
	if c.Name == "" {
		return errors.New("pool member without a name")
	}
	if c.Weight < 1 || c.Weight > MaxWeight {
		return fmt.Errorf("pool member %s: weight %d is outside 1..%d", c.Name, c.Weight, MaxWeight)
	}
	if c.Replicas < 0 {
		return fmt.Errorf("pool member %s: negative replicas claimed (%d)", c.Name, c.Replicas)
	}
	if c.GuaranteedReplicas < 0 {
		return fmt.Errorf("pool member %s: negative guaranteed replicas (%d)", c.Name, c.GuaranteedReplicas)
	}
	if !positiveFinite(c.ThroughputPerReplica) || c.ThroughputPerReplica > maxPerRequest {
		return fmt.Errorf("pool member %s: throughput per replica %v is not in (0, %g] requests per minute",
			c.Name, c.ThroughputPerReplica, maxPerRequest)
	}
	for _, d := range dimension.All() {
		v := c.Profile[d]
		if d == dimension.Requests {
			if v != 1 {
				return fmt.Errorf("pool member %s: a request costs %v requests in its profile, not 1", c.Name, v)
			}
			continue
		}
		if math.IsNaN(v) || v < 0 || v > maxPerRequest {
			return fmt.Errorf("pool member %s: %s per request %v is not in [0, %g]", c.Name, d.Words(), v, maxPerRequest)
		}
	}
	return nil
}

// Allocation is one member's share of its pool and the replicas that share carries.
type Allocation struct {
	// Name is the member's name from its Claim.
	Name string
	// Weight is the member's weight and PoolWeight the sum of all members' weights.
	Weight, PoolWeight int64
	// Priority and GuaranteedReplicas are the member's, from its Claim.
	Priority, GuaranteedReplicas int32
	// Claimed is the member's claim per dimension: Replicas x per-replica consumption.
	Claimed PerDimension
	// Share is what the member is guaranteed per minute; never more than Claimed.
	Share PerDimension
	// Headroom is the member's weighted part of the budget nobody claimed: room to grow into
	// before the next decision. Shares plus headrooms of a pool never exceed its budget.
	Headroom PerDimension
	// PerReplica is one replica's consumption per minute in each dimension.
	PerReplica dimension.Rates
	// CapReplicas is how many replicas fit in Share + Headroom in every dimension.
	CapReplicas int32
	// SoloCapReplicas is how many replicas would fit if the member had the whole budget.
	SoloCapReplicas int32
	// Binding is the dimension with the fewest replicas' worth of Share + Headroom.
	Binding dimension.Dimension
	// Partial is true when Share + Headroom holds less than one replica but more than none
	// in every dimension, and CapReplicas was raised to 1: one replica paced by the shared
	// limiter beats a queue that never drains.
	Partial bool
	// Pool and Budget describe the pool the share was cut from, for messages.
	Pool   Pool
	Budget PerDimension
}

// CapReason names what binds the cap: the pool share when sharing with others (of any
// priority, or their guarantees) costs the member replicas it would have alone, else the
// binding dimension of the whole budget.
func (a Allocation) CapReason() LimitReason {
	if a.CapReplicas < a.SoloCapReplicas {
		return LimitedByPoolShare
	}
	return LimitedByDimension(a.Binding)
}

// PoolAllocation is the split of one pool's budget.
type PoolAllocation struct {
	// Budget is the pool's budget per minute (see Pool.Budget).
	Budget PerDimension
	// Unclaimed is the budget left after every claim got its share; it is spread over the
	// members as Headroom.
	Unclaimed PerDimension
	// Members holds one Allocation per Claim, in the order of the claims.
	Members []Allocation
}

// Member returns the allocation of the named member.
func (p PoolAllocation) Member(name string) (Allocation, bool) {
	for _, a := range p.Members {
		if a.Name == name {
			return a, true
		}
	}
	return Allocation{}, false
}

// FairShare splits the pool's budget over the claims by weighted max-min fairness, done for
// each dimension on its own (water-filling): members are served in order of claim/weight,
// each gets its claim if that is no more than its weighted part of what is left, and once one
// does not, all remaining members get exactly their weighted part of the rest. A member that
// needs less than its fair share so leaves the rest to the others, and shares never exceed
// claims. Amounts are whole units rounded down, so shares sum to at most the budget.
//
// A member held back by one dimension cannot use its full share of the others. FairShare
// therefore repeats the split with such members claiming only what their cap can use, until
// nothing changes, so that stranded shares go to members who can use them.
//
// Priorities and guarantees order the split in stages, each one the split above over what
// the stages before it left:
//
//  1. Guarantees: every member, whatever its priority, claims min(GuaranteedReplicas,
//     Replicas) replicas; guarantees the budget cannot cover are so split by weight.
//  2. Priorities, highest first: the members of one priority claim the rest of their claim
//     beyond what they hold. What a priority leaves falls to the next one down, but first
//     each of its members takes, out of its weighted part of that leftover, what its cap can
//     use (up to its claim), as Headroom would have let it. So members below a priority
//     never cost its members claimed replicas they would have had without them, except
//     through their guarantees.
//
// With one priority and no guarantees this is the single split above.
//
// The budget nobody claimed is then spread over all members by weight as Headroom, and each
// member's cap is the replicas that fit in Share + Headroom in every dimension.
func FairShare(pool Pool, claims []Claim) (PoolAllocation, error) {
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
	m := splitMembers{
		weights:    make([]int64, n),
		perReplica: make([]dimension.Rates, n),
		replicas:   make([]int32, n),
	}
	want := make([]PerDimension, n)       // each member's whole claim
	guaranteed := make([]PerDimension, n) // the part of it guaranteed
	all := make([]int, n)
	for i, c := range claims {
		all[i] = i
		m.weights[i] = int64(c.Weight)
		m.perReplica[i] = c.perReplica()
		m.replicas[i] = c.Replicas
		want[i] = claimFor(c.Replicas, m.perReplica[i], budget)
		guaranteed[i] = claimFor(min(c.GuaranteedReplicas, c.Replicas), m.perReplica[i], budget)
	}

	shares := make([]PerDimension, n)
	m.serve(budget, all, shares, guaranteed)
	classes := priorityClasses(claims)
	for k, class := range classes {
		m.serve(leftOf(budget, shares), class, shares, want)
		if k < len(classes)-1 {
			m.keepUsable(leftOf(budget, shares), class, shares)
		}
	}

	out := PoolAllocation{Budget: budget, Unclaimed: leftOf(budget, shares), Members: make([]Allocation, n)}
	for i, c := range claims {
		a := Allocation{
			Name:               c.Name,
			Weight:             int64(c.Weight),
			PoolWeight:         poolWeight,
			Priority:           c.Priority,
			GuaranteedReplicas: c.GuaranteedReplicas,
			Claimed:            want[i],
			Share:              shares[i],
			PerReplica:         m.perReplica[i],
			Pool:               pool,
			Budget:             budget,
		}
		var room PerDimension
		for d := range budget {
			a.Headroom[d] = mulDiv(out.Unclaimed[d], a.Weight, poolWeight)
			room[d] = a.Share[d] + a.Headroom[d]
		}
		a.CapReplicas, a.Binding, a.Partial = fitReplicas(room, m.perReplica[i])
		a.SoloCapReplicas, _, _ = fitReplicas(budget, m.perReplica[i])
		out.Members[i] = a
	}
	return out, nil
}

// splitMembers is what the stages of FairShare need of the claims, indexed like them.
type splitMembers struct {
	weights    []int64
	perReplica []dimension.Rates
	replicas   []int32
}

// serve splits left over the members in class (indices into the claims) for what they
// claim (want) beyond what they hold (shares), and adds each member's part to its share.
//
// A pass lowers a member's claim in a dimension to what its cap (on all it holds) can use
// there, leaving its binding dimension alone so shares there stay exactly weighted. Lowering
// claims never lowers another member's share nor the member's own cap, so each of the 3k
// member dimensions of a class of k is lowered at most once and 3k+1 passes are enough.
func (m splitMembers) serve(left PerDimension, class []int, shares, want []PerDimension) {
	k := len(class)
	weights := make([]int64, k)
	claims := make([]PerDimension, k) // what each member claims beyond what it holds, lowered pass by pass
	for j, i := range class {
		weights[j] = m.weights[i]
		for d := range claims[j] {
			claims[j][d] = max(0, want[i][d]-shares[i][d])
		}
	}
	var parts []PerDimension
	for pass := 0; pass <= dimension.Count*k; pass++ {
		parts = splitBudget(left, claims, weights)
		changed := false
		for j, i := range class {
			held := shares[i].Add(parts[j])
			fit, _, _ := fitReplicas(held, m.perReplica[i])
			for d := range claims[j] {
				if replicasIn(held[d], m.perReplica[i][d]) <= int64(fit) {
					continue
				}
				usable := max(0, ceilAmount(float64(fit)*m.perReplica[i][d])-shares[i][d])
				if usable < claims[j][d] {
					claims[j][d], changed = usable, true
				}
			}
		}
		if !changed {
			break
		}
	}
	for j, i := range class {
		shares[i] = shares[i].Add(parts[j])
	}
}

// keepUsable is the last step of a priority that has lower ones below it: each member of
// the class takes, out of its weighted part of the leftover (left), what the replicas that
// then fit in every dimension use, up to its claimed replicas. The water-filling passes stop
// at the first consistent split and can leave a member holding fewer replicas than its share
// plus that part would carry; within the lowest priority Headroom makes up for it, but what a
// higher priority leaves falls to the priorities below as shares, so the class keeps it here.
func (m splitMembers) keepUsable(left PerDimension, class []int, shares []PerDimension) {
	var classWeight int64
	for _, i := range class {
		classWeight += m.weights[i]
	}
	for _, i := range class {
		var room PerDimension
		for d := range room {
			room[d] = shares[i][d] + mulDiv(left[d], m.weights[i], classWeight)
		}
		fit, _, _ := fitReplicas(room, m.perReplica[i])
		fit = min(fit, m.replicas[i])
		for d := range room {
			shares[i][d] = max(shares[i][d], min(room[d], ceilAmount(float64(fit)*m.perReplica[i][d])))
		}
	}
}

// priorityClasses groups the claims' indices by priority, highest first, each group in the
// order of the claims.
func priorityClasses(claims []Claim) [][]int {
	priorities := make([]int32, 0, len(claims))
	for _, c := range claims {
		priorities = append(priorities, c.Priority)
	}
	slices.Sort(priorities)
	priorities = slices.Compact(priorities)
	slices.Reverse(priorities)
	classes := make([][]int, len(priorities))
	for i, c := range claims {
		k, _ := slices.BinarySearchFunc(priorities, c.Priority, func(p, target int32) int { return cmp.Compare(target, p) })
		classes[k] = append(classes[k], i)
	}
	return classes
}

// leftOf returns the budget the shares leave, per dimension.
func leftOf(budget PerDimension, shares []PerDimension) PerDimension {
	left := budget
	for _, s := range shares {
		for d := range left {
			left[d] -= s[d]
		}
	}
	return left
}

// splitBudget water-fills every dimension over the members' claims.
func splitBudget(budget PerDimension, want []PerDimension, weights []int64) []PerDimension {
	shares := make([]PerDimension, len(want))
	claims := make([]int64, len(want))
	for d := range budget {
		for i := range want {
			claims[i] = want[i][d]
		}
		for i, s := range waterFill(budget[d], claims, weights) {
			shares[i][d] = s
		}
	}
	return shares
}

// waterFill splits budget over claims by weighted max-min fairness; see FairShare.
func waterFill(budget int64, claims, weights []int64) []int64 {
	order := make([]int, len(claims))
	for i := range order {
		order[i] = i
	}
	// Serve members by claim/weight ascending, compared exactly by cross-multiplication.
	slices.SortStableFunc(order, func(a, b int) int {
		return cmpProducts(claims[a], weights[b], claims[b], weights[a])
	})
	var weightLeft int64
	for _, w := range weights {
		weightLeft += w
	}
	out := make([]int64, len(claims))
	left := budget
	for k, i := range order {
		if claims[i] <= mulDiv(left, weights[i], weightLeft) {
			out[i] = claims[i]
			left -= claims[i]
			weightLeft -= weights[i]
			continue
		}
		// The water level is reached: every remaining claim is at least this one's
		// weighted part, so each gets exactly its weighted part of what is left.
		for _, j := range order[k:] {
			out[j] = mulDiv(left, weights[j], weightLeft)
		}
		break
	}
	return out
}

// claimFor returns what replicas consume per minute, rounded up to whole units and clipped
// to the budget (a claim beyond the budget cannot change any member's share).
func claimFor(replicas int32, perReplica dimension.Rates, budget PerDimension) PerDimension {
	var c PerDimension
	for d := range c {
		c[d] = min(ceilAmount(float64(replicas)*perReplica[d]), budget[d])
	}
	return c
}

// fitReplicas returns how many replicas fit in room in every dimension, the dimension that
// allows the fewest, and whether the count was raised from 0 to 1 because room holds part
// of a replica in every dimension (see Allocation.Partial).
func fitReplicas(room PerDimension, perReplica dimension.Rates) (int32, dimension.Dimension, bool) {
	best, binding := int64(math.MaxInt32), dimension.Requests
	positive := true
	for _, d := range dimension.All() {
		if perReplica[d] > 0 && room[d] <= 0 {
			positive = false
		}
		if n := replicasIn(room[d], perReplica[d]); n < best {
			best, binding = n, d
		}
	}
	if best == 0 && positive {
		return 1, binding, true
	}
	return int32(best), binding, false
}

// replicasIn returns the most replicas consuming perReplica each whose claim (claimFor) fits
// in amount, up to MaxInt32; a dimension a replica does not consume fits any number.
func replicasIn(amount int64, perReplica float64) int64 {
	if perReplica <= 0 {
		return math.MaxInt32
	}
	// Start from the float quotient, then settle on the largest n whose claim fits.
	// Float error is far below one replica, so each loop runs at most once or twice.
	fits := func(n int64) bool { return math.Ceil(float64(n)*perReplica) <= float64(amount) }
	n := int64(math.Min(float64(amount)/perReplica, math.MaxInt32))
	for n > 0 && !fits(n) {
		n--
	}
	for n < math.MaxInt32 && fits(n+1) {
		n++
	}
	return n
}

// ceilAmount rounds a per-minute amount up to whole units, saturating at MaxPerMinute.
func ceilAmount(x float64) int64 {
	if x >= float64(MaxPerMinute) {
		return MaxPerMinute
	}
	return int64(math.Ceil(x))
}

// mulDiv returns floor(a*b/c) for 0 <= a, 0 <= b <= c, exactly.
func mulDiv(a, b, c int64) int64 {
	if a < 0 || b < 0 || c <= 0 || b > c {
		return 0 // outside the contract; callers never get here
	}
	// b <= c keeps the quotient below a, so it fits and Div64 cannot overflow.
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	q, _ := bits.Div64(hi, lo, uint64(c))
	if q > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(q)
}

// cmpProducts compares a*b with c*d for non-negative operands, exactly.
func cmpProducts(a, b, c, d int64) int {
	if a < 0 || b < 0 || c < 0 || d < 0 {
		return cmp.Compare(a*b, c*d) // outside the contract; callers never get here
	}
	h1, l1 := bits.Mul64(uint64(a), uint64(b))
	h2, l2 := bits.Mul64(uint64(c), uint64(d))
	if h1 != h2 {
		return cmp.Compare(h1, h2)
	}
	return cmp.Compare(l1, l2)
}

func positiveFinite(x float64) bool {
	return x > 0 && !math.IsInf(x, 1)
}
