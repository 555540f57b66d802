package cli

import (
	"context"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/claudecap/claudecap/internal/testutil/redistest"
	"github.com/claudecap/claudecap/pkg/ratelimit"
)

// With --redis-cluster the proxy reaches pools on every master of a real cluster
// from the seed nodes it is given; without it, a pool on another master would
// answer MOVED and fail closed.
func TestProxyReachesPoolsOnEveryClusterMaster(t *testing.T) {
	ctx := context.Background()
	cl := redistest.StartCluster(t, redistest.ClusterOptions{})
	o := &proxyOptions{}
	cmd := proxyCommand(o)
	if err := cmd.Flags().Parse([]string{"--organization", "acme", "--workload", "ai/w", "--redis-cluster",
		"--redis-addr", strings.Join(cl.Addrs()[:1], ",")}); err != nil {
		t.Fatal(err)
	}
	rdb, lim, err := o.limiter(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rdb.Close() }()
	if _, ok := rdb.(*redis.ClusterClient); !ok {
		t.Fatalf("--redis-cluster built a %T, want a cluster client", rdb)
	}
	// Pools whose slots land on different masters.
	owners := map[string]bool{}
	for i := 0; len(owners) < len(cl.Masters()) && i < 200; i++ {
		class := "class-" + string(rune('a'+i%26)) + strings.Repeat("x", i/26)
		pool := ratelimit.PoolKey{Organization: "acme", Class: class}
		owner := cl.SlotOwner(cl.KeySlot(pool.String()))
		if owners[owner] {
			continue
		}
		owners[owner] = true
		if err := ratelimit.WritePoolConfig(ctx, cl.Client(), pool, ratelimit.PoolConfig{Limits: ratelimit.Limits{
			RequestsPerMinute: 60, InputTokensPerMinute: 60_000, OutputTokensPerMinute: 60_000}}); err != nil {
			t.Fatal(err)
		}
		r, err := lim.TryReserve(ctx, class, ratelimit.Call(10, 10))
		if err != nil {
			t.Fatalf("pool %s on %s: %v", pool, owner, err)
		}
		if err := r.Settle(ctx, ratelimit.Actual{InputTokens: 10, OutputTokens: 5}); err != nil {
			t.Fatalf("settling on %s: %v", owner, err)
		}
	}
	if len(owners) != len(cl.Masters()) {
		t.Fatalf("pools reached %d of %d masters", len(owners), len(cl.Masters()))
	}

	o.redisDB = 1
	if _, _, err := o.limiter(func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), "database 0") {
		t.Errorf("--redis-db 1 with a cluster: %v, want a refusal", err)
	}
}
