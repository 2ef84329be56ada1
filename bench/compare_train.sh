#!/bin/sh
# Runs `plm bench train` and then bench/torch_train_bench.py (PyTorch eager f32 and bf16 autocast) on the same
# model directory and sequences, one after the other (never together: each holds the weights, gradients and
# AdamW state), and prints the plm / PyTorch ratios. Usage, from the repository root:
#   bench/compare_train.sh BUILD_DIR MODEL_DIR [--batch B] [--seq-len N] [--image-tiles T] [--steps S]
# PLM_RECOMPUTE=none|selective|full picks plm's activation recomputation (PyTorch keeps every activation),
# PLM_DTYPE=f32|bf16 plm's compute dtype (bf16: GEMMs on bf16-rounded operands, as autocast);
# PYTHON names the interpreter with torch and transformers (default /work/venv-ref/bin/python).
set -eu
build_dir=$1 model_dir=$2
shift 2
python=${PYTHON:-/work/venv-ref/bin/python}
plm_out=$(mktemp /tmp/plm_train_bench.XXXXXX)
trap 'rm -f "$plm_out"' EXIT
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
"$build_dir/apps/plm" bench train --model "$model_dir" --recompute "${PLM_RECOMPUTE:-none}" \
  --dtype "${PLM_DTYPE:-f32}" "$@" | tee "$plm_out"
echo
"$python" bench/torch_train_bench.py --model "$model_dir" "$@" --plm-result "$plm_out"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
