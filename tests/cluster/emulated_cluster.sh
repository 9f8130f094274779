#!/usr/bin/env bash
# An emulated cluster of several "nodes" on this one machine, for tests and benchmarks of what crosses a
# network: each node is a Linux network namespace with a host name of its own (a UTS namespace per launch)
# and two networks, as clusters have: a management network (eth0, on bridge rtbr0), which the launchers'
# daemons use, and a data network (eth1, on bridge rtbr1) whose links `tc tbf` shapes to a chosen rate in
# both directions, which MPI's TCP transport uses. Ranks on one node talk over shared memory, ranks on
# different nodes over TCP through the shaped links. Needs root (CAP_NET_ADMIN), iproute2 and util-linux.
#
#   emulated_cluster.sh up [--nodes N] [--rate RATE]   builds nodes rtnode1..N (default 2 nodes, 2gbit)
#   emulated_cluster.sh down                           removes everything `up` made (safe to repeat)
#   emulated_cluster.sh mpirun [--ranks-per-node K] [--nodes M] ARGS...
#                                                      mpirun across the first M nodes (default all), K slots
#                                                      each (default 2)
#   emulated_cluster.sh link NODE down|up              cuts or restores both of a node's links
#   emulated_cluster.sh link NODE data-down|data-up    cuts or restores its data network link alone
#   emulated_cluster.sh link NODE rate RATE            reshapes its data network link (both directions)
#   emulated_cluster.sh exec NODE CMD...               runs CMD on a node, under its host name
#                                                      (RINGTRAIN_NODE_PRIVATE_TMP=1: with a /tmp of its own)
#
# Only addresses the script itself made are used: 10.231.0.0/24 (management) and 10.232.0.0/24 (data), .1 on
# this machine, .10+i on node i. RINGTRAIN_CLUSTER_DIR (default /tmp/ringtrain-cluster) keeps the state:
# the hostfile and each node's local scratch directory (its TMPDIR, standing in for node-local disk).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
state=${RINGTRAIN_CLUSTER_DIR:-/tmp/ringtrain-cluster}
bridge=rtbr0 subnet=10.231.0 data_bridge=rtbr1 data_subnet=10.232.0 prefix=rtnode

usage() { sed -n '9,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }
die() { echo "emulated_cluster: $*" >&2; exit 1; }

node_names() { [[ -f $state/nodes ]] && cat "$state/nodes"; true; }
node_of_address() { [[ $1 == "$subnet".* ]] && echo "$prefix$(( ${1##*.} - 10 ))" || echo "$1"; }

# A token bucket on the device's egress: `rate` through, queued up to 50 ms, then dropped as a switch would.
# The bucket holds 10 ms of traffic at the rate (at least 16 KiB): more than a timer tick's, which tbf
# needs, and little enough that a slowed link is slow for a message of a few hundred KiB too.
shape() {  # shape NETNS_OR_- DEVICE RATE
  local ns=$1 dev=$2 rate=$3 run=() bits
  [[ $ns != - ]] && run=(ip netns exec "$ns")
  bits=$(awk -v r="${rate,,}" 'BEGIN { n = r + 0; u = substr(r, length(n "") + 1)
    m = u == "kbit" ? 1e3 : u == "mbit" ? 1e6 : u == "gbit" ? 1e9 : u == "bit" ? 1 : 0; print int(n * m) }')
  ((bits > 0)) || die "a rate is a number and kbit, mbit or gbit (e.g. 2gbit), not '$rate'"
  "${run[@]}" tc qdisc replace dev "$dev" root tbf rate "$rate" burst $((bits / 800 > 16384 ? bits / 800 : 16384)) latency 50ms
}

up() {
  local nodes=2 rate=2gbit
  while (($#)); do
    case $1 in
      --nodes) nodes=${2:?}; shift 2 ;;
      --rate) rate=${2:?}; shift 2 ;;
      *) usage ;;
    esac
  done
  [[ $nodes =~ ^[0-9]+$ ]] && ((nodes >= 1 && nodes <= 8)) || die "--nodes must be 1 to 8, not '$nodes'"
  # Exit 77 (CTest's skip) where no cluster can be made here, saying why.
  [[ $(id -u) -eq 0 ]] || { echo "SKIP: the emulated cluster needs root (network namespaces)" >&2; exit 77; }
  for tool in ip tc unshare; do
    command -v $tool >/dev/null || { echo "SKIP: no $tool (install iproute2 and util-linux)" >&2; exit 77; }
  done
  # A container may forbid namespaces or lack the tbf qdisc: a skip that says so, not a failure midway.
  ip netns del rtprobe 2>/dev/null || true
  if ! ip netns add rtprobe 2>/dev/null ||
     ! ip netns exec rtprobe tc qdisc add dev lo root tbf rate 1gbit burst 32kb latency 50ms 2>/dev/null; then
    ip netns del rtprobe 2>/dev/null || true
    echo "SKIP: this machine does not allow network namespaces with tc tbf (a container without CAP_NET_ADMIN?)" >&2
    exit 77
  fi
  ip netns del rtprobe
  down  # what an earlier run left
  mkdir -p "$state"
  for net in "$bridge:$subnet" "$data_bridge:$data_subnet"; do
    ip link add "${net%%:*}" type bridge
    ip addr add "${net#*:}.1/24" dev "${net%%:*}"
    ip link set "${net%%:*}" up
  done
  local hostfile=$state/hostfile
  : >"$hostfile"
  for ((i = 1; i <= nodes; ++i)); do
    local ns=$prefix$i
    ip netns add "$ns"
    ip netns exec "$ns" ip link set lo up
    # rtveth<i>: the management link (eth0 inside); rtdata<i>: the data link (eth1 inside).
    for link in "rtveth$i:eth0:$bridge:$subnet" "rtdata$i:eth1:$data_bridge:$data_subnet"; do
      IFS=: read -r outside inside on net <<<"$link"
      ip link add "$outside" type veth peer name "$inside" netns "$ns"
      ip link set "$outside" master "$on" up
      ip netns exec "$ns" ip addr add "$net.$((10 + i))/24" dev "$inside"
      ip netns exec "$ns" ip link set "$inside" up
    done
    shape "$ns" eth1 "$rate"    # what the node sends
    shape - "rtdata$i" "$rate"  # what it receives
    mkdir -p "$state/$ns/tmp"
    echo "$ns" >>"$state/nodes"
    echo "$subnet.$((10 + i))" >>"$hostfile"
  done
  echo "$rate" >"$state/rate"
  echo "emulated cluster up: $nodes nodes at $rate (hostfile $hostfile)"
}

down() {
  for ns in $(node_names) $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$prefix[0-9]*$" || true); do
    # Processes left on the node (a test that failed midway) would keep its namespace alive.
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
  # The kernel frees a namespace, and the veth ends in it, in the background: remove this side at once, so
  # that an `up` right after finds the names free.
  for link in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' | grep -E '^rt(veth|data)[0-9]+$' || true); do
    ip link del "$link" 2>/dev/null || true
  done
  ip link del "$bridge" 2>/dev/null || true
  ip link del "$data_bridge" 2>/dev/null || true
  # Only what `up` wrote: RINGTRAIN_CLUSTER_DIR may name a directory that holds more.
  rm -rf "$state"/"$prefix"[0-9]*
  rm -f "$state"/{nodes,hostfile,hostfile.slots,rate}
  rmdir "$state" 2>/dev/null || true
}

# Runs a command on a node: in its network namespace, in a UTS namespace of its own named after the node,
# with the node's scratch directory as TMPDIR. mpirun's launch agent: Open MPI calls it as
# `enter HOST COMMAND...`, as it would call ssh, with the command written for a shell.
enter() {
  local ns
  ns=$(node_of_address "${1:?}")
  shift
  [[ -d $state/$ns ]] || die "no node '$ns' (is the cluster up?)"
  # nsenter rather than `ip netns exec`, which remounts /sys: slurmd needs the host's cgroup mount.
  local namespaces=(--uts) setup="hostname $ns && export TMPDIR=$state/$ns/tmp"
  if [[ ${RINGTRAIN_NODE_PRIVATE_TMP:-0} == 1 ]]; then
    # /tmp itself node-local (the node's scratch directory mounted over it), as on a real cluster: for
    # daemons such as slurmd, whose paths under /tmp (PMIx's) would clash between nodes. What the tests
    # share with the nodes must then live outside /tmp.
    namespaces+=(--mount)
    setup="mount --bind $state/$ns/tmp /tmp && hostname $ns && export TMPDIR=/tmp"
  fi
  exec nsenter --net="/run/netns/$ns" unshare "${namespaces[@]}" sh -c "$setup && $*"
}

run_mpirun() {
  local per_node=2 nodes=1000
  while [[ ${1:-} == --ranks-per-node || ${1:-} == --nodes ]]; do
    [[ $1 == --nodes ]] && nodes=${2:?} || per_node=${2:?}
    shift 2
  done
  # 77 (CTest's skip): the tests after a cluster.up that skipped skip too.
  [[ -f $state/hostfile ]] || { echo "emulated_cluster: the cluster is not up (emulated_cluster.sh up)" >&2; exit 77; }
  head -n "$nodes" "$state/hostfile" | sed "s/\$/ slots=$per_node/" >"$state/hostfile.slots"
  # Daemons and ranks only on the nodes (none on this machine); the daemons on the management network, the
  # ranks' TCP on the data network; shared memory (vader) between ranks of one node. mpirun notices a node gone by TCP keepalives on its idle
  # connection to the node's daemon: after 1 + 2 x 1 s here, instead of Open MPI's default 8 minutes. It
  # must notice before the ranks' heartbeat (--peer-timeout-s) does: a rank's MPI_Abort has mpirun send
  # to every daemon, and a message unacknowledged on the cut link stops the keepalives, leaving mpirun to
  # TCP's retransmissions (15 minutes).
  exec mpirun --hostfile "$state/hostfile.slots" --mca plm_rsh_agent "$here/enter-node" \
    --mca plm_rsh_no_tree_spawn 1 --mca btl self,vader,tcp --mca btl_tcp_if_include "$data_subnet.0/24" \
    --mca oob_tcp_if_include "$subnet.0/24" --mca orte_keep_fqdn_hostnames 1 \
    --mca oob_tcp_keepalive_time 1 --mca oob_tcp_keepalive_intvl 1 --mca oob_tcp_keepalive_probes 2 "$@"
}

link() {
  local ns=${1:?} what=${2:?} i
  [[ -d $state/$ns ]] || die "no node '$ns'"
  i=${ns#"$prefix"}
  case $what in
    down) ip link set "rtveth$i" down; ip link set "rtdata$i" down ;;
    up) ip link set "rtveth$i" up; ip link set "rtdata$i" up ;;
    data-down) ip link set "rtdata$i" down ;;
    data-up) ip link set "rtdata$i" up ;;
    rate) shape "$ns" eth1 "${3:?}"; shape - "rtdata$i" "${3:?}" ;;
    *) usage ;;
  esac
}

case ${1:-} in
  up) shift; up "$@" ;;
  down) down ;;
  mpirun) shift; run_mpirun "$@" ;;
  link) shift; link "$@" ;;
  exec|enter) shift; enter "$@" ;;
  *) usage ;;
esac
