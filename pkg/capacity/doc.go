// Package capacity is the pure arithmetic of claudecap: what a workload needs from the
// Claude API, what it costs, and how many worker replicas the organization's rate limits
// allow. It reads no clocks, opens no connections and imports nothing of Kubernetes or
// Redis, so every rule in it can be table-tested and fuzzed on its own, and the controller,
// the CLI and the rate limiter all compute the same numbers.
//
// The model catalog (catalog.go, with its data in catalog.yaml) is the one place that
// knows Anthropic's prices and tier limits. They change, so they are dated data that a user
// file can override, not constants in code.
//
// Plan (plan.go) answers the planning question for declared traffic: requests, input tokens
// and output tokens per minute as Anthropic counts them (batch requests and, for current
// models, cache reads excluded), the cost per request and per 30-day month, the smallest
// usage tier that carries the traffic at a headroom, the dimension that binds, and the
// replicas needed at a per-replica throughput. docs/planning.md gives the formulas.
package capacity
