package controllerbench

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	capacityv1alpha1 "github.com/claudecap/claudecap/api/v1alpha1"
	"github.com/claudecap/claudecap/internal/benchenv"
	"github.com/claudecap/claudecap/internal/testutil/redistest"
)

const (
	// minReactionTrials is the number of measured trials when -benchtime asks for fewer.
	minReactionTrials = 25
	// reactionBacklog is the jump: 600 jobs to drain in the default 120 s need 11 replicas
	// of 30 per minute, so the first poll that sees them always asks for more.
	reactionBacklog = 600
	// defaultPollInterval is spec.pollIntervalSeconds' default, which the benchmark keeps:
	// trials push at evenly spread phases of it.
	defaultPollInterval = 2 * time.Second
	// reactionTarget is the goal for the median.
	reactionTarget = 3 * time.Second
	// trialTimeout bounds one trial; a healthy one takes a few seconds.
	trialTimeout = 40 * time.Second
)

// BenchmarkReactionLatency measures, at default settings, the time from a backlog jump
// (one RPUSH of 600 jobs into the queue's Redis list) to the new replica count appearing in
// the Deployment's spec.replicas, as seen by a watch on the Deployment. Each trial uses a
// fresh Deployment (1 replica) and ClaudeCapacity, waits until the controller has polled the
// empty queue once, then pushes at a phase of the 2 s poll interval that is spread evenly
// over the trials. One unmeasured warm-up trial dials the shared Redis connection first.
//
// The baseline is computed, not measured: KEDA (pollingInterval 30 s) followed by the HPA
// it drives (sync period 15 s) reacts after U(0,30 s) + U(0,15 s), p50 22.5 s, p99 42 s;
// the HPA's sync alone, if KEDA's metric were always fresh, gives U(0,15 s), p50 7.5 s.
//
//	go test -run '^$' -bench ReactionLatency -benchtime 1x ./hack/bench/controller/
func BenchmarkReactionLatency(b *testing.B) {
	e := environment(b)
	srv := redistest.Start(b)
	mgr := startOperator(b, e)
	ns := e.newNamespace(b, "bench-reaction-")
	b.Cleanup(func() { e.deleteAll(b, ns) })
	trials := max(minReactionTrials, b.N)

	if _, err := runReactionTrial(e, srv, ns, "warmup", 0); err != nil {
		b.Fatalf("warm-up trial: %v\n%s", err, mgr.logTail())
	}
	latencies := make([]time.Duration, 0, trials)
	steps := map[string]int{}
	for i := range trials {
		phase := time.Duration((float64(i) + 0.5) / float64(trials) * float64(defaultPollInterval))
		trial, err := runReactionTrial(e, srv, ns, fmt.Sprintf("trial-%03d", i), phase)
		if err != nil {
			b.Fatalf("trial %d: %v\n%s", i, err, mgr.logTail())
		}
		latencies = append(latencies, trial.latency)
		steps[fmt.Sprintf("%d->%d", trial.from, trial.to)]++
	}
	mgr.alive(b)
	reportReaction(b, latencies, steps)
}

// reactionTrial is the outcome of one trial: how long until the Deployment's replicas
// changed, and from what to what.
type reactionTrial struct {
	latency  time.Duration
	from, to int32
}

// replicaChange is a watch event on the trial's Deployment, stamped on arrival.
type replicaChange struct {
	at       time.Time
	replicas int32
}

func runReactionTrial(e *benchEnv, srv *redistest.Server, ns, name string, phase time.Duration) (reactionTrial, error) {
	ctx, cancel := context.WithTimeout(context.Background(), trialTimeout)
	defer cancel()
	const initial = 1
	dep := workerDeployment(ns, name, initial)
	if err := e.client.Create(ctx, dep); err != nil {
		return reactionTrial{}, fmt.Errorf("creating the Deployment: %w", err)
	}
	defer deleteQuietly(e.client, dep)
	changes, stopWatch, err := watchReplicas(ctx, e.client, dep)
	if err != nil {
		return reactionTrial{}, err
	}
	defer stopWatch()
	cc := defaultCapacity(ns, name, srv.Addr())
	if err := e.client.Create(ctx, cc); err != nil {
		return reactionTrial{}, fmt.Errorf("creating the ClaudeCapacity: %w", err)
	}
	defer deleteQuietly(e.client, cc)
	if err := waitFirstPoll(ctx, e.client, cc); err != nil {
		return reactionTrial{}, err
	}

	time.Sleep(phase)
	jobs := make([]any, reactionBacklog)
	for i := range jobs {
		jobs[i] = "job"
	}
	pushed := time.Now()
	if err := srv.Client().RPush(ctx, queueList(name), jobs...).Err(); err != nil {
		return reactionTrial{}, fmt.Errorf("pushing the backlog: %w", err)
	}
	defer func() { _ = srv.Client().Del(context.Background(), queueList(name)).Err() }() // the server is per benchmark
	for {
		select {
		case c, ok := <-changes:
			if !ok {
				return reactionTrial{}, errors.New("the watch on the Deployment ended early")
			}
			if c.at.Before(pushed) {
				if c.replicas != initial {
					return reactionTrial{}, fmt.Errorf("the controller changed replicas to %d before the backlog moved", c.replicas)
				}
				continue
			}
			if c.replicas > initial {
				return reactionTrial{latency: c.at.Sub(pushed), from: initial, to: c.replicas}, nil
			}
		case <-ctx.Done():
			return reactionTrial{}, fmt.Errorf("replicas did not rise within %s of the backlog jump", trialTimeout)
		}
	}
}

// watchReplicas streams spec.replicas of dep from its creation on, each change stamped
// when the watch delivered it.
func watchReplicas(ctx context.Context, c client.WithWatch, dep *appsv1.Deployment) (<-chan replicaChange, func(), error) {
	w, err := c.Watch(ctx, &appsv1.DeploymentList{}, client.InNamespace(dep.Namespace), &client.ListOptions{Raw: &metav1.ListOptions{
		FieldSelector:   "metadata.name=" + dep.Name,
		ResourceVersion: dep.ResourceVersion,
	}})
	if err != nil {
		return nil, nil, fmt.Errorf("watching Deployment %s: %w", dep.Name, err)
	}
	out := make(chan replicaChange, 64)
	go func() {
		defer close(out)
		for ev := range w.ResultChan() {
			at := time.Now()
			d, ok := ev.Object.(*appsv1.Deployment)
			if !ok {
				continue // a watch error status; the trial's timeout reports it
			}
			select {
			case out <- replicaChange{at: at, replicas: ptr.Deref(d.Spec.Replicas, 1)}:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, w.Stop, nil
}

// waitFirstPoll waits until the controller has read the (empty) queue once: from then on
// its arrival estimate has a baseline, and the next poll is the one that sees the jump.
func waitFirstPoll(ctx context.Context, c client.Client, cc *capacityv1alpha1.ClaudeCapacity) error {
	got := &capacityv1alpha1.ClaudeCapacity{}
	for {
		if err := c.Get(ctx, client.ObjectKeyFromObject(cc), got); err != nil {
			return fmt.Errorf("reading the ClaudeCapacity: %w", err)
		}
		if got.Status.Queue != nil && got.Status.Queue.LastPollTime != nil &&
			meta.IsStatusConditionTrue(got.Status.Conditions, capacityv1alpha1.ConditionSignalsAvailable) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the controller did not poll the queue of %s: last conditions %v", cc.Name, got.Status.Conditions)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func deleteQuietly(c client.Client, obj client.Object) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Delete(ctx, obj); err != nil && !apierrors.IsNotFound(err) {
		fmt.Printf("cleanup: deleting %s: %v\n", obj.GetName(), err)
	}
}

func reportReaction(b *testing.B, latencies []time.Duration, steps map[string]int) {
	p50, p90, p99 := percentile(latencies, 50), percentile(latencies, 90), percentile(latencies, 99)
	slowest, fastest := percentile(latencies, 100), percentile(latencies, 0)
	kedaP50, kedaP99 := uniformSumQuantile(kedaPollingInterval, hpaSyncPeriod, 0.5), uniformSumQuantile(kedaPollingInterval, hpaSyncPeriod, 0.99)
	hpaP50, hpaP99 := uniformSumQuantile(hpaSyncPeriod, 0, 0.5), uniformSumQuantile(hpaSyncPeriod, 0, 0.99)

	b.ReportMetric(0, "ns/op") // one op is the whole run; the latencies below are the result
	b.ReportMetric(float64(len(latencies)), "trials")
	b.ReportMetric(p50.Seconds(), "p50-s")
	b.ReportMetric(p90.Seconds(), "p90-s")
	b.ReportMetric(p99.Seconds(), "p99-s")
	b.ReportMetric(slowest.Seconds(), "max-s")
	b.ReportMetric(p50.Seconds()/kedaP50.Seconds(), "p50/keda-model-p50")
	b.ReportMetric(p99.Seconds()/kedaP99.Seconds(), "p99/keda-model-p99")
	b.ReportMetric(p50.Seconds()/reactionTarget.Seconds(), "p50/target")

	var sb strings.Builder
	fmt.Fprintf(&sb, "reaction latency, backlog jump of %d jobs -> Deployment spec.replicas (watch), default settings, %d trials:\n",
		reactionBacklog, len(latencies))
	fmt.Fprintf(&sb, "  measured (claudecap):          min %6.3fs  p50 %6.3fs  p90 %6.3fs  p99 %6.3fs  max %6.3fs  first steps %v\n",
		fastest.Seconds(), p50.Seconds(), p90.Seconds(), p99.Seconds(), slowest.Seconds(), steps)
	fmt.Fprintf(&sb, "  computed, KEDA 30s poll + HPA 15s sync (not measured): p50 %5.1fs  p99 %5.1fs  max %5.1fs  -> ours/baseline p50 %.3f, p99 %.3f\n",
		kedaP50.Seconds(), kedaP99.Seconds(), (kedaPollingInterval + hpaSyncPeriod).Seconds(),
		p50.Seconds()/kedaP50.Seconds(), p99.Seconds()/kedaP99.Seconds())
	fmt.Fprintf(&sb, "  computed, HPA 15s sync alone (not measured):            p50 %5.1fs  p99 %5.1fs  max %5.1fs  -> ours/baseline p50 %.3f, p99 %.3f\n",
		hpaP50.Seconds(), hpaP99.Seconds(), hpaSyncPeriod.Seconds(), p50.Seconds()/hpaP50.Seconds(), p99.Seconds()/hpaP99.Seconds())
	fmt.Fprintf(&sb, "  target p50 <= %s: %s; load average %s", reactionTarget, verdict(p50 <= reactionTarget), benchenv.LoadAverage())
	b.Log(sb.String())
}
