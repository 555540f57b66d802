package localcluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/claudecap/claudecap/internal/kubeenv"
)

// Binaries that Start runs besides envtest's kube-apiserver and etcd; `make cluster-bins`
// builds them.
var clusterBinaries = []string{"kube-controller-manager", "kube-scheduler", "kwok"}

const (
	serviceClusterIPRange = "10.96.0.0/16"
	podCIDR               = "10.244.0.0/16"
	loopback              = "127.0.0.1"
)

// Options configures Start. The zero value is usable: 3 Nodes of 200 Pods each, Pods
// Ready as soon as kwok sees them, logs in a new temporary directory.
type Options struct {
	// Dir receives the kubeconfig, kwok.yaml and one <process>.log per process. It is
	// created if missing; existing logs are overwritten. Empty means a new temporary
	// directory, which Stop leaves in place (see Cluster.Dir).
	Dir string
	// BinDir holds kube-controller-manager, kube-scheduler and kwok. Empty means the
	// directory that `make cluster-bins` fills (see BinDir).
	BinDir string

	// Nodes is how many fake Nodes to create (default 3), named kwok-node-0, ...
	Nodes int
	// PodsPerNode, NodeCPU and NodeMemory are each Node's capacity (defaults 200, "32"
	// and "256Gi").
	PodsPerNode int
	NodeCPU     string
	NodeMemory  string

	// PodStartDelay is how long a Pod stays Pending with its containers in
	// ContainerCreating, from when kwok sees it bound to a Node, before it is Running and
	// Ready. A Pod's PodStartDelayAnnotation overrides it.
	PodStartDelay time.Duration
	// PodStartJitter, when positive, spreads each Pod's start delay uniformly over
	// [PodStartDelay, PodStartDelay+PodStartJitter].
	PodStartJitter time.Duration
	// HonorGracePeriod keeps a deleted Pod (Terminating) until its grace period ends,
	// as if its containers ignored SIGTERM. By default a deleted Pod is removed as soon
	// as kwok sees the deletion, as if its containers exited on SIGTERM at once.
	HonorGracePeriod bool

	// SkipCRDs leaves the project's CRDs out, for tests that install them the way users
	// do (helm install, kubectl apply -k).
	SkipCRDs bool
	// AuditLog makes the API server write an audit log (Cluster.AuditLogPath): one JSON
	// event per request at its end, at Metadata level (who, verb, resource,
	// subresource, namespace, response code), never a request or response body. Tests
	// read it to see every call a client made and what the authorizer answered.
	AuditLog bool

	// Controllers is kube-controller-manager's --controllers (default: "*", every
	// controller that is on by default).
	Controllers []string
	// StartTimeout bounds each wait of Start (default 2 minutes).
	StartTimeout time.Duration
}

func (o *Options) defaults() {
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.PodsPerNode == 0 {
		o.PodsPerNode = 200
	}
	if o.NodeCPU == "" {
		o.NodeCPU = "32"
	}
	if o.NodeMemory == "" {
		o.NodeMemory = "256Gi"
	}
	if len(o.Controllers) == 0 {
		o.Controllers = []string{"*"}
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = 2 * time.Minute
	}
}

// Cluster is a running local cluster. Stop it when done.
type Cluster struct {
	// Config is an admin (system:masters) client configuration for the API server.
	Config *rest.Config
	// KubeconfigPath is a kubeconfig file for the same admin user.
	KubeconfigPath string
	// Dir holds the kubeconfig, kwok.yaml and the processes' logs.
	Dir string
	// Nodes are the names of the fake Nodes.
	Nodes []string
	// AuditLogPath is the API server's audit log when Options.AuditLog is set.
	AuditLogPath string

	opts     Options
	env      *envtest.Environment
	procs    []*process // in start order
	stopOnce sync.Once
	stopErr  error
}

// BinDir returns the directory that holds kube-controller-manager, kube-scheduler and
// kwok: KUBEBUILDER_ASSETS when it holds them, else the newest bin/k8s/* that does.
func BinDir() (string, error) {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" && hasAll(dir, clusterBinaries) {
		return dir, nil
	}
	root, err := kubeenv.ModuleRoot()
	if err != nil {
		return "", err
	}
	candidates, _ := filepath.Glob(filepath.Join(root, "bin", "k8s", "*"))
	sort.Sort(sort.Reverse(sort.StringSlice(candidates)))
	for _, dir := range candidates {
		if hasAll(dir, clusterBinaries) {
			return dir, nil
		}
	}
	return "", fmt.Errorf("no %s under %s; run `make cluster-bins` (builds them once, about 10 minutes)",
		strings.Join(clusterBinaries, ", "), filepath.Join(root, "bin", "k8s"))
}

func hasAll(dir string, names []string) bool {
	for _, name := range names {
		st, err := os.Stat(filepath.Join(dir, name)) //nolint:gosec // looking for a binary in a directory the user chose
		if err != nil || st.IsDir() {
			return false
		}
	}
	return true
}

// Start starts etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok on
// 127.0.0.1, creates the fake Nodes, and returns once the Nodes are Ready and
// schedulable and the controller-manager has created the default ServiceAccount. ctx
// bounds only the start; the processes run until Stop. On error, whatever was started
// is stopped.
func Start(ctx context.Context, opts Options) (c *Cluster, err error) {
	opts.defaults()
	if opts.BinDir == "" {
		if opts.BinDir, err = BinDir(); err != nil {
			return nil, err
		}
	} else if !hasAll(opts.BinDir, clusterBinaries) {
		return nil, fmt.Errorf("BinDir %s lacks one of %s; run `make cluster-bins`", opts.BinDir, strings.Join(clusterBinaries, ", "))
	}
	if opts.Dir == "" {
		if opts.Dir, err = os.MkdirTemp("", "localcluster-"); err != nil {
			return nil, err
		}
	} else if err = os.MkdirAll(opts.Dir, 0o750); err != nil {
		return nil, err
	}

	c = &Cluster{Dir: opts.Dir, KubeconfigPath: filepath.Join(opts.Dir, "kubeconfig"), opts: opts}
	defer func() {
		if err != nil {
			if stopErr := c.Stop(); stopErr != nil {
				err = errors.Join(err, fmt.Errorf("stopping after a failed start: %w", stopErr))
			}
			err = fmt.Errorf("%w (logs in %s)", err, opts.Dir)
			c = nil
		}
	}()

	if err = c.startControlPlane(); err != nil {
		return c, err
	}
	clientset, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		return c, err
	}

	if err = c.startControllerManager(); err != nil {
		return c, err
	}
	if err = c.startScheduler(); err != nil {
		return c, err
	}
	if err = c.startKwok(); err != nil {
		return c, err
	}
	if err = c.createNodes(ctx, clientset); err != nil {
		return c, err
	}

	for _, p := range c.procs {
		if err = p.waitHealthy(ctx, opts.StartTimeout); err != nil {
			return c, err
		}
	}
	if err = c.waitForServiceAccount(ctx, clientset); err != nil {
		return c, err
	}
	if err = c.waitForNodes(ctx, clientset); err != nil {
		return c, err
	}
	return c, nil
}

// startControlPlane starts etcd and kube-apiserver through envtest, with the flags a
// controller-manager needs, and writes the admin kubeconfig and the serving CA.
func (c *Cluster) startControlPlane() error {
	env, err := kubeenv.NewEnvironment()
	if err != nil {
		return err
	}
	etcdLog, err := c.logFile("etcd")
	if err != nil {
		return err
	}
	apiLog, err := c.logFile("kube-apiserver")
	if err != nil {
		return err
	}
	if c.opts.SkipCRDs {
		env.CRDDirectoryPaths, env.ErrorIfCRDPathMissing = nil, false
	}
	env.ControlPlane.Etcd = &envtest.Etcd{Out: etcdLog, Err: etcdLog}
	api := env.ControlPlane.GetAPIServer()
	api.Out, api.Err = apiLog, apiLog
	if c.opts.AuditLog {
		policy := filepath.Join(c.Dir, "audit-policy.yaml")
		if err := os.WriteFile(policy, []byte(auditPolicy), 0o600); err != nil {
			return err
		}
		c.AuditLogPath = filepath.Join(c.Dir, "audit.log")
		api.Configure().
			Set("audit-policy-file", policy).
			Set("audit-log-path", c.AuditLogPath).
			Set("audit-log-format", "json").
			Set("audit-log-mode", "blocking")
	}
	api.Configure().
		Set("advertise-address", loopback).
		Set("endpoint-reconciler-type", "none").
		Set("service-cluster-ip-range", serviceClusterIPRange).
		// envtest disables the ServiceAccount admission plugin because it has no
		// controller-manager to create the default ServiceAccounts; this cluster has one.
		Disable("disable-admission-plugins")
	env.ControlPlaneStartTimeout = c.opts.StartTimeout
	c.env = env
	if c.Config, err = env.Start(); err != nil {
		return fmt.Errorf("starting etcd and kube-apiserver: %w", err)
	}
	if err := os.WriteFile(c.KubeconfigPath, env.KubeConfig, 0o600); err != nil {
		return err
	}
	return os.WriteFile(c.caPath(), api.CA, 0o600)
}

// auditPolicy records every request once, when its response is complete, without bodies.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived", "ResponseStarted"]
rules:
- level: Metadata
`

func (c *Cluster) caPath() string { return filepath.Join(c.Dir, "ca.crt") }

func (c *Cluster) startControllerManager() error {
	port, err := freePort()
	if err != nil {
		return err
	}
	return c.start("kube-controller-manager", httpsHealthz(port),
		"--kubeconfig="+c.KubeconfigPath,
		"--leader-elect=false",
		"--bind-address="+loopback,
		"--secure-port="+strconv.Itoa(port),
		"--controllers="+strings.Join(c.opts.Controllers, ","),
		// The key envtest signs service-account tokens with: the serviceaccount-token
		// controller signs legacy token Secrets with it, and the root CA is published to
		// every namespace as kube-root-ca.crt.
		"--service-account-private-key-file="+filepath.Join(c.env.ControlPlane.APIServer.CertDir, "sa-signer.key"),
		"--root-ca-file="+c.caPath(),
		// Its default, /usr/libexec/kubernetes/..., would be created on the host.
		"--flex-volume-plugin-dir="+filepath.Join(c.Dir, "flexvolume"),
		"--kube-api-qps=200",
		"--kube-api-burst=400",
	)
}

func (c *Cluster) startScheduler() error {
	port, err := freePort()
	if err != nil {
		return err
	}
	return c.start("kube-scheduler", httpsHealthz(port),
		"--kubeconfig="+c.KubeconfigPath,
		"--leader-elect=false",
		"--bind-address="+loopback,
		"--secure-port="+strconv.Itoa(port),
	)
}

func (c *Cluster) startKwok() error {
	configPath := filepath.Join(c.Dir, "kwok.yaml")
	if err := os.WriteFile(configPath, []byte(kwokConfig(c.opts)), 0o600); err != nil {
		return err
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	return c.start("kwok", fmt.Sprintf("http://%s:%d/healthz", loopback, port),
		"--kubeconfig="+c.KubeconfigPath,
		"--config="+configPath,
		"--manage-nodes-with-annotation-selector="+kwokNodeAnnotation+"="+kwokNodeAnnotationValue,
		"--node-lease-duration-seconds="+strconv.Itoa(int(kwokNodeLeaseDuration.Seconds())),
		"--node-ip="+loopback,
		"--cidr="+podCIDR,
		"--server-address="+net.JoinHostPort(loopback, strconv.Itoa(port)),
	)
}

func (c *Cluster) createNodes(ctx context.Context, clientset kubernetes.Interface) error {
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse(c.opts.NodeCPU),
		corev1.ResourceMemory: resource.MustParse(c.opts.NodeMemory),
		corev1.ResourcePods:   *resource.NewQuantity(int64(c.opts.PodsPerNode), resource.DecimalSI),
	}
	for i := range c.opts.Nodes {
		name := fmt.Sprintf("kwok-node-%d", i)
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{
				Name:        name,
				Annotations: map[string]string{kwokNodeAnnotation: kwokNodeAnnotationValue},
				Labels: map[string]string{
					"type":                   "kwok",
					"kubernetes.io/hostname": name,
					"kubernetes.io/os":       "linux",
					"kubernetes.io/arch":     "amd64",
				},
			},
			Status: corev1.NodeStatus{Capacity: capacity, Allocatable: capacity},
		}
		if _, err := clientset.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("creating node %s: %w", name, err)
		}
		c.Nodes = append(c.Nodes, name)
	}
	return nil
}

// waitForServiceAccount waits for the controller-manager's serviceaccount controller to
// create default/default; Pods cannot be created before it (ServiceAccount admission).
func (c *Cluster) waitForServiceAccount(ctx context.Context, clientset kubernetes.Interface) error {
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, c.opts.StartTimeout, true, func(ctx context.Context) (bool, error) {
		_, err := clientset.CoreV1().ServiceAccounts(metav1.NamespaceDefault).Get(ctx, "default", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return err == nil, err
	})
	if err != nil {
		return fmt.Errorf("waiting for the default ServiceAccount (kube-controller-manager): %w", err)
	}
	return nil
}

// waitForNodes waits for every fake Node to be Ready (kwok) and free of the not-ready
// taint (node-lifecycle controller), so that the scheduler places Pods on it.
func (c *Cluster) waitForNodes(ctx context.Context, clientset kubernetes.Interface) error {
	var last string
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, c.opts.StartTimeout, true, func(ctx context.Context) (bool, error) {
		for _, name := range c.Nodes {
			node, err := clientset.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			if !nodeReady(node) {
				last = name + " not Ready"
				return false, nil
			}
			for _, taint := range node.Spec.Taints {
				if taint.Key == corev1.TaintNodeNotReady || taint.Key == corev1.TaintNodeUnreachable {
					last = name + " tainted " + taint.Key
					return false, nil
				}
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for the fake Nodes (kwok, node-lifecycle controller): %s: %w", last, err)
	}
	return nil
}

func nodeReady(node *corev1.Node) bool {
	for _, cond := range node.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}

// Stop stops kwok, the scheduler, the controller-manager, then kube-apiserver and etcd,
// and waits for each to exit. It is safe to call more than once.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() {
		var errs []error
		for i := len(c.procs) - 1; i >= 0; i-- {
			if err := c.procs[i].stop(); err != nil {
				errs = append(errs, err)
			}
		}
		if c.env != nil {
			if err := c.env.Stop(); err != nil {
				errs = append(errs, fmt.Errorf("stopping kube-apiserver and etcd: %w", err))
			}
		}
		c.stopErr = errors.Join(errs...)
	})
	return c.stopErr
}

func (c *Cluster) logFile(name string) (*os.File, error) {
	return os.Create(filepath.Join(c.Dir, name+".log")) //nolint:gosec // a file in the directory the caller chose
}

func (c *Cluster) start(name, healthURL string, args ...string) error {
	log, err := c.logFile(name)
	if err != nil {
		return err
	}
	p, err := startProcess(name, filepath.Join(c.opts.BinDir, name), args, log, healthURL)
	if err != nil {
		_ = log.Close()
		return err
	}
	c.procs = append(c.procs, p)
	return nil
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(loopback, "0"))
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func httpsHealthz(port int) string { return fmt.Sprintf("https://%s:%d/healthz", loopback, port) }

// healthClient probes the components' /healthz; their serving certificates are
// self-signed, and only 127.0.0.1 is reached.
var healthClient = &http.Client{
	Timeout:   2 * time.Second,
	Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, //nolint:gosec // self-signed loopback health checks
}

// TokenKubeconfig returns a kubeconfig for this cluster that authenticates with a bearer
// token (a ServiceAccount's, from TokenRequest), so a process run with it is authorized
// by that ServiceAccount's RBAC, not as an administrator.
func (c *Cluster) TokenKubeconfig(user, token string) ([]byte, error) {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["local"] = &clientcmdapi.Cluster{Server: c.Config.Host, CertificateAuthorityData: c.Config.CAData}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts[user] = &clientcmdapi.Context{Cluster: "local", AuthInfo: user}
	cfg.CurrentContext = user
	return clientcmd.Write(*cfg)
}
