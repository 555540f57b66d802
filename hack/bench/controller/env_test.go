package controllerbench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	capacityv1alpha1 "github.com/claudecap/claudecap/api/v1alpha1"
	"github.com/claudecap/claudecap/internal/kubeenv"
)

// benchEnv is what every benchmark of the package shares: one API server, a client of
// it, a kubeconfig the manager process uses, and the manager binary. It is built on first
// use, so the package's unit tests do not pay for an API server.
type benchEnv struct {
	env    *envtest.Environment
	client client.WithWatch
	// admin is the benchmark's own connection; manager is the manager user's, which the
	// kubeconfig file holds too.
	admin, manager *rest.Config
	kubeconfig     string
	scheme         *runtime.Scheme
	managerBin     string
	dir            string
}

var (
	envOnce   sync.Once
	sharedEnv *benchEnv
	errEnv    error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if sharedEnv != nil {
		sharedEnv.stop()
	}
	os.Exit(code)
}

// environment returns the shared environment, starting it on first use.
func environment(tb testing.TB) *benchEnv {
	tb.Helper()
	envOnce.Do(func() { sharedEnv, errEnv = startEnv() })
	if errEnv != nil {
		tb.Fatalf("benchmark environment: %v", errEnv)
	}
	return sharedEnv
}

func startEnv() (*benchEnv, error) {
	dir, err := os.MkdirTemp("", "claudecap-bench-")
	if err != nil {
		return nil, fmt.Errorf("creating a work directory: %w", err)
	}
	e := &benchEnv{dir: dir}
	if e.managerBin, err = buildManager(dir); err != nil {
		e.stop()
		return nil, err
	}
	if e.env, err = kubeenv.NewEnvironment(); err != nil {
		e.stop()
		return nil, err
	}
	cfg, err := e.env.Start()
	if err != nil {
		e.env = nil
		e.stop()
		return nil, fmt.Errorf("starting envtest: %w", err)
	}
	e.admin = cfg
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		e.stop()
		return nil, err
	}
	if err := capacityv1alpha1.AddToScheme(scheme); err != nil {
		e.stop()
		return nil, err
	}
	e.scheme = scheme
	if e.client, err = client.NewWithWatch(cfg, client.Options{Scheme: scheme}); err != nil {
		e.stop()
		return nil, fmt.Errorf("creating the benchmark's client: %w", err)
	}
	// The manager authenticates as its own user, as it would in a cluster; system:masters
	// stands in for the RBAC that config/rbac grants.
	user, err := e.env.AddUser(envtest.User{Name: "claudecap-manager", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		e.stop()
		return nil, fmt.Errorf("adding the manager's user: %w", err)
	}
	e.manager = user.Config()
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		e.stop()
		return nil, fmt.Errorf("writing the manager's kubeconfig: %w", err)
	}
	e.kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(e.kubeconfig, kubeconfig, 0o600); err != nil {
		e.stop()
		return nil, fmt.Errorf("writing the manager's kubeconfig: %w", err)
	}
	return e, nil
}

// buildManager compiles cmd/manager into dir, the binary users run.
func buildManager(dir string) (string, error) {
	root, err := kubeenv.ModuleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "manager")
	build := exec.Command("go", "build", "-o", bin, "./cmd/manager")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building cmd/manager: %w\n%s", err, out)
	}
	return bin, nil
}

func (e *benchEnv) stop() {
	if e.env != nil {
		if err := e.env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping envtest:", err)
		}
	}
	if e.dir != "" {
		_ = os.RemoveAll(e.dir) // a leftover temp dir harms nothing
	}
}

// newNamespace creates a namespace of its own for one benchmark. envtest runs no
// namespace controller, so benchmarks delete their objects themselves.
func (e *benchEnv) newNamespace(tb testing.TB, prefix string) string {
	tb.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix}}
	if err := e.client.Create(context.Background(), ns); err != nil {
		tb.Fatalf("creating a namespace: %v", err)
	}
	return ns.Name
}

// labelNamespace sets one label on a namespace.
func (e *benchEnv) labelNamespace(ctx context.Context, ns, key, value string) error {
	n := &corev1.Namespace{}
	if err := e.client.Get(ctx, client.ObjectKey{Name: ns}, n); err != nil {
		return fmt.Errorf("reading namespace %s: %w", ns, err)
	}
	if n.Labels == nil {
		n.Labels = map[string]string{}
	}
	n.Labels[key] = value
	if err := e.client.Update(ctx, n); err != nil {
		return fmt.Errorf("labelling namespace %s: %w", ns, err)
	}
	return nil
}

// deleteAll removes every ClaudeCapacity and Deployment in ns, ClaudeCapacities first so
// that no manager acts on a vanishing target.
func (e *benchEnv) deleteAll(tb testing.TB, ns string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, obj := range []client.Object{&capacityv1alpha1.ClaudeCapacity{}, &appsv1.Deployment{}} {
		if err := e.client.DeleteAllOf(ctx, obj, client.InNamespace(ns)); err != nil {
			tb.Errorf("deleting %T objects in %s: %v", obj, ns, err)
		}
	}
	if err := e.client.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		tb.Errorf("deleting namespace %s: %v", ns, err)
	}
}

// apiserverMetrics scrapes the API server's own /metrics as the benchmark's admin user,
// for the server-side latency of the requests the controller makes.
func (e *benchEnv) apiserverMetrics(ctx context.Context) (metricFamilies, error) {
	clientset, err := kubernetes.NewForConfig(e.admin)
	if err != nil {
		return nil, fmt.Errorf("creating a clientset: %w", err)
	}
	raw, err := clientset.Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("GET /metrics: %w", err)
	}
	return parseMetrics(bytes.NewReader(raw))
}
