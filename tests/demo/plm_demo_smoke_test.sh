#!/usr/bin/env bash
# plm demo end to end at its smallest budget (--minutes 2), run from a folder outside the source tree: every
# stage runs and leaves its files (plm caption's captions of every test clip among them), the summary is printed;
# a folder that is not a demo's is refused.
# Usage: plm_demo_smoke_test.sh PLM SCRATCH_DIR
set -euo pipefail
plm=$1
scratch=$2
rm -rf "$scratch"
mkdir -p "$scratch/cwd"
cd "$scratch/cwd"

start=$(date +%s)
if ! out=$("$plm" demo --out demo-run --minutes 2 2>&1); then
  echo "$out"
  echo "FAIL: plm demo exited non-zero"
  exit 1
fi
echo "$out"
echo "plm demo took $(( $(date +%s) - start )) s"

fail() { echo "FAIL: $*"; exit 1; }
for stage in "\[1/7\] data" "\[2/7\] model" "\[3/7\] training: .* data parallel over 2 ranks" "\[4/7\] plots" \
             "\[5/7\] serving" "\[6/7\] asking" "\[7/7\] captions: plm caption on the [0-9]+ held-out clips" \
             "accuracy of the answers on [0-9]+ held-out pictures and [0-9]+ held-out clips" \
             "accuracy of the captions on [0-9]+ held-out clips" "^captions .*captions/captions.jsonl" \
             "  shape .*chance 33.3%" "  colour .*chance 20.0%" "  position .*chance 25.0%" "  motion .*chance 25.0%"; do
  grep -Eq "$stage" <<< "$out" || fail "no line matching '$stage'"
done
for file in data/train.jsonl data/validation.jsonl data/test.jsonl model-init/model.safetensors \
            train/metrics.jsonl train/final-hf/model.safetensors train/final-hf/tokenizer.json \
            plots/metrics.png plots/loss.png plots/lr.png plots/grad_norm.png plots/tokens_per_s.png \
            predictions.jsonl captions/inputs.jsonl captions/captions.jsonl logs/train.log logs/serve.log \
            logs/caption.log; do
  [[ -s demo-run/$file ]] || fail "demo-run/$file is missing or empty"
done
for png in demo-run/plots/*.png; do
  [[ $(head -c 8 "$png" | od -An -tx1 | tr -d ' \n') == 89504e470d0a1a0a ]] || fail "$png is not a PNG"
done
[[ $(wc -l < demo-run/predictions.jsonl) -eq $(wc -l < demo-run/data/test.jsonl) ]] ||
  fail "predictions.jsonl does not answer every test example"
num_test_clips=$(grep -c '"kind":"video"' demo-run/data/test.jsonl)
[[ $(wc -l < demo-run/captions/captions.jsonl) -eq $num_test_clips ]] ||
  fail "captions.jsonl does not caption every test clip ($num_test_clips)"
grep -q '"error"' demo-run/captions/captions.jsonl && fail "plm caption failed on a clip"
grep -q "on 2 rank(s)" demo-run/logs/train.log || fail "training did not run on 2 ranks"

mkdir other
touch other/keep
if refused=$("$plm" demo --out other --minutes 1 2>&1); then fail "plm demo wrote into a folder that is not a demo's"; fi
grep -q "is not an earlier plm demo's folder" <<< "$refused" || fail "unexpected refusal: $refused"
[[ -f other/keep ]] || fail "the refused folder was changed"
echo PASS
