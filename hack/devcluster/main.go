// Command devcluster is `make dev`: a whole claudecap control loop on one machine
// with no cluster. It starts a local cluster on loopback (internal/localcluster: etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler, and KWOK's fake nodes, whose
// Pods become Ready 5 s after they are created and stay Terminating for their grace
// period), writes its kubeconfig and logs under bin/dev/, installs the CRDs, runs the
// operator in-process, applies the samples, plays the summarizer's Pods' workers
// (internal/standin, following the real Pods), prints `kubectl get ccap`, and shuts
// everything down on Ctrl-C.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	capacityv1alpha1 "github.com/claudecap/claudecap/api/v1alpha1"
	"github.com/claudecap/claudecap/controllers"
	"github.com/claudecap/claudecap/internal/kubeenv"
	"github.com/claudecap/claudecap/internal/localcluster"
)

func main() {
	smoke := flag.Bool("smoke", false, "bring everything up, print the status once and exit (for CI)")
	traffic := flag.Bool("traffic", true, "run the summarizer's pods (a worker and a sidecar proxy each) and a mock Messages API")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *smoke, *traffic); err != nil {
		fmt.Fprintln(os.Stderr, "dev:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, smoke, traffic bool) error {
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

	stopRedis, err := startRedis(devDir)
	if err != nil {
		return err
	}
	defer stopRedis()
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	defer func() { _ = rdb.Close() }()
	// The stream sample's workers would create their consumer group; nothing runs them here.
	if err := rdb.XGroupCreateMkStream(ctx, "classify", "classifiers", "$").Err(); err != nil &&
		!strings.Contains(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("creating the sample stream's consumer group: %w", err)
	}

	cluster, err := startCluster(ctx, devDir)
	if err != nil {
		return err
	}
	defer func() {
		fmt.Println("dev: stopping the local cluster")
		if err := cluster.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "dev: stopping the local cluster:", err)
		}
	}()
	cfg, kubeconfigPath := cluster.Config, cluster.KubeconfigPath

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
	if _, err := controllers.Setup(mgr, controllers.Options{OperatorNamespace: operatorNamespace}); err != nil {
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
	if err := applySamples(kc, root); err != nil {
		return err
	}
	trafficNote := "(no traffic: started with -traffic=false)"
	if traffic {
		kube, err := client.New(cfg, client.Options{Scheme: scheme})
		if err != nil {
			return err
		}
		demo, err := startDemoTraffic(ctx, kube, rdb, logFile)
		if err != nil {
			return err
		}
		defer demo.close()
		trafficNote = fmt.Sprintf("Mock Messages API: %s\n"+
			"The Pods are real (`%s get pods -o wide -w`): the controller-manager creates them, the scheduler\n"+
			"places them on KWOK's fake nodes, and they are Ready %s after they are created. No container runs:\n"+
			"for each Ready summarizer-workers Pod this process runs its worker and its own sidecar proxy; the\n"+
			"worker takes jobs from the list and calls the API through the proxy. A deleted Pod's worker finishes\n"+
			"its job within the grace period, then stops (the Pod stays Terminating until the period ends).\n"+
			"Their lifecycle is in the operator log.",
			demo.mockURL, kubectl, demoStartDelay)
	}
	for _, what := range [][]string{{kubectlGet, "corg", "-o", "wide"}, {kubectlGet, "ccap", "-n", "default", "-o", "wide"}} {
		fmt.Println()
		if err := kc(what...).Run(); err != nil {
			return err
		}
	}
	fmt.Printf(`
The local cluster is up. In another shell:

  export KUBECONFIG=%s
  %s get ccap -o wide -w         # replicas, running, desired, queue, what limits scaling
  %s get pods -o wide -w         # the workers' Pods on the fake nodes
  %s describe ccap summarizer    # conditions and events
  %s get corg acme-prod -o yaml  # the organization: limits, members, allocations
  redis-cli -p 6379 RPUSH jobs $(seq 600)   # a backlog: watch summarizer-workers scale up
  redis-cli -p 6379 DEL jobs                # and drain it

%s
Operator logs: %s  Metrics: http://127.0.0.1:8480/metrics
Cluster logs (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok): %s/*.log
Press Ctrl-C to stop everything.
`, kubeconfigPath, kubectl, kubectl, kubectl, kubectl, trafficNote, logFile.Name(), cluster.Dir)

	if smoke {
		return smokeScaling(ctx, rdb, kc, traffic)
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

// startCluster starts the local cluster with its kubeconfig and logs in dir.
func startCluster(ctx context.Context, dir string) (*localcluster.Cluster, error) {
	if _, err := localcluster.BinDir(); err != nil {
		return nil, fmt.Errorf("the local cluster's binaries are not built: %w", err)
	}
	fmt.Printf("dev: starting a local cluster on loopback (etcd, kube-apiserver, kube-controller-manager,\n"+
		"     kube-scheduler, kwok with %d fake nodes) ...\n", devNodes)
	startCtx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cluster, err := localcluster.Start(startCtx, localcluster.Options{
		Dir:              dir,
		Nodes:            devNodes,
		PodStartDelay:    demoStartDelay,
		HonorGracePeriod: true,
	})
	if err != nil {
		return nil, fmt.Errorf("starting the local cluster: %w", err)
	}
	return cluster, nil
}

// devNodes is how many fake Nodes the local cluster has (200 Pods each).
const devNodes = 3

// applySamples does the administrators' part (the operator's namespace, and the label by
// which the sample organization, acme-prod, lets the default namespace draw on its budget),
// applies config/samples and waits for them to be Ready.
func applySamples(kc func(args ...string) *exec.Cmd, root string) error {
	if err := kc("create", "namespace", operatorNamespace).Run(); err != nil {
		return fmt.Errorf("creating the operator's namespace: %w", err)
	}
	if err := kc("label", "namespace", "default", "--overwrite", "capacity.claudecap.io/organization=acme-prod").Run(); err != nil {
		return fmt.Errorf("labelling the default namespace for the sample organization: %w", err)
	}
	fmt.Println("dev: applying the samples (config/samples)")
	if err := kc("apply", "-n", "default", "-k", filepath.Join(root, "config", "samples")).Run(); err != nil {
		return fmt.Errorf("applying the samples: %w", err)
	}
	if err := kc("wait", "-n", "default", "--for=condition=Ready", "--timeout=60s", "claudecapacity", "--all").Run(); err != nil {
		fmt.Fprintln(os.Stderr, "dev: the samples are not Ready yet; `kubectl describe ccap` says why")
	}
	return nil
}

// operatorNamespace is the operator's own namespace: where a ClaudeOrganization's limiter
// password Secret would live.
const operatorNamespace = "claudecap-system"

// redisAddr is where the samples expect their queues.
const redisAddr = "127.0.0.1:6379"

// startRedis uses a Redis already listening on redisAddr, or starts one for the session
// and returns how to stop it. The server is in its own process group, so Ctrl-C does not
// reach it before the workers have acknowledged their last jobs; it dies with this process.
func startRedis(dir string) (func(), error) {
	if conn, err := net.DialTimeout("tcp", redisAddr, 300*time.Millisecond); err == nil {
		_ = conn.Close()
		fmt.Println("dev: using the Redis already listening on " + redisAddr)
		return func() {}, nil
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errors.New("redis-server is not installed: run `make redis` (or apt-get install redis-server)")
	}
	cmd := exec.Command(bin, "--bind", "127.0.0.1", "--port", "6379", "--save", "", "--appendonly", "no", "--dir", dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting redis-server: %w", err)
	}
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if conn, err := net.DialTimeout("tcp", redisAddr, 100*time.Millisecond); err == nil {
			_ = conn.Close()
			fmt.Println("dev: started redis-server on " + redisAddr)
			return stop, nil
		}
	}
	stop()
	return nil, errors.New("redis-server did not start listening on " + redisAddr)
}

// smokeScaling pushes a backlog into the summarizer sample's queue and waits until its
// Deployment has scaled up and its 10 Pods are Ready, and (with traffic) until the
// operator sees their workers' usage and Ready Pods, proving the loop end to end, then
// prints the status again.
func smokeScaling(ctx context.Context, rdb *redis.Client, kc func(args ...string) *exec.Cmd, traffic bool) error {
	jobs := make([]any, 600)
	for i := range jobs {
		jobs[i] = fmt.Sprintf("job-%d", i)
	}
	if err := rdb.RPush(ctx, "jobs", jobs...).Err(); err != nil {
		return fmt.Errorf("pushing the smoke backlog: %w", err)
	}
	fmt.Println("\ndev: pushed 600 jobs into the summarizer's queue; waiting for it to scale up")
	if err := kc("wait", "-n", "default", "--for=jsonpath={.spec.replicas}=10", "--timeout=90s",
		"deployment/summarizer-workers").Run(); err != nil {
		_ = kc(kubectlGet, "ccap", "-n", "default", "-o", "wide").Run()
		_ = kc("describe", "ccap", "-n", "default", "summarizer").Run()
		return fmt.Errorf("the summarizer did not scale to its demand: %w", err)
	}
	fmt.Println("dev: waiting for its 10 Pods to be Ready")
	if err := kc("wait", "-n", "default", "--for=jsonpath={.status.readyReplicas}=10", "--timeout=60s",
		"deployment/summarizer-workers").Run(); err != nil {
		_ = kc(kubectlGet, "pods", "-n", "default", "-o", "wide").Run()
		return fmt.Errorf("the summarizer's Pods did not become Ready: %w", err)
	}
	if traffic {
		fmt.Println("dev: waiting for the operator to see the workers' usage through the limiter")
		if err := waitObservedUsage(ctx, kc); err != nil {
			return err
		}
	}
	if err := kc("wait", "-n", "default", "--for=jsonpath={.status.readyReplicas}=10", "--timeout=60s",
		"claudecapacity/summarizer").Run(); err != nil {
		return fmt.Errorf("the operator did not report the 10 Ready Pods: %w", err)
	}
	fmt.Println()
	if err := kc(kubectlGet, "deploy", "-n", "default").Run(); err != nil {
		return err
	}
	fmt.Println()
	return kc(kubectlGet, "ccap", "-n", "default", "-o", "wide").Run()
}

// kubectlGet is kubectl's read verb, used by every status print.
const kubectlGet = "get"

// waitObservedUsage waits until the summarizer's status shows output tokens used by its
// workers, as the limiters recorded them.
func waitObservedUsage(ctx context.Context, kc func(args ...string) *exec.Cmd) error {
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		cmd := kc(kubectlGet, "ccap", "-n", "default", "summarizer", "-o", "jsonpath={.status.observed.outputTokensPerMinute}")
		cmd.Stdout = nil
		out, err := cmd.Output()
		if err == nil && len(out) > 0 && string(out) != "0" {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
	// Say why: the summarizer's and the organization's conditions and observations.
	for _, what := range [][]string{
		{kubectlGet, "ccap", "-n", "default", "summarizer", "-o", "jsonpath={.status.conditions}{\"\\n\"}{.status.observed}{\"\\n\"}"},
		{kubectlGet, "corg", "acme-prod", "-o", "jsonpath={.status.conditions}{\"\\n\"}{.status.classes}{\"\\n\"}"},
	} {
		_ = kc(what...).Run()
	}
	return errors.New("the operator did not report the workers' usage within 90 s (their status is above)")
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
