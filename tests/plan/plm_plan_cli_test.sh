#!/bin/bash
# `plm plan` from the command line on the shipped PLM configs: the two plans the issue asks for print a fitting
# layout with its memory breakdown, overrides and sbatch line; --json parses; a model that fits nowhere exits 1.
# Usage: plm_plan_cli_test.sh PLM SOURCE_DIR
set -uo pipefail
plm=$1
cd "$2" || exit 1
fail() { echo "FAIL: $*" >&2; exit 1; }
expect_lines() {  # expect_lines OUTPUT PATTERN...
  local out=$1
  shift
  for pattern in "$@"; do grep -q -- "$pattern" <<< "$out" || fail "no '$pattern' in:"$'\n'"$out"; done
}

out=$("$plm" plan --model configs/plm-8b --gpus 16 --gpu-mem 80G) || fail "PLM-8B on 16 GPUs: exit $?"$'\n'"$out"
echo "$out"
expect_lines "$out" "^best: tp" "weights " "gradients " "optimizer " "activations " "total " "overrides: layout.tp=" \
  "sbatch -N 2 --ntasks-per-node=8 --gpus-per-task=1 slurm/finetune.sbatch"

out=$("$plm" plan --model configs/plm-1b --gpus 1) || fail "PLM-1B on 1 GPU: exit $?"$'\n'"$out"
echo "$out"
expect_lines "$out" "^best: tp1 pp1 dp1" "optimizer " "layout.tp=1 layout.pp=1 layout.dp=1"

out=$("$plm" plan --model configs/plm-8b --gpus 8 --task serve --micro-batch 32 --seq-len 4096 --json) || fail "serve --json: exit $?"
expect_lines "$out" '"task": "serve"' '"kv_cache_budget"' 'slurm/serve.sbatch configs/plm-8b'

"$plm" plan --model configs/plm-8b --gpus 1 --gpu-mem 24G > /dev/null && fail "PLM-8B on one 24 GB GPU should not fit"
"$plm" plan --model configs/no-such-model --gpus 1 2> /dev/null && fail "a missing config should fail"
echo "plm plan cli: ok"
