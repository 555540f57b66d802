package capacity

import (
	"testing"
	"time"
)

// plant is a fleet of workers as the controller sees it through its pure parts: pods
// become ready startDelay after the replicas are raised, stop at once when lowered, and
// each running pod completes mu calls per minute while work waits.
type plant struct {
	mu                 float64
	startDelay         time.Duration
	spec, running      int32
	raisedAt           time.Time
	backlog, completed int64
	done               float64 // fractional completions carried between polls
}

func (p *plant) setReplicas(now time.Time, n int32) {
	if n > p.spec {
		p.raisedAt = now
	}
	p.spec = n
	p.running = min(p.running, n)
}

func (p *plant) advance(now time.Time, dt time.Duration) {
	if now.Sub(p.raisedAt) >= p.startDelay {
		p.running = p.spec
	}
	p.done += float64(p.running) * p.mu * dt.Minutes()
	n := min(int64(p.done), p.backlog)
	p.done -= float64(int64(p.done))
	p.backlog -= n
	p.completed += n
}

// TestClosedLoopBacklogDrainsWithoutCollapse runs the controller's whole pure loop against
// the plant for the case that broke the first version (make dev, 900 jobs pushed): workers
// declared at 30 calls/min really do 15, output tokens bind. The first version scaled
// 20 -> 1 within a second with 616 jobs queued and then cycled every two minutes. Here
// replicas must rise to the budget cap and stay there while the backlog drains.
func TestClosedLoopBacklogDrainsWithoutCollapse(t *testing.T) {
	const poll = 2 * time.Second
	behavior := DefaultBehavior()
	behavior.ScaleDown.StabilizationWindow = 120 * time.Second
	avgRequest := profile(480, 250)
	// 81,000 OTPM of budget at 250 tokens: 324 calls/min, 21 replicas at the true 15/min.
	const trueCap = 21
	arrivals, err := NewArrivalEstimator(300, 0) // the sample declares 300/min
	if err != nil {
		t.Fatal(err)
	}
	throughput, err := NewThroughputEstimator(0, 1)
	if err != nil {
		t.Fatal(err)
	}
	p := &plant{mu: 15, startDelay: 5 * time.Second, spec: 1, running: 1}
	var (
		history              History
		peak                 int32
		drainedAt            time.Time
		decreasesWithBacklog int
	)
	for i := range 300 {
		now := at(float64(i) * poll.Seconds())
		if i == 5 {
			p.backlog += 900
		}
		before := p.completed
		startRunning := p.running
		p.advance(now, poll)
		if i > 0 {
			iv := WorkInterval{Start: now.Add(-poll), End: now, RunningReplicas: min(startRunning, p.running),
				Saturated: p.backlog > 0, Completed: p.completed - before, CountersKnown: true}
			if err := throughput.Observe(iv); err != nil {
				t.Fatal(err)
			}
		}
		if err := arrivals.Observe(QueueSample{Time: now, Backlog: p.backlog, Completed: p.completed, CompletedKnown: true}); err != nil {
			t.Fatal(err)
		}
		mu, _, err := throughput.Estimate(30)
		if err != nil {
			t.Fatal(err)
		}
		demand, err := ComputeDemand(DemandInput{Backlog: p.backlog, Arrivals: arrivals.Estimate(), ThroughputPerReplica: mu, DrainTime: 2 * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		alloc := shareOf(t, tier2, "me", NewClaim("me", 1, demand, 0, 50, avgRequest))
		in := DecisionInput{Now: now, CurrentReplicas: p.spec, MaxReplicas: 50, Demand: demand, Allocation: alloc,
			Behavior: behavior, History: history}
		d, err := Decide(in)
		if err != nil {
			t.Fatal(err)
		}
		checkDecisionInvariants(t, in, d)
		history = d.History
		if d.DesiredReplicas < p.spec && p.backlog > 0 {
			decreasesWithBacklog++
			t.Logf("t=%v: %d -> %d with %d queued: %s", now.Sub(t0), p.spec, d.DesiredReplicas, p.backlog, d.Message)
		}
		p.setReplicas(now, d.DesiredReplicas)
		peak = max(peak, p.spec)
		if p.backlog == 0 && drainedAt.IsZero() && i > 5 {
			drainedAt = now
		}
	}
	if decreasesWithBacklog > 0 {
		t.Errorf("replicas went down %d times while jobs were queued", decreasesWithBacklog)
	}
	if peak < trueCap-1 || peak > trueCap {
		t.Errorf("peak %d replicas, want the true budget cap of %d (or one less: the estimate rounds)", peak, trueCap)
	}
	if drainedAt.IsZero() {
		t.Fatal("the backlog never drained")
	}
	// Optimum: 900 jobs at the budget-bound 324/min, plus a start delay.
	optimum := 900*time.Minute/324 + p.startDelay
	if drain := drainedAt.Sub(at(10)); drain > optimum*3/2 {
		t.Errorf("drained in %v, want within 1.5x the optimum %v", drain, optimum)
	}
}
