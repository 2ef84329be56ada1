#!/bin/sh
# What one long video does to the other streams under each vision budget: for each --max-media-per-step value,
# starts `plm serve`, runs four text streams with `plm bench serve` while one video request arrives, and prints the
# text streams' inter-token latency (ITL), TPOT and latency and the video's TTFT. Usage, from the repository root:
#   bench/vision_budget.sh BUILD_DIR MODEL_DIR VIDEO [BUDGET ...]     (default budgets: 32 2)
set -eu
build_dir=$1 model_dir=$2 video=$3
shift 3
[ $# -gt 0 ] || set -- 32 2
plm="$build_dir/apps/plm"
scratch=$(mktemp -d /tmp/plm_vision_budget.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
for budget in "$@"; do
  "$plm" serve --model "$model_dir" --port 0 --max-num-seqs 8 --kv-cache-bytes 1G --max-model-len 8192 \
    --max-media-per-step "$budget" --max-video-frames 16 > "$scratch/serve.log" 2>&1 &
  pid=$!
  for _ in $(seq 240); do grep -q "ready on" "$scratch/serve.log" && break; sleep 0.5; done
  url=$(grep -o 'http://[0-9.]*:[0-9]*' "$scratch/serve.log" | head -1)
  [ -n "$url" ] || { cat "$scratch/serve.log"; exit 1; }
  "$plm" bench serve --url "$url" --concurrency 1 --requests 1 --max-tokens 8 > /dev/null  # warm-up
  "$plm" bench serve --url "$url" --concurrency 4 --requests 8 --max-tokens 48 > "$scratch/text.txt" &
  text_pid=$!
  sleep 2
  "$plm" bench serve --url "$url" --concurrency 1 --requests 1 --max-tokens 4 --video "$video" > "$scratch/video.txt"
  wait "$text_pid"
  echo "=== --max-media-per-step $budget: one video during 4 text streams (load average $(cut -d' ' -f1 /proc/loadavg))"
  grep -E "^(tpot|itl|ttft|latency|requests_per_s)" "$scratch/text.txt" | sed 's/^/text  /'
  grep -E "^(ttft|latency)" "$scratch/video.txt" | sed 's/^/video /'
  kill -TERM "$pid"
  wait "$pid" || true
done
