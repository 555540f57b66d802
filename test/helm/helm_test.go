// Package helm tests the Helm chart in charts/claudecap the way users meet it: it lints
// and renders the chart with the real helm (bin/helm, built by `make helm`), checks the
// rendered objects against each other and against the kustomize manifests in config/,
// and installs the chart on a real kube-apiserver and etcd started by envtest.
package helm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/claudecap/claudecap/internal/kubeenv"
)

const (
	// chartPath is the chart, relative to the repository root (the working directory
	// of every helm run).
	chartPath = "charts/claudecap"
	// allFeaturesValues turns on every optional feature of the chart.
	allFeaturesValues = chartPath + "/ci/all-features-values.yaml"
	// helmTimeout bounds one helm command; a healthy one takes well under a second.
	helmTimeout = 60 * time.Second
)

// cluster is the envtest control plane the install tests talk to.
var cluster struct {
	root       string        // repository root
	helm       string        // the helm binary
	kubectl    string        // the envtest kubectl binary
	helmEnv    []string      // environment of helm runs: own cache/config dirs, the kubeconfig
	kubeconfig string        // a system:masters kubeconfig for the control plane
	config     *rest.Config  // the same user, for the Go client
	client     client.Client // a client of the control plane
}

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

// runTests starts the control plane around the tests. The chart's own crds/ install
// the CRD (envtest is told not to), so the copy that Helm users get is the one tested.
func runTests(m *testing.M) int {
	env, err := setUp()
	if err != nil {
		fmt.Fprintln(os.Stderr, "test/helm:", err)
		return 1
	}
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "test/helm: stopping the control plane:", err)
	}
	if err := os.RemoveAll(filepath.Dir(cluster.kubeconfig)); err != nil {
		fmt.Fprintln(os.Stderr, "test/helm:", err)
	}
	return code
}

func setUp() (*envtest.Environment, error) {
	root, err := kubeenv.ModuleRoot()
	if err != nil {
		return nil, err
	}
	cluster.root = root
	cluster.helm = os.Getenv("HELM")
	if cluster.helm == "" {
		cluster.helm = filepath.Join(root, "bin", "helm")
	}
	if _, err := os.Stat(cluster.helm); err != nil {
		return nil, fmt.Errorf("no helm binary at %s: run `make helm` (or set HELM to one): %w", cluster.helm, err)
	}
	assets, err := kubeenv.AssetsDir()
	if err != nil {
		return nil, err
	}
	cluster.kubectl = filepath.Join(assets, "kubectl")

	env, err := kubeenv.NewEnvironment()
	if err != nil {
		return nil, err
	}
	env.CRDDirectoryPaths = nil // installed by `helm install` from charts/claudecap/crds
	if cluster.config, err = env.Start(); err != nil {
		return nil, fmt.Errorf("starting the control plane: %w", err)
	}
	if err := connect(env); err != nil {
		return nil, errors.Join(err, env.Stop())
	}
	return env, nil
}

// connect writes a kubeconfig for helm and kubectl and makes the Go client.
func connect(env *envtest.Environment) error {
	user, err := env.AddUser(envtest.User{Name: "helm-test", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("adding a cluster-admin user: %w", err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		return fmt.Errorf("writing a kubeconfig: %w", err)
	}
	dir, err := os.MkdirTemp("", "claudecap-helm-test-")
	if err != nil {
		return fmt.Errorf("creating a home for helm: %w", err)
	}
	cluster.kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(cluster.kubeconfig, kubeconfig, 0o600); err != nil {
		return fmt.Errorf("writing the kubeconfig: %w", err)
	}
	// Helm keeps repositories, plugins and caches under these; a temp home keeps the test
	// from reading or writing the user's own.
	cluster.helmEnv = append(os.Environ(),
		"KUBECONFIG="+cluster.kubeconfig,
		"HELM_CACHE_HOME="+filepath.Join(dir, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(dir, "config"),
		"HELM_DATA_HOME="+filepath.Join(dir, "data"),
	)
	cluster.client, err = client.New(user.Config(), client.Options{})
	if err != nil {
		return fmt.Errorf("creating a client: %w", err)
	}
	return nil
}

// runTool runs helm or kubectl from the repository root and returns its standard output,
// or an error that carries its standard error.
func runTool(ctx context.Context, binary string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, helmTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Dir = cluster.root
	cmd.Env = cluster.helmEnv
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("%s %v: %w\n%s", filepath.Base(binary), args, err, stderr.String())
	}
	return stdout.Bytes(), nil
}

// helm runs bin/helm and fails the test when it fails.
func helm(t *testing.T, args ...string) []byte {
	t.Helper()
	out, err := runTool(t.Context(), cluster.helm, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// render runs `helm template` for a release in a namespace with extra helm flags and
// parses what it prints.
func render(t *testing.T, release, namespace string, flags ...string) manifests {
	t.Helper()
	args := append([]string{"template", release, chartPath, "--namespace", namespace}, flags...)
	objs, err := parseManifests(helm(t, args...))
	if err != nil {
		t.Fatalf("helm %v printed unparsable manifests: %v", args, err)
	}
	if len(objs) == 0 {
		t.Fatalf("helm %v rendered nothing", args)
	}
	return objs
}
