#!/usr/bin/env bash
# `ringtrain sweep` run here, end to end, on small shards (a few seconds a trial):
#   local      a grid x random draws: trials.csv, each trial's settings.ini (the base and its values) and run
#              directory; two trials that fail (a batch larger than the data) are reported and do not stop the
#              others; --collect ranks the trials as their metrics.csv say, writes summary.csv and sweep.png, and
#              without matplotlib still the CSV; a second sweep into the directory is refused, --resume runs
#              only the unfinished trials and keeps the finished ones
#   launcher   the trials under mpirun -np 2: each trains on 2 ranks
#   interrupt  SIGINT to the sweep stops the running trial (status stopped) and the sweep after it; --resume
#              runs what is left
# usage: sweep.sh RINGTRAIN MPIRUN local|launcher|interrupt
set -uo pipefail
bin=$1 mpirun=$2 what=$3
source "$(dirname "$0")/mpi/common.sh"
make_test_dir
cd "$dir"
write_shards data train-00000.h5:256 val-00000.h5:64 test-00000.h5:64
cat >base.ini <<INI
data = $dir/data
model = flatten,linear(8),relu,linear(out)
epochs = 2
batch = 16
INI

# status TRIAL: its run.json's status.
status() { sed -n 's/^  "status": "\(.*\)",$/\1/p' "$1/run.json" 2>/dev/null; }

# The best epoch's value of a column in each trial's metrics.csv, ranked (python, as a reference for --collect):
# "trial value" lines, best first.
reference_ranking() {
  /usr/bin/python3 - "$1" "$2" "$3" <<'PY'
import csv, glob, os, sys
out, metric, mode = sys.argv[1:]
best = {}
for path in sorted(glob.glob(os.path.join(out, "trial-*", "metrics.csv"))):
    with open(path) as f:
        values = [float(r[metric]) for r in csv.DictReader(f) if r[metric]]
    best[os.path.basename(os.path.dirname(path))] = (max if mode == "max" else min)(values)
for trial, value in sorted(best.items(), key=lambda kv: -kv[1] if mode == "max" else kv[1]):
    print(trial, f"{value:.6g}")
PY
}

case $what in
  local)
    sweep=(sweep --config base.ini --grid lr=0.3,0.01 --grid batch=16,512 --random "momentum=uniform(0.5,0.9)"
           --trials 1 --seed 5 --out sw -- --epochs 3)
    timeout 120 "$bin" "${sweep[@]}" >out 2>err
    rc=$?
    [[ $rc == 1 ]] || fail "a sweep with failed trials: exit $rc, expected 1: $(cat out err)"
    grep -q '^sweep of 4 trials: lr (2 values) x batch (2 values) x 1 draw of momentum=uniform; sw/trials.csv' out ||
      fail "no plan line: $(cat out)"
    grep -q '^trial-000  lr=0.3 batch=16 momentum=0\.[5-8][0-9]*: finished in ' out || fail "trial-000: $(cat out)"
    grep -q "^trial-001  lr=0.3 batch=512 momentum=.*: failed: the training split has 256 samples, fewer than one batch of 512 (sw/trial-001/output.txt)" out ||
      fail "trial-001 should fail, saying why: $(cat out)"
    grep -q '^sweep: 2 of 4 trials finished, 2 failed; `ringtrain sweep --collect sw` ranks them' out ||
      fail "no closing line: $(cat out)"
    [[ $(head -1 sw/trials.csv) == trial,lr,batch,momentum ]] || fail "trials.csv: $(cat sw/trials.csv)"
    [[ $(sed -n 4p sw/trials.csv) == trial-002,0.01,16,* ]] || fail "the grid's order: $(cat sw/trials.csv)"
    for t in 0 1 2 3; do
      settings=sw/trial-00$t/settings.ini
      momentum=$(sed -n "$((t + 2))p" sw/trials.csv | cut -d, -f4)
      for line in "momentum = $momentum" "epochs = 3" "model = flatten,linear(8),relu,linear(out)" \
                  "data = $dir/data" "keep-checkpoints = 3"; do
        grep -qxF "$line" "$settings" || fail "$settings lacks '$line': $(cat "$settings")"
      done
    done
    [[ $(status sw/trial-000) == finished && $(status sw/trial-002) == finished ]] || fail "finished trials' run.json"
    [[ $(status sw/trial-001) == failed && $(status sw/trial-003) == failed ]] || fail "failed trials' run.json"
    # --collect: the ranking python computes from the same files, the failed trials last.
    timeout 60 "$bin" sweep --collect sw >collect 2>err || fail "--collect: $(cat collect err)"
    grep -q '^4 trials in sw, 2 ranked by their best epoch.s val_accuracy (highest first):' collect ||
      fail "--collect's heading: $(cat collect)"
    expected=$(reference_ranking sw val_accuracy max)
    got=$(awk 'NR > 2 && $1 ~ /^[0-9]+$/ { print $2, $3 }' collect)
    [[ $got == "$expected" ]] || fail "ranking: got '$got', python says '$expected': $(cat collect)"
    [[ $(tail -n +2 collect | sed -n 4p) == "-     trial-001"*"failed: the training split has 256 samples"* ]] ||
      fail "the failed trials are listed last, saying why: $(cat collect)"
    [[ $(head -1 sw/summary.csv) == rank,trial,status,val_accuracy,epoch,lr,batch,momentum,note ]] ||
      fail "summary.csv: $(cat sw/summary.csv)"
    [[ $(sed -n 2p sw/summary.csv) == "1,$(echo "$expected" | head -1 | cut -d' ' -f1),finished,"* ]] ||
      fail "summary.csv's first row: $(cat sw/summary.csv)"
    [[ $(head -c 8 sw/sweep.png | od -An -tx1 | tr -d ' ') == 89504e470d0a1a0a ]] || fail "no sweep.png: $(cat collect)"
    timeout 60 "$bin" sweep --collect sw --metric val_loss >collect 2>err || fail "--metric val_loss: $(cat err)"
    [[ $(awk 'NR > 2 && $1 ~ /^[0-9]+$/ { print $2, $3 }' collect) == "$(reference_ranking sw val_loss min)" ]] ||
      fail "val_loss, lowest first: $(cat collect)"
    # Without matplotlib: the CSV, and one line saying why there is no plot.
    printf '#!/bin/sh\nexec /usr/bin/python3 -c "import sys; sys.modules[\\"matplotlib\\"] = None; sys.argv = sys.argv[1:]; exec(open(sys.argv[0]).read())" "$@"\n' >nompl
    chmod +x nompl
    rm sw/sweep.png sw/summary.csv
    RINGTRAIN_PYTHON=$dir/nompl timeout 60 "$bin" sweep --collect sw >collect 2>err || fail "no matplotlib: $(cat err)"
    grep -q '^sweep.png not written: matplotlib is not installed for ' collect || fail "no matplotlib: $(cat collect)"
    [[ -s sw/summary.csv && ! -e sw/sweep.png ]] || fail "no matplotlib: summary.csv and no sweep.png: $(ls sw)"
    # The same sweep again is refused; --resume runs the unfinished trials alone; another sweep is refused.
    timeout 60 "$bin" "${sweep[@]}" >out 2>err && fail "a second sweep into sw was not refused"
    grep -q "^ringtrain: error: --out 'sw' already holds a sweep: add --resume to continue it" err ||
      fail "a second sweep: $(cat err)"
    kept=$(cat sw/trial-000/run.json sw/trial-002/metrics.csv | md5sum)
    timeout 120 "$bin" "${sweep[@]::${#sweep[@]}-3}" --resume -- --epochs 3 >out 2>err
    [[ $(grep -c '^trial-' out) == 2 ]] && grep -q '^trial-001 ' out && grep -q '^trial-003 ' out ||
      fail "--resume should run trial-001 and trial-003 alone: $(cat out err)"
    [[ $(cat sw/trial-000/run.json sw/trial-002/metrics.csv | md5sum) == "$kept" ]] || fail "--resume touched a finished trial"
    timeout 60 "$bin" "${sweep[@]::${#sweep[@]}-3}" --resume -- --epochs 4 >out 2>err && fail "another sweep was resumed"
    grep -q "^ringtrain: error: --out 'sw' holds another sweep (its sweep.json differs" err || fail "another sweep: $(cat err)"
    echo "local sweep: $(tr '\n' ' ' <sw/summary.csv)"
    ;;
  launcher)
    timeout 120 "$bin" sweep --config base.ini --grid lr=0.1,0.2 --out sw \
      --launcher "$mpirun --oversubscribe -np 2" >out 2>err || fail "under mpirun: $(cat out err)"
    for t in 0 1; do
      grep -q '"world_size": 2,' sw/trial-00$t/run.json || fail "trial $t on 2 ranks: $(cat sw/trial-00$t/run.json)"
      grep -q 'batch 16 x 2 ranks' sw/trial-00$t/log.txt || fail "trial $t's log: $(cat sw/trial-00$t/log.txt)"
    done
    echo "under mpirun -np 2: $(cat out)"
    ;;
  interrupt)
    # 16 steps an epoch of 20 ms each: a trial of 10 epochs takes about 4 s.
    sweep=(sweep --config base.ini --grid lr=0.1,0.2 --out sw -- --epochs 10 --straggler-rank 0 --straggler-ms 20)
    "$bin" "${sweep[@]}" >out 2>err &  # not under timeout, which would pass a second SIGINT on (to its group)
    pid=$! waited=0
    until grep -q '^epoch 1/' sw/trial-000/log.txt 2>/dev/null || ((waited > 600)); do sleep 0.05; ((++waited)); done
    kill -INT "$pid"
    wait "$pid"
    rc=$?
    [[ $rc == 1 ]] || fail "a stopped sweep: exit $rc, expected 1: $(cat out err)"
    grep -q '^trial-000  lr=0.1: stopped' out || fail "trial-000 was not stopped: $(cat out)"
    grep -q '^sweep: stopped by SIGINT after trial-000; the same command with --resume continues it' out ||
      fail "no stop line: $(cat out)"
    [[ $(status sw/trial-000) == stopped && ! -e sw/trial-001/run.json ]] || fail "trial-000 stopped, trial-001 not run"
    grep -q '^stopped by SIGTERM after step' sw/trial-000/log.txt || fail "the trial's own stop: $(cat sw/trial-000/log.txt)"
    timeout 120 "$bin" "${sweep[@]::7}" --resume "${sweep[@]:7}" >out 2>err || fail "--resume: $(cat out err)"
    grep -q '^sweep: 2 of 2 trials finished;' out || fail "--resume: $(cat out)"
    [[ $(status sw/trial-000) == finished && $(status sw/trial-001) == finished ]] || fail "--resume finished neither"
    echo "SIGINT stopped trial-000 and the sweep; --resume finished both"
    ;;
  *) fail "unknown case $what" ;;
esac
echo PASS
