package closedloop

// What one scenario leaves behind: the ground truth sampled every second, every change of
// spec.replicas as a watch delivered it, the manager's events, the lab's own marks, and
// the scores computed from them. It is also the JSON the report writes, so field names
// are the report's vocabulary.

// runRecord is one scenario's run.
type runRecord struct {
	Name      string   `json:"name"`
	Title     string   `json:"title"`
	About     string   `json:"about"`
	Workloads []string `json:"workloads"`
	// Weights are the workloads' spec.weight, in the same order.
	Weights []int32 `json:"weights"`
	// StartedAt is the wall-clock start (RFC 3339); every T is seconds after it.
	StartedAt string `json:"startedAt"`
	// WallSeconds is the whole scenario, setup and teardown included.
	WallSeconds float64       `json:"wallSeconds"`
	World       world         `json:"world"`
	Samples     []sample      `json:"samples"`
	Changes     []change      `json:"changes"`
	Events      []eventRecord `json:"events"`
	Marks       []mark        `json:"marks"`
	Jobs        []jobCounts   `json:"jobs"`
	Metrics     metrics       `json:"metrics"`
	// Problems are what went wrong with the lab itself during the run (not scores).
	Problems []string `json:"problems,omitempty"`
}

// world is the fixed setting the optimum is computed from.
type world struct {
	Limits             [3]float64 `json:"limits"`
	HeadroomPercent    float64    `json:"headroomPercent"`
	Budget             [3]float64 `json:"budget"`
	PerRequest         [3]float64 `json:"perRequest"`
	TrueMuPerMinute    float64    `json:"trueMuPerMinute"`
	DeclaredMu         []int64    `json:"declaredMu"`
	StartDelaySeconds  float64    `json:"startDelaySeconds"`
	MaxReplicas        int32      `json:"maxReplicas"`
	MinReplicas        int32      `json:"minReplicas"`
	BudgetBoundPerMin  float64    `json:"budgetBoundPerMinute"`
	Binding            int        `json:"binding"`
	FirstPushSeconds   float64    `json:"firstPushSeconds"`
	ArrivalsStopSecond float64    `json:"arrivalsStopSeconds,omitempty"`
	ExternalOTPM       float64    `json:"externalOTPM,omitempty"`
	ExternalFrom       float64    `json:"externalFromSeconds,omitempty"`
	EndAtMin           bool       `json:"endAtMin,omitempty"`
	// Offered is the steady arrival rate as a share of the budget-bound throughput
	// (0: one-off backlogs only); utilization is judged when it is at least 1 or a
	// one-off backlog waits.
	Offered float64 `json:"offered"`
}

// sample is one second of ground truth.
type sample struct {
	T float64 `json:"t"`
	// W holds one entry per workload, in the scenario's order.
	W    []workloadSample `json:"w"`
	Mock mockSample       `json:"mock"`
	// Ext is the external client's cumulative counters (scenario f).
	Ext externalCounters `json:"ext"`
	// Enforced is the pool budget the controller last published for the limiters
	// (requests, input tokens, output tokens per minute); zero before the first write or
	// while Redis is away.
	Enforced [3]int64 `json:"enforced"`
}

// workloadSample is one workload at one second.
type workloadSample struct {
	// Spec and Ready are the Deployment's spec.replicas and status.readyReplicas.
	Spec  int32 `json:"spec"`
	Ready int32 `json:"ready"`
	// Backlog is LLEN of the list, InFlight LLEN of the processing list; -1 when Redis
	// did not answer.
	Backlog  int64 `json:"backlog"`
	InFlight int64 `json:"inFlight"`
	// Fleet counters, cumulative.
	Completed        int64 `json:"completed"`
	Requeued         int64 `json:"requeued"`
	CallsRateLimited int64 `json:"callsRateLimited"`
	CallsFailed      int64 `json:"callsFailed"`
	Starting         int   `json:"starting"`
	Running          int   `json:"running"`
	Terminating      int   `json:"terminating"`
	// Status is the ClaudeCapacity's status, for the chart and for debugging only.
	Status ccStatus `json:"status"`
}

// ccStatus is what the operator said about itself.
type ccStatus struct {
	Desired    int32  `json:"desired"`
	Demand     int32  `json:"demand"`
	Cap        int32  `json:"cap"`
	LimitedBy  string `json:"limitedBy,omitempty"`
	PerReplica int64  `json:"perReplica"`
	Arrivals   int64  `json:"arrivals"`
	Depth      int64  `json:"depth"`
	// UpstreamOTPMLeft is what the API's last headers said is left of the output-token
	// limit, as the operator reports it (-1: unknown).
	UpstreamOTPMLeft int64 `json:"upstreamOTPMLeft"`
}

// mockSample is the mock's /mock/stats for the model class, cumulative except LastMinute.
type mockSample struct {
	OK           bool  `json:"ok"`
	Admitted     int64 `json:"admitted"`
	RateLimited  int64 `json:"rateLimited"`
	InputTokens  int64 `json:"inputTokens"`
	OutputTokens int64 `json:"outputTokens"`
	// LastMinute is the mock's sliding 60 s window: requests, ITPM input tokens, output tokens.
	LastMinute [3]int64 `json:"lastMinute"`
	// Peak is the highest sliding 60 s usage so far.
	Peak [3]int64 `json:"peak"`
}

// externalCounters are the external client's own counts (scenario f).
type externalCounters struct {
	Sent         int64 `json:"sent"`
	OK           int64 `json:"ok"`
	RateLimited  int64 `json:"rateLimited"`
	Failed       int64 `json:"failed"`
	OutputTokens int64 `json:"outputTokens"`
}

// change is one change of a workload's spec.replicas, when a watch delivered it.
type change struct {
	T        float64 `json:"t"`
	Workload int     `json:"workload"`
	From     int32   `json:"from"`
	To       int32   `json:"to"`
}

// eventRecord is one Kubernetes event about a ClaudeCapacity.
type eventRecord struct {
	T        float64 `json:"t"`
	Workload int     `json:"workload"`
	Type     string  `json:"type"`
	Reason   string  `json:"reason"`
	Message  string  `json:"message"`
	Count    int32   `json:"count"`
}

// mark is something the lab did: a push, arrivals stopping, Redis going down.
type mark struct {
	T     float64 `json:"t"`
	Label string  `json:"label"`
}

// jobCounts is the exactly-once ledger of one workload.
type jobCounts struct {
	Pushed int `json:"pushed"`
	// PushFailed jobs never reached Redis (it was down); they are not counted anywhere else.
	PushFailed int `json:"pushFailed"`
	AckedOnce  int `json:"ackedOnce"`
	// Duplicates are jobs acknowledged more than once; Lost are jobs neither acknowledged
	// nor still queued or in flight; Left are jobs still queued when the run ended.
	Duplicates int `json:"duplicates"`
	Lost       int `json:"lost"`
	Left       int `json:"left"`
	// LostToRestart is the part of Lost that was in Redis when it restarted empty (g).
	LostToRestart int `json:"lostToRestart,omitempty"`
	// Unknown are acknowledgements of payloads the lab never pushed.
	Unknown int `json:"unknown,omitempty"`
}
