#!/usr/bin/env bash
# What reliability costs a run, in one run: data parallel on 2 ranks trains the mlp (or MODEL) on
# Fashion-MNIST, REPS times each, interleaved: without checkpoints (the peer), with a checkpoint every EVERY
# steps, and without the heartbeat (--peer-timeout-s 0). Prints the median img/s of each against the peer,
# and what one checkpoint costs (size, time to gather and write it, from the run's own log lines). The
# per-step stop vote and non-finite check are in every run: their cost is in docs/benchmarks.md.
# usage: bench/checkpoint.sh [MODEL] [EVERY] [REPS]     (run .ci/setup --no-run first)
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-mlp} every=${2:-100} reps=${3:-5}
bin=${RINGTRAIN:-build/src/ringtrain} data=${DATA:-build/data/fashion-mnist}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
[[ -x $bin && -f $data/test-00000.h5 ]] || { echo "run .ci/setup --no-run first (or set RINGTRAIN and DATA)"; exit 1; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

run() {  # name flags... -> appends the run's img/s to $dir/name
  local name=$1
  shift
  mpirun --oversubscribe -np 2 "$bin" train --data "$data" --model "$model" --batch 32 --epochs 1 --stage-to none \
    "$@" >"$dir/$name.log"
  sed -n 's/^epoch 1\/1 .*  \([0-9]*\) img\/s.*/\1/p' "$dir/$name.log" >>"$dir/$name"
}
median() { sort -n "$1" | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

for ((i = 0; i < reps; ++i)); do
  run plain
  rm -rf "$dir/ckpt"
  run checkpoints --checkpoint-dir "$dir/ckpt" --checkpoint-every "$every"
  run no_heartbeat --peer-timeout-s 0
done
plain=$(median "$dir/plain")
echo "# $model, 2 ranks, batch 32 x 2, 1 epoch; median of $reps runs each, interleaved"
printf "%-34s %10s %8s\n" "run" "img/s" "ratio"
printf "%-34s %10.0f %8s\n" "no checkpoints (peer)" "$plain" "1.00"
for name in checkpoints no_heartbeat; do
  label=$name
  [[ $name == checkpoints ]] && label="a checkpoint every $every steps"
  [[ $name == no_heartbeat ]] && label="no heartbeat (--peer-timeout-s 0)"
  value=$(median "$dir/$name")
  printf "%-34s %10.0f %8.2f\n" "$label" "$value" "$(awk -v a="$value" -v b="$plain" 'BEGIN { print a / b }')"
done
grep -h '^  checkpoint ' "$dir/checkpoints.log" | sed 's/.*(\(.*\))/one checkpoint: \1 (gather, write, fsync, rename)/' | tail -1
