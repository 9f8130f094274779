#!/usr/bin/env bash
# SLURM across the emulated cluster: slurm/local-cluster.sh --emulated starts a slurmd in each node (its own
# network namespace, host name and /tmp), and `sbatch --wait --nodes=2 --ntasks-per-node=2` runs the
# multi-node template: 4 ranks joined through PMIx on 2 nodes, the hierarchical allreduce, and the shards
# staged once per node into the node's own $TMPDIR.
# usage: slurm.sh RINGTRAIN SOURCE_DIR WORK_DIR   (WORK_DIR outside /tmp, which the nodes do not share)
set -uo pipefail
bin=$1 src=$2 work=$3
mpirun=mpirun
source "$src/tests/mpi/common.sh"
state=${RINGTRAIN_CLUSTER_DIR:-/tmp/ringtrain-cluster}
[[ -f $state/hostfile ]] || { echo "SKIP: the emulated cluster is not up (cluster.up needs root)"; exit 77; }
rm -rf "$work" && mkdir -p "$work"
write_shards "$work/data" train-00000.h5:400 train-00001.h5:400 test-00000.h5:100
"$src/slurm/local-cluster.sh" start "$work/slurm" --emulated || fail "SLURM did not start on the emulated nodes"
trap '"$src/slurm/local-cluster.sh" stop "$work/slurm"' EXIT
export SLURM_CONF=$work/slurm/slurm.conf
cd "$work"
# TMPDIR=/tmp: each node's own, as a site's node-local scratch; the job stages there by default.
TMPDIR=/tmp RINGTRAIN=$bin DATA=$work/data MODEL="flatten,linear(8),relu,linear(out)" timeout 120 \
  sbatch --wait --nodes=2 --ntasks-per-node=2 "$src/slurm/train-multi-node.sbatch" --epochs 1 --batch 8 \
  >sbatch.out 2>&1 || fail "the job failed: $(cat sbatch.out ringtrain-*.out 2>/dev/null)"
out=$(cat ringtrain-*.out)
job=$(sed -n 's/^job \([0-9]*\):.*/\1/p' <<<"$out")
grep -q "^job $job: 4 tasks on 2 node(s): rtnode\[1-2\]" <<<"$out" || fail "not 4 tasks on 2 nodes: $out"
grep -q "batch 8 x 4 ranks (hierarchical allreduce)" <<<"$out" || fail "not hierarchical: $out"
grep -q "^  staged 3 shards to /tmp/ringtrain-stage-$(id -un)-$job on 2 nodes: 6 copied" <<<"$out" ||
  fail "not staged once per node: $out"
grep -q '^test  test_loss' <<<"$out" || fail "the job did not finish: $out"
echo "sbatch --nodes=2: 4 ranks on rtnode1 and rtnode2, hierarchical allreduce, staged once per node"
echo "PASS"
