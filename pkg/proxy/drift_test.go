package proxy_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"

	"github.com/claudecap/claudecap/pkg/mockapi"
	"github.com/claudecap/claudecap/pkg/proxy"
	"github.com/claudecap/claudecap/pkg/ratelimit"
)

// Usage the pool cannot see (another user of the organization's key) shows in
// the API's remaining headers: the first settlement pulls the pool down to
// them, so the proxy refuses what the API would refuse instead of sending it.
func TestRemainingHeadersKeepThePoolBelowTheAPI(t *testing.T) {
	limits := ratelimit.Limits{RequestsPerMinute: 10, InputTokensPerMinute: 100_000, OutputTokensPerMinute: 100_000}
	mock := mockapi.Config{
		Limits:       map[string]mockapi.Limits{"sonnet-4": {RequestsPerMinute: 10, InputTokensPerMinute: 100_000, OutputTokensPerMinute: 100_000}},
		OutputTokens: mockapi.Fixed(3),
	}
	r := newRig(t, mock, limits, proxy.Config{}) // The pool is the whole limit: 100% headroom.
	direct := client(r.mock.URL)
	for range 6 {
		if _, err := direct.Messages.New(context.Background(), params("elsewhere", 100)); err != nil {
			t.Fatalf("a call past the proxy: %v", err)
		}
	}
	var ok, byProxy, byAPI int
	c := client(r.url)
	for range 10 {
		var raw *http.Response
		_, err := c.Messages.New(context.Background(), params("through the proxy", 100), option.WithResponseInto(&raw))
		r.drain(t) // Settled before the next call, as a busy pool would be within milliseconds.
		var apiErr *anthropic.Error
		switch {
		case err == nil:
			ok++
		case errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusTooManyRequests && raw.Header.Get(proxy.HeaderOrigin) == "proxy":
			byProxy++
		case errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusTooManyRequests:
			byAPI++
		default:
			t.Fatalf("call: %v", err)
		}
	}
	// The API had 4 left; the pool keeps its admission margin, so it admits 3 or 4.
	if byAPI != 0 || ok < 3 || ok > 4 || byProxy != 10-ok {
		t.Fatalf("%d admitted, %d refused by the proxy, %d refused by the API; want what the API had left admitted and no upstream 429", ok, byProxy, byAPI)
	}
}
