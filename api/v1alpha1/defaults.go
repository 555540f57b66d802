package v1alpha1

import "time"

// The defaults of optional fields, in one place. The CRD applies them on the API server
// (+kubebuilder:default); the getters below apply them to objects that have not been through
// it (a manifest read by `claudecap plan -f`, a test fixture), so the controller, the CLI and
// the docs agree on one value.
const (
	// DefaultHeadroomPercent of a private pool and of a ClaudeOrganization.
	DefaultHeadroomPercent int32 = 90
	// DefaultPollIntervalSeconds between reads of the live signals.
	DefaultPollIntervalSeconds int32 = 2
	// DefaultTargetDrainSeconds within which a backlog should be worked off.
	DefaultTargetDrainSeconds int32 = 120
	// DefaultWeight of a workload within its priority class.
	DefaultWeight int32 = 1
)

// HeadroomPercentOrDefault is spec.headroomPercent, or its default.
func (s *ClaudeCapacitySpec) HeadroomPercentOrDefault() int32 {
	return positiveOr(s.HeadroomPercent, DefaultHeadroomPercent)
}

// PollInterval is spec.pollIntervalSeconds as a duration, or its default.
func (s *ClaudeCapacitySpec) PollInterval() time.Duration {
	return time.Duration(positiveOr(s.PollIntervalSeconds, DefaultPollIntervalSeconds)) * time.Second
}

// WeightOrDefault is spec.weight, or its default.
func (s *ClaudeCapacitySpec) WeightOrDefault() int32 {
	return positiveOr(s.Weight, DefaultWeight)
}

// TargetDrain is spec.queue.targetDrainSeconds as a duration, or its default (also without a
// queue).
func (s *ClaudeCapacitySpec) TargetDrain() time.Duration {
	seconds := DefaultTargetDrainSeconds
	if s.Queue != nil {
		seconds = positiveOr(s.Queue.TargetDrainSeconds, DefaultTargetDrainSeconds)
	}
	return time.Duration(seconds) * time.Second
}

// HeadroomPercentOrDefault is spec.headroomPercent, or its default.
func (s *ClaudeOrganizationSpec) HeadroomPercentOrDefault() int32 {
	return positiveOr(s.HeadroomPercent, DefaultHeadroomPercent)
}

func positiveOr(v, def int32) int32 {
	if v > 0 {
		return v
	}
	return def
}
