#!/usr/bin/env bash
# Real SLURM jobs on the local one-node cluster (slurm/local-cluster.sh, started by the slurm.start fixture):
# the templates through sbatch --wait, and srun -n 2 directly. Each trains 2 ranks for a few steps on small
# shards and must finish with both ranks, a test score and the job's own metrics file, having staged the
# shards to the node's TMPDIR (the default in a SLURM job), into a directory of the user's and the job's own.
# sbatch-override: flags after the template's name override the template's own (--model, --threads, --metrics,
# --checkpoint-dir) and add to them (--batch), as the README's `sbatch ... train-multi-node.sbatch --model cnn`.
# srun-sigterm: SLURM ends a job early as its time limit does, SIGTERM to every task (scancel --signal=TERM):
# both ranks stop at one step, the checkpoint is written, srun exits 0, and a new srun resumes from it.
# usage: jobs.sh RINGTRAIN REPO_ROOT CLUSTER_DIR sbatch-srun|sbatch-mpirun|sbatch-override|srun|srun-sigterm
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

# check_job OUTPUT_FILE METRICS_FILE JOB_ID [BATCH]: both ranks trained (BATCH a rank, 8 unless given), the run
# finished, and the shards were staged to TMPDIR/ringtrain-stage-<user>-<job id>, which the run removed at its end.
check_job() {
  local stage=$TMPDIR/ringtrain-stage-$(id -un)-$3
  grep -q "batch ${4:-8} x 2 ranks" "$1" || fail "the job did not train on 2 ranks: $(cat "$1")"
  grep -q '^test  test_loss' "$1" || fail "the job did not finish: $(cat "$1")"
  [[ -s $2 ]] || fail "no metrics file $2 (named by the job id): $(ls)"
  grep -qF "  staged 2 shards to $stage on 1 node" "$1" || fail "the job did not stage to $stage: $(cat "$1")"
  [[ ! -e $stage ]] || fail "the job left its staged copies in $stage: $(ls -R "$stage")"
}

case $what in
  sbatch-srun|sbatch-mpirun)
    template=$repo/slurm/train-multi-node.sbatch
    [[ $what == sbatch-mpirun ]] && template=$repo/slurm/train-mpirun.sbatch
    submitted=$(timeout 180 sbatch --parsable --wait --nodes=1 --ntasks=2 --ntasks-per-node=2 "$template" "${flags[@]}")
    rc=$?
    job=${submitted%%;*}
    [[ $rc == 0 ]] || fail "sbatch --wait $template: exit $rc: $(cat "ringtrain-$job.out" 2>/dev/null)"
    check_job "ringtrain-$job.out" "ringtrain-$job.csv" "$job"
    if [[ $what == sbatch-srun ]]; then  # the template checkpoints into ckpt-<job id>, at the end at least
      ls "ckpt-$job"/step-*.h5 >/dev/null 2>&1 || fail "no checkpoint in ckpt-$job: $(ls)"
    fi
    echo "job $job ($(basename "$template")): $(grep '^test' "ringtrain-$job.out")"
    ;;
  sbatch-override)
    # The template passes --model "$MODEL" (this test's model), --threads 1, --metrics ringtrain-%j.csv and
    # --checkpoint-dir ckpt-%j before the user's flags; each of these takes the user's later value instead.
    model="flatten,linear(16),tanh,linear(out)"
    submitted=$(timeout 180 sbatch --parsable --wait --nodes=1 --ntasks=2 --ntasks-per-node=2 \
      "$repo/slurm/train-multi-node.sbatch" --epochs 1 --model "$model" --batch 4 --threads 2 \
      --metrics "override-%j.csv" --checkpoint-dir "ckpt-override-%j")
    rc=$?
    job=${submitted%%;*}
    out=ringtrain-$job.out
    [[ $rc == 0 ]] || fail "sbatch --wait train-multi-node.sbatch --model ...: exit $rc: $(cat "$out" 2>/dev/null)"
    grep -qx 'model flatten,linear(16),tanh,linear(3)' "$out" ||
      fail "the job did not train the user's --model: $(cat "$out")"
    # 16 inputs -> 16 -> 3 classes: 16 x 16 + 16 + 16 x 3 + 3 parameters, 4 samples a rank, 2 threads a rank.
    grep -q '^  input \[1, 4, 4\], 323 parameters; .*, batch 4 x 2 ranks (.*), 2 threads$' "$out" ||
      fail "the job did not take the user's --batch and --threads: $(cat "$out")"
    check_job "$out" "override-$job.csv" "$job" 4
    [[ ! -e ringtrain-$job.csv ]] || fail "the template's --metrics ringtrain-$job.csv was not overridden"
    ls "ckpt-override-$job"/step-*.h5 >/dev/null 2>&1 || fail "no checkpoint in the user's ckpt-override-$job: $(ls)"
    [[ ! -e ckpt-$job ]] || fail "the template's --checkpoint-dir ckpt-$job was not overridden"
    echo "job $job (train-multi-node.sbatch --model $model --batch 4 --threads 2): $(grep '^test' "$out")"
    ;;
  srun)
    timeout 180 srun -n 2 --mpi=pmix "$bin" train --data "$DATA" --model "$MODEL" "${flags[@]}" \
      --metrics "srun-%j.csv" >out 2>err || fail "srun -n 2: $(cat err)"
    metrics=$(ls srun-*.csv | head -1)
    job=${metrics#srun-} job=${job%.csv}  # the allocation srun made for itself
    check_job out "$metrics" "$job"
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
