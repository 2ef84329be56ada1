#!/usr/bin/env bash
# Builds plm if needed and runs the whole test suite (unit, golden, multi-rank, end-to-end) with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
ctest --test-dir build --output-on-failure -j "${PLM_JOBS:-$(nproc)}" --timeout 600
