#!/usr/bin/env bash
# Chaos runs with a report (docs/operator.md, "Failure handling"):
#   bash scripts/chaos.sh sim [SEED...]   100 experiments in the simulation per seed (default: 1)
# Each run prints its report and writes it to target/chaos-report-sim.md (the last seed's);
# the script fails if any run finds an invariant violated.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}
case "$mode" in
sim)
    shift
    [ $# -eq 0 ] && set -- 1
    status=0
    for seed in "$@"; do
        cargo bench -p iter8-benches --bench chaos_sim -- --experiments "${CHAOS_EXPERIMENTS:-100}" --seed "$seed" || status=1
    done
    exit $status
    ;;
*)
    echo "usage: bash scripts/chaos.sh sim [SEED...]" >&2
    exit 2
    ;;
esac
