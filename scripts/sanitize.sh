#!/usr/bin/env bash
# Runs unit tests under sanitizers, in build folders of their own (the compiler is the main build's):
#   scripts/sanitize.sh asan [BINARY...]   ASan + UBSan in build-asan/: plm_core_tests, plm_data_tests,
#                                           plm_model_tests, plm_serve_tests (or the test binaries named)
#   scripts/sanitize.sh tsan [FILTER]      TSan in build-tsan/: the engine and HTTP threading tests of
#                                           plm_serve_tests (gtest FILTER, default EngineTest.*:HttpServer*)
# A report fails the run (UBSan halts on the first error; ASan, LSan and TSan exit non-zero). The suppression
# files in scripts/sanitizers/ list the third-party reports left out, each with its reason. Test scratch files go to
# build-*/test_tmp. Runs under `nice`.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { echo "usage: scripts/sanitize.sh asan [BINARY...] | tsan [GTEST_FILTER]" >&2; exit 2; }
(( $# >= 1 )) || usage
kind="$1"
shift
case "$kind" in
  asan) dir=build-asan; sanitizers=address,undefined
        binaries=("$@")
        (( ${#binaries[@]} > 0 )) || binaries=(plm_core_tests plm_data_tests plm_model_tests plm_serve_tests)
        filter='*' ;;
  tsan) dir=build-tsan; sanitizers=thread
        binaries=(plm_serve_tests)
        filter="${1:-EngineTest.*:HttpServer*}" ;;
  *) usage ;;
esac

werror=OFF
if [[ "${CI:-}" == "true" ]]; then werror=ON; fi
# Release keeps the CUDA objects' flags those of build/ (ccache shares them); C++ gets -O1 -g for the sanitizers.
if [[ ! -f "$dir/build.ninja" ]]; then
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O1 -g" \
    -DPLM_SANITIZE="$sanitizers" -DPLM_WERROR="$werror"
fi
nice -n 10 cmake --build "$dir" -j "${PLM_JOBS:-$(nproc)}" --target "${binaries[@]}"

supp="$PWD/scripts/sanitizers"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export ASAN_OPTIONS="detect_leaks=1"
export LSAN_OPTIONS="suppressions=$supp/lsan.supp:print_suppressions=0"
export TSAN_OPTIONS="suppressions=$supp/tsan.supp:halt_on_error=1:second_deadlock_stack=1:print_suppressions=0"
# What ctest gives every test (tests/CMakeLists.txt).
export PLM_TEST_DATA_DIR="$PWD/tests/fixtures" PLM_SHARED_DIR="$PWD/../shared" TEST_TMPDIR="$PWD/$dir/test_tmp"
export PLM_COMM_TIMEOUT_S=300
mkdir -p "$TEST_TMPDIR" "$dir/logs"
failed=()
for binary in "${binaries[@]}"; do
  path=$(find "$dir/tests" -type f -name "$binary" -perm -u+x | head -1)
  [[ -n "$path" ]] || { echo "sanitize: no test binary $binary in $dir" >&2; exit 2; }
  log="$dir/logs/$binary.log"
  status=0
  start=$(date +%s)
  nice -n 10 timeout 3600 "$path" --gtest_filter="$filter" > "$log" 2>&1 || status=$?
  summary=$(grep -E '^\[  (PASSED|FAILED|SKIPPED) ' "$log" | tr '\n' ' ')
  if (( status != 0 )); then
    failed+=("$binary")
    summary+=" FAILED (exit $status): $(grep -m1 -E 'ERROR: (Address|Leak|Thread)Sanitizer|WARNING: ThreadSanitizer|runtime error:' "$log" || true)"
  fi
  echo "sanitize $kind: $binary: $summary ($(( $(date +%s) - start )) s; log: $log)"
done
if (( ${#failed[@]} > 0 )); then
  echo "sanitize $kind: failures in ${failed[*]}" >&2
  exit 1
fi
