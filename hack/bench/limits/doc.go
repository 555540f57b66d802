// Package limits is the never-exceed suite: does the shared limiter keep a fleet of proxies
// under the API's rate limits while using what the limits allow?
//
// Every row runs K=4 `claudecap proxy` instances (pkg/proxy with the Redis limiter of
// pkg/ratelimit, each on its own go-redis client, loopback listener and workload name) in
// front of one in-process mock Messages API (pkg/mockapi) with the scenario's limits. Clients
// are the official Go SDK with retries off, half of the calls streaming, and the offered load
// is 3x the binding limit (open loop, Poisson arrivals). The pool limits are headroom x the
// mock's limits, written with ratelimit.WritePoolConfig by a stand-in controller that rewrites
// them every 10 s like the real one.
//
// Rows are scenario x output mode (the mock's "actual" and "reserve" OTPM rules, mirrored by
// the pool's OutputRule) x headroom (90%, 100%), plus two baselines per scenario: clients
// straight to the mock with no limiter, and the fixed-window counter teams usually write first
// (Redis INCRBY + EXPIRE 60 s on a per-minute key per dimension, checked before the call,
// output counted as max_tokens). Each row reports the 429s the mock answered (upstream), the
// 429s and 503s clients saw, and the share of each limit the mock charged in a steady-state
// window, against the API's limit and the pool's.
//
// The suite is a test that skips unless CLAUDECAP_LIMITS is set, so `go test ./...` runs only
// the unit tests of its pure parts; `make bench-limits` runs it (LIMITS= picks rows):
//
//	CLAUDECAP_LIMITS=1 go test -count=1 -v -run '^TestLimits$' -parallel 3 -timeout 40m ./hack/bench/limits/
//	CLAUDECAP_LIMITS=1 go test -count=1 -v -run '^TestLimits$' ./hack/bench/limits/ -args -rows 'long-streams/.*/90,long-streams/none'
//
// It prints a Markdown table and writes bin/limits/report.md, report.json (every number) and
// trace.json (each row second by second: the mock's counters and the pool's bucket).
package limits
