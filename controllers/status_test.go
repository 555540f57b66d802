package controllers

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	capacityv1alpha1 "github.com/claudecap/claudecap/api/v1alpha1"
	"github.com/claudecap/claudecap/pkg/capacity"
	"github.com/claudecap/claudecap/pkg/dimension"
)

func TestObservationOnlyChangesWaitForTheHeartbeat(t *testing.T) {
	polled := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	stored := &capacityv1alpha1.ClaudeCapacity{Status: capacityv1alpha1.ClaudeCapacityStatus{
		DesiredReplicas: 3,
		Queue:           &capacityv1alpha1.QueueStatus{Depth: 10, LastPollTime: &metav1.Time{Time: polled}},
		Conditions: []metav1.Condition{{Type: capacityv1alpha1.ConditionSignalsAvailable, Status: metav1.ConditionTrue,
			Reason: capacityv1alpha1.ReasonQueueRead, Message: "10 waiting"}},
	}}
	cases := []struct {
		name   string
		change func(*capacityv1alpha1.ClaudeCapacityStatus)
		after  time.Duration
		skip   bool
	}{
		{"queue depth and message within the heartbeat", func(s *capacityv1alpha1.ClaudeCapacityStatus) {
			s.Queue.Depth, s.Conditions[0].Message = 11, "11 waiting"
		}, 5 * time.Second, true},
		{"observed usage within the heartbeat", func(s *capacityv1alpha1.ClaudeCapacityStatus) {
			s.Observed = &capacityv1alpha1.ObservedStatus{RateLimitedRequests: 1}
		}, 5 * time.Second, true},
		{"queue depth after the heartbeat", func(s *capacityv1alpha1.ClaudeCapacityStatus) { s.Queue.Depth = 11 },
			statusHeartbeat, false},
		{"desired replicas", func(s *capacityv1alpha1.ClaudeCapacityStatus) { s.DesiredReplicas = 4 }, time.Second, false},
		{"a condition's status", func(s *capacityv1alpha1.ClaudeCapacityStatus) {
			s.Conditions[0].Status = metav1.ConditionFalse
		}, time.Second, false},
		{"a condition's reason", func(s *capacityv1alpha1.ClaudeCapacityStatus) {
			s.Conditions[0].Reason = capacityv1alpha1.ReasonSignalsUnavailable
		}, time.Second, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cc := stored.DeepCopy()
			tc.change(&cc.Status)
			p := newStatusPatcher(stored)
			if got := p.onlyObservationsChanged(cc, polled.Add(tc.after)); got != tc.skip {
				t.Fatalf("skip write = %v, want %v", got, tc.skip)
			}
		})
	}
}

// A reconcile that read its object from a cache lagging the previous reconcile's status
// write must not write the older version's values back: once, right after a scale-out,
// such a reconcile set demandReplicas and desiredReplicas back to 0 (one CI run in ten).
func TestStatusPatchFromAnOlderVersionWritesNothing(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	// No target: the controller's own reconciles never touch demandReplicas.
	cc := queued(ns, "workers", "127.0.0.1:1", "jobs")
	g.Expect(k8sClient.Create(ctx, cc)).To(Succeed())
	stale := getCC(g, cc)

	g.Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		newer := getCC(g, cc)
		newer.Status.DemandReplicas, newer.Status.DesiredReplicas = 11, 11
		return k8sClient.Status().Update(ctx, newer)
	})).To(Succeed())

	p := newStatusPatcher(stale)
	setCondition(stale, capacityv1alpha1.ConditionScalingLimited, metav1.ConditionFalse, capacityv1alpha1.ReasonDemandDecides, "decided on a stale read")
	wrote, err := p.patch(ctx, k8sClient, stale, time.Now())
	g.Expect(apierrors.IsConflict(err)).To(BeTrue(), "patch error: %v", err)
	g.Expect(wrote).To(BeFalse())
	got := getCC(g, cc)
	g.Expect(got.Status.DemandReplicas).To(Equal(int32(11)))
	g.Expect(got.Status.DesiredReplicas).To(Equal(int32(11)))
}

// The API's limitedBy enum and the decision's reasons are declared apart (the API package
// imports nothing of ours); this keeps them from drifting.
func TestDecisionReasonsAreAPIValues(t *testing.T) {
	pairs := map[capacity.LimitReason]capacityv1alpha1.LimitReason{
		capacity.LimitedByQueue:       capacityv1alpha1.LimitedByQueue,
		capacity.LimitedByPoolShare:   capacityv1alpha1.LimitedByPoolShare,
		capacity.LimitedByMaxReplicas: capacityv1alpha1.LimitedByMaxReplicas,
		capacity.LimitedByMinReplicas: capacityv1alpha1.LimitedByMinReplicas,

		capacity.LimitedByScaleUpPolicy:          capacityv1alpha1.LimitedByScaleUpPolicy,
		capacity.LimitedByScaleDownPolicy:        capacityv1alpha1.LimitedByScaleDownPolicy,
		capacity.LimitedByScaleUpStabilization:   capacityv1alpha1.LimitedByScaleUpStabilization,
		capacity.LimitedByScaleDownStabilization: capacityv1alpha1.LimitedByScaleDownStabilization,
		capacity.LimitedByWorkInFlight:           capacityv1alpha1.LimitedByWorkInFlight,
	}
	for decision, api := range pairs {
		if string(decision) != string(api) {
			t.Errorf("decision reason %q is written to status as %q", decision, api)
		}
	}
}

// The API declares a limitedBy constant per dimension; each must be the value the decision
// writes for that dimension (its table name), and every dimension must have one.
func TestDimensionReasonsAreAPIValues(t *testing.T) {
	api := map[dimension.Dimension]capacityv1alpha1.LimitReason{
		dimension.Requests:     capacityv1alpha1.LimitedByRequests,
		dimension.InputTokens:  capacityv1alpha1.LimitedByInputTokens,
		dimension.OutputTokens: capacityv1alpha1.LimitedByOutputTokens,
	}
	for _, d := range dimension.All() {
		v, ok := api[d]
		if !ok {
			t.Errorf("the API declares no limitedBy value for %s", d)
			continue
		}
		if want := capacity.LimitedByDimension(d); string(v) != string(want) {
			t.Errorf("%s: the API's limitedBy value %q, the decision writes %q", d, v, want)
		}
	}
}

// The scaling history lives in status, so it must survive what the API server stores: the
// API type's JSON, whose times have whole seconds. The history is kept small enough for it.
func TestHistorySurvivesTheStatus(t *testing.T) {
	g := NewWithT(t)
	start := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	var h capacity.History
	for i := range 40 {
		at := start.Add(time.Duration(i) * 1500 * time.Millisecond)
		h.Recommendations = append(h.Recommendations, capacity.ReplicaPoint{Time: at, Replicas: int32(i % 7)})
		h.Observed = append(h.Observed, capacity.ReplicaPoint{Time: at, Replicas: int32(i % 5)})
	}
	data, err := json.Marshal(capacityv1alpha1.ClaudeCapacityStatus{History: historyToStatus(h)})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(len(data)).To(BeNumerically("<", 4096), "history in status is %d bytes", len(data))
	var back capacityv1alpha1.ClaudeCapacityStatus
	g.Expect(json.Unmarshal(data, &back)).To(Succeed())
	got := historyFromStatus(back.History)
	g.Expect(got.Recommendations).To(HaveLen(len(h.Recommendations)))
	g.Expect(got.Observed).To(HaveLen(len(h.Observed)))
	for i, p := range h.Recommendations {
		g.Expect(got.Recommendations[i].Replicas).To(Equal(p.Replicas))
		g.Expect(got.Recommendations[i].Time).To(BeTemporally("==", p.Time.Truncate(time.Second)), "point %d", i)
		g.Expect(got.Observed[i].Replicas).To(Equal(h.Observed[i].Replicas))
	}
}
