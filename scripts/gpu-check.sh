#!/bin/bash
# The GPU check (issue 26): on a machine with an NVIDIA GPU, runs every CUDA test with PLM_REQUIRE_CUDA=1 (a skip
# is a failure), compute-sanitizer memcheck on the CUDA kernel tests, `plm bench kernels --device cuda`, a random
# PLM-1B decode / prefill bench on the GPU (the same shapes in PyTorch: not yet, see below); logs and a summary
# table go to $OUT (default ./gpu-check-out). Without a GPU it runs what it can (the binaries exist, the CPU
# kernel bench, the tests' CUDA skips) and says plainly which GPU parts it skipped.
# Build the binaries on the CPU machine first (bash scripts/build.sh; nvcc cross-compiles sm_90) and carry build/.
# Usage, from the repository root: scripts/gpu-check.sh [BUILD_DIR]
set -u
build=${1:-build}
out=${OUT:-./gpu-check-out}
mkdir -p "$out"
summary="$out/summary.md"
plm="$build/apps/plm"
echo "# plm gpu-check $(date -u +%Y-%m-%dT%H:%M:%SZ)" > "$summary"
failures=0

# step NAME LOG COMMAND...: runs it, logs its output, adds a summary row.
step() {
  local name=$1 log=$2
  shift 2
  local start=$SECONDS
  "$@" > "$out/$log" 2>&1
  local code=$?
  local verdict=ok
  [ "$code" -eq 0 ] || { verdict="FAILED (exit $code)"; failures=$((failures + 1)); }
  echo "| $name | $verdict | $((SECONDS - start)) s | $log |" >> "$summary"
  echo "gpu-check: $name: $verdict"
}
skip() {
  echo "| $1 | skipped: $2 | | |" >> "$summary"
  echo "gpu-check: $1: skipped: $2"
}

for binary in "$plm" "$build/tests/core/plm_core_tests" "$build/tests/model/plm_model_tests"; do
  [ -x "$binary" ] || { echo "gpu-check: $binary missing: build first (bash scripts/build.sh)" >&2; exit 2; }
done
gpu=""
if command -v nvidia-smi > /dev/null && nvidia-smi -L > "$out/nvidia-smi.txt" 2>&1; then
  gpu=$(head -1 "$out/nvidia-smi.txt")
  nvidia-smi >> "$out/nvidia-smi.txt" 2>&1
fi
{
  echo "GPU: ${gpu:-none (nvidia-smi -L failed or absent)}"
  echo
  echo "| step | result | time | log |"
  echo "|---|---|---|---|"
} >> "$summary"

if [ -n "$gpu" ]; then
  export PLM_REQUIRE_CUDA=1
  step "CUDA tests (PLM_REQUIRE_CUDA=1)" cuda-tests.log \
    ctest --test-dir "$build" -R '[Cc]uda|CUDA|Nccl|NCCL' --output-on-failure
  if command -v compute-sanitizer > /dev/null; then
    step "compute-sanitizer memcheck, kernel tests" memcheck.log \
      compute-sanitizer --tool memcheck --error-exitcode 1 "$build/tests/core/plm_core_tests" --gtest_filter='Cuda*'
  else
    skip "compute-sanitizer memcheck" "compute-sanitizer not on PATH"
  fi
  step "plm bench kernels --device cuda" bench-kernels-cuda.log "$plm" bench kernels --device cuda
  model="$out/plm-1b-random"
  [ -d "$model" ] || "$plm" bench make-random-model --config configs/plm-1b --out "$model" > "$out/make-model.log" 2>&1
  step "PLM-1B random: plm bench generate (bf16, GPU)" bench-generate-cuda.log \
    "$plm" bench generate --model "$model" --device cuda --prompt-tokens 512 --new-tokens 128
  # bench/torch_linear_bench.py and bench/hf_generate_bench.py time the CPU only: their GPU mode is still to write.
  skip "PyTorch matmul / HF generate on the GPU" "the bench scripts have no CUDA mode yet"
else
  skip "CUDA tests" "no GPU"
  skip "compute-sanitizer memcheck" "no GPU"
  skip "plm bench kernels --device cuda" "no GPU"
  skip "PLM-1B bench on the GPU, PyTorch / HF on the GPU" "no GPU"
  # What runs without one: the CUDA tests must skip (not fail), and the CPU kernel bench runs.
  step "CUDA tests skip cleanly without a GPU" cuda-tests-skip.log \
    ctest --test-dir "$build" -R 'Cuda.*(Matmul|Softmax)' --output-on-failure
  step "plm bench kernels (CPU)" bench-kernels-cpu.log "$plm" bench kernels --device cpu
fi
echo >> "$summary"
echo "failures: $failures" >> "$summary"
cat "$summary"
[ "$failures" -eq 0 ]
