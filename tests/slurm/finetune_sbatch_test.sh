#!/bin/bash
# slurm/finetune.sbatch on a real single-node Slurm (2 CPUs, 2 tasks, the tiny config): an uninterrupted job, and a
# job sent SIGUSR1 mid-run (`scancel --signal=USR1 --batch`, what --signal=B:USR1@120 does before a time limit)
# that checkpoints, is requeued and resumes to the same metrics as the uninterrupted one.
# Usage: finetune_sbatch_test.sh PLM SOURCE_DIR SCRATCH. Exits 77 (skipped) without root or slurm-wlm.
set -uo pipefail
plm=$1 src=$2 scratch=$3
# shellcheck source=tests/slurm/local_slurm.sh
source "$(dirname "$0")/local_slurm.sh"
local_slurm_test_begin "$scratch"
fail() { echo "FAIL: $*" >&2; for f in "$scratch"/*.out "$scratch"/*.err; do echo "== $f"; cat "$f"; done; exit 1; }
local_slurm_start "$scratch/slurm" 2 || fail "local Slurm did not start"
export PLM_BIN=$plm OMP_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

# CPU settings instead of the script's GPU defaults; -O: tasks may share the 2 CPUs.
submit() {  # submit NAME [overrides...]
  local name=$1
  shift
  sbatch --parsable -O -n 2 --ntasks-per-node=2 -c 1 --gpus-per-task=0 --chdir="$src" -J "$name" \
    --output="$scratch/$name.out" --error="$scratch/$name.err" \
    "$src/slurm/finetune.sbatch" configs/train/tiny-sft.yaml output_dir="$scratch/$name" log_every=1 "$@"
}

whole=$(submit whole steps=40 checkpoint.every=0) || fail "sbatch whole"
[[ $(local_slurm_wait_job "$whole") == COMPLETED ]] || fail "job $whole did not complete"
grep -q "on 2 rank(s)" "$scratch/whole.out" || fail "not a 2-task run"
[[ -e $scratch/whole/final-hf/model.safetensors ]] || fail "no final-hf"

preempted=$(submit preempted steps=40 checkpoint.every=0) || fail "sbatch preempted"
for _ in $(seq 1 600); do grep -q "^step 5/" "$scratch/preempted.out" 2> /dev/null && break; sleep 0.1; done
grep -q "^step 5/" "$scratch/preempted.out" || fail "the preempted job never trained"
scancel --signal=USR1 --batch "$preempted" || fail "scancel --signal=USR1"
state=$(local_slurm_wait_job "$preempted" 600)
[[ $state == COMPLETED ]] || fail "job $preempted ended $state: $(scontrol show job "$preempted")"
grep -q "stop requested: stopped after step" "$scratch/preempted.out" || fail "no checkpoint on SIGUSR1"
grep -q "requeueing job" "$scratch/preempted.out" || fail "not requeued"
grep -q "resumed from" "$scratch/preempted.out" || fail "the requeued job did not resume"
scontrol show job "$preempted" | grep -q "Restarts=1" || fail "Restarts is not 1"
losses() { sed 's/.*"loss":\([0-9.e+-]*\).*/\1/' "$1/metrics.jsonl"; }
[[ "$(losses "$scratch/preempted")" == "$(losses "$scratch/whole")" ]] || fail "the resumed job's losses differ"
cmp "$scratch/preempted/final-hf/model.safetensors" "$scratch/whole/final-hf/model.safetensors" || fail "final weights differ"
echo "slurm finetune: ok (requeued once, same losses and weights)"
