#!/usr/bin/env bash
# Every bad input of `ringtrain sweep` (the rows of docs/bad-inputs.md under "Sweeps"): one line
# `ringtrain: error: ...` that says what the table says, the exit code (2 for flags, 1 for the rest), within
# 10 s, and nothing of a trial run or written when the sweep is refused before it starts. The sweep is no MPI
# program (its trials are), so it runs alone, not under mpirun as tests/bad_inputs.sh runs train.
# usage: sweep_bad_inputs.sh RINGTRAIN DOCS_TABLE
set -uo pipefail
bin=$1 table=$2
source "$(dirname "$0")/mpi/common.sh"
make_test_dir
cd "$dir"
write_shards data train-00000.h5:64 val-00000.h5:32
printf 'data = %s/data\nmodel = flatten,linear(4),relu,linear(out)\nepochs = 1\nbatch = 8\n' "$dir" >base.ini

checked=0
# row CODE MESSAGE ARGS...: `ringtrain ARGS` fails with exit CODE and one error line containing MESSAGE, which
# the table holds too.
row() {
  local code=$1 message=$2
  shift 2
  grep -qF -- "$message" "$table" || fail "docs: the bad-input table does not say '$message'"
  local start=$SECONDS
  timeout 30 "$bin" "$@" >out 2>err
  local rc=$? took=$((SECONDS - start))
  [[ $rc == "$code" ]] || fail "'$message': exit $rc, expected $code: $(cat out err)"
  ((took <= 10)) || fail "'$message': took $took s"
  [[ $(grep -c . err) == 1 && $(grep -c '^ringtrain: error:' err) == 1 ]] || fail "'$message': not one line: $(cat err)"
  grep -qF -- "$message" err || fail "'$message': the error says: $(cat err)"
  echo "ok (exit $rc): $(cat err)"
  ((++checked))
}
sweep=(sweep --config base.ini --out sw)

row 2 "--grid lrate=0.1,0.2: ringtrain train has no option 'lrate'" "${sweep[@]}" --grid lrate=0.1,0.2
row 2 "--grid run-dir=a,b: 'run-dir' is not a setting a sweep varies" "${sweep[@]}" --grid run-dir=a,b
row 2 "--grid 'lr' must be KEY=VALUE,VALUE,..." "${sweep[@]}" --grid lr
row 2 "--grid lr=0.1,,0.01: value 2 is empty" "${sweep[@]}" --grid lr=0.1,,0.01
row 2 "--grid lr=: no values after '='" "${sweep[@]}" --grid lr=
row 2 "--grid lr=0.1,0.1: '0.1' is listed twice" "${sweep[@]}" --grid lr=0.1,0.1
row 2 "--grid optimizer=lion: --optimizer must be sgd, adam, adamw or rmsprop, got 'lion'" "${sweep[@]}" --grid optimizer=sgd,lion
row 2 "--grid batch=big: the argument ('big') for option 'batch' is invalid" "${sweep[@]}" --grid batch=16,big
row 2 "--grid model=a#b: a value cannot hold '#' or a line break" "${sweep[@]}" --grid "model=mlp,a#b"
row 2 "--random lr=normal(0,1): the distribution must be uniform(LOW,HIGH) or loguniform(LOW,HIGH)" \
  "${sweep[@]}" --random "lr=normal(0,1)" --trials 2
row 2 "--random lr=uniform(a,1): 'a' is not a finite number" "${sweep[@]}" --random "lr=uniform(a,1)" --trials 2
row 2 "--random lr=uniform(0.5,0.1): LOW must be below HIGH" "${sweep[@]}" --random "lr=uniform(0.5,0.1)" --trials 2
row 2 "--random lr=loguniform(0,1): loguniform needs LOW above 0" "${sweep[@]}" --random "lr=loguniform(0,1)" --trials 2
row 2 "--trials must be at least 1, got 0" "${sweep[@]}" --random "lr=uniform(0.1,0.5)" --trials 0
row 2 "--random needs --trials N" "${sweep[@]}" --random "lr=uniform(0.1,0.5)"
row 2 "--trials draws --random settings, and there are none" "${sweep[@]}" --grid lr=0.1,0.2 --trials 3
row 2 "nothing to sweep: give --grid KEY=VALUES or --random KEY=DIST(LOW,HIGH)" "${sweep[@]}"
row 2 "'lr' is swept twice (by --grid or --random)" "${sweep[@]}" --grid lr=0.1,0.2 --random "lr=uniform(0.1,0.5)" --trials 2
row 2 "--lr after -- is also swept: give it one way" "${sweep[@]}" --grid lr=0.1,0.2 -- --lr 0.3
row 2 "--run-dir after --: the sweep runs each trial with its own --config and --run-dir" "${sweep[@]}" --grid lr=0.1,0.2 \
  -- --run-dir elsewhere
row 2 "the sweep needs --out DIR (or --collect DIR to rank one)" sweep --grid lr=0.1,0.2
row 2 "--collect ranks a sweep's trials: it takes --metric and --mode, not --grid" sweep --collect sw --grid lr=0.1
row 2 "--metric goes with --collect DIR" "${sweep[@]}" --grid lr=0.1,0.2 --metric val_loss
row 2 "--submit goes with --slurm" "${sweep[@]}" --grid lr=0.1,0.2 --submit
row 2 "--launcher is for local trials; with --slurm each trial runs under srun" "${sweep[@]}" --grid lr=0.1,0.2 --slurm \
  --launcher "mpirun -np 2"
row 2 "--ntasks goes with --slurm" "${sweep[@]}" --grid lr=0.1,0.2 --ntasks 2
[[ ! -e sw ]] || fail "a refused sweep wrote $(ls -R sw)"
# Rules between settings, checked for every trial before any runs (exit 1, as train's).
row 1 "trial-001 (lr=-0.1): --lr must be positive, got -0.1" "${sweep[@]}" --grid lr=0.1,-0.1
row 1 "the sweep would have more than 100000 trials" "${sweep[@]}" --random "lr=uniform(0.1,0.5)" --trials 200000
[[ ! -e sw ]] || fail "a refused sweep wrote $(ls -R sw)"
# The sweep's directory.
touch file
row 1 "--out 'file' is not a directory" sweep --config base.ini --out file --grid lr=0.1,0.2
mkdir full && touch full/notes.txt
row 1 "--out 'full' is not empty and holds no sweep (no sweep.json)" sweep --config base.ini --out full --grid lr=0.1,0.2
timeout 60 "$bin" "${sweep[@]}" --grid lr=0.1,0.2 >out 2>&1 || fail "a good sweep failed: $(cat out)"
row 1 "--out 'sw' already holds a sweep: add --resume to continue it" "${sweep[@]}" --grid lr=0.1,0.2
row 1 "--out 'sw' holds another sweep (its sweep.json differs from this one's" "${sweep[@]}" --grid lr=0.1,0.3 --resume
sed -i 's/^epochs = 1$/epochs = 2/' base.ini
row 1 "trial-000 of --out 'sw' finished with other settings than this sweep gives it" "${sweep[@]}" --grid lr=0.1,0.2 --resume
# A submission sbatch refuses (an sbatch of our own, on PATH, refusing as SLURM would).
mkdir bin && printf '#!/bin/sh\necho "sbatch: error: Batch job submission failed: Invalid job array specification" >&2\nexit 1\n' >bin/sbatch
chmod +x bin/sbatch
PATH=$dir/bin:$PATH row 1 "/slurm/sweep.sbatch: sbatch: error: Batch job submission failed" \
  sweep --config base.ini --out slurm --grid lr=0.1,0.2 --slurm --submit
# --collect.
mkdir empty && printf 'trial\n' >empty/trials.csv
row 1 "--collect 'nothing' holds no sweep (no trials.csv" sweep --collect nothing
row 1 "--collect 'empty': trials.csv lists no trials" sweep --collect empty
row 1 "--metric val_acc: no trial's metrics.csv has that column (trial-000's has epoch, step, lr" sweep --collect sw --metric val_acc
row 2 "--mode must be max or min, got 'best'" sweep --collect sw --mode best
echo "PASS: $checked rows"
