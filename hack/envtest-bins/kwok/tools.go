//go:build tools

// Package tools pins KWOK's `kwok` controller (fake Nodes and Pod lifecycles driven
// by Stages), which `make cluster-bins` builds from the Go module proxy for
// internal/localcluster.
package tools

import (
	_ "sigs.k8s.io/kwok/cmd/kwok"
)
