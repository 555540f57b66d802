package capacity

import (
	"math"
	"testing"
	"time"
)

var t0 = time.Date(2026, 4, 1, 12, 0, 0, 0, time.UTC)

func at(seconds float64) time.Time {
	return t0.Add(time.Duration(seconds * float64(time.Second)))
}

func TestArrivalEstimator(t *testing.T) {
	tests := []struct {
		name         string
		prior        float64
		tau          time.Duration
		samples      []QueueSample
		wantRate     float64
		wantObserved bool
		wantLast     int64
	}{
		{
			name: "no sample yet: the declared rate", prior: 300, wantRate: 300,
		},
		{
			name: "one sample only sets the baseline", prior: 300,
			samples:  []QueueSample{{Time: at(0), Backlog: 50, CompletedKnown: true}},
			wantRate: 300,
		},
		{
			name: "arrivals are queue growth plus completions, smoothed from the prior", prior: 300, tau: time.Minute,
			samples: []QueueSample{
				{Time: at(0), Backlog: 10, InFlight: 5, Completed: 100, CompletedKnown: true},
				// 60 s later: queue +15 (10+5 -> 20+10) and 45 completed: 60 arrivals, 60/min.
				{Time: at(60), Backlog: 20, InFlight: 10, Completed: 145, CompletedKnown: true},
			},
			wantRate: 300 + (1-math.Exp(-1))*(60-300), wantObserved: true, wantLast: 60,
		},
		{
			name: "a job that arrives and finishes between polls still counts", prior: 0, tau: time.Nanosecond,
			samples: []QueueSample{
				{Time: at(0), Completed: 7, CompletedKnown: true},
				{Time: at(2), Completed: 8, CompletedKnown: true},
			},
			wantRate: 30, wantObserved: true, wantLast: 1,
		},
		{
			name: "a shrinking queue with no completions seen counts zero arrivals, not negative", prior: 0, tau: time.Nanosecond,
			samples: []QueueSample{
				{Time: at(0), Backlog: 100, CompletedKnown: true},
				{Time: at(6), Backlog: 40, CompletedKnown: true},
			},
			wantRate: 0, wantObserved: true, wantLast: 0,
		},
		{
			name: "without completions a growing queue can raise the estimate", prior: 10, tau: time.Nanosecond,
			samples: []QueueSample{
				{Time: at(0), Backlog: 0},
				{Time: at(30), Backlog: 100},
			},
			wantRate: 200, wantObserved: false, wantLast: 100,
		},
		{
			name: "without completions a quiet queue lowers the estimate only at a tenth of the pace", prior: 10, tau: 3 * time.Second,
			samples: []QueueSample{
				{Time: at(0), Backlog: 5},
				{Time: at(30), Backlog: 5},
			},
			// 30 s at tau 30 s (10 x 3 s): 1 - e^-1 of the way from 10 to 0.
			wantRate: 10 * math.Exp(-1), wantObserved: false, wantLast: 0,
		},
		{
			name: "a completion counter that goes down is a reset: only queue growth counts", prior: 0, tau: time.Nanosecond,
			samples: []QueueSample{
				{Time: at(0), Backlog: 0, Completed: 1000, CompletedKnown: true},
				{Time: at(60), Backlog: 30, Completed: 5, CompletedKnown: true},
			},
			wantRate: 30, wantObserved: false, wantLast: 30,
		},
		{
			name: "a sample at the same time is ignored", prior: 0, tau: time.Nanosecond,
			samples: []QueueSample{
				{Time: at(0), Completed: 0, CompletedKnown: true},
				{Time: at(0), Completed: 500, CompletedKnown: true},
				{Time: at(60), Completed: 60, CompletedKnown: true},
			},
			wantRate: 60, wantObserved: true, wantLast: 60,
		},
		{
			name: "a clock that moves back rebases without changing the estimate", prior: 42, tau: time.Nanosecond,
			samples: []QueueSample{
				{Time: at(60), Completed: 0, CompletedKnown: true},
				{Time: at(0), Completed: 900, CompletedKnown: true},
			},
			wantRate: 42, wantObserved: false, wantLast: 0,
		},
		{
			name: "the smoothing weighs an interval by its length, not by the poll count", prior: 0, tau: time.Minute,
			samples: func() []QueueSample {
				// 30 polls 2 s apart at 120/min must land where one 60 s interval does.
				var s []QueueSample
				for i := range 31 {
					s = append(s, QueueSample{Time: at(float64(2 * i)), Completed: int64(4 * i), CompletedKnown: true})
				}
				return s
			}(),
			wantRate: (1 - math.Exp(-1)) * 120, wantObserved: true, wantLast: 4,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := NewArrivalEstimator(tt.prior, tt.tau)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range tt.samples {
				if err := e.Observe(s); err != nil {
					t.Fatal(err)
				}
			}
			got := e.Estimate()
			if math.Abs(got.PerMinute-tt.wantRate) > 1e-6 || got.Observed != tt.wantObserved || got.LastArrivals != tt.wantLast {
				t.Errorf("estimate %+v, want rate %v observed %v last %d", got, tt.wantRate, tt.wantObserved, tt.wantLast)
			}
		})
	}
}

func TestArrivalEstimatorRefusesMalformedInput(t *testing.T) {
	if _, err := NewArrivalEstimator(-1, 0); err == nil {
		t.Error("negative prior accepted")
	}
	if _, err := NewArrivalEstimator(math.NaN(), 0); err == nil {
		t.Error("NaN prior accepted")
	}
	if _, err := NewArrivalEstimator(1, -time.Second); err == nil {
		t.Error("negative time constant accepted")
	}
	e, err := NewArrivalEstimator(5, 0)
	if err != nil {
		t.Fatal(err)
	}
	checkErr(t, e.Observe(QueueSample{Backlog: 1}), "without a time")
	checkErr(t, e.Observe(QueueSample{Time: t0, Backlog: -1}), "negative count")
	if got := e.Estimate(); got.PerMinute != 5 {
		t.Errorf("malformed samples changed the estimate to %v", got.PerMinute)
	}
}

func TestPerReplicaThroughput(t *testing.T) {
	tests := []struct {
		name     string
		declared float64
		observed ThroughputObservation
		want     float64
		wantObs  bool
		wantErr  string
	}{
		{name: "too few samples: declared", declared: 30, observed: ThroughputObservation{RequestsPerMinute: 12, Samples: 3}, want: 30},
		{name: "enough samples: observed", declared: 30, observed: ThroughputObservation{RequestsPerMinute: 12, Samples: 10}, want: 12, wantObs: true},
		{name: "an observed zero is ignored", declared: 30, observed: ThroughputObservation{Samples: 99}, want: 30},
		{name: "an observed NaN is ignored", declared: 30, observed: ThroughputObservation{RequestsPerMinute: math.NaN(), Samples: 99}, want: 30},
		{name: "declared must be positive", declared: 0, wantErr: "declared throughput 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, obs, err := PerReplicaThroughput(tt.declared, tt.observed, DefaultMinThroughputSamples)
			checkErr(t, err, tt.wantErr)
			if err == nil && (got != tt.want || obs != tt.wantObs) {
				t.Errorf("got %v (observed %v), want %v (observed %v)", got, obs, tt.want, tt.wantObs)
			}
		})
	}
}

func TestComputeDemand(t *testing.T) {
	drain := 2 * time.Minute
	tests := []struct {
		name     string
		in       DemandInput
		want     int32
		wantReq  float64
		wantIdle bool
		wantErr  string
	}{
		{name: "arrivals alone: 300/min at 30 per replica is 10",
			in:   DemandInput{Arrivals: ArrivalEstimate{PerMinute: 300, LastArrivals: 10}, ThroughputPerReplica: 30, DrainTime: drain},
			want: 10, wantReq: 300},
		{name: "a backlog adds backlog/drain: 600 jobs over 2 min is 300/min more",
			in:   DemandInput{Backlog: 600, Arrivals: ArrivalEstimate{PerMinute: 300}, ThroughputPerReplica: 30, DrainTime: drain},
			want: 20, wantReq: 600},
		{name: "a fraction of a replica rounds up",
			in:   DemandInput{Backlog: 61, ThroughputPerReplica: 30, DrainTime: drain},
			want: 2, wantReq: 30.5},
		{name: "float noise above a whole number does not add a replica",
			in:   DemandInput{Arrivals: ArrivalEstimate{PerMinute: 0.1 + 0.2, LastArrivals: 1}, ThroughputPerReplica: 0.3 / 3, DrainTime: drain},
			want: 3, wantReq: 0.1 + 0.2},
		{name: "idle: nothing queued, in flight or arriving needs none, whatever the smoothed rate",
			in:   DemandInput{Arrivals: ArrivalEstimate{PerMinute: 0.4}, ThroughputPerReplica: 30, DrainTime: drain},
			want: 0, wantReq: 0.4, wantIdle: true},
		{name: "work in flight alone needs one replica",
			in:   DemandInput{InFlight: 3, ThroughputPerReplica: 30, DrainTime: drain},
			want: 1, wantReq: 0},
		{name: "a job that arrived since the last poll needs one replica",
			in:   DemandInput{Arrivals: ArrivalEstimate{LastArrivals: 1}, ThroughputPerReplica: 30, DrainTime: drain},
			want: 1, wantReq: 0},
		{name: "a huge backlog saturates instead of overflowing",
			in:   DemandInput{Backlog: math.MaxInt64, ThroughputPerReplica: 1e-6, DrainTime: time.Second},
			want: math.MaxInt32, wantReq: float64(math.MaxInt64) * 60},
		{name: "zero throughput is refused", in: DemandInput{DrainTime: drain}, wantErr: "throughput per replica 0"},
		{name: "zero drain time is refused", in: DemandInput{ThroughputPerReplica: 1}, wantErr: "drain time 0s"},
		{name: "negative backlog is refused", in: DemandInput{Backlog: -1, ThroughputPerReplica: 1, DrainTime: drain},
			wantErr: "negative queue counts"},
		{name: "NaN arrivals are refused",
			in:      DemandInput{Arrivals: ArrivalEstimate{PerMinute: math.NaN()}, ThroughputPerReplica: 1, DrainTime: drain},
			wantErr: "arrival rate NaN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ComputeDemand(tt.in)
			checkErr(t, err, tt.wantErr)
			if err != nil {
				return
			}
			if got.Replicas != tt.want || got.Idle != tt.wantIdle || math.Abs(got.RequiredPerMinute-tt.wantReq) > 1e-9*math.Max(1, tt.wantReq) {
				t.Errorf("demand %d (required %v, idle %v), want %d (required %v, idle %v)",
					got.Replicas, got.RequiredPerMinute, got.Idle, tt.want, tt.wantReq, tt.wantIdle)
			}
		})
	}
}
