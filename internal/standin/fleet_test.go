package standin

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/claudecap/claudecap/pkg/mockapi"
)

// TestPodsBecomeReadyAfterStartDelay: pods exist (status.replicas) at once, take no job and
// are not ready until the start delay has passed; then readyReplicas follows and the
// queued job is worked, with a prompt of the configured size.
func TestPodsBecomeReadyAfterStartDelay(t *testing.T) {
	t.Parallel()
	const startDelay = 1500 * time.Millisecond
	w := newWorld(t, 2, mockapi.Config{})
	w.push(DefaultList, "a")
	cfg := w.config()
	cfg.StartDelay = startDelay
	started := time.Now()
	f := w.start(cfg)

	eventually(t, time.Second, "two Starting pods in status", func() (bool, string) {
		dep := w.deployment()
		s := dep.Status
		ok := s.Replicas == 2 && s.ReadyReplicas == 0 && s.UnavailableReplicas == 2 && s.ObservedGeneration == dep.Generation
		return ok && f.Stats().PodsStarting == 2, statusOf(dep) + " pods " + podNames(f.Pods())
	})
	time.Sleep(time.Until(started.Add(startDelay - 300*time.Millisecond)))
	if st, queued := f.Stats(), w.list(DefaultList); st.PodsReady != 0 || len(queued) != 1 {
		t.Fatalf("before the start delay: %d pods Ready, queue %v; want none Ready and the job still queued", st.PodsReady, queued)
	}
	if dep := w.deployment(); dep.Status.ReadyReplicas != 0 {
		t.Fatalf("before the start delay: %s", statusOf(dep))
	}

	eventually(t, 3*time.Second, "two ready replicas in status", func() (bool, string) {
		dep := w.deployment()
		s := dep.Status
		return s.Replicas == 2 && s.ReadyReplicas == 2 && s.AvailableReplicas == 2 && s.UpdatedReplicas == 2 &&
			s.UnavailableReplicas == 0, statusOf(dep)
	})
	for _, p := range f.Pods() {
		if p.Phase != PhaseReady || p.ReadyAt.Sub(p.Created) < startDelay {
			t.Errorf("pod %s is %s, Ready %s after creation; want Ready after at least %s", p.Name, p.Phase, p.ReadyAt.Sub(p.Created), startDelay)
		}
	}
	if got := podNames(f.Pods()); got != "[workers-1=Ready workers-2=Ready]" {
		t.Errorf("pods %s, want workers-1 and workers-2", got)
	}
	eventually(t, 3*time.Second, "the job acknowledged", func() (bool, string) {
		return f.Acked()["a"] == 1, fmt.Sprint(f.Acked())
	})
	if n := len(w.list(DefaultProcessingList)); n != 0 {
		t.Errorf("%d jobs left in the processing list", n)
	}
	if in := w.mock.Stats().Tokens.Input; in != 200 {
		t.Errorf("the mock counted %d input tokens for one call, want the configured 200", in)
	}
	if st := f.Stats(); st.JobsCompleted != 1 || st.CallsOK != 1 || st.JobsRequeued != 0 || st.QueueErrors != 0 {
		t.Errorf("stats %+v, want one job completed by one successful call", st)
	}
}

// TestScaleInStopsNewestAndFinishesInFlight: while both Ready pods are in the middle of
// a 3 s call, scaling 2 -> 4 -> 3 stops the pod still Starting rather than the newest
// (Ready) one, and 3 -> 1 stops the newest Ready pods. The terminating pod that holds a
// job finishes and acknowledges it, takes no new one, and exits.
func TestScaleInStopsNewestAndFinishesInFlight(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 2, mockapi.Config{Latency: mockapi.Latency{TimeToFirstToken: mockapi.Fixed(3)}})
	cfg := w.config()
	cfg.StartDelay = 200 * time.Millisecond
	proxies := cfg.Sidecar
	cfg.Sidecar = func(ctx context.Context, pod string) (string, func(), error) {
		if pod == "workers-3" { // a slow sidecar keeps workers-3 Starting after workers-4 is Ready
			select {
			case <-ctx.Done():
			case <-time.After(2 * time.Second):
			}
		}
		return proxies(ctx, pod)
	}
	f := w.start(cfg)
	eventually(t, 3*time.Second, "two Ready pods", func() (bool, string) {
		return f.Stats().PodsReady == 2, podNames(f.Pods())
	})
	w.push(DefaultList, "a", "b")
	eventually(t, 2*time.Second, "both jobs in flight", func() (bool, string) {
		return len(w.list(DefaultProcessingList)) == 2, fmt.Sprint(w.list(DefaultProcessingList))
	})
	w.scale(4)
	eventually(t, 1500*time.Millisecond, "workers-4 Ready while workers-3 is Starting", func() (bool, string) {
		got := podNames(f.Pods())
		return got == "[workers-1=Ready workers-2=Ready workers-3=Starting workers-4=Ready]", got
	})
	w.scale(3)
	eventually(t, time.Second, "the Starting pod stopped, not the newest", func() (bool, string) {
		pods := f.Pods()
		phase := phases(pods)
		stopped := phase["workers-3"] == PhaseTerminating || phase["workers-3"] == "" // it may have exited already
		return stopped && phase["workers-1"] == PhaseReady && phase["workers-2"] == PhaseReady && phase["workers-4"] == PhaseReady, podNames(pods)
	})
	w.scale(1)
	eventually(t, time.Second, "the newest Ready pods Terminating", func() (bool, string) {
		pods := f.Pods()
		if len(pods) < 2 || pods[0].Name != "workers-1" || pods[0].Phase != PhaseReady || pods[1].Name != "workers-2" {
			return false, podNames(pods)
		}
		for _, p := range pods[1:] { // workers-3 and -4 hold no job and may be gone already
			if p.Phase != PhaseTerminating {
				return false, podNames(pods)
			}
		}
		return true, podNames(pods)
	})
	w.push(DefaultList, "c") // workers-1 and workers-2 are busy; only workers-1 may take it
	eventually(t, time.Second, "status of one ready replica", func() (bool, string) {
		dep := w.deployment()
		return dep.Status.Replicas == 1 && dep.Status.ReadyReplicas == 1 && dep.Status.ObservedGeneration == dep.Generation, statusOf(dep)
	})

	// workers-2 finishes its call, acknowledges and exits; had it taken "c" it would still
	// be there when "c" is done.
	eventually(t, 4*time.Second, "workers-2 exited after its job", func() (bool, string) {
		pods := f.Pods()
		return len(pods) == 1, podNames(pods)
	})
	if acked := f.Acked(); acked["a"] != 1 || acked["b"] != 1 || acked["c"] != 0 {
		t.Fatalf("when workers-2 exited the acks were %v; want a and b once each and c not yet", acked)
	}
	eventually(t, 6*time.Second, "c acknowledged by workers-1", func() (bool, string) {
		return f.Acked()["c"] == 1, fmt.Sprint(f.Acked())
	})
	if st := f.Stats(); st.JobsCompleted != 3 || st.CallsOK != 3 || st.JobsRequeued != 0 || st.QueueErrors != 0 {
		t.Errorf("stats %+v, want three jobs done by three calls, none requeued", st)
	}
	if p := f.Pods(); len(p) != 1 || p[0].Name != "workers-1" || p[0].JobsCompleted != 2 {
		t.Errorf("pods %+v, want workers-1 alone with 2 jobs done", p)
	}
}

// TestGracePeriodCancelsAndRequeues: a pod whose grace period ends in the middle of a call
// abandons the call and puts the job back, where the next pod finds it.
func TestGracePeriodCancelsAndRequeues(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 1, mockapi.Config{Latency: mockapi.Latency{TimeToFirstToken: mockapi.Fixed(2)}})
	cfg := w.config()
	cfg.StartDelay = -1
	cfg.GracePeriod = 300 * time.Millisecond
	f := w.start(cfg)
	w.push(DefaultList, "a")
	eventually(t, 2*time.Second, "the job in flight", func() (bool, string) {
		return len(w.list(DefaultProcessingList)) == 1, fmt.Sprint(w.list(DefaultProcessingList))
	})
	w.scale(0)
	eventually(t, 1500*time.Millisecond, "the pod gone before its call could end", func() (bool, string) {
		return len(f.Pods()) == 0, podNames(f.Pods())
	})
	if queued, inFlight := w.list(DefaultList), w.list(DefaultProcessingList); len(queued) != 1 || queued[0] != "a" || len(inFlight) != 0 {
		t.Fatalf("queue %v, processing %v; want the job back in the queue", queued, inFlight)
	}
	if st := f.Stats(); st.JobsRequeued != 1 || st.CallsFailed != 1 || st.CallsOK != 0 || len(f.Acked()) != 0 {
		t.Fatalf("stats %+v acked %v; want one cancelled call, its job requeued", st, f.Acked())
	}
	w.scale(1)
	eventually(t, 4*time.Second, "the job done by the next pod", func() (bool, string) {
		return f.Acked()["a"] == 1, fmt.Sprint(f.Acked(), podNames(f.Pods()))
	})
	if got := podNames(f.Pods()); got != "[workers-2=Ready]" {
		t.Errorf("pods %s, want a new pod workers-2", got)
	}
}

// TestFailedCallsRequeueAtTheHead: a 429 and then a 500 from the sidecar put the job back
// at the head of the queue, the worker backs off after each, and the job is done once.
// The sidecar also fails to start once, which the pod retries.
func TestFailedCallsRequeueAtTheHead(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 0, mockapi.Config{})
	front := newFlakyFront(t, w.url, http.StatusTooManyRequests, http.StatusInternalServerError)
	cfg := w.config()
	cfg.StartDelay = -1
	cfg.FailureBackoff = 400 * time.Millisecond
	sidecarCalls := 0
	cfg.Sidecar = func(context.Context, string) (string, func(), error) {
		if sidecarCalls++; sidecarCalls == 1 {
			return "", nil, fmt.Errorf("image pull backoff")
		}
		return front.URL, func() {}, nil
	}
	f := w.start(cfg)
	w.push(DefaultList, "a", "b")
	w.scale(1)
	eventually(t, 5*time.Second, "both jobs done", func() (bool, string) {
		acked := f.Acked()
		return acked["a"] == 1 && acked["b"] == 1, fmt.Sprint(acked)
	})
	st := f.Stats()
	if st.CallsRateLimited != 1 || st.CallsFailed != 1 || st.CallsOK != 2 || st.JobsRequeued != 2 || st.JobsCompleted != 2 {
		t.Errorf("stats %+v, want one 429, one other failure, two successes, two requeues", st)
	}
	if st.SidecarFailures != 1 {
		t.Errorf("%d sidecar failures, want 1", st.SidecarFailures)
	}
	seen, gaps := front.log()
	if fmt.Sprint(seen) != "[a a a b]" {
		t.Errorf("calls for jobs %v, want a retried at the head of the queue before b: [a a a b]", seen)
	}
	for i := 1; i < 3; i++ {
		if gaps[i] < cfg.FailureBackoff {
			t.Errorf("call %d came %s after the failed one, want a backoff of at least %s", i+1, gaps[i], cfg.FailureBackoff)
		}
	}
	if queued, inFlight := w.list(DefaultList), w.list(DefaultProcessingList); len(queued)+len(inFlight) != 0 {
		t.Errorf("queue %v, processing %v; want both empty", queued, inFlight)
	}
}

// flakyFront answers the first calls with the given statuses and proxies the rest to the
// mock, logging which job each call was for and when it came.
type flakyFront struct {
	*httptest.Server
	mu    sync.Mutex
	fails []int
	jobs  []string
	times []time.Time
}

var jobInPrompt = regexp.MustCompile(`Summarize job ([^.]+)\.`)

func newFlakyFront(t *testing.T, upstream string, fails ...int) *flakyFront {
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	ff := &flakyFront{fails: fails}
	rp := httputil.NewSingleHostReverseProxy(u)
	ff.Server = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		ff.mu.Lock()
		if m := jobInPrompt.FindSubmatch(body); m != nil {
			ff.jobs = append(ff.jobs, string(m[1]))
			ff.times = append(ff.times, time.Now())
		}
		var status int
		if len(ff.fails) > 0 {
			status, ff.fails = ff.fails[0], ff.fails[1:]
		}
		ff.mu.Unlock()
		if status != 0 {
			rw.Header().Set("Content-Type", "application/json")
			rw.WriteHeader(status)
			_, _ = fmt.Fprintf(rw, `{"type":"error","error":{"type":"api_error","message":"injected %d"}}`, status)
			return
		}
		rp.ServeHTTP(rw, r)
	}))
	t.Cleanup(ff.Close)
	return ff
}

// log returns the jobs called for, in order, and the time since the previous call.
func (ff *flakyFront) log() ([]string, []time.Duration) {
	ff.mu.Lock()
	defer ff.mu.Unlock()
	gaps := make([]time.Duration, len(ff.times))
	for i := 1; i < len(ff.times); i++ {
		gaps[i] = ff.times[i].Sub(ff.times[i-1])
	}
	return append([]string(nil), ff.jobs...), gaps
}
