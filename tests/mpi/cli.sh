#!/usr/bin/env bash
# The CLI on 2-3 ranks: a short data-parallel run (one progress report, a valid timeline with both ranks),
# a pipeline run (its timeline shows each stage's micro-batches), then bad input: ranks given different
# flags, a rank without data, pipelines that cannot run (one error line, every rank exits non-zero, no hang).
# usage: cli.sh RINGTRAIN MPIRUN
set -uo pipefail
bin=$1 mpirun=$2
source "$(dirname "$0")/common.sh"
make_test_dir
write_shards "$dir" train-00000.h5:200 train-00001.h5:200 test-00000.h5:100

common=(train --data "$dir" --model "flatten,linear(8),relu,linear(out)" --epochs 2 --batch 8)
out=$(timeout 120 "$mpirun" --oversubscribe -np 2 "$bin" "${common[@]}" --timeline "$dir/trace.json" 2>"$dir/err")
rc=$?
[[ $rc == 0 ]] || fail "2-rank run exited $rc: $(cat "$dir/err")"
[[ $(grep -c '^epoch 2/2' <<<"$out") == 1 ]] || fail "expected one progress report (rank 0's): $out"
grep -q 'batch 8 x 2 ranks' <<<"$out" || fail "the run does not say it is on 2 ranks: $out"
/usr/bin/python3 - "$dir/trace.json" <<'PY' || fail "bad timeline"
import json, sys
events = json.load(open(sys.argv[1]))["traceEvents"]
spans = [e for e in events if e.get("ph") == "X"]
for rank in (0, 1):
    names = {e["name"].split(" ")[0] for e in spans if e["pid"] == rank}
    for want in ("forward", "backward", "NEGOTIATE_ALLREDUCE", "ALLREDUCE"):
        assert want in names, f"rank {rank} has no {want} span: {sorted(names)}"
    full = {e["name"] for e in spans if e["pid"] == rank}
    for want in ("load batch", "optimizer step", "evaluate test", "step 1", "step 50"):
        assert want in full, f"rank {rank} has no '{want}' span"
# Evaluation batches hold 256 samples: rank 0 scores all 100 test samples, under their own name.
assert "eval forward linear1" in {e["name"] for e in spans if e["pid"] == 0}
PY

# --timeline-steps: only steps 10..12 (a step row span each) and no evaluation, which comes after step 25.
timeout 120 "$mpirun" --oversubscribe -np 2 "$bin" "${common[@]}" --timeline "$dir/window.json" \
  --timeline-steps 10:12 >/dev/null 2>"$dir/err" || fail "windowed timeline run failed: $(cat "$dir/err")"
/usr/bin/python3 - "$dir/window.json" <<'PY' || fail "bad windowed timeline"
import json, sys
spans = [e for e in json.load(open(sys.argv[1]))["traceEvents"] if e.get("ph") == "X"]
for rank in (0, 1):
    steps = sorted(e["name"] for e in spans if e["pid"] == rank and e["tid"] == 2)
    assert steps == ["step 10", "step 11", "step 12"], steps
    names = {e["name"] for e in spans if e["pid"] == rank}
    assert "optimizer step" in names and not any(n.startswith("eval") for n in names), sorted(names)
PY
# A window that ends with an epoch keeps that epoch's evaluation (here the test split's, after step 50).
timeout 120 "$mpirun" --oversubscribe -np 2 "$bin" "${common[@]}" --timeline "$dir/last.json" \
  --timeline-steps 49:50 >/dev/null 2>"$dir/err" || fail "windowed timeline run failed: $(cat "$dir/err")"
/usr/bin/python3 - "$dir/last.json" <<'PY' || fail "the window's last step lost its evaluation"
import json, sys
names = {e["name"] for e in json.load(open(sys.argv[1]))["traceEvents"] if e.get("ph") == "X" and e["pid"] == 0}
assert {"step 49", "step 50", "evaluate test"} <= names and "step 48" not in names, sorted(names)
PY

# MPMD launch: the second rank gets another learning rate.
timeout 120 "$mpirun" --oversubscribe -np 1 "$bin" "${common[@]}" --lr 0.05 : -np 1 "$bin" "${common[@]}" --lr 0.1 \
  >"$dir/out" 2>"$dir/err"
rc=$?
[[ $rc != 0 && $rc != 124 ]] || fail "mismatched ranks: exit code $rc (124 = hang)"
errors=$(grep -c '^ringtrain: error:' "$dir/err")
[[ $errors == 1 ]] || fail "expected one error line, got $errors: $(cat "$dir/err")"
grep -q "^ringtrain: error: ranks disagree on --lr: rank 0 has '0.05', rank 1 has '0.1'" "$dir/err" ||
  fail "unexpected error: $(cat "$dir/err")"

# A rank with --sync-batchnorm would wait in allreduces inside batchnorm that the other never makes.
expect_error 1 "ranks disagree on --sync-batchnorm: rank 0 has 'true', rank 1 has 'false'" "${common[@]}" \
  --sync-batchnorm : -np 1 "$bin" "${common[@]}"

# A sharded rank reduce-scatters while an unsharded one's engine allreduces: they would never meet.
expect_error 1 "ranks disagree on --shard-optimizer: rank 0 has 'true', rank 1 has 'false'" "${common[@]}" \
  --shard-optimizer : -np 1 "$bin" "${common[@]}"

# A rank without a heartbeat would look dead to its neighbour: ranks that disagree on it are one error.
expect_error 1 "ranks disagree on --peer-timeout-s: 0 and 10" "${common[@]}" --peer-timeout-s 0 : -np 1 "$bin" "${common[@]}"

# Only one rank finds its data missing: it is named, and the job ends on every rank.
timeout 120 "$mpirun" --oversubscribe -np 1 "$bin" "${common[@]}" : -np 1 "$bin" train --data "$dir/none" \
  --model "flatten,linear(8),relu,linear(out)" --epochs 2 --batch 8 >"$dir/out" 2>"$dir/err"
rc=$?
[[ $rc != 0 && $rc != 124 ]] || fail "one rank without data: exit code $rc (124 = hang)"
grep -q "^ringtrain: error: rank 1: no training shards" "$dir/err" || fail "unexpected error: $(cat "$dir/err")"
# A 2-stage pipeline: each rank's row shows its stage's forward and backward per micro-batch.
out=$(timeout 120 "$mpirun" --oversubscribe -np 2 "$bin" "${common[@]}" --pipeline-stages 2 --micro-batches 4 \
  --timeline "$dir/pipe.json" 2>"$dir/err")
rc=$?
[[ $rc == 0 ]] || fail "2-stage pipeline exited $rc: $(cat "$dir/err")"
grep -q 'pipeline: 2 stages x 4 micro-batches (1f1b); stage 0 flatten1..linear1, stage 1 relu1..linear2' <<<"$out" ||
  fail "the run does not describe its stages: $out"
/usr/bin/python3 - "$dir/pipe.json" <<'PY' || fail "bad pipeline timeline"
import json, sys
events = json.load(open(sys.argv[1]))["traceEvents"]
for rank in (0, 1):
    names = {e["name"] for e in events if e.get("ph") == "X" and e["pid"] == rank}
    for m in range(4):
        for want in (f"forward micro-batch {m}", f"backward micro-batch {m}"):
            assert want in names, f"rank {rank} has no '{want}' span"
PY

# Pipelines that cannot run: one line, from one rank, and every rank exits.
mlp=(train --data "$dir" --epochs 2 --batch 8 --model "flatten,linear(8),relu,linear(out)")
expect_error 3 "a world of 3 ranks is not divisible by --pipeline-stages 2" "${mlp[@]}" --pipeline-stages 2
expect_error 2 "--pipeline-stages 2 is more stages than the model's 1 layers" train --data "$dir" --model "linear(out)" \
  --pipeline-stages 2
expect_error 2 "--micro-batches must be at least 1, got 0" "${mlp[@]}" --pipeline-stages 2 --micro-batches 0
expect_error 2 "--batch 8 is not divisible by --micro-batches 3" "${mlp[@]}" --pipeline-stages 2 --micro-batches 3
expect_error 2 "bad --split: stage boundaries must increase" "${mlp[@]}" --pipeline-stages 2 --split 4
echo "PASS"
