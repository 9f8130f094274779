#!/usr/bin/env bash
# Training throughput, ringtrain vs the PyTorch peer (../shared/peers/torch_train.py, Debian's
# python3-torch with OpenBLAS), same model, batch, threads and data, measured side by side in one run.
# Each pair is run REPEAT times interleaved (ours, peer, ours, peer, ...) and the best of each is kept,
# since this 2-core machine is noisy. Prints img/s for both and the ratio ours / peer, and ringtrain's img/s
# with `--augment crop:4,flip` (issue 20: the loader's thread crops and flips while the training thread
# computes, so the augmented rate should be the plain one; aug/plain is that ratio).
# usage: bench/train_vs_torch.sh [BATCH] [REPEAT]     (run .ci/setup first)
set -euo pipefail
cd "$(dirname "$0")/.."
batch=${1:-64} repeat=${2:-2}
peers=${PEERS:-$(cd .. && pwd)/shared/peers}
bin=${RINGTRAIN:-build/src/ringtrain} data=${DATA:-build/data/fashion-mnist}
[[ -x $bin && -f $data/test-00000.h5 ]] || { echo "run .ci/setup --no-run first (or set RINGTRAIN and DATA)"; exit 1; }
[[ -f $peers/torch_train.py ]] || { echo "no peer at $peers/torch_train.py (set PEERS)"; exit 1; }
if ! /usr/bin/python3 -c "import torch" 2>/dev/null; then
  echo "== installing python3-torch (the peer)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-torch >/dev/null
fi

ours() {  # model threads steps [flags...] -> img/s of the measured epoch
  "$bin" train --data "$data" --model "$1" --threads "$2" --batch "$batch" --epochs 1 --steps "$3" --prefetch 4 "${@:4}" |
    sed -n 's/^epoch 1\/1 .*  \([0-9]*\) img\/s.*/\1/p'
}
peer() {  # model threads epochs -> img/s after its 5 warm-up steps
  (cd "$peers" && /usr/bin/python3 torch_train.py "$1" "$batch" "$3" "$2") | sed -n 's/.*img_per_s_total=\([0-9]*\).*/\1/p'
}

printf "%-5s %6s %7s %14s %14s %7s %14s %9s\n" model batch threads ringtrain_img/s pytorch_img/s ratio \
  augmented_img/s aug/plain
for model in ${MODELS:-mlp cnn}; do
  # About the same number of steps for both: mlp a full epoch, cnn ~250 steps.
  if [[ $model == mlp ]]; then steps=843 epochs=1; else steps=250 epochs=0.27; fi
  for threads in 1 2; do
    best_ours=0 best_peer=0 best_aug=0
    for ((r = 0; r < repeat; ++r)); do
      o=$(ours $model $threads $steps); p=$(peer $model $threads $epochs)
      a=$(ours $model $threads $steps --augment crop:4,flip)
      ((o > best_ours)) && best_ours=$o
      ((p > best_peer)) && best_peer=$p
      ((a > best_aug)) && best_aug=$a
    done
    printf "%-5s %6d %7d %14d %14d %7.2f %14d %9.2f\n" $model "$batch" "$threads" "$best_ours" "$best_peer" \
      "$(awk -v a="$best_ours" -v b="$best_peer" 'BEGIN { print a / b }')" "$best_aug" \
      "$(awk -v a="$best_aug" -v b="$best_ours" 'BEGIN { print a / b }')"
  done
done
