package redistest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claudecap/claudecap/internal/testutil/redistest"
)

// TestClusterLifecycle exercises the cluster helper end to end: the cluster
// forms with a replica per master, keys reach every master through a cluster
// client, a slot moves with its keys, a manual failover keeps the data, a
// killed master is replaced by its replica, and a replica made to lag loses
// what the master acknowledged meanwhile.
func TestClusterLifecycle(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	start := time.Now()
	cl := redistest.StartCluster(t, redistest.ClusterOptions{ReplicasPerMaster: 1})
	t.Logf("cluster of %d nodes up in %s", len(cl.Addrs()), time.Since(start).Round(time.Millisecond))

	masters := cl.Masters()
	if len(masters) != 3 || len(cl.Addrs()) != 6 {
		t.Fatalf("masters %v of nodes %v; want 3 of 6", masters, cl.Addrs())
	}
	replicas := 0
	for _, n := range cl.Nodes() {
		if !n.Master {
			replicas++
		}
	}
	if replicas != 3 {
		t.Fatalf("%d replicas, want 3: %+v", replicas, cl.Nodes())
	}

	keyOn := keysOnEveryMaster(ctx, t, cl)
	checkReshard(ctx, t, cl, keyOn[masters[0]], masters[0], masters[2])
	checkManualFailover(ctx, t, cl, keyOn)
	checkKill(ctx, t, cl)
	checkLaggedKill(ctx, t, cl)
}

// keyOwnedBy returns a key named prefix<N> that the master at owner serves.
func keyOwnedBy(t *testing.T, cl *redistest.Cluster, prefix, owner string) string {
	t.Helper()
	for i := range 2000 {
		if k := fmt.Sprintf("%s%d", prefix, i); cl.SlotOwner(cl.KeySlot(k)) == owner {
			return k
		}
	}
	t.Fatalf("no key %s<N> on %s", prefix, owner)
	return ""
}

func get(ctx context.Context, t *testing.T, c *redis.ClusterClient, k string) string {
	t.Helper()
	v, err := c.Get(ctx, k).Result()
	if err != nil {
		t.Fatalf("GET %s: %v", k, err)
	}
	return v
}

// keysOnEveryMaster writes one key per master through the cluster client,
// holding its owner's address, and checks each is stored on its owner.
func keysOnEveryMaster(ctx context.Context, t *testing.T, cl *redistest.Cluster) map[string]string {
	t.Helper()
	keyOn := map[string]string{}
	for _, owner := range cl.Masters() {
		k := keyOwnedBy(t, cl, "k", owner)
		keyOn[owner] = k
		if err := cl.Client().Set(ctx, k, owner, 0).Err(); err != nil {
			t.Fatalf("SET %s: %v", k, err)
		}
		if n, err := cl.NodeClient(owner).Exists(ctx, k).Result(); err != nil || n != 1 {
			t.Fatalf("%s not stored on its owner %s: %d %v", k, owner, n, err)
		}
	}
	return keyOn
}

// checkReshard moves k's slot from one master to another: the key moves with
// it and a client with a stale topology follows MOVED.
func checkReshard(ctx context.Context, t *testing.T, cl *redistest.Cluster, k, from, to string) {
	t.Helper()
	res := cl.ReshardKey(k, to, redistest.ReshardOptions{})
	if owner := cl.SlotOwner(cl.KeySlot(k)); owner != to || res.Keys != 1 {
		t.Fatalf("after resharding %s: owner %s, %d keys moved; want %s, 1", k, owner, res.Keys, to)
	}
	if get(ctx, t, cl.Client(), k) != from {
		t.Fatalf("%s lost its value in the move", k)
	}
}

// checkManualFailover: a CLUSTER FAILOVER loses nothing and swaps the roles.
func checkManualFailover(ctx context.Context, t *testing.T, cl *redistest.Cluster, keyOn map[string]string) {
	t.Helper()
	fo := cl.Failover(1)
	k := keyOn[fo.Old]
	if get(ctx, t, cl.Client(), k) != fo.Old {
		t.Fatalf("%s lost its value in a manual failover", k)
	}
	if owner := cl.SlotOwner(cl.KeySlot(k)); owner != fo.New {
		t.Fatalf("after manual failover %s owns %s, want %s", owner, k, fo.New)
	}
	t.Logf("manual failover %s -> %s took %s", fo.Old, fo.New, fo.Took.Round(time.Millisecond))
}

// checkKill kills a master: its replica takes over, and a write the replica
// acknowledged too (WAIT) survives.
func checkKill(ctx context.Context, t *testing.T, cl *redistest.Cluster) {
	t.Helper()
	victim := cl.Masters()[0]
	k := keyOwnedBy(t, cl, "v", victim)
	if err := cl.NodeClient(victim).Set(ctx, k, "durable", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := cl.NodeClient(victim).Wait(ctx, 1, 2*time.Second).Result(); err != nil || n < 1 {
		t.Fatalf("WAIT 1 on %s: %d %v", victim, n, err)
	}
	kill := cl.KillMaster(0, redistest.KillOptions{})
	if kill.Old != victim || kill.New == victim || kill.Took <= 0 {
		t.Fatalf("KillMaster: %+v", kill)
	}
	t.Logf("automatic failover %s -> %s took %s", kill.Old, kill.New, kill.Took.Round(time.Millisecond))
	// A new client: one that knew the dead master keeps dialing it until its
	// topology reload (go-redis reloads on MOVED, not on dial errors).
	if v := get(ctx, t, cl.NewClient(nil), k); v != "durable" {
		t.Fatalf("replicated key %s = %q after failover", k, v)
	}
	for _, m := range cl.Masters() {
		if m == victim {
			t.Fatalf("dead master %s still listed among %v", victim, cl.Masters())
		}
	}
}

// checkLaggedKill: with the replica made to lag, writes the master
// acknowledged in the lag window are lost, the promoted replica holds an
// older counter.
func checkLaggedKill(ctx context.Context, t *testing.T, cl *redistest.Cluster) {
	t.Helper()
	master := cl.Masters()[1]
	counter := keyOwnedBy(t, cl, "c", master)
	var acked int64
	done := make(chan struct{})
	stop := make(chan struct{})
	go func() {
		defer close(done)
		w := cl.NodeClient(master)
		for {
			select {
			case <-stop:
				return
			default:
			}
			n, err := w.Incr(ctx, counter).Result()
			if err != nil {
				return // The master was killed.
			}
			acked = n
		}
	}()
	lagged := cl.KillMaster(1, redistest.KillOptions{ReplicaLag: 300 * time.Millisecond})
	close(stop)
	<-done
	got, err := cl.NewClient(nil).Get(ctx, counter).Int64()
	if err != nil {
		t.Fatalf("GET %s after the lagged failover: %v", counter, err)
	}
	if got >= acked || acked == 0 {
		t.Fatalf("counter %s is %d on the promoted replica, the old master acknowledged %d: the lag lost nothing", counter, got, acked)
	}
	t.Logf("lagged failover %s -> %s took %s (%d MB of filler) and lost %d acknowledged INCRs",
		lagged.Old, lagged.New, lagged.Took.Round(time.Millisecond), lagged.FillerMB, acked-got)
}
