#!/bin/bash
# SIGTERM and kill -9 during `plm train` (issue 18): SIGTERM saves and exits 0; then a run killed while it writes a checkpoint, then killed again and again at
# random moments, and restarted with the same command each time, ends with the uninterrupted run's final weights
# bit for bit and a metrics.jsonl holding every step once with the same losses.
# Usage: plm_train_kill_test.sh PLM SOURCE_DIR SCRATCH
set -eu
plm=$1 src=$2 scratch=$3
rm -rf "$scratch" && mkdir -p "$scratch" && cd "$src"
fail() { echo "FAIL: $*" >&2; exit 1; }
run=(--config configs/train/tiny-sft.yaml steps=10 checkpoint.every=1 checkpoint.keep=2 log_every=1)

"$plm" train "${run[@]}" output_dir="$scratch/whole" > "$scratch/whole.log" 2>&1 || { cat "$scratch/whole.log"; fail "uninterrupted run"; }

out="$scratch/killed"
# SIGTERM (Slurm's time limit, scancel): the step finishes, a checkpoint is saved, the exit status is 0.
"$plm" train "${run[@]}" output_dir="$out" > "$scratch/term.log" 2>&1 &
pid=$!
while ! grep -q "^step " "$scratch/term.log"; do kill -0 "$pid" 2> /dev/null || fail "run ended early"; sleep 0.05; done
kill -TERM "$pid"
wait "$pid" || { cat "$scratch/term.log"; fail "SIGTERM: exit status $?"; }
grep -q "stop requested: stopped after step" "$scratch/term.log" || { cat "$scratch/term.log"; fail "no stop after SIGTERM"; }
[ ! -e "$out/final-hf" ] || fail "SIGTERM run exported final-hf"
compgen -G "$out/checkpoints/step-*" > /dev/null || fail "no checkpoint after SIGTERM"

mid_write=0 kills=0
RANDOM=20261206
for _ in $(seq 1 40); do
  [ -e "$out/final-hf/model.safetensors" ] && break
  "$plm" train "${run[@]}" output_dir="$out" >> "$scratch/killed.log" 2>&1 &
  pid=$!
  if [ "$mid_write" -lt 2 ]; then
    # Wait for a checkpoint being staged (step-XXXXXXXX.tmp-PID) and kill the writer inside it.
    while kill -0 "$pid" 2> /dev/null && ! compgen -G "$out/checkpoints/step-*.tmp-$pid" > /dev/null; do :; done
    if kill -9 "$pid" 2> /dev/null; then mid_write=$((mid_write + 1)); kills=$((kills + 1)); fi
  else
    # Once this run trains (a new progress line), kill it at a random moment of its next steps and saves.
    lines=$(grep -c "^step " "$scratch/killed.log" || true)
    while kill -0 "$pid" 2> /dev/null && [ "$(grep -c "^step " "$scratch/killed.log" || true)" -le "$lines" ]; do
      sleep 0.05
    done
    sleep "$((RANDOM % 2)).$((RANDOM % 10))"
    kill -9 "$pid" 2> /dev/null && kills=$((kills + 1))
  fi
  wait "$pid" || true
done
[ -e "$out/final-hf/model.safetensors" ] || fail "no final-hf after 40 attempts"
echo "killed $kills times ($mid_write inside a checkpoint write)"
[ "$mid_write" -ge 1 ] || fail "no kill landed inside a checkpoint write"
cmp "$out/final-hf/model.safetensors" "$scratch/whole/final-hf/model.safetensors" || fail "final weights differ"
losses() { sed 's/.*"loss":\([0-9.e+-]*\).*/\1/' "$1/metrics.jsonl"; }
[ "$(losses "$out")" = "$(losses "$scratch/whole")" ] || fail "metrics.jsonl losses differ"
! compgen -G "$out/checkpoints/*.tmp-*" > /dev/null || fail "staging directories left behind"
echo "plm train kill -9: ok"
