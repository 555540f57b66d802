package closedloop

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	capacityv1alpha1 "github.com/claudecap/claudecap/api/v1alpha1"
	"github.com/claudecap/claudecap/internal/standin"
	"github.com/claudecap/claudecap/internal/testutil/redistest"
	"github.com/claudecap/claudecap/pkg/ratelimit"
)

// scenarioRun is one scenario in progress: the parts it owns and what it has recorded.
// Everything it starts is stopped by t's cleanups, newest first.
type scenarioRun struct {
	t   *testing.T
	lab *lab
	sc  *scenario
	dir string
	rec *runRecord
	ctx context.Context

	rds          *redistest.Server
	labRedis     *redis.Client
	mock         *child
	mockURL      string
	manager      *child
	ns           string
	organization string
	names        []string
	watcher      *replicaWatch
	proxies      []*sidecars
	fleets       []*standin.Fleet
	stopFleets   func()
	origin       time.Time

	pushers  []*pusher
	ext      *externalClient
	stopLoad context.CancelFunc
	loadWG   sync.WaitGroup
	restart  *restartLedger
}

// runScenario runs one scenario from a fresh redis-server, mock and manager to its end and
// returns its record. Lab failures (a process died, an object could not be created) and
// exactly-once violations fail t; scores never do.
func (l *lab) runScenario(t *testing.T, sc *scenario, outDir string) *runRecord {
	wallStart := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	r := &scenarioRun{t: t, lab: l, sc: sc, dir: filepath.Join(outDir, sc.name), ctx: ctx,
		rec: &runRecord{Name: sc.name, Title: sc.title, About: sc.about}}
	r.startParts()
	r.createObjects()
	r.startFleets()
	r.startLoad()
	lastBacklogPush := r.drive()
	r.windDown()
	score(r.rec, scoreInputFor(sc, r.rec, lastBacklogPush))
	r.rec.WallSeconds = time.Since(wallStart).Seconds()
	return r.rec
}

// startParts starts what the scenario owns alone: Redis, the mock and the manager.
func (r *scenarioRun) startParts() {
	t := r.t
	if err := os.RemoveAll(r.dir); err != nil { // the logs of an earlier run
		t.Fatalf("clearing %s: %v", r.dir, err)
	}
	if err := os.MkdirAll(r.dir, 0o750); err != nil {
		t.Fatalf("creating %s: %v", r.dir, err)
	}
	r.rds = redistest.Start(t)
	r.labRedis = r.rds.NewClient(func(o *redis.Options) { o.MaxRetries = -1 })
	var err error
	if r.mock, r.mockURL, err = r.lab.startMock(filepath.Join(r.dir, "mock.log")); err != nil {
		t.Fatalf("starting the mock: %v", err)
	}
	t.Cleanup(func() { r.mock.stop(5 * time.Second) })
	if r.manager, err = r.lab.startManager(filepath.Join(r.dir, "manager.log")); err != nil {
		t.Fatalf("starting the manager: %v", err)
	}
	t.Cleanup(func() { r.manager.stop(10 * time.Second) })
}

// createObjects creates the namespace, the Deployments at one replica and the
// ClaudeCapacities, and waits until the manager has polled each queue once.
func (r *scenarioRun) createObjects() {
	t, l, sc, rec := r.t, r.lab, r.sc, r.rec
	var err error
	if r.ns, err = l.newNamespace(r.ctx, sc.name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.deleteAll(r.ns); err != nil {
			t.Errorf("cleaning up: %v", err)
		}
	})
	r.organization = "lab-" + sc.name
	org := organizationFor(r.organization, r.rds.Addr())
	if err := l.client.Create(r.ctx, org); err != nil {
		t.Fatalf("creating the organization: %v", err)
	}
	t.Cleanup(func() { _ = l.client.Delete(context.Background(), org) })
	for _, w := range sc.workloads {
		r.names = append(r.names, w.name)
		rec.Workloads = append(rec.Workloads, w.name)
		rec.Weights = append(rec.Weights, max(w.weight, 1))
		rec.World.DeclaredMu = append(rec.World.DeclaredMu, w.declaredMu)
		if err := l.client.Create(r.ctx, workerDeployment(r.ns, deploymentName(w.name))); err != nil {
			t.Fatalf("creating the deployment: %v", err)
		}
	}
	if r.watcher, err = watchReplicas(r.ctx, l.client, r.ns); err != nil {
		t.Fatal(err)
	}
	for _, w := range sc.workloads {
		if err := l.client.Create(r.ctx, capacityFor(r.ns, r.organization, r.rds.Addr(), sc, w)); err != nil {
			t.Fatalf("creating the ClaudeCapacity: %v", err)
		}
	}
	if err := waitPolled(r.ctx, l.client, r.ns, r.names); err != nil {
		t.Fatalf("%v\nmanager log:\n%s", err, tail(r.manager.logPath, 3000))
	}
}

// startFleets starts one fleet per Deployment, each pod with its own proxy process. The
// scenario's clock starts here.
func (r *scenarioRun) startFleets() {
	t, sc := r.t, r.sc
	fleetLog, err := os.Create(filepath.Join(r.dir, "fleet.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fleetLog.Close() })
	logger := slog.New(slog.NewTextHandler(fleetLog, &slog.HandlerOptions{Level: slog.LevelInfo}))
	workerRedis := r.rds.NewClient(func(o *redis.Options) { o.PoolSize = 2*maxReplicas + 8 })
	r.proxies = make([]*sidecars, len(sc.workloads))
	r.fleets = make([]*standin.Fleet, len(sc.workloads))
	r.stopFleets = sync.OnceFunc(func() {
		for _, f := range r.fleets {
			if f != nil {
				f.Stop()
			}
		}
	})
	t.Cleanup(r.stopFleets)
	r.origin = time.Now()
	for i, w := range sc.workloads {
		r.proxies[i] = &sidecars{lab: r.lab, logPath: filepath.Join(r.dir, "proxies.log"), upstream: r.mockURL,
			organization: r.organization, workload: r.ns + "/" + w.name, redisAddr: r.rds.Addr()}
		r.fleets[i], err = standin.Start(r.ctx, standin.Config{
			Client: r.lab.client, Namespace: r.ns, Deployment: deploymentName(w.name), Redis: workerRedis,
			Sidecar: r.proxies[i].start, StartDelay: startDelay,
			Queue:   standin.Queue{List: listName(w.name), ProcessingList: processingName(w.name)},
			Request: standin.Request{Model: model, MaxTokens: maxTokens, InputTokens: inputTokens},
			Logger:  logger.With("workload", w.name),
		})
		if err != nil {
			t.Fatalf("starting the fleet of %s: %v", w.name, err)
		}
	}
	r.rec.StartedAt = r.origin.UTC().Format(time.RFC3339)
	fillWorld(r.rec, sc)
}

// startLoad starts the scenario's backlogs, Poisson arrivals and external client.
func (r *scenarioRun) startLoad() {
	sc, rec, origin := r.sc, r.rec, r.origin
	load, stop := context.WithCancel(r.ctx)
	r.stopLoad = stop
	r.t.Cleanup(stop)
	seed := seedOf(sc.name)
	for i, w := range sc.workloads {
		p := newPusher(r.labRedis, listName(w.name), sc.name+"-"+w.name, origin)
		r.pushers = append(r.pushers, p)
		if w.backlog > 0 {
			r.loadWG.Add(1)
			go func() {
				defer r.loadWG.Done()
				select {
				case <-load.Done():
					return
				case <-time.After(time.Until(origin.Add(w.backlogAt))):
				}
				if err := p.push(load, w.backlog); err != nil {
					r.t.Errorf("pushing the backlog of %s: %v", w.name, err)
				}
			}()
			rec.Marks = append(rec.Marks, mark{T: w.backlogAt.Seconds(), Label: fmt.Sprintf("push %d (%s)", w.backlog, w.name)})
		}
		if w.arrivalsPerMinute > 0 {
			rng := rand.New(rand.NewPCG(seed, uint64(i)))
			r.loadWG.Add(1)
			go func() {
				defer r.loadWG.Done()
				p.poisson(load, rng, w.arrivalsPerMinute, w.arrivalsFrom, w.arrivalsUntil)
			}()
		}
	}
	if stop := sc.arrivalsStop(); stop > 0 && stop < sc.duration {
		rec.Marks = append(rec.Marks, mark{T: stop.Seconds(), Label: "arrivals stop"})
	}
	if sc.externalOTPMShare > 0 {
		r.ext = &externalClient{url: r.mockURL}
		perMinute := sc.externalOTPMShare * limitOTPM / outputTokens
		rec.World.ExternalOTPM, rec.World.ExternalFrom = perMinute*outputTokens, sc.externalAt.Seconds()
		r.loadWG.Add(1)
		go func() {
			defer r.loadWG.Done()
			r.ext.run(load, origin, sc.externalAt, perMinute)
		}()
		rec.Marks = append(rec.Marks, mark{T: sc.externalAt.Seconds(), Label: "external client on"})
	}
}

// drive samples every second, stops and restarts Redis when the scenario says, and returns
// when the scenario ends or a part of the lab dies. It returns when the last backlog was
// pushed.
func (r *scenarioRun) drive() (lastBacklogPush float64) {
	sc, rec := r.sc, r.rec
	smp := &sampler{kube: r.lab.client, namespace: r.ns, names: r.names, rdb: r.labRedis, mockURL: r.mockURL,
		fleets: r.fleets, ext: r.ext, httpc: &http.Client{}, pool: ratelimit.PoolKey{Organization: r.organization, Class: modelClass}}
	for _, w := range sc.workloads {
		if w.backlog > 0 {
			lastBacklogPush = max(lastBacklogPush, w.backlogAt.Seconds())
		}
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	endAt := sc.duration
	for {
		now := time.Since(r.origin)
		rec.Samples = append(rec.Samples, smp.take(r.ctx, now.Seconds()))
		if err := errors.Join(r.manager.died(), r.mock.died(), sidecarDeaths(r.proxies)); err != nil {
			rec.Problems = append(rec.Problems, err.Error())
			r.t.Errorf("scenario %s: %v", sc.name, err)
			return lastBacklogPush
		}
		r.outage(now)
		if endAt == sc.duration && ended(sc, rec.Samples, now, lastBacklogPush) {
			endAt = min(sc.duration, now+drainedTail)
		}
		if now >= endAt {
			return lastBacklogPush
		}
		<-tick.C
	}
}

// outage kills redis-server at sc.redisDown and starts it again, empty, at sc.redisUp.
func (r *scenarioRun) outage(now time.Duration) {
	sc := r.sc
	switch {
	case sc.redisDown > 0 && r.restart == nil && now >= sc.redisDown:
		r.restart = snapshotForRestart(r.ctx, r.labRedis, r.names, r.origin)
		r.rds.Stop()
		r.restart.until = time.Since(r.origin).Seconds()
		r.rec.Marks = append(r.rec.Marks, mark{T: r.restart.until, Label: "redis down"})
	case r.restart != nil && !r.restart.up && now >= sc.redisUp:
		r.rds.Restart()
		r.restart.up = true
		r.rec.Marks = append(r.rec.Marks, mark{T: time.Since(r.origin).Seconds(), Label: "redis up, empty"})
	}
}

// windDown stops the load, lets the fleets finish their jobs in hand, and collects the
// replica changes, the events and the exactly-once ledger.
func (r *scenarioRun) windDown() {
	t, sc, rec := r.t, r.sc, r.rec
	r.stopLoad()
	r.loadWG.Wait()
	r.stopFleets()
	rec.Changes = r.watcher.changesSince(r.origin, r.names)
	var err error
	if rec.Events, err = events(r.ctx, r.lab.client, r.ns, r.names, r.origin); err != nil {
		t.Errorf("scenario %s: %v", sc.name, err)
	}
	for i, w := range sc.workloads {
		jc, err := audit(r.ctx, r.labRedis, w.name, r.pushers[i], r.fleets[i].Acked(), r.restart)
		if err != nil {
			t.Errorf("scenario %s: %v", sc.name, err)
		}
		rec.Jobs = append(rec.Jobs, jc)
		if jc.Duplicates > 0 || jc.Unknown > 0 || jc.Lost > jc.LostToRestart {
			t.Errorf("scenario %s, workload %s: exactly-once violated: %+v", sc.name, w.name, jc)
		}
	}
}

func sidecarDeaths(all []*sidecars) error {
	var errs []error
	for _, s := range all {
		errs = append(errs, s.died())
	}
	return errors.Join(errs...)
}

// ended says whether the scenario's own end condition holds at this sample: every queue
// drained after the backlog was pushed and seen, or every workload back at min after the
// arrivals stopped.
func ended(sc *scenario, samples []sample, now time.Duration, lastBacklogPush float64) bool {
	switch {
	case sc.endWhenDrained:
		_, ok := drainedAt(samples, lastBacklogPush)
		return ok
	case sc.endAtMin && now > sc.arrivalsStop():
		for _, w := range samples[len(samples)-1].W {
			if w.Spec != 0 {
				return false
			}
		}
		return true
	}
	return false
}

func seedOf(name string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(name))
	return h.Sum64()
}

// fillWorld records the setting the optimum is computed from.
func fillWorld(rec *runRecord, sc *scenario) {
	w := &rec.World
	w.Limits = [3]float64{limitRPM, limitITPM, limitOTPM}
	w.HeadroomPercent = headroom
	w.Budget = poolBudget()
	w.PerRequest = perRequest()
	w.TrueMuPerMinute = trueMu()
	w.StartDelaySeconds = startDelay.Seconds()
	w.MaxReplicas = maxReplicas
	w.BudgetBoundPerMin, w.Binding = budgetBoundThroughput(len(sc.workloads), [3]float64{})
	w.FirstPushSeconds = sc.firstPush().Seconds()
	w.ArrivalsStopSecond = sc.arrivalsStop().Seconds()
	w.EndAtMin = sc.endAtMin
	for _, p := range sc.workloads {
		w.Offered += p.arrivalsPerMinute / w.BudgetBoundPerMin
	}
}

func scoreInputFor(sc *scenario, rec *runRecord, lastBacklogPush float64) scoreInput {
	jobs := 0
	for _, w := range sc.workloads {
		jobs += w.backlog
	}
	return scoreInput{
		drain: sc.drain, firstPush: sc.firstPush().Seconds(), lastBacklogPush: lastBacklogPush,
		arrivalsStop: sc.arrivalsStop().Seconds(), endAtMin: sc.endAtMin, minReplicas: rec.World.MinReplicas,
		startDelay: startDelay.Seconds(), mu: trueMu(), jobs: jobs, splitFrom: sc.splitFrom.Seconds(),
		redisDown: sc.redisDown.Seconds(), redisUp: sc.redisUp.Seconds(),
	}
}

// waitPolled waits until the manager has read every ClaudeCapacity's queue once, so that
// the scenario starts from a controller that has seen the empty queue.
func waitPolled(ctx context.Context, kube client.Client, ns string, names []string) error {
	deadline := time.Now().Add(60 * time.Second)
	for _, name := range names {
		for {
			cc := &capacityv1alpha1.ClaudeCapacity{}
			err := kube.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, cc)
			if err == nil && cc.Status.Queue != nil && cc.Status.Queue.LastPollTime != nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("the manager did not poll ClaudeCapacity %s/%s within 60 s (last error: %w)", ns, name, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

// workerDeployment is a worker fleet as a user would declare it, at one replica.
func workerDeployment(ns, name string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "worker", Image: "worker"}}},
			},
		},
	}
}

// labOrganizationLabel marks a scenario's namespace for its organization.
const labOrganizationLabel = "lab.claudecap.io/organization"

// organizationFor is a scenario's organization: explicit small limits for the model class,
// 90% headroom, its limiter on the scenario's Redis, selecting the scenario's namespace.
func organizationFor(name, redisAddr string) *capacityv1alpha1.ClaudeOrganization {
	return &capacityv1alpha1.ClaudeOrganization{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: capacityv1alpha1.ClaudeOrganizationSpec{
			Limits: capacityv1alpha1.OrganizationLimits{Classes: []capacityv1alpha1.ClassLimits{{
				Class: modelClass, RequestsPerMinute: ptr.To[int64](limitRPM), InputTokensPerMinute: ptr.To[int64](limitITPM),
				OutputTokensPerMinute: ptr.To[int64](limitOTPM),
			}}},
			HeadroomPercent:   headroom,
			Limiter:           capacityv1alpha1.OrganizationLimiter{Redis: capacityv1alpha1.OrganizationRedis{Address: redisAddr}},
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{labOrganizationLabel: name}},
		},
	}
}

// capacityFor is the ClaudeCapacity of one workload, a member of the scenario's
// organization: declared traffic of one replica's worth (so an empty queue asks for the one replica the
// Deployment starts with), a list queue with a processing list, a 60 s drain target, and
// default behavior unless the scenario says otherwise.
func capacityFor(ns, organization, redisAddr string, sc *scenario, w workloadPlan) *capacityv1alpha1.ClaudeCapacity {
	cc := &capacityv1alpha1.ClaudeCapacity{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: w.name},
		Spec: capacityv1alpha1.ClaudeCapacitySpec{
			ScaleTargetRef:  capacityv1alpha1.ScaleTargetRef{APIVersion: "apps/v1", Kind: "Deployment", Name: deploymentName(w.name)},
			Model:           model,
			OrganizationRef: &capacityv1alpha1.OrganizationRef{Name: organization},
			Traffic:         capacityv1alpha1.Traffic{RequestsPerMinute: w.declaredMu, AvgInputTokens: inputTokens, AvgOutputTokens: outputTokens},
			Worker:          capacityv1alpha1.Worker{RequestsPerMinutePerReplica: w.declaredMu},
			Queue: &capacityv1alpha1.Queue{
				Redis: &capacityv1alpha1.RedisQueue{
					RedisConnection: capacityv1alpha1.RedisConnection{Address: redisAddr},
					List:            listName(w.name), ProcessingList: processingName(w.name),
				},
				TargetDrainSeconds: drainSeconds,
			},
			Replicas: capacityv1alpha1.Replicas{Min: 0, Max: maxReplicas},
			Weight:   max(w.weight, 1),
		},
	}
	if sc.scaleDownStabilization != nil {
		cc.Spec.Behavior = &capacityv1alpha1.Behavior{ScaleDown: &capacityv1alpha1.ScalingRules{
			StabilizationSeconds: sc.scaleDownStabilization,
		}}
	}
	return cc
}

// restartLedger is what Redis held just before it was killed (scenario g): jobs lost then
// are the restart's doing, not the workers'.
type restartLedger struct {
	// at is when the snapshot was read, until when the server was dead: a job pushed in
	// between was in it too.
	at, until float64
	held      map[string]bool
	// up says the server has been started again.
	up bool
}

func snapshotForRestart(ctx context.Context, rdb *redis.Client, names []string, origin time.Time) *restartLedger {
	r := &restartLedger{at: time.Since(origin).Seconds(), held: map[string]bool{}}
	for _, name := range names {
		for _, key := range []string{listName(name), processingName(name)} {
			jobs, _ := rdb.LRange(ctx, key, 0, -1).Result() // what it could not read is not held
			for _, j := range jobs {
				r.held[j] = true
			}
		}
	}
	return r
}

// audit is the exactly-once ledger of one workload after its fleet stopped: every job the
// lab pushed was acknowledged once, or is still queued.
func audit(ctx context.Context, rdb *redis.Client, name string, p *pusher, acked map[string]int, restart *restartLedger) (jobCounts, error) {
	pushed, failed := p.ledger()
	left := map[string]bool{}
	var stuck int
	for _, key := range []string{listName(name), processingName(name)} {
		jobs, err := rdb.LRange(ctx, key, 0, -1).Result()
		if err != nil {
			return jobCounts{}, fmt.Errorf("reading %s for the ledger: %w", key, err)
		}
		for _, j := range jobs {
			left[j] = true
		}
		if key == processingName(name) {
			stuck = len(jobs)
		}
	}
	var jc jobCounts
	jc.Pushed, jc.PushFailed = len(pushed), len(failed)
	for payload, at := range pushed {
		switch n := acked[payload]; {
		case n == 1:
			jc.AckedOnce++
		case n > 1:
			jc.Duplicates++
		case left[payload]:
			jc.Left++
		default:
			jc.Lost++
			if restart != nil && (restart.held[payload] || (at >= restart.at && at <= restart.until)) {
				jc.LostToRestart++
			}
		}
	}
	for payload, n := range acked {
		if _, ok := pushed[payload]; !ok && !failed[payload] {
			jc.Unknown += n
		}
	}
	var err error
	if stuck > 0 {
		err = fmt.Errorf("%d jobs of %s are still in its processing list after its fleet stopped", stuck, name)
	}
	return jc, err
}
