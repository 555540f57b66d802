package controllers

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"

	capacityv1alpha1 "github.com/claudecap/claudecap/api/v1alpha1"
)

// eventf records an event on obj and writes the same line to the log: events expire after
// an hour and are rate limited, the log is kept. related is the object acted on, if any.
func eventf(ctx context.Context, rec events.EventRecorder, obj, related runtime.Object, eventType, reason, action, format string, args ...any) {
	rec.Eventf(obj, related, eventType, reason, action, format, args...)
	log := ctrl.LoggerFrom(ctx).WithValues("reason", reason, "action", action)
	if eventType == corev1.EventTypeWarning {
		log = log.WithValues("type", corev1.EventTypeWarning)
	}
	log.Info(fmt.Sprintf(format, args...))
}

// logReconcile writes one line per reconcile at debug level (-zap-log-level=debug): what
// the controller saw and decided.
func logReconcile(ctx context.Context, cc *capacityv1alpha1.ClaudeCapacity, took time.Duration, err error) {
	log := ctrl.LoggerFrom(ctx).V(1)
	if !log.Enabled() {
		return
	}
	ready := "Unknown"
	if c := meta.FindStatusCondition(cc.Status.Conditions, capacityv1alpha1.ConditionReady); c != nil {
		ready = string(c.Status) + " (" + c.Reason + ")"
	}
	kv := []any{"replicas", cc.Status.Replicas, "desired", cc.Status.DesiredReplicas, "demand", cc.Status.DemandReplicas,
		"limitedBy", cc.Status.LimitedBy, "ready", ready, "took", took}
	if q := cc.Status.Queue; q != nil {
		kv = append(kv, "queue", q.Depth, "inFlight", q.InFlight)
	}
	if err != nil {
		kv = append(kv, "error", err.Error())
	}
	log.Info("reconciled", kv...)
}
