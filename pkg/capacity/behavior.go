package capacity

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// PolicyType says how a ScalingPolicy measures a step.
type PolicyType string

const (
	// PodsPolicy allows a change of Value replicas per period.
	PodsPolicy PolicyType = "Pods"
	// PercentPolicy allows a change of Value percent of the replicas at the start of the period.
	PercentPolicy PolicyType = "Percent"
)

// SelectPolicy says which policy wins when several apply, as in the HPA.
type SelectPolicy string

const (
	// SelectMax picks the policy that allows the largest change (the default).
	SelectMax SelectPolicy = "Max"
	// SelectMin picks the policy that allows the smallest change.
	SelectMin SelectPolicy = "Min"
	// SelectDisabled forbids any change in this direction.
	SelectDisabled SelectPolicy = "Disabled"
)

// MaxPolicyPeriod is the longest period a policy may look back over, as in the HPA.
const MaxPolicyPeriod = 30 * time.Minute

// MaxStabilizationWindow is the longest stabilization window, as in the HPA.
const MaxStabilizationWindow = time.Hour

// maxHistoryPoints bounds each list of a History so that it fits in an object's status.
const maxHistoryPoints = 64

// ScalingPolicy bounds how far replicas may move within one period.
type ScalingPolicy struct {
	// Type is Pods or Percent.
	Type PolicyType
	// Value is the number of pods or the percentage; positive.
	Value int32
	// Period is how far back the replicas at the start of the period are taken from.
	Period time.Duration
}

// ScalingRules shape movement in one direction.
type ScalingRules struct {
	// StabilizationWindow: scaling up follows the lowest recommendation in this window and
	// scaling down the highest, so short dips and spikes do not move replicas.
	StabilizationWindow time.Duration
	// SelectPolicy picks among Policies; empty means Max.
	SelectPolicy SelectPolicy
	// Policies bound each step; none means steps are unbounded.
	Policies []ScalingPolicy
}

// Behavior is the HPA-style behavior of one ClaudeCapacity.
type Behavior struct {
	ScaleUp   ScalingRules
	ScaleDown ScalingRules
}

// DefaultBehavior returns the behavior used when a ClaudeCapacity sets none.
//
// Scale-down is the HPA's default: a 300 s window, then any step. Scale-up has no window but
// is bounded to doubling or +4 pods (whichever is more) per 30 s, half the HPA's default pace,
// because Anthropic answers sharp rises in traffic with 429s below the limits (acceleration
// limits) and each replica adds up to mu requests per minute.
func DefaultBehavior() Behavior {
	return Behavior{
		ScaleUp: ScalingRules{
			SelectPolicy: SelectMax,
			Policies: []ScalingPolicy{
				{Type: PercentPolicy, Value: 100, Period: 30 * time.Second},
				{Type: PodsPolicy, Value: 4, Period: 30 * time.Second},
			},
		},
		ScaleDown: ScalingRules{
			StabilizationWindow: 300 * time.Second,
			SelectPolicy:        SelectMax,
			Policies:            []ScalingPolicy{{Type: PercentPolicy, Value: 100, Period: 15 * time.Second}},
		},
	}
}

// Validate reports the first malformed rule.
func (b Behavior) Validate() error {
	if err := b.ScaleUp.validate(); err != nil {
		return fmt.Errorf("scale-up: %w", err)
	}
	if err := b.ScaleDown.validate(); err != nil {
		return fmt.Errorf("scale-down: %w", err)
	}
	return nil
}

func (r ScalingRules) validate() error {
	if r.StabilizationWindow < 0 || r.StabilizationWindow > MaxStabilizationWindow {
		return fmt.Errorf("stabilization window %v is outside 0..%v", r.StabilizationWindow, MaxStabilizationWindow)
	}
	switch r.SelectPolicy {
	case "", SelectMax, SelectMin, SelectDisabled:
	default:
		return fmt.Errorf("unknown selectPolicy %q (want Max, Min or Disabled)", r.SelectPolicy)
	}
	for _, p := range r.Policies {
		if p.Type != PodsPolicy && p.Type != PercentPolicy {
			return fmt.Errorf("unknown policy type %q (want Pods or Percent)", p.Type)
		}
		if p.Value <= 0 {
			return fmt.Errorf("%s policy value %d is not positive", p.Type, p.Value)
		}
		if p.Period <= 0 || p.Period > MaxPolicyPeriod {
			return fmt.Errorf("%s policy period %v is outside (0, %v]", p.Type, p.Period, MaxPolicyPeriod)
		}
	}
	return nil
}

// ReplicaPoint is a replica count in force from Time until the next point of its list.
type ReplicaPoint struct {
	Time     time.Time `json:"time"`
	Replicas int32     `json:"replicas"`
}

// History is the memory behavior needs: recommendations for the stabilization windows and
// the target's replica counts for the policy periods. The caller stores it (in status) and
// passes it back, so an operator restart resumes where it stopped instead of scaling down at
// once. Each list holds at most 64 points.
type History struct {
	// Recommendations are past recommendations (the replicas wanted before behavior).
	Recommendations []ReplicaPoint `json:"recommendations,omitempty"`
	// Observed are the target's replica counts seen at past decisions.
	Observed []ReplicaPoint `json:"observed,omitempty"`
}

// Restraint says what in behavior kept desired replicas from the recommendation.
type Restraint string

const (
	// RestraintNone means behavior did not change the recommendation.
	RestraintNone Restraint = ""
	// RestraintScaleUpStabilized means a lower recommendation within the scale-up window held replicas down.
	RestraintScaleUpStabilized Restraint = "ScaleUpStabilized"
	// RestraintScaleDownStabilized means a higher recommendation within the scale-down window held replicas up.
	RestraintScaleDownStabilized Restraint = "ScaleDownStabilized"
	// RestraintScaleUpLimit means a scale-up policy bounded the step.
	RestraintScaleUpLimit Restraint = "ScaleUpLimit"
	// RestraintScaleDownLimit means a scale-down policy bounded the step.
	RestraintScaleDownLimit Restraint = "ScaleDownLimit"
	// RestraintScaleUpDisabled means scale-up is disabled.
	RestraintScaleUpDisabled Restraint = "ScaleUpDisabled"
	// RestraintScaleDownDisabled means scale-down is disabled.
	RestraintScaleDownDisabled Restraint = "ScaleDownDisabled"
	// RestraintWorkInFlight means in-flight jobs held replicas up.
	RestraintWorkInFlight Restraint = "WorkInFlight"
)

// paced is the outcome of applying behavior.
type paced struct {
	replicas  int32
	restraint Restraint
	// window is the stabilization window or the policy period that restrained.
	window time.Duration
}

// pace moves current toward recommendation under the behavior, HPA style: first
// stabilization (scale up to the lowest recommendation in the up window, down to the highest
// in the down window), then the policies of the direction of the move. history must already
// hold the recommendation and the current count at now.
func (b Behavior) pace(now time.Time, current, recommendation int32, h History) paced {
	up := extremeSince(h.Recommendations, now.Add(-b.ScaleUp.StabilizationWindow), current, recommendation, false)
	down := extremeSince(h.Recommendations, now.Add(-b.ScaleDown.StabilizationWindow), current, recommendation, true)
	out := paced{replicas: current}
	if out.replicas < up {
		out.replicas = up
	}
	if out.replicas > down {
		out.replicas = down
	}
	switch {
	case recommendation > current && out.replicas < recommendation:
		out.restraint, out.window = RestraintScaleUpStabilized, b.ScaleUp.StabilizationWindow
	case recommendation < current && out.replicas > recommendation:
		out.restraint, out.window = RestraintScaleDownStabilized, b.ScaleDown.StabilizationWindow
	}

	switch {
	case out.replicas > current:
		limit, period := b.ScaleUp.limit(now, current, h.Observed, true)
		if out.replicas > limit {
			out.replicas, out.window = limit, period
			out.restraint = RestraintScaleUpLimit
			if b.ScaleUp.SelectPolicy == SelectDisabled {
				out.restraint = RestraintScaleUpDisabled
			}
		}
	case out.replicas < current:
		limit, period := b.ScaleDown.limit(now, current, h.Observed, false)
		if out.replicas < limit {
			out.replicas, out.window = limit, period
			out.restraint = RestraintScaleDownLimit
			if b.ScaleDown.SelectPolicy == SelectDisabled {
				out.restraint = RestraintScaleDownDisabled
			}
		}
	}
	return out
}

// extremeSince returns the highest (or lowest) of recommendation, the recommendation in force
// at since and every later one. When the list does not reach back to since, the uncovered time counts as
// current: without evidence for the whole window, behavior holds.
func extremeSince(points []ReplicaPoint, since time.Time, current, recommendation int32, highest bool) int32 {
	pick := func(a, b int32) int32 {
		if highest {
			return max(a, b)
		}
		return min(a, b)
	}
	out := recommendation
	start := slices.IndexFunc(points, func(p ReplicaPoint) bool { return p.Time.After(since) })
	switch start {
	case -1:
		start = len(points) - 1 // every point is at or before since: the last one is in force
	case 0:
		out = pick(out, current) // the window starts before the first point
	default:
		start-- // the point before the first later one is in force at since
	}
	for _, p := range points[max(start, 0):] {
		out = pick(out, p.Replicas)
	}
	return out
}

// limit returns how far the policies let replicas move now, and the period of the policy
// that decided: the most replicas when up, the fewest when down. Max picks the policy that
// allows the largest change, Min the smallest, Disabled none. Each policy measures its step
// from the replicas at the start of its period. The limit never moves against the direction
// (an earlier step still in a period holds further ones), and up allows 1 from zero: Percent
// of zero is zero, yet a queue must be able to wake its workers.
func (r ScalingRules) limit(now time.Time, current int32, observed []ReplicaPoint, up bool) (int32, time.Duration) {
	if r.SelectPolicy == SelectDisabled {
		return current, 0
	}
	if len(r.Policies) == 0 {
		if up {
			return math.MaxInt32, 0
		}
		return 0, 0
	}
	var limit int32
	var period time.Duration
	for i, p := range r.Policies {
		v := p.step(replicasAt(observed, now.Add(-p.Period), current), up)
		wider := (v > limit) == up
		if r.SelectPolicy == SelectMin {
			wider = !wider
		}
		if i == 0 || (v != limit && wider) {
			limit, period = v, p.Period
		}
	}
	if up {
		return max(limit, current, 1), period
	}
	return min(limit, current), period
}

// step returns where the policy lets replicas go from start, up or down: Pods adds or takes
// Value; Percent multiplies by 1 + Value/100 rounded up, or 1 - Value/100 rounded down, as
// the HPA does.
func (p ScalingPolicy) step(start int32, up bool) int32 {
	s, v := float64(start), float64(p.Value)
	var to float64
	switch {
	case p.Type == PodsPolicy && up:
		to = s + v
	case p.Type == PodsPolicy:
		to = s - v
	case up:
		to = math.Ceil(s * (1 + v/100))
	default:
		to = math.Floor(s * (1 - v/100))
	}
	return int32(math.Max(0, math.Min(to, math.MaxInt32)))
}

// replicasAt returns the replica count in force at t: the last point at or before t, else the
// earliest known point, else current.
func replicasAt(points []ReplicaPoint, t time.Time, current int32) int32 {
	if len(points) == 0 {
		return current
	}
	i := slices.IndexFunc(points, func(p ReplicaPoint) bool { return p.Time.After(t) })
	switch i {
	case -1:
		return points[len(points)-1].Replicas
	case 0:
		return points[0].Replicas
	default:
		return points[i-1].Replicas
	}
}

// record returns the history with the recommendation and the current count at now added,
// points from the future dropped (a clock that moved back), and points older than the
// behavior can look back pruned.
func (h History) record(now time.Time, current, recommendation int32, b Behavior) (History, error) {
	recs, err := cleanPoints(h.Recommendations, now)
	if err != nil {
		return History{}, fmt.Errorf("recommendation history: %w", err)
	}
	seen, err := cleanPoints(h.Observed, now)
	if err != nil {
		return History{}, fmt.Errorf("observed replica history: %w", err)
	}
	window := max(b.ScaleUp.StabilizationWindow, b.ScaleDown.StabilizationWindow)
	var period time.Duration
	for _, p := range slices.Concat(b.ScaleUp.Policies, b.ScaleDown.Policies) {
		period = max(period, p.Period)
	}
	return History{
		Recommendations: compact(addPoint(recs, now, recommendation), now.Add(-window)),
		Observed:        compact(addPoint(seen, now, current), now.Add(-period)),
	}, nil
}

// applied records that replicas were set at now, so a policy period that starts after
// now measures its step from them: without it, a scale decided between two sparse
// decisions would still count as the count before it.
func (h History) applied(now time.Time, replicas int32, b Behavior) History {
	var period time.Duration
	for _, p := range slices.Concat(b.ScaleUp.Policies, b.ScaleDown.Policies) {
		period = max(period, p.Period)
	}
	h.Observed = compact(addPoint(slices.Clone(h.Observed), now, replicas), now.Add(-period))
	return h
}

// cleanPoints copies points sorted by time without those after now.
func cleanPoints(points []ReplicaPoint, now time.Time) ([]ReplicaPoint, error) {
	out := make([]ReplicaPoint, 0, len(points)+1)
	for _, p := range points {
		if p.Replicas < 0 {
			return nil, errors.New("negative replica count")
		}
		if !p.Time.After(now) {
			out = append(out, p)
		}
	}
	slices.SortStableFunc(out, func(a, b ReplicaPoint) int { return a.Time.Compare(b.Time) })
	return out, nil
}

// addPoint appends a point at now; a point already at now is replaced.
func addPoint(points []ReplicaPoint, now time.Time, replicas int32) []ReplicaPoint {
	if n := len(points); n > 0 && points[n-1].Time.Equal(now) {
		points = points[:n-1]
	}
	return append(points, ReplicaPoint{Time: now, Replicas: replicas})
}

// compact drops points no longer in force at cutoff, merges runs of equal counts (a step
// function loses nothing by that) and, past maxHistoryPoints, merges the oldest two points
// into the earlier time and the higher count: for recommendations that only ever holds
// replicas longer; for observed counts it only shifts a policy's period start by a step.
func compact(points []ReplicaPoint, cutoff time.Time) []ReplicaPoint {
	if i := slices.IndexFunc(points, func(p ReplicaPoint) bool { return p.Time.After(cutoff) }); i > 1 {
		points = points[i-1:]
	} else if i == -1 && len(points) > 1 {
		points = points[len(points)-1:]
	}
	out := make([]ReplicaPoint, 0, len(points))
	for _, p := range points {
		if n := len(out); n > 0 && out[n-1].Replicas == p.Replicas {
			continue
		}
		out = append(out, p)
	}
	for len(out) > maxHistoryPoints {
		out[1] = ReplicaPoint{Time: out[0].Time, Replicas: max(out[0].Replicas, out[1].Replicas)}
		out = out[1:]
	}
	return out
}
