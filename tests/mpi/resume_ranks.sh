#!/usr/bin/env bash
# Resuming on another number of ranks through the CLI under mpirun (docs/checkpoints.md). A checkpoint holds
# the whole model and optimizer state and the global sample position (the pass and the samples of it taken,
# all ranks together), so:
# - the same global batch on other ranks (data parallel 4 -> 2 ranks and 2 -> 3, a pipeline's 2 replicas -> 1)
#   trains on the same samples at every step: the final weights match the uninterrupted run's to rounding,
#   1e-6 (the sums over ranks are added in another order; here about 1e-7 after 50-74 steps; data parallel on
#   N ranks matches one rank to 1e-5, tests/mpi/test_data_parallel.cpp; another sample order is off by ~1e-2);
# - another global batch (2 ranks x --batch 8 -> 3 ranks x 8) goes on from the sample position, says so, and
#   ends each epoch where its samples end;
# - a checkpoint without the position (as written before it was recorded) still resumes on as many ranks,
#   bitwise. The refusals are rows of tests/bad_inputs.sh.
# usage: resume_ranks.sh RINGTRAIN MPIRUN
set -uo pipefail
bin=$1 mpirun=$2
source "$(dirname "$0")/common.sh"
make_test_dir
write_shards "$dir" train-00000.h5:300 train-00001.h5:300
# No dropout: its masks are drawn per rank's batch, so they differ between rank counts (as between N ranks
# and one).
base=(train --data "$dir" --model "flatten,linear(16),relu,linear(out)" --epochs 2 --optimizer adam --lr 0.01)
tolerance=1e-6

# max_diff A B: the largest difference between the two model files' tensors.
max_diff() {
  /usr/bin/python3 - "$1" "$2" <<'PY'
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
names = []
a.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
assert names and sorted(names) == sorted(n for n in names if n in b), (names, list(b))
print(max(float(np.max(np.abs(a[n][()].astype(np.float64) - b[n][()]))) for n in names))
PY
}

# close A B WHAT: the weights within $tolerance.
close() {
  local diff
  diff=$(max_diff "$1" "$2") || fail "$3: cannot compare $1 and $2"
  /usr/bin/python3 -c "import sys; sys.exit(not float('$diff') <= $tolerance)" ||
    fail "$3: the weights differ from the uninterrupted run's by $diff (more than $tolerance)"
  echo "$3: largest difference from the uninterrupted run $diff"
}

# expect_line NAME TEXT: the job's output holds the line.
expect_line() { grep -qF -- "$2" "$dir/$1.out" || fail "$1: no line '$2' in: $(cat "$dir/$1.out")"; }

# ranks_case NAME NP_BEFORE "ARGS BEFORE" NP_AFTER "ARGS AFTER" STEPS: cut at STEPS on NP_BEFORE ranks, resumed
# on NP_AFTER with the same global batch, against the uninterrupted run on NP_BEFORE.
ranks_case() {
  local name=$1 np_before=$2 before=($3) np_after=$4 after=($5) steps=$6
  run "$np_before" "$name.ref" "${before[@]}" --save "$dir/$name.ref.h5"
  run "$np_before" "$name.cut" "${before[@]}" --steps "$steps" --checkpoint-dir "$dir/$name" --checkpoint-every 9
  run "$np_after" "$name.resumed" "${after[@]}" --checkpoint-dir "$dir/$name" --resume auto --save "$dir/$name.resumed.h5"
  expect_line "$name.resumed" "resuming from $dir/$name/$(printf 'step-%012d.h5' "$steps") (step $steps"
  expect_line "$name.resumed" ": the same global batch of"
  close "$dir/$name.ref.h5" "$dir/$name.resumed.h5" "$name: $np_before ranks -> $np_after, same global batch"
}
ranks_case sync-4to2 4 "--batch 4" 2 "--batch 8" 25
expect_line sync-4to2.resumed "the checkpoint's run had 4 replicas x --batch 4, this one has 2 replicas x --batch 8: the same global batch of 16, so the same samples at every step"
ranks_case sync-2to3 2 "--batch 12" 3 "--batch 8" 30
# A pipeline of 2 stages: 2 replicas (4 ranks) -> 1 (2 ranks), each stage's optimizer state read by name.
ranks_case pipeline-2to1 4 "--batch 4 --pipeline-stages 2 --micro-batches 2" 2 \
  "--batch 8 --pipeline-stages 2 --micro-batches 2" 25

# Another global batch: 2 ranks x 8 (37 steps an epoch) cut at step 25, at sample 400 of the first epoch; on
# 3 ranks x 8 the 200 samples left are 8 steps, the second epoch 25.
run 2 wider.cut --batch 8 --steps 25 --checkpoint-dir "$dir/wider"
run 3 wider.resumed --batch 8 --checkpoint-dir "$dir/wider" --resume auto --metrics "$dir/wider.csv"
expect_line wider.resumed "the global batch changed from 16 (2 replicas x --batch 8) to 24 (3 replicas x --batch 8): the epoch goes on from its sample 400 of 600, and the learning-rate schedule from its step 17 of 50, where those samples put it"
expect_line wider.resumed "trained 33 steps (steps 26 to 58)"
[[ "$(cut -d, -f1,2 "$dir/wider.csv" | tail -n +2 | tr '\n' ' ')" == "1,33 2,58 " ]] ||
  fail "wider: the epochs did not end at steps 33 and 58: $(cat "$dir/wider.csv")"
echo "another global batch: 2 x 8 -> 3 x 8 goes on from sample 400; its epochs end at steps 33 and 58"

# A checkpoint as written before the global sample position was recorded (the attributes taken out, the seal
# made again): it resumes on as many ranks, bitwise like the uninterrupted run.
mkdir -p "$dir/old" && cp "$dir/wider/step-000000000025.h5" "$dir/old/"
/usr/bin/python3 - "$dir/old/step-000000000025.h5" <<'PY' || fail "the checkpoint does not record its position"
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    assert (int(f.attrs["pass_sample"]), int(f.attrs["replicas"]), int(f.attrs["global_batch"])) == (400, 2, 16), dict(f.attrs)
    assert int(f.attrs["pass_batch"]) == 25
PY
as_written_before_positions "$dir/old/step-000000000025.h5"
run 2 old.resumed --batch 8 --checkpoint-dir "$dir/old" --resume auto --save "$dir/old.resumed.h5"
expect_line old.resumed "resuming from $dir/old/step-000000000025.h5 (step 25"
run 2 old.ref --batch 8 --save "$dir/old.ref.h5"
h5diff "$dir/old.ref.h5" "$dir/old.resumed.h5" >/dev/null || fail "old checkpoint: the weights differ from the uninterrupted run's"
echo "a checkpoint without the sample position: resumed on as many ranks, bitwise identical"
echo "PASS"
