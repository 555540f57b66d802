//go:build tools

// Package tools pins etcd's server, whose package main is the etcd binary that
// envtest starts.
package tools

import _ "go.etcd.io/etcd/server/v3"
