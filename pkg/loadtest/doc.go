// Package loadtest drives the Claude Messages API (or anything that speaks
// it: the mock, the rate-limit proxy) with open-loop and closed-loop load and
// reports what an operator needs to size a fleet against Anthropic's rate
// limits: latency percentiles free of coordinated omission, achieved
// requests and tokens per minute next to the limits the API reported in its
// headers, and errors split by cause (429 quota, 529 overload, other 5xx,
// transport).
//
// The package is split so that everything that decides or computes is pure
// and testable without a network:
//
//   - profile.go and schedule.go turn a rate profile (constant, ramp, step)
//     and an arrival process (constant spacing or Poisson) into a
//     deterministic sequence of intended send times;
//   - sweep.go decides which rate a sweep tries next;
//   - collector.go, timeline.go and report.go aggregate samples into the
//     Report, whose JSON form is a stable schema (see docs/loadtest.md);
//   - summary.go and html.go render a Report as text or as a self-contained
//     HTML page with inline SVG charts.
//
// Only runner.go, sdksender.go and the real-API guard's probe (safety.go) do
// I/O. The runner talks to a Sender, so the generator's timing can be tested
// against a trivial local handler while the real Sender goes through the
// official anthropic-sdk-go client.
package loadtest
