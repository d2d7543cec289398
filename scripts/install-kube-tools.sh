#!/usr/bin/env bash
# Builds etcd, kube-apiserver and kubectl at one pinned release from the Go module proxy into a
# cache folder outside the repository, and prints that folder's bin/ path. Does nothing when the
# binaries of these versions are already there.
#
# k8s.io/kubernetes cannot be `go install`ed: its go.mod replaces the k8s.io/* staging modules
# with local folders. So we write a small module that requires it and replaces every staging
# module with the same release's published v0.<minor>.<patch>. etcd's server module has replace
# directives too, so it gets a module of its own.
set -euo pipefail

KUBE_VERSION=v1.34.4      # kube-apiserver and kubectl
ETCD_VERSION=v3.6.4       # the etcd this Kubernetes release's go.mod requires
STAGING_VERSION="v0.${KUBE_VERSION#v1.}"

CACHE="${ITER8_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/iter8-rs}"
DEST="$CACHE/kube-$KUBE_VERSION-etcd-$ETCD_VERSION"
BIN="$DEST/bin"

have() {
  [ -x "$BIN/etcd" ] && [ -x "$BIN/kube-apiserver" ] && [ -x "$BIN/kubectl" ] && [ -f "$DEST/.complete" ]
}
if have; then
  echo "$BIN"
  exit 0
fi

command -v go >/dev/null 2>&1 || { echo "install-kube-tools: go is not on PATH" >&2; exit 1; }
mkdir -p "$BIN"
start=$(date +%s)

# Builds are pure Go: no cgo, so the binaries do not depend on the machine's libc.
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local

kube_mod="$DEST/src/kubernetes"
mkdir -p "$kube_mod"
{
  echo "module iter8-rs/kube-tools"
  echo
  echo "go 1.24.0"
  echo
  echo "require k8s.io/kubernetes $KUBE_VERSION"
  echo
  echo "replace ("
  for m in api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider \
    cluster-bootstrap code-generator component-base component-helpers controller-manager cri-api \
    cri-client csi-translation-lib dynamic-resource-allocation endpointslice externaljwt kms \
    kube-aggregator kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics \
    mount-utils pod-security-admission sample-apiserver sample-cli-plugin sample-controller; do
    echo "	k8s.io/$m => k8s.io/$m $STAGING_VERSION"
  done
  echo ")"
} >"$kube_mod/go.mod"
# Version stamps, as the release build sets them, so `kubectl version` and /version tell the truth.
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION \
  -X k8s.io/component-base/version.gitMajor=1 \
  -X k8s.io/component-base/version.gitMinor=$(echo "$KUBE_VERSION" | cut -d. -f2) \
  -X k8s.io/client-go/pkg/version.gitVersion=$KUBE_VERSION"
(
  cd "$kube_mod"
  go build -trimpath -ldflags "$ldflags" -o "$BIN/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
  go build -trimpath -ldflags "$ldflags" -o "$BIN/kubectl" k8s.io/kubernetes/cmd/kubectl
)

etcd_mod="$DEST/src/etcd"
mkdir -p "$etcd_mod"
cat >"$etcd_mod/go.mod" <<EOF
module iter8-rs/etcd-tools

go 1.24.0

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
EOF
(
  cd "$etcd_mod"
  go build -trimpath -ldflags "-s -w" -o "$BIN/etcd" go.etcd.io/etcd/server/v3
)

touch "$DEST/.complete"
echo "install-kube-tools: built in $(($(date +%s) - start)) s" >&2
echo "$BIN"
