#!/bin/bash
# One rank of a two-rank job killed with SIGKILL (issue 25): `mpirun -n 2 plm train` while it trains, or
# `mpirun -n 2 plm serve --tp 2` while it streams a reply. The whole job must end within 60 s with a non-zero
# status and a message naming the dead rank and its signal, and no rank of it may live on.
# Usage: rank_kill_test.sh MPIEXEC PLM SOURCE_DIR SCRATCH train|serve VICTIM_RANK
set -u
mpiexec=$1 plm=$2 src=$3 scratch=$4 job=$5 victim=$6
rm -rf "$scratch" && mkdir -p "$scratch" && cd "$src" || exit 1
fail() { echo "FAIL: $*" >&2; cat "$scratch/job.log" >&2; exit 1; }
log="$scratch/job.log"

case $job in
  train) "$mpiexec" -n 2 --oversubscribe "$plm" train --config configs/train/tiny-sft.yaml steps=1000 \
           checkpoint.every=3 log_every=1 output_dir="$scratch/out" > "$log" 2>&1 &
         ready="^step " ;;
  serve) "$mpiexec" -n 2 --oversubscribe "$plm" serve --model tests/fixtures/models/cls_tied --tp 2 --port 0 \
           --kv-cache-bytes 32M > "$log" 2>&1 &
         ready="ready on http" ;;
  *) echo "usage: rank_kill_test.sh MPIEXEC PLM SOURCE_DIR SCRATCH train|serve VICTIM_RANK" >&2; exit 2 ;;
esac
launcher=$!
for _ in $(seq 1 1200); do
  grep -qE "$ready" "$log" && break
  kill -0 "$launcher" 2> /dev/null || fail "the job ended before it was ready"
  sleep 0.1
done
grep -qE "$ready" "$log" || fail "not ready in 120 s"

# The ranks are mpirun's children; each knows its rank from the environment mpirun gives it.
rank_pid() {
  for pid in $(pgrep -P "$launcher"); do
    if tr '\0' '\n' < "/proc/$pid/environ" 2> /dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$1"; then echo "$pid"; fi
  done
}
victim_pid=$(rank_pid "$victim")
other_pid=$(rank_pid $((1 - victim)))
[ -n "$victim_pid" ] && [ -n "$other_pid" ] || fail "cannot find the ranks' processes under mpirun (pid $launcher)"

if [ "$job" = serve ]; then
  # A reply in flight: a long stream that the kill interrupts.
  port=$(sed -n 's/.*ready on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log" | head -1)
  body='{"messages":[{"role":"user","content":"Tell me a long story."}],"max_tokens":4000,"stream":true}'
  exec 3<> "/dev/tcp/127.0.0.1/$port" || fail "cannot connect to port $port"
  printf 'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s' \
    "${#body}" "$body" >&3
  timeout 60 grep -q -m1 '"content":"[^"]' <&3 || fail "no streamed token before the kill"
fi
RANDOM=$$
sleep "0.$((RANDOM % 10))"
start=$(date +%s)
kill -9 "$victim_pid"
deadline=$((start + 60))
while kill -0 "$launcher" 2> /dev/null && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.1; done
kill -0 "$launcher" 2> /dev/null && { kill -9 "$launcher" "$other_pid"; fail "the job still runs 60 s after rank $victim died"; }
wait "$launcher"
code=$?
# mpirun may return while the other rank it signalled is still exiting: give it the rest of the 60 s.
alive() { [ -e "/proc/$1" ] && ! grep -q '^[0-9]* ([^)]*) Z' "/proc/$1/stat" 2> /dev/null; }
while alive "$other_pid" && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.1; done
alive "$other_pid" && { kill -9 "$other_pid"; fail "rank $((1 - victim)) (pid $other_pid) still runs 60 s after rank $victim died"; }
elapsed=$(($(date +%s) - start))
[ "$code" -ne 0 ] || fail "mpirun exited with status 0"
grep -qE "process rank $victim with PID [0-9]+ on node .* exited on signal 9" "$log" || fail "no message naming rank $victim"
echo "plm $job: rank $victim killed; mpirun exited with status $code, both ranks gone within ${elapsed} s:"
grep -E "exited on signal|aborted|plm rank" "$log"
