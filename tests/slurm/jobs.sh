#!/usr/bin/env bash
# Real SLURM jobs on the local one-node cluster (slurm/local-cluster.sh, started by the slurm.start fixture):
# the templates through sbatch --wait, and srun -n 2 directly. Each trains 2 ranks for a few steps on small
# shards and must finish with both ranks, a test score and the job's own metrics file, having staged the
# shards to the node's TMPDIR (the default in a SLURM job).
# srun-sigterm: SLURM ends a job early as its time limit does, SIGTERM to every task (scancel --signal=TERM):
# both ranks stop at one step, the checkpoint is written, srun exits 0, and a new srun resumes from it.
# usage: jobs.sh RINGTRAIN REPO_ROOT CLUSTER_DIR sbatch-srun|sbatch-mpirun|srun|srun-sigterm
set -uo pipefail
bin=$1 repo=$2 cluster=$3 what=$4
export SLURM_CONF=$cluster/slurm.conf RINGTRAIN=$bin OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
source "$repo/tests/mpi/common.sh"
make_test_dir
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
    if [[ $what == sbatch-srun ]]; then  # the template checkpoints into ckpt-<job id>, at the end at least
      ls "ckpt-$job"/step-*.h5 >/dev/null 2>&1 || fail "no checkpoint in ckpt-$job: $(ls)"
    fi
    echo "job $job ($(basename "$template")): $(grep '^test' "ringtrain-$job.out")"
    ;;
  srun)
    timeout 180 srun -n 2 --mpi=pmix "$bin" train --data "$DATA" --model "$MODEL" "${flags[@]}" \
      --metrics "srun-%j.csv" >out 2>err || fail "srun -n 2: $(cat err)"
    check_job out "$(ls srun-*.csv | head -1)"
    echo "srun -n 2: $(grep '^test' out)"
    ;;
  srun-sigterm)
    train=(train --data "$DATA" --model "$MODEL" --batch 8 --checkpoint-dir ckpt --stage-to none)
    timeout 180 srun -n 2 --mpi=pmix --job-name=ringtrain-sigterm "$bin" "${train[@]}" --epochs 50 \
      --straggler-rank 0 --straggler-ms 20 --checkpoint-every 5 >out 2>err &
    run=$! waited=0
    while [[ ! -e ckpt/step-000000000010.h5 ]] && ((waited < 600)); do sleep 0.1; ((++waited)); done
    job=$(squeue -h -n ringtrain-sigterm -o %i | head -1)
    [[ -n $job ]] || fail "the job is not in squeue: $(cat err)"
    scancel --signal=TERM "$job"
    wait "$run"
    rc=$?
    [[ $rc == 0 ]] || fail "srun after scancel --signal=TERM: exit $rc: $(cat err)"
    grep -q '^stopped by SIGTERM after step [0-9]*; --resume auto continues' out || fail "no stop line: $(cat out)"
    step=$(sed -n 's/^stopped by SIGTERM after step \([0-9]*\);.*/\1/p' out)
    timeout 180 srun -n 2 --mpi=pmix "$bin" "${train[@]}" --epochs 2 --resume auto >out2 2>err2 ||
      fail "resuming: $(cat err2)"
    grep -q "^resuming from ckpt/step-.*(step $step," out2 || fail "did not resume from step $step: $(cat out2)"
    grep -q '^test  test_loss' out2 || fail "the resumed job did not finish: $(cat out2)"
    echo "scancel --signal=TERM $job: stopped after step $step, exit 0; resumed and finished"
    ;;
  *) fail "unknown case $what" ;;
esac
echo PASS
