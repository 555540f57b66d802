//go:build e2e

package e2e

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/claudecap/claudecap/internal/kubeenv"
	"github.com/claudecap/claudecap/internal/localcluster"
)

// operator is the manager binary running on the host under a ServiceAccount's token.
type operator struct {
	cmd         *exec.Cmd
	exited      chan struct{}
	log         string
	metricsAddr string
	healthAddr  string
	user        string // the ServiceAccount's user name, as the audit log shows it
}

// buildManager builds cmd/manager into dir once per run.
func buildManager(ctx context.Context, t *testing.T, dir string) string {
	t.Helper()
	root, err := kubeenv.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "manager")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/manager")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/manager: %v\n%s", err, out)
	}
	return bin
}

// serviceAccountToken asks the API server for a token of a ServiceAccount (TokenRequest),
// as the kubelet does for a Pod's projected token.
func serviceAccountToken(ctx context.Context, t *testing.T, cs kubernetes.Interface, namespace, name string) string {
	t.Helper()
	tr, err := cs.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenRequest for ServiceAccount %s/%s: %v", namespace, name, err)
	}
	return tr.Status.Token
}

// startOperator runs the manager binary with the container arguments of an installed
// manager Deployment (so the flags are the chart's or kustomize's, not the test's), its
// probe and metrics servers moved to free loopback ports, and a kubeconfig holding a
// token of the Deployment's own ServiceAccount. The caller stops it.
func startOperator(ctx context.Context, t *testing.T, c *localcluster.Cluster, cs kubernetes.Interface, bin string, dep *appsv1.Deployment) *operator {
	t.Helper()
	pod := dep.Spec.Template.Spec
	sa := pod.ServiceAccountName
	token := serviceAccountToken(ctx, t, cs, dep.Namespace, sa)
	user := "system:serviceaccount:" + dep.Namespace + ":" + sa
	kubeconfig, err := c.TokenKubeconfig(sa, token)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	kubeconfigPath := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfigPath, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}

	op := &operator{exited: make(chan struct{}), log: filepath.Join(c.Dir, "manager-"+dep.Namespace+".log"), user: user,
		metricsAddr: loopbackAddr(t), healthAddr: loopbackAddr(t)}
	var args []string
	for _, a := range containerNamed(pod, "manager").Args {
		switch {
		case strings.HasPrefix(a, "--health-probe-bind-address="):
			a = "--health-probe-bind-address=" + op.healthAddr
		case strings.HasPrefix(a, "--metrics-bind-address="):
			a = "--metrics-bind-address=" + op.metricsAddr
		}
		args = append(args, a)
	}
	logFile, err := os.Create(op.log)
	if err != nil {
		t.Fatal(err)
	}
	op.cmd = exec.Command(bin, args...)
	op.cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfigPath)
	op.cmd.Stdout, op.cmd.Stderr = logFile, logFile
	op.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := op.cmd.Start(); err != nil {
		t.Fatalf("starting the manager: %v", err)
	}
	go func() {
		_ = op.cmd.Wait()
		_ = logFile.Close()
		close(op.exited)
	}()
	t.Logf("operator: %s %s (as %s; log %s)", bin, strings.Join(args, " "), user, op.log)
	waitHealthy(t, op)
	return op
}

// waitHealthy waits until the manager answers /readyz, or fails with its log.
func waitHealthy(t *testing.T, op *operator) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-op.exited:
			t.Fatalf("the manager exited: %s", op.tail())
		default:
		}
		if resp, err := httpClient.Get("http://" + op.healthAddr + "/readyz"); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("the manager was not ready within 60 s: %s", op.tail())
}

// stop sends SIGTERM and waits for the manager to exit (SIGKILL after 20 s).
func (op *operator) stop() {
	select {
	case <-op.exited:
		return
	default:
	}
	_ = op.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-op.exited:
	case <-time.After(20 * time.Second):
		_ = op.cmd.Process.Kill()
		<-op.exited
	}
}

// running reports an error when the manager has exited.
func (op *operator) running() error {
	select {
	case <-op.exited:
		return errors.New("the manager exited: " + op.tail())
	default:
		return nil
	}
}

// tail is the end of the manager's log.
func (op *operator) tail() string {
	b, err := os.ReadFile(op.log)
	if err != nil {
		return err.Error()
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func containerNamed(pod corev1.PodSpec, name string) corev1.Container {
	for _, c := range pod.Containers {
		if c.Name == name {
			return c
		}
	}
	return corev1.Container{}
}

// loopbackAddr returns a 127.0.0.1 address whose port was free a moment ago.
func loopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return "127.0.0.1:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// managerDeployment reads the installed manager Deployment.
func managerDeployment(ctx context.Context, t *testing.T, kube client.Client, namespace, name string) *appsv1.Deployment {
	t.Helper()
	dep := &appsv1.Deployment{}
	if err := kube.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, dep); err != nil {
		t.Fatalf("reading the manager Deployment %s/%s: %v", namespace, name, err)
	}
	if len(dep.Spec.Template.Spec.Containers) == 0 || dep.Spec.Template.Spec.ServiceAccountName == "" {
		t.Fatalf("the manager Deployment %s/%s has no container or ServiceAccount", namespace, name)
	}
	return dep
}
