// Package dimension is the one table of the quantities Anthropic limits per minute for a
// model class: requests, input tokens and output tokens. Every layer (the pure math in
// pkg/capacity, the shared limiter, the proxy, the mock, the load tester, the CLI and the
// controllers) names, parses, stores and prints a dimension through this table, so adding a
// dimension is a new row here plus the wire formats that must carry it (see
// docs/architecture.md, "How to add ...").
//
// Code iterates the table (All, or arrays indexed by Dimension) instead of switching over
// dimensions, so no layer can silently treat an unknown dimension as a known one: an index
// outside the table panics, and Parse reports an error.
//
// The package imports nothing of ours, so pkg/capacity may depend on it and stay pure.
package dimension
