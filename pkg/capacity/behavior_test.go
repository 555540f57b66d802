package capacity

import (
	"slices"
	"testing"
	"time"
)

func points(pairs ...float64) []ReplicaPoint {
	var out []ReplicaPoint
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, ReplicaPoint{Time: at(pairs[i]), Replicas: int32(pairs[i+1])})
	}
	return out
}

func rules(window time.Duration, sel SelectPolicy, policies ...ScalingPolicy) ScalingRules {
	return ScalingRules{StabilizationWindow: window, SelectPolicy: sel, Policies: policies}
}

func pods(v int32, period time.Duration) ScalingPolicy {
	return ScalingPolicy{Type: PodsPolicy, Value: v, Period: period}
}

func percent(v int32, period time.Duration) ScalingPolicy {
	return ScalingPolicy{Type: PercentPolicy, Value: v, Period: period}
}

func TestBehaviorPace(t *testing.T) {
	const now = 1000.0
	unbounded := Behavior{}
	downWindow := Behavior{ScaleDown: rules(300*time.Second, SelectMax)}
	tests := []struct {
		name           string
		behavior       Behavior
		history        History
		current, rec   int32
		want           int32
		wantRestraint  Restraint
		wantWindowOver time.Duration
	}{
		{name: "no behavior: straight to the recommendation", behavior: unbounded, current: 10, rec: 3, want: 3},
		{name: "scale-down waits for a higher recommendation to leave the window",
			behavior: downWindow, history: History{Recommendations: points(now-400, 10, now-350, 4, now-100, 9)},
			current: 10, rec: 3, want: 9, wantRestraint: RestraintScaleDownStabilized, wantWindowOver: 300 * time.Second},
		{name: "scale-down follows once the window holds only lower recommendations",
			behavior: downWindow, history: History{Recommendations: points(now-400, 10, now-310, 3)},
			current: 10, rec: 3, want: 3},
		{name: "the recommendation in force at the window start counts, though recorded before it",
			behavior: downWindow, history: History{Recommendations: points(now-310, 7, now-10, 3)},
			current: 10, rec: 3, want: 7, wantRestraint: RestraintScaleDownStabilized, wantWindowOver: 300 * time.Second},
		{name: "no history for the whole window (fresh or restarted without status): hold",
			behavior: downWindow, history: History{Recommendations: points(now-100, 3)},
			current: 10, rec: 3, want: 10, wantRestraint: RestraintScaleDownStabilized, wantWindowOver: 300 * time.Second},
		{name: "the down window never holds a scale-up",
			behavior: downWindow, history: History{Recommendations: points(now-100, 3)},
			current: 2, rec: 8, want: 8},
		{name: "scale-up window: up to the lowest recommendation in it",
			behavior: Behavior{ScaleUp: rules(60*time.Second, SelectMax)},
			history:  History{Recommendations: points(now-120, 4, now-30, 6)},
			current:  2, rec: 8, want: 4, wantRestraint: RestraintScaleUpStabilized, wantWindowOver: 60 * time.Second},
		{name: "default scale-up: doubling or +4 per 30 s, whichever is more",
			behavior: DefaultBehavior(), current: 2, rec: 20, want: 6, wantRestraint: RestraintScaleUpLimit, wantWindowOver: 30 * time.Second},
		{name: "default scale-up from 10: doubling wins",
			behavior: DefaultBehavior(), current: 10, rec: 50, want: 20, wantRestraint: RestraintScaleUpLimit, wantWindowOver: 30 * time.Second},
		{name: "selectPolicy Min picks the smaller step",
			behavior: Behavior{ScaleUp: rules(0, SelectMin, percent(100, time.Minute), pods(4, time.Minute))},
			current:  2, rec: 20, want: 4, wantRestraint: RestraintScaleUpLimit, wantWindowOver: time.Minute},
		{name: "a step already taken in the period counts against the next",
			behavior: Behavior{ScaleUp: rules(0, SelectMax, pods(4, 30*time.Second))},
			history:  History{Observed: points(now-40, 4, now-20, 8)},
			current:  8, rec: 20, want: 8, wantRestraint: RestraintScaleUpLimit, wantWindowOver: 30 * time.Second},
		{name: "once the period has passed the next step is allowed",
			behavior: Behavior{ScaleUp: rules(0, SelectMax, pods(4, 30*time.Second))},
			history:  History{Observed: points(now-40, 4, now-31, 8)},
			current:  8, rec: 20, want: 12, wantRestraint: RestraintScaleUpLimit, wantWindowOver: 30 * time.Second},
		{name: "from zero a Percent policy still wakes one replica",
			behavior: Behavior{ScaleUp: rules(0, SelectMax, percent(100, time.Minute))},
			current:  0, rec: 5, want: 1, wantRestraint: RestraintScaleUpLimit, wantWindowOver: time.Minute},
		{name: "scale-up disabled holds",
			behavior: Behavior{ScaleUp: rules(0, SelectDisabled, pods(4, time.Minute))},
			current:  3, rec: 9, want: 3, wantRestraint: RestraintScaleUpDisabled},
		{name: "scale-down Percent rounds down",
			behavior: Behavior{ScaleDown: rules(0, SelectMax, percent(50, time.Minute))},
			current:  9, rec: 1, want: 4, wantRestraint: RestraintScaleDownLimit, wantWindowOver: time.Minute},
		{name: "scale-down Max picks the policy allowing the most change",
			behavior: Behavior{ScaleDown: rules(0, SelectMax, pods(2, time.Minute), percent(50, 2*time.Minute))},
			current:  10, rec: 1, want: 5, wantRestraint: RestraintScaleDownLimit, wantWindowOver: 2 * time.Minute},
		{name: "scale-down Min picks the policy allowing the least change",
			behavior: Behavior{ScaleDown: rules(0, SelectMin, pods(2, time.Minute), percent(50, 2*time.Minute))},
			current:  10, rec: 1, want: 8, wantRestraint: RestraintScaleDownLimit, wantWindowOver: time.Minute},
		{name: "scale-down disabled holds",
			behavior: Behavior{ScaleDown: rules(0, SelectDisabled)},
			current:  5, rec: 0, want: 5, wantRestraint: RestraintScaleDownDisabled},
		{name: "a recommendation equal to current moves nothing",
			behavior: DefaultBehavior(), current: 5, rec: 5, want: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.behavior.Validate(); err != nil {
				t.Fatal(err)
			}
			h, err := tt.history.record(at(now), tt.current, tt.rec, tt.behavior)
			if err != nil {
				t.Fatal(err)
			}
			got := tt.behavior.pace(at(now), tt.current, tt.rec, h)
			if got.replicas != tt.want || got.restraint != tt.wantRestraint || got.window != tt.wantWindowOver {
				t.Errorf("got %d (%q over %v), want %d (%q over %v)", got.replicas, got.restraint, got.window,
					tt.want, tt.wantRestraint, tt.wantWindowOver)
			}
		})
	}
}

func TestHistoryRecord(t *testing.T) {
	b := Behavior{ScaleDown: rules(100*time.Second, SelectMax, pods(1, 20*time.Second))}
	tests := []struct {
		name         string
		history      History
		current, rec int32
		wantRecs     []ReplicaPoint
		wantObserved []ReplicaPoint
		wantErr      string
	}{
		{name: "a fresh history gets one point each", current: 4, rec: 6,
			wantRecs: points(200, 6), wantObserved: points(200, 4)},
		{name: "an unchanged count adds no point",
			history: History{Recommendations: points(150, 6), Observed: points(190, 4)}, current: 4, rec: 6,
			wantRecs: points(150, 6), wantObserved: points(190, 4)},
		{name: "points no longer in force at the window start are pruned; the one in force stays",
			history: History{Recommendations: points(10, 1, 50, 2, 90, 3, 150, 4)},
			current: 0, rec: 5,
			wantRecs: points(90, 3, 150, 4, 200, 5), wantObserved: points(200, 0)},
		{name: "points from the future (a clock moved back) are dropped",
			history: History{Recommendations: points(150, 2, 500, 9)},
			current: 1, rec: 3,
			wantRecs: points(150, 2, 200, 3), wantObserved: points(200, 1)},
		{name: "unsorted points are sorted",
			history: History{Recommendations: points(180, 2, 150, 1)},
			current: 1, rec: 3,
			wantRecs: points(150, 1, 180, 2, 200, 3), wantObserved: points(200, 1)},
		{name: "a second decision at the same time replaces the first",
			history: History{Recommendations: points(150, 1, 200, 7)},
			current: 1, rec: 3,
			wantRecs: points(150, 1, 200, 3), wantObserved: points(200, 1)},
		{name: "negative counts are refused", history: History{Observed: points(150, -1)}, wantErr: "negative replica count"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.history.record(at(200), tt.current, tt.rec, b)
			checkErr(t, err, tt.wantErr)
			if err != nil {
				return
			}
			if !samePoints(got.Recommendations, tt.wantRecs) || !samePoints(got.Observed, tt.wantObserved) {
				t.Errorf("got %v / %v, want %v / %v", got.Recommendations, got.Observed, tt.wantRecs, tt.wantObserved)
			}
		})
	}
}

func TestHistoryStaysSmall(t *testing.T) {
	b := Behavior{ScaleDown: rules(time.Hour, SelectMax)}
	var h History
	var err error
	for i := range 2000 {
		// A recommendation that changes at every poll, 2 s apart, for more than an hour.
		h, err = h.record(at(float64(2*i)), 1, int32(i%7), b)
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(h.Recommendations) > maxHistoryPoints {
		t.Fatalf("%d points kept, want at most %d", len(h.Recommendations), maxHistoryPoints)
	}
	// Merging the oldest points keeps their highest count, so a hold never gets shorter.
	if first := h.Recommendations[0]; first.Replicas != 6 {
		t.Errorf("oldest point %v, want the highest count 6 merged into it", first)
	}
	// What status stores of it is checked in controllers (TestHistorySurvivesTheStatus).
}

func TestBehaviorValidate(t *testing.T) {
	tests := []struct {
		name    string
		b       Behavior
		wantErr string
	}{
		{name: "the default is valid", b: DefaultBehavior()},
		{name: "the zero behavior is valid", b: Behavior{}},
		{name: "negative window", b: Behavior{ScaleDown: rules(-time.Second, SelectMax)}, wantErr: "scale-down: stabilization window -1s"},
		{name: "window over an hour", b: Behavior{ScaleUp: rules(2*time.Hour, SelectMax)}, wantErr: "scale-up: stabilization window"},
		{name: "unknown selectPolicy", b: Behavior{ScaleUp: rules(0, "Maximum")}, wantErr: `unknown selectPolicy "Maximum"`},
		{name: "unknown policy type", b: Behavior{ScaleUp: rules(0, SelectMax, ScalingPolicy{Type: "Replicas", Value: 1, Period: time.Second})},
			wantErr: `unknown policy type "Replicas"`},
		{name: "zero value", b: Behavior{ScaleUp: rules(0, SelectMax, pods(0, time.Second))}, wantErr: "Pods policy value 0"},
		{name: "zero period", b: Behavior{ScaleUp: rules(0, SelectMax, pods(1, 0))}, wantErr: "period 0s"},
		{name: "period over 30 minutes", b: Behavior{ScaleDown: rules(0, SelectMax, percent(1, time.Hour))}, wantErr: "period 1h0m0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkErr(t, tt.b.Validate(), tt.wantErr)
		})
	}
}

func samePoints(a, b []ReplicaPoint) bool {
	return slices.EqualFunc(a, b, func(x, y ReplicaPoint) bool { return x.Time.Equal(y.Time) && x.Replicas == y.Replicas })
}
