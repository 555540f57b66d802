package loadtest

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/claudecap/claudecap/pkg/mockapi"
	"github.com/claudecap/claudecap/pkg/proxy"
	"github.com/claudecap/claudecap/pkg/ratelimit"
)

// admitAll is a proxy limiter that admits every call.
type admitAll struct{}

func (admitAll) TryReserve(context.Context, string, ratelimit.Amounts) (proxy.Reservation, error) {
	return noopReservation{}, nil
}

func (admitAll) Wait(context.Context, string, ratelimit.Amounts) (proxy.Reservation, error) {
	return noopReservation{}, nil
}

func (admitAll) RecordUpstream(context.Context, string, ratelimit.Upstream) error { return nil }

func (admitAll) RecordUpstreamErrors(context.Context, string, ratelimit.UsageSample) error {
	return nil
}

func (admitAll) Ready(context.Context) error { return nil }

type noopReservation struct{}

func (noopReservation) Settle(context.Context, ratelimit.Actual) error { return nil }
func (noopReservation) Cancel(context.Context) error                   { return nil }

// startClaudecapProxy serves a claudecap proxy in front of upstream.
func startClaudecapProxy(t *testing.T, upstream string, key proxy.APIKey) string {
	t.Helper()
	p, err := proxy.New(proxy.Config{Upstream: upstream, APIKey: key, Logger: slog.New(slog.DiscardHandler)}, admitAll{})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(p.Handler())
	t.Cleanup(hs.Close)
	return hs.URL
}

// Only a target that identifies itself as the claudecap mock, directly or
// through a claudecap proxy, is taken for something other than the real
// API: a gateway in front of the API looks like any other server.
func TestSafetyProbesTheTarget(t *testing.T) {
	big := Plan{Requests: LargeRunThreshold + 1}
	mock, err := mockapi.New(mockapi.Config{APIKeys: []string{"only-this-key"}})
	if err != nil {
		t.Fatal(err)
	}
	mockURL := httptest.NewServer(mock)
	defer mockURL.Close()
	var gatewayHits atomic.Int64
	gateway := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		gatewayHits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"data":[]}`))
	}))
	defer gateway.Close()

	for name, target := range map[string]string{
		"mock":                               mockURL.URL,
		"mock under a path":                  mockURL.URL + "/",
		"proxy with the worker's key":        startClaudecapProxy(t, mockURL.URL, ""),
		"proxy injecting a key (the mock's)": startClaudecapProxy(t, mockURL.URL, "only-this-key"),
		"proxy injecting another key":        startClaudecapProxy(t, mockURL.URL, "wrong-key"),
	} {
		if err := CheckSafety(target, big, false); err != nil {
			t.Errorf("%s: refused: %v", name, err)
		}
		if err := CheckSafety(target, Plan{Unbounded: true}, false); err != nil {
			t.Errorf("%s, unbounded: refused: %v", name, err)
		}
	}
	for name, target := range map[string]string{
		"plain server":           gateway.URL,
		"proxy before a gateway": startClaudecapProxy(t, gateway.URL, "some-key"),
		"nothing listening":      "http://127.0.0.1:1",
	} {
		for _, plan := range []Plan{big, {Unbounded: true}} {
			err := CheckSafety(target, plan, false)
			if err == nil || !strings.Contains(err.Error(), "--yes") {
				t.Errorf("%s, plan %+v: %v, want a refusal naming --yes", name, plan, err)
			}
		}
		if err := CheckSafety(target, big, true); err != nil {
			t.Errorf("%s: --yes must allow it: %v", name, err)
		}
	}
	// A small run is allowed anywhere without asking the target.
	before := gatewayHits.Load()
	if err := CheckSafety(gateway.URL, Plan{Requests: LargeRunThreshold}, false); err != nil {
		t.Errorf("a small run: %v", err)
	}
	if gatewayHits.Load() != before {
		t.Error("a small run must not probe the target")
	}
}
