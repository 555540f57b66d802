package loadtest

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/claudecap/claudecap/pkg/dimension"

	"github.com/claudecap/claudecap/pkg/mockapi"
)

// TestAgainstMockTier1 runs the real request path (official SDK) against
// the project's mock with tier-1 limits and checks that the load tester's
// 429 count is the mock's own, and that the 429s appear where a 50 RPM
// continuously refilled bucket says they must: after the 50-request burst,
// then one admission every 1.2 s.
func TestAgainstMockTier1(t *testing.T) {
	mock, err := mockapi.New(mockapi.Config{Tier: "tier-1", Seed: 1, OutputTokens: mockapi.Fixed(8)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mock)
	defer srv.Close()

	const rate, secs = 25.0, 4.0
	rep, err := Run(context.Background(), Config{
		Mode: ModeOpen, Profile: ConstantProfile(rate), Duration: time.Duration(secs * float64(time.Second)),
	}, newTestSender(t, srv.URL, true, 0))
	if err != nil {
		t.Fatal(err)
	}
	stats := fetchMockStats(t, srv.URL)

	if rep.Requests.Sent != rate*secs {
		t.Fatalf("sent %d, want %v", rep.Requests.Sent, rate*secs)
	}
	if got, want := rep.StatusCodes["429"], stats.ByStatus["429"]; got != want || got == 0 {
		t.Fatalf("loadtest counted %d 429s, the mock sent %d (want equal and > 0)", got, want)
	}
	if got, want := rep.StatusCodes["200"], stats.ByStatus["200"]; got != want {
		t.Fatalf("loadtest counted %d 200s, the mock sent %d", got, want)
	}
	if rep.StatusCodes["429"] != stats.RateLimited["requests"] {
		t.Fatalf("every 429 must be an RPM refusal: mock says %v", stats.RateLimited)
	}
	// A full bucket of 50, plus 50/60 per second over the run, give or take
	// one request at the edges.
	refill := rep.DurationSeconds * 50 / 60
	if ok := float64(rep.Requests.Succeeded); ok < 50 || ok > 50+refill+1 {
		t.Fatalf("%v requests admitted in %.1fs, the bucket allows 50 + %.1f", ok, rep.DurationSeconds, refill)
	}
	reqLimit := rep.RateLimits[DimensionOf(dimension.Requests)]
	if reqLimit.Limit != 50 || reqLimit.MinRemaining != 0 {
		t.Fatalf("requests limit observation %+v, want limit 50 drained to 0", reqLimit)
	}
	if rep.RetryAfter.Seen != rep.StatusCodes["429"] {
		t.Fatalf("every 429 carries retry-after: seen %d of %d", rep.RetryAfter.Seen, rep.StatusCodes["429"])
	}
	if rep.Tokens.Output != stats.Tokens.Output || rep.Tokens.AvgOutputTokens != 8 {
		t.Fatalf("output tokens: loadtest %d (avg %v), mock %d", rep.Tokens.Output, rep.Tokens.AvgOutputTokens, stats.Tokens.Output)
	}
	if rep.Latency.TimeToFirstToken.Count != rep.Requests.Succeeded {
		t.Fatalf("TTFT measured for %d of %d streams", rep.Latency.TimeToFirstToken.Count, rep.Requests.Succeeded)
	}
}

func fetchMockStats(t *testing.T, base string) mockapi.Stats {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, base+"/mock/stats", nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = res.Body.Close() }()
	var st mockapi.Stats
	if err := json.NewDecoder(res.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}
