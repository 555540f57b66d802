package capacity

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/claudecap/claudecap/pkg/dimension"
)

// LimitReason names the term that binds a ClaudeCapacity's recommendation (status.limitedBy).
type LimitReason string

const (
	// LimitedByQueue means the queue's demand is the recommendation: nothing else binds.
	LimitedByQueue LimitReason = "Queue"
	// A dimension's budget capping replicas below demand is named by the dimension:
	// LimitedByDimension(dimension.OutputTokens) is "OutputTokens".

	// LimitedByPoolShare means the budget would allow more, but other ClaudeCapacities of the
	// pool hold their fair shares of it.
	LimitedByPoolShare LimitReason = "PoolShare"
	// LimitedByMaxReplicas means spec.replicas.max is below what demand and cap allow.
	LimitedByMaxReplicas LimitReason = "MaxReplicas"
	// LimitedByMinReplicas means spec.replicas.min is above demand (or above the cap: see
	// Decision.AboveCap).
	LimitedByMinReplicas LimitReason = "MinReplicas"

	// The reasons below name behavior that held this poll's change short of the
	// recommendation; Decision.RecommendationLimitedBy still names what bounds the
	// recommendation itself.

	// LimitedByScaleUpPolicy means a scale-up policy (or disabled scale-up) bounds the step.
	LimitedByScaleUpPolicy LimitReason = "ScaleUpPolicy"
	// LimitedByScaleDownPolicy means a scale-down policy (or disabled scale-down) bounds the step.
	LimitedByScaleDownPolicy LimitReason = "ScaleDownPolicy"
	// LimitedByScaleUpStabilization means a lower recommendation in the scale-up window holds replicas down.
	LimitedByScaleUpStabilization LimitReason = "ScaleUpStabilization"
	// LimitedByScaleDownStabilization means a higher recommendation in the scale-down window holds replicas up.
	LimitedByScaleDownStabilization LimitReason = "ScaleDownStabilization"
	// LimitedByWorkInFlight means in-flight jobs hold replicas up.
	LimitedByWorkInFlight LimitReason = "WorkInFlight"
)

// CapCut says why the budget cap may cut replicas at once instead of at the scale-down
// pace. A cap that falls because the controller's own estimates moved (per-replica
// throughput, tokens per request, usage by others) is a recommendation like any other and
// follows the behavior: the shared limiter keeps the limits per call meanwhile, and an
// estimate that dips for a poll must not take the fleet with it.
type CapCut string

const (
	// CapCutNone means the cap follows the scale-down behavior.
	CapCutNone CapCut = ""
	// CapCutUpstreamRefusals means the API itself answered 429 or 529 to this workload, so the
	// fleet is past what the API gives and must shrink now.
	CapCutUpstreamRefusals CapCut = "UpstreamRefusals"
	// CapCutLimitLowered means the pool's declared limits or headroom went down.
	CapCutLimitLowered CapCut = "LimitLowered"
	// CapCutPoolShare means other workloads of the pool claim their weighted shares: a
	// member over its share would hold their budget for a whole scale-down window. Decide
	// sets it itself when the pool share binds.
	CapCutPoolShare CapCut = "PoolShare"
)

// restraintReasons maps what behavior did to the limitedBy value that names it.
var restraintReasons = map[Restraint]LimitReason{
	RestraintScaleUpLimit:        LimitedByScaleUpPolicy,
	RestraintScaleUpDisabled:     LimitedByScaleUpPolicy,
	RestraintScaleDownLimit:      LimitedByScaleDownPolicy,
	RestraintScaleDownDisabled:   LimitedByScaleDownPolicy,
	RestraintScaleUpStabilized:   LimitedByScaleUpStabilization,
	RestraintScaleDownStabilized: LimitedByScaleDownStabilization,
	RestraintWorkInFlight:        LimitedByWorkInFlight,
}

// DecisionInput is everything one scaling decision depends on. All of it is plain data the
// controller gathers; Decide reads no clock.
type DecisionInput struct {
	// Now is the time of the decision.
	Now time.Time
	// CurrentReplicas is the target's replica count (from its /scale subresource).
	CurrentReplicas int32
	// MinReplicas and MaxReplicas are spec.replicas.
	MinReplicas, MaxReplicas int32
	// Demand is this ClaudeCapacity's demand (ComputeDemand).
	Demand Demand
	// Allocation is this ClaudeCapacity's share of its pool (FairShare).
	Allocation Allocation
	// ConcurrencyPerReplica is how many jobs one replica works on at once; in-flight jobs
	// hold ceil(in-flight / concurrency) replicas against scale-down. 0 means 1.
	ConcurrencyPerReplica int32
	// Behavior shapes movement (DefaultBehavior when the spec sets none).
	Behavior Behavior
	// History is the previous decision's Decision.History, as stored in status.
	History History
	// CapCut, when set, lets the cap cut replicas at once; otherwise a cap below the
	// current replicas is reached at the scale-down pace.
	CapCut CapCut
}

// Decision is the outcome: what to set on /scale, and the why for status.
type Decision struct {
	// DesiredReplicas is what the target should have now.
	DesiredReplicas int32
	// RecommendedReplicas is clampReplicas(min(demand, cap), min, max), before behavior.
	RecommendedReplicas int32
	// DemandReplicas and CapReplicas are the two terms of the recommendation.
	DemandReplicas, CapReplicas int32
	// LimitedBy names what bounds this poll's change: the recommendation's binding term,
	// or the behavior that held replicas short of the recommendation.
	LimitedBy LimitReason
	// RecommendationLimitedBy names the term that binds the recommendation.
	RecommendationLimitedBy LimitReason
	// CutToCap is true when the cap cut replicas below what behavior allowed, which only
	// a CapCut permits.
	CutToCap bool
	// AboveCap is true when min replicas force more replicas than the budget cap; a
	// condition should say so, since the shared limiter then holds those pods back.
	AboveCap bool
	// Restraint says what kept DesiredReplicas from RecommendedReplicas, if anything.
	Restraint Restraint
	// Message explains the decision in a sentence with its numbers.
	Message string
	// History is the behavior memory to store and pass to the next decision.
	History History
}

// NewClaim returns the claim a ClaudeCapacity makes on its pool: its demand clamped to its
// replica bounds, since min replicas run whatever the queue says and max is all it can use.
func NewClaim(name string, weight int32, d Demand, minReplicas, maxReplicas int32, profile RequestProfile) Claim {
	return Claim{
		Name:                 name,
		Weight:               weight,
		Replicas:             clampReplicas(d.Replicas, minReplicas, maxReplicas),
		ThroughputPerReplica: d.ThroughputPerReplica,
		Profile:              profile,
	}
}

// Decide is the scaling rule. In order:
//
//  1. recommendation = clampReplicas(min(demand, cap), min, max); LimitedBy names the binding term.
//  2. Behavior, HPA style: stabilization windows, then the Pods/Percent policies of the
//     direction of the move (see Behavior).
//  3. In-flight work: a scale-down keeps at least min(current, ceil(in-flight/concurrency))
//     replicas. Together with demand >= 1 whenever anything is queued, in flight or
//     arriving, and the scale-down window, replicas reach zero only after the queue has been
//     idle for the whole window.
//  4. Max holds at once, whatever behavior says: it is the user's bound. The cap holds at
//     once only with a CapCut (the API refused calls, the pool's limits were lowered, or
//     the pool share binds: siblings claim their budget);
//     otherwise a falling cap is reached at the scale-down pace of step 2, while the
//     shared limiter keeps the limits per call. In-flight work ends under the pods'
//     normal graceful termination.
//  5. Never below min.
func Decide(in DecisionInput) (Decision, error) {
	if err := in.validate(); err != nil {
		return Decision{}, err
	}
	current, lo, hi := in.CurrentReplicas, in.MinReplicas, in.MaxReplicas
	demand, capReplicas := in.Demand.Replicas, in.Allocation.CapReplicas
	d := Decision{DemandReplicas: demand, CapReplicas: capReplicas}

	// 1. The recommendation and what binds it.
	d.RecommendedReplicas, d.LimitedBy = min(demand, capReplicas), LimitedByQueue
	if capReplicas < demand {
		d.LimitedBy = in.Allocation.CapReason()
	}
	switch {
	case d.RecommendedReplicas > hi:
		d.RecommendedReplicas, d.LimitedBy = hi, LimitedByMaxReplicas
	case d.RecommendedReplicas < lo:
		d.RecommendedReplicas, d.LimitedBy, d.AboveCap = lo, LimitedByMinReplicas, capReplicas < lo
	}
	rec := d.RecommendedReplicas

	// 2. Behavior.
	history, err := in.History.record(in.Now, current, rec, in.Behavior)
	if err != nil {
		return Decision{}, err
	}
	d.History = history
	p := in.Behavior.pace(in.Now, current, rec, history)

	// 3. In-flight work holds scale-down.
	if p.replicas < current && in.Demand.InFlight > 0 {
		busy := current
		jobs := ceilDiv(in.Demand.InFlight, int64(max(in.ConcurrencyPerReplica, 1)))
		if jobs >= 0 && jobs < int64(current) && jobs <= math.MaxInt32 {
			busy = int32(jobs)
		}
		if p.replicas < busy {
			p = paced{replicas: busy, restraint: RestraintWorkInFlight}
		}
	}

	// 4. and 5. Ceilings, then the floor.
	if in.CapCut == CapCutNone && in.Allocation.CapReason() == LimitedByPoolShare && capReplicas < current {
		in.CapCut = CapCutPoolShare
	}
	ceiling := hi
	if in.CapCut != CapCutNone {
		ceiling = clampReplicas(capReplicas, lo, hi)
	}
	d.DesiredReplicas = clampReplicas(min(p.replicas, ceiling), lo, hi)
	d.CutToCap = d.DesiredReplicas < p.replicas && in.CapCut != CapCutNone && ceiling < hi
	d.History = d.History.applied(in.Now, d.DesiredReplicas, in.Behavior)
	d.RecommendationLimitedBy = d.LimitedBy
	if d.DesiredReplicas != rec {
		d.Restraint = p.restraint
		if reason, ok := restraintReasons[d.Restraint]; ok {
			d.LimitedBy = reason
		}
	}
	d.Message = d.explain(in, p)
	return d, nil
}

func (in DecisionInput) validate() error {
	switch {
	case in.Now.IsZero():
		return errors.New("decision without a time")
	case in.MinReplicas < 0 || in.MaxReplicas < in.MinReplicas:
		return fmt.Errorf("replica bounds min %d, max %d: want 0 <= min <= max", in.MinReplicas, in.MaxReplicas)
	case in.CurrentReplicas < 0:
		return fmt.Errorf("negative current replicas %d", in.CurrentReplicas)
	case in.Demand.Replicas < 0 || in.Demand.InFlight < 0 || in.Demand.Backlog < 0:
		return fmt.Errorf("negative demand (replicas %d, backlog %d, in flight %d)",
			in.Demand.Replicas, in.Demand.Backlog, in.Demand.InFlight)
	case in.Allocation.CapReplicas < 0:
		return fmt.Errorf("negative cap %d", in.Allocation.CapReplicas)
	case in.ConcurrencyPerReplica < 0:
		return fmt.Errorf("negative concurrency per replica %d", in.ConcurrencyPerReplica)
	}
	if err := in.Behavior.Validate(); err != nil {
		return fmt.Errorf("behavior: %w", err)
	}
	return nil
}

// explain writes the decision's sentence: what binds the recommendation, then what in
// behavior, if anything, kept replicas elsewhere.
func (d Decision) explain(in DecisionInput, p paced) string {
	var b strings.Builder
	dem := in.Demand
	switch d.RecommendationLimitedBy {
	case LimitedByQueue:
		fmt.Fprintf(&b, "%s for the queue: %s", replicas(d.RecommendedReplicas), explainDemand(dem))
	case LimitedByMaxReplicas:
		fmt.Fprintf(&b, "at max %s; the queue wants %d", replicas(in.MaxReplicas), dem.Replicas)
	case LimitedByMinReplicas:
		fmt.Fprintf(&b, "at min %s; the queue wants %d", replicas(in.MinReplicas), dem.Replicas)
		if d.AboveCap {
			fmt.Fprintf(&b, ", above the budget cap of %d (%s)", d.CapReplicas, explainCap(in.Allocation))
		}
	default:
		fmt.Fprintf(&b, "capped at %s: %s; the queue wants %d", replicas(d.CapReplicas), explainCap(in.Allocation), dem.Replicas)
	}
	switch d.Restraint {
	case RestraintScaleUpStabilized:
		fmt.Fprintf(&b, "; scale-up held at %d, the lowest recommendation in the last %v", d.DesiredReplicas, p.window)
	case RestraintScaleDownStabilized:
		fmt.Fprintf(&b, "; scale-down held at %d, the highest recommendation in the last %v", d.DesiredReplicas, p.window)
	case RestraintScaleUpLimit:
		fmt.Fprintf(&b, "; scale-up limited to %d by policy over %v", d.DesiredReplicas, p.window)
	case RestraintScaleDownLimit:
		fmt.Fprintf(&b, "; scale-down limited to %d by policy over %v", d.DesiredReplicas, p.window)
	case RestraintScaleUpDisabled:
		fmt.Fprintf(&b, "; scale-up is disabled, holding %d", d.DesiredReplicas)
	case RestraintScaleDownDisabled:
		fmt.Fprintf(&b, "; scale-down is disabled, holding %d", d.DesiredReplicas)
	case RestraintWorkInFlight:
		fmt.Fprintf(&b, "; scale-down held at %d while %s jobs are in flight", d.DesiredReplicas, dimension.FormatCount(dem.InFlight))
	}
	if d.Restraint != RestraintNone && d.DesiredReplicas < p.replicas {
		fmt.Fprintf(&b, " (cut to the ceiling of %d)", d.DesiredReplicas)
	}
	if d.CutToCap {
		fmt.Fprintf(&b, "; cut to the cap at once, not at the scale-down pace, because %s", in.CapCut.because())
	}
	return b.String()
}

// explainDemand states the demand formula with its numbers.
func explainDemand(dem Demand) string {
	if dem.Idle {
		return "nothing queued, in flight or arriving"
	}
	s := fmt.Sprintf("%s arrivals/min + %s queued over %v = %s requests/min at %s per replica",
		formatRate(dem.ArrivalsPerMinute), dimension.FormatCount(dem.Backlog), dem.DrainTime,
		formatRate(dem.RequiredPerMinute), formatRate(dem.ThroughputPerReplica))
	if dem.InFlight > 0 {
		s += fmt.Sprintf(", %s in flight", dimension.FormatCount(dem.InFlight))
	}
	return s
}

// explainCap states the binding budget term, e.g. "output tokens 81,000/90,000 per minute
// at 90% headroom".
func explainCap(a Allocation) string {
	dim := a.Binding
	var s string
	if a.CapReason() == LimitedByPoolShare {
		s = fmt.Sprintf("pool share of %s %s of %s per minute at weight %d of %d", dim,
			dimension.FormatCount(a.Share[dim]+a.Headroom[dim]), dimension.FormatCount(a.Budget[dim]), a.Weight, a.PoolWeight)
	} else {
		s = fmt.Sprintf("%s %s/%s per minute at %d%% headroom", dim,
			dimension.FormatCount(a.Budget[dim]), dimension.FormatCount(a.Pool.Limits[dim]), a.Pool.HeadroomPercent)
		if ext := a.Pool.ExternalUsage[dim]; ext > 0 {
			s += fmt.Sprintf(" less %s used outside the pool", dimension.FormatCount(ext))
		}
	}
	if a.Partial {
		s += fmt.Sprintf(", less than the %s one replica uses, so the shared limiter paces it",
			formatRate(a.PerReplica[dim]))
	}
	return s
}

// ceilDiv returns ceil(a/b) for a >= 0, b > 0, without overflow.
func ceilDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 {
		q++
	}
	return q
}

// replicas writes a replica count with its noun: "1 replica", "12 replicas".
func replicas(n int32) string {
	if n == 1 {
		return "1 replica"
	}
	return fmt.Sprintf("%d replicas", n)
}

func clampReplicas(v, lo, hi int32) int32 {
	return max(lo, min(v, hi))
}

// formatRate writes a per-minute rate: whole numbers with separators, small ones with one
// decimal.
func formatRate(x float64) string {
	if x >= 100 || x == math.Trunc(x) {
		return dimension.FormatCount(int64(math.Round(x)))
	}
	return strconv.FormatFloat(x, 'f', 1, 64)
}

// because says in words why a cap cut at once.
func (c CapCut) because() string {
	switch c {
	case CapCutUpstreamRefusals:
		return "the API answered this workload's calls with 429 or 529"
	case CapCutLimitLowered:
		return "the pool's limits or headroom were lowered"
	case CapCutPoolShare:
		return "other workloads of the pool claim their weighted shares"
	default:
		return string(c)
	}
}
