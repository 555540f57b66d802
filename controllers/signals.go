package controllers

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	capacityv1alpha1 "github.com/claudecap/claudecap/api/v1alpha1"
	"github.com/claudecap/claudecap/pkg/capacity"
	"github.com/claudecap/claudecap/pkg/signals"
)

const (
	// passwordTTL is how long a Redis password read from a Secret is reused before the
	// Secret is read again; rotating it takes effect within this time.
	passwordTTL = 30 * time.Second
	// maxSignalBackoff bounds the retry interval while Redis is unreachable.
	maxSignalBackoff = 30 * time.Second
)

// readSignals polls the queue once (one pipelined Redis round trip) and folds the sample
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

	password, err := r.redisPassword(ctx, cc.Namespace, q.Redis.PasswordSecretRef, w)
	if err != nil {
		return r.signalsFailed(ctx, s, w, capacityv1alpha1.ReasonSecretUnreadable, err), nil
	}
	conn := signals.Connection{Address: q.Redis.Address, Password: password, TLS: q.Redis.TLS, Database: int(q.Redis.Database)}
	queue := signals.Queue{List: q.List, ProcessingList: q.ProcessingList, Stream: q.Stream, ConsumerGroup: q.ConsumerGroup}
	if w.reader == nil || w.readerConn != conn || w.readerQueue != queue {
		w.closeReader()
		reader, err := r.Signals.NewReader(conn, queue, signals.ReaderOptions{Now: r.now})
		if err != nil {
			return r.signalsFailed(ctx, s, w, capacityv1alpha1.ReasonSignalsUnavailable, err), nil
		}
		w.reader, w.readerConn, w.readerQueue = reader, conn, queue
	}
	sample, err := w.reader.Poll(ctx)
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
		fmt.Sprintf("%s on %s: %d waiting, %d in flight, about %d arriving per minute",
			queue, q.Redis.Address, sample.Backlog, sample.InFlight, cc.Status.Queue.ArrivalsPerMinute))
	return ctrl.Result{}, nil
}

// signalsFailed records a failed read: SignalsAvailable=False with the error (which never
// holds the password), an event when the error is new, and a retry with backoff.
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

// redisPassword reads the password from its Secret, reusing it for passwordTTL.
func (r *ClaudeCapacityReconciler) redisPassword(ctx context.Context, namespace string, ref *capacityv1alpha1.SecretKeyRef, w *workloadMemory) (string, error) {
	return readRedisPassword(ctx, r.APIReader, r.now(), &w.passwords, namespace, ref)
}

// readRedisPassword reads a Redis password from a Secret labelled for this use, reusing a
// value in cache for passwordTTL. Unlabelled Secrets are never read for their value.
func readRedisPassword(ctx context.Context, reader client.Reader, now time.Time, cache *map[capacityv1alpha1.SecretKeyRef]cachedPassword,
	namespace string, ref *capacityv1alpha1.SecretKeyRef) (string, error) {
	if ref == nil {
		return "", nil
	}
	if cached, ok := (*cache)[*ref]; ok && now.Sub(cached.read) < passwordTTL {
		return cached.value, nil
	}
	secret := &corev1.Secret{}
	if err := reader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: ref.Name}, secret); err != nil {
		return "", fmt.Errorf("reading the Redis password from Secret %s/%s: %w", namespace, ref.Name, err)
	}
	if secret.Labels[capacityv1alpha1.LabelRedisCredentials] != "true" {
		return "", fmt.Errorf("secret %s/%s is not labelled %s=true; only Secrets labelled for this use give a Redis password",
			namespace, ref.Name, capacityv1alpha1.LabelRedisCredentials)
	}
	value, ok := secret.Data[ref.Key]
	if !ok {
		return "", fmt.Errorf("secret %s/%s has no key %q for the Redis password", namespace, ref.Name, ref.Key)
	}
	if *cache == nil {
		*cache = map[capacityv1alpha1.SecretKeyRef]cachedPassword{}
	}
	(*cache)[*ref] = cachedPassword{value: string(value), read: now}
	return string(value), nil
}
