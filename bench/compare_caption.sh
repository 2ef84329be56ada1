#!/bin/sh
# The caption benchmark: synthetic videos (bench/make_caption_videos.py), then on the same videos, one run after
# the other (never together): plm's decode and preprocessing alone (plm bench preprocess), plm caption with 1 new
# token (vision + prefill only) and with MAX_NEW_TOKENS at each rank count, and HF transformers batched generate
# (bench/hf_caption_bench.py, f32 and bf16; HF_DTYPES picks). Prints each run's summary and the plm / HF ratio. From the repository root:
#   bench/compare_caption.sh BUILD_DIR MODEL_DIR [VIDEOS=16] [FRAMES=8] [MAX_NEW_TOKENS=32] [RANKS="1 2"] [HF_BATCH=8]
# MODEL_DIR needs a tokenizer (a make-random-model directory: copy tokenizer.json, tokenizer_config.json and
# chat_template.jinja in from tests/fixtures/models/cls_tied).
# Threads: every plm rank and HF get OMP_NUM_THREADS (default 1) threads; on this 2-core machine 2 ranks x 1 thread.
set -eu
build_dir=$1 model_dir=$2
videos=${3:-16} frames=${4:-8} new_tokens=${5:-32} ranks=${6:-"1 2"} hf_batch=${7:-8}
python=${PLM_REF_PYTHON:-/work/venv-ref/bin/python}
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
work=$(mktemp -d /tmp/plm_caption_bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
plm=$build_dir/apps/plm
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); OMP_NUM_THREADS=$OMP_NUM_THREADS"
# The frame size: processor_config.json's video_processor (transformers 5.x layout) or video_preprocessor_config.json (hub).
size=$("$python" -c "import json, os; d = '$model_dir'; p = json.load(open(os.path.join(d, 'processor_config.json')))
v = p['video_processor'] if 'video_processor' in p else json.load(open(os.path.join(d, 'video_preprocessor_config.json')))
print(v['size']['height'])")
"$python" bench/make_caption_videos.py --out "$work/videos" --videos "$videos" --frames $((frames * 2)) --size 320x240
"$plm" bench preprocess --video "$work/videos/video_0000.mp4" --num-frames "$frames" --tile-size "$size" --runs 3
caption() {  # RANKS NEW_TOKENS OUT
  launch=""
  if [ "$1" -gt 1 ]; then
    launch="mpirun -n $1 --oversubscribe --allow-run-as-root -x OMP_NUM_THREADS"
  fi
  $launch "$plm" caption --model "$model_dir" --inputs "$work/videos/list.txt" --out "$3" --num-frames "$frames" \
    --max-new-tokens "$2" --max-num-seqs 8 --prefetch 8 --decode-threads 1 --kv-cache-bytes 512M 2>&1 | grep -v '^caption '
}
for n in $ranks; do
  echo; echo "== plm caption, $n rank(s), 1 new token (vision + prefill)"
  caption "$n" 1 "$work/prefill_$n.jsonl"
  echo; echo "== plm caption, $n rank(s), $new_tokens new tokens"
  caption "$n" "$new_tokens" "$work/full_$n.jsonl"
done
for dtype in ${HF_DTYPES:-float32 bfloat16}; do
  echo; echo "== HF transformers $("$python" -c 'import transformers; print(transformers.__version__)') $dtype, batch $hf_batch"
  "$python" bench/hf_caption_bench.py --model "$model_dir" --inputs "$work/videos/list.txt" --num-frames "$frames" \
    --max-new-tokens "$new_tokens" --batch "$hf_batch" --threads "$OMP_NUM_THREADS" --dtype "$dtype" \
    --plm-output "$work/full_$(echo "$ranks" | cut -d' ' -f1).jsonl" 2>&1 | grep -v '^\[transformers\]'
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
