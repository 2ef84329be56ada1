#!/bin/sh
# Serving throughput against HF transformers in one run: starts `plm serve` on the model directory (a free
# loopback port), loads it with `plm bench serve` (streaming chat requests, the same prompt every time), stops it,
# then answers the same requests with HF `generate` in batches of the concurrency (bench/hf_serve_baseline.py,
# f32 and bf16) and prints the plm / HF ratios. Usage, from the repository root:
#   bench/compare_serve.sh BUILD_DIR MODEL_DIR [--concurrency C] [--requests R] [--max-tokens N] [--prompt TEXT]
#       [--image F] [-- plm serve options, e.g. --max-num-seqs 64 --kv-cache-bytes 1G]
# The reference Python is $PLM_REF_PYTHON (default .venv-ref/bin/python, tools/reference/README.md). Threads: set
# OMP_NUM_THREADS for both sides (plm's OpenMP and torch's intra-op pool read it).
set -eu
build_dir=$1 model_dir=$2
shift 2
load_args=""
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
  load_args="$load_args '$(printf '%s' "$1" | sed "s/'/'\\\\''/g")'"
  shift
done
[ $# -gt 0 ] && shift  # the "--"
python=${PLM_REF_PYTHON:-.venv-ref/bin/python}
scratch=$(mktemp -d /tmp/plm_compare_serve.XXXXXX)
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2> /dev/null
  rm -rf "$scratch"
}
trap cleanup EXIT

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
"$build_dir/apps/plm" serve --model "$model_dir" --port 0 "$@" > "$scratch/serve.log" 2>&1 &
server_pid=$!
url=""
for _ in $(seq 600); do
  url=$(grep -o 'ready on http://[0-9.]*:[0-9]*' "$scratch/serve.log" | cut -d' ' -f3) || true
  [ -n "$url" ] && break
  kill -0 "$server_pid" 2> /dev/null || { cat "$scratch/serve.log"; exit 1; }
  sleep 0.5
done
[ -n "$url" ] || { echo "plm serve did not get ready"; cat "$scratch/serve.log"; exit 1; }
eval "set -- $load_args"
"$build_dir/apps/plm" bench serve --url "$url" "$@" | tee "$scratch/plm.txt"
grep -q '^{' "$scratch/plm.txt" || { echo "plm bench serve failed"; exit 1; }
curl -s "$url/metrics" | grep -E '^plm_engine_(steps_total|step_seconds_total)' || true
kill -TERM "$server_pid"
wait "$server_pid" || true
server_pid=""
echo
# plm bench serve's options that HF's baseline shares (--video is not part of the baseline).
"$python" bench/hf_serve_baseline.py --model "$model_dir" "$@" --plm-result "$scratch/plm.txt"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
