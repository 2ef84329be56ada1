#!/bin/sh
# Runs `plm bench generate` and then bench/hf_generate_bench.py (HF f32 and bf16) on the same model directory
# and prompts, one after the other (never together: a 1B model takes ~6 GB in f32 in each), and prints the
# plm / HF ratios. Usage, from the repository root:
#   bench/compare_generate.sh BUILD_DIR MODEL_DIR [--prompt-tokens N] [--new-tokens N] [--batch B] [--image-tiles T]
set -eu
build_dir=$1 model_dir=$2
shift 2
plm_out=$(mktemp /tmp/plm_generate_bench.XXXXXX)
trap 'rm -f "$plm_out"' EXIT
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
"$build_dir/apps/plm" bench generate --model "$model_dir" "$@" | tee "$plm_out"
echo
.venv-ref/bin/python bench/hf_generate_bench.py --model "$model_dir" "$@" --plm-result "$plm_out"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
