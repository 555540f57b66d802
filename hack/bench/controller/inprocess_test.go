package controllerbench

import (
	"context"
	"flag"
	"net"
	"os"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/claudecap/claudecap/controllers"
)

var (
	inProcess = flag.Bool("inprocess", false,
		"run the controller inside the benchmark's process, wired as cmd/manager wires it, so that "+
			"-cpuprofile and -memprofile see it (its memory figures then include the benchmark's own)")
	concurrentReconciles = flag.Int("concurrent-reconciles", 0,
		"with -inprocess: the manager's MaxConcurrentReconciles (0 keeps controller-runtime's default of 1); "+
			"measures what a change of that setting would give")
)

// inProcessManager is the controller running in the benchmark's own process.
type inProcessManager struct {
	metricsURL string
	cancel     context.CancelFunc
	exited     chan struct{}
	err        error
}

// startInProcess wires the reconciler the way cmd/manager does (same scheme, catalog,
// recorder and defaults; plain-HTTP metrics on a loopback port) and starts it.
func startInProcess(tb testing.TB, e *benchEnv) operator {
	tb.Helper()
	ctrl.SetLogger(logr.Discard()) // the child-process manager logs errors to a file; this one stays quiet
	port, err := freePort()
	if err != nil {
		tb.Fatalf("finding a port for the manager's metrics: %v", err)
	}
	addr := net.JoinHostPort("127.0.0.1", port)
	cfg := rest.CopyConfig(e.manager)
	cfg.QPS = -1 // as ctrl.GetConfigOrDie leaves it: no client-side rate limit
	opts := ctrl.Options{
		Scheme:                 e.scheme,
		Metrics:                metricsserver.Options{BindAddress: addr},
		HealthProbeBindAddress: "0",
		// The reaction benchmark's manager registered the same controller name before.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	}
	if *concurrentReconciles > 0 {
		opts.Controller.MaxConcurrentReconciles = *concurrentReconciles
	}
	mgr, err := ctrl.NewManager(cfg, opts)
	if err != nil {
		tb.Fatalf("creating the manager: %v", err)
	}
	if _, err := controllers.Setup(mgr, controllers.Options{}); err != nil {
		tb.Fatalf("setting up the controllers: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &inProcessManager{metricsURL: "http://" + addr + "/metrics", cancel: cancel, exited: make(chan struct{})}
	go func() {
		m.err = mgr.Start(ctx)
		close(m.exited)
	}()
	tb.Cleanup(func() { m.stop(tb) })
	if err := waitServing(m.metricsURL, m.exited, 30*time.Second); err != nil {
		tb.Fatalf("in-process manager: %v", err)
	}
	return m
}

func (m *inProcessManager) scrape() (metricFamilies, error) { return scrapeMetrics(m.metricsURL) }

func (m *inProcessManager) pid() int { return os.Getpid() }

func (m *inProcessManager) ownProcess() bool { return false }

func (m *inProcessManager) alive(tb testing.TB) {
	tb.Helper()
	select {
	case <-m.exited:
		tb.Fatalf("the in-process manager stopped: %v", m.err)
	default:
	}
}

func (m *inProcessManager) stop(tb testing.TB) {
	m.cancel()
	select {
	case <-m.exited:
	case <-time.After(30 * time.Second):
		tb.Errorf("the in-process manager did not stop within 30 s")
	}
}

func (m *inProcessManager) logTail() string { return "(in-process manager: logs discarded)" }
