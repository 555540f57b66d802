package loadtest

import (
	"fmt"
	"math"
	"net/url"
	"strings"
)

// RealAPIHost is the production Messages API host.
const RealAPIHost = "api.anthropic.com"

// LargeRunThreshold is the planned request count above which a run against
// the real API needs explicit confirmation: a mistyped rate should not turn
// into a bill or a rate-limited organization.
const LargeRunThreshold = 100

// IsRealAPI reports whether baseURL points at Anthropic's production API.
// An empty base URL counts, because the SDK would default to it.
func IsRealAPI(baseURL string) bool {
	if strings.TrimSpace(baseURL) == "" {
		return true
	}
	u, err := url.Parse(baseURL)
	if err != nil {
		// Not parseable: not something the SDK could send to either, and
		// ValidateBaseURL reports it; treat it as real to stay safe.
		return true
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	return host == RealAPIHost
}

// Plan is how many requests a run may send, for the safety check.
type Plan struct {
	// Requests is the planned count (an expectation for Poisson arrivals).
	Requests int64
	// Unbounded is true when the count cannot be known in advance (a
	// closed loop bounded only by duration).
	Unbounded bool
}

// PlanOf estimates how many requests cfg may send.
func PlanOf(cfg Config) Plan {
	if cfg.Mode == ModeClosed {
		if cfg.MaxRequests > 0 {
			return Plan{Requests: cfg.MaxRequests}
		}
		return Plan{Unbounded: true}
	}
	if cfg.Duration <= 0 {
		return Plan{Requests: cfg.MaxRequests}
	}
	n := int64(math.Ceil(cfg.Profile.ExpectedArrivals(cfg.Duration)))
	if cfg.MaxRequests > 0 {
		n = min(n, cfg.MaxRequests)
	}
	return Plan{Requests: n}
}

// PlanOfSweep bounds a sweep's requests: every stage at the maximum rate.
func PlanOfSweep(s SweepRun) Plan {
	perStage := s.Sweep.MaxRate * s.StageDuration.Seconds()
	return Plan{Requests: int64(math.Ceil(perStage * float64(s.MaxStages())))}
}

// CheckSafety refuses a large or unbounded run against the real API unless
// the user confirmed it. Runs against any other base URL (the mock, the
// proxy) are never refused.
func CheckSafety(baseURL string, plan Plan, confirmed bool) error {
	if confirmed || !IsRealAPI(baseURL) {
		return nil
	}
	if plan.Unbounded {
		return fmt.Errorf("refusing to run an unbounded load test against the real Anthropic API (%s): "+
			"set --requests, or pass --yes to confirm", RealAPIHost)
	}
	if plan.Requests > LargeRunThreshold {
		return fmt.Errorf("refusing to send about %d requests to the real Anthropic API (%s) without --yes "+
			"(runs of more than %d requests need confirmation; point --base-url at `claudecap mock` to test for free)",
			plan.Requests, RealAPIHost, LargeRunThreshold)
	}
	return nil
}
