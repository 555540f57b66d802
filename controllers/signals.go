package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	capacityv1alpha1 "github.com/claudecap/claudecap/api/v1alpha1"
	"github.com/claudecap/claudecap/pkg/capacity"
	"github.com/claudecap/claudecap/pkg/queue"
)

// maxSignalBackoff bounds the retry interval while the queue cannot be read.
const maxSignalBackoff = 30 * time.Second

// readSignals polls the queue once (through its source, see pkg/queue) and folds the sample
// into the arrival estimate. When the read fails, later steps hold the replicas as they
// are: missing data never scales anything down.
func (r *ClaudeCapacityReconciler) readSignals(ctx context.Context, s *scope) (ctrl.Result, error) {
	cc := s.cc
	q := cc.Spec.Queue
	if q == nil {
		setCondition(cc, capacityv1alpha1.ConditionSignalsAvailable, metav1.ConditionTrue, capacityv1alpha1.ReasonDeclaredTraffic,
			fmt.Sprintf("no queue is declared: demand follows the declared %d requests per minute", cc.Spec.Traffic.RequestsPerMinute))
		return ctrl.Result{}, nil
	}
	w := r.memory.get(client.ObjectKeyFromObject(cc))

	settings, err := queue.Resolve(ctx, q, r.secretsIn(cc.Namespace, w))
	if err != nil {
		reason := capacityv1alpha1.ReasonSignalsUnavailable
		if errors.Is(err, queue.ErrCredentials) {
			reason = capacityv1alpha1.ReasonSecretUnreadable
		}
		return r.signalsFailed(ctx, s, w, reason, err), nil
	}
	if w.source == nil || w.sourceSettings != settings {
		w.closeSource()
		source, err := settings.Open(queue.Env{Redis: r.Redis, Now: r.now})
		if err != nil {
			return r.signalsFailed(ctx, s, w, capacityv1alpha1.ReasonSignalsUnavailable, err), nil
		}
		w.source, w.sourceSettings = source, settings
	}
	sample, err := w.source.Poll(ctx)
	if err != nil {
		return r.signalsFailed(ctx, s, w, capacityv1alpha1.ReasonSignalsUnavailable, err), nil
	}

	if w.estimator == nil || w.generation != cc.Generation {
		// A new spec may declare new traffic: start again from it.
		w.estimator, err = capacity.NewArrivalEstimator(float64(cc.Spec.Traffic.RequestsPerMinute), 0)
		if err != nil {
			return ctrl.Result{}, err
		}
		w.generation = cc.Generation
	}
	if err := r.observeWork(ctx, s, w, &sample.QueueSample); err != nil {
		return ctrl.Result{}, fmt.Errorf("folding the queue sample into the estimates: %w", err)
	}
	s.sample, s.arrivals = &sample.QueueSample, w.estimator.Estimate()

	polled := metav1.NewTime(sample.Time)
	cc.Status.Queue = &capacityv1alpha1.QueueStatus{
		Depth:             sample.Backlog,
		InFlight:          sample.InFlight,
		ArrivalsPerMinute: int64(s.arrivals.PerMinute + 0.5),
		LastPollTime:      &polled,
	}
	if w.failures > 0 {
		eventf(ctx, r.Recorder, cc, nil, corev1.EventTypeNormal, capacityv1alpha1.EventSignalsRecovered, "ReadSignals",
			"queue signals are back after %d failed reads", w.failures)
	}
	w.failures, w.lastSignalError = 0, ""
	setCondition(cc, capacityv1alpha1.ConditionSignalsAvailable, metav1.ConditionTrue, capacityv1alpha1.ReasonQueueRead,
		fmt.Sprintf("%s: %d waiting, %d in flight, about %d arriving per minute",
			settings, sample.Backlog, sample.InFlight, cc.Status.Queue.ArrivalsPerMinute))
	return ctrl.Result{}, nil
}

// signalsFailed records a failed read: SignalsAvailable=False with the error (which never
// holds a credential), an event when the error is new, and a retry with backoff.
func (r *ClaudeCapacityReconciler) signalsFailed(ctx context.Context, s *scope, w *workloadMemory, reason string, err error) ctrl.Result {
	cc := s.cc
	s.signalsMissing = true
	w.failures++
	r.metrics.signalError(cc)
	msg := err.Error()
	setCondition(cc, capacityv1alpha1.ConditionSignalsAvailable, metav1.ConditionFalse, reason,
		msg+"; replicas are held until the queue can be read again")
	if msg != w.lastSignalError {
		eventf(ctx, r.Recorder, cc, nil, corev1.EventTypeWarning, capacityv1alpha1.EventSignalsLost, "ReadSignals", "%s", msg)
		w.lastSignalError = msg
	}
	backoff := pollInterval(cc) << min(w.failures-1, 5)
	return ctrl.Result{RequeueAfter: min(backoff, maxSignalBackoff)}
}
