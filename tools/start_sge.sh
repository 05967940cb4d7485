#!/usr/bin/env bash
# Usage: tools/start_sge.sh [--stop]
# Starts a one-node Grid Engine on this machine (for testing utils/queue.pl):
# installs Debian's gridengine-master/-exec/-client when missing (needs root and
# apt; debconf answers preseeded so nothing asks), names the qmaster
# "localhost" (this host's name is made an alias of it, since 127.0.0.1 resolves
# to localhost), allows root jobs, schedules every second, adds one queue all.q
# with a slot per CPU, and starts sge_qmaster and sge_execd by hand (no systemd).
# Idempotent: returns at once when all.q already takes jobs. --stop ends the daemons.
# Exits non-zero, saying why, when the cluster cannot be started.
set -euo pipefail

export SGE_ROOT=/var/lib/gridengine SGE_CELL=default
common=$SGE_ROOT/$SGE_CELL/common
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

die() { echo "$0: $*" >&2; exit 1; }

queue_up() {
  # all.q@localhost with an empty state column (not u/E/d): jobs can run now.
  command -v qstat >/dev/null 2>&1 &&
    timeout 5 qstat -f -q all.q 2>/dev/null | awk '/^all\.q@/ && NF == 5 {ok = 1} END {exit !ok}'
}

if [ "${1:-}" = --stop ]; then
  qconf -ke localhost >/dev/null 2>&1 || true
  qconf -km >/dev/null 2>&1 || true
  pidfile=/var/spool/gridengine/qmaster/qmaster.pid  # qmaster takes a few seconds to shut down
  for _ in $(seq 100); do
    [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null || break
    sleep 0.2
  done
  exit 0
fi
[ $# -eq 0 ] || die "unknown argument '$1' (usage: $0 [--stop])"

start=$(date +%s)
if queue_up; then echo "$0: Grid Engine is already up"; exit 0; fi
[ "$(id -u)" -eq 0 ] || die "starting Grid Engine needs root"

if [ ! -x /usr/lib/gridengine/sge_qmaster ] || [ ! -x /usr/lib/gridengine/sge_execd ] || ! command -v qsub >/dev/null; then
  command -v apt-get >/dev/null || die "Grid Engine is not installed and there is no apt-get to install it"
  echo "$0: installing gridengine-master, gridengine-exec, gridengine-client"
  export DEBIAN_FRONTEND=noninteractive
  for pkg in gridengine-common gridengine-master gridengine-client; do
    printf '%s shared/gridengineconfig boolean true\n%s shared/gridenginecell string default\n%s shared/gridenginesqmaster string localhost\n' \
      "$pkg" "$pkg" "$pkg"
  done | debconf-set-selections
  apt-get update -qq >/dev/null || die "apt-get update failed"
  apt-get install -y -qq --no-install-recommends gridengine-master gridengine-exec gridengine-client >/dev/null \
    || die "apt-get install gridengine-master gridengine-exec gridengine-client failed"
fi
[ -f "$common/bootstrap" ] || die "$common/bootstrap is missing: the gridengine-master package did not set up a cell"

# Grid Engine compares the name a client's address resolves to with its own host name.
echo "localhost $(hostname) $(hostname -s)" > "$common/host_aliases"
echo localhost > "$common/act_qmaster"
qconf -sh >/dev/null 2>&1 || /etc/init.d/gridengine-master start >/dev/null
for _ in $(seq 50); do qconf -sh >/dev/null 2>&1 && break; sleep 0.2; done
qconf -sh >/dev/null 2>&1 || die "sge_qmaster does not answer (see /var/spool/gridengine/qmaster/messages)"

qconf -sh | grep -qx localhost || qconf -ah localhost >/dev/null
qconf -ss 2>/dev/null | grep -qx localhost || qconf -as localhost >/dev/null
mkdir -p "$work/conf"
qconf -sconf global | sed -e 's/^min_uid .*/min_uid 0/' -e 's/^min_gid .*/min_gid 0/' > "$work/conf/global"
qconf -Mconf "$work/conf/global" >/dev/null 2>&1
qconf -ssconf | sed -e 's/^schedule_interval .*/schedule_interval 0:0:1/' \
  -e 's/^flush_submit_sec .*/flush_submit_sec 1/' -e 's/^flush_finish_sec .*/flush_finish_sec 1/' > "$work/sched"
qconf -Msconf "$work/sched" >/dev/null 2>&1
if ! qconf -sel 2>/dev/null | grep -qx localhost; then
  printf 'hostname localhost\nload_scaling NONE\ncomplex_values NONE\nuser_lists NONE\nxuser_lists NONE\nprojects NONE\nxprojects NONE\nusage_scaling NONE\nreport_variables NONE\n' \
    > "$work/exec"
  qconf -Ae "$work/exec" >/dev/null
fi
if ! qconf -sql 2>/dev/null | grep -qx all.q; then
  # A queue with no load thresholds: a busy test machine must still run jobs.
  cat > "$work/queue" <<EOF
qname all.q
hostlist localhost
seq_no 0
load_thresholds NONE
suspend_thresholds NONE
nsuspend 1
suspend_interval 00:05:00
priority 0
min_cpu_interval 00:05:00
processors UNDEFINED
qtype BATCH INTERACTIVE
ckpt_list NONE
pe_list make
rerun FALSE
slots $(nproc)
tmpdir /tmp
shell /bin/bash
prolog NONE
epilog NONE
shell_start_mode posix_compliant
starter_method NONE
suspend_method NONE
resume_method NONE
terminate_method NONE
notify 00:00:60
owner_list NONE
user_lists NONE
xuser_lists NONE
subordinate_list NONE
complex_values NONE
projects NONE
xprojects NONE
calendar NONE
initial_state default
EOF
  for lim in s_rt h_rt s_cpu h_cpu s_fsize h_fsize s_data h_data s_stack h_stack s_core h_core s_rss h_rss s_vmem h_vmem; do
    echo "$lim INFINITY" >> "$work/queue"
  done
  qconf -Aq "$work/queue" >/dev/null
fi
qping -info localhost 6445 execd 1 >/dev/null 2>&1 || /etc/init.d/gridengine-exec start >/dev/null

for _ in $(seq 60); do
  if queue_up; then
    echo "$0: one-node Grid Engine up (queue all.q, $(nproc) slots) in $(( $(date +%s) - start )) s"
    exit 0
  fi
  qmod -c 'all.q@localhost' >/dev/null 2>&1 || true  # clears an error state from before the config was read
  sleep 0.5
done
die "queue all.q did not become ready within 30 s: $(qstat -f -q all.q 2>&1 | tail -1)"
