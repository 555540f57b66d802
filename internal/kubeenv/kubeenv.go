// Package kubeenv finds the envtest binaries (kube-apiserver, etcd, kubectl) that
// `make envtest` builds into bin/k8s/, so tests start a real API server from any
// working directory, including an IDE's. A preset KUBEBUILDER_ASSETS wins.
package kubeenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// AssetsDir returns the directory that holds kube-apiserver and etcd.
func AssetsDir() (string, error) {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		if hasBinaries(dir) {
			return dir, nil
		}
		return "", fmt.Errorf("KUBEBUILDER_ASSETS=%s holds no kube-apiserver and etcd; run `make envtest` or unset it", dir)
	}
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	candidates, _ := filepath.Glob(filepath.Join(root, "bin", "k8s", "*"))
	sort.Sort(sort.Reverse(sort.StringSlice(candidates))) // newest version first
	for _, dir := range candidates {
		if hasBinaries(dir) {
			return dir, nil
		}
	}
	return "", fmt.Errorf("no envtest binaries under %s; run `make envtest` (builds kube-apiserver and etcd once, a few minutes)",
		filepath.Join(root, "bin", "k8s"))
}

// ModuleRoot returns the directory of this repository's go.mod, found from this source
// file's location so that it works whatever the working directory is.
func ModuleRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("cannot locate the kubeenv source file")
	}
	dir := filepath.Dir(file)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above %s", file)
		}
		dir = parent
	}
}

// NewEnvironment returns an envtest environment with the project's CRDs and the built
// binaries; the caller starts and stops it.
func NewEnvironment() (*envtest.Environment, error) {
	assets, err := AssetsDir()
	if err != nil {
		return nil, err
	}
	root, err := ModuleRoot()
	if err != nil {
		return nil, err
	}
	return &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}, nil
}

func hasBinaries(dir string) bool {
	for _, name := range []string{"kube-apiserver", "etcd"} {
		st, err := os.Stat(filepath.Join(dir, name)) //nolint:gosec // looking for a binary in a directory the user chose
		if err != nil || st.IsDir() {
			return false
		}
	}
	return true
}
