package closedloop

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	capacityv1alpha1 "github.com/claudecap/claudecap/api/v1alpha1"
	"github.com/claudecap/claudecap/internal/kubeenv"
)

// lab is what every scenario shares: one API server, the lab's client of it, a kubeconfig
// for the manager's own user, and the two binaries built from the checkout.
type lab struct {
	env        *envtest.Environment
	client     client.WithWatch
	kubeconfig string
	managerBin string
	cliBin     string
	dir        string
}

// startLab builds the binaries and starts the control plane.
func startLab() (*lab, error) {
	dir, err := os.MkdirTemp("", "claudecap-scenarios-")
	if err != nil {
		return nil, fmt.Errorf("creating a work directory: %w", err)
	}
	l := &lab{dir: dir}
	var cliErr error
	built := make(chan struct{})
	go func() {
		defer close(built)
		l.cliBin, cliErr = build(dir, "claudecap", "./cmd/claudecap")
	}()
	l.managerBin, err = build(dir, "manager", "./cmd/manager")
	<-built
	if err = errors.Join(err, cliErr); err != nil {
		l.stop()
		return nil, err
	}
	if l.env, err = kubeenv.NewEnvironment(); err != nil {
		l.stop()
		return nil, err
	}
	cfg, err := l.env.Start()
	if err != nil {
		l.env = nil
		l.stop()
		return nil, fmt.Errorf("starting envtest: %w", err)
	}
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, capacityv1alpha1.AddToScheme} {
		if err := add(scheme); err != nil {
			l.stop()
			return nil, err
		}
	}
	// The fleets poll their Deployments four times a second and the sampler reads
	// everything once a second: client-go's default of 5 requests/s would throttle them.
	cfg.QPS, cfg.Burst = 500, 1000
	if l.client, err = client.NewWithWatch(cfg, client.Options{Scheme: scheme}); err != nil {
		l.stop()
		return nil, fmt.Errorf("creating the lab's client: %w", err)
	}
	// The manager authenticates as its own user, as in a cluster; system:masters stands in
	// for the RBAC that config/rbac grants.
	user, err := l.env.AddUser(envtest.User{Name: "claudecap-manager", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		l.stop()
		return nil, fmt.Errorf("adding the manager's user: %w", err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		l.stop()
		return nil, fmt.Errorf("writing the manager's kubeconfig: %w", err)
	}
	l.kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(l.kubeconfig, kubeconfig, 0o600); err != nil {
		l.stop()
		return nil, fmt.Errorf("writing the manager's kubeconfig: %w", err)
	}
	return l, nil
}

// build compiles one command of the module into dir.
func build(dir, name, pkg string) (string, error) {
	root, err := kubeenv.ModuleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building %s: %w\n%s", pkg, err, out)
	}
	return bin, nil
}

func (l *lab) stop() {
	if l.env != nil {
		if err := l.env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping envtest:", err)
		}
	}
	if l.dir != "" {
		_ = os.RemoveAll(l.dir) // a leftover temp dir harms nothing
	}
}

// newNamespace creates a namespace for one scenario.
func (l *lab) newNamespace(ctx context.Context, name string) (string, error) {
	// Labelled for the scenario's organization (see organizationFor).
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "scenario-" + name + "-",
		Labels: map[string]string{labOrganizationLabel: "lab-" + name}}}
	if err := l.client.Create(ctx, ns); err != nil {
		return "", fmt.Errorf("creating a namespace: %w", err)
	}
	return ns.Name, nil
}

// deleteAll removes a scenario's objects, ClaudeCapacities first so that no manager acts on
// a vanishing target. envtest runs no namespace controller, so this is the cleanup.
func (l *lab) deleteAll(ns string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, obj := range []client.Object{&capacityv1alpha1.ClaudeCapacity{}, &appsv1.Deployment{}} {
		if err := l.client.DeleteAllOf(ctx, obj, client.InNamespace(ns)); err != nil {
			return fmt.Errorf("deleting %T objects in %s: %w", obj, ns, err)
		}
	}
	return l.client.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
}
