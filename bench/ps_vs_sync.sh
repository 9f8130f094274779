#!/usr/bin/env bash
# One straggler: asynchronous parameter servers vs synchronous allreduce, in one run. Two workers train the
# mlp on Fashion-MNIST (batch BATCH each, EPOCHS epochs); worker 1 sleeps one step's time before each of its
# steps (its step takes 2x), the step time measured first by a clean synchronous run. Synchronous data
# parallel (2 ranks, ring allreduce) waits for it every step; the parameter-server runs (2 workers + 1 server
# rank) let the fast worker run up to S steps ahead. Prints img/s, test accuracy and img/s against the
# synchronous run, for each S.
# usage: bench/ps_vs_sync.sh [BATCH] [EPOCHS] [S...]     (run .ci/setup --no-run first)
set -euo pipefail
cd "$(dirname "$0")/.."
batch=${1:-128} epochs=${2:-2}
shift 2 || shift $#
bounds=("${@:-0 4 64 100000}")
read -r -a bounds <<<"${bounds[*]}"
bin=${RINGTRAIN:-build/src/ringtrain} data=${DATA:-build/data/fashion-mnist}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
[[ -x $bin && -f $data/test-00000.h5 ]] || { echo "run .ci/setup --no-run first (or set RINGTRAIN and DATA)"; exit 1; }

run() {  # ranks flags... -> "img/s test_accuracy" (img/s of the last epoch)
  local ranks=$1 out
  shift
  out=$(mpirun --oversubscribe -np "$ranks" "$bin" train --data "$data" --model mlp --batch "$batch" \
    --epochs "$epochs" --lr 0.05 "$@")
  echo "$(sed -n "s/^epoch $epochs\/$epochs .*  \([0-9]*\) img\/s.*/\1/p" <<<"$out")" \
    "$(sed -n 's/.*test_accuracy \([0-9.]*\).*/\1/p' <<<"$out")"
}

read -r clean _ <<<"$(run 2)"
step_ms=$(awk -v b="$batch" -v r="$clean" 'BEGIN { printf "%.2f", 1000 * 2 * b / r }')
slow=(--straggler-rank 1 --straggler-ms "$step_ms")
echo "mlp, 2 workers x batch $batch, $epochs epochs; a clean synchronous step takes $step_ms ms ($clean img/s);"
echo "worker 1 sleeps $step_ms ms before each step"
read -r sync_rate sync_acc <<<"$(run 2 "${slow[@]}")"
printf "%-26s %10s %9s %10s\n" run img/s test_acc vs_sync
printf "%-26s %10d %9s %10.2f\n" "sync allreduce (2 ranks)" "$sync_rate" "$sync_acc" 1
for s in "${bounds[@]}"; do
  read -r rate acc <<<"$(run 3 --mode ps --staleness "$s" "${slow[@]}")"
  printf "%-26s %10d %9s %10.2f\n" "ps, staleness $s (3 ranks)" "$rate" "$acc" \
    "$(awk -v a="$rate" -v b="$sync_rate" 'BEGIN { print a / b }')"
done
