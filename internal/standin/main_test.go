package standin

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/claudecap/claudecap/internal/kubeenv"
	"github.com/claudecap/claudecap/internal/testutil/redistest"
	"github.com/claudecap/claudecap/pkg/mockapi"
	"github.com/claudecap/claudecap/pkg/ratelimit"
)

// k8sClient talks to the suite's real kube-apiserver, which has no controllers: the
// fleet under test is the only thing that writes Deployment status.
var k8sClient client.Client

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	env, err := kubeenv.NewEnvironment()
	if err != nil {
		fmt.Fprintln(os.Stderr, "envtest:", err)
		return 1
	}
	cfg, err := env.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting envtest:", err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping envtest:", err)
		}
	}()
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		panic(err)
	}
	if k8sClient, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		panic(err)
	}
	return m.Run()
}

// testOrg is the organization the tests' in-process proxies draw from.
const testOrg = "standin-test"

// world is what one test runs against: a namespace with a Deployment, a Redis, and the
// mock Messages API.
type world struct {
	t    *testing.T
	dep  client.ObjectKey
	srv  *redistest.Server
	rdb  *redis.Client
	mock *mockapi.Server
	url  string
}

// newWorld creates a namespace and a Deployment with replicas, starts Redis with roomy
// pool limits, and starts the mock with the given latency and output length.
func newWorld(t *testing.T, replicas int32, mockCfg mockapi.Config) *world {
	t.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "standin-"}}
	if err := k8sClient.Create(ctx, ns); err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	labels := map[string]string{"app": "workers"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "workers"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "worker", Image: "busybox:1.37"}}},
			},
		},
	}
	return worldFor(ctx, t, k8sClient, dep, mockCfg)
}

// worldFor creates dep with kube, starts Redis with roomy pool limits, and starts the mock
// with the given latency and output length (20 output tokens unless it says otherwise).
func worldFor(ctx context.Context, t *testing.T, kube client.Client, dep *appsv1.Deployment, mockCfg mockapi.Config) *world {
	t.Helper()
	if err := kube.Create(ctx, dep); err != nil {
		t.Fatalf("creating deployment: %v", err)
	}
	w := &world{t: t, dep: client.ObjectKeyFromObject(dep), srv: redistest.Start(t)}
	w.rdb = w.srv.Client()
	err := ratelimit.WritePoolConfig(ctx, w.rdb, ratelimit.PoolKey{Organization: testOrg, Class: "sonnet-4"},
		ratelimit.PoolConfig{Limits: ratelimit.Limits{RequestsPerMinute: 1e6, InputTokensPerMinute: 1e9, OutputTokensPerMinute: 1e9}})
	if err != nil {
		t.Fatalf("writing pool limits: %v", err)
	}
	if mockCfg.OutputTokens == (mockapi.Distribution{}) {
		mockCfg.OutputTokens = mockapi.Fixed(20)
	}
	if w.mock, err = mockapi.New(mockCfg); err != nil {
		t.Fatalf("starting the mock: %v", err)
	}
	hs := httptest.NewServer(w.mock)
	t.Cleanup(hs.Close)
	w.url = hs.URL
	return w
}

// config is a fleet config for the world's Deployment with one in-process proxy per pod.
func (w *world) config() Config {
	return Config{
		Client: k8sClient, Namespace: w.dep.Namespace, Deployment: w.dep.Name, Redis: w.rdb,
		Sidecar:      InProcessProxy(w.rdb, w.url, testOrg, w.dep.Namespace+"/workers", time.Second),
		PollInterval: 50 * time.Millisecond,
		Request:      Request{MaxTokens: 50, InputTokens: 200},
		Logger:       testLogger(w.t),
	}
}

// start starts a fleet and stops it when the test ends.
func (w *world) start(cfg Config) *Fleet {
	w.t.Helper()
	f, err := Start(context.Background(), cfg)
	if err != nil {
		w.t.Fatalf("Start: %v", err)
	}
	w.t.Cleanup(f.Stop)
	return f
}

func (w *world) deployment() *appsv1.Deployment {
	w.t.Helper()
	dep := &appsv1.Deployment{}
	if err := k8sClient.Get(context.Background(), w.dep, dep); err != nil {
		w.t.Fatalf("reading deployment: %v", err)
	}
	return dep
}

// scale sets spec.replicas, as the operator does through /scale.
func (w *world) scale(n int32) {
	w.t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		dep := w.deployment()
		dep.Spec.Replicas = ptr.To(n)
		return k8sClient.Update(context.Background(), dep)
	})
	if err != nil {
		w.t.Fatalf("scaling to %d: %v", n, err)
	}
}

func (w *world) push(key string, jobs ...string) {
	w.t.Helper()
	args := make([]any, len(jobs))
	for i, j := range jobs {
		args[i] = j
	}
	if err := w.rdb.RPush(context.Background(), key, args...).Err(); err != nil {
		w.t.Fatalf("pushing jobs: %v", err)
	}
}

func (w *world) list(key string) []string {
	w.t.Helper()
	items, err := w.rdb.LRange(context.Background(), key, 0, -1).Result()
	if err != nil {
		w.t.Fatalf("reading %s: %v", key, err)
	}
	return items
}

// eventually polls cond until it holds or timeout passes; cond says what it saw.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, saw := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last saw %s", what, timeout, saw)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// statusOf is the Deployment status fields the fleet writes, for messages.
func statusOf(dep *appsv1.Deployment) string {
	s := dep.Status
	return fmt.Sprintf("generation %d observed %d replicas %d ready %d available %d updated %d unavailable %d",
		dep.Generation, s.ObservedGeneration, s.Replicas, s.ReadyReplicas, s.AvailableReplicas, s.UpdatedReplicas, s.UnavailableReplicas)
}

// phases maps the name of each pod that has not exited to its phase.
func phases(pods []PodInfo) map[string]Phase {
	out := make(map[string]Phase, len(pods))
	for _, p := range pods {
		out[p.Name] = p.Phase
	}
	return out
}

func podNames(pods []PodInfo) string {
	parts := make([]string, len(pods))
	for i, p := range pods {
		parts[i] = p.Name + "=" + string(p.Phase)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func jobNames(prefix string, n int) []string {
	jobs := make([]string, n)
	for i := range jobs {
		jobs[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return jobs
}

// testLogger sends the fleet's warnings (and with CLAUDECAP_TEST_LOGS set, its pod
// lifecycle) to the test's log.
func testLogger(t *testing.T) *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("CLAUDECAP_TEST_LOGS") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: level}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}
