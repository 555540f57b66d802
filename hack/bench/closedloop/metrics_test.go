package closedloop

import (
	"fmt"
	"math"
	"sort"

	"k8s.io/utils/ptr"
)

// Scores of one run, computed from the ground truth only (samples, the watch's replica
// changes, the lab's own ledger), never from the operator's status. Optional scores are
// nil when the scenario does not define them; docs/scenarios.md defines each.
type metrics struct {
	// ReactionSeconds: from the first push to the first scale-up of any workload.
	ReactionSeconds *float64 `json:"reactionSeconds,omitempty"`
	// DrainSeconds: from the first push until every queue and processing list is empty
	// (one-off backlogs only); OptimumDrainSeconds: the backlog at the budget-bound
	// throughput, plus one start delay.
	DrainSeconds        *float64 `json:"drainSeconds,omitempty"`
	OptimumDrainSeconds *float64 `json:"optimumDrainSeconds,omitempty"`
	// Reversals counts direction changes of spec.replicas; AgainstTrend those made while
	// the backlog only grew or only shrank.
	Reversals     int      `json:"reversals"`
	AgainstTrend  int      `json:"againstTrend"`
	ReversalNotes []string `json:"reversalNotes,omitempty"`
	// ReplicaMinutes integrates spec.replicas from the first push to the end of the work
	// (the drain, or the end of the run); OptimumReplicaMinutes is the work done in that
	// span at the true per-replica throughput.
	ReplicaMinutes        float64 `json:"replicaMinutes"`
	OptimumReplicaMinutes float64 `json:"optimumReplicaMinutes"`
	// Utilization is the binding dimension's use at the mock over the pool's budget, over
	// the seconds in which a backlog waited (from one start delay after the first push);
	// UtilizationSeconds is how long that was.
	Utilization        *float64 `json:"utilization,omitempty"`
	UtilizationSeconds float64  `json:"utilizationSeconds"`
	// BackloggedPerMinute is jobs completed per minute over those same seconds.
	BackloggedPerMinute *float64 `json:"backloggedPerMinute,omitempty"`
	// Upstream429s is the mock's 429s to the pool (the external client's own 429s apart).
	Upstream429s int64 `json:"upstream429s"`
	External429s int64 `json:"external429s,omitempty"`
	// Peak is the mock's highest sliding 60 s usage per dimension; PeakOverLimit over the limit.
	Peak          [3]int64   `json:"peak"`
	PeakOverLimit [3]float64 `json:"peakOverLimit"`
	// ShareFirst is the first workload's share of completions while both were backlogged
	// (scenario e); WantedShareFirst its weight's share.
	ShareFirst       *float64 `json:"shareFirst,omitempty"`
	WantedShareFirst *float64 `json:"wantedShareFirst,omitempty"`
	// OutageMinReplicas is the lowest spec.replicas from Redis going down until throughput
	// recovered; RecoverySeconds is from Redis back up until completions reach 90% of their
	// pre-outage rate (scenario g).
	OutageMinReplicas *int32   `json:"outageMinReplicas,omitempty"`
	PreOutageReplicas *int32   `json:"preOutageReplicas,omitempty"`
	RecoverySeconds   *float64 `json:"recoverySeconds,omitempty"`
	// BackToMinSeconds is from the last arrival until every workload is at replicas.min
	// for good, IdleAfterSeconds from the last arrival until every queue was first empty
	// (scenario h).
	BackToMinSeconds *float64 `json:"backToMinSeconds,omitempty"`
	IdleAfterSeconds *float64 `json:"idleAfterSeconds,omitempty"`
	// PoolPerMinute and ExternalPerMinute are the binding dimension's use per minute by the
	// pool and by the external client from 20 s after the client started to the end
	// (scenario f), when the budget left to the pool is Budget less ExternalPerMinute.
	PoolPerMinute     *float64 `json:"poolPerMinute,omitempty"`
	ExternalPerMinute *float64 `json:"externalPerMinute,omitempty"`
}

// scoreInput is what scoring needs beyond the record: the scenario's schedule.
type scoreInput struct {
	drain              bool
	firstPush          float64
	lastBacklogPush    float64
	arrivalsStop       float64
	endAtMin           bool
	minReplicas        int32
	startDelay         float64
	mu                 float64
	jobs               int
	splitFrom          float64
	redisDown, redisUp float64
}

// score fills r.Metrics from r's series.
func score(r *runRecord, in scoreInput) {
	m := &r.Metrics
	if len(r.Samples) == 0 {
		return
	}
	m.ReactionSeconds = reaction(r.Changes, in.firstPush)
	end := r.Samples[len(r.Samples)-1].T
	if in.drain {
		if t, ok := drainedAt(r.Samples, in.lastBacklogPush); ok {
			m.DrainSeconds = ptr.To(t - in.firstPush)
			end = t
		}
		perMinute := r.World.BudgetBoundPerMin
		m.OptimumDrainSeconds = ptr.To(float64(in.jobs)/perMinute*60 + in.startDelay)
	}
	m.Reversals, m.AgainstTrend, m.ReversalNotes = reversals(r.Samples, r.Changes, len(r.Workloads))
	for w := range r.Workloads {
		m.ReplicaMinutes += replicaMinutes(r.Samples, r.Changes, w, in.firstPush, end)
	}
	done := completedBetween(r.Samples, in.firstPush, end)
	m.OptimumReplicaMinutes = float64(done) / in.mu
	util, seconds, perMinute := utilization(r.Samples, r.World, in.firstPush+in.startDelay)
	m.UtilizationSeconds = seconds
	if seconds > 0 {
		m.Utilization, m.BackloggedPerMinute = ptr.To(util), ptr.To(perMinute)
	}
	last := r.Samples[len(r.Samples)-1]
	m.External429s = last.Ext.RateLimited
	m.Upstream429s = last.Mock.RateLimited - last.Ext.RateLimited
	for d := range m.Peak {
		m.Peak[d] = last.Mock.Peak[d]
		m.PeakOverLimit[d] = float64(last.Mock.Peak[d]) / r.World.Limits[d]
	}
	if len(r.Workloads) == 2 {
		if share, ok := completionSplit(r.Samples, in.firstPush+in.splitFrom); ok {
			m.ShareFirst = ptr.To(share)
			m.WantedShareFirst = ptr.To(float64(r.Weights[0]) / float64(r.Weights[0]+r.Weights[1]))
		}
	}
	if in.redisUp > 0 {
		m.RecoverySeconds = recovery(r.Samples, in.redisDown, in.redisUp)
		until := end
		if m.RecoverySeconds != nil {
			until = in.redisUp + *m.RecoverySeconds
		}
		lowest, before := outageReplicas(r.Samples, in.redisDown, until)
		m.OutageMinReplicas, m.PreOutageReplicas = &lowest, &before
	}
	if in.endAtMin {
		m.BackToMinSeconds = backToMin(r.Samples, r.Changes, len(r.Workloads), in.minReplicas, in.arrivalsStop)
		if t, ok := idleAt(r.Samples, in.arrivalsStop); ok {
			m.IdleAfterSeconds = ptr.To(t - in.arrivalsStop)
		}
	}
	if r.World.ExternalOTPM > 0 {
		from := r.World.ExternalFrom + 20
		if span := last.T - from; span > 0 {
			a := sampleAt(r.Samples, from)
			ext := float64(last.Ext.OutputTokens - a.Ext.OutputTokens)
			m.ExternalPerMinute = ptr.To(ext * 60 / span)
			m.PoolPerMinute = ptr.To((usedBetween(a.Mock, last.Mock, 2) - ext) * 60 / span)
		}
	}
}

// idleAt is the first sample at or after t at which every queue and processing list is
// known and empty.
func idleAt(samples []sample, t float64) (float64, bool) {
	for _, s := range samples {
		if s.T < t {
			continue
		}
		idle := true
		for _, w := range s.W {
			idle = idle && w.Backlog == 0 && w.InFlight == 0
		}
		if idle {
			return s.T, true
		}
	}
	return 0, false
}

// reaction is the time from the first push to the first scale-up after it.
func reaction(changes []change, firstPush float64) *float64 {
	for _, c := range sortedChanges(changes) {
		if c.T >= firstPush && c.To > c.From {
			return ptr.To(c.T - firstPush)
		}
	}
	return nil
}

func sortedChanges(changes []change) []change {
	out := append([]change(nil), changes...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].T < out[j].T })
	return out
}

// drainedAt is the first sample, after the last backlog push was seen in the queue, at which
// every workload's queue and processing list are both known and empty.
func drainedAt(samples []sample, after float64) (float64, bool) {
	seen := false
	for _, s := range samples {
		if s.T < after {
			continue
		}
		empty := true
		for _, w := range s.W {
			empty = empty && w.Backlog == 0 && w.InFlight == 0
			seen = seen || w.Backlog > 0 || w.InFlight > 0
		}
		if seen && empty {
			return s.T, true
		}
	}
	return 0, false
}

// replicasAt is workload w's spec.replicas at time t: the last change at or before t, else
// the value before the first change, else the first sample's.
func replicasAt(samples []sample, changes []change, w int, t float64) int32 {
	var value int32
	known := false
	for _, c := range sortedChanges(changes) {
		if c.Workload != w {
			continue
		}
		if c.T > t {
			if !known {
				return c.From
			}
			break
		}
		value, known = c.To, true
	}
	if known {
		return value
	}
	if len(samples) > 0 {
		return samples[0].W[w].Spec
	}
	return 0
}

// replicaMinutes integrates workload w's spec.replicas over [from, to], exactly, from the
// watch's changes.
func replicaMinutes(samples []sample, changes []change, w int, from, to float64) float64 {
	if to <= from {
		return 0
	}
	t, total := from, 0.0
	current := replicasAt(samples, changes, w, from)
	for _, c := range sortedChanges(changes) {
		if c.Workload != w || c.T <= from {
			continue
		}
		if c.T >= to {
			break
		}
		total += float64(current) * (c.T - t)
		t, current = c.T, c.To
	}
	total += float64(current) * (to - t)
	return total / 60
}

// sampleAt is the last sample at or before t (the first one when t is earlier).
func sampleAt(samples []sample, t float64) sample {
	i := sort.Search(len(samples), func(i int) bool { return samples[i].T > t })
	if i == 0 {
		return samples[0]
	}
	return samples[i-1]
}

func completedAt(samples []sample, t float64) int64 {
	var n int64
	for _, w := range sampleAt(samples, t).W {
		n += w.Completed
	}
	return n
}

// completedBetween is the jobs every workload's fleet acknowledged in (from, to].
func completedBetween(samples []sample, from, to float64) int64 {
	return completedAt(samples, to) - completedAt(samples, from)
}

// externalRate is the external client's output tokens per minute over the minute before t.
func externalRate(samples []sample, t float64) float64 {
	if len(samples) == 0 {
		return 0
	}
	now, before := sampleAt(samples, t), sampleAt(samples, t-60)
	span := math.Min(60, now.T-samples[0].T)
	if span <= 0 {
		return 0
	}
	return float64(now.Ext.OutputTokens-before.Ext.OutputTokens) * 60 / span
}

// utilization is the pool's use of the binding dimension at the mock over its budget
// (limit x headroom, less what the external client used in the last minute), summed over
// the sample intervals that start at or after from with a backlog waiting in some queue.
// It also returns those seconds and the jobs completed per minute over them.
func utilization(samples []sample, wd world, from float64) (ratio, seconds, perMinute float64) {
	d := wd.Binding
	var used, budget float64
	var done int64
	for i := 1; i < len(samples); i++ {
		prev, cur := samples[i-1], samples[i]
		if prev.T < from || !prev.Mock.OK || !cur.Mock.OK {
			continue
		}
		var backlog int64
		known := true
		for _, w := range prev.W {
			known = known && w.Backlog >= 0
			backlog += w.Backlog
		}
		if !known || backlog == 0 {
			continue
		}
		dt := cur.T - prev.T
		pool := usedBetween(prev.Mock, cur.Mock, d)
		if d == 2 {
			pool -= float64(cur.Ext.OutputTokens - prev.Ext.OutputTokens)
		}
		used += pool
		extRate := 0.0
		if d == 2 {
			extRate = externalRate(samples, prev.T)
		}
		budget += math.Max(0, wd.Budget[d]-extRate) * dt / 60
		seconds += dt
		for w := range cur.W {
			done += cur.W[w].Completed - prev.W[w].Completed
		}
	}
	if budget <= 0 || seconds <= 0 {
		return 0, 0, 0
	}
	return used / budget, seconds, float64(done) * 60 / seconds
}

// usedBetween is what the mock counted in dimension d between two scrapes.
func usedBetween(a, b mockSample, d int) float64 {
	switch d {
	case 0:
		return float64(b.Admitted - a.Admitted)
	case 1:
		return float64(b.InputTokens - a.InputTokens)
	default:
		return float64(b.OutputTokens - a.OutputTokens)
	}
}

// reversals counts, per workload, the changes of spec.replicas whose direction differs from
// the workload's previous change, and among them those made while that workload's backlog
// was non-empty and had only grown or only shrunk since the previous change (looking back
// at most 30 s).
func reversals(samples []sample, changes []change, workloads int) (total, againstTrend int, notes []string) {
	for w := range workloads {
		var prev *change
		for _, c := range sortedChanges(changes) {
			if c.Workload != w || c.To == c.From {
				continue
			}
			if prev != nil && (c.To > c.From) != (prev.To > prev.From) {
				total++
				trend := backlogTrend(samples, w, math.Max(prev.T, c.T-30), c.T)
				note := fmt.Sprintf("t=%.0fs %d->%d after %d->%d at t=%.0fs", c.T, c.From, c.To, prev.From, prev.To, prev.T)
				if workloads > 1 {
					note = fmt.Sprintf("workload %d: %s", w, note)
				}
				if trend != "" {
					againstTrend++
					note += " while the backlog only " + trend
				}
				notes = append(notes, note)
			}
			prev = &c
		}
	}
	return total, againstTrend, notes
}

// backlogTrend says "grew" or "shrank" when workload w's queue was non-empty at to and its
// backlog, smoothed over 3 s, moved only one way over [from, to] by at least 3 jobs;
// otherwise "". A scale-down once the queue is empty is not against any trend.
func backlogTrend(samples []sample, w int, from, to float64) string {
	var xs []float64
	for _, s := range samples {
		if s.T >= from-1 && s.T <= to+0.5 && s.W[w].Backlog >= 0 {
			xs = append(xs, float64(s.W[w].Backlog))
		}
	}
	if len(xs) < 3 || xs[len(xs)-1] == 0 {
		return ""
	}
	smooth := make([]float64, len(xs)-2)
	for i := range smooth {
		smooth[i] = (xs[i] + xs[i+1] + xs[i+2]) / 3
	}
	const tolerance = 1.0
	up, down := true, true
	for i := 1; i < len(smooth); i++ {
		step := smooth[i] - smooth[i-1]
		up = up && step >= -tolerance
		down = down && step <= tolerance
	}
	net := xs[len(xs)-1] - xs[0]
	switch {
	case up && net >= 3:
		return "grew"
	case down && net <= -3:
		return "shrank"
	}
	return ""
}

// completionSplit is the first workload's share of the completions in the sample intervals
// that start at or after from with both workloads backlogged.
func completionSplit(samples []sample, from float64) (float64, bool) {
	var first, both int64
	for i := 1; i < len(samples); i++ {
		prev, cur := samples[i-1], samples[i]
		if prev.T < from || prev.W[0].Backlog <= 0 || prev.W[1].Backlog <= 0 {
			continue
		}
		a := cur.W[0].Completed - prev.W[0].Completed
		b := cur.W[1].Completed - prev.W[1].Completed
		first += a
		both += a + b
	}
	if both == 0 {
		return 0, false
	}
	return float64(first) / float64(both), true
}

// recoveryWindow is the span completions are counted over to call throughput recovered.
const recoveryWindow = 10.0

// recovery is how long after Redis came back the completions over recoveryWindow first
// reached 90% of their rate over the 30 s before it went down; nil if they never did. The
// window lies wholly after the restart, so the answer is at least recoveryWindow.
func recovery(samples []sample, down, up float64) *float64 {
	before := float64(completedBetween(samples, down-30, down)) / 30
	if before <= 0 {
		return nil
	}
	for _, s := range samples {
		if s.T < up+recoveryWindow {
			continue
		}
		if float64(completedBetween(samples, s.T-recoveryWindow, s.T))/recoveryWindow >= 0.9*before {
			return ptr.To(s.T - up)
		}
	}
	return nil
}

// outageReplicas is the lowest total spec.replicas over [down, until] and the total just
// before down.
func outageReplicas(samples []sample, down, until float64) (lowest, before int32) {
	total := func(s sample) int32 {
		var n int32
		for _, w := range s.W {
			n += w.Spec
		}
		return n
	}
	before = total(sampleAt(samples, down))
	lowest = before
	for _, s := range samples {
		if s.T >= down && s.T <= until {
			lowest = min(lowest, total(s))
		}
	}
	return lowest, before
}

// backToMin is the time from the last arrival until every workload reached minReplicas
// for good; nil when some workload is not at min at the end.
func backToMin(samples []sample, changes []change, workloads int, minReplicas int32, stop float64) *float64 {
	last := samples[len(samples)-1].T
	reached := stop
	for w := range workloads {
		if replicasAt(samples, changes, w, last) != minReplicas {
			return nil
		}
		for _, c := range sortedChanges(changes) {
			if c.Workload == w && c.T > stop && c.T > reached {
				reached = c.T
			}
		}
	}
	return ptr.To(reached - stop)
}
