#!/usr/bin/env bash
# plm data synth and plm plot from the command line: what they write and print, and their errors.
# Usage: plm_synth_plot_cli_test.sh PLM SCRATCH_DIR
set -euo pipefail
plm=$1
scratch=$2
fail() { echo "FAIL: $*"; exit 1; }
rm -rf "$scratch"
mkdir -p "$scratch"
cd "$scratch"

out=$("$plm" data synth --out shapes --images 10 --videos 10 --seed 4 --size 48 --frames 6)
echo "$out"
grep -q "shapes/train.jsonl: 8 images, 8 videos" <<< "$out" || fail "no train summary"
grep -q "shapes/test.jsonl: 1 images, 1 videos" <<< "$out" || fail "no test summary"
[[ $(ls shapes/images | wc -l) -eq 10 && $(ls shapes/videos | wc -l) -eq 10 ]] || fail "not 10 images and 10 videos"
"$plm" data synth --out again --images 10 --videos 10 --seed 4 --size 48 --frames 6 > /dev/null
diff -r shapes again > /dev/null || fail "the same seed wrote other bytes"
if err=$("$plm" data synth --out bad --images 2 --size 33 2>&1); then fail "an odd size was accepted"; fi
grep -q "plm data synth: size 33 must be even" <<< "$err" || fail "unexpected error: $err"

printf '%s\n' '{"step": 1, "loss": 3.0, "grad_norm": 1.0, "lr": 0.001, "tokens_per_s": 100}' \
              '{"step": 2, "loss": 2.0, "grad_norm": 0.8, "lr": 0.002, "tokens_per_s": 120}' > metrics.jsonl
out=$("$plm" plot metrics.jsonl --out plots)
echo "$out"
grep -q "metrics.jsonl: 2 steps (1 to 2)" <<< "$out" || fail "no plot summary"
for png in metrics loss lr grad_norm tokens_per_s; do
  [[ $(head -c 8 "plots/$png.png" | od -An -tx1 | tr -d ' \n') == 89504e470d0a1a0a ]] || fail "plots/$png.png is not a PNG"
done
echo '{"no": "step"}' > bad.jsonl
if err=$("$plm" plot bad.jsonl --out plots 2>&1); then fail "a bad metrics file was accepted"; fi
grep -q "plm plot: bad.jsonl:1: not a metrics line" <<< "$err" || fail "unexpected error: $err"
echo PASS
