// Package proxy is the rate-limit-aware sidecar every worker call goes
// through when the worker cannot import pkg/ratelimit itself: workers in any
// language point ANTHROPIC_BASE_URL at it and keep using their SDK unchanged.
//
// For each POST /v1/messages the proxy estimates the call's cost
// conservatively from the request body (see [EstimateInputTokens]; output =
// max_tokens), reserves it from the shared pool of the model's class, forwards
// the request to one fixed upstream, passes the response through byte for byte
// (server-sent events are flushed one event at a time), and settles the
// reservation with the usage the response reports. When the pool has no room
// it answers with Anthropic's own 429 shape and retry-after, or waits up to a
// configured bound. It also publishes the upstream anthropic-ratelimit-*
// headers and 429/529 counts to the pool state the controller reads, and
// exposes Prometheus metrics.
//
// Decisions (cost estimate, usage extraction, settlement, refusal answers)
// are pure functions over plain values, table-tested; the HTTP layer only
// gathers inputs and applies outputs. docs/proxy.md describes the behavior in
// prose.
package proxy
