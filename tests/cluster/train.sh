#!/usr/bin/env bash
# Training across the emulated cluster (2 nodes of 2 ranks, links shaped to 2 Gbit/s; the cluster.up fixture
# builds it): ranks on two nodes choose the hierarchical allreduce, stage the shards once per node, and send
# half the bytes with --compress bf16 (the timeline's spans say so). A node's link slowed 100x mid-run is
# named by the engine's link probe. Then a node's data network link is cut mid-run (the ranks' heartbeat
# names the node and its ranks), and then the whole node (mpirun names the node it lost): each time the job
# ends within --peer-timeout-s and a few seconds, every
# checkpoint written before the cut intact; the run then resumes from the last of them on the node left
# (2 ranks x batch 16: the same global batch as 4 x 8, so the same samples at every step).
# usage: train.sh RINGTRAIN
set -uo pipefail
bin=$1 mpirun=mpirun
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../mpi/common.sh"
cluster=$here/emulated_cluster.sh
state=${RINGTRAIN_CLUSTER_DIR:-/tmp/ringtrain-cluster}
[[ -f $state/hostfile ]] || { echo "SKIP: the emulated cluster is not up (cluster.up needs root)"; exit 77; }
make_test_dir
write_shards "$dir/data" train-00000.h5:400 train-00001.h5:400 test-00000.h5:100
job=(train --data "$dir/data" --model "flatten,linear(8),relu,linear(out)" --stage-to "$dir/stage-%n")
train=("${job[@]}" --batch 8)
across() { timeout 120 "$cluster" mpirun -np 4 "$bin" "$@"; }

# Two nodes: hierarchical by itself, one copy of the shards per node, half the bytes on the wire with bf16.
across "${train[@]}" --epochs 2 --compress bf16 --timeline "$dir/t.json" >"$dir/out" 2>"$dir/err" ||
  fail "the run across two nodes failed: $(cat "$dir/err")"
grep -q "batch 8 x 4 ranks (hierarchical allreduce, bf16 on the wire)" "$dir/out" || fail "not hierarchical: $(cat "$dir/out")"
grep -q "^  staged 3 shards to $dir/stage-0 on 2 nodes: 6 copied" "$dir/out" || fail "not staged per node: $(cat "$dir/out")"
grep -q '^test  test_loss' "$dir/out" || fail "the run did not finish: $(cat "$dir/out")"
/usr/bin/python3 - "$dir/t.json" <<'PY' || fail "the timeline does not show 16-bit gradients"
import json, re, sys
spans = [e["name"] for e in json.load(open(sys.argv[1]))["traceEvents"] if e.get("name", "").startswith("ALLREDUCE ")]
halves = [re.fullmatch(r"ALLREDUCE .*, (\d+) bytes, 16-bit on the wire: (\d+) bytes", s) for s in spans]
assert spans and all(m and int(m.group(1)) == 2 * int(m.group(2)) for m in halves), spans[:3]
PY
echo "2 nodes x 2 ranks: hierarchical allreduce, staged once per node, bf16 on the wire (half the bytes)"

# A node's link slowed 100x mid-run (2 Gbit/s to 20 Mbit/s, both ways): the engine's link probe names the node.
wide=(train --data "$dir/data" --model "flatten,linear(1024),relu,linear(256),relu,linear(out)" --batch 8)
across "${wide[@]}" --epochs 1000 --stall-warn-s 2 >"$dir/slow.out" 2>"$dir/slow.err" &
running=$!
for _ in $(seq 200); do grep -q "^epoch 2/" "$dir/slow.out" && break; sleep 0.1; done
"$cluster" link rtnode2 rate 20mbit
for _ in $(seq 300); do grep -q "slow link" "$dir/slow.err" && break; sleep 0.1; done
kill -TERM "$running" 2>/dev/null
wait "$running"
"$cluster" link rtnode2 rate 2gbit
grep -Eq "^ringtrain: warning: slow links: .*every slow link touches node rtnode2" "$dir/slow.err" ||
  fail "the slowed link was not named: $(cat "$dir/slow.err")"
echo "link of rtnode2 slowed 100x: $(grep -o 'every slow link touches node rtnode2' "$dir/slow.err")"

# cut LINKS PEER_TIMEOUT: a long run with checkpoints, rtnode2's links (down: both; data-down: the data
# network's) cut once it has written one; sets rc and took (seconds from the cut to the job's end).
cut() {
  rm -rf "$dir/ck"
  across "${train[@]}" --epochs 1000 --checkpoint-dir "$dir/ck" --checkpoint-every 20 --peer-timeout-s "$2" \
    >"$dir/cut.out" 2>"$dir/cut.err" &
  local running=$!
  for _ in $(seq 200); do [[ -n $(ls "$dir/ck" 2>/dev/null) ]] && break; sleep 0.1; done
  sleep 1
  "$cluster" link rtnode2 "$1"
  local start=$SECONDS
  wait "$running"
  rc=$? took=$((SECONDS - start))
  "$cluster" link rtnode2 up
  [[ $rc != 0 && $rc != 124 ]] || fail "$1: exit code $rc (124: the job hung)"
  for f in $(ls "$dir/ck"); do
    "$bin" eval --model-file "$dir/ck/$f" --data "$dir/data" >/dev/null 2>&1 || fail "$1: checkpoint $f is damaged"
  done
}

# The data network cut (the management network up, as when a fabric fails): the ranks' heartbeat names the
# node and its ranks, and mpirun, which still reaches every node, ends the job.
cut data-down 5
((took <= 10)) || fail "data network cut: the job took $took s to end (--peer-timeout-s 5)"
grep -Eq "^ringtrain: error: rank [0-9] on node rtnode[12] \(ranks [0-9],[0-9]\) has sent no heartbeat for [0-9]+ s: dead, stopped or its node unreachable" "$dir/cut.err" ||
  fail "data network cut: no line names the node and its ranks: $(cat "$dir/cut.err")"
echo "data link of rtnode2 cut: the job ended in $took s: $(grep -m1 -o 'rank [0-9] on node [^:]*' "$dir/cut.err")"

# The whole node cut off: mpirun loses its daemon there. Its keepalive (3 s) is set below the heartbeat's
# timeout, so it notices first, names the node, and ends the job.
cut down 8
((took <= 10)) || fail "node cut off: the job took $took s to end (--peer-timeout-s 8)"
grep -q "ORTE has lost communication with a remote daemon" "$dir/cut.err" ||
  grep -Eq "^ringtrain: error: rank [0-9] on node rtnode[12] \(ranks [0-9],[0-9]\)" "$dir/cut.err" ||
  fail "node cut off: no line names the node: $(cat "$dir/cut.err")"
echo "rtnode2 cut off: the job ended in $took s"

last=$(ls "$dir/ck" | tail -1)
step=$((10#$(sed 's/step-0*\([0-9]*\)\.h5/\1/' <<<"$last")))
timeout 120 "$cluster" mpirun --nodes 1 -np 2 "$bin" "${job[@]}" --batch 16 --checkpoint-dir "$dir/ck" --resume auto \
  --steps $((step + 10)) >"$dir/resumed.out" 2>"$dir/resumed.err" || fail "resuming on rtnode1 failed: $(cat "$dir/resumed.err")"
grep -q "^resuming from $dir/ck/$last" "$dir/resumed.out" || fail "did not resume from $last: $(cat "$dir/resumed.out")"
grep -q "the same global batch of 32" "$dir/resumed.out" || fail "no line on the new layout: $(cat "$dir/resumed.out")"
grep -q "^trained " "$dir/resumed.out" || fail "the resumed run did not finish: $(cat "$dir/resumed.out")"
echo "resumed from $last on rtnode1 alone (2 ranks x 16), to step $((step + 10))"
echo "PASS"
