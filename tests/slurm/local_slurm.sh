# A single-node Slurm cluster on this machine for tests (../shared/ENVIRONMENT.md's recipe): source this file,
# then `local_slurm_start DIR` (exports SLURM_CONF; the daemons' files live under DIR) and `local_slurm_stop DIR`
# (stops what it started, by pid file). cred_expire=10: a requeued job may start again after 10 s, not Slurm's
# default 120 s (starting it earlier fails with "Job credential revoked"). Needs root, slurm-wlm and munge. Ports are picked from the test's pid so
# two test runs on one machine do not collide.
# shellcheck shell=bash

# A test's start: exits 77 (skipped, with the reason) without root, slurm-wlm or munge; then an empty SCRATCH and
# the daemons stopped when the test exits. Call before local_slurm_start.
local_slurm_test_begin() {
  local scratch=$1
  if [[ $(id -u) -ne 0 ]] || ! command -v slurmctld > /dev/null || ! command -v munged > /dev/null; then
    echo "skipped: needs root, slurm-wlm and munge (scripts/install-deps.sh installs them)"
    exit 77
  fi
  rm -rf "$scratch" && mkdir -p "$scratch"
  # shellcheck disable=SC2064  # the folder is fixed now
  trap "local_slurm_stop '$scratch/slurm'" EXIT
}

local_slurm_start() {
  local dir=$1 cpus=${2:-2}
  mkdir -p "$dir"/{state,spool,log} /run/munge
  local port=$((20000 + ($$ % 2000) * 2))
  cat > "$dir/slurm.conf" <<CONF
ClusterName=plm-test
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=cred_expire=10
CredType=cred/munge
SlurmctldPort=$port
SlurmdPort=$((port + 1))
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
MinJobAge=600
MailProg=/bin/true
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=8000 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=60 State=UP
CONF
  export SLURM_CONF=$dir/slurm.conf
  if [[ ! -e /run/munge/munged.pid ]] || ! kill -0 "$(cat /run/munge/munged.pid)" 2> /dev/null; then
    chown munge:munge /run/munge /var/lib/munge /var/log/munge
    runuser -u munge -- /usr/sbin/munged
    touch "$dir/started_munge"
  fi
  /usr/sbin/slurmctld -f "$SLURM_CONF"
  /usr/sbin/slurmd -f "$SLURM_CONF" -N localhost
  local tries=0
  until sinfo -h -o %T -n localhost 2> /dev/null | grep -qx idle; do
    tries=$((tries + 1))
    if [[ $tries -gt 150 ]]; then
      echo "local_slurm: the node did not become idle; logs in $dir/log" >&2
      return 1
    fi
    sleep 0.2
  done
}

local_slurm_stop() {
  local dir=$1 f
  for f in "$dir/slurmd.pid" "$dir/slurmctld.pid"; do
    [[ -e $f ]] && kill "$(cat "$f")" 2> /dev/null
  done
  if [[ -e $dir/started_munge && -e /run/munge/munged.pid ]]; then kill "$(cat /run/munge/munged.pid)" 2> /dev/null; fi
  return 0
}

# Waits until job $1 is COMPLETED (after any requeues) or fails; prints its final state.
local_slurm_wait_job() {
  local job=$1 limit=${2:-300} state="" waited=0
  while [[ $waited -lt $((limit * 5)) ]]; do
    state=$(scontrol show job "$job" 2> /dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p')
    case $state in
      COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY) echo "$state"; return 0 ;;
    esac
    sleep 0.2
    waited=$((waited + 1))
  done
  echo "TIMEOUT_WAITING($state)"
}
