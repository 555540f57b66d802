//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	capacityv1alpha1 "github.com/claudecap/claudecap/api/v1alpha1"
	"github.com/claudecap/claudecap/internal/localcluster"
	"github.com/claudecap/claudecap/internal/standin"
	"github.com/claudecap/claudecap/internal/testutil/redistest"
	"github.com/claudecap/claudecap/pkg/mockapi"
)

const (
	release          = "claudecap"
	releaseNamespace = "claudecap-system"
	managerName      = "claudecap-controller-manager"
	workNamespace    = "workers"
	workloadName     = "summarizer"
	// capReplicas is what the workload's request limit allows: 780 requests per minute
	// over 120 per replica.
	capReplicas = 6
	minReplicas = 1
	// freeze is how long the Redis-lost phase stops Redis (SIGSTOP).
	freeze = 9 * time.Second
)

// TestEndToEnd installs the chart, runs the operator under the chart's ServiceAccount, and
// takes a worker fleet through KEDA-style phases, counting every job.
func TestEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	began := time.Now()
	cluster, kube, cs, tl, managerBin := setUp(ctx, t)

	top := t
	p := &phases{t: t}
	var op *operator
	p.run("install", func(t *testing.T) string {
		out := tl.run(ctx, t, tl.helm, "install", release, "charts/claudecap", "--namespace", releaseNamespace, "--create-namespace", "--wait=false")
		if !strings.Contains(out, "STATUS: deployed") {
			t.Fatalf("helm install: %s", out)
		}
		op = startOperator(ctx, t, cluster, cs, managerBin, managerDeployment(ctx, t, kube, releaseNamespace, managerName))
		top.Cleanup(op.stop)
		return "helm install; the manager runs on the host with a TokenRequest token of the chart's ServiceAccount"
	})

	w := newWorkload(ctx, t, kube, cluster)
	scalingPhases(p, w)
	p.run("metrics-scrape", func(t *testing.T) string {
		return scrapeMetrics(ctx, t, kube, cs, op)
	})
	p.run("helm-upgrade", func(t *testing.T) string {
		before, _ := w.read(t)
		tl.run(ctx, t, tl.helm, "upgrade", release, "charts/claudecap", "--namespace", releaseNamespace, "--reuse-values", "--set", "logLevel=debug")
		after, _ := w.read(t)
		if after.UID != before.UID || after.Status.LastScaleTime == nil || len(after.Status.Conditions) < len(before.Status.Conditions) {
			t.Fatalf("helm upgrade changed the ClaudeCapacity: uid %s -> %s, status %+v", before.UID, after.UID, after.Status)
		}
		dep := managerDeployment(ctx, t, kube, releaseNamespace, managerName)
		if !strings.Contains(strings.Join(dep.Spec.Template.Spec.Containers[0].Args, " "), "--zap-log-level=debug") {
			t.Fatalf("helm upgrade did not reach the manager's arguments: %v", dep.Spec.Template.Spec.Containers[0].Args)
		}
		if err := op.running(); err != nil {
			t.Fatal(err)
		}
		return "the ClaudeCapacity keeps its uid and status; the new value reaches the manager Deployment"
	})
	op.stop()

	auditRBAC(ctx, t, kube, cluster, op, releaseNamespace, managerName, p)

	p.run("helm-uninstall", func(t *testing.T) string {
		tl.run(ctx, t, tl.helm, "uninstall", release, "--namespace", releaseNamespace)
		eventually(t, 30*time.Second, "the chart's objects gone", func() (bool, string) {
			var left []string
			for _, obj := range []client.Object{
				&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: releaseNamespace, Name: managerName}},
				&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: releaseNamespace, Name: managerName}},
				&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: release + "-manager-role"}},
				&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: release + "-manager-rolebinding"}},
			} {
				if err := kube.Get(ctx, client.ObjectKeyFromObject(obj), obj); !apierrors.IsNotFound(err) {
					left = append(left, fmt.Sprintf("%T %s (%v)", obj, obj.GetName(), err))
				}
			}
			return len(left) == 0, strings.Join(left, ", ")
		})
		cc, _ := w.read(t)
		if cc.Status.LastScaleTime == nil {
			t.Fatalf("the ClaudeCapacity lost its status: %+v", cc.Status)
		}
		return "manager, ServiceAccount and RBAC removed; the CRDs, the ClaudeCapacity and its status stay (helm never deletes crds/)"
	})
	t.Logf("phases (whole run %s):\n%s", time.Since(began).Round(time.Second), p.table())
}

// setUp starts a local cluster that installs no CRDs (the chart or kustomize does) and
// keeps an audit log, and builds the manager binary.
func setUp(ctx context.Context, t *testing.T) (*localcluster.Cluster, client.Client, kubernetes.Interface, tools, string) {
	t.Helper()
	began := time.Now()
	cluster, err := localcluster.Start(ctx, localcluster.Options{
		Nodes: 2, PodStartDelay: time.Second, HonorGracePeriod: true, SkipCRDs: true, AuditLog: true,
	})
	if err != nil {
		t.Fatalf("starting the local cluster: %v", err)
	}
	t.Cleanup(func() {
		if err := cluster.Stop(); err != nil {
			t.Errorf("stopping the local cluster: %v", err)
		}
	})
	t.Logf("local cluster up in %s (logs and audit log in %s)", time.Since(began).Round(time.Millisecond), cluster.Dir)
	return cluster, adminClient(t, cluster), kubernetes.NewForConfigOrDie(cluster.Config), findTools(t, cluster), buildManager(ctx, t, t.TempDir())
}

// auditRBAC reads the operator's calls from the audit log and fails on a refused call or a
// write verb granted and never used; it logs every grant with the phase that first used it.
func auditRBAC(ctx context.Context, t *testing.T, kube client.Client, cluster *localcluster.Cluster, op *operator, namespace, serviceAccount string, p *phases) {
	t.Helper()
	grants := grantsOf(ctx, t, kube, namespace, serviceAccount)
	rep := checkRBAC(t, operatorCalls(t, cluster.AuditLogPath, op.user), grants, p.at)
	t.Logf("RBAC of ServiceAccount %s/%s, from the API server's audit log:\n%s", namespace, serviceAccount, rep.table())
	for _, c := range rep.ungranted {
		t.Logf("allowed by a grant outside the install: %s (%s)", c.permission, c.uri)
	}
	for _, c := range rep.refused {
		t.Errorf("the API server refused the operator (403): %s %s in phase %s", c.permission, c.uri, p.at(c.at))
	}
	for _, g := range rep.unused {
		if writeVerb(g.verb) && idleReason(g) == "" {
			t.Errorf("%s grants %s and the operator never used it: remove it", g.role, g.permission)
		}
	}
}

// scalingPhases takes the workload through KEDA-style phases, each ending in a "stays
// unchanged" check where it makes sense, and counts every job at the end.
func scalingPhases(p *phases, w *workload) {
	p.run("scale-out-to-cap", func(t *testing.T) string {
		w.push(t, 600)
		took := eventually(t, 90*time.Second, "replicas at the cap, every pod Ready", func() (bool, string) {
			cc, dep := w.read(t)
			return dep.spec() == capReplicas && dep.Status.ReadyReplicas == capReplicas &&
				cc.Status.LimitedBy == capacityv1alpha1.LimitedByRequests, w.describe(cc, dep)
		})
		return fmt.Sprintf("600 jobs pushed; %d Ready pods, limited by requests per minute, after %.1f s", capReplicas, took.Seconds())
	})
	p.run("hold-at-cap-under-overload", func(t *testing.T) string {
		stays(t, 15*time.Second, "replicas stay at the cap while the backlog lasts", func() (bool, string) {
			cc, dep := w.read(t)
			return dep.spec() == capReplicas && cc.Status.Queue != nil && cc.Status.Queue.Depth > 0, w.describe(cc, dep)
		})
		return fmt.Sprintf("%d replicas for 15 s with the backlog above the cap's rate", capReplicas)
	})
	p.run("scale-in-to-min", func(t *testing.T) string {
		took := eventually(t, 120*time.Second, "the queue drained and replicas at the minimum", func() (bool, string) {
			cc, dep := w.read(t)
			return w.depth(t) == 0 && dep.spec() == minReplicas && dep.Status.Replicas == minReplicas, w.describe(cc, dep)
		})
		stays(t, 10*time.Second, "replicas stay at the minimum", func() (bool, string) {
			cc, dep := w.read(t)
			return dep.spec() == minReplicas, w.describe(cc, dep)
		})
		return fmt.Sprintf("drained and at %d replica after %.1f s; unchanged for 10 s", minReplicas, took.Seconds())
	})
	p.run("scale-to-zero-and-back", func(t *testing.T) string {
		w.update(t, func(cc *capacityv1alpha1.ClaudeCapacity) { cc.Spec.Replicas.Min = 0 })
		toZero := eventually(t, 60*time.Second, "zero replicas and no pod", func() (bool, string) {
			cc, dep := w.read(t)
			return dep.spec() == 0 && dep.Status.Replicas == 0, w.describe(cc, dep)
		})
		stays(t, 8*time.Second, "zero replicas while idle", func() (bool, string) {
			cc, dep := w.read(t)
			return dep.spec() == 0, w.describe(cc, dep)
		})
		w.push(t, 30)
		back := eventually(t, 60*time.Second, "replicas back and the 30 jobs done", func() (bool, string) {
			cc, dep := w.read(t)
			return dep.spec() >= 1 && w.depth(t) == 0 && w.pending(t) == 0, w.describe(cc, dep)
		})
		return fmt.Sprintf("idle -> 0 replicas in %.1f s, 0 for 8 s; 30 jobs -> back up and done in %.1f s", toZero.Seconds(), back.Seconds())
	})
	p.run("pause-and-resume", func(t *testing.T) string {
		w.annotate(t, capacityv1alpha1.AnnotationPaused, "true")
		var held int32
		eventually(t, 10*time.Second, "the pause seen (limitedBy Paused)", func() (bool, string) {
			cc, dep := w.read(t)
			held = dep.spec()
			return cc.Status.LimitedBy == capacityv1alpha1.LimitedByPaused, w.describe(cc, dep)
		})
		w.push(t, 300)
		stays(t, 10*time.Second, "replicas unchanged while paused", func() (bool, string) {
			cc, dep := w.read(t)
			return dep.spec() == held, w.describe(cc, dep)
		})
		w.annotate(t, capacityv1alpha1.AnnotationPaused, "")
		took := eventually(t, 60*time.Second, "replicas at the cap after resume", func() (bool, string) {
			cc, dep := w.read(t)
			return dep.spec() == capReplicas, w.describe(cc, dep)
		})
		return fmt.Sprintf("paused at %d with 300 jobs queued, unchanged for 10 s; resumed -> %d in %.1f s", held, capReplicas, took.Seconds())
	})
	p.run("redis-lost-and-back", func(t *testing.T) string {
		_, dep := w.read(t)
		held := dep.spec()
		// Frozen for 9 s: shorter than a worker's wait for a blocking reply (go-redis: the
		// block time plus 10 s), so no BLMOVE gives up and leaves a job nobody holds.
		frozen := time.Now()
		w.redis.Pause(freeze)
		lost := eventually(t, 6*time.Second, "SignalsAvailable=False", func() (bool, string) {
			cc, dep := w.read(t)
			return conditionIs(cc, capacityv1alpha1.ConditionSignalsAvailable, metav1.ConditionFalse), w.describe(cc, dep)
		})
		stays(t, time.Until(frozen.Add(freeze-500*time.Millisecond)), "replicas held while Redis is lost", func() (bool, string) {
			cc, dep := w.read(t)
			return dep.spec() == held, w.describe(cc, dep)
		})
		back := eventually(t, 30*time.Second, "SignalsAvailable=True", func() (bool, string) {
			cc, dep := w.read(t)
			return conditionIs(cc, capacityv1alpha1.ConditionSignalsAvailable, metav1.ConditionTrue), w.describe(cc, dep)
		})
		return fmt.Sprintf("Redis frozen for %s: signals lost after %.1f s, %d replicas held until it woke; signals back %.1f s later",
			freeze, lost.Seconds(), held, back.Seconds())
	})
	p.run("every-job-once", func(t *testing.T) string {
		took := eventually(t, 120*time.Second, "every job done and replicas back to zero", func() (bool, string) {
			cc, dep := w.read(t)
			return w.depth(t) == 0 && w.pending(t) == 0 && dep.spec() == 0 && dep.Status.Replicas == 0, w.describe(cc, dep)
		})
		lost, twice := w.count(t)
		if len(lost) > 0 || len(twice) > 0 {
			t.Fatalf("of %d jobs pushed: lost %d %v, processed more than once %d %v", len(w.pushed), len(lost), lost, len(twice), twice)
		}
		st := w.fleet.Stats()
		if st.QueueErrors != 0 {
			t.Errorf("fleet stats %+v: queue errors", st)
		}
		return fmt.Sprintf("%d jobs pushed, %d processed: 0 lost, 0 duplicated (%d requeued at scale-in, %d calls refused 429); drained in %.1f s",
			len(w.pushed), len(w.fleet.Acked()), st.JobsRequeued+st.JobsHandedBack, st.CallsRateLimited, took.Seconds())
	})
}

// scrapeMetrics reads /metrics as a Prometheus would: with a token of a ServiceAccount
// bound to the chart's metrics-reader ClusterRole. The manager authenticates and
// authorizes the scrape through the API server (TokenReview, SubjectAccessReview) under
// its own RBAC; a scrape without a token is refused.
func scrapeMetrics(ctx context.Context, t *testing.T, kube client.Client, cs kubernetes.Interface, op *operator) string {
	t.Helper()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: releaseNamespace, Name: "prometheus"}}
	must(t, kube.Create(ctx, sa))
	must(t, kube.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "prometheus-reads-claudecap"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: release + "-metrics-reader"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: releaseNamespace, Name: sa.Name}},
	}))
	token := serviceAccountToken(ctx, t, cs, releaseNamespace, sa.Name)
	get := func(bearer string) (int, string) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+op.metricsAddr+"/metrics", nil)
		must(t, err)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := metricsClient.Do(req)
		must(t, err)
		defer func() { _ = resp.Body.Close() }()
		body, err := io.ReadAll(resp.Body)
		must(t, err)
		return resp.StatusCode, string(body)
	}
	var code int
	var body string
	eventually(t, 20*time.Second, "the scrape is authorized", func() (bool, string) {
		code, body = get(token)
		return code == http.StatusOK, fmt.Sprintf("HTTP %d", code)
	})
	if !strings.Contains(body, "claudecap_scale_changes_total") {
		t.Fatalf("/metrics lacks claudecap_scale_changes_total:\n%.2000s", body)
	}
	if anon, _ := get(""); anon != http.StatusUnauthorized && anon != http.StatusForbidden {
		t.Fatalf("a scrape without a token got HTTP %d, want 401 or 403", anon)
	}
	return "a metrics-reader token scrapes /metrics (HTTP 200); no token is refused"
}

// workload is the worker side: a Deployment, its ClaudeCapacity, the queue's Redis, the
// mock Messages API and the stand-in fleet that plays the Deployment's Pods.
type workload struct {
	kube   client.Client
	redis  *redistest.Server
	rdb    *redis.Client
	fleet  *standin.Fleet
	pushed []string
}

// newWorkload creates the workers namespace, the Deployment (1 replica, 15 s grace
// period), Redis, the mock API (60 output tokens per call, about 0.1 s), the fleet (each
// worker thinks 0.4 s per job: about 120 jobs per minute per pod), and the
// ClaudeCapacity: 780 requests per minute for the workload, 120 per replica (a cap of 6),
// a 30 s drain target, replicas 1 to 10, a 1 s poll.
func newWorkload(ctx context.Context, t *testing.T, kube client.Client, cluster *localcluster.Cluster) *workload {
	t.Helper()
	w := &workload{kube: kube, redis: redistest.Start(t)}
	// The workers wait for a frozen Redis rather than give up on it: Redis runs, when it
	// wakes, the commands a client gave up on, so a command that timed out may still run
	// (docs/workers.md, rule 6).
	w.rdb = w.redis.NewClient(func(o *redis.Options) {
		o.PoolSize, o.ReadTimeout, o.WriteTimeout = 64, 30*time.Second, 30*time.Second
	})
	must(t, kube.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: workNamespace}}))
	labels := map[string]string{"app": workloadName}
	must(t, kube.Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: workNamespace, Name: workloadName},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: ptr.To[int64](15),
					Containers:                    []corev1.Container{{Name: "worker", Image: "registry.example/summarizer:1.0"}},
				},
			},
		},
	}))

	mock, err := mockapi.New(mockapi.Config{
		Latency:      mockapi.Latency{TimeToFirstToken: mockapi.Fixed(0.05), PerToken: mockapi.Fixed(0.001)},
		OutputTokens: mockapi.Fixed(60),
	})
	must(t, err)
	api := httptest.NewServer(mock)
	t.Cleanup(api.Close)

	cc := &capacityv1alpha1.ClaudeCapacity{}
	must(t, yaml.UnmarshalStrict([]byte(fmt.Sprintf(claudeCapacityYAML, w.redis.Addr())), cc))
	must(t, kube.Create(ctx, cc))

	fleetLog, err := os.Create(filepath.Join(cluster.Dir, "fleet.log"))
	must(t, err)
	t.Cleanup(func() { _ = fleetLog.Close() })
	w.fleet, err = standin.Start(ctx, standin.Config{
		Client: kube, Namespace: workNamespace, Deployment: workloadName, Redis: w.rdb,
		Sidecar:    standin.InProcessProxy(w.rdb, api.URL, workNamespace+"."+workloadName, workNamespace+"/"+workloadName, 10*time.Second),
		FollowPods: true,
		ThinkTime:  400 * time.Millisecond,
		Request:    standin.Request{Model: "claude-sonnet-4-5", MaxTokens: 100, InputTokens: 500},
		Logger:     slog.New(slog.NewTextHandler(fleetLog, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	must(t, err)
	t.Cleanup(w.fleet.Stop)
	return w
}

// claudeCapacityYAML is the workload's ClaudeCapacity as a user writes it (%s: the queue's
// Redis address).
const claudeCapacityYAML = `
apiVersion: capacity.claudecap.io/v1alpha1
kind: ClaudeCapacity
metadata:
  name: summarizer
  namespace: workers
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: summarizer
  model: claude-sonnet-4-5
  limits:
    requestsPerMinute: 780
    inputTokensPerMinute: 50000000
    outputTokensPerMinute: 10000000
  headroomPercent: 100
  traffic:
    requestsPerMinute: 60
    avgInputTokens: 500
    avgOutputTokens: 60
  worker:
    requestsPerMinutePerReplica: 120
  queue:
    redis:
      address: %[1]s
      list: jobs
      processingList: jobs:processing
    targetDrainSeconds: 30
  limiter:
    redis:
      address: %[1]s
  replicas:
    min: 1
    max: 10
  pollIntervalSeconds: 1
  behavior:
    scaleUp:
      stabilizationSeconds: 0
      policies:
      - type: Pods
        value: 10
        periodSeconds: 1
    scaleDown:
      stabilizationSeconds: 3
      policies:
      - type: Percent
        value: 100
        periodSeconds: 1
`

// push queues n new jobs.
func (w *workload) push(t *testing.T, n int) {
	t.Helper()
	jobs := make([]any, n)
	for i := range jobs {
		id := fmt.Sprintf("job-%05d", len(w.pushed))
		w.pushed = append(w.pushed, id)
		jobs[i] = id
	}
	must(t, w.rdb.RPush(context.Background(), standin.DefaultList, jobs...).Err())
}

// depth is how many jobs wait; pending how many are taken and not yet done.
func (w *workload) depth(t *testing.T) int64 {
	n, err := w.redis.Client().LLen(context.Background(), standin.DefaultList).Result()
	must(t, err)
	return n
}

func (w *workload) pending(t *testing.T) int64 {
	n, err := w.redis.Client().LLen(context.Background(), standin.DefaultProcessingList).Result()
	must(t, err)
	return n
}

// count compares the jobs pushed with the fleet's acknowledgements.
func (w *workload) count(t *testing.T) (lost, twice []string) {
	t.Helper()
	acked := w.fleet.Acked()
	for _, j := range w.pushed {
		switch acked[j] {
		case 0:
			lost = append(lost, j)
		case 1:
		default:
			twice = append(twice, j)
		}
	}
	return lost, twice
}

type deployment struct{ *appsv1.Deployment }

func (d deployment) spec() int32 { return ptr.Deref(d.Spec.Replicas, 1) }

// read returns the ClaudeCapacity and the Deployment as they are now.
func (w *workload) read(t *testing.T) (*capacityv1alpha1.ClaudeCapacity, deployment) {
	t.Helper()
	cc := &capacityv1alpha1.ClaudeCapacity{}
	must(t, w.kube.Get(context.Background(), client.ObjectKey{Namespace: workNamespace, Name: workloadName}, cc))
	dep := &appsv1.Deployment{}
	must(t, w.kube.Get(context.Background(), client.ObjectKey{Namespace: workNamespace, Name: workloadName}, dep))
	return cc, deployment{dep}
}

func (w *workload) describe(cc *capacityv1alpha1.ClaudeCapacity, dep deployment) string {
	depth := int64(-1)
	if cc.Status.Queue != nil {
		depth = cc.Status.Queue.Depth
	}
	ready := "?"
	if c := meta.FindStatusCondition(cc.Status.Conditions, capacityv1alpha1.ConditionScalingLimited); c != nil {
		ready = c.Message
	}
	return fmt.Sprintf("spec.replicas %d, ready %d, pods %d; status desired %d demand %d limitedBy %s queue %d (%s); fleet %+v",
		dep.spec(), dep.Status.ReadyReplicas, dep.Status.Replicas, cc.Status.DesiredReplicas, cc.Status.DemandReplicas,
		cc.Status.LimitedBy, depth, ready, w.fleet.Stats())
}

// update changes the ClaudeCapacity's spec, retrying on conflicts with the operator.
func (w *workload) update(t *testing.T, mutate func(*capacityv1alpha1.ClaudeCapacity)) {
	t.Helper()
	must(t, retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cc, _ := w.read(t)
		mutate(cc)
		return w.kube.Update(context.Background(), cc)
	}))
}

// annotate sets an annotation (or removes it when value is empty).
func (w *workload) annotate(t *testing.T, key, value string) {
	t.Helper()
	w.update(t, func(cc *capacityv1alpha1.ClaudeCapacity) {
		if value == "" {
			delete(cc.Annotations, key)
			return
		}
		if cc.Annotations == nil {
			cc.Annotations = map[string]string{}
		}
		cc.Annotations[key] = value
	})
}

func conditionIs(cc *capacityv1alpha1.ClaudeCapacity, condType string, status metav1.ConditionStatus) bool {
	c := meta.FindStatusCondition(cc.Status.Conditions, condType)
	return c != nil && c.Status == status
}

func adminClient(t *testing.T, c *localcluster.Cluster) client.Client {
	t.Helper()
	scheme := runtime.NewScheme()
	must(t, clientgoscheme.AddToScheme(scheme))
	must(t, capacityv1alpha1.AddToScheme(scheme))
	kube, err := client.New(c.Config, client.Options{Scheme: scheme})
	must(t, err)
	return kube
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
