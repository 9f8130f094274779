#!/usr/bin/env bash
# `ringtrain sweep --slurm` on the local one-node SLURM (slurm/local-cluster.sh, started by the slurm.start
# fixture): a real job array, one task per trial, each task 2 ranks under srun.
#   array   the script the sweep writes, submitted with the command it prints (sbatch, here --wait): every
#           trial finishes on 2 ranks in its run directory with the array task's log beside it (trial-%3a/
#           slurm-%A_%a.out), and --collect ranks all of them
#   submit  --submit: the sweep submits the array itself and prints its job id; the tasks end (squeue), and
#           --collect ranks them
# Each takes about 10 s.
# usage: sweep.sh RINGTRAIN CLUSTER_DIR array|submit
set -uo pipefail
bin=$1 cluster=$2 what=$3
export SLURM_CONF=$cluster/slurm.conf
source "$(dirname "$0")/../mpi/common.sh"
make_test_dir
[[ -f $SLURM_CONF ]] || fail "no local SLURM at $cluster (the slurm.start fixture starts it)"
cd "$dir"
write_shards data train-00000.h5:128 val-00000.h5:32
export TMPDIR=$dir/tmp  # the trials stage their shards here, as a SLURM job does by default
mkdir -p "$TMPDIR"
printf 'data = %s/data\nmodel = flatten,linear(8),relu,linear(out)\nepochs = 2\nbatch = 8\n' "$dir" >base.ini

# check_trials N: trials 0..N-1 finished on 2 ranks, each with its array task's log; --collect ranks N.
check_trials() {
  local t
  for ((t = 0; t < $1; ++t)); do
    local trial=sw/trial-00$t
    grep -q '"status": "finished"' $trial/run.json 2>/dev/null || fail "$trial did not finish: $(cat $trial/* 2>&1 | tail -20)"
    grep -q '"world_size": 2,' $trial/run.json || fail "$trial did not train on 2 ranks: $(cat $trial/run.json)"
    ls $trial/slurm-*_$t.out >/dev/null 2>&1 || fail "no array task log in $trial: $(ls $trial)"
    grep -q "^$dir/$trial: task $t of array job " $trial/slurm-*_$t.out || fail "$trial's log: $(cat $trial/slurm-*.out)"
  done
  timeout 60 "$bin" sweep --collect sw >collect 2>err || fail "--collect: $(cat collect err)"
  grep -q "^$1 trials in sw, $1 ranked by their best epoch's val_accuracy" collect || fail "--collect: $(cat collect)"
}

case $what in
  array)
    timeout 60 "$bin" sweep --config base.ini --grid lr=0.3,0.03 --random "momentum=uniform(0.5,0.9)" --trials 2 \
      --out sw --slurm --ntasks 2 --time 5 >out 2>err || fail "sweep --slurm: $(cat out err)"
    grep -q "^wrote $dir/sw/sweep.sbatch: an array of 4 tasks, 2 ranks each" out || fail "$(cat out)"
    grep -q '^#SBATCH --array=0-3$' sw/sweep.sbatch || fail "the array: $(cat sw/sweep.sbatch)"
    submit=$(sed -n 's/^submit it with: //p' out)
    [[ $submit == "sbatch $dir/sw/sweep.sbatch" ]] || fail "the command to submit: $(cat out)"
    start=$SECONDS
    timeout 120 sbatch --wait "$dir/sw/sweep.sbatch" >sbatch.out 2>&1 || fail "sbatch --wait: $(cat sbatch.out)"
    check_trials 4
    echo "array of 4 trials x 2 ranks in $((SECONDS - start)) s: $(tr -s ' ' <collect | head -4 | tail -2 | tr '\n' ';')"
    ;;
  submit)
    timeout 60 "$bin" sweep --config base.ini --grid lr=0.3,0.03 --out sw --slurm --ntasks 2 --submit >out 2>err ||
      fail "sweep --slurm --submit: $(cat out err)"
    job=$(sed -n 's/^submitted array job \([0-9]*\): squeue -j .*/\1/p' out)
    [[ -n $job ]] || fail "no job id: $(cat out)"
    waited=0
    while [[ -n $(squeue -h -j "$job" 2>/dev/null) ]] && ((waited < 1200)); do sleep 0.1; ((++waited)); done
    [[ -z $(squeue -h -j "$job" 2>/dev/null) ]] || fail "array job $job did not end in 2 minutes: $(squeue)"
    check_trials 2
    echo "submitted array job $job, 2 trials: $(tr -s ' ' <collect | head -4 | tail -2 | tr '\n' ';')"
    ;;
  *) fail "unknown case $what" ;;
esac
echo PASS
