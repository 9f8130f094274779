#!/usr/bin/env bash
# Every way a job ends early, repeated under load: a non-finite stop (data parallel, a pipeline, parameter
# servers), an error every rank finds alike, an error of one rank alone (the job taken down by MPI_Abort), and
# SIGTERM. Two busy loops share the machine's cores with the ranks, so threads are descheduled at the worst
# moments: a background thread (the allreduce engine's, the heartbeat's, a parameter server's) that called
# MPI after MPI_Finalize, or touched what the main thread had freed, crashes some of the runs. Each run must
# end without a signal, in time, with the exit code its path promises on every rank, and with at most one
# error line.
# usage: failure_paths.sh RINGTRAIN MPIRUN [REPEATS]
set -uo pipefail
bin=$1 mpirun=$2 repeats=${3:-20}
source "$(dirname "$0")/common.sh"
make_test_dir
write_shards "$dir" train-00000.h5:256 test-00000.h5:32

load=()
for _ in 1 2; do
  (while :; do :; done) &
  load+=($!)
done
trap 'kill "${load[@]}" 2>/dev/null; pkill -KILL -f "$dir" 2>/dev/null; rm -rf "$dir"' EXIT

base=(train --data "$dir" --model "flatten,linear(16),relu,linear(out)" --batch 8)

# attempt NAME RANKS EXPECTED_EXIT MESSAGE MPIRUN_ARGS...: one run; EXPECTED_EXIT "aborted": non-zero or
# killed by the launcher.
attempt() {
  local name=$1 ranks=$2 expected=$3 message=$4
  shift 4
  local args=("$@")
  rm -rf "$dir/exits" "$dir/ckpt" && mkdir "$dir/exits"
  local start=$SECONDS
  timeout 60 "$mpirun" --oversubscribe "${args[@]}" >"$dir/out" 2>"$dir/err" &
  local job=$!
  if [[ $name == sigterm ]]; then  # to rank 1, once it trains (before, SIGTERM's default action ends it)
    local pid="" waited=0
    while ! grep -q '^model ' "$dir/out" 2>/dev/null && ((waited < 200)); do sleep 0.1; ((++waited)); done
    pid=$(pid_of 1)
    kill -TERM "$pid" 2>/dev/null
  fi
  wait "$job"
  local rc=$? took=$((SECONDS - start))
  [[ $rc != 124 ]] || fail "$name: hung: $(tail -3 "$dir/err")"
  ((took <= 30)) || fail "$name: took $took s"
  ! grep -Eiq "segmentation|signal [0-9]|core dumped|terminate called|double free|corrupted|MPI_Finalize has been called" \
    "$dir/err" || fail "$name: crashed: $(grep -Ei -m3 'segmentation|signal|core|terminate|free|corrupt|Finalize' "$dir/err")"
  local code r
  for ((r = 0; r < ranks; ++r)); do
    code=$(cat "$dir/exits/$r" 2>/dev/null || echo none)
    [[ $code == "$expected" || ($expected == aborted && $code != 0) ]] ||
      fail "$name: rank $r exited $code, expected $expected: $(head -c 3000 "$dir/err")"
  done
  local lines
  lines=$(grep -c '^ringtrain: error:' "$dir/err")
  ((lines <= 1)) || fail "$name: $lines error lines: $(cat "$dir/err")"
  grep -qF -- "$message" "$dir/err" "$dir/out" || fail "$name: does not say '$message': $(cat "$dir/err")"
}

# Each rank records its exit code; a rank killed by the launcher (MPI_Abort of another) records none.
ringtrain=(sh -c '"$@"; echo $? >"'"$dir"'/exits/$OMPI_COMM_WORLD_RANK"' sh "$bin")

start=$SECONDS
for ((i = 1; i <= repeats; ++i)); do
  attempt nonfinite-sync 2 1 "non-finite gradient" -np 2 "${ringtrain[@]}" "${base[@]}" --epochs 2 --lr 1e30
  attempt nonfinite-pipeline 2 1 "non-finite" -np 2 "${ringtrain[@]}" "${base[@]}" --epochs 2 --lr 1e30 \
    --pipeline-stages 2 --micro-batches 2
  attempt nonfinite-ps 3 1 "non-finite" -np 3 "${ringtrain[@]}" "${base[@]}" --epochs 2 --lr 1e30 --mode ps
  attempt every-rank-alike 2 1 "--momentum must be in [0, 1)" -np 2 "${ringtrain[@]}" "${base[@]}" --epochs 2 --momentum 2
  attempt one-rank-alone 2 aborted "rank 1: no training shards" -np 1 "${ringtrain[@]}" "${base[@]}" --epochs 2 : \
    -np 1 "${ringtrain[@]}" train --data "$dir/none" --model "flatten,linear(16),relu,linear(out)" --batch 8 --epochs 2
  attempt sigterm 2 0 "stopped by" -np 2 "${ringtrain[@]}" "${base[@]}" --epochs 1000 --straggler-rank 0 \
    --straggler-ms 20 --checkpoint-dir "$dir/ckpt"
done
echo "PASS: 6 failure paths x $repeats under load, no crash, no hang ($((SECONDS - start)) s)"
