#!/usr/bin/env bash
# Builds the envtest binaries (kube-apiserver, etcd) and kubectl from the Go module
# proxy into the directory given as $1, once. Prebuilt envtest archives cannot be
# downloaded here, and `go install` refuses kube-apiserver and etcd because their
# go.mod files carry replace directives, so each is built inside a small module
# under hack/envtest-bins/ that pins it and replaces kubernetes' staging modules
# with their published versions.
#
# With "cluster" as $2 (`make cluster-bins`) it also builds what a local cluster with
# real workload machinery needs (internal/localcluster): kube-controller-manager and
# kube-scheduler from the same kubernetes module, and KWOK's `kwok` controller (fake
# nodes and pod lifecycles) from hack/envtest-bins/kwok, pinned to $KWOK_VERSION.
set -euo pipefail

out=${1:?usage: setup-envtest.sh OUTPUT_DIR [cluster]}
mode=${2:-envtest}
version=${ENVTEST_K8S_VERSION:?ENVTEST_K8S_VERSION must be set}
here=$(cd "$(dirname "$0")" && pwd)

case "$mode" in
  envtest) wanted=(kube-apiserver etcd) ;;
  cluster) wanted=(kube-apiserver etcd kube-controller-manager kube-scheduler kwok) ;;
  *) echo "usage: setup-envtest.sh OUTPUT_DIR [cluster]" >&2; exit 2 ;;
esac

# A preset KUBEBUILDER_ASSETS that already holds the binaries wins.
preset_has_all() {
  [[ -n "${KUBEBUILDER_ASSETS:-}" && "${KUBEBUILDER_ASSETS}" != "$out" ]] || return 1
  local name
  for name in "${wanted[@]}"; do [[ -x "${KUBEBUILDER_ASSETS}/$name" ]] || return 1; done
}
if preset_has_all; then
  echo "envtest: using KUBEBUILDER_ASSETS=${KUBEBUILDER_ASSETS}"
  exit 0
fi

pinned=$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" {print $3}' "$here/envtest-bins/kube/go.mod")
if [[ "$pinned" != "v$version" ]]; then
  echo "envtest: ENVTEST_K8S_VERSION=$version but hack/envtest-bins/kube/go.mod pins k8s.io/kubernetes $pinned" >&2
  exit 1
fi

if [[ "$mode" == cluster ]]; then
  kwok_version=${KWOK_VERSION:?KWOK_VERSION must be set}
  kwok_pinned=$(awk '$1 == "require" && $2 == "sigs.k8s.io/kwok" {print $3}' "$here/envtest-bins/kwok/go.mod")
  if [[ "$kwok_pinned" != "$kwok_version" ]]; then
    echo "envtest: KWOK_VERSION=$kwok_version but hack/envtest-bins/kwok/go.mod pins sigs.k8s.io/kwok $kwok_pinned" >&2
    exit 1
  fi
fi

mkdir -p "$out"
build() { # name dir package [ldflags]
  local name=$1 dir=$2 pkg=$3 ldflags=${4:-}
  if [[ -x "$out/$name" ]]; then return 0; fi
  echo "envtest: building $name (first run only; a few minutes)"
  local start=$SECONDS
  (cd "$here/envtest-bins/$dir" && go build -trimpath -ldflags "-s -w $ldflags" -o "$out/$name.tmp" "$pkg")
  mv "$out/$name.tmp" "$out/$name"
  echo "envtest: built $name in $((SECONDS - start))s"
}

major=${version%%.*}; rest=${version#*.}; minor=${rest%%.*}
kversion="-X k8s.io/component-base/version.gitVersion=v$version -X k8s.io/component-base/version.gitMajor=$major -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
kversion+=" -X k8s.io/client-go/pkg/version.gitVersion=v$version -X k8s.io/client-go/pkg/version.gitMajor=$major -X k8s.io/client-go/pkg/version.gitMinor=$minor"

build etcd etcd go.etcd.io/etcd/server/v3
build kube-apiserver kube k8s.io/kubernetes/cmd/kube-apiserver "$kversion"
build kubectl kube k8s.io/kubernetes/cmd/kubectl "$kversion"

if [[ "$mode" == cluster ]]; then
  build kube-controller-manager kube k8s.io/kubernetes/cmd/kube-controller-manager "$kversion"
  build kube-scheduler kube k8s.io/kubernetes/cmd/kube-scheduler "$kversion"
  build kwok kwok sigs.k8s.io/kwok/cmd/kwok
fi
echo "envtest: binaries ready in $out"
