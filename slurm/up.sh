#!/usr/bin/env bash
# Bring up hpctrack's single-node SLURM test cluster on localhost
# (Debian 12, as root, no systemd): munged, mariadbd, slurmdbd, slurmctld, slurmd.
#
#   bash slurm/up.sh [DIR]      DIR: $HPCTRACK_SLURM_DIR or /tmp/hpctrack-slurm
#   . DIR/env.sh                exports SLURM_CONF (and HPCTRACK_SLURM_DIR)
#   bash slurm/down.sh [DIR] [--purge]
#
# Env knobs:
#   HPCTRACK_SLURM_CPUS=4          CPUs declared for the node; more than the hardware is
#                                  fine (SlurmdParameters=config_overrides), and 4 lets
#                                  the tests run 4 array tasks at once on a 2-core box
#   HPCTRACK_SLURM_MEM_MB=4096     RealMemory of the node
#   HPCTRACK_SLURM_PORT_BASE=6817  slurmctld=BASE, slurmd=BASE+1, slurmdbd=BASE+2, MariaDB=BASE+3
#   HPCTRACK_SLURM_TIMEOUT=60      seconds to wait for each daemon / for the node to be idle
#
# Idempotent: daemons already running from DIR are left alone, so a second run
# only re-checks the cluster. Everything (config, state, logs, database) lives
# in DIR, so `down.sh DIR` + `up.sh DIR` keeps job IDs and accounting history.
# On failure: non-zero exit and the tail of the relevant log on stderr.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DIR="${1:-${HPCTRACK_SLURM_DIR:-/tmp/hpctrack-slurm}}"
CPUS="${HPCTRACK_SLURM_CPUS:-4}"
MEM_MB="${HPCTRACK_SLURM_MEM_MB:-4096}"
BASE="${HPCTRACK_SLURM_PORT_BASE:-6817}"
TMO="${HPCTRACK_SLURM_TIMEOUT:-60}"
CTLD_PORT=$BASE SLURMD_PORT=$((BASE + 1)) DBD_PORT=$((BASE + 2)) DB_PORT=$((BASE + 3))
# test-only password of the local 'slurm' MariaDB user (server listens on 127.0.0.1 only)
DB_PASS=hpctrack-test
NODE="$(hostname -s)"
DB="$DIR/db"   # MariaDB datadir, socket, pid file and log
CHECK_OUT=/dev/null   # set to DIR/run/check.out once DIR exists

log() { echo "up.sh: $*" >&2; }
die() { echo "up.sh: ERROR: $*" >&2; exit 1; }
# die_log LOGFILE MSG: show the end of the daemon's log (the actual reason), then die
# (plus what the last failed readiness check printed: a client-side error such
# as a config parse error shows only there, not in the daemon's log)
die_log() {
  local f="$1"; shift
  if [ -f "$f" ]; then echo "---- last lines of $f" >&2; tail -n 25 "$f" >&2; echo "----" >&2; fi
  if [ -s "$CHECK_OUT" ]; then echo "---- last check said:" >&2; tail -n 10 "$CHECK_OUT" >&2; echo "----" >&2; fi
  die "$*"
}
# alive PIDFILE NAME: the pid in PIDFILE is a live NAME process. Checks the
# command name so a stale pid file whose pid was reused does not count, and
# the state so a zombie (exited, not yet reaped by init) does not count.
alive() {
  local pid st
  [ -s "$1" ] || return 1
  pid="$(cat "$1" 2>/dev/null)"
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ] || return 1
  st="$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)"
  [ -n "$st" ] && [ "$st" != Z ]
}
# wait_for SECONDS CMD...: retry CMD every 0.2 s until it succeeds or SECONDS pass
# (the output of the latest attempt is kept in $CHECK_OUT for die_log)
wait_for() {
  local end=$((SECONDS + $1)); shift
  until "$@" >"$CHECK_OUT" 2>&1; do [ "$SECONDS" -lt "$end" ] || return 1; sleep 0.2; done
  : >"$CHECK_OUT"
}
# need_port PORT WHAT: die if something already listens on PORT. The Slurm
# daemons fork into the background *before* binding, so a port clash would
# only show up in their logs, while scontrol/sinfo happily answer from
# whichever other cluster owns the port.
need_port() {
  local h; h=$(printf ':%04X' "$1")
  if awk -v h="$h" '$4 == "0A" && $2 ~ h"$"' /proc/net/tcp /proc/net/tcp6 2>/dev/null | grep -q .; then
    die "port $1 (for $2) is already in use: another cluster up? stop it, or set HPCTRACK_SLURM_PORT_BASE"
  fi
}
# started PIDFILE NAME LOG: right after a start, the daemon must still be alive
started() { alive "$1" "$2" || die_log "$3" "$2 died after starting"; }

[ "$(id -u)" = 0 ] || die "must run as root"
case "$DIR" in /*) ;; *) die "DIR must be an absolute path: $DIR" ;; esac
for kv in "CPUS=$CPUS" "MEM_MB=$MEM_MB" "PORT_BASE=$BASE" "TIMEOUT=$TMO"; do
  [[ "${kv#*=}" =~ ^[1-9][0-9]*$ ]] || die "HPCTRACK_SLURM_${kv%%=*} must be a positive integer, got '${kv#*=}'"
done

mkdir -p "$DIR"/{state,spool,log,run,munge,db}
CHECK_OUT="$DIR/run/check.out"
# Serialise concurrent up.sh runs on the same DIR (e.g. parallel test workers).
# Every daemon is started with `9>&-`: a daemon inheriting fd 9 would hold the
# lock for its whole life and block every later up.sh.
exec 9>"$DIR/run/up.lock"
flock -w "$((TMO * 3))" 9 || die "another up.sh holds $DIR/run/up.lock"

# ---- ports: check before starting anything ----------------------------------------
# For every daemon of DIR that is not running yet, its port must be free.
alive "$DB/mysqld.pid" mariadbd           || need_port "$DB_PORT" mariadbd
alive "$DIR/run/slurmdbd.pid" slurmdbd    || need_port "$DBD_PORT" slurmdbd
alive "$DIR/run/slurmctld.pid" slurmctld  || need_port "$CTLD_PORT" slurmctld
alive "$DIR/run/slurmd.pid" slurmd        || need_port "$SLURMD_PORT" slurmd

# ---- 1. packages ------------------------------------------------------------
# Debian 12: slurm-wlm 22.05.8, munge 0.5.15, MariaDB 10.11. mariadb-server-core
# instead of mariadb-server: the latter pulls perl, galera, rsync (~190 MB).
pkgs=()
{ command -v slurmctld && command -v slurmd && command -v sbatch; } >/dev/null || pkgs+=(slurm-wlm)
command -v munged >/dev/null || pkgs+=(munge)
command -v slurmdbd >/dev/null || pkgs+=(slurmdbd)
{ command -v mariadbd && command -v mariadb-install-db; } >/dev/null || pkgs+=(mariadb-server-core)
command -v my_print_defaults >/dev/null || pkgs+=(mariadb-client-core)
if [ ${#pkgs[@]} -gt 0 ]; then
  log "installing ${pkgs[*]} (log: $DIR/log/apt.log)"
  export DEBIAN_FRONTEND=noninteractive
  apt_install() { apt-get install -y -q --no-install-recommends "${pkgs[@]}" >>"$DIR/log/apt.log" 2>&1; }
  apt_update() { log "apt-get update"; apt-get update -q >>"$DIR/log/apt.log" 2>&1; }
  # 'apt-get update' only when needed: no package lists at all, or the install
  # failed with the current (possibly stale) lists.
  if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
    apt_update || die_log "$DIR/log/apt.log" "apt-get update failed"
  fi
  apt_install || { apt_update && apt_install; } \
    || die_log "$DIR/log/apt.log" "apt-get install ${pkgs[*]} failed"
fi

# ---- 2. config ---------------------------------------------------------------
render() {
  sed -e "s#@DIR@#$DIR#g; s#@NODE@#$NODE#g; s#@CPUS@#$CPUS#g; s#@MEM_MB@#$MEM_MB#g" \
      -e "s#@CTLD_PORT@#$CTLD_PORT#g; s#@SLURMD_PORT@#$SLURMD_PORT#g" \
      -e "s#@DBD_PORT@#$DBD_PORT#g; s#@DB_PORT@#$DB_PORT#g; s#@DB_PASS@#$DB_PASS#g" "$1"
}
render "$HERE/slurm.conf.template" > "$DIR/slurm.conf.new"
# The running daemons keep the config they started with; silently swapping the
# file under them would make clients and daemons disagree.
if [ -f "$DIR/slurm.conf" ] && ! cmp -s "$DIR/slurm.conf" "$DIR/slurm.conf.new" \
   && alive "$DIR/run/slurmctld.pid" slurmctld; then
  rm -f "$DIR/slurm.conf.new"
  die "config (template or knobs) changed while the cluster in $DIR is up: run down.sh $DIR first"
fi
mv "$DIR/slurm.conf.new" "$DIR/slurm.conf"
# slurmdbd insists on mode 600, owned by SlurmUser (root)
( umask 077; render "$HERE/slurmdbd.conf.template" > "$DIR/slurmdbd.conf" )
chmod 600 "$DIR/slurmdbd.conf"
export SLURM_CONF="$DIR/slurm.conf"
printf 'export SLURM_CONF=%s\nexport HPCTRACK_SLURM_DIR=%s\n' "$DIR/slurm.conf" "$DIR" > "$DIR/env.sh"
# Clients without SLURM_CONF fall back to /etc/slurm/slurm.conf (then DNS SRV,
# which fails). Point it at ours, unless someone else's config is there.
mkdir -p /etc/slurm
if [ -e /etc/slurm/slurm.conf ] || [ -L /etc/slurm/slurm.conf ]; then
  if [ "$(readlink /etc/slurm/slurm.conf)" != "$DIR/slurm.conf" ]; then
    if [ -L /etc/slurm/slurm.conf ] && [ ! -e /etc/slurm/slurm.conf ]; then
      ln -sfn "$DIR/slurm.conf" /etc/slurm/slurm.conf   # dangling link (e.g. a purged DIR): take it over
    else
      log "WARNING: /etc/slurm/slurm.conf exists and is not ours; left alone (use '. $DIR/env.sh')"
    fi
  fi
else
  ln -s "$DIR/slurm.conf" /etc/slurm/slurm.conf
fi

# ---- 3. munged: private socket under DIR, Debian's key --------------------------
if [ ! -s /etc/munge/munge.key ]; then
  mkdir -p /etc/munge
  ( umask 077; dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 2>/dev/null )
  chown munge:munge /etc/munge/munge.key
fi
# munged refuses a socket directory that is not a+x
chown munge:munge "$DIR/munge"; chmod 755 "$DIR/munge"
if ! alive "$DIR/munge/munged.pid" munged; then
  log "starting munged"
  rm -f "$DIR/munge/munge.socket" "$DIR/munge/munge.socket.lock"
  runuser -u munge -- munged --socket="$DIR/munge/munge.socket" --pid-file="$DIR/munge/munged.pid" \
    --log-file="$DIR/munge/munged.log" --seed-file="$DIR/munge/munged.seed" 9>&- \
    || die_log "$DIR/munge/munged.log" "munged failed to start"
  wait_for "$TMO" timeout 15 munge -n -S "$DIR/munge/munge.socket" \
    || die_log "$DIR/munge/munged.log" "munged not answering"
fi

# ---- 4. accounting: MariaDB (own datadir, 127.0.0.1:DB_PORT) + slurmdbd ----------
# --user=root: mariadb-server-core (unlike mariadb-server) creates no 'mysql' user.
# The buffer pool / lock wait values silence slurmdbd's "Database settings not
# recommended values" warnings.
DBOPTS=(--no-defaults --user=root --datadir="$DB/data" --innodb-log-file-size=64M
        --innodb-buffer-pool-size=1G --innodb-lock-wait-timeout=900)
if [ ! -d "$DB/data/mysql" ]; then
  log "initialising the MariaDB datadir"
  mariadb-install-db "${DBOPTS[@]}" --auth-root-authentication-method=socket --skip-test-db \
    >"$DB/install.log" 2>&1 || die_log "$DB/install.log" "mariadb-install-db failed"
fi
# run by mariadbd at every start; idempotent
cat > "$DB/init.sql" <<SQL
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
SQL
chmod 600 "$DB/init.sql"
if ! alive "$DB/mysqld.pid" mariadbd; then
  log "starting mariadbd on 127.0.0.1:$DB_PORT"
  rm -f "$DB/mysqld.sock"
  # mariadbd does not daemonize: setsid detaches it from this shell (and from
  # CI's process group); it writes its own pid file.
  setsid /usr/sbin/mariadbd "${DBOPTS[@]}" --socket="$DB/mysqld.sock" --pid-file="$DB/mysqld.pid" \
    --port="$DB_PORT" --bind-address=127.0.0.1 --skip-name-resolve --log-error="$DB/mysqld.log" \
    --init-file="$DB/init.sql" </dev/null >>"$DB/stdout.log" 2>&1 9>&- &
  wait_for "$TMO" test -S "$DB/mysqld.sock" || die_log "$DB/mysqld.log" "mariadbd did not start"
  wait_for "$TMO" alive "$DB/mysqld.pid" mariadbd || die_log "$DB/mysqld.log" "mariadbd wrote no pid file"
fi
if ! alive "$DIR/run/slurmdbd.pid" slurmdbd; then
  log "starting slurmdbd on 127.0.0.1:$DBD_PORT"
  slurmdbd 9>&- || die_log "$DIR/log/slurmdbd.log" "slurmdbd failed to start"
  wait_for "$TMO" timeout 15 sacctmgr -n -P show cluster \
    || die_log "$DIR/log/slurmdbd.log" "slurmdbd not answering"
fi
started "$DIR/run/slurmdbd.pid" slurmdbd "$DIR/log/slurmdbd.log"

# ---- 5. slurmctld + slurmd ------------------------------------------------------
if ! alive "$DIR/run/slurmctld.pid" slurmctld; then
  log "starting slurmctld on port $CTLD_PORT"
  slurmctld 9>&- || die_log "$DIR/log/slurmctld.log" "slurmctld failed to start"
fi
wait_for "$TMO" timeout 15 scontrol ping || die_log "$DIR/log/slurmctld.log" "slurmctld not answering"
started "$DIR/run/slurmctld.pid" slurmctld "$DIR/log/slurmctld.log"
if ! alive "$DIR/run/slurmd.pid" slurmd; then
  log "starting slurmd (node $NODE, $CPUS CPUs, ${MEM_MB} MB)"
  slurmd -N "$NODE" 9>&- || die_log "$DIR/log/slurmd.log" "slurmd failed to start"
fi
node_ready() { timeout 15 sinfo -h -n "$NODE" -o '%T' | grep -Eq '^(idle|mixed|allocated)$'; }
wait_for "$TMO" node_ready || { sinfo >&2 || true; die_log "$DIR/log/slurmd.log" "node $NODE not idle"; }
started "$DIR/run/slurmd.pid" slurmd "$DIR/log/slurmd.log"
# slurmctld registers the cluster in slurmdbd by itself (no sacctmgr needed);
# until it has, sacct fails, and submitit would see every job as UNKNOWN.
wait_for "$TMO" timeout 15 sacct -n -X -S now \
  || die_log "$DIR/log/slurmctld.log" "sacct does not work (slurmctld -> slurmdbd)"

sinfo
log "ready: . $DIR/env.sh  (SLURM_CONF=$DIR/slurm.conf; cpus=$CPUS mem=${MEM_MB}MB ports=$CTLD_PORT-$DB_PORT)"
