#!/usr/bin/env bash
# ringtrain doctor for real: a healthy one-process job (exit 0), 3 ranks with more compute threads than the
# machine has CPUs (a row each, the oversubscription warning, exit 3), tasks that MPI did not join (the launcher's
# variables of a 2-task srun given to processes that are each a world of one: each prints its own one-row
# table and the warning), and a bad flag (one error line, exit 1).
# usage: doctor.sh RINGTRAIN MPIRUN
set -uo pipefail
bin=$1 mpirun=$2
source "$(dirname "$0")/common.sh"
make_test_dir
# Outside any launcher, whatever ran this test.
unset OMPI_COMM_WORLD_RANK OMPI_COMM_WORLD_SIZE OMPI_COMM_WORLD_LOCAL_RANK SLURM_STEP_ID SLURM_PROCID SLURM_NTASKS

rows() { grep -cE '^[0-9]+  ' "$1"; }  # a table row: the rank, then two spaces or more

timeout 60 "$bin" doctor >"$dir/out" 2>"$dir/err"
rc=$?
[[ $rc == 0 ]] || fail "one process: exit $rc, expected 0: $(cat "$dir/out" "$dir/err")"
[[ $(rows "$dir/out") == 1 ]] || fail "one process: expected one row: $(cat "$dir/out")"
head -1 "$dir/out" | grep -q '^rank  host  local  gpu  ' || fail "no table header: $(cat "$dir/out")"
tail -1 "$dir/out" | grep -qx 'no warnings' || fail "one process: $(cat "$dir/out")"

# 3 ranks of --threads T on N CPUs with 3 T > N: oversubscribed however mpirun binds them (on 2 CPUs, T is 1,
# the default).
cpus=$(nproc)
threads=$((cpus / 3 + 1))
timeout 120 "$mpirun" --oversubscribe -np 3 "$bin" doctor --threads "$threads" >"$dir/out" 2>"$dir/err"
rc=$?
[[ $rc == 3 ]] || fail "3 ranks on $cpus CPUs: exit $rc, expected 3: $(cat "$dir/out" "$dir/err")"
[[ $(rows "$dir/out") == 3 ]] || fail "3 ranks: expected 3 rows: $(cat "$dir/out")"
for rank in 0 1 2; do
  grep -qE "^$rank +[^ ]+ +$rank +.* $threads +" "$dir/out" || fail "no row for rank $rank (local rank $rank): $(cat "$dir/out")"
done
grep -q "^warning: oversubscribed: host .*compute threads on .* CPU" "$dir/out" ||
  fail "no oversubscription warning: $(cat "$dir/out")"
! grep -q '^ringtrain: error' "$dir/err" || fail "3 ranks: $(cat "$dir/err")"

# srun -n 2 without PMI, as each task sees it: SLURM says 2 tasks, MPI a world of 1. Two at once, as srun starts them.
for task in 0 1; do
  SLURM_STEP_ID=0 SLURM_PROCID=$task SLURM_LOCALID=$task SLURM_NTASKS=2 timeout 60 "$bin" doctor \
    >"$dir/out$task" 2>"$dir/err$task" &
done
for task in 0 1; do
  wait -n
  rc=$?
  [[ $rc == 3 ]] || fail "a task of a launch MPI did not join: exit $rc, expected 3: $(cat "$dir"/out? "$dir"/err?)"
done
for task in 0 1; do
  [[ $(rows "$dir/out$task") == 1 ]] || fail "task $task: expected its own one-row table: $(cat "$dir/out$task")"
  grep -qE "^0 +[^ ]+ +$task " "$dir/out$task" || fail "task $task: not rank 0 with local rank $task: $(cat "$dir/out$task")"
  grep -q '^warning: launch: srun started 2 tasks but MPI sees a world of 1 rank' "$dir/out$task" ||
    fail "task $task: no launch warning: $(cat "$dir/out$task")"
done

expect_error 2 "--threads must be at least 1" doctor --threads 0
timeout 60 "$bin" doctor --bogus >/dev/null 2>"$dir/err"
rc=$?
[[ $rc == 2 ]] || fail "doctor --bogus: exit $rc, expected 2 (a usage error): $(cat "$dir/err")"
echo "doctor: all checks passed"
