#!/bin/sh
# Runs comm_fault_probe MODE on 2 ranks and requires the job to fail with each rank's own report (rank id and
# reason), never a rank's "finished" line. Usage: comm_fault_test.sh MPIEXEC PROBE MODE (PLM_COMM_TIMEOUT_S=5).
#   mismatch  both ranks print the disagreement, each naming itself
#   hang      both ranks' watchdogs name their own stalled operation: rank 0 its all-reduce, rank 1 its recv
#   die       rank 1 is SIGKILLed and cannot speak: mpirun's notice names it and the signal; rank 0 is then
#             killed by mpirun (its fail-fast), so it has no line of its own and must not finish
set -u
mpiexec=$1
probe=$2
mode=$3
out=$("$mpiexec" -n 2 --oversubscribe "$probe" "$mode" 2>&1)
code=$?
echo "$out"
failures=0
require() {  # require DESCRIPTION EXTENDED_REGEX
  if echo "$out" | grep -qE "$2"; then
    echo "ok   $1"
  else
    echo "FAIL $1: no line matches '$2'"
    failures=$((failures + 1))
  fi
}
if [ "$code" -eq 0 ]; then
  echo "FAIL the job exited with status 0"
  failures=$((failures + 1))
fi
if echo "$out" | grep -q "finished"; then
  echo "FAIL a rank finished"
  failures=$((failures + 1))
fi
stall="did not complete within 5 s"
case $mode in
  mismatch)
    for rank in 0 1; do
      require "rank $rank reports the mismatch" \
        "^plm rank $rank: model config differs between ranks: rank\(s\) 1 of group 'world' disagree with rank 0 \(this is rank $rank\)"
    done ;;
  hang)
    require "rank 0 names its stalled all-reduce" "^plm rank 0: all_reduce on group 'world' \(rank 0 of 2\) $stall"
    require "rank 1 names its stalled recv" "^plm rank 1: recv from rank 0 on group 'world' \(rank 1 of 2\) $stall" ;;
  die)
    require "mpirun names rank 1 and its signal" "process rank 1 with PID [0-9]+ on node .* exited on signal 9" ;;
  *)
    echo "FAIL unknown mode '$mode'"
    failures=$((failures + 1)) ;;
esac
[ "$failures" -eq 0 ]
