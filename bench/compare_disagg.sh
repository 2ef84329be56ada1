#!/usr/bin/env bash
# Co-located vs disaggregated `plm serve` on one model under mixed image / video / text load, in phases: for each
# layout, start the server, run `plm bench serve --mix M` once per phase against it (one JSON line each), after each
# phase print the last pool report's suggested split and, from rank 0's /metrics, the ranks per pool and the role
# switches (--rebalance), then stop the server. serve/README.md ("Disaggregated serving: results") has numbers.
# usage: bench/compare_disagg.sh [MODEL_DIR]
# env: REQUESTS (48 per phase), CONCURRENCY (8), MAX_TOKENS (16), PHASES (MIX[:REQUESTS] ..., space-separated;
#      default "image,video,text"; e.g. "image,image,video text:200": image-heavy, then 200 text-only), LAYOUTS (default
#      "colocated e1d1 e2d1"; also e2d2, e1d3, e2d2_rebalance, e1d3_rebalance), INTERVAL (--pool-stats-interval, 2),
#      WINDOWS (--rebalance-windows, 3), ENCODER_CACHE (512M; `plm bench serve` sends one image and one video
#      throughout, so with the cache on the tower runs once per server: 0 prices every request's media), PLM
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
plm=${PLM:-$root/build/apps/plm}
model=${1:-$root/tests/fixtures/models/cls_tied}
inputs=$root/tests/fixtures/models/inputs
requests=${REQUESTS:-48}
concurrency=${CONCURRENCY:-8}
max_tokens=${MAX_TOKENS:-16}
read -r -a phases <<<"${PHASES:-image,video,text}"
read -r -a layouts <<<"${LAYOUTS:-colocated e1d1 e2d1}"
interval=${INTERVAL:-2}
windows=${WINDOWS:-3}
encoder_cache=${ENCODER_CACHE:-512M}
mpi=(mpirun --allow-run-as-root --oversubscribe -x OMP_NUM_THREADS=1)
export OMP_NUM_THREADS=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# metric BODY NAME: the sample's value ("-" when absent).
metric() { grep -E "^$2 " <<<"$1" | awk '{print $2}' | head -1 || true; }

# run NAME COMMAND...: serve, load phase by phase, report, stop.
run() {
  local name=$1; shift
  local log=$work/$name.log
  "$@" --model "$model" --port 0 --kv-cache-bytes 64M --max-num-seqs 16 --max-model-len 4096 \
    --encoder-cache-bytes "$encoder_cache" --pool-stats-interval "$interval" >"$log" 2>&1 &
  local pid=$!
  local ready=""
  for _ in $(seq 3000); do
    # Rank 0's front: a co-located server's only ready line, or decoder replica 0's.
    ready=$(grep -E 'ready on http://[0-9.]+:[0-9]+ \(pid [0-9]+,' "$log" | grep -vE 'decoder replica [1-9]' | head -1 || true)
    [ -n "$ready" ] && break
    sleep 0.1
  done
  [ -n "$ready" ] || { cat "$log"; kill "$pid"; return 1; }
  local port
  port=$(grep -oE 'http://[0-9.]+:[0-9]+' <<<"$ready" | grep -oE '[0-9]+$')
  local phase mix count start result
  for phase in "${phases[@]}"; do
    IFS=: read -r mix count <<<"$phase"
    start=$(wc -l <"$log")
    result=$("$plm" bench serve --url "http://127.0.0.1:$port" --concurrency "$concurrency" --requests "${count:-$requests}" \
      --max-tokens "$max_tokens" --image "$inputs/image_150x100.png" --video "$inputs/video_64x48_4f.mp4" --mix "$mix" | tail -1)
    echo "$name [$phase]: $result"
    sleep "$interval"; sleep 0.5  # the phase's last pool report
    local body
    body=$(curl -s "http://127.0.0.1:$port/metrics" || true)
    grep -q plm_disagg_pool_ranks <<<"$body" || { echo "$name [$phase]: load $(cut -d' ' -f1-3 /proc/loadavg)"; continue; }
    grep 'suggested split' "$log" | tail -1 | sed "s/^/$name [$phase]: last report: /" || true
    # The suggestion of each window of the phase, in order, runs counted: "3:1 x4, 1:3 x1".
    echo "$name [$phase]: suggested E:D per window: $(tail -n +"$((start + 1))" "$log" |
      grep -oE 'suggested split [0-9]+ encoder : [0-9]+' | awk '{print $3 ":" $6}' | uniq -c |
      awk '{printf "%s%s x%d", (NR > 1 ? ", " : ""), $2, $1}')"
    echo "$name [$phase]: pools now $(metric "$body" 'plm_disagg_pool_ranks\{pool="encoder"\}') encoder :" \
      "$(metric "$body" 'plm_disagg_pool_ranks\{pool="decoder"\}') decoder ranks," \
      "role switches $(metric "$body" plm_disagg_role_switches_total), load $(cut -d' ' -f1-3 /proc/loadavg)"
  done
  grep -E 'rebalance:' "$log" | sed "s/^/$name: /" || true
  # Every front drains on its own SIGTERM (under --rebalance the others ignore it and rank 0 ends them).
  local front
  grep -oE 'ready on http://[0-9.]+:[0-9]+ \(pid [0-9]+,' "$log" | grep -oE 'pid [0-9]+' | grep -oE '[0-9]+' |
    while read -r front; do kill -TERM "$front" 2>/dev/null || true; done
  wait "$pid" || true
}

disagg=("$plm" serve --disaggregate)
for layout in "${layouts[@]}"; do
  case $layout in
    colocated) run colocated_1rank "$plm" serve ;;
    e1d1) run disagg_1enc_1dec "${mpi[@]}" -n 2 "${disagg[@]}" --encoder-ranks 1 --decoder-ranks 1 ;;
    e2d1) run disagg_2enc_1dec "${mpi[@]}" -n 3 "${disagg[@]}" --encoder-ranks 2 --decoder-ranks 1 ;;
    e2d2) run disagg_2enc_2dec "${mpi[@]}" -n 4 "${disagg[@]}" --encoder-ranks 2 --decoder-ranks 2 ;;
    e1d3) run disagg_1enc_3dec "${mpi[@]}" -n 4 "${disagg[@]}" --encoder-ranks 1 --decoder-ranks 3 ;;
    e2d2_rebalance)
      run disagg_2enc_2dec_rebalance "${mpi[@]}" -n 4 "${disagg[@]}" --encoder-ranks 2 --decoder-ranks 2 \
        --rebalance --rebalance-windows "$windows" ;;
    e1d3_rebalance)
      run disagg_1enc_3dec_rebalance "${mpi[@]}" -n 4 "${disagg[@]}" --encoder-ranks 1 --decoder-ranks 3 \
        --rebalance --rebalance-windows "$windows" ;;
    *) echo "unknown layout $layout" >&2; exit 2 ;;
  esac
done
