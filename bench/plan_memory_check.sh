#!/bin/bash
# `plm plan`'s memory prediction against a measured CPU training step: runs `plm bench train` (one rank, ZeRO-0,
# the trainer's DataParallelStep: a warm-up step and one timed step) on MODEL_DIR and `plm plan --hardware cpu`
# on the same shape, and compares the predicted per-device memory with what the step added to the process's
# resident set (peak RSS minus the RSS before the model loaded; the process's own baseline, libraries and
# allocator arenas, is not predicted on CPU). Exits 1 when they differ by more than 15 %.
#   bench/plan_memory_check.sh PLM MODEL_DIR [--batch B] [--seq-len L] [--image-tiles T] [--recompute R]
# e.g. a PLM-1B-shaped model (PLM-1B widths, 2 decoder layers, 2 vision blocks; ~9 GB of RAM):
#   plm bench make-random-model --config configs/plm-1b --out /tmp/plm-1b-2x2 --text-layers 2 --vision-layers 2
#   OMP_NUM_THREADS=1 bench/plan_memory_check.sh build/apps/plm /tmp/plm-1b-2x2 --batch 1 --seq-len 128
set -euo pipefail
if [[ $# -lt 2 ]]; then
  echo "usage: $0 PLM MODEL_DIR [--batch B] [--seq-len L] [--image-tiles T] [--recompute R]" >&2
  exit 2
fi
plm=$1 model=$2
shift 2
batch=1 seq_len=128 tiles=0 recompute=none
while [[ $# -gt 0 ]]; do
  case $1 in
    --batch) batch=$2 ;;
    --seq-len) seq_len=$2 ;;
    --image-tiles) tiles=$2 ;;
    --recompute) recompute=$2 ;;
    *) echo "$0: unknown option $1" >&2; exit 2 ;;
  esac
  shift 2
done

# glibc raises its mmap threshold as large blocks are freed, after which a freed buffer (the loaded weights the
# trainer moved into its flat buffer) may stay in the heap, resident or not depending on allocation order: pin the
# threshold so that freed large buffers go back to the system and the RSS measures what is allocated.
export MALLOC_MMAP_THRESHOLD_=${MALLOC_MMAP_THRESHOLD_:-1048576}
bench=$("$plm" bench train --model "$model" --batch "$batch" --seq-len "$seq_len" --image-tiles "$tiles" \
  --recompute "$recompute" --steps 1 | tail -n 1)
field() { sed -n "s/.*\"$1\":\([0-9.e+-]*\).*/\1/p" <<< "$bench"; }
peak=$(field peak_rss_mib) before=$(field rss_before_load_mib)
# The prediction exits 1 when nothing fits (the CPU profile has this machine's memory): keep its output.
plan=$("$plm" plan --model "$model" --hardware cpu --gpus 1 --zero 0 --seq-len "$seq_len" --micro-batch "$batch" \
  --tiles "$tiles" --recompute "$recompute" --json) || true
predicted=$(grep -m 1 '"peak_bytes"' <<< "$plan" | sed 's/[^0-9]//g')
[[ -n $predicted && -n $peak && -n $before ]] || { echo "$0: no numbers (bench: $bench)" >&2; exit 1; }

awk -v peak="$peak" -v before="$before" -v predicted="$predicted" -v model="$model" 'BEGIN {
  added = peak - before; p = predicted / 1048576
  printf "plan memory check: %s: predicted %.1f MiB, the step added %.1f MiB (x%.3f); with the process baseline " \
         "%.1f MiB: %.1f MiB predicted against a %.1f MiB peak RSS (x%.3f)\n",
         model, p, added, p / added, before, before + p, peak, (before + p) / peak
  exit (p / added < 0.85 || p / added > 1.15) ? 1 : 0
}'
