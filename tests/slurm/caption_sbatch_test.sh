#!/bin/bash
# slurm/caption.sbatch on a real single-node Slurm (2 CPUs, the tiny model, fixture videos and images): a 2-task
# array job of 2 shards (4 replicas in all) whose last task merges, and a 2-task job sent SIGUSR1 mid-run that is
# requeued and resumes; both outputs equal one process's `plm caption` run line for line (timings aside).
# Usage: caption_sbatch_test.sh PLM SOURCE_DIR SCRATCH. Exits 77 (skipped) without root or slurm-wlm.
set -uo pipefail
plm=$1 src=$2 scratch=$3
# shellcheck source=tests/slurm/local_slurm.sh
source "$(dirname "$0")/local_slurm.sh"
local_slurm_test_begin "$scratch"
fail() { echo "FAIL: $*" >&2; for f in "$scratch"/*.out "$scratch"/*.err; do echo "== $f"; cat "$f"; done; exit 1; }
export PLM_BIN=$plm OMP_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

# 24 items: the fixture clips and pictures under distinct ids, and a video without frames (an error line).
media=$src/tests/fixtures/preprocessing/inputs
for i in $(seq 0 3); do
  for f in h264_64x48.mp4 vp9_96x64.webm mjpeg_72x40.avi h264_160x96.mkv grey_300x200.png zero_frames.avi; do
    echo "{\"id\": \"$i/$f\", \"path\": \"$media/$f\"}"
  done
done > "$scratch/items.jsonl"
options=(--max-new-tokens 12 --num-frames 4 --max-num-seqs 2 --prefetch 1)
model=$src/tests/fixtures/models/cls_tied
"$plm" caption --model "$model" --inputs "$scratch/items.jsonl" --out "$scratch/reference.jsonl" "${options[@]}" \
  2> "$scratch/reference.err" || fail "the one-process run failed"
[[ $(wc -l < "$scratch/reference.jsonl") -eq 24 ]] || fail "the one-process run wrote $(wc -l < "$scratch/reference.jsonl") lines"
without_timing() { sed 's/,"seconds":[0-9.e+-]*//' "$1"; }

local_slurm_start "$scratch/slurm" 2 || fail "local Slurm did not start"
submit() {  # submit NAME OUT [sbatch options]: 2 CPU tasks sharing the 2 CPUs (-O)
  local name=$1 out=$2
  shift 2
  sbatch --parsable -O -n 2 --ntasks-per-node=2 -c 1 --gpus-per-task=0 --chdir="$src" -J "$name" \
    --output="$scratch/$name-%a.out" --error="$scratch/$name-%a.err" "$@" \
    "$src/slurm/caption.sbatch" "$model" "$scratch/items.jsonl" "$out" "${options[@]}"
}

# An array of 2 shards: each task captions its half over 2 replicas; the last one to finish merges.
array=$(submit array "$scratch/array.jsonl" --array=0-1) || fail "sbatch array"
for task in 0 1; do
  [[ $(local_slurm_wait_job "${array}_$task") == COMPLETED ]] || fail "array task $task: $(scontrol show job "${array}_$task")"
done
for part in shard-0.rank-0 shard-0.rank-1 shard-1.rank-0 shard-1.rank-1; do
  [[ -s $scratch/array.jsonl.$part ]] || fail "no part array.jsonl.$part"
done
cat "$scratch"/array-*.out | grep -q "every shard is done; merged" || fail "no task merged"
diff <(without_timing "$scratch/reference.jsonl") <(without_timing "$scratch/array.jsonl") || fail "the array job's output differs"

# SIGUSR1 mid-run (what --signal=B:USR1@120 does before a time limit): stopped, requeued, resumed, merged.
preempted=$(submit preempted "$scratch/preempted.jsonl") || fail "sbatch preempted"
for _ in $(seq 1 1200); do
  [[ $(cat "$scratch"/preempted.jsonl.rank-* 2> /dev/null | wc -l) -ge 4 ]] && break
  sleep 0.05
done
scancel --signal=USR1 --batch "$preempted" || fail "scancel --signal=USR1"
state=$(local_slurm_wait_job "$preempted" 300)
[[ $state == COMPLETED ]] || fail "job $preempted ended $state: $(scontrol show job "$preempted")"
grep -q "requeueing job" "$scratch"/preempted-*.out || fail "not requeued"
scontrol show job "$preempted" | grep -q "Restarts=1" || fail "Restarts is not 1"
grep -Eq "items, [1-9][0-9]* finished by an earlier run" "$scratch"/preempted-*.err || fail "the requeued job did not resume"
diff <(without_timing "$scratch/reference.jsonl") <(without_timing "$scratch/preempted.jsonl") ||
  fail "the resumed job's output differs"
echo "slurm caption: ok (array of 2 shards merged; preempted job requeued and resumed; both equal one process)"
