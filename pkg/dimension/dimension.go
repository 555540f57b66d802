package dimension

import (
	"fmt"
	"strings"
)

// Dimension is one of the quantities Anthropic limits per minute for a model class. Its
// value indexes Amounts and every other per-dimension array.
type Dimension int

// The limited dimensions, in the order arrays indexed by Dimension store them. The order is
// also the order of the shared limiter's Lua scripts and packed bucket, and must not change.
const (
	// Requests counts API calls (RPM).
	Requests Dimension = iota
	// InputTokens counts input tokens the way the ITPM limit does: input_tokens plus
	// cache_creation_input_tokens; cache reads are excluded for current models.
	InputTokens
	// OutputTokens counts generated tokens (OTPM).
	OutputTokens

	// Count is the number of dimensions: the length of every per-dimension array.
	Count int = iota
)

// Info is one row of the table: every name a dimension goes by.
type Info struct {
	// Name is the CamelCase name of status.limitedBy, status.plan.bindingDimension, the
	// Prometheus "dimension" label of the controller's metrics and the limiter's errors:
	// "OutputTokens".
	Name string
	// Words name the dimension in sentences: "output tokens".
	Words string
	// Unit is what one of the dimension counts, in the singular: "token".
	Unit string
	// Abbrev is the per-minute limit's usual abbreviation: "OTPM".
	Abbrev string
	// LimitField is the JSON (and CRD) field of a per-minute figure of the dimension in
	// limits, status and reports: "outputTokensPerMinute".
	LimitField string
	// Header is the dimension's part of the anthropic-ratelimit-<Header>-* response headers,
	// and the value of the proxy's x-claudecap-limited header: "output-tokens".
	Header string
	// Field is the snake_case name of Redis hash fields (the upstream observation's
	// <Field>_limit) and of the proxy's metric labels: "output_tokens".
	Field string
	// LimitRedisField is the field of the pool's limits hash in Redis: "otpm".
	LimitRedisField string
	// RoundsRemaining is set when the API rounds the -remaining header to the nearest
	// thousand (the token dimensions).
	RoundsRemaining bool
}

// requests is the requests dimension's words, header part and field alike.
const requests = "requests"

// table is the one definition of every dimension's names, indexed by Dimension.
var table = [Count]Info{
	Requests: {
		Name: "Requests", Words: requests, Unit: "request", Abbrev: "RPM",
		LimitField: "requestsPerMinute", Header: requests, Field: requests, LimitRedisField: "rpm",
	},
	InputTokens: {
		Name: "InputTokens", Words: "input tokens", Unit: "token", Abbrev: "ITPM",
		LimitField: "inputTokensPerMinute", Header: "input-tokens", Field: "input_tokens", LimitRedisField: "itpm",
		RoundsRemaining: true,
	},
	OutputTokens: {
		Name: "OutputTokens", Words: "output tokens", Unit: "token", Abbrev: "OTPM",
		LimitField: "outputTokensPerMinute", Header: "output-tokens", Field: "output_tokens", LimitRedisField: "otpm",
		RoundsRemaining: true,
	},
}

// All returns every dimension in table order.
func All() [Count]Dimension {
	var all [Count]Dimension
	for i := range all {
		all[i] = Dimension(i)
	}
	return all
}

// Valid reports whether d is a row of the table.
func (d Dimension) Valid() bool { return d >= 0 && int(d) < Count }

// Info returns the dimension's row of the table. It panics for a value outside the table:
// such a value is a bug, and treating it as some other dimension would hide it.
func (d Dimension) Info() Info {
	if !d.Valid() {
		panic(fmt.Sprintf("dimension %d is not in the table", int(d)))
	}
	return table[d]
}

// Name returns the CamelCase name, "OutputTokens" (see Info.Name).
func (d Dimension) Name() string { return d.Info().Name }

// Words returns the dimension in the words messages use, "output tokens".
func (d Dimension) Words() string { return d.Info().Words }

// String returns the dimension in words for messages, or "dimension(N)" for a value
// outside the table, so that printing a bad value never panics.
func (d Dimension) String() string {
	if !d.Valid() {
		return fmt.Sprintf("dimension(%d)", int(d))
	}
	return table[d].Words
}

// Parse returns the dimension any of whose names (Name, Words, Abbrev, LimitField, Header,
// Field or LimitRedisField) is s, ignoring case.
func Parse(s string) (Dimension, error) {
	for _, d := range All() {
		i := table[d]
		for _, name := range []string{i.Name, i.Words, i.Abbrev, i.LimitField, i.Header, i.Field, i.LimitRedisField} {
			if strings.EqualFold(s, name) {
				return d, nil
			}
		}
	}
	return 0, fmt.Errorf("unknown rate-limit dimension %q (want one of %s)", s, strings.Join(Names(), ", "))
}

// Names returns every dimension's Name in table order.
func Names() []string {
	names := make([]string, 0, Count)
	for _, d := range All() {
		names = append(names, table[d].Name)
	}
	return names
}

// Amounts holds one whole amount per dimension, indexed by it: a limit, a budget, a cost,
// a usage figure.
type Amounts [Count]int64

// Add returns a + b per dimension.
func (a Amounts) Add(b Amounts) Amounts {
	for d := range a {
		a[d] += b[d]
	}
	return a
}

// Sub returns a - b per dimension.
func (a Amounts) Sub(b Amounts) Amounts {
	for d := range a {
		a[d] -= b[d]
	}
	return a
}

// AnyNegative reports whether some dimension holds a negative amount.
func (a Amounts) AnyNegative() bool {
	for _, v := range a {
		if v < 0 {
			return true
		}
	}
	return false
}

// Rates holds one fractional amount per dimension, indexed by it: what one replica or one
// request uses.
type Rates [Count]float64
