#!/usr/bin/env bash
# Co-located vs disaggregated `plm serve` on one model under a mixed image / video / text load: for each layout,
# start the server, run `plm bench serve --mix image,video,text`, print its JSON line and the last pool report
# (suggested split), and stop the server (bench/README.md has the numbers).
# usage: bench/compare_disagg.sh [MODEL_DIR]    env: REQUESTS (48), CONCURRENCY (8), MAX_TOKENS (16), MIX, PLM
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
plm=${PLM:-$root/build/apps/plm}
model=${1:-$root/tests/fixtures/models/cls_tied}
inputs=$root/tests/fixtures/models/inputs
requests=${REQUESTS:-48}
concurrency=${CONCURRENCY:-8}
max_tokens=${MAX_TOKENS:-16}
mix=${MIX:-image,video,text}
mpi=(mpirun --allow-run-as-root --oversubscribe -x OMP_NUM_THREADS=1)
export OMP_NUM_THREADS=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# run NAME COMMAND...: serve, load, report, stop.
run() {
  local name=$1; shift
  local log=$work/$name.log
  "$@" --model "$model" --port 0 --kv-cache-bytes 64M --max-num-seqs 16 --max-model-len 2048 \
    --pool-stats-interval 2 >"$log" 2>&1 &
  local pid=$!
  local port=""
  for _ in $(seq 600); do
    port=$(grep -oE 'ready on http://[0-9.]+:[0-9]+' "$log" | grep -oE '[0-9]+$' || true)
    [ -n "$port" ] && break
    sleep 0.1
  done
  [ -n "$port" ] || { cat "$log"; kill "$pid"; return 1; }
  local result
  result=$("$plm" bench serve --url "http://127.0.0.1:$port" --concurrency "$concurrency" --requests "$requests" \
    --max-tokens "$max_tokens" --image "$inputs/image_150x100.png" --video "$inputs/video_64x48_4f.mp4" --mix "$mix" | tail -1)
  echo "$name: $result"
  sleep 2.5
  grep 'suggested split' "$log" | tail -1 | sed "s/^/$name: /" || true
  kill -TERM "$(grep -oE '\(pid [0-9]+,' "$log" | grep -oE '[0-9]+')"
  wait "$pid" || true
}

# --pool-stats-interval only matters with --disaggregate.
run colocated_1rank "$plm" serve
run disagg_1enc_1dec "${mpi[@]}" -n 2 "$plm" serve --disaggregate --encoder-ranks 1 --decoder-ranks 1
run disagg_2enc_1dec "${mpi[@]}" -n 3 "$plm" serve --disaggregate --encoder-ranks 2 --decoder-ranks 1
