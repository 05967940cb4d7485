#!/usr/bin/env bash
# Usage: tools/start_slurm.sh [--stop]
# Starts a one-node Slurm cluster on this machine (for testing utils/slurm.pl):
# installs Debian's slurm-wlm and munge when missing (needs root and apt),
# writes /etc/slurm/slurm.conf for one node on localhost with the machine's CPUs
# and memory, and starts munged, slurmctld and slurmd by hand (containers and CI
# machines have no systemd). Idempotent: returns at once when the cluster
# already answers. --stop ends the daemons this script started.
# Exits non-zero, saying why, when the cluster cannot be started.
set -euo pipefail

conf_dir=/etc/slurm
log_dir=/var/log/slurm
node=$(hostname -s)

die() { echo "$0: $*" >&2; exit 1; }

stop() {
  local f
  for f in /run/slurmd.pid /run/slurmctld.pid /run/munge/munged.pid; do
    [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
    rm -f "$f"
  done
}

cluster_up() {
  # An idle/mixed/allocated node means jobs can run now.
  command -v sinfo >/dev/null 2>&1 &&
    timeout 5 sinfo -h -N -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated|completing)'
}

if [ "${1:-}" = --stop ]; then stop; exit 0; fi
[ $# -eq 0 ] || die "unknown argument '$1' (usage: $0 [--stop])"

start=$(date +%s)
if cluster_up; then echo "$0: Slurm is already up"; exit 0; fi

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null \
   || ! command -v sbatch >/dev/null; then
  [ "$(id -u)" -eq 0 ] || die "Slurm is not installed and installing it needs root"
  command -v apt-get >/dev/null || die "Slurm is not installed and there is no apt-get to install it"
  echo "$0: installing slurm-wlm and munge"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null || die "apt-get update failed"
  # Postinst scripts would try to start services; there is no init system to do it.
  apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null || die "apt-get install slurm-wlm munge failed"
fi
[ "$(id -u)" -eq 0 ] || die "starting the Slurm daemons needs root"

# Daemons left from an earlier start that no longer answers are restarted cleanly.
stop

# munge: a key, and /run/munge (tmpfs, gone after a reboot) before munged starts.
if [ ! -s /etc/munge/munge.key ]; then
  mkdir -p /etc/munge
  dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
fi
muser=root
id munge >/dev/null 2>&1 && muser=munge
mkdir -p /run/munge /var/lib/munge /var/log/munge
chown "$muser" /etc/munge /etc/munge/munge.key /run/munge /var/lib/munge /var/log/munge
chmod 700 /etc/munge; chmod 400 /etc/munge/munge.key; chmod 755 /run/munge
if [ "$muser" = root ]; then munged --force; else runuser -u munge -- munged --force; fi
for _ in $(seq 50); do [ -S /run/munge/munge.socket.2 ] && break; sleep 0.1; done
munge -n | unmunge >/dev/null 2>&1 || die "munged does not answer (see /var/log/munge/munged.log)"

cpus=$(nproc)
mem_mb=$(( $(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024 ))
mkdir -p "$conf_dir" "$log_dir" /var/spool/slurmctld /var/spool/slurmd
cat > "$conf_dir/slurm.conf" <<EOF
# One-node cluster on localhost, written by $0.
ClusterName=sid
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$log_dir/slurmctld.log
SlurmdLogFile=$log_dir/slurmd.log
# No cgroups in containers: plain process tracking, no task binding, no accounting.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
# Finished jobs leave squeue quickly so the runners' polling sees them go.
MinJobAge=10
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF

slurmctld -i || die "slurmctld failed to start (see $log_dir/slurmctld.log)"
slurmd -N "$node" || die "slurmd failed to start (see $log_dir/slurmd.log)"

for _ in $(seq 60); do
  if cluster_up; then
    echo "$0: one-node Slurm up on $node ($cpus CPUs, $mem_mb MB) in $(( $(date +%s) - start )) s"
    exit 0
  fi
  # A node remembered as down from an earlier run is brought back.
  scontrol update NodeName="$node" State=RESUME >/dev/null 2>&1 || true
  sleep 0.5
done
die "the Slurm node did not become idle within 30 s: $(sinfo -h -N -o '%N %T %E' 2>&1 | head -1) (see $log_dir/)"
