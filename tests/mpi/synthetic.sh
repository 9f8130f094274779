#!/usr/bin/env bash
# Synthetic data (--data synthetic:...) under mpirun: 2 data-parallel ranks with batch 8 train what one rank
# with batch 16 trains (the same samples in the same global batches: their losses agree to float rounding),
# and a pipeline and parameter servers run on it, gpt-tiny on synthetic tokens too; no rank reads a file.
# usage: synthetic.sh RINGTRAIN MPIRUN
set -uo pipefail
bin=$1 mpirun=$2
source "$(dirname "$0")/common.sh"
make_test_dir

common=(train --data synthetic:1x8x8:4:128 --model "conv(4,3,pad=1),relu,maxpool(2),flatten,linear(out)" --epochs 2
        --seed 3)
run() {  # run RANKS NAME ARGS...: a run that must succeed; its stdout in $dir/NAME.out
  local ranks=$1 name=$2
  shift 2
  timeout 120 "$mpirun" --oversubscribe -np "$ranks" "$bin" "${common[@]}" "$@" >"$dir/$name.out" 2>"$dir/$name.err" ||
    fail "$name: exit code $? (124 = hang): $(cat "$dir/$name.err")"
  grep -q '^epoch 2/2' "$dir/$name.out" || fail "$name: no second epoch: $(cat "$dir/$name.out")"
  grep -q '128 training samples made in memory (synthetic:1x8x8:4:128, 4 classes)' "$dir/$name.out" ||
    fail "$name: the run does not describe its synthetic data: $(cat "$dir/$name.out")"
}

run 1 one --batch 16 --metrics "$dir/one.csv"
run 2 two --batch 8 --metrics "$dir/two.csv"
grep -q 'batch 8 x 2 ranks' "$dir/two.out" || fail "the run does not say it is on 2 ranks: $(cat "$dir/two.out")"
/usr/bin/python3 - "$dir/one.csv" "$dir/two.csv" <<'PY' || fail "2 ranks x batch 8 trained otherwise than 1 rank x batch 16"
import csv, sys
one, two = (list(csv.DictReader(open(p))) for p in sys.argv[1:])
assert len(one) == len(two) == 2, (one, two)
for a, b in zip(one, two):
    assert a["step"] == b["step"] == str(8 * int(a["epoch"])), (a, b)
    assert abs(float(a["train_loss"]) - float(b["train_loss"])) < 1e-4, (a["train_loss"], b["train_loss"])
    assert a["val_loss"] == b["val_loss"] == "", "synthetic data has no validation split"
PY

run 2 pipeline --batch 8 --pipeline-stages 2 --micro-batches 2
run 2 ps --batch 8 --mode ps
grep -q 'parameter servers: rank 1, 1 worker x batch 8' "$dir/ps.out" || fail "no parameter-server layout: $(cat "$dir/ps.out")"

# gpt-tiny on synthetic tokens, 2 steps with AdamW: cut into 2 pipeline stages between its blocks, and under
# parameter servers (1 worker, 1 server).
gpt=(train --data synthetic-tokens:16:256:64 --model gpt-tiny --batch 4 --steps 2 --optimizer adamw --lr 1e-3)
timeout 120 "$mpirun" --oversubscribe -np 2 "$bin" "${gpt[@]}" --pipeline-stages 2 --micro-batches 2 \
  >"$dir/gpt_pipeline.out" 2>"$dir/gpt_pipeline.err" || fail "gpt-tiny in a pipeline: exit $?: $(cat "$dir/gpt_pipeline.err")"
grep -Eq 'stage 0 embedding1\.\.block[0-9], stage 1 block[0-9]\.\.linear1' "$dir/gpt_pipeline.out" ||
  fail "gpt-tiny's stages are not cut between its blocks: $(cat "$dir/gpt_pipeline.out")"
timeout 120 "$mpirun" --oversubscribe -np 2 "$bin" "${gpt[@]}" --mode ps >"$dir/gpt_ps.out" 2>"$dir/gpt_ps.err" ||
  fail "gpt-tiny under parameter servers: exit $?: $(cat "$dir/gpt_ps.err")"
grep -q 'ps: 2 updates' "$dir/gpt_ps.out" || fail "gpt-tiny's 2 steps are not 2 updates: $(cat "$dir/gpt_ps.out")"
for name in gpt_pipeline gpt_ps; do
  grep -q 'tokens/s' "$dir/$name.out" || fail "$name reports no tokens/s: $(cat "$dir/$name.out")"
done

expect_error 2 "--data 'synthetic:1x0x8:4': dimension 2 of the sample shape must be at least 1, got 0" \
  train --data synthetic:1x0x8:4
echo "PASS"
