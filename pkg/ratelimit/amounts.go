package ratelimit

import (
	"fmt"
	"time"
)

// Dimension is one of the three limits Anthropic enforces per pool. The names
// match the controller's limitedBy values.
type Dimension int

// The three dimensions, in the order the Lua script reports them.
const (
	Requests Dimension = iota
	InputTokens
	OutputTokens
)

// String returns the CamelCase name used in status and messages.
func (d Dimension) String() string {
	switch d {
	case Requests:
		return "Requests"
	case InputTokens:
		return "InputTokens"
	case OutputTokens:
		return "OutputTokens"
	default:
		return fmt.Sprintf("Dimension(%d)", int(d))
	}
}

// Amounts is a quantity in each dimension: the cost of a call, a bucket level,
// or a refund.
type Amounts struct {
	// Requests is a number of API requests.
	Requests int64
	// InputTokens counts input tokens the way Anthropic's ITPM limit does (cache
	// reads excluded for current models).
	InputTokens int64
	// OutputTokens counts output tokens (a reservation uses max_tokens).
	OutputTokens int64
}

// Get returns the amount in dimension d.
func (a Amounts) Get(d Dimension) int64 {
	switch d {
	case Requests:
		return a.Requests
	case InputTokens:
		return a.InputTokens
	default:
		return a.OutputTokens
	}
}

// Sub returns a - b per dimension.
func (a Amounts) Sub(b Amounts) Amounts {
	return Amounts{a.Requests - b.Requests, a.InputTokens - b.InputTokens, a.OutputTokens - b.OutputTokens}
}

func (a Amounts) validateCost() error {
	if a.Requests < 0 || a.InputTokens < 0 || a.OutputTokens < 0 {
		return fmt.Errorf("negative cost %+v", a)
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
	return Amounts{l.RequestsPerMinute, l.InputTokensPerMinute, l.OutputTokensPerMinute}
}

// Validate refuses negative limits. Zero is allowed and means "admit nothing in
// this dimension" (the controller may find no headroom left).
func (l Limits) Validate() error {
	if l.RequestsPerMinute < 0 || l.InputTokensPerMinute < 0 || l.OutputTokensPerMinute < 0 {
		return fmt.Errorf("negative limits %+v", l)
	}
	return nil
}

// refillPeriod is the time an empty bucket takes to refill completely.
const refillPeriod = time.Minute
