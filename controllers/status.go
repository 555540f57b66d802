package controllers

import (
	"context"
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	capacityv1alpha1 "github.com/claudecap/claudecap/api/v1alpha1"
)

// readyInputs are the conditions Ready summarizes, in the order their failures are
// reported. A condition that a step has not set yet does not block Ready.
var readyInputs = []string{
	capacityv1alpha1.ConditionOrganizationBound,
	capacityv1alpha1.ConditionTargetFound,
	capacityv1alpha1.ConditionPlanFits,
	capacityv1alpha1.ConditionSignalsAvailable,
}

// setCondition sets one condition on the object's status with its current generation.
func setCondition(cc *capacityv1alpha1.ClaudeCapacity, condType string, status metav1.ConditionStatus, reason, message string) {
	meta.SetStatusCondition(&cc.Status.Conditions, metav1.Condition{
		Type:               condType,
		Status:             status,
		Reason:             reason,
		Message:            message,
		ObservedGeneration: cc.Generation,
	})
}

// summarizeReady sets Ready from the conditions that make it up: False with the first
// failing input's reason and every failing message, else True.
func summarizeReady(cc *capacityv1alpha1.ClaudeCapacity) {
	var reason string
	var problems []string
	for _, t := range readyInputs {
		c := meta.FindStatusCondition(cc.Status.Conditions, t)
		if c == nil || c.Status == metav1.ConditionTrue {
			continue
		}
		if reason == "" {
			reason = c.Reason
		}
		problems = append(problems, c.Message)
	}
	if reason != "" {
		setCondition(cc, capacityv1alpha1.ConditionReady, metav1.ConditionFalse, reason, strings.Join(problems, "; "))
		return
	}
	msg := "target found and plan fits the limits"
	if cc.Status.Plan != nil {
		msg = fmt.Sprintf("target found; declared traffic fits %s with %s binding", planTierWords(cc.Status.Plan), cc.Status.Plan.BindingDimension)
	}
	setCondition(cc, capacityv1alpha1.ConditionReady, metav1.ConditionTrue, capacityv1alpha1.ReasonReady, msg)
}

func planTierWords(p *capacityv1alpha1.PlanStatus) string {
	if p.SmallestTier == "" || p.SmallestTier == "custom" {
		return "custom limits"
	}
	return p.SmallestTier
}

// statusPatcher remembers the object as read and patches only the status difference
// once, at the end of a reconcile.
type statusPatcher struct {
	before *capacityv1alpha1.ClaudeCapacity
}

func newStatusPatcher(cc *capacityv1alpha1.ClaudeCapacity) *statusPatcher {
	return &statusPatcher{before: cc.DeepCopy()}
}

// statusHeartbeat bounds how stale the observation fields of status may get. A poll that
// changes only observations (queue depth, arrival estimate, observed usage, the numbers in
// condition messages, lastPollTime) is written at most this often; a change of replicas,
// demand, cap, limitedBy, allocation or of any condition's status or reason is written at
// once. Decisions always use the fresh numbers; this only spares the API server a write per
// workload per poll (500 workloads polled every 2 s would be 250 writes per second).
const statusHeartbeat = 30 * time.Second

// onlyObservationsChanged is true when the status differs from the stored one only in
// observation fields and the stored observations are younger than statusHeartbeat.
func (p *statusPatcher) onlyObservationsChanged(cc *capacityv1alpha1.ClaudeCapacity, now time.Time) bool {
	stored := p.before.Status.Queue
	if stored == nil || stored.LastPollTime == nil || now.Sub(stored.LastPollTime.Time) >= statusHeartbeat {
		return false
	}
	return equality.Semantic.DeepEqual(decisionFields(p.before.Status), decisionFields(cc.Status))
}

// decisionFields is the status without its observations: what must never be stale.
func decisionFields(status capacityv1alpha1.ClaudeCapacityStatus) capacityv1alpha1.ClaudeCapacityStatus {
	out := *status.DeepCopy()
	out.Queue, out.Observed = nil, nil
	for i := range out.Conditions {
		out.Conditions[i].Message = ""
	}
	return out
}

// patch writes the status difference, on condition that the object is still the version
// the reconcile read: a merge patch from an older version would write that version's
// values over newer ones (a reconcile that read its object from a cache lagging the previous
// reconcile's write once set demandReplicas back to 0). It reports whether it wrote.
func (p *statusPatcher) patch(ctx context.Context, c client.Client, cc *capacityv1alpha1.ClaudeCapacity, now time.Time) (bool, error) {
	if equality.Semantic.DeepEqual(p.before.Status, cc.Status) || p.onlyObservationsChanged(cc, now) {
		return false, nil
	}
	if err := c.Status().Patch(ctx, cc, client.MergeFromWithOptions(p.before, client.MergeFromWithOptimisticLock{})); err != nil {
		return false, client.IgnoreNotFound(fmt.Errorf("patching status of ClaudeCapacity %s/%s: %w", cc.Namespace, cc.Name, err))
	}
	return true, nil
}
