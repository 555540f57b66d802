package controllers

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	capacityv1alpha1 "github.com/claudecap/claudecap/api/v1alpha1"
	"github.com/claudecap/claudecap/internal/specconv"
	"github.com/claudecap/claudecap/pkg/capacity"
)

// decide computes demand, this workload's share of its pool, and the desired replicas
// (all in pkg/capacity), and records them in status. It changes nothing outside the object;
// the scale step applies the result.
func (r *ClaudeCapacityReconciler) decide(ctx context.Context, s *scope) (ctrl.Result, error) {
	cc := s.cc
	if s.target == nil {
		return ctrl.Result{}, nil
	}
	current := s.target.scale.Spec.Replicas
	cc.Status.DesiredReplicas = current
	if s.limits == (capacity.TierLimits{}) {
		s.hold(cc, "no limits are known for this workload (see OrganizationBound and PlanFits), so replicas are held at %d", current)
		return ctrl.Result{}, nil
	}
	if s.signalsMissing {
		s.hold(cc, "queue signals are unavailable (see SignalsAvailable), so replicas are held at %d and never scaled to zero on missing data", current)
		return ctrl.Result{}, nil
	}

	w := r.memory.get(client.ObjectKeyFromObject(cc))
	mu, measured, err := r.perReplicaThroughput(cc)
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("choosing the per-replica throughput: %w", err)
	}
	if measured && cc.Status.Observed != nil {
		cc.Status.Observed.PerReplicaRequestsPerMinute = int64(mu + 0.5)
	}
	demand, err := capacity.ComputeDemand(s.demandInput(mu))
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("computing demand: %w", err)
	}
	allocation, capCut, err := r.share(ctx, s, w, demand)
	if err != nil {
		return ctrl.Result{}, err
	}
	decision, err := capacity.Decide(capacity.DecisionInput{
		Now:             r.now(),
		CurrentReplicas: current,
		MinReplicas:     cc.Spec.Replicas.Min,
		MaxReplicas:     cc.Spec.Replicas.Max,
		Demand:          demand,
		Allocation:      allocation,
		Behavior:        specconv.Behavior(cc.Spec.Behavior),
		History:         historyFromStatus(cc.Status.History),
		CapCut:          capCut,
	})
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("deciding replicas: %w", err)
	}
	recordDecision(cc, demand, decision, allocation)
	s.decision = &decision
	r.metrics.observeDecision(cc, demand, decision, allocation)
	return ctrl.Result{}, nil
}

// share splits the pool's budget over its members (this workload's fresh demand, the others'
// from their status) and returns this workload's allocation and whether its cap may cut at
// once.
func (r *ClaudeCapacityReconciler) share(ctx context.Context, s *scope, w *workloadMemory,
	demand capacity.Demand) (capacity.Allocation, capacity.CapCut, error) {
	members, err := r.poolMembers(ctx, s)
	if err != nil {
		return capacity.Allocation{}, capacity.CapCutNone, err
	}
	pool, claims := r.poolClaims(s, members, demand)
	capCut := r.capCut(s, w, pool)
	pool.ExternalUsage = s.limiter.externalUsage(r.now())
	claims[0].Profile = observedProfile(claims[0].Profile, s.limiter)
	shares, err := capacity.FairShare(pool, claims)
	if err != nil {
		return capacity.Allocation{}, capacity.CapCutNone, fmt.Errorf("sharing the pool budget: %w", err)
	}
	s.shares = &shares
	return shares.Members[0], capCut, nil // this workload's claim is always the first
}

// recordDecision writes the decision to status and ScalingLimited.
func recordDecision(cc *capacityv1alpha1.ClaudeCapacity, demand capacity.Demand, decision capacity.Decision, allocation capacity.Allocation) {
	cc.Status.DemandReplicas = demand.Replicas
	cc.Status.CapReplicas = &decision.CapReplicas
	cc.Status.DesiredReplicas = decision.DesiredReplicas
	cc.Status.LimitedBy = capacityv1alpha1.LimitReason(decision.LimitedBy)
	cc.Status.History = historyToStatus(decision.History)
	alloc := rateStatus(limitsOf(allocationLimits(allocation)))
	cc.Status.Allocation = &alloc
	if decision.LimitedBy == capacity.LimitedByQueue {
		setCondition(cc, capacityv1alpha1.ConditionScalingLimited, metav1.ConditionFalse, capacityv1alpha1.ReasonDemandDecides, decision.Message)
	} else {
		setCondition(cc, capacityv1alpha1.ConditionScalingLimited, metav1.ConditionTrue, string(decision.LimitedBy), decision.Message)
	}
}

// capCut says whether the cap may cut replicas at once this poll: the API refused this
// workload's calls since the last poll, or the pool's limits times headroom fell since the
// last decision. Anything else that lowers the cap (the controller's own estimates, usage
// by others) follows the scale-down behavior.
func (r *ClaudeCapacityReconciler) capCut(s *scope, w *workloadMemory, pool capacity.Pool) capacity.CapCut {
	var base capacity.PerDimension
	for d := range base {
		base[d] = pool.Limits[d] * int64(pool.HeadroomPercent) / 100
	}
	prev := w.poolBase
	w.poolBase = base
	if s.upstreamRefusals > 0 {
		return capacity.CapCutUpstreamRefusals
	}
	for d := range base {
		if base[d] < prev[d] {
			return capacity.CapCutLimitLowered
		}
	}
	return capacity.CapCutNone
}

// demandInput is the queue as last read, or, for a workload without a queue, the declared
// traffic: then demand is the declared rate over mu, and never idle.
func (s *scope) demandInput(mu float64) capacity.DemandInput {
	in := capacity.DemandInput{ThroughputPerReplica: mu, DrainTime: s.cc.Spec.TargetDrain()}
	if s.sample == nil {
		declared := float64(s.cc.Spec.Traffic.RequestsPerMinute)
		in.Arrivals = capacity.ArrivalEstimate{PerMinute: declared, LastArrivals: max(1, int64(declared))}
		return in
	}
	in.Backlog, in.InFlight, in.Arrivals, in.Draining = s.sample.Backlog, s.sample.InFlight, s.arrivals, s.draining
	return in
}

// hold keeps the current replicas and says why in ScalingLimited.
func (s *scope) hold(cc *capacityv1alpha1.ClaudeCapacity, format string, args ...any) {
	s.held = true
	cc.Status.LimitedBy = capacityv1alpha1.LimitedByHeld
	setCondition(cc, capacityv1alpha1.ConditionScalingLimited, metav1.ConditionTrue, capacityv1alpha1.ReasonHeld, fmt.Sprintf(format, args...))
}

func historyFromStatus(h *capacityv1alpha1.ScalingHistory) capacity.History {
	if h == nil {
		return capacity.History{}
	}
	convert := func(points []capacityv1alpha1.ReplicaPoint) []capacity.ReplicaPoint {
		out := make([]capacity.ReplicaPoint, 0, len(points))
		for _, p := range points {
			out = append(out, capacity.ReplicaPoint{Time: p.Time.Time, Replicas: p.Replicas})
		}
		return out
	}
	return capacity.History{Recommendations: convert(h.Recommendations), Observed: convert(h.Observed)}
}

func historyToStatus(h capacity.History) *capacityv1alpha1.ScalingHistory {
	convert := func(points []capacity.ReplicaPoint) []capacityv1alpha1.ReplicaPoint {
		out := make([]capacityv1alpha1.ReplicaPoint, 0, len(points))
		for _, p := range points {
			out = append(out, capacityv1alpha1.ReplicaPoint{Time: metav1.NewTime(p.Time), Replicas: p.Replicas})
		}
		return out
	}
	return &capacityv1alpha1.ScalingHistory{Recommendations: convert(h.Recommendations), Observed: convert(h.Observed)}
}
