#!/usr/bin/env bash
# Parameter servers through the CLI on 3 ranks (2 workers, 1 server). A run with a straggler reports its
# staleness (within the bound), pull/push latency and server load in the log, the metrics CSV and the
# timeline, and every rank exits 0. When a rank dies or hangs mid-training the job ends on every rank with a
# non-zero exit and a message naming the rank, well within 30 s: killed ranks (SIGKILL) are named by the
# launcher, a rank that stops answering (SIGSTOP) by ringtrain's own watchdog (--ps-timeout-s). Bad
# parameter-server flags: one line, every rank exits, no hang.
# usage: ps_cli.sh RINGTRAIN MPIRUN
set -uo pipefail
bin=$1 mpirun=$2
source "$(dirname "$0")/common.sh"
make_test_dir
write_shards "$dir" train-00000.h5:256 test-00000.h5:64 long/train-00000.h5:20000
train=(train --data "$dir" --model "flatten,linear(8),relu,linear(out)" --batch 8 --mode ps)

out=$(timeout 120 "$mpirun" --oversubscribe -np 3 "$bin" "${train[@]}" --epochs 2 --staleness 2 --straggler-rank 1 \
  --straggler-ms 3 --metrics "$dir/m.csv" --timeline "$dir/t.json" 2>"$dir/err")
rc=$?
[[ $rc == 0 ]] || fail "a 2-worker run exited $rc: $(cat "$dir/err")"
grep -q '^  parameter servers: rank 2, 2 workers x batch 8, staleness bound 2' <<<"$out" || fail "no layout line: $out"
# An epoch is 2 workers x 16 steps of updates; a push already under way when the count is reached lands in it.
grep -q '^  ps: 3[0-4] updates, staleness mean [0-9.]* max [012] (bound 2)' <<<"$out" || fail "no epoch report: $out"
/usr/bin/python3 - "$dir/m.csv" "$dir/t.json" <<'PY' || fail "bad metrics or timeline"
import csv, json, sys
rows = list(csv.DictReader(open(sys.argv[1])))
updates = [int(r["ps_updates"]) for r in rows]
assert len(rows) == 2 and all(30 <= u <= 34 for u in updates) and sum(updates) >= 64, rows
assert all(int(r["ps_staleness_max"]) <= 2 and float(r["ps_pull_ms"]) > 0 for r in rows), rows
events = json.load(open(sys.argv[2]))["traceEvents"]
names = {(e["pid"], e["name"]) for e in events if e.get("ph") == "X"}
for worker in (0, 1):
    assert (worker, "pull") in names and (worker, "push") in names, f"worker {worker}: no pull/push spans"
assert (2, "apply push of worker 0") in names and (2, "apply push of worker 1") in names, "no server spans"
PY

# fault SIGNAL RANK EXPECTED_STDERR: a long run (epochs of 1250 steps a worker, so the signal lands inside
# one), the signal to one rank after it has started, then the job must end within 30 s saying
# EXPECTED_STDERR.
fault() {
  local signal=$1 rank=$2 expected=$3
  timeout 60 "$mpirun" --oversubscribe -np 3 "$bin" train --data "$dir/long" --model "flatten,linear(8),relu,linear(out)" \
    --batch 8 --mode ps --epochs 100 --straggler-rank 0 --straggler-ms 2 --ps-timeout-s 3 >"$dir/out" 2>"$dir/err" &
  local job=$! pid="" waited=0
  while [[ -z $pid ]] && ((waited < 100)); do sleep 0.1; ((++waited)); pid=$(pid_of "$rank"); done
  [[ -n $pid ]] || fail "rank $rank never started"
  sleep 2  # into training
  kill "-$signal" "$pid"
  local start=$SECONDS
  wait "$job"
  local rc=$? took=$((SECONDS - start))
  [[ $rc != 0 && $rc != 124 ]] || fail "SIG$signal to rank $rank: exit code $rc (124 = hang)"
  ((took <= 30)) || fail "SIG$signal to rank $rank: the job took $took s to end"
  grep -q "$expected" "$dir/err" || fail "SIG$signal to rank $rank: stderr does not say '$expected': $(cat "$dir/err")"
  echo "SIG$signal to rank $rank: ended in $took s: $(grep -m1 "$expected" "$dir/err")"
}
fault KILL 1 "rank 1"
fault KILL 2 "rank 2"
fault STOP 1 "worker rank 1 has sent nothing for 3 s"
fault STOP 2 "parameter server rank 2 has not completed a pu[a-z]* for 3 s"

expect_error 2 "--ps-servers 2 leaves no worker among 2 ranks" "${train[@]}" --epochs 1 --ps-servers 2
expect_error 2 "--staleness must be at least 0, got -1" "${train[@]}" --epochs 1 --staleness -1
expect_error 2 "--mode ps does not combine with --pipeline-stages" "${train[@]}" --epochs 1 --pipeline-stages 2
echo "PASS"
