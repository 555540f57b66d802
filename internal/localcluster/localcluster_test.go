package localcluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/claudecap/claudecap/internal/kubeenv"
)

const startDelay = 2 * time.Second

// podTimes records when the test first saw a Pod in each state (polling every 50ms).
type podTimes struct {
	seen, created, ready time.Time // created: bound to a Node and given an IP by kwok
	node                 string
}

func TestDeploymentOnLocalCluster(t *testing.T) {
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, stop := startForTest(ctx, t, Options{Nodes: 2, PodStartDelay: startDelay})
	defer stop()
	t.Logf("cluster up in %s; logs in %s", time.Since(began).Round(time.Millisecond), c.Dir)

	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	const ns = "localcluster-test"
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	checkServiceAccountMachinery(ctx, t, cs, ns)

	replicas := int32(3)
	labels := map[string]string{"app": "demo"}
	deploy := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "demo", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				// The default 30s grace period: scaling down must not wait for it.
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.invalid/app:1"}}},
			},
		},
	}
	created := time.Now()
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, deploy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	times := followPodsUntilReady(ctx, t, cs, ns, 3, created)
	t.Logf("pods (ms after the Deployment was created): %s", describe(times, created))
	checkStartTimes(t, times, c.Nodes, created)
	checkOwnership(ctx, t, cs, ns, "demo")
	waitDeploymentReady(ctx, t, cs, ns, "demo", 3)

	// Scale to 1: two Pods go, without waiting for their 30s grace period.
	scaled := time.Now()
	if _, err := cs.AppsV1().Deployments(ns).UpdateScale(ctx, "demo", &autoscalingv1.Scale{
		ObjectMeta: metav1.ObjectMeta{Name: "demo", Namespace: ns},
		Spec:       autoscalingv1.ScaleSpec{Replicas: 1},
	}, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	var left []corev1.Pod
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		left = pods.Items
		return len(left) == 1, nil
	})
	if err != nil {
		t.Fatalf("waiting for 2 of 3 Pods to go: %v (%d left)", err, len(left))
	}
	t.Logf("scaled to 1: 2 Pods gone %s after the scale", time.Since(scaled).Round(time.Millisecond))
	if times[left[0].Name] == nil || !podReady(&left[0]) {
		t.Errorf("the Pod left, %s, is not one of the 3 Ready ones", left[0].Name)
	}
	waitDeploymentReady(ctx, t, cs, ns, "demo", 1)

	// Deleting the namespace: the namespace controller and garbage collector clean up.
	deleted := time.Now()
	if err := cs.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		t.Errorf("namespace %s not gone: %v", ns, err)
	}
	t.Logf("namespace gone %s after its deletion", time.Since(deleted).Round(time.Millisecond))

	stop()
	t.Logf("whole test %s", time.Since(began).Round(time.Millisecond))
}

// startForTest starts a cluster logging to bin/localcluster/<test>/, or skips the test
// when the binaries are not built. The returned stop (safe to call twice) stops it and
// checks that none of its five processes is left.
func startForTest(ctx context.Context, t *testing.T, opts Options) (*Cluster, func()) {
	t.Helper()
	if _, err := BinDir(); err != nil {
		t.Skipf("local cluster binaries not built (run `make cluster-bins`): %v", err)
	}
	if _, err := kubeenv.AssetsDir(); err != nil {
		t.Skipf("envtest binaries not built (run `make cluster-bins`): %v", err)
	}
	root, err := kubeenv.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	opts.Dir = filepath.Join(root, "bin", "localcluster", t.Name())
	if err := os.RemoveAll(opts.Dir); err != nil {
		t.Fatal(err)
	}
	c, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	// Every process of this cluster mentions one of these paths on its command line.
	marks := []string{c.Dir, c.env.ControlPlane.APIServer.CertDir, c.env.ControlPlane.Etcd.DataDir}
	if pids := processesMentioning(t, marks); len(pids) != 5 {
		t.Errorf("want 5 processes (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok), found %v", pids)
	}
	stopped := false
	return c, func() {
		if stopped {
			return
		}
		stopped = true
		t0 := time.Now()
		if err := c.Stop(); err != nil {
			t.Errorf("Stop: %v", err)
		}
		t.Logf("stopped in %s", time.Since(t0).Round(time.Millisecond))
		if pids := processesMentioning(t, marks); len(pids) != 0 {
			t.Errorf("processes left behind after Stop: %v", pids)
		}
	}
}

// followPodsUntilReady polls the namespace's Pods every 50ms until want of them are
// Ready, recording when each state was first seen.
func followPodsUntilReady(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns string, want int, origin time.Time) map[string]*podTimes {
	t.Helper()
	times := map[string]*podTimes{}
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		now := time.Now()
		ready := 0
		for i := range pods.Items {
			pod := &pods.Items[i]
			pt := times[pod.Name]
			if pt == nil {
				pt = &podTimes{seen: now}
				times[pod.Name] = pt
			}
			if pt.created.IsZero() && pod.Spec.NodeName != "" && pod.Status.PodIP != "" {
				pt.created, pt.node = now, pod.Spec.NodeName
			}
			if !podReady(pod) {
				continue
			}
			if pt.ready.IsZero() {
				pt.ready = now
				if pod.Status.Phase != corev1.PodRunning {
					return false, fmt.Errorf("pod %s Ready in phase %s", pod.Name, pod.Status.Phase)
				}
			}
			ready++
		}
		return len(pods.Items) == want && ready == want, nil
	})
	if err != nil {
		t.Fatalf("waiting for %d Ready Pods: %v; seen %s", want, err, describe(times, origin))
	}
	return times
}

// checkStartTimes checks that each Pod ran on a fake Node and became Ready only
// startDelay after kwok created it there.
func checkStartTimes(t *testing.T, times map[string]*podTimes, nodeNames []string, deployCreated time.Time) {
	t.Helper()
	nodes := map[string]bool{}
	for _, n := range nodeNames {
		nodes[n] = true
	}
	for name, pt := range times {
		if !nodes[pt.node] {
			t.Errorf("pod %s on node %q, not one of the fake nodes %v", name, pt.node, nodeNames)
		}
		if pt.created.IsZero() {
			t.Errorf("pod %s was never seen bound and not yet Ready", name)
			continue
		}
		// Polling every 50ms, and kwok starts the delay when it sees its own status
		// update, a moment after the test does: allow 250ms of slack below.
		if d := pt.ready.Sub(pt.created); d < startDelay-250*time.Millisecond || d > startDelay+5*time.Second {
			t.Errorf("pod %s Ready %s after it was created on its node; want about %s", name, d, startDelay)
		}
		if d := pt.ready.Sub(deployCreated); d < startDelay {
			t.Errorf("pod %s Ready %s after the Deployment was created, before the %s start delay", name, d, startDelay)
		}
	}
}

// checkOwnership checks Deployment -> one ReplicaSet -> its Pods, each with a projected
// service-account token (the ServiceAccount admission plugin is on).
func checkOwnership(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns, deployment string) {
	t.Helper()
	rsList, err := cs.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rsList.Items) != 1 || !ownedBy(rsList.Items[0].OwnerReferences, "Deployment", deployment) {
		t.Fatalf("want one ReplicaSet owned by Deployment %s, got %d", deployment, len(rsList.Items))
	}
	rsName := rsList.Items[0].Name
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range pods.Items {
		pod := &pods.Items[i]
		if !ownedBy(pod.OwnerReferences, "ReplicaSet", rsName) {
			t.Errorf("pod %s not owned by ReplicaSet %s", pod.Name, rsName)
		}
		if !hasProjectedToken(pod) {
			t.Errorf("pod %s has no projected service-account token volume (ServiceAccount admission)", pod.Name)
		}
	}
}

// checkServiceAccountMachinery checks what the controller-manager's serviceaccount and
// root-ca-cert-publisher controllers make, and that TokenRequest works.
func checkServiceAccountMachinery(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		if _, err := cs.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{}); err != nil {
			return false, nil
		}
		_, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("no default ServiceAccount or kube-root-ca.crt in %s: %v", ns, err)
	}
	tok, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "default", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenRequest: %v", err)
	}
	if strings.Count(tok.Status.Token, ".") != 2 {
		t.Errorf("TokenRequest returned %q, not a JWT", tok.Status.Token)
	}
}

func waitDeploymentReady(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns, name string, want int32) {
	t.Helper()
	var d *appsv1.Deployment
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		var err error
		d, err = cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return d.Status.ObservedGeneration == d.Generation && d.Status.Replicas == want &&
			d.Status.ReadyReplicas == want && d.Status.AvailableReplicas == want, nil
	})
	if err != nil {
		t.Fatalf("deployment %s: want %d ready replicas, status %+v: %v", name, want, d.Status, err)
	}
}

func podReady(pod *corev1.Pod) bool {
	for _, cond := range pod.Status.Conditions {
		if cond.Type == corev1.PodReady {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}

func ownedBy(refs []metav1.OwnerReference, kind, name string) bool {
	for _, ref := range refs {
		if ref.Kind == kind && ref.Name == name && ref.Controller != nil && *ref.Controller {
			return true
		}
	}
	return false
}

func hasProjectedToken(pod *corev1.Pod) bool {
	for _, v := range pod.Spec.Volumes {
		if v.Projected == nil {
			continue
		}
		for _, src := range v.Projected.Sources {
			if src.ServiceAccountToken != nil {
				return true
			}
		}
	}
	return false
}

func describe(times map[string]*podTimes, origin time.Time) string {
	ms := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return strconv.FormatInt(t.Sub(origin).Milliseconds(), 10)
	}
	var parts []string
	for name, pt := range times {
		parts = append(parts, fmt.Sprintf("%s on %s: seen %s, created %s, ready %s", name, pt.node, ms(pt.seen), ms(pt.created), ms(pt.ready)))
	}
	return strings.Join(parts, "; ")
}

// processesMentioning returns the live processes whose command line contains any of marks.
func processesMentioning(t *testing.T, marks []string) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(raw) == 0 {
			continue // gone, or a zombie
		}
		cmdline := strings.ReplaceAll(string(raw), "\x00", " ")
		for _, m := range marks {
			if m != "" && strings.Contains(cmdline, m) {
				found = append(found, fmt.Sprintf("%d %s", pid, strings.Fields(cmdline)[0]))
				break
			}
		}
	}
	return found
}

// TestGracePeriodOnLocalCluster checks Options.HonorGracePeriod: a deleted Pod stays
// Terminating until its grace period ends.
func TestGracePeriodOnLocalCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, stop := startForTest(ctx, t, Options{Nodes: 1, HonorGracePeriod: true})
	defer stop()
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	grace := int64(3)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "slow-stop", Namespace: metav1.NamespaceDefault},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: &grace,
			Containers:                    []corev1.Container{{Name: "app", Image: "example.invalid/app:1"}},
		},
	}
	if _, err := cs.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := cs.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		return err == nil && podReady(p), err
	})
	if err != nil {
		t.Fatalf("pod not Ready: %v", err)
	}
	deleted := time.Now()
	if err := cs.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := cs.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		t.Fatalf("pod not gone: %v", err)
	}
	// deletionTimestamp has a resolution of a second.
	gone := time.Since(deleted)
	if gone < time.Duration(grace-1)*time.Second || gone > time.Duration(grace+3)*time.Second {
		t.Errorf("pod gone %s after deletion; want about its %ds grace period", gone, grace)
	}
	t.Logf("pod gone %s after deletion (grace period %ds)", gone.Round(time.Millisecond), grace)
}
