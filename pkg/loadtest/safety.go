package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/claudecap/claudecap/pkg/mockapi"
)

// RealAPIHost is the production Messages API host.
const RealAPIHost = "api.anthropic.com"

// LargeRunThreshold is the planned request count above which a run against
// the real API needs explicit confirmation: a mistyped rate should not turn
// into a bill or a rate-limited organization.
const LargeRunThreshold = 100

// IsRealAPI reports whether baseURL names Anthropic's production API.
// An empty base URL counts, because the SDK would default to it. A base URL
// naming another host may still lead to the API (a gateway, a proxy):
// CheckSafety asks such a target whether it is the mock (see ProbeMock).
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

// ProbeTimeout bounds the request with which CheckSafety identifies a target.
const ProbeTimeout = 5 * time.Second

// probeKey is the x-api-key of the probe: it is no key, so the real API
// answers 401 and charges nothing, and no secret is sent to a target
// before the run is allowed.
const probeKey = "claudecap-loadtest-probe"

// ProbeMock asks the target at baseURL, with one GET <baseURL>/v1/models,
// whether it is the claudecap mock: every response of the mock carries
// mockapi.HeaderMock, whatever its status (a 401 for the probe's placeholder
// key included), and a claudecap proxy in front of the mock passes the
// upstream's headers on. It returns nil for the mock, else why the target
// may be something else (no such header, or no answer).
func ProbeMock(ctx context.Context, client *http.Client, baseURL string) error {
	u, err := url.Parse(baseURL)
	if err != nil {
		return errors.New("the base URL is not a valid URL")
	}
	u.Path, u.RawPath = strings.TrimRight(u.Path, "/")+"/v1/models", ""
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), http.NoBody)
	if err != nil {
		return fmt.Errorf("building the probe: %w", err)
	}
	req.Header.Set("X-Api-Key", probeKey)
	req.Header.Set("Anthropic-Version", "2023-06-01")
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("it did not answer a probe: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.Header.Get(mockapi.HeaderMock) != "1" {
		return fmt.Errorf("it does not identify as claudecap mock (GET /v1/models answered %d without %s: 1)", resp.StatusCode, mockapi.HeaderMock)
	}
	return nil
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

// CheckSafety refuses a large or unbounded run against a target that may
// be the real API unless the user confirmed it. Only a target that
// identifies itself as the claudecap mock (ProbeMock), directly or through a
// claudecap proxy, is taken for something else: a gateway or proxy in front
// of the API looks like any other server. Small runs are never refused and
// never probe.
func CheckSafety(baseURL string, plan Plan, confirmed bool) error {
	if confirmed || (!plan.Unbounded && plan.Requests <= LargeRunThreshold) {
		return nil
	}
	target := "the real Anthropic API (" + RealAPIHost + ")"
	if !IsRealAPI(baseURL) {
		ctx, cancel := context.WithTimeout(context.Background(), ProbeTimeout)
		defer cancel()
		client := NewHTTPClient()
		defer client.CloseIdleConnections()
		err := ProbeMock(ctx, client, baseURL)
		if err == nil {
			return nil
		}
		target = fmt.Sprintf("%s (%v, so it may be the real Anthropic API behind a proxy or gateway)", redactedURL(baseURL), err)
	}
	if plan.Unbounded {
		return fmt.Errorf("refusing to run an unbounded load test against %s: set --requests, or pass --yes to confirm", target)
	}
	return fmt.Errorf("refusing to send about %d requests to %s without --yes "+
		"(runs of more than %d requests need confirmation; point --base-url at `claudecap mock` to test for free)",
		plan.Requests, target, LargeRunThreshold)
}

// redactedURL names a target in a message without credentials.
func redactedURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "the base URL"
	}
	return u.Redacted()
}
