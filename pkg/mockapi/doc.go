// Package mockapi is a local stand-in for Anthropic's Messages API that the
// official SDKs cannot tell apart from the real one for the calls claudecap
// makes: POST /v1/messages (plain and streaming), POST
// /v1/messages/count_tokens and GET /v1/models, with the documented headers,
// error bodies, rate-limit headers and 429s.
//
// It exists so every other part of claudecap (the proxy, the limiter, the
// load tester, the demo) can be tested against realistic behavior without an
// API key: tier rate limits enforced by continuously refilled token buckets
// per model class, a seeded latency and output-length model, fault injection
// (529, 500, mid-stream errors, dropped connections), prompt caching, and its
// own counters at GET /mock/stats that prove whether limits were exceeded.
//
// Everything that decides (buckets, token counting, cache accounting, fault
// rolls, distributions) is a pure function of its inputs and an injectable
// [Clock], so tests are deterministic; the HTTP layer only gathers inputs and
// writes outputs. See docs/mock.md for the rules in prose.
package mockapi
