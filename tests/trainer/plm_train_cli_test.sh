#!/bin/bash
# `plm train` end to end under mpirun -n 2 (issue 18): the tiny config trains (the loss falls), final-hf generates
# with `plm generate`, `plm convert` of the last checkpoint gives the same weights, layout.tp=2 gives one rank's
# losses and a final-hf that generates (issue 20), dtype=bf16 trains within bf16 noise of f32 (issue 23), and bad
# configs / data are errors naming the problem.
# Usage: plm_train_cli_test.sh PLM MPIEXEC SOURCE_DIR SCRATCH
set -eu
plm=$1 mpiexec=$2 src=$3 scratch=$4
rm -rf "$scratch" && mkdir -p "$scratch" && cd "$src"
fail() { echo "FAIL: $*" >&2; exit 1; }

out="$scratch/run"
"$mpiexec" -n 2 --oversubscribe "$plm" train --config configs/train/tiny-sft.yaml output_dir="$out" steps=12 \
  checkpoint.every=6 log_every=4 > "$scratch/train.log" 2>&1 || { cat "$scratch/train.log"; fail "mpirun -n 2 plm train"; }
cat "$scratch/train.log"
grep -q "on 2 rank(s)" "$scratch/train.log" || fail "not a 2-rank run"
[ "$(wc -l < "$out/metrics.jsonl")" -eq 12 ] || fail "metrics.jsonl should have 12 lines"
first=$(head -1 "$out/metrics.jsonl" | sed 's/.*"loss":\([0-9.e+-]*\).*/\1/')
last=$(tail -1 "$out/metrics.jsonl" | sed 's/.*"loss":\([0-9.e+-]*\).*/\1/')
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a - 1.0) }' || fail "loss did not fall: $first -> $last"
for f in metrics.png tb final-hf/model.safetensors final-hf/config.json final-hf/tokenizer.json checkpoints/step-00000012/COMPLETE; do
  [ -e "$out/$f" ] || fail "missing $out/$f"
done
# One rank trains the same run: the same losses (the DP sums differ only in order).
"$plm" train --config configs/train/tiny-sft.yaml output_dir="$scratch/one" steps=12 checkpoint.every=0 > /dev/null 2>&1 \
  || fail "single-rank run"
losses() { sed 's/.*"loss":\([0-9.e+-]*\).*/\1/' "$1/metrics.jsonl"; }
paste -d' ' <(losses "$out") <(losses "$scratch/one") | awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > 1e-5 * $2) { print "step " NR ": " $1 " vs " $2; bad = 1 } } END { exit bad }' \
  || fail "mpirun -n 2 losses differ from one rank's"
# dtype=bf16 (the CPU bf16 compute mode): the same run within bf16 noise of f32 (2 % per step), not identical.
"$plm" train --config configs/train/tiny-sft.yaml output_dir="$scratch/bf16" steps=12 checkpoint.every=0 dtype=bf16 \
  > "$scratch/bf16.log" 2>&1 || { cat "$scratch/bf16.log"; fail "plm train dtype=bf16"; }
paste -d' ' <(losses "$scratch/bf16") <(losses "$scratch/one") \
  | awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > 2e-2 * $2) { print "step " NR ": " $1 " vs " $2; bad = 1 }; if (d > 0) differ = 1 } END { exit bad || !differ }' \
  || fail "dtype=bf16 losses are not within 2 % of f32's (or equal them: the mode is off)"
# The same for a LoRA run: the frozen base's and the adapters' GEMMs compute in bf16 too.
for dtype in f32 bf16; do
  "$plm" train --config configs/train/tiny-sft.yaml output_dir="$scratch/lora_$dtype" steps=6 checkpoint.every=0 \
    lora.rank=4 dtype=$dtype > "$scratch/lora_$dtype.log" 2>&1 || { cat "$scratch/lora_$dtype.log"; fail "LoRA dtype=$dtype"; }
done
paste -d' ' <(losses "$scratch/lora_bf16") <(losses "$scratch/lora_f32") \
  | awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > 2e-2 * $2) { print "step " NR ": " $1 " vs " $2; bad = 1 }; if (d > 0) differ = 1 } END { exit bad || !differ }' \
  || fail "LoRA dtype=bf16 losses are not within 2 % of f32's (or equal them)"
# Tensor parallelism: mpirun -n 2 with layout.tp=2 trains the same run (TP sums in another order).
"$mpiexec" -n 2 --oversubscribe "$plm" train --config configs/train/tiny-sft.yaml output_dir="$scratch/tp2" steps=12 \
  checkpoint.every=0 layout.tp=2 > "$scratch/tp2.log" 2>&1 \
  || { cat "$scratch/tp2.log"; fail "mpirun -n 2 plm train layout.tp=2"; }
grep -q "(tp 2 x pp 1 x dp 1)" "$scratch/tp2.log" || fail "not a TP=2 run"
same_losses() {  # same_losses DIR_A DIR_B: per step within 1e-5 relative
  paste -d' ' <(losses "$1") <(losses "$2") \
    | awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > 1e-5 * $2) { print "step " NR ": " $1 " vs " $2; bad = 1 } } END { exit bad }'
}
same_losses "$scratch/tp2" "$scratch/one" || fail "layout.tp=2 losses differ from one rank's"
# Pipeline parallelism: mpirun -n 2 with layout.pp=2 (1F1B over the step's 4 micro-batches) trains the same run.
"$mpiexec" -n 2 --oversubscribe "$plm" train --config configs/train/tiny-sft.yaml output_dir="$scratch/pp2" steps=12 \
  checkpoint.every=0 layout.pp=2 > "$scratch/pp2.log" 2>&1 \
  || { cat "$scratch/pp2.log"; fail "mpirun -n 2 plm train layout.pp=2"; }
grep -q "(tp 1 x pp 2 x dp 1)" "$scratch/pp2.log" || fail "not a PP=2 run"
same_losses "$scratch/pp2" "$scratch/one" || fail "layout.pp=2 losses differ from one rank's"
"$plm" generate --model "$scratch/tp2/final-hf" --prompt "What is in the picture?" \
  --image tests/fixtures/training/sft/media/image_150x100.png --max-new-tokens 4 > "$scratch/generate_tp2.log" 2>&1 \
  || { cat "$scratch/generate_tp2.log"; fail "plm generate on the TP=2 run's final-hf"; }
"$plm" generate --model "$out/final-hf" --prompt "What is in the picture?" \
  --image tests/fixtures/training/sft/media/image_150x100.png --max-new-tokens 4 > "$scratch/generate.log" 2>&1 \
  || { cat "$scratch/generate.log"; fail "plm generate on final-hf"; }
"$plm" convert --checkpoint "$out" --to-hf "$scratch/converted" > /dev/null || fail "plm convert"
cmp "$scratch/converted/model.safetensors" "$out/final-hf/model.safetensors" || fail "convert differs from final-hf"

# Bad configs and data: exit 1 with a message naming the key / line.
expect_error() {  # expect_error PATTERN ARGS...
  pattern=$1; shift
  if "$plm" train "$@" > "$scratch/err.log" 2>&1; then fail "accepted: $*"; fi
  grep -q -- "$pattern" "$scratch/err.log" || { cat "$scratch/err.log"; fail "no '$pattern' for: $*"; }
}
expect_error "optimizer.lrr" --config configs/train/tiny-sft.yaml output_dir="$scratch/bad" optimizer.lrr=1
expect_error "world size (1) is not divisible by layout.tp(2)" --config configs/train/tiny-sft.yaml \
  output_dir="$scratch/bad" layout.tp=2
expect_error "batch.global" --config configs/train/tiny-sft.yaml output_dir="$scratch/bad" batch.global=3 batch.micro=2
expect_error "steps" --config configs/train/tiny-sft.yaml output_dir="$scratch/bad" steps=abc
expect_error "nope.yaml" --config "$scratch/nope.yaml"
printf '%s\n' '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}' \
  '{"messages": [{"role": "user", "content": "no answer"}]}' > "$scratch/bad.jsonl"
expect_error "bad.jsonl:2" --config configs/train/tiny-sft.yaml output_dir="$scratch/bad" data.train="$scratch/bad.jsonl"
echo "plm train CLI: ok"
