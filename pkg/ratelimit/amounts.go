package ratelimit

import (
	"fmt"
	"time"

	"github.com/claudecap/claudecap/pkg/dimension"
)

// Amounts is a quantity in each dimension, indexed by dimension.Dimension: the cost of a
// call, a bucket level, or a refund. Input tokens are counted the way Anthropic's ITPM
// limit does (cache reads excluded for current models); a reservation's output is its
// max_tokens.
type Amounts = dimension.Amounts

func validateCost(a Amounts) error {
	if a.AnyNegative() {
		return fmt.Errorf("negative cost %v", a)
	}
	return nil
}

// Limits are a pool's (or a workload's) limits per minute. A bucket's capacity
// equals its limit and it refills at limit/60 per second, continuously.
type Limits struct {
	// RequestsPerMinute limits requests (RPM).
	RequestsPerMinute int64 `json:"requestsPerMinute"`
	// InputTokensPerMinute limits input tokens (ITPM).
	InputTokensPerMinute int64 `json:"inputTokensPerMinute"`
	// OutputTokensPerMinute limits output tokens (OTPM).
	OutputTokensPerMinute int64 `json:"outputTokensPerMinute"`
}

// Capacity is the bucket capacity per dimension, equal to the limit.
func (l Limits) Capacity() Amounts {
	var a Amounts
	a[dimension.Requests], a[dimension.InputTokens], a[dimension.OutputTokens] = l.RequestsPerMinute, l.InputTokensPerMinute, l.OutputTokensPerMinute
	return a
}

// LimitsOf returns the limits whose capacity is a: per-minute amounts indexed by dimension,
// as the controller's budgets and shares are.
func LimitsOf(a Amounts) Limits {
	return Limits{
		RequestsPerMinute:     a[dimension.Requests],
		InputTokensPerMinute:  a[dimension.InputTokens],
		OutputTokensPerMinute: a[dimension.OutputTokens],
	}
}

// Validate refuses negative limits. Zero is allowed and means "admit nothing in
// this dimension" (the controller may find no headroom left).
func (l Limits) Validate() error {
	if l.Capacity().AnyNegative() {
		return fmt.Errorf("negative limits %+v", l)
	}
	return nil
}

// refillPeriod is the time an empty bucket takes to refill completely.
const refillPeriod = time.Minute
