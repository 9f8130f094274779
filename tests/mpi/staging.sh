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

# The default in a SLURM job: $TMPDIR/ringtrain-stage-<user>-<job id>, which two runs of one job (job steps
# side by side) share: the one that ends first leaves the copies to the other, the last removes them.
default_stage=$dir/tmp/ringtrain-stage-$(id -un)-4242
mkdir -p "$default_stage"
echo notes >"$default_stage/notes.txt"  # a user's file there is not staging's to remove
slurm_job() { timeout 120 "$mpirun" --oversubscribe -np 2 env SLURM_JOB_ID=4242 TMPDIR="$dir/tmp" "$bin" "$@"; }
slurm_job "${train[@]}" --epochs 8 >"$dir/long.out" 2>"$dir/long.err" &
long=$!
for _ in $(seq 100); do [[ -e $default_stage/.in-use ]] && break; sleep 0.1; done
slurm_job "${train[@]}" >"$dir/short.out" 2>"$dir/short.err" || fail "the short run failed: $(cat "$dir/short.err")"
grep -q "^  staged 3 shards to $default_stage on 1 node" "$dir/short.out" || fail "not staged by default: $(cat "$dir/short.out")"
wait "$long" || fail "the long run failed after the short one ended: $(cat "$dir/long.err")"
grep -q '^test  test_loss' "$dir/long.out" || fail "the long run did not finish: $(cat "$dir/long.out")"
[[ $(ls -A "$default_stage") == notes.txt ]] || fail "the last run left in $default_stage: $(ls -A "$default_stage")"
# A job id is one word of the directory's name: "../x" names no directory outside TMPDIR.
timeout 120 "$mpirun" --oversubscribe -np 2 env SLURM_JOB_ID=../x TMPDIR="$dir/tmp" "$bin" "${train[@]}" \
  >"$dir/odd.out" 2>&1 || fail "the run with job id ../x failed: $(cat "$dir/odd.out")"
grep -q "^  staged 3 shards to $dir/tmp/ringtrain-stage-$(id -un)-.._x on 1 node" "$dir/odd.out" ||
  fail "job id ../x: $(cat "$dir/odd.out")"
[[ -f $default_stage/notes.txt && -d $dir/data ]] || fail "the run with job id ../x removed what was not its own"

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
