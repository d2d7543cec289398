#!/usr/bin/env bash
# The operator at scale, in one command: builds the release `iter8` binary and runs the
# benchmark (benches/operator_scale.rs) against a real etcd + kube-apiserver.
#   scripts/bench-operator-scale.sh [N,...] [report file] [-- extra operator flags]
# Needs the kube tools (scripts/install-kube-tools.sh). Defaults: N = 100,1000; the report is
# written to target/operator-scale.md and printed.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
sizes="${1:-100,1000}"
target="${CARGO_TARGET_DIR:-$root/target}"
report="${2:-$target/operator-scale.md}"
shift $(( $# > 2 ? 2 : $# ))
cd "$root"
cargo build --release --bin iter8
cargo bench -p iter8-benches --bench operator_scale -- \
  --binary "$target/release/iter8" --n "$sizes" --report "$report" "$@"
