package proxy

import (
	"github.com/claudecap/claudecap/pkg/dimension"
	"github.com/claudecap/claudecap/pkg/ratelimit"
)

// outcome is what happened to one admitted call, as far as the proxy saw.
type outcome struct {
	// Sent is false when the request certainly never reached the API (the
	// connection to it could not be made).
	Sent bool
	// Status is the upstream HTTP status, 0 when no response came.
	Status int
	// Usage is what the response reported.
	Usage observedUsage
	// CacheReadsCount is set for models whose cache reads count toward the
	// input-token limit (older models).
	CacheReadsCount bool
}

// settlementKind is how a reservation is closed.
type settlementKind int

const (
	// settleActual settles with Actual: the call's measured (or, where
	// unknown, reserved) usage.
	settleActual settlementKind = iota
	// settleCancel gives the whole reservation back, request included.
	settleCancel
)

// settlement is the decision for one reservation.
type settlement struct {
	Kind   settlementKind
	Actual ratelimit.Actual
	// Exact is set when Actual is fully measured; otherwise part of it stayed
	// at the reserved amount (a conservative settlement).
	Exact bool
}

// decideSettlement closes a reservation of cost after outcome o. Whatever is
// unknown stays charged at the reserved amount, so a malformed, cut or
// missing response can only over-count; what is known not to have been
// used goes back:
//   - never sent: everything back (Cancel);
//   - sent, no response: all of it stays charged (the API may have generated);
//   - an error status (4xx, 5xx, 429, 529): no tokens were produced, only the
//     request stays charged;
//   - a success: measured input (input + cache creation, plus cache reads for
//     older models) and output; the output of a cut stream stays reserved.
func decideSettlement(cost ratelimit.Amounts, o outcome) settlement {
	switch {
	case !o.Sent:
		return settlement{Kind: settleCancel, Exact: true}
	case o.Status == 0:
		return settlement{Actual: ratelimit.Actual{InputTokens: cost[dimension.InputTokens], OutputTokens: cost[dimension.OutputTokens]}}
	case o.Status < 200 || o.Status > 299:
		return settlement{Actual: ratelimit.Actual{}, Exact: true}
	}
	u := o.Usage
	a := ratelimit.Actual{InputTokens: cost[dimension.InputTokens], OutputTokens: cost[dimension.OutputTokens]}
	if u.InputKnown {
		a.InputTokens = u.InputTokens + u.CacheCreationInputTokens
		if o.CacheReadsCount {
			a.InputTokens += u.CacheReadInputTokens
		}
		a.CacheReadInputTokens = u.CacheReadInputTokens
	}
	if u.OutputKnown {
		a.OutputTokens = u.OutputTokens
	}
	return settlement{Actual: a, Exact: u.InputKnown && u.OutputKnown}
}
