#!/usr/bin/env bash
# Allreduce busbw on the emulated cluster (tests/cluster/emulated_cluster.sh: 2 nodes of 2 ranks, links
# shaped to RATE): ringtrain's flat ring, its hierarchical ring (float32 and bf16 on the wire) and
# MPI_Allreduce in one mpirun across the nodes, then the gloo peer (torch.distributed, 4 ranks placed the
# same way, over the same links), and the ratios size by size. Last, the two-level alpha-beta model
# (bench/two_level_model.py), fitted on 2 ranks inside a node and on 2 ranks across nodes, beside the
# measured flat and hierarchical times. Needs root (network namespaces).
# usage: bench/allreduce_cluster.sh [ROUNDS] [RATE]    (default 3 rounds, 2gbit; run .ci/setup --no-run first)
# 2 Gbit/s rather than 10: on this 2-core machine the kernel's TCP stack tops out near 4 Gbit/s between
# namespaces, and at 10 Gbit/s the measurement would be of the CPU, not of the link.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3} rate=${2:-2gbit}
peers=${PEERS:-$(cd .. && pwd)/shared/peers}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
allreduce=${ALLREDUCE:-build/bench/allreduce}
[[ -x $allreduce ]] || { echo "run .ci/setup --no-run first (or set ALLREDUCE)"; exit 1; }
cluster=tests/cluster/emulated_cluster.sh
ours=$(mktemp) gloo=$(mktemp) one_node=$(mktemp) two_nodes=$(mktemp)
trap '$cluster down; rm -f "$ours" "$gloo" "$one_node" "$two_nodes"' EXIT
$cluster up --nodes 2 --rate "$rate"
$cluster mpirun --ranks-per-node 2 -np 4 "$allreduce" $((1 << 20)) $((256 << 20)) "$rounds" \
  ring,hierarchical,hierarchical+bf16,mpi | tee "$ours"
if [[ -f $peers/gloo_allreduce.py ]] && /usr/bin/python3 -c "import torch" 2>/dev/null; then
  echo "# gloo peer (torch.distributed, 4 ranks, 2 a node)"
  pids=()
  for rank in 3 2 1; do
    $cluster exec rtnode$((rank / 2 + 1)) env RANK=$rank WORLD_SIZE=4 MASTER_ADDR=10.232.0.11 MASTER_PORT=29578 \
      GLOO_SOCKET_IFNAME=eth1 OMP_NUM_THREADS=1 /usr/bin/python3 "$peers/gloo_allreduce.py" >/dev/null &
    pids+=($!)
  done
  $cluster exec rtnode1 env RANK=0 WORLD_SIZE=4 MASTER_ADDR=10.232.0.11 MASTER_PORT=29578 GLOO_SOCKET_IFNAME=eth1 \
    OMP_NUM_THREADS=1 /usr/bin/python3 "$peers/gloo_allreduce.py" | tee "$gloo"
  wait "${pids[@]}"
  echo "# ratios of busbw (hier = hierarchical, float32 on the wire unless +bf16)"
  printf "%12s %8s %8s %8s %8s %8s | %9s %9s %9s %9s\n" bytes ring hier hier+bf16 mpi gloo hier/ring hier/mpi \
    hier/gloo ring/gloo
  awk 'NR == FNR { if ($1 ~ /^[0-9]+$/) { ring[$1] = $5; hier[$1] = $8; bf[$1] = $11; mpi[$1] = $14 } next }
       $1 ~ /^[0-9]+$/ && ($1 in ring) {
         printf "%12d %8.3f %8.3f %8.3f %8.3f %8.3f | %9.2f %9.2f %9.2f %9.2f\n", $1, ring[$1], hier[$1], bf[$1],
                mpi[$1], $4, hier[$1] / ring[$1], hier[$1] / mpi[$1], hier[$1] / $4, ring[$1] / $4 }' "$ours" "$gloo"
else
  echo "# gloo peer skipped: no $peers/gloo_allreduce.py or no python3-torch"
fi
echo "# the two-level model: fits on 2 ranks inside one node and on 1 rank on each of 2 nodes"
$cluster mpirun --nodes 1 --ranks-per-node 2 -np 2 "$allreduce" $((1 << 20)) $((64 << 20)) "$rounds" ring >"$one_node"
$cluster mpirun --ranks-per-node 1 -np 2 "$allreduce" $((1 << 20)) $((64 << 20)) "$rounds" ring >"$two_nodes"
/usr/bin/python3 bench/two_level_model.py "$one_node" "$two_nodes" "$ours" 2 2
