#!/usr/bin/env bash
# CPU training throughput of the ResNet presets, ringtrain vs the PyTorch peer (bench/torch_resnet.py:
# the same architectures in torch.nn, Debian's python3-torch with oneDNN), same model, batch, threads,
# optimizer (SGD lr 0.05 momentum 0.9) and data, measured side by side in one run:
#   resnet20 on Fashion-MNIST (1x28x28, 10 classes), batch 64;
#   resnet50 on synthetic 3x224x224 data, 1000 classes, a small batch (2 CPU cores do a few img/s).
# Each pair runs REPEAT times interleaved (ours, peer, ours, peer, ...) at 1 and 2 threads and the best of
# each is kept, since this 2-core machine is noisy. Prints img/s for both and the ratio ours / peer.
# Both make W warm-up steps plus STEPS steps and both figures time only the STEPS: the peer's own timer, and
# ringtrain's step lines (--log-every 1, each with the rate since the line before). The first steps carry
# one-off costs (memory first touched, oneDNN's kernels made: about 15 s of resnet50's first step here, most
# of it the kernel zeroing fresh pages), which a throughput figure must not average in. This script stops
# ringtrain after its last step line, without its val and test passes.
# Defaults take about 5-10 minutes on 2 quiet cores; each of the 16 runs is cut at RUN_TIMEOUT seconds
# (then "-"), so no run of the defaults passes 40 minutes whatever happens.
# On a machine others are loading, OpenMP's spinning workers (libgomp's default, in both programs) can make
# 2 threads several times slower than 1: OMP_WAIT_POLICY=passive in the environment reaches both.
# usage: bench/resnet_vs_torch.sh [REPEAT] [R20_STEPS] [R50_BATCH] [R50_STEPS]   (defaults 2 40 8 3)
#   env: RINGTRAIN (default build/src/ringtrain), DATA (prepared Fashion-MNIST, default
#        build/data/fashion-mnist), PEERS (shared/peers, for fmnist.py), MODELS (default
#        "resnet20 resnet50"), THREADS (default "1 2"), RUN_TIMEOUT (default 150)
set -euo pipefail
cd "$(dirname "$0")/.."
repeat=${1:-2} r20_steps=${2:-40} r50_batch=${3:-8} r50_steps=${4:-3}
export PEERS=${PEERS:-$(cd .. && pwd)/shared/peers}
bin=${RINGTRAIN:-build/src/ringtrain} data=${DATA:-build/data/fashion-mnist} run_timeout=${RUN_TIMEOUT:-150}
models=${MODELS:-resnet20 resnet50}
[[ -x $bin ]] || { echo "no ringtrain at $bin: run .ci/setup --no-run first (or set RINGTRAIN)"; exit 1; }
if [[ " $models " == *" resnet20 "* ]]; then
  [[ -f $data/val-00000.h5 ]] || { echo "no Fashion-MNIST shards in $data: run .ci/setup --no-run (or set DATA)"; exit 1; }
  [[ -f $PEERS/fmnist.py ]] || { echo "no $PEERS/fmnist.py (set PEERS)"; exit 1; }
fi
if ! /usr/bin/python3 -c "import torch" 2>/dev/null; then
  echo "== installing python3-torch (the peer)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-torch >/dev/null
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# ringtrain's data flag and the peer's for a model; batch, steps and warm-up steps.
setup() {
  case $1 in
    resnet20) rt_data=$data peer_data=fashion-mnist batch=64 steps=$r20_steps warmup=5 ;;
    resnet50) rt_data=synthetic:3x224x224:1000 peer_data=synthetic:3x224x224:1000 batch=$r50_batch
              steps=$r50_steps warmup=1 ;;
    *) echo "no settings for model $1" >&2; exit 1 ;;
  esac
}

ours() {  # model threads -> img/s over its steps after the warm-up, or nothing if it failed or ran out of time
  local log=$tmp/ringtrain.log pid waited=0 lines
  rm -f "$log"
  "$bin" train --data "$rt_data" --model "$1" --threads "$2" --batch "$batch" --epochs 1 \
    --steps $((warmup + steps)) --log-every 1 --prefetch 4 >"$log" 2>&1 &
  pid=$!
  # Each step line carries the rate since the line before; the val and test passes after them are not needed.
  while kill -0 "$pid" 2>/dev/null && (($(grep -c '^  step ' "$log") < warmup + steps)) && ((waited < 2 * run_timeout)); do
    sleep 0.5; ((++waited))
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  lines=$(grep -c '^  step ' "$log" || true)
  if ((lines == warmup + steps)); then
    # Every step trains `batch` images, so the rate over the timed steps is the harmonic mean of theirs.
    sed -n 's/^  step \([0-9]*\) .*  \([0-9.]*\) img\/s$/\1 \2/p' "$log" |
      awk -v w="$warmup" '$1 > w { n++; t += 1 / $2 } END { if (n) print n / t }'
  else
    echo "ringtrain $1 (threads $2) gave $lines of $((warmup + steps)) steps; its last lines:" >&2; tail -3 "$log" >&2
  fi
}
peer() {  # model threads -> img/s over its timed steps
  timeout "$run_timeout" /usr/bin/python3 bench/torch_resnet.py "$1" "$batch" "$steps" "$2" --data "$peer_data" \
    --warmup "$warmup" | sed -n 's/.*img_per_s_total=\([0-9.]*\).*/\1/p' || true
}
show() { awk -v a="$1" 'BEGIN { if (a == "") print "-"; else printf "%.1f", a }'; }
better() { awk -v a="$1" -v b="$2" 'BEGIN { print (a != "" && (b == "" || a + 0 > b + 0)) ? a : b }'; }

printf "%-8s %6s %7s %6s %16s %14s %7s\n" model batch threads steps ringtrain_img/s pytorch_img/s ratio
for model in $models; do
  setup "$model"
  for threads in ${THREADS:-1 2}; do
    best_ours="" best_peer=""
    for ((r = 0; r < repeat; ++r)); do
      best_ours=$(better "$(ours "$model" "$threads")" "$best_ours")
      best_peer=$(better "$(peer "$model" "$threads")" "$best_peer")
    done
    printf "%-8s %6d %7d %6s %16s %14s %7s\n" "$model" "$batch" "$threads" "$warmup+$steps" "$(show "$best_ours")" \
      "$(show "$best_peer")" "$(awk -v a="$best_ours" -v b="$best_peer" \
        'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "-"; else printf "%.2f", a / b }')"
  done
done
