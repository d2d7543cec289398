#!/usr/bin/env bash
# Chaos runs with a report (docs/operator.md, "Failure handling"):
#   bash scripts/chaos.sh sim [SEED...]      100 experiments in the simulation per seed (default: 1)
#   bash scripts/chaos.sh cluster [SEED...]  20 experiments with the operator binary on a real
#                                            kube-apiserver (scripts/install-kube-tools.sh first)
# CHAOS_EXPERIMENTS changes the number of experiments. Each run prints its report and writes it
# to target/chaos-report-sim.md or target/chaos-report-cluster.md (the last seed's);
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
cluster)
    shift
    [ $# -eq 0 ] && set -- 1
    status=0
    for seed in "$@"; do
        # The dev profile: the same operator binary as the end-to-end tests, built once.
        cargo bench --profile dev --bench chaos_cluster -- --experiments "${CHAOS_EXPERIMENTS:-20}" --seed "$seed" || status=1
    done
    exit $status
    ;;
*)
    echo "usage: bash scripts/chaos.sh sim|cluster [SEED...]" >&2
    exit 2
    ;;
esac
