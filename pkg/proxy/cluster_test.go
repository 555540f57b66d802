package proxy

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claudecap/claudecap/internal/testutil/redistest"
	"github.com/claudecap/claudecap/pkg/dimension"
	"github.com/claudecap/claudecap/pkg/ratelimit"
)

// clusterModels are models of three catalog classes; the test picks an
// organization whose three pools land on three different masters.
var clusterModels = map[string]string{
	"opus-4":    "claude-opus-4-6",
	"sonnet-4":  "claude-sonnet-4-6",
	"haiku-4.5": "claude-haiku-4-5-20251001",
}

// spreadOrganization finds an organization whose pools of the three classes
// are on three different masters, and returns it with each pool's master.
func spreadOrganization(t *testing.T, cl *redistest.Cluster) (string, map[string]string) {
	t.Helper()
	for i := range 1000 {
		org := fmt.Sprintf("acme-%d", i)
		owners := map[string]string{}
		seen := map[string]bool{}
		for class := range clusterModels {
			owners[class] = cl.SlotOwner(cl.KeySlot(ratelimit.PoolKey{Organization: org, Class: class}.String()))
			seen[owners[class]] = true
		}
		if len(seen) == 3 {
			return org, owners
		}
	}
	t.Fatal("no organization spreads its three pools over three masters")
	return "", nil
}

// checkPoolSettled asserts a pool saw n admissions and their settlements
// (of okMessage's usage: 12 input and 6 output tokens per call), one refusal,
// and the published upstream state.
func checkPoolSettled(ctx context.Context, t *testing.T, rdb redis.UniversalClient, pool ratelimit.PoolKey, workload, owner string, n int64) {
	t.Helper()
	u, err := ratelimit.ReadUsage(ctx, rdb, pool, workload, time.Minute)
	if err != nil {
		t.Fatalf("ReadUsage(%s): %v", pool, err)
	}
	if u.Requests != n || u.InputTokens != 12*n || u.OutputTokens != 6*n || u.Throttled != 1 || u.ActivePods != 1 {
		t.Errorf("usage of %s on %s = %+v; want %d requests, %d input, %d output, 1 throttled, 1 pod", pool, owner, u, n, 12*n, 6*n)
	}
	st, err := ratelimit.ReadBucket(ctx, rdb, pool)
	if err != nil {
		t.Fatalf("ReadBucket(%s): %v", pool, err)
	}
	if st.Seq != 2*n || st.Level[dimension.Requests] > 1.1 {
		t.Errorf("bucket of %s = %+v; want %d admissions and as many settlements (seq %d) and at most one request left", pool, st, n, 2*n)
	}
	upstream, ok, err := ratelimit.ReadUpstream(ctx, rdb, pool)
	if err != nil || !ok || !upstream.Buckets[dimension.Requests].Known || upstream.Buckets[dimension.Requests].Remaining != 49 {
		t.Errorf("upstream state of %s = %+v, %v, %v", pool, upstream, ok, err)
	}
}

// TestClusterProxyAdmitsAndSettlesAcrossMasters runs the proxy's
// RedisLimiter on a cluster client in front of a fake Messages API: one proxy,
// three model classes whose pools live on three different masters. Each pool
// admits its capacity and then answers 429, settlements reach each
// pool's own master (usage and bucket sequence), upstream state is published
// per pool, and a pool whose slot moves to another master keeps its state.
func TestClusterProxyAdmitsAndSettlesAcrossMasters(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	cl := redistest.StartCluster(t, redistest.ClusterOptions{})
	org, owners := spreadOrganization(t, cl)
	t.Logf("organization %s: pools on %v", org, owners)

	// Five requests per minute: the pool refuses for seconds once drained.
	limits := ratelimit.Limits{RequestsPerMinute: 5, InputTokensPerMinute: 100_000, OutputTokensPerMinute: 100_000}
	controller := cl.NewClient(nil)
	for class := range clusterModels {
		if err := ratelimit.WritePoolConfig(ctx, controller, ratelimit.PoolKey{Organization: org, Class: class}, ratelimit.PoolConfig{Limits: limits}); err != nil {
			t.Fatalf("WritePoolConfig(%s): %v", class, err)
		}
	}

	const workload = "ai/proxy"
	lim, err := NewRedisLimiter(cl.NewClient(nil), ratelimit.Options{Pool: ratelimit.PoolKey{Organization: org}, Workload: workload, Pod: "pod-a"})
	if err != nil {
		t.Fatal(err)
	}
	if err := lim.Ready(ctx); err != nil {
		t.Fatalf("Ready on a cluster: %v", err)
	}
	up := startUpstream(t, replyJSON(200, okMessage, "Anthropic-Ratelimit-Requests-Limit", "50",
		"Anthropic-Ratelimit-Requests-Remaining", "49", "Anthropic-Ratelimit-Requests-Reset", "2026-04-01T00:00:00Z"))
	p, hs, logs := startProxy(t, Config{Upstream: up.URL}, lim)
	call := func(class string) (reply, []byte) {
		t.Helper()
		return post(t, hs.URL, messagesBody(clusterModels[class], 100, false, "hello"), "X-Api-Key", workerKey)
	}

	// Each pool admits its capacity (less one when the limiter keeps a
	// margin of refill in hand), then refuses.
	admitted := map[string]int64{}
	var total int
	for class := range clusterModels {
		for {
			resp, got := call(class)
			if resp.StatusCode == http.StatusOK {
				admitted[class]++
				if admitted[class] > limits.RequestsPerMinute {
					t.Fatalf("%s admitted %d requests, more than its capacity %d", class, admitted[class], limits.RequestsPerMinute)
				}
				continue
			}
			if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get(HeaderLimited) != "requests" || resp.Header.Get(HeaderOrigin) != "proxy" {
				t.Fatalf("%s request %d: %d %v %s; want 200 or a 429 of the pool's requests\n%s", class, admitted[class]+1, resp.StatusCode, resp.Header, got, logs)
			}
			break
		}
		if admitted[class] < limits.RequestsPerMinute-1 {
			t.Fatalf("%s admitted %d requests of a capacity of %d before refusing", class, admitted[class], limits.RequestsPerMinute)
		}
		total += int(admitted[class])
	}
	drain(t, p)
	if n := len(up.received()); n != total {
		t.Fatalf("upstream got %d requests, want %d (%v)", n, total, admitted)
	}
	for class := range clusterModels {
		checkPoolSettled(ctx, t, controller, ratelimit.PoolKey{Organization: org, Class: class}, workload, owners[class], admitted[class])
	}
	t.Logf("admitted per pool before the first 429: %v", admitted)

	// Move the sonnet pool to another master: its drained bucket moves with
	// it (a lost bucket would answer 503, pool not configured), and the
	// proxy's client follows the redirection.
	moved := ratelimit.PoolKey{Organization: org, Class: "sonnet-4"}
	to := owners["opus-4"]
	cl.ReshardKey(moved.String(), to, redistest.ReshardOptions{})
	resp, got := call("sonnet-4")
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get(HeaderLimited) != "requests" {
		t.Fatalf("after moving %s to %s: %d %v %s; want the same pool still refusing", moved, to, resp.StatusCode, resp.Header, got)
	}
	if retry := resp.Header.Get("Retry-After"); retry == "" || retry == "0" {
		t.Errorf("Retry-After %q after the move; the drained bucket should ask to wait", retry)
	}
	// More room after a raise, written by the controller on the new master.
	raised := limits
	raised.RequestsPerMinute = 600
	if err := ratelimit.WritePoolConfig(ctx, controller, moved, ratelimit.PoolConfig{Limits: raised}); err != nil {
		t.Fatalf("WritePoolConfig after the move: %v", err)
	}
	time.Sleep(500 * time.Millisecond) // 10 requests per second refill, a margin of 2.5 kept
	if resp, got := call("sonnet-4"); resp.StatusCode != http.StatusOK {
		t.Fatalf("after raising %s on %s: %d %s", moved, to, resp.StatusCode, got)
	}
	drain(t, p)
}
