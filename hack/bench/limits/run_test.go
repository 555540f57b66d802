package limits

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/claudecap/claudecap/pkg/loadtest"
)

// drainTimeout bounds the wait for calls under way once a row stops sending; calls still
// running then are cancelled.
const drainTimeout = 30 * time.Second

// eventKind is something a row does at a set time.
type eventKind int

const (
	evWindowStart eventKind = iota
	evWindowEnd
	evRedisDown
	evRedisUp
)

// event is one step of a row's timeline, at an offset from its origin.
type event struct {
	at   time.Duration
	kind eventKind
}

// timeline is a row's events in time order.
func timeline(r row) []event {
	w := r.window()
	evs := []event{{w.start, evWindowStart}, {w.end(), evWindowEnd}}
	if o := r.sc.outage; o != nil {
		evs = append(evs, event{o.start, evRedisDown}, event{o.end(), evRedisUp})
	}
	slices.SortStableFunc(evs, func(a, b event) int { return cmp.Compare(a.at, b.at) })
	return evs
}

// runRow runs one row from fresh parts to its result. Parts that fail to start fail t; what
// the row measures never does.
func runRow(t *testing.T, r row) *rowResult {
	wall := time.Now()
	counts := newClientCounts()
	w := startWorld(t, r, counts)
	res := newRowResult(r)
	offered, binding := ratedLoad(meanCost(r.sc.mix, r.sc.output), r.enforced())
	res.OfferedPerMinute, res.ExpectedBinding = offered, binding.String()
	sched, err := loadtest.NewSchedule(r.profile(offered), loadtest.ArrivalPoisson, seedOf(r.name()))
	if err != nil {
		t.Fatalf("scheduling arrivals: %v", err)
	}
	m := w.drive(sched)
	record(res, m, counts)
	if m.cancelled {
		res.Notes = append(res.Notes, fmt.Sprintf("calls still under way %s after the end were cancelled", drainTimeout))
	}
	if n := w.fixedErrors.Load(); n > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("%d fixed-window checks failed on Redis and let the call through", n))
	}
	res.WallSeconds = time.Since(wall).Seconds()
	judge(res)
	return res
}

// measures is what a row's run read from the mock.
type measures struct {
	origin    time.Time
	from, to  usage  // the steady-state window's ends
	atRestart *int64 // the mock's 429s when Redis came back (outage rows)
	final     usage  // after every call ended
	trace     []tracePoint
	cancelled bool // some calls had to be cancelled at the end
}

// drive runs the row's traffic and timeline: the opening calls, the rated mix on sched, the
// stand-in controller and the trace, the window's readings and the outage; then it stops
// sending and waits for the calls under way.
func (w *world) drive(sched *loadtest.Schedule) measures {
	r := w.row
	calls, cancelCalls := context.WithCancel(context.Background())
	defer cancelCalls()
	sending, stopSending := context.WithCancel(calls)
	defer stopSending()
	m := measures{origin: time.Now()}
	go w.runController(sending, m.origin)
	traced := make(chan []tracePoint, 1)
	go func() { traced <- w.trace(sending, m.origin) }()
	for i := range r.sc.opening {
		w.gen.send(calls, len(r.sc.mix)+i, true)
	}
	mixDone := make(chan struct{})
	go func() {
		defer close(mixDone)
		w.gen.runMix(sending, calls, m.origin, sched, newPicker(r.sc.mix, seedOf(r.name())+1))
	}()

	for _, ev := range timeline(r) {
		time.Sleep(time.Until(m.origin.Add(ev.at)))
		switch ev.kind {
		case evWindowStart:
			m.from = readUsage(w.mock, w.readsCount)
		case evWindowEnd:
			m.to = readUsage(w.mock, w.readsCount)
		case evRedisDown:
			w.rds.Stop()
		case evRedisUp:
			w.rds.Restart()
			n := readUsage(w.mock, w.readsCount).refused
			m.atRestart = &n
		}
	}
	stopSending()
	<-mixDone
	m.trace = <-traced
	if !w.gen.wait(drainTimeout) {
		m.cancelled = true
		cancelCalls()
		w.gen.wait(drainTimeout)
	}
	m.final = readUsage(w.mock, w.readsCount)
	return m
}

// record fills a row's result from what it measured and what its clients saw.
func record(res *rowResult, m measures, counts *clientCounts) {
	res.Client = clientResultOf(counts)
	res.Upstream = upstreamResult{RateLimited: m.final.refused, ByDimension: nonZero(m.final.refusals), Statuses: m.final.byStatus}
	if m.atRestart != nil {
		after := m.final.refused - *m.atRestart
		res.Upstream.AfterRestart = &after
	}
	rate := perMinute(m.from, m.to)
	apiShare := shareOf(rate, limitsOf(res.APILimits))
	res.Steady = steadyResult{
		StartSeconds: m.from.at.Sub(m.origin).Seconds(), Seconds: m.to.at.Sub(m.from.at).Seconds(),
		PerMinute: dimsOf(rate), ShareOfAPI: dimsOf(apiShare), Binding: mostUsed(apiShare).String(),
	}
	if res.Enforced != nil {
		e := dimsOf(shareOf(rate, limitsOf(*res.Enforced)))
		res.Steady.ShareOfEnforced = &e
	}
	res.Trace = m.trace
}

// newRowResult fills what a row's configuration alone decides.
func newRowResult(r row) *rowResult {
	res := &rowResult{
		Name: r.name(), Scenario: r.sc.name, About: r.sc.about, Limiter: string(r.limiter), Outage: r.sc.outage != nil,
		Mode: string(r.mode), Headroom: r.headroom, APILimits: scaleLimits(r.sc.limits, 1),
	}
	if r.limiter == limiterClaudecap {
		res.Proxies = proxies
	}
	if r.limiter != limiterNone {
		e := r.enforced()
		res.Enforced = &e
	}
	return res
}

// failedRow stands for a row that stopped before producing a result.
func failedRow(r row, why string) *rowResult {
	res := newRowResult(r)
	res.Error = why
	judge(res)
	return res
}

func clientResultOf(c *clientCounts) clientResult {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := clientResult{
		Calls: c.calls, Results: map[string]int64{}, Statuses: map[string]int64{},
		RateLimitedProxy: c.proxy429, RateLimitedAPI: c.api429, RateLimitedWindow: c.window429,
		Unavailable: c.statuses[503],
	}
	out.RateLimited = out.RateLimitedProxy + out.RateLimitedAPI + out.RateLimitedWindow
	for cl, n := range c.classes {
		out.Results[string(cl)] = n
	}
	for st, n := range c.statuses {
		key := strconv.Itoa(st)
		if st == 0 {
			key = "transport"
		}
		out.Statuses[key] = n
	}
	return out
}

func nonZero(m map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for k, v := range m {
		if v != 0 {
			out[k] = v
		}
	}
	return out
}
