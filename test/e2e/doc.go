// Package e2e runs claudecap the way a platform team does, on a local cluster with real
// workload machinery (internal/localcluster: kube-apiserver, etcd, kube-controller-manager,
// kube-scheduler and KWOK's fake nodes, all on 127.0.0.1):
//
//   - the Helm chart is installed with `helm install`, and the operator (the real
//     cmd/manager binary, run on the host) authenticates with a TokenRequest token of the
//     chart's own ServiceAccount, so every call it makes is authorized by the chart's RBAC;
//   - a worker Deployment's Pods are played by internal/standin, one worker per Ready Pod,
//     each calling the mock Messages API through its own claudecap proxy;
//   - KEDA-style phases check the replicas over time, with "stays unchanged for N
//     seconds" assertions, and every job pushed is counted: processed exactly once;
//   - the API server's audit log shows every call the operator made: a refused one fails
//     the test, and granted verbs the operator never used are listed.
//
// The tests carry the e2e build tag: `make e2e` runs them (and .ci/run runs make e2e).
package e2e
