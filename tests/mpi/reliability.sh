#!/usr/bin/env bash
# Checkpoints, early stops and lost ranks through the CLI under mpirun.
# - Resume: a run cut at step 25 (checkpoints every 9 steps, one of them deferred to an epoch's end) and
#   continued with --resume auto ends with weights bitwise identical to an uninterrupted run: data parallel
#   on 2 and 3 ranks, a 2-stage pipeline, parameter servers (2 workers + 1 server, staleness 0); the same
#   with a frozen layer (--freeze); and with early stopping, which stops the resumed run after the same
#   epoch, its best model the same.
# - SIGTERM to one rank (a data-parallel rank, a pipeline stage, a parameter-server worker, the server):
#   every rank stops at the same step, a checkpoint is written, every rank exits 0, and resuming finishes
#   bitwise like the uninterrupted run.
# - SIGKILL to one rank: the job ends within 30 s naming it (mpirun names it; with orte_enable_recovery,
#   which keeps mpirun from killing the job itself, ringtrain's heartbeat does), and --resume auto finishes
#   from the last checkpoint, bitwise again.
# - SIGSTOP to one rank: the heartbeat says it is stopped (not dead) and ends the job.
# - Only the newest --keep-checkpoints remain; a damaged newest checkpoint is passed over by --resume auto.
# - h5py reads a checkpoint as docs/checkpoints.md describes it; `ringtrain eval` scores one.
# usage: reliability.sh RINGTRAIN MPIRUN
set -uo pipefail
bin=$1 mpirun=$2
source "$(dirname "$0")/common.sh"
make_test_dir
write_shards "$dir" train-00000.h5:300 train-00001.h5:300 test-00000.h5:64
base=(train --data "$dir" --model "flatten,linear(16),relu,dropout(0.2),linear(out)" --batch 8 --epochs 2
      --optimizer adam --lr 0.01)

# same FILE_A FILE_B WHAT: every dataset bitwise equal (h5diff without a tolerance compares exactly).
same() { h5diff "$1" "$2" >/dev/null || fail "$3: the weights differ from the uninterrupted run's: $(h5diff "$1" "$2" | head -5)"; }

# resume_case NAME NP MODE_ARGS...: cut at step 25, resume, compare with the uninterrupted run.
resume_case() {
  local name=$1 np=$2
  shift 2
  run "$np" "$name.ref" "$@" --save "$dir/$name.ref.h5"
  run "$np" "$name.cut" "$@" --steps 25 --checkpoint-dir "$dir/$name" --checkpoint-every 9
  run "$np" "$name.resumed" "$@" --checkpoint-dir "$dir/$name" --resume auto --save "$dir/$name.resumed.h5"
  grep -q "resuming from $dir/$name/step-000000000025.h5 (step 25" "$dir/$name.resumed.out" ||
    fail "$name: did not resume from step 25: $(cat "$dir/$name.resumed.out")"
  same "$dir/$name.ref.h5" "$dir/$name.resumed.h5" "$name"
  echo "resume $name: bitwise identical"
}
resume_case sync2 2
resume_case sync3 3
resume_case pipeline 2 --pipeline-stages 2 --micro-batches 2
resume_case ps 3 --mode ps --staleness 0
# Fine-tuning runs too: a frozen layer keeps no optimizer state, so the state of the others is placed by position.
resume_case sync2-frozen 2 --freeze linear1
resume_case pipeline-frozen 2 --pipeline-stages 2 --micro-batches 2 --freeze linear1
resume_case ps-frozen 3 --mode ps --staleness 0 --freeze linear1

# Early stopping (val_accuracy, patience 2) with --save-best: the uninterrupted run stops after epoch 9 of 10,
# its best epoch the 7th. A run cut in the 8th (its best model written, one epoch counted) and resumed stops
# after the same epoch, with the same final and best models.
early=(--epochs 10 --val "$dir/test-00000.h5" --monitor val_accuracy --early-stop-patience 2)
run 2 early.ref "${early[@]}" --save "$dir/early.ref.h5" --save-best "$dir/early.ref-best.h5"
grep -q "^early stopping: val_accuracy has not improved .*; the run ends after epoch [0-9] of 10" "$dir/early.ref.out" ||
  fail "early stopping: the reference run did not stop early: $(cat "$dir/early.ref.out")"
run 2 early.cut "${early[@]}" --steps 280 --checkpoint-dir "$dir/early" --checkpoint-every 9 \
  --save-best "$dir/early-best.h5"
run 2 early.resumed "${early[@]}" --checkpoint-dir "$dir/early" --resume auto --save "$dir/early.resumed.h5" \
  --save-best "$dir/early-best.h5"
[[ "$(grep '^early stopping' "$dir/early.resumed.out")" == "$(grep '^early stopping' "$dir/early.ref.out")" ]] ||
  fail "early stopping: the resumed run stopped otherwise: $(cat "$dir/early.resumed.out")"
same "$dir/early.ref.h5" "$dir/early.resumed.h5" "early stopping, resumed"
same "$dir/early.ref-best.h5" "$dir/early-best.h5" "early stopping's best model, resumed"
echo "early stopping: $(grep '^early stopping' "$dir/early.ref.out" | sed 's/.*; //'), resumed alike; bitwise identical"

# h5py reads a checkpoint: parameters by layer, optimizer state, random streams, where training stood, the
# settings; and `ringtrain eval` scores it as a model file.
/usr/bin/python3 - "$dir/pipeline/step-000000000025.h5" <<'PY' || fail "h5py does not read a checkpoint as documented"
import sys, h5py
f = h5py.File(sys.argv[1], "r")
text = lambda v: v.decode() if isinstance(v, bytes) else str(v)
assert text(f.attrs["checkpoint"]) == "ringtrain-checkpoint-1" and text(f.attrs["format"]) == "ringtrain-model-1"
assert int(f.attrs["step"]) == 25 and int(f.attrs["optimizer_steps"]) == 25, dict(f.attrs)
assert f["linear1/weight"].shape == (16, 16) and f["linear2/bias"].shape == (3,)
for name in ("linear1/weight", "linear1/bias", "linear2/weight", "linear2/bias"):
    for state in ("exp_avg", "exp_avg_sq"):
        assert f[f"optimizer/{name}/{state}"].shape == f[name].shape
assert int(f["rng/dropout1/stream0"][0]) == 50, f["rng/dropout1/stream0"][()]  # 25 steps x 2 micro-batches
settings = [text(s) for s in f.attrs["settings"]]
assert "--pipeline-stages=2" in settings and "ranks=2" in settings, settings
PY
timeout 60 "$bin" eval --model-file "$dir/pipeline/step-000000000025.h5" --data "$dir" >/dev/null ||
  fail "ringtrain eval does not read a checkpoint"

run 2 keep --steps 40 --checkpoint-dir "$dir/keep" --checkpoint-every 9 --keep-checkpoints 2
[[ "$(ls "$dir/keep" | tr '\n' ' ')" == "step-000000000036.h5 step-000000000040.h5 " ]] ||
  fail "--keep-checkpoints 2 left: $(ls "$dir/keep")"
# A damaged newest checkpoint (a crash mid-copy by hand, a full disk) is passed over.
head -c 1000 "$dir/keep/step-000000000040.h5" >"$dir/keep/step-000000000041.h5"
run 2 skip --checkpoint-dir "$dir/keep" --resume auto --steps 45
grep -q "skipping checkpoint $dir/keep/step-000000000041.h5" "$dir/skip.out" || fail "no skip line: $(cat "$dir/skip.out")"
grep -q "resuming from $dir/keep/step-000000000040.h5" "$dir/skip.out" || fail "did not fall back to step 40"

# interrupt SIGNAL RANK NAME NP "MODE ARGS" [MPIRUN ARGS...]: a slowed run (30 ms a step) with checkpoints
# every 9 steps; the signal to one rank once the checkpoint of step 18 is there. Leaves mpirun's exit code
# in $rc and the seconds the job took after the signal in $took.
interrupt() {
  local signal=$1 rank=$2 name=$3 np=$4 mode=($5)
  shift 5
  timeout 120 "$mpirun" --oversubscribe -np "$np" "$@" "$bin" "${base[@]}" "${mode[@]}" --straggler-rank 0 \
    --straggler-ms 30 --checkpoint-dir "$dir/$name" --checkpoint-every 9 --save "$dir/$name.h5" \
    >"$dir/$name.out" 2>"$dir/$name.err" &
  local job=$! pid="" waited=0
  while [[ -z $pid ]] && ((waited < 100)); do sleep 0.1; ((++waited)); pid=$(pid_of "$rank"); done
  [[ -n $pid ]] || fail "$name: rank $rank never started"
  waited=0
  while [[ ! -e "$dir/$name/step-000000000018.h5" ]] && ((waited < 300)); do sleep 0.1; ((++waited)); done
  kill "-$signal" "$pid"
  local start=$SECONDS
  wait "$job"
  rc=$? took=$((SECONDS - start))
}

# term_case NAME NP RANK "MODE ARGS" REFERENCE: SIGTERM to RANK, then resume and compare.
term_case() {
  local name=$1 np=$2 rank=$3 mode=$4 reference=$5
  interrupt TERM "$rank" "$name" "$np" "$mode"
  [[ $rc == 0 ]] || fail "$name: exit $rc (every rank should exit 0): $(cat "$dir/$name.err")"
  grep -Eq "^stopped by (SIGTERM|a signal to another rank) after step [0-9]*; --resume auto continues" "$dir/$name.out" ||
    fail "$name: no stop line: $(cat "$dir/$name.out")"
  local stopped
  stopped=$(sed -n 's/^stopped by .* after step \([0-9]*\);.*/\1/p' "$dir/$name.out")
  [[ -e "$dir/$name/$(printf 'step-%012d.h5' "$stopped")" ]] || fail "$name: no checkpoint of step $stopped"
  [[ ! -e "$dir/$name.h5" ]] || fail "$name: a stopped run saved a final model"
  run "$np" "$name.resumed" $mode --checkpoint-dir "$dir/$name" --resume auto --save "$dir/$name.resumed.h5"
  same "$reference" "$dir/$name.resumed.h5" "$name: SIGTERM at step $stopped, then resumed"
  echo "SIGTERM to rank $rank ($name): stopped after step $stopped in $took s, exit 0; resumed: bitwise identical"
}
term_case term-sync 2 1 "" "$dir/sync2.ref.h5"
term_case term-pipeline 2 0 "--pipeline-stages 2 --micro-batches 2" "$dir/pipeline.ref.h5"
term_case term-ps-worker 3 1 "--mode ps --staleness 0" "$dir/ps.ref.h5"
term_case term-ps-server 3 2 "--mode ps --staleness 0" "$dir/ps.ref.h5"

for launcher in mpirun heartbeat; do
  extra=()
  expected="rank 1"
  if [[ $launcher == heartbeat ]]; then
    extra=(--mca orte_enable_recovery 1)
    expected="ringtrain: error: rank 1 has sent no heartbeat for [0-9]* s: it died (pid [0-9]* on this node)"
  fi
  interrupt KILL 1 "kill-$launcher" 2 "" "${extra[@]}"
  # In recovery mode mpirun itself exits 0 after the survivor's MPI_Abort; without it, non-zero.
  [[ $rc != 124 ]] || fail "SIGKILL ($launcher): the job hung"
  [[ $launcher == heartbeat || $rc != 0 ]] || fail "SIGKILL ($launcher): exit code 0"
  ((took <= 30)) || fail "SIGKILL ($launcher): the job took $took s to end"
  grep -q "$expected" "$dir/kill-$launcher.err" || fail "SIGKILL ($launcher): stderr does not say '$expected': $(cat "$dir/kill-$launcher.err")"
  run 2 "kill-$launcher.resumed" --checkpoint-dir "$dir/kill-$launcher" --resume auto --save "$dir/kill-$launcher.resumed.h5"
  same "$dir/sync2.ref.h5" "$dir/kill-$launcher.resumed.h5" "SIGKILL ($launcher), then resumed"
  echo "SIGKILL to rank 1 ($launcher): ended in $took s: $(grep -m1 -o "$expected" "$dir/kill-$launcher.err"); resumed: bitwise identical"
done

# A stopped rank (SIGSTOP, a debugger) is told from a dead one: it still has its process.
interrupt STOP 1 stop 2 "--peer-timeout-s 3"
expected="ringtrain: error: rank 1 has sent no heartbeat for [0-9]* s: it is stopped (pid [0-9]* on this node), by SIGSTOP"
[[ $rc != 124 && $rc != 0 ]] || fail "SIGSTOP: exit $rc"
((took <= 30)) || fail "SIGSTOP: the job took $took s to end"
grep -q "$expected" "$dir/stop.err" || fail "SIGSTOP: stderr does not say '$expected': $(cat "$dir/stop.err")"
grep -q -- "--peer-timeout-s 3; 0 turns the heartbeat off" "$dir/stop.err" || fail "SIGSTOP: no hint: $(cat "$dir/stop.err")"
echo "SIGSTOP to rank 1: ended in $took s: $(grep -m1 -o "$expected" "$dir/stop.err")"
echo "PASS"
