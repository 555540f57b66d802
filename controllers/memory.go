package controllers

import (
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"k8s.io/apimachinery/pkg/types"

	capacityv1alpha1 "github.com/claudecap/claudecap/api/v1alpha1"
	"github.com/claudecap/claudecap/pkg/capacity"
	"github.com/claudecap/claudecap/pkg/signals"
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
	// passwords caches Redis passwords read from Secrets, and when each was read.
	passwords map[capacityv1alpha1.SecretKeyRef]cachedPassword
	// reader polls the queue over a connection shared with other workloads on the same
	// Redis; it is rebuilt when the connection or the queue changes.
	reader      *signals.Reader
	readerConn  signals.Connection
	readerQueue signals.Queue

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

type cachedPassword struct {
	value string
	read  time.Time
}

// leasedRedis is a shared client leased from the signals pool for one connection; it is
// leased again when the connection (address, password, TLS, database) changes.
type leasedRedis struct {
	lease *signals.Lease
	conn  signals.Connection
}

// client returns the client for want, leasing it from pool first if needed.
func (l *leasedRedis) client(pool *signals.Pool, want signals.Connection) (*redis.Client, error) {
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

// closeReader gives the reader's shared connection back.
func (w *workloadMemory) closeReader() {
	if w.reader != nil {
		w.reader.Close()
		w.reader = nil
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
// keep the entries they hold; their readers are left open, since closing one under a
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
		w.closeReader()
		w.limiterRedis.release()
	}
	delete(m.items, key)
}
