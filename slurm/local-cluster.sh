#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for ringtrain's tests and for trying the templates: munge,
# slurmctld and slurmd from Debian's packages (.ci/setup installs them), with a slurm.conf of its own in DIR
# (ports 16817/16818, so a real SLURM on the machine is left alone).
#   slurm/local-cluster.sh start DIR [--emulated]
#       writes DIR/slurm.conf, starts the daemons, waits until the nodes are idle. --emulated: a node per node
#       of the emulated cluster (tests/cluster/emulated_cluster.sh up, first), each with its own slurmd in
#       its network namespace, under its host name, with a /tmp of its own; ports 16827/16828. DIR must not
#       be under /tmp, which the nodes do not share.
#   slurm/local-cluster.sh stop DIR    cancels jobs and stops what start started
# Then: export SLURM_CONF=DIR/slurm.conf; sbatch / srun as usual.
set -euo pipefail
action=${1:?usage: local-cluster.sh start|stop DIR [--emulated]} dir=${2:?usage: local-cluster.sh start|stop DIR}
emulated=0
[[ ${3:-} == --emulated ]] && emulated=1
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
conf=$dir/slurm.conf
export SLURM_CONF=$conf
as_root=(); [[ $(id -u) -ne 0 ]] && as_root=(sudo)

stop() {
  [[ -f $conf ]] && scancel --quiet --full --user "$(id -un)" 2>/dev/null || true
  for pidfile in "$dir"/slurmd*.pid "$dir"/slurmctld.pid; do
    if [[ -f $pidfile ]]; then "${as_root[@]}" kill "$(cat "$pidfile")" 2>/dev/null || true; fi
  done
  if [[ -f $dir/munged.started ]]; then "${as_root[@]}" pkill -x munged || true; rm -f "$dir/munged.started"; fi
  for _ in $(seq 50); do pgrep -f "$conf" >/dev/null || break; sleep 0.1; done
}
[[ $action == stop ]] && { stop; exit 0; }
[[ $action == start ]] || { echo "usage: local-cluster.sh start|stop DIR" >&2; exit 2; }
for tool in munged slurmctld slurmd sbatch; do
  command -v "$tool" >/dev/null || { echo "no $tool: install munge, slurmctld, slurmd and slurm-client (.ci/setup does)" >&2; exit 1; }
done
stop  # a cluster left over from an earlier run

# munge authenticates the daemons and the clients to each other.
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  [[ -f /etc/munge/munge.key ]] || "${as_root[@]}" mungekey --create
  "${as_root[@]}" mkdir -p /run/munge && "${as_root[@]}" chown munge:munge /run/munge /etc/munge/munge.key
  "${as_root[@]}" runuser -u munge -- munged 2>/dev/null || "${as_root[@]}" munged --force
  touch "$dir/munged.started"
  for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
fi

host=$(hostname -s)
memory_mb=$(awk '/MemTotal/ { print int($2 / 1024 / 2) }' /proc/meminfo)
# More tasks than cores, as the tests' mpirun --oversubscribe: a node declares 4 CPUs a core (see below).
cpus=$(( $(nproc) * 4 ))
mkdir -p "$dir/state" "$dir/spool" "$dir/log"
if ((emulated)); then
  cluster=$(cd "$(dirname "$0")/../tests/cluster" && pwd)
  state=${RINGTRAIN_CLUSTER_DIR:-/tmp/ringtrain-cluster}
  [[ -f $state/nodes ]] || { echo "the emulated cluster is not up (tests/cluster/emulated_cluster.sh up)" >&2; exit 1; }
  [[ $dir != /tmp/* ]] || { echo "$dir is under /tmp, which the emulated nodes do not share" >&2; exit 1; }
  nodes=$(paste -sd, "$state/nodes")
  controller="$host(10.231.0.1)" ports=(16827 16828)
  node_lines=$(paste -d' ' "$state/nodes" "$state/hostfile" |
    awk -v cpus="$cpus" -v mem="$memory_mb" '{ print "NodeName=" $1 " NodeAddr=" $2 " CPUs=" cpus " RealMemory=" mem " State=UNKNOWN" }')
  per_node=-%n  # every node's slurmd its own spool, pid and log files
else
  nodes=$host controller=$host ports=(16817 16818) per_node=
  node_lines="NodeName=$host CPUs=$cpus RealMemory=$memory_mb State=UNKNOWN"
fi
cat >"$conf" <<CONF
# Nodes: $nodes. Written by slurm/local-cluster.sh.
ClusterName=ringtrain-local
SlurmctldHost=$controller
SlurmUser=$(id -un)
AuthType=auth/munge
SlurmctldPort=${ports[0]}
SlurmdPort=${ports[1]}
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool$per_node
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd$per_node.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd$per_node.log
# No cgroups in containers: track processes by their parents, bind nothing.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=pmix
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
# A job these nodes can never run (more nodes than there are, more tasks than their CPUs) fails at once, in
# sbatch or srun, with the reason ("Node count specification invalid", "More processors requested than
# permitted") instead of pending for ever, where sbatch --wait would never return.
EnforcePartLimits=ALL
# More tasks than cores, as the tests' mpirun --oversubscribe: a node declares 4 CPUs a core, so a 2-core CI
# machine runs a 4-rank job (OverSubscribe only lets jobs share cores; a job's own tasks could not outnumber
# them). config_overrides makes slurmd take the declared CPUs rather than drain the node for the mismatch.
SlurmdParameters=config_overrides
$node_lines
PartitionName=debug Nodes=$nodes Default=YES MaxTime=INFINITE State=UP
CONF
"${as_root[@]}" slurmctld -f "$conf"
if ((emulated)); then
  for node in ${nodes//,/ }; do
    mkdir -p "$dir/spool-$node"
    RINGTRAIN_NODE_PRIVATE_TMP=1 "${as_root[@]}" "$cluster/emulated_cluster.sh" exec "$node" slurmd -f "$conf" -N "$node"
  done
else
  "${as_root[@]}" slurmd -f "$conf"
fi
expected=$(tr ',' '\n' <<<"$nodes" | wc -l)
for _ in $(seq 300); do
  if (( $(sinfo --noheader --states=idle --Node 2>/dev/null | grep -c idle) == expected )); then
    echo "SLURM is up: export SLURM_CONF=$conf"
    exit 0
  fi
  sleep 0.1
done
echo "the local SLURM did not come up; its logs are in $dir/log" >&2
tail -5 "$dir"/log/*.log >&2 || true
exit 1
