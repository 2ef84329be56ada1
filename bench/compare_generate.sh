#!/bin/sh
# Runs `plm bench generate` and then bench/hf_generate_bench.py (HF f32 and bf16) on the same model directory
# and prompts, one after the other (never together: a 1B model takes ~6 GB in f32 in each), and prints the
# plm / HF ratios. Usage, from the repository root:
#   bench/compare_generate.sh BUILD_DIR MODEL_DIR [--prompt-tokens N] [--new-tokens N] [--batch B] [--image-tiles T]
# PLM_DTYPE picks plm's --dtype (default f32), HF_DTYPES the HF runs (default "float32 bfloat16"), PLM_REF_PYTHON
# the reference venv's python (default .venv-ref/bin/python).
set -eu
build_dir=$1 model_dir=$2
shift 2
plm_out=$(mktemp /tmp/plm_generate_bench.XXXXXX)
trap 'rm -f "$plm_out"' EXIT
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
"$build_dir/apps/plm" bench generate --model "$model_dir" --dtype "${PLM_DTYPE:-f32}" "$@" | tee "$plm_out"
echo
# shellcheck disable=SC2086  # HF_DTYPES is a list of words
"${PLM_REF_PYTHON:-.venv-ref/bin/python}" bench/hf_generate_bench.py --model "$model_dir" "$@" \
  --dtype ${HF_DTYPES:-float32 bfloat16} --plm-result "$plm_out"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
