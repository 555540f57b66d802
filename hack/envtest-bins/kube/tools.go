//go:build tools

// Package tools pins the Kubernetes commands that the test harness builds from
// the Go module proxy: kube-apiserver for envtest and kubectl for `make dev`.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
