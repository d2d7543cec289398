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

if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing with apt: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  # The Debian package starts its own service; tests run their own instance on a free port.
  if command -v systemctl >/dev/null 2>&1; then systemctl stop prometheus 2>/dev/null || true; fi
  pkill -x prometheus 2>/dev/null || true
fi
