package controllers

import (
	"context"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	klabels "k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	capacityv1alpha1 "github.com/claudecap/claudecap/api/v1alpha1"
	"github.com/claudecap/claudecap/internal/specconv"
	"github.com/claudecap/claudecap/pkg/capacity"
	"github.com/claudecap/claudecap/pkg/dimension"
	"github.com/claudecap/claudecap/pkg/ratelimit"
)

// What both controllers agree on about organizations: who is a member of which pool, the
// pool's limits, the members' claims and priorities. The ClaudeCapacity controller uses it
// to compute its own share at once; the ClaudeOrganization controller, the only writer of
// an organization's pools, to write every member's allocation. Both compute the same split
// from the same inputs.

// orgIndexKey indexes ClaudeCapacities by the ClaudeOrganization they name.
const orgIndexKey = "spec.organizationRef.name"

// privatePoolOrganization is a private pool's organization part of its limiter keys:
// "<namespace>.<name>". Namespace names have no dots and organization names are DNS
// labels, so it never collides with an organization's pool or another private pool.
func privatePoolOrganization(namespace, name string) string {
	return namespace + "." + name
}

// poolKeyFor is the limiter pool a ClaudeCapacity draws from.
func poolKeyFor(cc *capacityv1alpha1.ClaudeCapacity, class capacity.ModelClass) ratelimit.PoolKey {
	if ref := cc.Spec.OrganizationRef; ref != nil {
		return ratelimit.PoolKey{Organization: ref.Name, Class: string(class)}
	}
	return ratelimit.PoolKey{Organization: privatePoolOrganization(cc.Namespace, cc.Name), Class: string(class)}
}

// orgPoolIndexValue is the pool index's value: "<organization>/<class>".
func orgPoolIndexValue(org string, class capacity.ModelClass) string {
	return org + "/" + string(class)
}

// namespaceSelected says whether the organization lets the namespace draw on it. No
// selector selects nothing: an administrator opts namespaces in.
func namespaceSelected(ctx context.Context, c client.Reader, org *capacityv1alpha1.ClaudeOrganization, namespace string) (bool, error) {
	if org.Spec.NamespaceSelector == nil {
		return false, nil
	}
	sel, err := metav1.LabelSelectorAsSelector(org.Spec.NamespaceSelector)
	if err != nil {
		return false, fmt.Errorf("ClaudeOrganization %s has an invalid namespaceSelector: %w", org.Name, err)
	}
	ns := &corev1.Namespace{}
	if err := c.Get(ctx, client.ObjectKey{Name: namespace}, ns); err != nil {
		return false, fmt.Errorf("reading namespace %s: %w", namespace, err)
	}
	return sel.Matches(klabels.Set(ns.Labels)), nil
}

// orgPlanLimits are the organization's declared limits for a model class, as the planner
// takes them: the tier's, overridden by the class's explicit values. Nil when the
// organization gives the class no limits.
func orgPlanLimits(org *capacityv1alpha1.ClaudeOrganization, class capacity.ModelClass) *capacity.PlanLimits {
	l := capacity.PlanLimits{Tier: string(org.Spec.Limits.Tier)}
	i := slices.IndexFunc(org.Spec.Limits.Classes, func(c capacityv1alpha1.ClassLimits) bool { return c.Class == string(class) })
	if i >= 0 {
		l.Explicit = capacity.TierLimits(specconv.ClassLimitAmounts(org.Spec.Limits.Classes[i]))
	}
	if l.Tier == "" && slices.Contains(l.Explicit[:], 0) {
		return nil
	}
	return &l
}

// adoptUpstream compares declared limits with those the API reported (0 = not reported):
// it returns the limits to act on (the reported ones where they differ, if adopt) and a
// phrase per differing dimension for LimitsDrift.
func adoptUpstream(declared, reported capacity.TierLimits, adopt bool) (capacity.TierLimits, []string) {
	effective := declared
	var diffs []string
	for _, d := range dimension.All() {
		seen := reported[d]
		if seen == 0 || seen == declared[d] {
			continue
		}
		diffs = append(diffs, fmt.Sprintf("%s %d/min (declared %d)", d.Words(), seen, declared[d]))
		if adopt {
			effective[d] = seen
		}
	}
	return effective, diffs
}

// priorityOf is the class a member is served in: its priorityClassName, else the
// organization's default, else the lowest class. known is false when the member names a
// class the organization does not declare (it is then served in the lowest).
func priorityOf(org *capacityv1alpha1.ClaudeOrganization, cc *capacityv1alpha1.ClaudeCapacity) (pc capacityv1alpha1.PriorityClass, known bool) {
	classes := org.Spec.PriorityClasses
	if len(classes) == 0 {
		return capacityv1alpha1.PriorityClass{}, cc.Spec.PriorityClassName == ""
	}
	find := func(name string) int {
		return slices.IndexFunc(classes, func(p capacityv1alpha1.PriorityClass) bool { return p.Name == name })
	}
	lowest := slices.MinFunc(classes, func(a, b capacityv1alpha1.PriorityClass) int { return int(a.Value) - int(b.Value) })
	if name := cc.Spec.PriorityClassName; name != "" {
		if i := find(name); i >= 0 {
			return classes[i], true
		}
		return lowest, false
	}
	if i := find(org.Spec.DefaultPriorityClassName); i >= 0 {
		return classes[i], true
	}
	return lowest, true
}

// reserveFor is what calls of a member in class pc leave in the bucket for higher classes:
// the largest reservePercent of any higher class, of each dimension of the budget.
func reserveFor(org *capacityv1alpha1.ClaudeOrganization, pc capacityv1alpha1.PriorityClass, budget capacity.PerDimension) (ratelimit.Limits, bool) {
	var pct int32
	for _, p := range org.Spec.PriorityClasses {
		if p.Value > pc.Value {
			pct = max(pct, p.ReservePercent)
		}
	}
	if pct == 0 {
		return ratelimit.Limits{}, false
	}
	var reserve capacity.PerDimension
	for d, v := range budget {
		reserve[d] = v * int64(pct) / 100
	}
	return ratelimit.LimitsOf(reserve), true
}

// orgMembers lists the ClaudeCapacities that draw on an organization's pool for one class
// (see filterMembers). The items are the cache's own objects: callers must not modify them.
func orgMembers(ctx context.Context, c client.Reader, org *capacityv1alpha1.ClaudeOrganization,
	class capacity.ModelClass) ([]capacityv1alpha1.ClaudeCapacity, error) {
	var list capacityv1alpha1.ClaudeCapacityList
	if err := c.List(ctx, &list, client.MatchingFields{poolIndexKey: orgPoolIndexValue(org.Name, class)}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing the members of %s/%s: %w", org.Name, class, err)
	}
	members, _, err := filterMembers(ctx, c, org, list.Items)
	return members, err
}

// secondAutoscaler is true for a ClaudeCapacity that found another autoscaler on its
// target: it never scales, so it must not claim a share.
func secondAutoscaler(cc *capacityv1alpha1.ClaudeCapacity) bool {
	c := meta.FindStatusCondition(cc.Status.Conditions, capacityv1alpha1.ConditionScalingActive)
	return c != nil && c.Status == metav1.ConditionFalse && c.Reason == capacityv1alpha1.ReasonAmbiguousAutoscaler
}

// memberClaim is a member's claim as of its last reconcile (its status): its demand, and
// its measured throughput and tokens per request where it has them, so that its claim in
// tokens is what its replicas really use. ok is false for a model the catalog lacks.
func memberClaim(catalog *capacity.Catalog, org *capacityv1alpha1.ClaudeOrganization, m *capacityv1alpha1.ClaudeCapacity) (capacity.Claim, bool) {
	model, err := catalog.Model(m.Spec.Model)
	if err != nil {
		return capacity.Claim{}, false
	}
	demand := capacity.Demand{
		Replicas:             m.Status.DemandReplicas,
		ThroughputPerReplica: float64(m.Spec.Worker.RequestsPerMinutePerReplica),
	}
	if o := m.Status.Observed; o != nil && o.PerReplicaRequestsPerMinute > 0 {
		demand.ThroughputPerReplica = float64(o.PerReplicaRequestsPerMinute)
	}
	c := newClaim(org, m, model, demand)
	c.Profile = observedRateProfile(c.Profile, m.Status.Observed)
	return c, true
}

// newClaim is a member's claim for the given demand, with its weight, bounds and, in an
// organization, its priority and guaranteed replicas.
func newClaim(org *capacityv1alpha1.ClaudeOrganization, cc *capacityv1alpha1.ClaudeCapacity, model capacity.Model, d capacity.Demand) capacity.Claim {
	c := capacity.NewClaim(workloadName(cc), cc.Spec.WeightOrDefault(), d,
		cc.Spec.Replicas.Min, cc.Spec.Replicas.Max, specconv.RequestProfile(cc.Spec.Traffic, model))
	if org != nil {
		pc, _ := priorityOf(org, cc)
		c.Priority = pc.Value
		c.GuaranteedReplicas = cc.Spec.GuaranteedReplicas
	}
	return c
}

// outputRuleOf is the limiters' mirror of the API's output accounting (an organization's or a private pool's).
func outputRuleOf(a capacityv1alpha1.OutputAccounting) ratelimit.OutputRule {
	if a == capacityv1alpha1.OutputAccountingReserved {
		return ratelimit.OutputReserved
	}
	return ratelimit.OutputProduced
}
