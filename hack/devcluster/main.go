// Command devcluster is `make dev`: a whole claudecap control loop on one machine
// with no cluster. It starts kube-apiserver and etcd from the envtest binaries on
// loopback, writes a kubeconfig under bin/dev/, installs the CRDs, runs the
// operator in-process, applies the samples, prints `kubectl get ccap`, and shuts
// everything down on Ctrl-C.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	capacityv1alpha1 "github.com/claudecap/claudecap/api/v1alpha1"
	"github.com/claudecap/claudecap/controllers"
	"github.com/claudecap/claudecap/internal/kubeenv"
	"github.com/claudecap/claudecap/pkg/capacity"
)

func main() {
	smoke := flag.Bool("smoke", false, "bring everything up, print the status once and exit (for CI)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *smoke); err != nil {
		fmt.Fprintln(os.Stderr, "dev:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, smoke bool) error {
	root, err := kubeenv.ModuleRoot()
	if err != nil {
		return err
	}
	devDir := filepath.Join(root, "bin", "dev")
	if err := os.MkdirAll(devDir, 0o750); err != nil {
		return err
	}
	logFile, err := os.Create(filepath.Join(devDir, "manager.log")) //nolint:gosec // a fixed name under the repository's bin/
	if err != nil {
		return err
	}
	defer func() { _ = logFile.Close() }()
	ctrl.SetLogger(zap.New(zap.WriteTo(logFile)))

	env, err := kubeenv.NewEnvironment()
	if err != nil {
		return err
	}
	fmt.Println("dev: starting kube-apiserver and etcd on loopback ...")
	cfg, err := env.Start()
	if err != nil {
		return fmt.Errorf("starting the local control plane: %w", err)
	}
	defer func() {
		fmt.Println("dev: stopping the control plane")
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "dev: stopping the control plane:", err)
		}
	}()

	user, err := env.AddUser(envtest.User{Name: "dev-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("creating the dev user: %w", err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		return err
	}
	kubeconfigPath := filepath.Join(devDir, "kubeconfig")
	if err := os.WriteFile(kubeconfigPath, kubeconfig, 0o600); err != nil {
		return err
	}

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := capacityv1alpha1.AddToScheme(scheme); err != nil {
		return err
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "127.0.0.1:8480"},
		HealthProbeBindAddress: "0",
	})
	if err != nil {
		return err
	}
	reconciler := &controllers.ClaudeCapacityReconciler{
		Client:   mgr.GetClient(),
		Recorder: mgr.GetEventRecorder("claudecap"),
		Catalog:  capacity.DefaultCatalog(),
	}
	if err := reconciler.SetupWithManager(mgr); err != nil {
		return err
	}
	mgrCtx, cancelMgr := context.WithCancel(ctx)
	mgrDone := make(chan error, 1)
	go func() { mgrDone <- mgr.Start(mgrCtx) }()
	defer func() {
		cancelMgr()
		if err := <-mgrDone; err != nil && !errors.Is(err, context.Canceled) {
			fmt.Fprintln(os.Stderr, "dev: the operator stopped:", err)
		}
	}()

	kubectl := kubectlPath()
	kc := func(args ...string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, kubectl, append([]string{"--kubeconfig", kubeconfigPath}, args...)...)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		return cmd
	}
	fmt.Println("dev: applying the samples (config/samples)")
	if err := kc("apply", "-n", "default", "-k", filepath.Join(root, "config", "samples")).Run(); err != nil {
		return fmt.Errorf("applying the samples: %w", err)
	}
	if err := kc("wait", "-n", "default", "--for=condition=Ready", "--timeout=60s", "claudecapacity", "--all").Run(); err != nil {
		fmt.Fprintln(os.Stderr, "dev: the samples are not Ready yet; `kubectl describe ccap` says why")
	}
	fmt.Println()
	if err := kc("get", "ccap", "-n", "default", "-o", "wide").Run(); err != nil {
		return err
	}
	fmt.Printf(`
The local control plane is up. In another shell:

  export KUBECONFIG=%s
  %s get ccap -o wide            # replicas, desired, queue, what limits scaling
  %s describe ccap summarizer    # conditions and events
  %s get ccap summarizer -o jsonpath='{.status.plan}'

Operator logs: %s  Metrics: http://127.0.0.1:8480/metrics
Press Ctrl-C to stop everything.
`, kubeconfigPath, kubectl, kubectl, kubectl, logFile.Name())

	if smoke {
		return nil
	}
	select {
	case <-ctx.Done():
		return nil
	case err := <-mgrDone:
		mgrDone <- err
		if err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("the operator stopped: %w", err)
		}
		return nil
	}
}

// kubectlPath prefers the kubectl built next to the envtest binaries, whose version
// matches the API server.
func kubectlPath() string {
	if dir, err := kubeenv.AssetsDir(); err == nil {
		p := filepath.Join(dir, "kubectl")
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	if p, err := exec.LookPath("kubectl"); err == nil {
		return p
	}
	return "kubectl"
}
