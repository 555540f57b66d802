// Package priority measures what a workload's reserve (ratelimit.PoolConfig.Reserves) buys an
// interactive workload when a batch workload floods the same pool: the interactive calls' 429s
// and their wait for admission, with and without a concurrent batch flood.
//
// Each row starts its own redis-server (internal/testutil/redistest) and configures one pool of
// 600 RPM, 400k ITPM and 80k OTPM with ratelimit.WritePoolConfig. The batch workload is bulk work
// of many small calls: two pods (ratelimit.Limiter, each on its own go-redis client) of 64 callers
// each that loop on Limiter.Wait for calls of 1,000 input tokens and max_tokens 400, hold each
// admitted call 2-5 s and settle it with 100-400 output tokens: far more than the pool refills,
// so the batch alone keeps the pool empty. One second after the flood starts, the interactive
// workload (one pod) sends 3 calls per second (Poisson, the same arrivals in every row) for 25 s,
// each carrying a conversation: 1,500 input tokens, max_tokens 512, held 1-3 s and settled with
// 100-400 output tokens. An interactive call first tries Limiter.TryReserve: a refusal is what the
// proxy would answer as a 429. It then waits with Limiter.Wait (up to 10 s, as a proxy holding the
// request); its latency is from its arrival to its admission, the delay the limiter adds before
// the call can be sent (a call that timed out counts with the time it waited). The flood goes on
// until the last interactive call is admitted or gives up.
//
// Rows: the interactive workload alone; beside the batch flood without reserves; beside the
// flood with a reserve for the batch workload of 20% of each limit (the batch must leave 120
// requests, 80k input and 16k output tokens in the pool). Each row also reports the batch calls
// admitted, and the input admitted and output charged (both workloads) as shares of what the
// pool allowed over the row (capacity + refill): a reserve nobody uses stays in the bucket.
//
// The benchmark is a test that skips unless CLAUDECAP_PRIORITY is set; `make bench-priority`
// runs it in about 90 s:
//
//	CLAUDECAP_PRIORITY=1 go test -count=1 -v -run '^TestPriority$' ./hack/bench/priority/
//
// It prints a Markdown table and writes bin/priority/report.md and report.json.
package priority
