package controllers

import (
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"k8s.io/apimachinery/pkg/types"

	"github.com/claudecap/claudecap/pkg/capacity"
	"github.com/claudecap/claudecap/pkg/queue"
	"github.com/claudecap/claudecap/pkg/redispool"
)

// memory is what the controller remembers about each ClaudeCapacity between reconciles
// that is not worth a status field: the arrival estimator and the signal failure streak.
// It is rebuilt from nothing after a restart: the estimator starts again from the declared
// traffic, and the scaling history (which does matter for flapping) lives in status.
type memory struct {
	mu    sync.Mutex
	items map[types.NamespacedName]*workloadMemory
}

type workloadMemory struct {
	// generation of the spec the estimator was built for; a new spec restarts it.
	generation int64
	estimator  *capacity.ArrivalEstimator
	// failures counts consecutive failed signal reads, for backoff and events.
	failures int
	// lastSignalError is the last failure's message, to emit an event only when it changes.
	lastSignalError string
	// secrets caches credential values read from Secrets, and when each was read.
	secrets secretCache
	// source polls the queue (a Redis source over a connection shared with other
	// workloads on the same server); it is reopened when its settings change.
	source         queue.Source
	sourceSettings queue.Settings

	// limiter is the last limiter state read, through limiterRedis;
	// publishedAt is when the pool config was last written.
	limiter          *limiterView
	limiterRedis     leasedRedis
	lastLimiterError string
	publishedAt      time.Time
	// backlogSince is when the queue's current backlog appeared (zero while it is empty).
	backlogSince time.Time
	// throughput measures per-replica throughput from lastPoll to each new poll.
	throughput *capacity.ThroughputEstimator
	lastPoll   pollPoint
	// polled is the last poll: when it ran and what it saw (see pollDue).
	polled pollMark
	// poolBase is the pool's limits times headroom at the last decision: when it falls,
	// the cap may cut at once (capacity.CapCutLimitLowered).
	poolBase capacity.PerDimension
	// overwritten is the resourceVersion the last status patch replaced: while the cache
	// still holds it, the cache has not seen this controller's own write (see Reconcile).
	overwritten string
}

// pollMark is when a poll ran and the spec generation and pause annotations it saw.
type pollMark struct {
	at         time.Time
	generation int64
	pause      string
}

// leasedRedis is a shared client leased from the Redis pool for one connection; it is
// leased again when the connection (address, password, TLS, database) changes.
type leasedRedis struct {
	lease *redispool.Lease
	conn  redispool.Connection
}

// client returns the client for want, leasing it from pool first if needed.
func (l *leasedRedis) client(pool *redispool.Pool, want redispool.Connection) (*redis.Client, error) {
	if l.lease == nil || l.conn != want {
		l.release()
		lease, err := pool.Acquire(want)
		if err != nil {
			return nil, err
		}
		l.lease, l.conn = lease, want
	}
	return l.lease.Client(), nil
}

// current is the leased client; nil before the first lease.
func (l *leasedRedis) current() *redis.Client {
	if l.lease == nil {
		return nil
	}
	return l.lease.Client()
}

// release gives the shared connection back.
func (l *leasedRedis) release() {
	if l.lease != nil {
		l.lease.Release()
		l.lease = nil
	}
}

// closeSource closes the queue source (giving a shared connection back).
func (w *workloadMemory) closeSource() {
	if w.source != nil {
		w.source.Close()
		w.source, w.sourceSettings = nil, nil
	}
}

func newMemory() *memory {
	return &memory{items: map[types.NamespacedName]*workloadMemory{}}
}

// get returns the memory of one ClaudeCapacity, creating it on first use. Callers hold no
// lock across I/O: one reconcile per object runs at a time (controller-runtime guarantees
// it), so the returned value is only touched by that reconcile.
func (m *memory) get(key types.NamespacedName) *workloadMemory {
	m.mu.Lock()
	defer m.mu.Unlock()
	w, ok := m.items[key]
	if !ok {
		w = &workloadMemory{}
		m.items[key] = w
	}
	return w
}

// reset forgets everything, as a restart of the operator would. Reconciles running now
// keep the entries they hold; their sources are left open, since closing one under a
// running poll would pull it from under that reconcile (tests only).
func (m *memory) reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.items = map[types.NamespacedName]*workloadMemory{}
}

// forget drops a deleted ClaudeCapacity's memory.
func (m *memory) forget(key types.NamespacedName) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if w, ok := m.items[key]; ok {
		w.closeSource()
		w.limiterRedis.release()
	}
	delete(m.items, key)
}
