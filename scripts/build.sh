#!/usr/bin/env bash
# Configures (once) and builds plm into build/ (Release with plm's always-on checks). Extra arguments go
# to cmake's configure step, e.g. scripts/build.sh -DPLM_NATIVE=OFF.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs="${PLM_JOBS:-$(nproc)}"
werror=OFF
if [[ "${CI:-}" == "true" ]]; then werror=ON; fi
if [[ ! -f build/build.ninja || $# -gt 0 ]]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DPLM_WERROR="$werror" "$@"
fi
cmake --build build -j "$jobs"
