// Package controllerbench holds the operator's end-to-end benchmarks: the real manager
// binary (cmd/manager, built and started as a child process) against a real kube-apiserver
// and etcd (envtest) and a real loopback redis-server.
//
// The manager runs as its own process, not inside the benchmark, so that its resident
// memory is its own and the benchmark's clients, watches and bookkeeping do not count
// against it. The package has no code outside its benchmarks; run them with
//
//	go test -run '^$' -bench . -benchtime 1x -timeout 15m ./hack/bench/controller/
//
// BenchmarkReactionLatency measures the time from a backlog jump in a Redis list to the new
// replicas in the Deployment's spec, at default settings. BenchmarkManyClaudeCapacities runs
// one manager with 500 ClaudeCapacities and reports reconciles per second, Redis round trips
// per poll and the manager's resident memory. docs/benchmarks.md has the results.
package controllerbench
