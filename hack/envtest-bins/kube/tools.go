//go:build tools

// Package tools pins the Kubernetes commands that the test harness builds from
// the Go module proxy: kube-apiserver for envtest, kubectl for `make dev`, and
// kube-controller-manager and kube-scheduler for `make cluster-bins`
// (internal/localcluster).
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
