package controllerbench

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	capacityv1alpha1 "github.com/claudecap/claudecap/api/v1alpha1"
	"github.com/claudecap/claudecap/internal/benchenv"
	"github.com/claudecap/claudecap/internal/testutil/redistest"
)

const (
	// fleetSize is the scale goal: one manager, 500 ClaudeCapacities.
	fleetSize = 500
	// fleetPools is how many budget pools (organizations) the fleet is split over.
	fleetPools = 5
	// fleetWindow is how long the fleet polls between the two measurements.
	fleetWindow = 30 * time.Second
	// fleetReadyTimeout bounds the wait for every ClaudeCapacity to be Ready and polled.
	fleetReadyTimeout = 150 * time.Second
	// fleetCreators is how many goroutines create the fleet's objects.
	fleetCreators = 8
	// rssTarget is the memory goal for the manager with 500 ClaudeCapacities.
	rssTarget = 150 << 20
	// controllerName is the name the controller registers, which labels its metrics.
	controllerName = "claudecapacity"
)

// BenchmarkManyClaudeCapacities runs one manager process with 500 ClaudeCapacities at
// default settings, each with its own Deployment and its own Redis list on one shared
// redis-server, split over 5 pools of 100. Once all are Ready and polled it measures a
// 30 s window:
//
//   - reconciles per second, from controller_runtime_reconcile_total on the manager's
//     metrics endpoint, and polls per second, from the server's EXEC count (a poll is
//     MULTI, LLEN, LLEN, EXEC sent as one pipeline);
//   - Redis round trips per poll: read events the server processed (INFO stats
//     total_reads_processed) per poll, the benchmark's own INFO read subtracted; and
//     commands per poll from INFO commandstats;
//   - the manager's VmRSS and VmHWM from /proc/<pid>/status at the end of the window,
//     against the same process's RSS before the fleet existed (the baseline of this run)
//     and the 150 MiB target.
//
// Run it with:
//
//	go test -run '^$' -bench ManyClaudeCapacities -benchtime 1x ./hack/bench/controller/
func BenchmarkManyClaudeCapacities(b *testing.B) {
	e := environment(b)
	queues, limiter := redistest.Start(b), redistest.Start(b)
	mgr := startOperator(b, e)
	ns := e.newNamespace(b, "bench-fleet-")
	b.Cleanup(func() { e.deleteAll(b, ns) })
	ctx := context.Background()

	// The baseline: the same process with its caches synced and nothing to manage.
	time.Sleep(3 * time.Second)
	idle, err := readProcessMemory(mgr.pid())
	if err != nil {
		b.Fatal(err)
	}

	seedQueues(b, queues)
	created := time.Now()
	createFleet(b, e, ns, queues.Addr(), limiter.Addr())
	createTime := time.Since(created)
	waitFleetReady(b, e, mgr, ns)
	readyTime := time.Since(created)

	before := takeSnapshot(ctx, b, e, mgr, queues.Client(), limiter.Client())
	time.Sleep(fleetWindow)
	mgr.alive(b)
	after := takeSnapshot(ctx, b, e, mgr, queues.Client(), limiter.Client())
	// Measured; stop the manager before the cleanup deletes a thousand objects under it.
	mgr.stop(b)

	reportFleet(b, fleetReport{
		idle: idle, before: before, after: after,
		createTime: createTime, readyTime: readyTime, ownProcess: mgr.ownProcess(),
	})
}

// fleetName is the name of the i-th workload's Deployment and ClaudeCapacity.
func fleetName(i int) string { return fmt.Sprintf("fleet-%03d", i) }

// seedQueues gives every workload a steady backlog (0 to 120 jobs) and some work in
// flight, so that demand, pool shares and replicas differ between workloads.
func seedQueues(b *testing.B, srv *redistest.Server) {
	ctx := context.Background()
	_, err := srv.Client().Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range fleetSize {
			for range 30 * (i % 5) {
				p.RPush(ctx, queueList(fleetName(i)), "job")
			}
			for range i % 3 {
				p.RPush(ctx, queueList(fleetName(i))+":processing", "job")
			}
		}
		return nil
	})
	if err != nil {
		b.Fatalf("seeding the queues: %v", err)
	}
}

// fleetPoolName names the fleet's i-th organization.
func fleetPoolName(i int) string { return fmt.Sprintf("fleet-pool-%d", i) }

// createFleet creates the fleet's organizations and every workload's Deployment and ClaudeCapacity. The queues live on
// one shared server and the limiter state (spec.limiter.redis) on another, also shared:
// by default both are the queue's server, and splitting them only lets the benchmark
// count the queue polls' round trips apart from the limiter's.
func createFleet(b *testing.B, e *benchEnv, ns, queueAddr, limiterAddr string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := e.labelNamespace(ctx, ns, fleetLabel, "true"); err != nil {
		b.Fatal(err)
	}
	for i := range fleetPools {
		org := fleetOrganization(fleetPoolName(i), limiterAddr)
		if err := e.client.Create(ctx, org); err != nil {
			b.Fatalf("creating ClaudeOrganization %s: %v", org.Name, err)
		}
		b.Cleanup(func() { deleteQuietly(e.client, org) })
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, fleetCreators)
	for range fleetCreators {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < fleetSize; i = int(next.Add(1) - 1) {
				name := fleetName(i)
				if err := e.client.Create(ctx, workerDeployment(ns, name, 1)); err != nil {
					errs <- fmt.Errorf("creating Deployment %s: %w", name, err)
					return
				}
				cc := defaultCapacity(ns, name, queueAddr)
				cc.Spec.Limits, cc.Spec.Limiter = nil, nil
				cc.Spec.OrganizationRef = &capacityv1alpha1.OrganizationRef{Name: fleetPoolName(i % fleetPools)}
				if err := e.client.Create(ctx, cc); err != nil {
					errs <- fmt.Errorf("creating ClaudeCapacity %s: %w", name, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

// waitFleetReady waits until every ClaudeCapacity is Ready and has polled its queue.
func waitFleetReady(b *testing.B, e *benchEnv, mgr operator, ns string) {
	ctx, cancel := context.WithTimeout(context.Background(), fleetReadyTimeout)
	defer cancel()
	for {
		var list capacityv1alpha1.ClaudeCapacityList
		if err := e.client.List(ctx, &list, client.InNamespace(ns)); err != nil {
			b.Fatalf("listing the fleet: %v", err)
		}
		ready := 0
		var notReady string
		for i := range list.Items {
			cc := &list.Items[i]
			if meta.IsStatusConditionTrue(cc.Status.Conditions, capacityv1alpha1.ConditionReady) &&
				cc.Status.Queue != nil && cc.Status.Queue.LastPollTime != nil {
				ready++
			} else if c := meta.FindStatusCondition(cc.Status.Conditions, capacityv1alpha1.ConditionReady); c != nil {
				notReady = cc.Name + ": " + c.Message
			}
		}
		if ready == fleetSize {
			return
		}
		mgr.alive(b)
		select {
		case <-ctx.Done():
			b.Fatalf("%d of %d ClaudeCapacities Ready after %s (e.g. %s)\n%s", ready, fleetSize, fleetReadyTimeout, notReady, mgr.logTail())
		case <-time.After(2 * time.Second):
		}
	}
}

// fleetSnapshot is one reading of everything the fleet benchmark compares.
type fleetSnapshot struct {
	at             time.Time
	metrics        metricFamilies
	apiserver      metricFamilies
	queue, limiter redisCounters
	memory         processMemory
	// children is the CPU seconds of the benchmark's child processes by command.
	children map[string]float64
}

func takeSnapshot(ctx context.Context, b *testing.B, e *benchEnv, mgr operator, queues, limiter *redis.Client) fleetSnapshot {
	s := fleetSnapshot{at: time.Now(), children: childCPU()}
	var err error
	if s.queue, err = readRedisCounters(ctx, queues); err != nil {
		b.Fatal(err)
	}
	if s.limiter, err = readRedisCounters(ctx, limiter); err != nil {
		b.Fatal(err)
	}
	if s.metrics, err = mgr.scrape(); err != nil {
		b.Fatalf("scraping the manager: %v", err)
	}
	if s.apiserver, err = e.apiserverMetrics(ctx); err != nil {
		b.Fatalf("scraping the API server: %v", err)
	}
	if s.memory, err = readProcessMemory(mgr.pid()); err != nil {
		b.Fatal(err)
	}
	return s
}

type fleetReport struct {
	idle                  processMemory
	before, after         fleetSnapshot
	createTime, readyTime time.Duration
	// ownProcess is false when the manager ran inside the benchmark's process.
	ownProcess bool
}

// fleetFigures are the numbers derived from two snapshots.
type fleetFigures struct {
	seconds                     float64
	reconciles, reconcileErrors float64
	// polls are queue polls (EXEC on the queue server); the round trips are the server's
	// read events less the benchmark's own INFO.
	polls, queueCommands               int64
	queueRoundTrips, limiterRoundTrips int64
	queueCalls, limiterCalls           map[string]int64
	reconcileMean, queueWaitMean       time.Duration
	cpuCores                           float64
	apiRequests                        map[string]float64
	apiLatency                         []string
	// childCores is the CPU the benchmark's child processes used, by command.
	childCores []string
}

// apiCalls are the API server requests the controller makes per reconcile, whose
// server-side latency the report shows.
var apiCalls = []struct{ verb, resource, subresource string }{
	{"GET", "deployments", "scale"},
	{"PATCH", "claudecapacities", "status"},
	{"PUT", "deployments", "scale"},
}

func (r fleetReport) figures() fleetFigures {
	before, after := r.before, r.after
	f := fleetFigures{seconds: after.at.Sub(before.at).Seconds(), apiRequests: map[string]float64{}}
	ours := map[string]string{"controller": controllerName}
	f.reconciles = after.metrics.sum("controller_runtime_reconcile_total", ours) - before.metrics.sum("controller_runtime_reconcile_total", ours)
	errored := map[string]string{"controller": controllerName, "result": "error"}
	f.reconcileErrors = after.metrics.sum("controller_runtime_reconcile_total", errored) - before.metrics.sum("controller_runtime_reconcile_total", errored)

	// The benchmark's own INFO on each server: the later one's read is in the difference
	// (the server counts a read before it runs the command), so one read comes off.
	queue, limiter := after.queue.since(before.queue), after.limiter.since(before.limiter)
	f.queueCalls, f.limiterCalls = withoutInfo(queue.Calls), withoutInfo(limiter.Calls)
	f.polls = queue.Calls["exec"]
	for _, n := range f.queueCalls {
		f.queueCommands += n
	}
	f.queueRoundTrips, f.limiterRoundTrips = queue.Reads-1, limiter.Reads-1

	f.reconcileMean = meanDelta(before.metrics, after.metrics, "claudecap_reconcile_duration_seconds", nil)
	f.queueWaitMean = meanDelta(before.metrics, after.metrics, "workqueue_queue_duration_seconds", map[string]string{"name": controllerName})
	f.cpuCores = (after.metrics.sum("process_cpu_seconds_total", nil) - before.metrics.sum("process_cpu_seconds_total", nil)) / f.seconds
	beforeAPI := before.metrics.byLabel("rest_client_requests_total", "method", nil)
	for method, n := range after.metrics.byLabel("rest_client_requests_total", "method", nil) {
		if d := n - beforeAPI[method]; d > 0 {
			f.apiRequests[method] = d
		}
	}
	for _, command := range slices.Sorted(maps.Keys(after.children)) {
		f.childCores = append(f.childCores, fmt.Sprintf("%s %.2f", command, (after.children[command]-before.children[command])/f.seconds))
	}
	for _, c := range apiCalls {
		match := map[string]string{"verb": c.verb, "resource": c.resource, "subresource": c.subresource}
		_, countA := after.apiserver.sumAndCount("apiserver_request_duration_seconds", match)
		_, countB := before.apiserver.sumAndCount("apiserver_request_duration_seconds", match)
		mean := meanDelta(before.apiserver, after.apiserver, "apiserver_request_duration_seconds", match)
		f.apiLatency = append(f.apiLatency, fmt.Sprintf("%s %s/%s %.1f/s mean %s", c.verb, c.resource, c.subresource,
			(countA-countB)/f.seconds, mean.Round(10*time.Microsecond)))
	}
	return f
}

func withoutInfo(calls map[string]int64) map[string]int64 {
	out := make(map[string]int64, len(calls))
	for cmd, n := range calls {
		if cmd != "info" {
			out[cmd] = n
		}
	}
	return out
}

// meanDelta is the mean of a histogram's observations between two scrapes.
func meanDelta(before, after metricFamilies, name string, match map[string]string) time.Duration {
	sumA, countA := after.sumAndCount(name, match)
	sumB, countB := before.sumAndCount(name, match)
	if countA <= countB {
		return 0
	}
	return time.Duration((sumA - sumB) / (countA - countB) * float64(time.Second))
}

func reportFleet(b *testing.B, r fleetReport) {
	f := r.figures()
	mib := func(n int64) float64 { return float64(n) / (1 << 20) }
	perPoll := func(n int64) float64 { return float64(n) / float64(max(f.polls, 1)) }
	pollsPerSecond := float64(f.polls) / f.seconds
	interval := 0.0
	if pollsPerSecond > 0 {
		interval = fleetSize / pollsPerSecond
	}
	rss := r.after.memory.RSS
	memoryUnit := "MiB"
	if !r.ownProcess {
		memoryUnit = "MiB-with-benchmark" // -inprocess: the figure is the benchmark's process
	}

	b.ReportMetric(0, "ns/op") // one op is the whole run; the figures below are the result
	b.ReportMetric(f.reconciles/f.seconds, "reconciles/s")
	b.ReportMetric(pollsPerSecond, "polls/s")
	b.ReportMetric(interval, "poll-interval-s")
	b.ReportMetric(perPoll(f.queueRoundTrips), "queue-roundtrips/poll")
	b.ReportMetric(perPoll(f.limiterRoundTrips), "limiter-roundtrips/poll")
	b.ReportMetric(perPoll(f.queueRoundTrips+f.limiterRoundTrips), "roundtrips/poll")
	b.ReportMetric(perPoll(f.queueCommands), "queue-commands/poll")
	b.ReportMetric(mib(rss), "rss-"+memoryUnit)
	b.ReportMetric(mib(r.after.memory.PeakRSS), "peak-rss-"+memoryUnit)
	b.ReportMetric(mib(r.idle.RSS), "idle-rss-"+memoryUnit)
	b.ReportMetric(float64(rss)/rssTarget, "rss/target")
	b.ReportMetric(f.cpuCores, "cpu-cores")

	perReconcile := make([]string, 0, len(f.apiRequests))
	for method, n := range f.apiRequests {
		perReconcile = append(perReconcile, fmt.Sprintf("%s %.2f", method, n/max(f.reconciles, 1)))
	}
	slices.Sort(perReconcile)
	var sb strings.Builder
	fmt.Fprintf(&sb, "one manager, %d ClaudeCapacities in %d pools, default settings (poll every %s); %.0f s window:\n",
		fleetSize, fleetPools, defaultPollInterval, f.seconds)
	fmt.Fprintf(&sb, "  setup: created %d Deployments + %d ClaudeCapacities in %.1f s, all Ready and polled %.1f s after the first create\n",
		fleetSize, fleetSize, r.createTime.Seconds(), r.readyTime.Seconds())
	fmt.Fprintf(&sb, "  reconciles: %.1f/s (%.0f errors), mean %s each, mean wait in the work queue %s; manager CPU %.2f cores\n",
		f.reconciles/f.seconds, f.reconcileErrors, f.reconcileMean.Round(time.Microsecond), f.queueWaitMean.Round(time.Microsecond), f.cpuCores)
	fmt.Fprintf(&sb, "  polls: %.1f/s, so each ClaudeCapacity is polled every %.2f s (spec: %s); %.2f polls per reconcile\n",
		pollsPerSecond, interval, defaultPollInterval, float64(f.polls)/max(f.reconciles, 1))
	fmt.Fprintf(&sb, "  queue server per poll: %.3f round trips (server read events), %.2f commands %v\n",
		perPoll(f.queueRoundTrips), perPoll(f.queueCommands), f.queueCalls)
	fmt.Fprintf(&sb, "  limiter server per poll: %.3f round trips, commands %v\n", perPoll(f.limiterRoundTrips), f.limiterCalls)
	fmt.Fprintf(&sb, "  API requests per reconcile (manager's client): %s; server side: %s\n",
		strings.Join(perReconcile, ", "), strings.Join(f.apiLatency, "; "))
	fmt.Fprintf(&sb, "  CPU cores used by process: %s\n", strings.Join(f.childCores, ", "))
	fmt.Fprintf(&sb, "  manager memory: VmRSS %.1f MiB (VmHWM %.1f MiB) vs %.1f MiB before the fleet existed: %.1f KiB per ClaudeCapacity; Go heap in use %.1f MiB\n",
		mib(rss), mib(r.after.memory.PeakRSS), mib(r.idle.RSS), float64(rss-r.idle.RSS)/1024/fleetSize,
		r.after.metrics.sum("go_memstats_heap_inuse_bytes", nil)/(1<<20))
	if !r.ownProcess {
		fmt.Fprintf(&sb, "  (-inprocess: memory is the benchmark's whole process, not the manager's alone)\n")
	}
	fmt.Fprintf(&sb, "  targets: RSS < 150 MiB: %s (%.2fx of it); one Redis round trip per poll: queue poll %s, with the limiter %s; load average %s",
		verdict(rss < rssTarget), float64(rss)/rssTarget, verdict(perPoll(f.queueRoundTrips) <= 1),
		verdict(perPoll(f.queueRoundTrips+f.limiterRoundTrips) <= 1), benchenv.LoadAverage())
	b.Log(sb.String())
}
