package controllers

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"

	capacityv1alpha1 "github.com/claudecap/claudecap/api/v1alpha1"
)

func captureLog(verbosity int) (context.Context, *[]string) {
	var lines []string
	log := funcr.New(func(prefix, args string) { lines = append(lines, args) }, funcr.Options{Verbosity: verbosity})
	return logr.NewContext(context.Background(), log), &lines
}

// Every event is also a log line: events expire, logs are kept.
func TestEventsAreAlsoLogLines(t *testing.T) {
	ctx, lines := captureLog(0)
	rec := events.NewFakeRecorder(1)
	cc := &capacityv1alpha1.ClaudeCapacity{ObjectMeta: metav1.ObjectMeta{Namespace: "ai", Name: "summarizer"}}
	eventf(ctx, rec, cc, nil, corev1.EventTypeWarning, capacityv1alpha1.EventSignalsLost, "ReadSignals", "redis %s is down", "10.0.0.1:6379")
	if got := <-rec.Events; !strings.Contains(got, "SignalsLost redis 10.0.0.1:6379 is down") {
		t.Errorf("event %q", got)
	}
	if len(*lines) != 1 || !strings.Contains((*lines)[0], `"msg"="redis 10.0.0.1:6379 is down"`) ||
		!strings.Contains((*lines)[0], `"reason"="SignalsLost"`) || !strings.Contains((*lines)[0], `"type"="Warning"`) {
		t.Errorf("log lines %q", *lines)
	}
}

// One summary line per reconcile, at debug level only.
func TestReconcileSummaryIsADebugLine(t *testing.T) {
	cc := &capacityv1alpha1.ClaudeCapacity{Status: capacityv1alpha1.ClaudeCapacityStatus{
		Replicas: 3, DesiredReplicas: 5, DemandReplicas: 7, LimitedBy: capacityv1alpha1.LimitedByOutputTokens,
		Queue: &capacityv1alpha1.QueueStatus{Depth: 40, InFlight: 3},
	}}
	ctx, lines := captureLog(0)
	logReconcile(ctx, cc, time.Millisecond, nil)
	if len(*lines) != 0 {
		t.Errorf("logged at info level: %q", *lines)
	}
	ctx, lines = captureLog(1)
	logReconcile(ctx, cc, time.Millisecond, errors.New("conflict"))
	if len(*lines) != 1 {
		t.Fatalf("lines %q", *lines)
	}
	for _, want := range []string{`"desired"=5`, `"demand"=7`, `"limitedBy"="OutputTokens"`, `"queue"=40`, `"error"="conflict"`} {
		if !strings.Contains((*lines)[0], want) {
			t.Errorf("summary %q lacks %s", (*lines)[0], want)
		}
	}
}
