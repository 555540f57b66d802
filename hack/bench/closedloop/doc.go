// Package closedloop is the closed-loop scenario lab: the operator, its workers, the shared
// limiter and a Messages API together over minutes, judged by what really happened.
//
// Every part is real and runs as it would in a cluster, except that a control plane without
// kubelets needs stand-in pods: the envtest kube-apiserver and etcd with the CRDs, the
// manager binary (cmd/manager) as a child process, a loopback redis-server, `claudecap mock`
// with small limits and a latency of about 2 s per call, and internal/standin's fleet (one
// worker per Ready pod, each pod with its own `claudecap proxy` process as its sidecar).
// A scenario pushes jobs into a Redis list on a schedule, samples the ground truth every
// second (the Deployment's replicas, the queue, the mock's own counters) and scores the
// trajectory against an optimum computed from the limits and the workers' true speed.
//
// The lab is a test that skips unless CLAUDECAP_SCENARIOS is set, so `go test ./...` runs
// only its unit tests; `make bench-scenarios` runs it:
//
//	CLAUDECAP_SCENARIOS=1 go test -v -count=1 -run TestScenarios -timeout 30m ./hack/bench/closedloop/
//	CLAUDECAP_SCENARIOS=1 go test -v -count=1 -run TestScenarios -timeout 30m ./hack/bench/closedloop/ -args -scenario a,g
//
// It writes bin/scenarios/report.html (a chart per scenario), report.json (every series and
// metric) and results.md (the table). docs/scenarios.md describes scenarios and metrics.
package closedloop
