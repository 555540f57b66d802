package standin

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/claudecap/claudecap/internal/kubeenv"
	"github.com/claudecap/claudecap/internal/localcluster"
	"github.com/claudecap/claudecap/pkg/mockapi"
)

// TestFollowPodsOnLocalCluster plays the real Pods of Deployments on a local cluster
// (kube-controller-manager, kube-scheduler, KWOK nodes; deleted Pods stay Terminating for
// their grace period) with Config.FollowPods:
//
//   - finish: 3 Pods work a list of jobs; scaled 3 -> 1 while each holds one, the two
//     deleted Pods' workers finish their job within the 20 s grace period and stop long
//     before the Pods are gone; every job is acknowledged exactly once, none requeued.
//   - requeue: 2 Pods hold calls that take 30 s; scaled 2 -> 0 with a 3 s grace period,
//     their workers keep the calls until the grace period ends, then requeue the jobs:
//     none lost, none acknowledged.
//
// In both, the fleet never writes the Deployment's status: the controller-manager does.
func TestFollowPodsOnLocalCluster(t *testing.T) {
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	kube, stop := startLocalCluster(ctx, t, localcluster.Options{
		Nodes: 1, PodStartDelay: 500 * time.Millisecond, HonorGracePeriod: true,
	})
	defer stop()
	t.Logf("local cluster up in %s", time.Since(began).Round(time.Millisecond))

	t.Run("group", func(t *testing.T) {
		t.Run("finish", func(t *testing.T) {
			t.Parallel()
			testFollowFinishInHand(ctx, t, kube)
		})
		t.Run("requeue", func(t *testing.T) {
			t.Parallel()
			testFollowRequeueAtGraceEnd(ctx, t, kube)
		})
	})
	stop()
	t.Logf("whole test %s", time.Since(began).Round(time.Millisecond))
}

func testFollowFinishInHand(ctx context.Context, t *testing.T, kube client.Client) {
	const n = 80
	w := newClusterWorld(ctx, t, kube, "finishers", 3, 20, mockapi.Config{
		Latency: mockapi.Latency{TimeToFirstToken: mockapi.Fixed(0.15)},
	})
	jobs := jobNames("job-", n)
	w.push(DefaultList, jobs...)
	f := w.start(w.followConfig())

	eventually(t, 30*time.Second, "3 Ready pods, each holding a job", func() (bool, string) {
		st := f.Stats()
		held := len(w.list(DefaultProcessingList))
		return st.PodsReady == 3 && held == 3, fmt.Sprintf("pods %s, %d jobs held", podNames(f.Pods()), held)
	})
	scaled := time.Now()
	w.scaleTo(ctx, 1)
	var deleted []string
	var survivor string
	eventually(t, 10*time.Second, "2 of the 3 Pods deleted", func() (bool, string) {
		deleted, survivor = nil, ""
		for _, kp := range w.pods(ctx) {
			if kp.DeletionTimestamp != nil {
				deleted = append(deleted, kp.Name)
			} else {
				survivor = kp.Name
			}
		}
		return len(deleted) == 2 && survivor != "", fmt.Sprintf("deleted %v, left %q", deleted, survivor)
	})
	// SIGTERM: the deleted Pods' workers finish their job and stop, well within the 20 s
	// grace period during which the Pods are still Terminating.
	eventually(t, 5*time.Second, "only the surviving Pod's worker running", func() (bool, string) {
		got := podNames(f.Pods())
		return got == "["+survivor+"=Ready]", got
	})
	stoppedAfter := time.Since(scaled)
	for _, name := range deleted {
		kp := &corev1.Pod{}
		err := kube.Get(ctx, client.ObjectKey{Namespace: w.ns, Name: name}, kp)
		if err != nil || kp.DeletionTimestamp == nil {
			t.Errorf("pod %s should still be Terminating after its worker stopped, %s after the scale: %v", name, stoppedAfter, err)
		}
	}
	t.Logf("scaled 3 -> 1: workers of %v stopped %s after the scale; %s survives", deleted, stoppedAfter.Round(time.Millisecond), survivor)

	eventually(t, 40*time.Second, "every job done", func() (bool, string) {
		return len(f.Acked()) == n, fmt.Sprintf("%d of %d", len(f.Acked()), n)
	})
	checkOnce(t, jobs, f.Acked(), w.list(DefaultList))
	if held := w.list(DefaultProcessingList); len(held) != 0 {
		t.Errorf("jobs left in custody: %v", held)
	}
	st := f.Stats()
	if st.JobsCompleted != n || st.CallsOK != n || st.JobsRequeued != 0 || st.CallsFailed != 0 || st.QueueErrors != 0 {
		t.Errorf("stats %+v, want %d jobs completed by %d calls, none requeued or failed", st, n, n)
	}
	t.Logf("all %d jobs done once, %s after the scale; stats %+v", n, time.Since(scaled).Round(time.Millisecond), st)
	w.checkStatusWriters(ctx)
}

func testFollowRequeueAtGraceEnd(ctx context.Context, t *testing.T, kube client.Client) {
	const grace = 3
	w := newClusterWorld(ctx, t, kube, "quitters", 2, grace, mockapi.Config{
		Latency: mockapi.Latency{TimeToFirstToken: mockapi.Fixed(30)},
	})
	jobs := jobNames("slow-", 4)
	w.push(DefaultList, jobs...)
	f := w.start(w.followConfig())

	eventually(t, 30*time.Second, "2 Ready pods, each in a call", func() (bool, string) {
		held := len(w.list(DefaultProcessingList))
		return f.Stats().PodsReady == 2 && held == 2, fmt.Sprintf("pods %s, %d jobs held", podNames(f.Pods()), held)
	})
	scaled := time.Now()
	w.scaleTo(ctx, 0)
	eventually(t, 5*time.Second, "both workers Terminating", func() (bool, string) {
		st := f.Stats()
		return st.PodsTerminating == 2, podNames(f.Pods())
	})
	// The grace period ends at the deletionTimestamp, which has a resolution of a second:
	// between grace-1 and grace seconds after the deletion. Until then the calls go on.
	time.Sleep(time.Until(scaled.Add(time.Duration(grace-1)*time.Second - 300*time.Millisecond)))
	if held, st := w.list(DefaultProcessingList), f.Stats(); len(held) != 2 || st.JobsRequeued != 0 {
		t.Fatalf("%s after the scale, within the grace period: jobs held %v, stats %+v; want both calls going on",
			time.Since(scaled).Round(time.Millisecond), held, st)
	}
	eventually(t, time.Duration(grace+2)*time.Second, "both jobs requeued and the workers gone", func() (bool, string) {
		held := w.list(DefaultProcessingList)
		return len(held) == 0 && len(f.Pods()) == 0, fmt.Sprintf("held %v, pods %s", held, podNames(f.Pods()))
	})
	t.Logf("scaled 2 -> 0: jobs requeued and workers gone %s after the scale (grace period %ds)",
		time.Since(scaled).Round(time.Millisecond), grace)
	checkOnce(t, jobs, f.Acked(), w.list(DefaultList))
	if st := f.Stats(); st.JobsRequeued != 2 || st.CallsFailed != 2 || st.JobsCompleted != 0 || st.QueueErrors != 0 {
		t.Errorf("stats %+v, want 2 cancelled calls and their 2 jobs requeued", st)
	}
	w.checkStatusWriters(ctx)
}

// clusterWorld is one Deployment on the local cluster with its own Redis and mock API.
type clusterWorld struct {
	*world
	kube client.Client
	ns   string
}

// newClusterWorld creates a Deployment of replicas Pods with the given grace period in the
// local cluster's default namespace, and a Redis and a mock as newWorld does.
func newClusterWorld(ctx context.Context, t *testing.T, kube client.Client, name string, replicas int32, graceSeconds int64, mockCfg mockapi.Config) *clusterWorld {
	t.Helper()
	labels := map[string]string{"app": name}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: metav1.NamespaceDefault, Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: ptr.To(graceSeconds),
					Containers:                    []corev1.Container{{Name: "worker", Image: "busybox:1.37"}},
				},
			},
		},
	}
	w := worldFor(ctx, t, kube, dep, mockCfg)
	return &clusterWorld{world: w, kube: kube, ns: dep.Namespace}
}

// followConfig is the world's config playing the real Pods.
func (w *clusterWorld) followConfig() Config {
	cfg := w.config()
	cfg.Client = w.kube
	cfg.FollowPods = true
	return cfg
}

// scaleTo sets spec.replicas, as the operator does through /scale.
func (w *clusterWorld) scaleTo(ctx context.Context, n int32) {
	w.t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		dep := &appsv1.Deployment{}
		if err := w.kube.Get(ctx, w.dep, dep); err != nil {
			return err
		}
		dep.Spec.Replicas = ptr.To(n)
		return w.kube.Update(ctx, dep)
	})
	if err != nil {
		w.t.Fatalf("scaling to %d: %v", n, err)
	}
}

// pods lists the Deployment's Pods.
func (w *clusterWorld) pods(ctx context.Context) []corev1.Pod {
	w.t.Helper()
	list := &corev1.PodList{}
	if err := w.kube.List(ctx, list, client.InNamespace(w.ns), client.MatchingLabels{"app": w.dep.Name}); err != nil {
		w.t.Fatalf("listing pods: %v", err)
	}
	return list.Items
}

// checkStatusWriters fails unless only the controller-manager wrote the Deployment's
// status (its managed fields name every writer of the status subresource).
func (w *clusterWorld) checkStatusWriters(ctx context.Context) {
	w.t.Helper()
	dep := &appsv1.Deployment{}
	if err := w.kube.Get(ctx, w.dep, dep); err != nil {
		w.t.Fatalf("reading deployment: %v", err)
	}
	var writers []string
	for _, mf := range dep.ManagedFields {
		if mf.Subresource == "status" {
			writers = append(writers, mf.Manager)
		}
	}
	if len(writers) != 1 || writers[0] != "kube-controller-manager" {
		w.t.Errorf("the Deployment's status was written by %v; want only kube-controller-manager", writers)
	}
}

// startLocalCluster starts a local cluster logging to bin/localcluster/<test>/, or skips
// the test when its binaries are not built. It returns an admin client and how to stop the
// cluster (safe to call twice).
func startLocalCluster(ctx context.Context, t *testing.T, opts localcluster.Options) (client.Client, func()) {
	t.Helper()
	if _, err := localcluster.BinDir(); err != nil {
		t.Skipf("local cluster binaries not built (run `make cluster-bins`): %v", err)
	}
	if _, err := kubeenv.AssetsDir(); err != nil {
		t.Skipf("envtest binaries not built (run `make cluster-bins`): %v", err)
	}
	root, err := kubeenv.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	opts.Dir = filepath.Join(root, "bin", "localcluster", strings.ReplaceAll(t.Name(), "/", "_"))
	if err := os.RemoveAll(opts.Dir); err != nil {
		t.Fatal(err)
	}
	c, err := localcluster.Start(ctx, opts)
	if err != nil {
		t.Fatalf("starting the local cluster: %v", err)
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		if err := c.Stop(); err != nil {
			t.Errorf("stopping the local cluster: %v", err)
		}
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		stop()
		t.Fatal(err)
	}
	kube, err := client.New(c.Config, client.Options{Scheme: scheme})
	if err != nil {
		stop()
		t.Fatal(err)
	}
	return kube, stop
}
