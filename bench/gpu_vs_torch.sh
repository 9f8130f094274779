#!/usr/bin/env bash
# GPU training throughput, ringtrain vs PyTorch on the same GPU, same model (mlp, cnn), batch (64, 512)
# and optimizer, measured side by side in one run; prints img/s for both and the ratio ours / peer.
# ringtrain reads its HDF5 shards through the loader and uploads every batch; the peer
# (bench/torch_gpu_train.py) indexes a dataset already in GPU memory, its most favourable setting.
# ringtrain's figure is its best epoch of EPOCHS (the first includes cuDNN's algorithm search); the peer's
# covers as many steps after 20 warm-up steps.
# usage: bench/gpu_vs_torch.sh [EPOCHS] [MATH...]   (MATH: fp32 tf32 bf16; default fp32 tf32)
#   env: RINGTRAIN (binary, default build/src/ringtrain), DATA (prepared shards, default
#        build/data/fashion-mnist), PYTHON (default /usr/bin/python3), FMNIST_IDX (the peer's IDX files)
set -euo pipefail
cd "$(dirname "$0")/.."
epochs=${1:-3}
shift || true
maths=("${@:-fp32 tf32}")
read -r -a maths <<<"${maths[*]}"
bin=${RINGTRAIN:-build/src/ringtrain} data=${DATA:-build/data/fashion-mnist} python=${PYTHON:-/usr/bin/python3}
[[ -x $bin && -f $data/train-00000.h5 ]] || { echo "run .ci/setup --no-run first (or set RINGTRAIN and DATA)"; exit 1; }
devices=$("$bin" devices)
if [[ $devices == "cuda: none"* ]]; then echo "skipped: ${devices#cuda: none }"; exit 0; fi
echo "$devices"

ours() {  # model batch math -> best epoch img/s
  "$bin" train --data "$data" --model "$1" --batch "$2" --precision "$3" --device cuda --epochs "$epochs" \
    --lr 0.05 --prefetch 8 | sed -n 's/^epoch .*  \([0-9]*\) img\/s.*/\1/p' | sort -n | tail -1
}
peer() {  # model batch math steps -> img/s
  "$python" bench/torch_gpu_train.py "$1" "$2" "$4" "$3" | sed -n 's/.*img_per_s=\([0-9]*\).*/\1/p'
}

printf "%-5s %6s %5s %16s %14s %7s\n" model batch math ringtrain_img/s pytorch_img/s ratio
for model in ${MODELS:-mlp cnn}; do
  for batch in 64 512; do
    steps=$((54000 / batch))  # one epoch of the training split
    for math in "${maths[@]}"; do
      o=$(ours "$model" "$batch" "$math"); p=$(peer "$model" "$batch" "$math" "$steps")
      printf "%-5s %6d %5s %16d %14d %7.2f\n" "$model" "$batch" "$math" "$o" "$p" \
        "$(awk -v a="$o" -v b="$p" 'BEGIN { print a / b }')"
    done
  done
done
