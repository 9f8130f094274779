#!/usr/bin/env bash
# Allreduce bus bandwidth at 2 ranks, one run: ringtrain's ring and MPI_Allreduce side by side
# (build/bench/allreduce, nccl-tests columns), then the gloo peer (../shared/peers/gloo_allreduce.sh), and
# the ratio of our busbw to each, size by size.
# usage: bench/allreduce.sh [ROUNDS]     (run .ci/setup --no-run first)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
peers=${PEERS:-$(cd .. && pwd)/shared/peers}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
allreduce=${ALLREDUCE:-build/bench/allreduce}
[[ -x $allreduce ]] || { echo "run .ci/setup --no-run first (or set ALLREDUCE)"; exit 1; }
ours=$(mktemp) gloo=$(mktemp)
trap 'rm -f "$ours" "$gloo"' EXIT
mpirun --oversubscribe -np 2 "$allreduce" 4096 $((256 << 20)) "$rounds" | tee "$ours"
if [[ -f $peers/gloo_allreduce.sh ]] && /usr/bin/python3 -c "import torch" 2>/dev/null; then
  echo "# gloo peer (torch.distributed, 2 ranks)"
  bash "$peers/gloo_allreduce.sh" | tee "$gloo"
  echo "# ours vs both peers (busbw ratio)"
  printf "%12s %10s %10s %10s %9s %9s\n" bytes ring_busbw mpi_busbw gloo_busbw ring/mpi ring/gloo
  awk 'NR == FNR { if ($1 ~ /^[0-9]+$/) { ring[$1] = $5; mpi[$1] = $8 } next }
       $1 ~ /^[0-9]+$/ && ($1 in ring) { printf "%12d %10.2f %10.2f %10.2f %9.2f %9.2f\n", $1, ring[$1], mpi[$1], $4,
                                         ring[$1] / mpi[$1], ring[$1] / $4 }' "$ours" "$gloo"
else
  echo "# gloo peer skipped: no $peers/gloo_allreduce.sh or no python3-torch"
fi
