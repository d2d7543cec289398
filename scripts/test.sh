#!/usr/bin/env bash
# Runs every test of the workspace, after installing what the tests need.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh
cargo test --workspace --all-targets
cargo test --workspace --doc
