#!/usr/bin/env bash
# Node-local staging on two simulated nodes (RINGTRAIN_NODE_ID 0 and 1, two ranks each, "%n" giving each
# node its own directory): each node's shards are copied once, by one rank; a second run copies nothing; a
# staged copy that no longer matches is rejected and copied again; a directory that cannot be made, or ranks
# given different ones, is one error line and every rank exits.
# usage: staging.sh RINGTRAIN MPIRUN
set -uo pipefail
bin=$1 mpirun=$2
source "$(dirname "$0")/common.sh"
make_test_dir
write_shards "$dir/data" train-00000.h5:200 train-00001.h5:200 test-00000.h5:100

train=(train --data "$dir/data" --model "flatten,linear(8),relu,linear(out)" --epochs 1 --batch 8)
two_nodes() {  # ARGS...: 4 ranks, 2 per simulated node
  timeout 120 "$mpirun" --oversubscribe -np 2 env RINGTRAIN_NODE_ID=0 "$bin" "$@" : \
    -np 2 env RINGTRAIN_NODE_ID=1 "$bin" "$@"
}
staged() {  # EXPECTED_LINE: a run, which must train from the copies and log EXPECTED_LINE
  local out
  out=$(two_nodes "${train[@]}" --stage-to "$dir/stage-%n" 2>"$dir/err") || fail "run exited $?: $(cat "$dir/err")"
  grep -q "^  staged 3 shards to $dir/stage-0 on 2 nodes: $1" <<<"$out" || fail "expected '$1': $out"
  grep -q '^test  test_loss' <<<"$out" || fail "the run did not finish: $out"
}
staged "6 copied (0 MB), 0 already there$"
for node in 0 1; do
  [[ $(ls "$dir/stage-$node/train" | wc -l) == 2 && -f $dir/stage-$node/test/test-00000.h5 ]] ||
    fail "node $node's copies: $(ls -R "$dir/stage-$node")"
done
staged "0 copied (0 MB), 6 already there$"
printf 'Z' | dd of="$dir/stage-1/train/train-00001.h5" bs=1 seek=200 conv=notrunc status=none
staged "1 copied (0 MB), 5 already there, 1 of the copies replaced a staged file that no longer matched"

expect_error 2 "rank 0: cannot create the staging directory '/proc/ringtrain-stage/train'" "${train[@]}" --stage-to /proc/ringtrain-stage
# A rank given no directory follows the others (a launcher may set TMPDIR for some tasks only); two
# different directories are an error.
expect_error 1 "ranks disagree on --stage-to: '$dir/a' and '$dir/b'" "${train[@]}" --stage-to "$dir/a" : \
  -np 1 "$bin" "${train[@]}" --stage-to "$dir/b"
# Outputs are checked against the original shards, not only their copies, and before anything is copied.
sum=$(md5sum <"$dir/data/train-00000.h5")
expect_error 2 "rank 0: cannot write the model to '$dir/data/train-00000.h5': it is one of this run's inputs" \
  "${train[@]}" --stage-to "$dir/stage-out" --save "$dir/data/train-00000.h5"
[[ $(md5sum <"$dir/data/train-00000.h5") == "$sum" && ! -e $dir/stage-out ]] ||
  fail "a refused --save changed the shard or staged first"
echo PASS
