package redistest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// CLIBinaryEnv overrides the redis-cli binary StartCluster uses to create the
// cluster.
const CLIBinaryEnv = "REDIS_CLI_BIN"

// DefaultCLIBinary is where Debian's redis-tools package installs redis-cli.
const DefaultCLIBinary = "/usr/bin/redis-cli"

// Bounds of the cluster helper's waits. Every wait fails the test with what it
// last saw instead of hanging.
const (
	// clusterCreateTimeout bounds `redis-cli --cluster create`.
	clusterCreateTimeout = 20 * time.Second
	// clusterSettleTimeout bounds the wait for every node to agree on the
	// topology (after create, a failover or a resharding).
	clusterSettleTimeout = 10 * time.Second
	// failoverTimeout bounds the wait for a replica to take over a killed
	// master: node timeout + election (about 2.5 s with a 1 s node timeout).
	failoverTimeout = 15 * time.Second
	// adminTimeout bounds one administrative command.
	adminTimeout = 5 * time.Second
)

// Ports of cluster nodes are drawn from [clusterPortLow, clusterPortHigh) so
// that the bus port (port + 10000) stays below Linux's ephemeral range
// (32768 and up), where the kernel hands out client ports.
const (
	clusterPortLow  = 10000
	clusterPortHigh = 22700
	busPortOffset   = 10000
)

// ClusterOptions configure StartCluster. The zero value starts three masters
// without replicas and a one-second node timeout.
type ClusterOptions struct {
	// Masters is the number of masters. Default 3 (the minimum of
	// `redis-cli --cluster create`).
	Masters int
	// ReplicasPerMaster is the number of replicas of each master. Default 0.
	// KillMaster needs at least 1.
	ReplicasPerMaster int
	// NodeTimeout is cluster-node-timeout: how long a node may be unreachable
	// before the others mark it failed and a replica takes over. Default 1 s.
	NodeTimeout time.Duration
	// Config is extra redis-server arguments for every node, e.g.
	// {"--cluster-require-full-coverage", "no"}.
	Config []string
}

// Cluster is a Redis Cluster of real redis-server processes on loopback,
// owned by one test. All nodes die when the test ends, or with the test binary.
type Cluster struct {
	tb    testing.TB
	opts  ClusterOptions
	nodes []*clusterProc

	procMu sync.Mutex // guards clusterProc.dead and .stopped

	mu      sync.Mutex
	client  *redis.ClusterClient
	clients []*redis.ClusterClient
	admin   map[string]*redis.Client
}

// clusterProc is one redis-server of the cluster.
type clusterProc struct {
	port   int
	dir    string
	cmd    *exec.Cmd
	exited chan struct{}
	log    *syncBuffer
	dead   bool
	// stopped is set while the process is SIGSTOPped (KillOptions.ReplicaLag).
	stopped bool
}

func (p *clusterProc) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port)) }

// ClusterNode is one node as CLUSTER NODES describes it.
type ClusterNode struct {
	// ID is the node's cluster id.
	ID string
	// Addr is host:port (without the bus port).
	Addr string
	// Master is set for masters; MasterID names a replica's master.
	Master   bool
	MasterID string
	// Failed is set when the reporting node considers it failed (fail or fail?).
	Failed bool
	// Slots lists the ranges the node serves, as [first, last] pairs.
	Slots [][2]int
}

// FailoverResult describes a completed failover.
type FailoverResult struct {
	// Old is the master that was killed (or demoted); New is the replica
	// that took over its slots.
	Old, New string
	// Killed is when the old master was killed (or the manual failover was
	// requested); Took is how long until every live node agreed on New.
	Killed time.Time
	Took   time.Duration
	// Lagging is when, with KillOptions.ReplicaLag, the replicas were
	// stopped: writes the master acknowledged from about then (once the
	// replication link filled) until Killed never reach them. FillerMB is how
	// many megabytes of filler writes filled the link.
	Lagging  time.Time
	FillerMB int
}

// KillOptions tune KillMaster.
type KillOptions struct {
	// ReplicaLag, when positive, makes the master's replicas fall behind by
	// that long before the kill, the worst case of asynchronous replication:
	// the replicas are stopped (SIGSTOP), the replication link is filled with
	// filler writes until the master has to keep replication data in its own
	// memory, then the master serves for ReplicaLag and is killed. Every write
	// it acknowledged in that window is lost. The replicas resume (SIGCONT)
	// right after the kill. Keep it well under NodeTimeout, or the stopped
	// replicas are themselves marked failed.
	ReplicaLag time.Duration
}

// ReshardOptions tune Reshard.
type ReshardOptions struct {
	// KeysPerMigrate is how many keys one MIGRATE moves (redis-cli's
	// --cluster-pipeline). Default 10, as redis-cli. Keys moved by one MIGRATE
	// leave the source together; keys of one slot split across MIGRATEs leave
	// the slot half on each side for a while.
	KeysPerMigrate int
	// Pause is slept after each MIGRATE, to hold the slot in its migrating
	// state longer and let traffic hit it.
	Pause time.Duration
	// OnMigrating, if set, is called for each slot once it is IMPORTING on
	// the target and MIGRATING on the source, before its first key moves.
	OnMigrating func(slot int)
}

// ReshardResult describes a completed resharding.
type ReshardResult struct {
	// Keys is the number of keys moved; Migrates the number of MIGRATE calls.
	Keys, Migrates int
	// Started and Finished bracket the migration: slots were IMPORTING /
	// MIGRATING in between.
	Started, Finished time.Time
}

// StartCluster launches a Redis Cluster on loopback: opts.Masters masters with
// opts.ReplicasPerMaster replicas each, created with `redis-cli --cluster
// create`, and waits until every node reports cluster_state:ok, agrees on the
// topology and every replica's link to its master is up. It fails the test if
// redis-server lacks cluster support or the cluster does not form in time.
func StartCluster(tb testing.TB, opts ClusterOptions) *Cluster {
	tb.Helper()
	if opts.Masters <= 0 {
		opts.Masters = 3
	}
	if opts.Masters < 3 {
		tb.Fatalf("redistest: a cluster needs at least 3 masters, got %d", opts.Masters)
	}
	if opts.ReplicasPerMaster < 0 {
		tb.Fatalf("redistest: negative ReplicasPerMaster %d", opts.ReplicasPerMaster)
	}
	if opts.NodeTimeout <= 0 {
		opts.NodeTimeout = time.Second
	}
	binary, err := findBinary()
	if err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	cli, err := findCLI()
	if err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	c := &Cluster{tb: tb, opts: opts, admin: map[string]*redis.Client{}}
	tb.Cleanup(c.cleanup)

	total := opts.Masters * (1 + opts.ReplicasPerMaster)
	used := map[int]bool{}
	for range total {
		p, err := c.launchNode(binary, used)
		if err != nil {
			tb.Fatalf("redistest: starting a cluster node: %v", err)
		}
		c.nodes = append(c.nodes, p)
	}

	ctx, cancel := context.WithTimeout(context.Background(), clusterCreateTimeout)
	defer cancel()
	args := make([]string, 0, len(c.nodes)+5)
	args = append(args, "--cluster", "create")
	args = append(args, c.Addrs()...)
	args = append(args, "--cluster-replicas", strconv.Itoa(opts.ReplicasPerMaster), "--cluster-yes")
	// #nosec G204 -- fixed binary (or an explicit test override), our arguments.
	create := exec.CommandContext(ctx, cli, args...)
	create.SysProcAttr = sysProcAttr()
	out, err := create.CombinedOutput()
	if err != nil {
		tb.Fatalf("redistest: redis-cli --cluster create: %v (timeout %s)\n%s\n%s", err, clusterCreateTimeout, out, c.logs())
	}
	err = c.waitConsistent(clusterSettleTimeout, func(view []ClusterNode) error {
		masters, replicas := 0, 0
		for _, n := range view {
			switch {
			case n.Master && len(n.Slots) > 0:
				masters++
			case !n.Master && n.MasterID != "":
				replicas++
			}
		}
		if masters != opts.Masters || replicas != opts.Masters*opts.ReplicasPerMaster {
			return fmt.Errorf("%d masters and %d replicas, want %d and %d", masters, replicas, opts.Masters, opts.Masters*opts.ReplicasPerMaster)
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("redistest: the cluster did not form: %v\n%s", err, c.logs())
	}
	return c
}

// launchNode starts one cluster-enabled redis-server on a port whose bus port
// is also free, retrying on collisions.
func (c *Cluster) launchNode(binary string, used map[int]bool) (*clusterProc, error) {
	var lastErr error
	for range 4 * portAttempts {
		port := clusterPortLow + rand.IntN(clusterPortHigh-clusterPortLow) // #nosec G404 -- a port, not a secret.
		if used[port] || used[port+busPortOffset] || used[port-busPortOffset] || !portFree(port) || !portFree(port+busPortOffset) {
			continue
		}
		p := &clusterProc{port: port, dir: c.tb.TempDir()}
		if lastErr = c.startProc(binary, p); lastErr == nil {
			used[port] = true
			return p, nil
		}
		if errors.Is(lastErr, errNoClusterSupport) {
			return nil, lastErr
		}
	}
	if lastErr == nil {
		lastErr = errors.New("no free port pair found")
	}
	return nil, lastErr
}

func (c *Cluster) startProc(binary string, p *clusterProc) error {
	log := &syncBuffer{}
	args := make([]string, 0, 32+len(c.opts.Config))
	args = append(args,
		"--port", strconv.Itoa(p.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", p.dir,
		"--daemonize", "no",
		"--logfile", "",
		"--loglevel", "warning",
		"--enable-debug-command", "yes",
		"--cluster-enabled", "yes",
		"--cluster-config-file", p.dir+"/nodes.conf",
		"--cluster-node-timeout", strconv.FormatInt(c.opts.NodeTimeout.Milliseconds(), 10),
		// Full syncs start at once instead of after the default 5 s delay, so
		// replicas are in sync when StartCluster returns.
		"--repl-diskless-sync-delay", "0",
	)
	// #nosec G204 -- the binary is a fixed path or an explicit test override, the
	// arguments are the test's.
	cmd := exec.Command(binary, append(args, c.opts.Config...)...)
	cmd.Stdout = log
	cmd.Stderr = log
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("running %s: %w", binary, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	p.cmd, p.exited, p.log = cmd, exited, log
	if err := waitForNode(p.addr(), cmd.Process.Pid, exited); err != nil {
		_ = cmd.Process.Kill()
		<-exited
		p.dead = true
		if errors.Is(err, errNoClusterSupport) || strings.Contains(log.String(), "Bad directive") {
			return fmt.Errorf("%w (%s): %w; server output:\n%s", errNoClusterSupport, binary, err, log.String())
		}
		return fmt.Errorf("%w; server output:\n%s", err, log.String())
	}
	return nil
}

// errNoClusterSupport fails StartCluster at once, without trying other ports.
var errNoClusterSupport = errors.New("redis-server lacks cluster support (--cluster-enabled)")

// waitForNode waits until addr answers as process pid and runs in cluster mode.
func waitForNode(addr string, pid int, exited <-chan struct{}) error {
	c := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: 200 * time.Millisecond, ReadTimeout: 300 * time.Millisecond, MaxRetries: -1})
	defer func() { _ = c.Close() }()
	deadline := time.Now().Add(startTimeout)
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("redis-server exited before answering")
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		var info string
		info, lastErr = c.Info(ctx, "server", "cluster").Result()
		cancel()
		if lastErr == nil {
			if !strings.Contains(info, "process_id:"+strconv.Itoa(pid)+"\r\n") {
				return fmt.Errorf("%s is held by another redis-server", addr)
			}
			if !strings.Contains(info, "cluster_enabled:1") {
				return fmt.Errorf("%w: the server on %s does not run in cluster mode", errNoClusterSupport, addr)
			}
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("no answer from %s within %s: %w", addr, startTimeout, lastErr)
}

func portFree(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}

func findCLI() (string, error) {
	if p := os.Getenv(CLIBinaryEnv); p != "" {
		return p, nil
	}
	if _, err := os.Stat(DefaultCLIBinary); err == nil {
		return DefaultCLIBinary, nil
	}
	if p, err := exec.LookPath("redis-cli"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("redis-cli not found at %s or on PATH; install it with `apt-get install redis-tools`", DefaultCLIBinary)
}

// Addrs returns the address of every node started, masters and replicas, dead
// or alive, in start order: a seed list for cluster clients.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.nodes))
	for i, p := range c.nodes {
		addrs[i] = p.addr()
	}
	return addrs
}

// Client returns a cluster client with go-redis defaults, shared by all
// callers and closed when the test ends.
func (c *Cluster) Client() *redis.ClusterClient {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.client == nil {
		c.client = c.newClientLocked(nil)
	}
	return c.client
}

// NewClient returns a new, independent cluster client (its own connections and
// topology cache), closed when the test ends: use one per simulated pod. The
// optional configure function adjusts options; Addrs is already set.
func (c *Cluster) NewClient(configure func(*redis.ClusterOptions)) *redis.ClusterClient {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.newClientLocked(configure)
}

func (c *Cluster) newClientLocked(configure func(*redis.ClusterOptions)) *redis.ClusterClient {
	opts := &redis.ClusterOptions{Addrs: c.Addrs()}
	if configure != nil {
		configure(opts)
	}
	cl := redis.NewClusterClient(opts)
	c.clients = append(c.clients, cl)
	return cl
}

// NodeClient returns a plain client of one node (for INFO, CLUSTER and DEBUG
// commands), shared and closed when the test ends.
func (c *Cluster) NodeClient(addr string) *redis.Client {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodeClientLocked(addr)
}

func (c *Cluster) nodeClientLocked(addr string) *redis.Client {
	if cl, ok := c.admin[addr]; ok {
		return cl
	}
	cl := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: time.Second, ReadTimeout: adminTimeout, WriteTimeout: adminTimeout, MaxRetries: -1})
	c.admin[addr] = cl
	return cl
}

// Nodes returns the topology as a live node sees it.
func (c *Cluster) Nodes() []ClusterNode {
	c.tb.Helper()
	nodes, err := c.nodesFrom(c.liveAddr())
	if err != nil {
		c.tb.Fatalf("redistest: %v", err)
	}
	return nodes
}

// Masters returns the addresses of the masters that serve slots, ordered by
// their first slot.
func (c *Cluster) Masters() []string {
	c.tb.Helper()
	return mastersOf(c.Nodes())
}

func mastersOf(nodes []ClusterNode) []string {
	var ms []ClusterNode
	for _, n := range nodes {
		if n.Master && !n.Failed && len(n.Slots) > 0 {
			ms = append(ms, n)
		}
	}
	slices.SortFunc(ms, func(a, b ClusterNode) int { return a.Slots[0][0] - b.Slots[0][0] })
	addrs := make([]string, len(ms))
	for i, n := range ms {
		addrs[i] = n.Addr
	}
	return addrs
}

// KeySlot returns the hash slot of key, as CLUSTER KEYSLOT computes it.
func (c *Cluster) KeySlot(key string) int {
	c.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	slot, err := c.NodeClient(c.liveAddr()).ClusterKeySlot(ctx, key).Result()
	if err != nil {
		c.tb.Fatalf("redistest: CLUSTER KEYSLOT %s: %v", key, err)
	}
	return int(slot)
}

// SlotOwner returns the address of the master serving slot, as a live node
// sees it ("" if none).
func (c *Cluster) SlotOwner(slot int) string {
	c.tb.Helper()
	return ownerOf(c.Nodes(), slot)
}

func ownerOf(nodes []ClusterNode, slot int) string {
	for _, n := range nodes {
		if !n.Master {
			continue
		}
		for _, r := range n.Slots {
			if slot >= r[0] && slot <= r[1] {
				return n.Addr
			}
		}
	}
	return ""
}

// Kill SIGKILLs the node at addr (no shutdown, no save) and waits for it to
// exit. It does not wait for the cluster to react.
func (c *Cluster) Kill(addr string) {
	c.tb.Helper()
	c.procMu.Lock()
	defer c.procMu.Unlock()
	for _, p := range c.nodes {
		if p.addr() == addr && !p.dead {
			_ = p.cmd.Process.Kill()
			<-p.exited
			p.dead = true
			return
		}
	}
	c.tb.Fatalf("redistest: no live node %s", addr)
}

// KillMaster SIGKILLs the i-th master of Masters() and waits until one of its
// replicas took over its slots (automatic failover) and every live node agrees.
// Writes the master acknowledged but had not sent to that replica are lost,
// as in production.
func (c *Cluster) KillMaster(i int, opts KillOptions) FailoverResult {
	c.tb.Helper()
	nodes := c.Nodes()
	masters := mastersOf(nodes)
	if i < 0 || i >= len(masters) {
		c.tb.Fatalf("redistest: KillMaster(%d) with %d masters", i, len(masters))
	}
	old := masters[i]
	oldNode := nodeByAddr(nodes, old)
	if len(c.liveReplicasOf(nodes, oldNode.ID)) == 0 {
		c.tb.Fatalf("redistest: master %s has no live replica to take over", old)
	}
	var stopped []*clusterProc
	var lagging time.Time
	var filler int
	if opts.ReplicaLag > 0 {
		stopped, lagging, filler = c.lagReplicas(old, c.liveReplicasOf(nodes, oldNode.ID), opts.ReplicaLag)
	}
	c.Kill(old)
	killed := time.Now()
	c.procMu.Lock()
	for _, p := range stopped {
		if err := p.cmd.Process.Signal(syscall.SIGCONT); err != nil {
			c.procMu.Unlock()
			c.tb.Fatalf("redistest: resuming replica %s: %v", p.addr(), err)
		}
		p.stopped = false
	}
	c.procMu.Unlock()
	var promoted string
	err := c.waitConsistent(failoverTimeout, func(view []ClusterNode) error {
		owner := ownerOf(view, oldNode.Slots[0][0])
		if owner == "" || owner == old {
			return fmt.Errorf("slot %d still owned by %q", oldNode.Slots[0][0], owner)
		}
		promoted = owner
		return nil
	})
	if err != nil {
		c.tb.Fatalf("redistest: no replica took over %s within %s: %v\n%s", old, failoverTimeout, err, c.logs())
	}
	return FailoverResult{Old: old, New: promoted, Killed: killed, Took: time.Since(killed), Lagging: lagging, FillerMB: filler}
}

// fillerChunk is the size of one filler write of lagReplicas; stuckOutput is
// how much replication output must wait in the master's memory before the lag
// starts.
const (
	fillerChunk = 1 << 20
	stuckOutput = 8 << 20
)

// lagReplicas stops the replicas of master, fills the replication link
// until the master buffers replication data in its own memory (client list
// omem > 0: the kernel buffers of the link are full), then lets the master
// serve for lag. It returns the stopped processes, when they were stopped and
// the megabytes of filler written.
func (c *Cluster) lagReplicas(master string, replicas []string, lag time.Duration) ([]*clusterProc, time.Time, int) {
	c.tb.Helper()
	// Filler goes to keys of the master's own slots; found before the
	// replicas stop, as a stopped node answers nothing.
	var filler string
	for i := 0; filler == "" && i < 10000; i++ {
		if k := fmt.Sprintf("{redistest-filler-%d}", i); c.SlotOwner(c.KeySlot(k)) == master {
			filler = k
		}
	}
	if filler == "" {
		c.tb.Fatalf("redistest: no filler key on %s", master)
	}
	var stopped []*clusterProc
	c.procMu.Lock()
	for _, p := range c.nodes {
		if slices.Contains(replicas, p.addr()) && !p.dead {
			if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
				c.procMu.Unlock()
				c.tb.Fatalf("redistest: stopping replica %s: %v", p.addr(), err)
			}
			p.stopped = true
			stopped = append(stopped, p)
		}
	}
	c.procMu.Unlock()
	stoppedAt := time.Now()
	cl := c.NodeClient(master)
	chunk := strings.Repeat("x", fillerChunk)
	ctx, cancel := context.WithTimeout(context.Background(), clusterSettleTimeout)
	defer cancel()
	const maxFill = 128
	for i := range maxFill {
		if err := cl.Set(ctx, fmt.Sprintf("%s:%d", filler, i), chunk, 0).Err(); err != nil {
			c.tb.Fatalf("redistest: filling the replication link of %s: %v", master, err)
		}
		list, err := cl.ClientList(ctx).Result()
		if err != nil {
			c.tb.Fatalf("redistest: CLIENT LIST on %s: %v", master, err)
		}
		if replicaOutputBuffered(list) {
			// Still stuck a moment later: not a burst being flushed.
			time.Sleep(20 * time.Millisecond)
			if list, err = cl.ClientList(ctx).Result(); err == nil && replicaOutputBuffered(list) {
				time.Sleep(lag)
				return stopped, stoppedAt, i + 1
			}
		}
	}
	c.tb.Fatalf("redistest: %d MB of writes did not fill the replication link of %s", maxFill, master)
	return nil, time.Time{}, 0
}

// replicaOutputBuffered reports whether a replica connection in a CLIENT LIST
// reply has at least stuckOutput bytes waiting in the server's memory: the
// kernel buffers of the link are full and the rest cannot reach the replica.
// The margin is large so that the kernel taking some more later (buffer
// autotuning) cannot reach the writes made after it.
func replicaOutputBuffered(list string) bool {
	for line := range strings.SplitSeq(list, "\n") {
		if !strings.Contains(line, "flags=S") {
			continue
		}
		for f := range strings.SplitSeq(line, " ") {
			if v, ok := strings.CutPrefix(f, "omem="); ok {
				if n, err := strconv.Atoi(v); err == nil && n >= stuckOutput {
					return true
				}
			}
		}
	}
	return false
}

// Failover makes a replica of the i-th master take over with a manual
// CLUSTER FAILOVER: the replica first catches up with the master, so no
// acknowledged write is lost. The old master becomes a replica.
func (c *Cluster) Failover(i int) FailoverResult {
	c.tb.Helper()
	nodes := c.Nodes()
	masters := mastersOf(nodes)
	if i < 0 || i >= len(masters) {
		c.tb.Fatalf("redistest: Failover(%d) with %d masters", i, len(masters))
	}
	old := masters[i]
	oldNode := nodeByAddr(nodes, old)
	replicas := c.liveReplicasOf(nodes, oldNode.ID)
	if len(replicas) == 0 {
		c.tb.Fatalf("redistest: master %s has no live replica to take over", old)
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	if err := c.NodeClient(replicas[0]).ClusterFailover(ctx).Err(); err != nil {
		c.tb.Fatalf("redistest: CLUSTER FAILOVER on %s: %v", replicas[0], err)
	}
	err := c.waitConsistent(failoverTimeout, func(view []ClusterNode) error {
		if owner := ownerOf(view, oldNode.Slots[0][0]); owner != replicas[0] {
			return fmt.Errorf("slot %d owned by %q, want %s", oldNode.Slots[0][0], owner, replicas[0])
		}
		return nil
	})
	if err != nil {
		c.tb.Fatalf("redistest: manual failover of %s to %s: %v\n%s", old, replicas[0], err, c.logs())
	}
	return FailoverResult{Old: old, New: replicas[0], Killed: start, Took: time.Since(start)}
}

// Reshard moves slots to the master at to with the CLUSTER SETSLOT / MIGRATE
// protocol redis-cli --cluster reshard uses: mark each slot IMPORTING on the
// target and MIGRATING on its owner, MIGRATE its keys in batches, then assign
// it to the target on every master. Traffic may run meanwhile.
func (c *Cluster) Reshard(slots []int, to string, opts ReshardOptions) ReshardResult {
	c.tb.Helper()
	if opts.KeysPerMigrate <= 0 {
		opts.KeysPerMigrate = 10
	}
	res := ReshardResult{Started: time.Now()}
	for _, slot := range slots {
		keys, migrates, err := c.moveSlot(slot, to, opts)
		res.Keys += keys
		res.Migrates += migrates
		if err != nil {
			c.tb.Fatalf("redistest: moving slot %d to %s: %v", slot, to, err)
		}
	}
	res.Finished = time.Now()
	if err := c.waitConsistent(clusterSettleTimeout, func(view []ClusterNode) error {
		for _, slot := range slots {
			if owner := ownerOf(view, slot); owner != to {
				return fmt.Errorf("slot %d owned by %q", slot, owner)
			}
		}
		return nil
	}); err != nil {
		c.tb.Fatalf("redistest: after resharding: %v", err)
	}
	return res
}

// ReshardKey moves the slot of key (see Reshard).
func (c *Cluster) ReshardKey(key, to string, opts ReshardOptions) ReshardResult {
	c.tb.Helper()
	return c.Reshard([]int{c.KeySlot(key)}, to, opts)
}

func (c *Cluster) moveSlot(slot int, to string, opts ReshardOptions) (keys, migrates int, err error) {
	nodes, err := c.nodesFrom(to)
	if err != nil {
		return 0, 0, err
	}
	from := ownerOf(nodes, slot)
	target := nodeByAddr(nodes, to)
	source := nodeByAddr(nodes, from)
	switch {
	case target.ID == "" || !target.Master:
		return 0, 0, fmt.Errorf("%s is not a master", to)
	case source.ID == "":
		return 0, 0, fmt.Errorf("slot %d has no owner", slot)
	case from == to:
		return 0, 0, nil
	}
	src, dst := c.NodeClient(from), c.NodeClient(to)
	ctx, cancel := context.WithTimeout(context.Background(), clusterSettleTimeout)
	defer cancel()
	if err := dst.Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", source.ID).Err(); err != nil {
		return 0, 0, fmt.Errorf("SETSLOT IMPORTING on %s: %w", to, err)
	}
	if err := src.Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", target.ID).Err(); err != nil {
		return 0, 0, fmt.Errorf("SETSLOT MIGRATING on %s: %w", from, err)
	}
	if opts.OnMigrating != nil {
		opts.OnMigrating(slot)
	}
	host, port, _ := net.SplitHostPort(to)
	for {
		batch, err := src.ClusterGetKeysInSlot(ctx, slot, opts.KeysPerMigrate).Result()
		if err != nil {
			return keys, migrates, fmt.Errorf("GETKEYSINSLOT on %s: %w", from, err)
		}
		if len(batch) == 0 {
			break
		}
		args := []any{"MIGRATE", host, port, "", 0, adminTimeout.Milliseconds(), "KEYS"}
		for _, k := range batch {
			args = append(args, k)
		}
		if err := src.Do(ctx, args...).Err(); err != nil {
			return keys, migrates, fmt.Errorf("MIGRATE from %s: %w", from, err)
		}
		keys += len(batch)
		migrates++
		if opts.Pause > 0 {
			time.Sleep(opts.Pause)
		}
	}
	// As redis-cli: the target first (it bumps its epoch and owns the slot),
	// then the source, then every other master so none answers with a stale
	// MOVED.
	order := []string{to, from}
	for _, n := range nodes {
		if n.Master && !n.Failed && len(n.Slots) > 0 && n.Addr != to && n.Addr != from {
			order = append(order, n.Addr)
		}
	}
	for _, addr := range order {
		if err := c.NodeClient(addr).Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", target.ID).Err(); err != nil {
			return keys, migrates, fmt.Errorf("SETSLOT NODE on %s: %w", addr, err)
		}
	}
	return keys, migrates, nil
}

// liveReplicasOf returns the addresses of masterID's replicas that are alive.
func (c *Cluster) liveReplicasOf(nodes []ClusterNode, masterID string) []string {
	var out []string
	for _, n := range nodes {
		if !n.Master && n.MasterID == masterID && !n.Failed && c.alive(n.Addr) {
			out = append(out, n.Addr)
		}
	}
	return out
}

func nodeByAddr(nodes []ClusterNode, addr string) ClusterNode {
	for _, n := range nodes {
		if n.Addr == addr {
			return n
		}
	}
	return ClusterNode{}
}

func (c *Cluster) alive(addr string) bool {
	c.procMu.Lock()
	defer c.procMu.Unlock()
	for _, p := range c.nodes {
		if p.addr() == addr {
			return !p.dead
		}
	}
	return false
}

// liveAddr returns the address of some live node that answers (not stopped).
func (c *Cluster) liveAddr() string {
	c.tb.Helper()
	c.procMu.Lock()
	defer c.procMu.Unlock()
	for _, p := range c.nodes {
		if !p.dead && !p.stopped {
			return p.addr()
		}
	}
	c.tb.Fatalf("redistest: no live cluster node")
	return ""
}

// nodesFrom parses CLUSTER NODES as the node at addr reports it.
func (c *Cluster) nodesFrom(addr string) ([]ClusterNode, error) {
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	raw, err := c.NodeClient(addr).ClusterNodes(ctx).Result()
	if err != nil {
		return nil, fmt.Errorf("CLUSTER NODES on %s: %w", addr, err)
	}
	return parseClusterNodes(raw)
}

// parseClusterNodes reads lines of
// "<id> <ip:port@cport> <flags> <master> <ping> <pong> <epoch> <link> <slot>...".
// Slots being imported or migrated ("[...]") are skipped.
func parseClusterNodes(raw string) ([]ClusterNode, error) {
	var nodes []ClusterNode
	for line := range strings.SplitSeq(strings.TrimSpace(raw), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			return nil, fmt.Errorf("malformed CLUSTER NODES line %q", line)
		}
		addr, _, _ := strings.Cut(f[1], "@")
		addr, _, _ = strings.Cut(addr, ",") // hostname, if announced
		flags := strings.Split(f[2], ",")
		n := ClusterNode{
			ID:     f[0],
			Addr:   addr,
			Master: slices.Contains(flags, "master"),
			Failed: slices.Contains(flags, "fail") || slices.Contains(flags, "fail?"),
		}
		if f[3] != "-" {
			n.MasterID = f[3]
		}
		for _, s := range f[8:] {
			if strings.HasPrefix(s, "[") {
				continue
			}
			lo, hi, isRange := strings.Cut(s, "-")
			a, err := strconv.Atoi(lo)
			if err != nil {
				return nil, fmt.Errorf("malformed slot %q in %q", s, line)
			}
			b := a
			if isRange {
				if b, err = strconv.Atoi(hi); err != nil {
					return nil, fmt.Errorf("malformed slot %q in %q", s, line)
				}
			}
			n.Slots = append(n.Slots, [2]int{a, b})
		}
		nodes = append(nodes, n)
	}
	return nodes, nil
}

// waitConsistent waits until every live node reports cluster_state:ok, knows
// every node, sees no live node as failed and no dead one serving slots, serves all
// 16384 slots from live masters, agrees with the others on the slot owners,
// every live replica's link to its master is up, and check (if any) accepts
// the view.
func (c *Cluster) waitConsistent(timeout time.Duration, check func([]ClusterNode) error) error {
	deadline := time.Now().Add(timeout)
	var lastErr error
	for time.Now().Before(deadline) {
		if lastErr = c.consistent(check); lastErr == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("after %s: %w", timeout, lastErr)
}

func (c *Cluster) consistent(check func([]ClusterNode) error) error {
	var first []ClusterNode
	var firstAddr string
	for _, p := range c.nodes {
		addr := p.addr()
		if !c.alive(addr) {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		info, err := c.NodeClient(addr).ClusterInfo(ctx).Result()
		cancel()
		if err != nil {
			return fmt.Errorf("CLUSTER INFO on %s: %w", addr, err)
		}
		if !strings.Contains(info, "cluster_state:ok") {
			return fmt.Errorf("%s: not cluster_state:ok", addr)
		}
		view, err := c.nodesFrom(addr)
		if err != nil {
			return err
		}
		if err := c.checkView(addr, view); err != nil {
			return err
		}
		if first == nil {
			first, firstAddr = view, addr
		} else if a, b := topology(first), topology(view); a != b {
			return fmt.Errorf("%s and %s disagree on the topology: %s / %s", firstAddr, addr, a, b)
		}
	}
	if first == nil {
		return errors.New("no live node")
	}
	if check != nil {
		return check(first)
	}
	return nil
}

// checkView checks one node's view: every node known, live ones not failed,
// dead ones serving nothing, live masters cover all slots, a replica synced.
func (c *Cluster) checkView(from string, view []ClusterNode) error {
	if len(view) != len(c.nodes) {
		return fmt.Errorf("%s knows %d nodes, want %d", from, len(view), len(c.nodes))
	}
	covered := 0
	for _, n := range view {
		alive := c.alive(n.Addr)
		if alive && n.Failed {
			return fmt.Errorf("%s sees live node %s as failed", from, n.Addr)
		}
		if !alive && n.Master && len(n.Slots) > 0 {
			return fmt.Errorf("%s still sees dead node %s serving slots", from, n.Addr)
		}
		if !alive {
			continue
		}
		if n.Master {
			for _, r := range n.Slots {
				covered += r[1] - r[0] + 1
			}
			continue
		}
		if n.Addr == from {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			repl, err := c.NodeClient(from).Info(ctx, "replication").Result()
			cancel()
			if err != nil {
				return fmt.Errorf("INFO replication on %s: %w", from, err)
			}
			if !strings.Contains(repl, "master_link_status:up") {
				return fmt.Errorf("replica %s: link to its master is not up", from)
			}
		}
	}
	if covered != 16384 {
		return fmt.Errorf("%s sees %d of 16384 slots served by live masters", from, covered)
	}
	return nil
}

// topology summarizes who serves what and who replicates whom, for
// comparing views.
func topology(view []ClusterNode) string {
	parts := make([]string, 0, len(view))
	for _, n := range view {
		if n.Master {
			parts = append(parts, fmt.Sprint(n.Addr, n.Slots))
		} else {
			parts = append(parts, n.Addr+"->"+n.MasterID)
		}
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

// logs returns every node's output, for failure messages.
func (c *Cluster) logs() string {
	var b strings.Builder
	for _, p := range c.nodes {
		if p.log != nil {
			fmt.Fprintf(&b, "--- %s ---\n%s", p.addr(), p.log.String())
		}
	}
	return b.String()
}

func (c *Cluster) cleanup() {
	c.mu.Lock()
	clients := c.clients
	admin := c.admin
	c.clients, c.client, c.admin = nil, nil, map[string]*redis.Client{}
	c.mu.Unlock()
	for _, cl := range clients {
		_ = cl.Close()
	}
	for _, cl := range admin {
		_ = cl.Close()
	}
	c.procMu.Lock()
	defer c.procMu.Unlock()
	for _, p := range c.nodes {
		if !p.dead && p.cmd != nil {
			_ = p.cmd.Process.Kill()
			<-p.exited
			p.dead = true
		}
	}
}
