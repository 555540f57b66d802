// Command manager runs the claudecap operator: the ClaudeCapacity controller, its
// metrics endpoint and health probes.
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"os"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	capacityv1alpha1 "github.com/claudecap/claudecap/api/v1alpha1"
	"github.com/claudecap/claudecap/controllers"
	"github.com/claudecap/claudecap/internal/redislog"
	"github.com/claudecap/claudecap/pkg/capacity"
)

func main() {
	var (
		metricsAddr   string
		probeAddr     string
		secureMetrics bool
		enableHTTP2   bool
		leaderElect   bool
		catalogPath   string
		concurrency   int

		watchNamespaces   string
		operatorNamespace string
	)
	flag.StringVar(&metricsAddr, "metrics-bind-address", "0",
		"Address of the metrics endpoint: :8443 for HTTPS, :8080 for HTTP, 0 to turn it off.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz probes.")
	flag.BoolVar(&secureMetrics, "metrics-secure", true,
		"Serve metrics over HTTPS with authentication and authorization through the API server.")
	flag.BoolVar(&enableHTTP2, "enable-http2", false,
		"Allow HTTP/2 on the metrics server (off by default: HTTP/2 Rapid Reset and Stream Cancellation CVEs).")
	flag.BoolVar(&leaderElect, "leader-elect", false, "Elect a leader so that only one manager replica acts.")
	flag.StringVar(&catalogPath, "catalog", "",
		"A model catalog YAML that overrides the embedded one (prices, tier limits, model classes).")
	flag.StringVar(&watchNamespaces, "watch-namespaces", "",
		"comma-separated namespaces to watch and act in; empty: all (the RBAC must match: the chart's watchNamespaces)")
	flag.StringVar(&operatorNamespace, "operator-namespace", defaultOperatorNamespace(),
		"the operator's own namespace: the only place a ClaudeOrganization's limiter password Secret is read from (default: $POD_NAMESPACE, else claudecap-system)")
	flag.IntVar(&concurrency, "concurrent-reconciles", 4,
		"How many ClaudeCapacities are reconciled at once (one object never twice at the same time).")
	opts := zap.Options{Development: false}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))
	redislog.Install(ctrl.Log.WithName("redis"))

	if err := run(metricsAddr, probeAddr, secureMetrics, enableHTTP2, leaderElect, catalogPath, concurrency, watchNamespaces, operatorNamespace); err != nil {
		fmt.Fprintln(os.Stderr, "manager:", err)
		os.Exit(1)
	}
}

func run(metricsAddr, probeAddr string, secureMetrics, enableHTTP2, leaderElect bool, catalogPath string, concurrency int,
	watchNamespaces, operatorNamespace string) error {
	log := ctrl.Log.WithName("setup")
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(capacityv1alpha1.AddToScheme(scheme))

	catalog := capacity.DefaultCatalog()
	if catalogPath != "" {
		var err error
		if catalog, err = capacity.LoadCatalog(catalogPath); err != nil {
			return fmt.Errorf("loading the model catalog: %w", err)
		}
	}

	var tlsOpts []func(*tls.Config)
	if !enableHTTP2 {
		tlsOpts = append(tlsOpts, func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} })
	}
	metricsOpts := metricsserver.Options{BindAddress: metricsAddr, SecureServing: secureMetrics, TLSOpts: tlsOpts}
	if secureMetrics {
		metricsOpts.FilterProvider = filters.WithAuthenticationAndAuthorization
	}

	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsOpts,
		HealthProbeBindAddress: probeAddr,
		LeaderElection:         leaderElect,
		LeaderElectionID:       "claudecap.capacity.claudecap.io",
		// The Lease lives in the operator's namespace, where the chart grants it; named
		// explicitly so a manager run outside a pod (make e2e) elects there too.
		LeaderElectionNamespace: operatorNamespace,
		Cache:                   cacheOptions(watchNamespaces),
	})
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}
	if _, err := controllers.Setup(mgr, controllers.Options{
		Catalog: catalog, OperatorNamespace: operatorNamespace, MaxConcurrentReconciles: concurrency,
	}); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return fmt.Errorf("adding the health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return fmt.Errorf("adding the readiness check: %w", err)
	}
	log.Info("starting the manager", "catalog", catalog.AsOf)
	return mgr.Start(ctrl.SetupSignalHandler())
}

// defaultOperatorNamespace is the namespace the pod runs in (the chart passes it as
// POD_NAMESPACE through the downward API).
func defaultOperatorNamespace() string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	return "claudecap-system"
}

// cacheOptions limits the manager's cache, and so every watch and list, to the given
// comma-separated namespaces; empty means all. With a list, the manager needs RBAC only in
// those namespaces.
func cacheOptions(watchNamespaces string) cache.Options {
	var opts cache.Options
	for _, ns := range strings.Split(watchNamespaces, ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			if opts.DefaultNamespaces == nil {
				opts.DefaultNamespaces = map[string]cache.Config{}
			}
			opts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	return opts
}
