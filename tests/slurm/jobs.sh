#!/usr/bin/env bash
# Real SLURM jobs on the local one-node cluster (slurm/local-cluster.sh, started by the slurm.start fixture):
# the templates through sbatch --wait, and srun -n 2 directly. Each trains 2 ranks for a few steps on small
# shards and must finish with both ranks, a test score and the job's own metrics file, having staged the
# shards to the node's TMPDIR (the default in a SLURM job).
# usage: jobs.sh RINGTRAIN REPO_ROOT CLUSTER_DIR sbatch-srun|sbatch-mpirun|srun
set -uo pipefail
bin=$1 repo=$2 cluster=$3 what=$4
export SLURM_CONF=$cluster/slurm.conf RINGTRAIN=$bin OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
source "$repo/tests/mpi/common.sh"
[[ -f $SLURM_CONF ]] || fail "no local SLURM at $cluster (the slurm.start fixture starts it)"
write_shards "$dir/data" train-00000.h5:256 test-00000.h5:64
export TMPDIR=$dir/tmp
mkdir -p "$TMPDIR"
export DATA=$dir/data MODEL="flatten,linear(8),relu,linear(out)"
cd "$dir"  # the submit directory: jobs write ringtrain-<job>.out and .csv here
flags=(--epochs 1 --batch 8)

# check_job OUTPUT_FILE METRICS_FILE: both ranks trained and the run finished.
check_job() {
  grep -q 'batch 8 x 2 ranks' "$1" || fail "the job did not train on 2 ranks: $(cat "$1")"
  grep -q '^test  test_loss' "$1" || fail "the job did not finish: $(cat "$1")"
  [[ -s $2 ]] || fail "no metrics file $2 (named by the job id): $(ls)"
  grep -q "^  staged 2 shards to $TMPDIR/ringtrain-stage on 1 node" "$1" || fail "the job did not stage to TMPDIR: $(cat "$1")"
}

case $what in
  sbatch-srun|sbatch-mpirun)
    template=$repo/slurm/train-multi-node.sbatch
    [[ $what == sbatch-mpirun ]] && template=$repo/slurm/train-mpirun.sbatch
    submitted=$(timeout 180 sbatch --parsable --wait --nodes=1 --ntasks=2 --ntasks-per-node=2 "$template" "${flags[@]}")
    rc=$?
    job=${submitted%%;*}
    [[ $rc == 0 ]] || fail "sbatch --wait $template: exit $rc: $(cat "ringtrain-$job.out" 2>/dev/null)"
    check_job "ringtrain-$job.out" "ringtrain-$job.csv"
    echo "job $job ($(basename "$template")): $(grep '^test' "ringtrain-$job.out")"
    ;;
  srun)
    timeout 180 srun -n 2 --mpi=pmix "$bin" train --data "$DATA" --model "$MODEL" "${flags[@]}" \
      --metrics "srun-%j.csv" >out 2>err || fail "srun -n 2: $(cat err)"
    check_job out "$(ls srun-*.csv | head -1)"
    echo "srun -n 2: $(grep '^test' out)"
    ;;
  *) fail "unknown case $what" ;;
esac
echo PASS
