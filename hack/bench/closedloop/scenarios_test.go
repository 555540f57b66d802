package closedloop

import (
	"math"
	"time"

	"github.com/claudecap/claudecap/internal/svgchart"
)

// The lab's world, chosen so that one scenario fits in about a minute and a half: calls of
// about 2 s (so one worker does about 30 a minute), 250 output tokens each, and an
// output-token limit that binds at about ten workers. Requests and input tokens are
// plentiful, so the binding dimension is never in doubt.
const (
	// model is what the workers call; it maps to the sonnet-4 class, the mock's limited one.
	model      = "claude-sonnet-4-5"
	modelClass = "sonnet-4"

	limitRPM  = 1000
	limitITPM = 500000
	limitOTPM = 80000
	headroom  = 90

	// Every response has exactly outputTokens tokens (the mock's fixed length), below
	// maxTokens, so a reservation of max_tokens is refunded 50 tokens at settlement.
	outputTokens = 250
	maxTokens    = 300
	// inputTokens is the prompt size the workers send, as the mock counts it (internal/standin
	// pads each prompt to it).
	inputTokens = 400

	// A call takes ttft + perToken x (outputTokens - 1): 0.5 + 0.006 x 249 = 1.994 s.
	ttftMean     = 500 * time.Millisecond
	ttftSD       = 50 * time.Millisecond
	perTokenMean = 6 * time.Millisecond

	// startDelay is how long a new pod takes to become Ready.
	startDelay = 5 * time.Second
	// maxReplicas is every ClaudeCapacity's replicas.max.
	maxReplicas = 30
	// drainSeconds is every ClaudeCapacity's queue.targetDrainSeconds.
	drainSeconds = 60
)

// callSeconds is how long one call takes on average at the mock.
func callSeconds() float64 {
	return ttftMean.Seconds() + perTokenMean.Seconds()*float64(outputTokens-1)
}

// trueMu is what one busy worker really completes per minute: one call after another. The
// worker's own overhead (two Redis commands and a loopback hop through its sidecar, about
// 2 ms) is left out: it is below 0.2% of a call.
func trueMu() float64 { return 60 / callSeconds() }

// declaredMu is the requestsPerMinutePerReplica a workload declares by default: the true
// figure, rounded.
const declaredMu = 30

// poolBudget is the pool's budget per minute in each dimension: limit x headroom, before
// any usage from outside the pool.
func poolBudget() [3]float64 {
	return [3]float64{
		math.Floor(limitRPM * headroom / 100.0),
		math.Floor(limitITPM * headroom / 100.0),
		math.Floor(limitOTPM * headroom / 100.0),
	}
}

// perRequest is what one call costs in each dimension, counted as the limits count it.
func perRequest() [3]float64 {
	return [3]float64{1, inputTokens, outputTokens}
}

// budgetBoundThroughput is the most jobs per minute the pool can complete: the budget over
// the per-request cost in the binding dimension, or all replicas of every workload busy,
// whichever is less. external is usage per minute from outside the pool (by dimension).
func budgetBoundThroughput(workloads int, external [3]float64) (perMinute float64, binding int) {
	budget, cost := poolBudget(), perRequest()
	perMinute, binding = math.Inf(1), -1
	for d := range budget {
		if v := math.Max(0, budget[d]-external[d]) / cost[d]; v < perMinute {
			perMinute, binding = v, d
		}
	}
	return math.Min(perMinute, float64(workloads*maxReplicas)*trueMu()), binding
}

// dimensionNames index the three dimensions as the arrays above do.
var dimensionNames = [3]string{"requests", "input tokens", "output tokens"}

// workloadPlan is one worker Deployment, its ClaudeCapacity and its queue's schedule.
type workloadPlan struct {
	name   string
	weight int32
	// declaredMu is spec.worker.requestsPerMinutePerReplica.
	declaredMu int64
	// backlog jobs are pushed at once at backlogAt.
	backlog   int
	backlogAt time.Duration
	// arrivalsPerMinute is the mean of Poisson arrivals from arrivalsFrom to arrivalsUntil.
	arrivalsPerMinute           float64
	arrivalsFrom, arrivalsUntil time.Duration
}

// scenario is one run of the lab. Times are from the scenario's start, when the fleet starts
// its first pod.
type scenario struct {
	name, title, about string
	workloads          []workloadPlan
	// duration is when the run ends at the latest; with endWhenDrained it ends earlier,
	// drainedTail after every queue is empty.
	duration       time.Duration
	endWhenDrained bool
	// endAtMin ends the run, drainedTail later, once arrivals have stopped and every
	// workload is back at replicas.min.
	endAtMin bool
	// drain says the scenario is a one-off backlog whose drain time is scored.
	drain bool
	// scaleDownStabilization overrides the default window (300 s) when set.
	scaleDownStabilization *int32
	// external, when set, is another client calling the mock directly from externalAt.
	externalOTPMShare float64
	externalAt        time.Duration
	// redisDown and redisUp, when set, stop redis-server and start it again, empty.
	redisDown, redisUp time.Duration
	// splitFrom is how long after the first push the completion split starts to count.
	splitFrom time.Duration
}

const drainedTail = 3 * time.Second

// firstPush is when the first job of any workload enters its queue.
func (s *scenario) firstPush() time.Duration {
	first := time.Duration(math.MaxInt64)
	for _, w := range s.workloads {
		if w.backlog > 0 {
			first = min(first, w.backlogAt)
		}
		if w.arrivalsPerMinute > 0 {
			first = min(first, w.arrivalsFrom)
		}
	}
	return first
}

// arrivalsStop is when the last arrivals of any workload end (0: no steady arrivals).
func (s *scenario) arrivalsStop() time.Duration {
	var last time.Duration
	for _, w := range s.workloads {
		if w.arrivalsPerMinute > 0 {
			last = max(last, w.arrivalsUntil)
		}
	}
	return last
}

// scenarios returns the suite in the order it runs. Rates are fractions of the pool's
// budget-bound throughput (288 jobs a minute: 72,000 output tokens / 250).
func scenarios() []*scenario {
	optimum, _ := budgetBoundThroughput(1, [3]float64{})
	steady := func(name, title string, share float64) *scenario {
		return &scenario{
			name: name, title: title,
			about: "Poisson arrivals at " + percent(share) + " of the budget-bound throughput from 5 s to 55 s.",
			workloads: []workloadPlan{{
				name: "steady", declaredMu: declaredMu,
				arrivalsPerMinute: share * optimum, arrivalsFrom: 5 * time.Second, arrivalsUntil: 55 * time.Second,
			}},
			duration: 57 * time.Second,
		}
	}
	backlog := func(name, title, about string, declared int64) *scenario {
		return &scenario{
			name: name, title: title, about: about,
			workloads: []workloadPlan{{name: "batch", declaredMu: declared, backlog: 200, backlogAt: 5 * time.Second}},
			duration:  110 * time.Second, endWhenDrained: true, drain: true,
		}
	}
	stabilization := int32(30)
	return []*scenario{
		backlog("a", "one-off backlog", "200 jobs pushed at once at 5 s, nothing after.", declaredMu),
		steady("b1", "steady arrivals at 50%", 0.5),
		steady("b2", "steady arrivals at 100%", 1.0),
		steady("b3", "steady arrivals at 300%", 3.0),
		backlog("c", "workers 3x slower than declared",
			"200 jobs at 5 s; the workers do 30 calls a minute but declare 90.", 3*declaredMu),
		backlog("d", "workers 3x faster than declared",
			"200 jobs at 5 s; the workers do 30 calls a minute but declare 10.", declaredMu/3),
		{
			name: "e", title: "two workloads in one pool, weights 1:2",
			about: "Two Deployments and ClaudeCapacities in one organization, weights 1 and 2, each with 40 jobs at 5 s " +
				"and Poisson arrivals at 150% of its weighted share of the budget.",
			workloads: []workloadPlan{
				{name: "light", weight: 1, declaredMu: declaredMu, backlog: 40, backlogAt: 5 * time.Second,
					arrivalsPerMinute: 1.5 * optimum / 3, arrivalsFrom: 5 * time.Second, arrivalsUntil: 75 * time.Second},
				{name: "heavy", weight: 2, declaredMu: declaredMu, backlog: 80, backlogAt: 5 * time.Second,
					arrivalsPerMinute: 1.5 * optimum * 2 / 3, arrivalsFrom: 5 * time.Second, arrivalsUntil: 75 * time.Second},
			},
			duration: 75 * time.Second, splitFrom: 30 * time.Second,
		},
		{
			name: "f", title: "external usage appears mid-run",
			about: "Poisson arrivals at 150% from 5 s; from 40 s another client calls the mock directly " +
				"(not through the limiter) for 40% of the output-token limit.",
			workloads: []workloadPlan{{name: "steady", declaredMu: declaredMu,
				arrivalsPerMinute: 1.5 * optimum, arrivalsFrom: 5 * time.Second, arrivalsUntil: 100 * time.Second}},
			duration: 100 * time.Second, externalOTPMShare: 0.4, externalAt: 40 * time.Second,
		},
		{
			name: "g", title: "Redis restarted mid-run",
			about: "Poisson arrivals at 120% from 5 s; redis-server is killed at 40 s and started again, empty, at 50 s.",
			workloads: []workloadPlan{{name: "steady", declaredMu: declaredMu,
				arrivalsPerMinute: 1.2 * optimum, arrivalsFrom: 5 * time.Second, arrivalsUntil: 85 * time.Second}},
			duration: 85 * time.Second, redisDown: 40 * time.Second, redisUp: 50 * time.Second,
		},
		{
			name: "h", title: "arrivals stop: back to min",
			about: "Poisson arrivals at 80% from 5 s to 50 s, then none; scale-down stabilization 30 s, replicas.min 0.",
			workloads: []workloadPlan{{name: "steady", declaredMu: declaredMu,
				arrivalsPerMinute: 0.8 * optimum, arrivalsFrom: 5 * time.Second, arrivalsUntil: 50 * time.Second}},
			duration: 115 * time.Second, endAtMin: true, scaleDownStabilization: &stabilization,
		},
	}
}

func percent(f float64) string {
	return svgchart.TrimFloat(f*100) + "%"
}
