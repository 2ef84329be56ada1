#!/bin/bash
# slurm/serve.sbatch on a real single-node Slurm (2 CPUs, the tiny model): a 2-task job announces both servers'
# URLs, each answers a chat completion, and `scancel` stops it (SIGTERM: both servers drain and exit 0); then a
# 1-task job stopped with `scancel --signal=TERM` while a streamed reply is in flight finishes that reply, exits 0
# and ends COMPLETED. Requests go over bash's /dev/tcp (no curl needed).
# Usage: serve_sbatch_test.sh PLM SOURCE_DIR SCRATCH. Exits 77 (skipped) without root or slurm-wlm.
set -uo pipefail
plm=$1 src=$2 scratch=$3
if [[ $(id -u) -ne 0 ]] || ! command -v slurmctld > /dev/null || ! command -v munged > /dev/null; then
  echo "skipped: needs root, slurm-wlm and munge (scripts/install-deps.sh installs them)"
  exit 77
fi
fail() { echo "FAIL: $*" >&2; for f in "$scratch"/*.out "$scratch"/*.err "$scratch"/*.http; do echo "== $f"; cat "$f"; done; exit 1; }
rm -rf "$scratch" && mkdir -p "$scratch"
# shellcheck source=tests/slurm/local_slurm.sh
source "$(dirname "$0")/local_slurm.sh"
trap 'local_slurm_stop "$scratch/slurm"' EXIT
local_slurm_start "$scratch/slurm" 2 || fail "local Slurm did not start"
export PLM_BIN=$plm OMP_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export PLM_SERVE_PORT=$((40000 + ($$ % 1000) * 4))

submit() {  # submit NAME TASKS: the tiny model on CPU tasks sharing the 2 CPUs (-O)
  PLM_SERVE_URLS=$scratch/$1.urls sbatch --parsable -O -n "$2" --ntasks-per-node="$2" -c 1 --gpus-per-task=0 \
    --chdir="$src" -J "$1" --output="$scratch/$1.out" --error="$scratch/$1.err" \
    "$src/slurm/serve.sbatch" tests/fixtures/models/cls_tied --max-num-seqs 4
}
wait_urls() {  # wait_urls NAME JOB COUNT: until the job has announced COUNT servers (2 minutes at most)
  for _ in $(seq 1 1200); do
    [[ -e $scratch/$1.urls && $(wc -l < "$scratch/$1.urls") -ge $3 ]] && return 0
    sleep 0.1
  done
  fail "job $1 announced $(wc -l < "$scratch/$1.urls" 2> /dev/null) of $3 URLs: $(scontrol show job "$2")"
}
post() {  # post URL PATH JSON: the raw HTTP response on stdout
  local hostport=${1#http://} fd
  exec {fd}<> "/dev/tcp/${hostport%:*}/${hostport##*:}" || return 1
  printf 'POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' \
    "$2" "$hostport" "${#3}" "$3" >&"$fd"
  cat <&"$fd"
  exec {fd}<&-
}
chat() {  # chat MAX_TOKENS STREAM
  echo "{\"model\": \"cls_tied\", \"max_tokens\": $1, \"stream\": $2, \"messages\": [{\"role\": \"user\", \"content\": \"Describe a cat.\"}]}"
}

# Two servers, a request to each, then scancel.
pair=$(submit pair 2) || fail "sbatch pair"
wait_urls pair "$pair" 2
while read -r url; do
  post "$url" /v1/chat/completions "$(chat 8 false)" > "$scratch/pair-${url##*:}.http" || fail "no connection to $url"
  grep -q "^HTTP/1.1 200" "$scratch/pair-${url##*:}.http" || fail "$url did not answer 200"
  grep -q '"choices"' "$scratch/pair-${url##*:}.http" || fail "$url's reply has no choices"
done < "$scratch/pair.urls"
grep -q "serve.sbatch: task 0 ready on http://" "$scratch/pair.out" || fail "task 0 did not print its URL"
grep -q "serve.sbatch: task 1 ready on http://" "$scratch/pair.out" || fail "task 1 did not print its URL"
scancel "$pair" || fail "scancel"
[[ $(local_slurm_wait_job "$pair" 60) == CANCELLED ]] || fail "job $pair was not cancelled"
for _ in $(seq 1 100); do grep -q "servers exited" "$scratch/pair.out" && break; sleep 0.1; done
[[ $(grep -c "plm serve: drained; exiting" "$scratch/pair.out") -eq 2 ]] || fail "not both servers drained"
grep -q "serve.sbatch: the servers exited with status 0" "$scratch/pair.out" || fail "the servers did not exit 0"

# One server, stopped by SIGTERM while it streams a reply: the reply finishes and the job completes.
single=$(submit single 1) || fail "sbatch single"
wait_urls single "$single" 1
url=$(head -n 1 "$scratch/single.urls")
post "$url" /v1/chat/completions "$(chat 400 true)" > "$scratch/single-stream.http" &
streaming=$!
for _ in $(seq 1 600); do grep -q "^data: " "$scratch/single-stream.http" && break; sleep 0.05; done
grep -q "^data: " "$scratch/single-stream.http" || fail "the streamed reply never started"
scancel --signal=TERM "$single" || fail "scancel --signal=TERM"
wait "$streaming"
grep -q "^data: \[DONE\]" "$scratch/single-stream.http" || fail "the reply in flight was cut"
[[ $(local_slurm_wait_job "$single" 60) == COMPLETED ]] || fail "job $single did not complete: $(scontrol show job "$single")"
scontrol show job "$single" | grep -q "ExitCode=0:0" || fail "job $single exit code: $(scontrol show job "$single")"
grep -q "signal 15: draining 1 requests in flight" "$scratch/single.out" || fail "the server did not drain a request"
grep -q "plm serve: drained; exiting" "$scratch/single.out" || fail "the server did not exit after draining"
echo "slurm serve: ok (2 servers answered and were cancelled; a streamed reply finished during the drain, exit 0)"
