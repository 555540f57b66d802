package standin

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/claudecap/claudecap/internal/testutil/redistest"
)

// TestFollowPodsMatchesRealPods feeds followPods lists of Pods, as the poll would read
// them, and checks which pods the fleet runs: one per live Pod, Ready with it, Terminating
// on its deletionTimestamp, killed when it vanishes; never one for a Pod first seen
// terminating or finished, nor a second one for a Pod whose worker has already exited.
func TestFollowPodsMatchesRealPods(t *testing.T) {
	t.Parallel()
	rdb := redistest.Start(t).Client()
	// No Deployment in this client, so the fleet's own poll follows nothing: only the
	// lists below decide.
	f, err := Start(context.Background(), Config{
		Client: fake.NewClientBuilder().Build(), Namespace: "ns", Deployment: "workers", Redis: rdb,
		Sidecar:    func(context.Context, string) (string, func(), error) { return "http://127.0.0.1:1", nil, nil },
		FollowPods: true, PollInterval: 50 * time.Millisecond, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	followed := func() int {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.followed)
	}
	pods := func(want string, within time.Duration) {
		t.Helper()
		eventually(t, within, "pods "+want, func() (bool, string) {
			got := podNames(f.Pods())
			return got == want, got
		})
	}

	f.followPods([]corev1.Pod{kubePod("a", false, nil)})
	pods("[a=Starting]", time.Second)
	f.followPods([]corev1.Pod{kubePod("a", true, nil)})
	pods("[a=Ready]", time.Second)

	// b is first seen Terminating, c finished: neither gets a pod.
	soon := time.Now().Add(30 * time.Second)
	b := kubePod("b", true, &soon)
	c := kubePod("c", true, nil)
	c.Status.Phase = corev1.PodSucceeded
	f.followPods([]corev1.Pod{kubePod("a", true, nil), b, c})
	pods("[a=Ready]", 0)

	// a is deleted with an hour's grace: its idle worker stops within a take (1 s).
	later := time.Now().Add(time.Hour)
	f.followPods([]corev1.Pod{kubePod("a", true, &later), b, c})
	pods("[]", 3*time.Second)
	// Still listed (Terminating), a has exited: it is not started again.
	f.followPods([]corev1.Pod{kubePod("a", true, &later), b, c})
	pods("[]", 0)
	if n := followed(); n != 3 {
		t.Errorf("following %d Pods, want a, b and c until they are gone", n)
	}

	// d vanishes without a deletionTimestamp ever seen: killed at once; a, b, c are forgotten.
	f.followPods([]corev1.Pod{kubePod("d", true, nil)})
	pods("[d=Ready]", time.Second)
	if n := followed(); n != 1 {
		t.Errorf("following %d Pods, want only d", n)
	}
	f.followPods(nil)
	pods("[]", 3*time.Second)
	if n := followed(); n != 0 {
		t.Errorf("following %d Pods after all are gone", n)
	}
	if st := f.Stats(); st.JobsCompleted != 0 || st.QueueErrors != 0 || st.SidecarFailures != 0 {
		t.Errorf("stats %+v, want nothing done and no errors", st)
	}
}

func kubePod(name string, ready bool, deletion *time.Time) corev1.Pod {
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	p := corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID("uid-" + name)},
		Status: corev1.PodStatus{
			Phase:      corev1.PodRunning,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: status}},
		},
	}
	if deletion != nil {
		p.DeletionTimestamp = &metav1.Time{Time: *deletion}
	}
	return p
}

// TestTerminateByOnlyBringsTheDeadlineForward: a second deletion with a shorter grace
// period moves the kill earlier; a later deadline does not postpone it.
func TestTerminateByOnlyBringsTheDeadlineForward(t *testing.T) {
	p := newPod(context.Background(), "p", 1)
	defer p.release()
	if !p.terminateBy(time.Now().Add(time.Hour)) {
		t.Fatal("the first terminateBy should start the termination")
	}
	if p.terminateBy(time.Now().Add(20 * time.Millisecond)) {
		t.Fatal("a second terminateBy should not report starting the termination")
	}
	p.terminateBy(time.Now().Add(2 * time.Hour))
	select {
	case <-p.work.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("the earlier deadline did not cancel the pod's work")
	}
}
