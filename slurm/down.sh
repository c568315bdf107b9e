#!/usr/bin/env bash
# Stop the SLURM test cluster that slurm/up.sh started in DIR.
#   bash slurm/down.sh [DIR] [--purge]    DIR: $HPCTRACK_SLURM_DIR or /tmp/hpctrack-slurm
#
# 1. cancels every job while slurmctld still runs: stopping slurmd does NOT
#    stop jobs (their slurmstepd and processes live on, and a restarted slurmd
#    adopts them), so they would leak into the next test run;
# 2. stops slurmd, slurmctld, slurmdbd, mariadbd, munged -- only the processes
#    named in DIR's pid files, and only if /proc/PID/comm still matches (a
#    stale pid may belong to something else now). SIGTERM, then SIGKILL after
#    30 s (they normally exit within a second or two). Never pkill/killall: other
#    clusters or a system munged on this machine are not ours to stop;
# 3. --purge deletes DIR: job state *and* the accounting database together
#    (wiping only one would make job IDs repeat in sacct).
# Exit status non-zero if a daemon survived SIGKILL.
set -uo pipefail

DIR="${HPCTRACK_SLURM_DIR:-/tmp/hpctrack-slurm}" PURGE=0
for a in "$@"; do
  case "$a" in
    --purge) PURGE=1 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    -*) echo "down.sh: unknown option $a" >&2; exit 2 ;;
    *) DIR="$a" ;;
  esac
done
STOP_WAIT=30   # seconds between SIGTERM and SIGKILL
log() { echo "down.sh: $*" >&2; }
case "$DIR" in /*) ;; *) log "ERROR: DIR must be an absolute path: $DIR"; exit 2 ;; esac
[ -d "$DIR" ] || { log "nothing to do: $DIR does not exist"; exit 0; }
export SLURM_CONF="$DIR/slurm.conf"
rc=0

# running PID: alive and not a zombie. Exited daemons stay zombies until init
# reaps them (~1 s here), so `kill -0` would keep waiting needlessly.
running() { local st; st="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)"; [ -n "$st" ] && [ "$st" != Z ]; }
# ours PIDFILE NAME: print the pid from PIDFILE if it is a running NAME process
ours() {
  local pid
  [ -s "$1" ] || return 1
  pid="$(cat "$1" 2>/dev/null)"
  [[ "$pid" =~ ^[0-9]+$ ]] && running "$pid" || return 1
  if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" != "$2" ]; then
    log "pid $pid from $1 is not $2 (it is '$(cat "/proc/$pid/comm" 2>/dev/null)'); not touching it"
    return 1
  fi
  echo "$pid"
}
# stop PIDFILE NAME: SIGTERM, bounded wait, SIGKILL
stop() {
  local f="$1" name="$2" pid i
  if ! pid="$(ours "$f" "$name")"; then rm -f "$f"; return 0; fi
  log "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null
  for ((i = 0; i < STOP_WAIT * 10; i++)); do running "$pid" || break; sleep 0.1; done
  if running "$pid"; then
    log "$name (pid $pid) ignored SIGTERM for ${STOP_WAIT} s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null
    for ((i = 0; i < 50; i++)); do running "$pid" || break; sleep 0.1; done
  fi
  if running "$pid"; then log "ERROR: $name (pid $pid) still alive"; rc=1; return; fi
  rm -f "$f"
}

# ---- 1. cancel every job, wait until the queue is empty (bounded) ---------------
if ours "$DIR/run/slurmctld.pid" slurmctld >/dev/null 2>&1; then
  jobs="$(timeout 15 squeue -h -o %A 2>/dev/null | tr '\n' ' ')"
  if [ -n "${jobs// /}" ]; then
    log "cancelling jobs: $jobs"
    # every job of every user; the cluster is ours alone
    # shellcheck disable=SC2086
    timeout 15 scancel $jobs 2>/dev/null
    # KillWait=5: a job ignoring SIGTERM is killed after 5 s
    for ((i = 0; i < 100; i++)); do
      [ -z "$(timeout 15 squeue -h -t PD,R,CG,S,CF -o %A 2>/dev/null)" ] && break; sleep 0.2
    done
    left="$(timeout 15 squeue -h -t PD,R,CG,S,CF -o '%A:%T' 2>/dev/null | tr '\n' ' ')"
    [ -n "${left// /}" ] && log "WARNING: jobs still in the queue: $left"
  fi
fi

# ---- 2. daemons: clients before servers ------------------------------------------
stop "$DIR/run/slurmd.pid" slurmd
stop "$DIR/run/slurmctld.pid" slurmctld
stop "$DIR/run/slurmdbd.pid" slurmdbd
stop "$DIR/db/mysqld.pid" mariadbd
stop "$DIR/munge/munged.pid" munged

# ---- 3. the /etc/slurm/slurm.conf symlink up.sh made (only if it points at DIR) ---
[ "$(readlink /etc/slurm/slurm.conf 2>/dev/null)" = "$DIR/slurm.conf" ] && rm -f /etc/slurm/slurm.conf

if [ "$PURGE" = 1 ]; then
  if [ "$rc" = 0 ]; then log "removing $DIR"; rm -rf "$DIR"
  else log "not removing $DIR: some daemons still run from it"; fi
fi
if [ "$rc" = 0 ]; then log "stopped"; else log "ERROR: some daemons did not stop"; fi
exit "$rc"
