package standin

import (
	"maps"
	"sync"
	"sync/atomic"
)

// Stats are the fleet's counters since Start: the ground truth a scenario compares the
// operator's view with.
type Stats struct {
	// JobsCompleted counts jobs acknowledged after a successful call.
	JobsCompleted int64
	// JobsRequeued counts jobs put back on the queue after a failed call, or because the
	// grace period of their pod ran out.
	JobsRequeued int64
	// JobsHandedBack counts jobs a pod received after it was told to stop and returned
	// unworked, since a Terminating pod takes no new job.
	JobsHandedBack int64
	// QueueErrors counts acknowledgements and requeues that failed or found the job no
	// longer in the worker's custody: each is a job the queue may no longer show rightly.
	QueueErrors int64
	// CallsOK counts successful calls.
	CallsOK int64
	// CallsRateLimited counts calls answered 429 (by the sidecar or the API).
	CallsRateLimited int64
	// CallsFailed counts every other failed call: 5xx, transport errors, and calls
	// cancelled at the end of a grace period.
	CallsFailed int64
	// SidecarFailures counts sidecars that did not start (each is retried).
	SidecarFailures int64
	// PodsStarting, PodsReady and PodsTerminating count the pods in each phase now.
	PodsStarting, PodsReady, PodsTerminating int
}

// counters are the fleet's cumulative counters, updated by every worker.
type counters struct {
	jobsCompleted, jobsRequeued, jobsHandedBack, queueErrors atomic.Int64
	callsOK, callsRateLimited, callsFailed, sidecarFailures  atomic.Int64

	mu    sync.Mutex
	acked map[string]int // payload -> times acknowledged
}

func newCounters() *counters { return &counters{acked: map[string]int{}} }

func (c *counters) recordAck(payload string) {
	c.jobsCompleted.Add(1)
	c.mu.Lock()
	c.acked[payload]++
	c.mu.Unlock()
}

func (c *counters) ackedCopy() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.acked)
}

func (c *counters) snapshot() Stats {
	return Stats{
		JobsCompleted:    c.jobsCompleted.Load(),
		JobsRequeued:     c.jobsRequeued.Load(),
		JobsHandedBack:   c.jobsHandedBack.Load(),
		QueueErrors:      c.queueErrors.Load(),
		CallsOK:          c.callsOK.Load(),
		CallsRateLimited: c.callsRateLimited.Load(),
		CallsFailed:      c.callsFailed.Load(),
		SidecarFailures:  c.sidecarFailures.Load(),
	}
}
