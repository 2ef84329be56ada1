#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ with clang, ASan and UBSan into build-fuzz/ and runs them.
#   scripts/fuzz.sh NAME SECONDS        one target (fuzz/README.md lists them) for SECONDS
#   scripts/fuzz.sh all SECONDS         every target, SECONDS each
#   scripts/fuzz.sh build               only build
# Each run starts from the committed seeds (fuzz/corpus/NAME) plus what earlier runs kept in build-fuzz/corpus/NAME,
# writes a crashing input to build-fuzz/artifacts/NAME/, and prints one summary line per target; the exit status
# is 1 when any target found a crash, leak, UB, timeout or out-of-memory. Runs under `nice`, one libFuzzer process
# at a time. PLM_FUZZ_TARGETS="a b" narrows `all` (CI's subset).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { echo "usage: scripts/fuzz.sh NAME|all SECONDS, or scripts/fuzz.sh build" >&2; exit 2; }
(( $# >= 1 )) || usage
what="$1"
seconds="${2:-}"
if [[ "$what" != build ]]; then [[ "$seconds" =~ ^[0-9]+$ ]] || usage; fi

all_targets=(safetensors model_config tokenizer chat_prompt http_request openai_request image video train_config
             checkpoint_manifest)
declare -A dictionary=([safetensors]=json [model_config]=json [chat_prompt]=json [openai_request]=json
                       [checkpoint_manifest]=json [http_request]=http [train_config]=yaml)

if [[ "$what" == all ]]; then
  read -r -a targets <<< "${PLM_FUZZ_TARGETS:-${all_targets[*]}}"
elif [[ "$what" == build ]]; then
  targets=()
elif [[ " ${all_targets[*]} " == *" $what "* ]]; then
  targets=("$what")
else
  echo "fuzz.sh: no target '$what' (targets: ${all_targets[*]})" >&2
  exit 2
fi

command -v clang++ >/dev/null || { echo "fuzz.sh: needs clang++ (libFuzzer)" >&2; exit 2; }
# No -Werror here, even in CI: the fuzz build is clang's, whose warnings differ from the GCC build that CI
# already holds to -Werror; what this build is for is crashes and sanitizer reports.
werror=OFF
# Release keeps the CUDA objects' flags those of build/ (ccache shares them); C++ gets -O1 -g for the sanitizers.
if [[ ! -f build-fuzz/build.ninja ]]; then
  CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O1 -g" \
    -DPLM_SANITIZE=address,undefined -DPLM_FUZZ=ON -DPLM_WERROR="$werror"
fi
build_targets=(plm_fuzzers)
if (( ${#targets[@]} > 0 )); then build_targets=("${targets[@]/#/fuzz_}"); fi
nice -n 10 cmake --build build-fuzz -j "${PLM_JOBS:-$(nproc)}" --target "${build_targets[@]}"
[[ "$what" == build ]] && exit 0

# The targets' scratch files: on tmpfs when there is one (5x the executions of a disk for the file-reading targets).
TMPDIR="$PWD/build-fuzz/tmp"
if [[ -d /dev/shm && -w /dev/shm ]]; then TMPDIR="/dev/shm/plm-fuzz-$(id -u)"; fi
export TMPDIR
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0"
export LSAN_OPTIONS="suppressions=$PWD/scripts/sanitizers/lsan.supp:print_suppressions=0"
mkdir -p "$TMPDIR"
failed=()
for name in "${targets[@]}"; do
  corpus="build-fuzz/corpus/$name"
  artifacts="build-fuzz/artifacts/$name/"
  log="build-fuzz/logs/$name.log"
  mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"
  args=(-max_total_time="$seconds" -timeout=30 -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$artifacts")
  if [[ -n "${dictionary[$name]:-}" ]]; then args+=(-dict="fuzz/dicts/${dictionary[$name]}.dict"); fi
  status=0
  nice -n 10 "build-fuzz/fuzz/fuzz_$name" "${args[@]}" "$corpus" "fuzz/corpus/$name" > "$log" 2>&1 &
  pid=$!
  wait "$pid" || status=$?
  # What a process that did not exit normally leaves: its scratch folder, and clang's OpenMP runtime's marker.
  rm -rf "$TMPDIR/plm_$pid" /dev/shm/__KMP_REGISTERED_LIB_"$pid"_*
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  result=ok
  if (( status != 0 )); then
    result="FAILED (exit $status): $(grep -m1 -E 'ERROR: |runtime error:|Check failed|deadly signal|out-of-memory|timeout' "$log" || true)"
    failed+=("$name")
  fi
  echo "fuzz: $name: ${runs:-?} executions, ${rate:-?}/s, corpus $(find "$corpus" -type f | wc -l) files: $result (log: $log)"
done
if (( ${#failed[@]} > 0 )); then
  echo "fuzz: failures in ${failed[*]}; the inputs are under build-fuzz/artifacts/" >&2
  exit 1
fi
