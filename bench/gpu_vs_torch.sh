#!/usr/bin/env bash
# GPU training throughput, ringtrain vs PyTorch on the same GPU, same model, batch and optimizer, measured
# side by side in one run; prints img/s for both and the ratio ours / peer. Models: mlp and cnn on
# Fashion-MNIST (batch 64 and 512), resnet50 on synthetic 3x224x224 data with 1000 classes (batch 64), and
# gpt2-124m on random tokens (context 1024, vocabulary 50257, batch 8, AdamW; tokens/s, peer bench/torch_gpt.py).
# ringtrain reads its HDF5 shards through the loader and uploads every batch (resnet50: makes its synthetic
# samples on the CPU and uploads them); the peer (bench/torch_gpu_train.py) indexes a dataset already in GPU
# memory (resnet50: reuses one random batch made on the GPU), its most favourable setting.
# ringtrain's figure is its best epoch of EPOCHS (the first includes cuDNN's algorithm search; a synthetic
# epoch is 1280 samples, 20 steps at batch 64); the peer's covers as many steps after 20 warm-up steps.
# usage: bench/gpu_vs_torch.sh [EPOCHS] [MATH...]   (MATH: fp32 tf32 bf16; default fp32 tf32)
#   env: RINGTRAIN (binary, default build/src/ringtrain), DATA (prepared shards, default
#        build/data/fashion-mnist), PYTHON (default /usr/bin/python3), FMNIST_IDX (the peer's IDX files),
#        MODELS (default "mlp cnn resnet50 gpt2-124m"), RESNET50_BATCHES (default 64)
set -euo pipefail
cd "$(dirname "$0")/.."
epochs=${1:-3}
shift || true
maths=("${@:-fp32 tf32}")
read -r -a maths <<<"${maths[*]}"
bin=${RINGTRAIN:-build/src/ringtrain} data=${DATA:-build/data/fashion-mnist} python=${PYTHON:-/usr/bin/python3}
models=${MODELS:-mlp cnn resnet50 gpt2-124m}
synthetic=synthetic:3x224x224:1000
[[ -x $bin ]] || { echo "run .ci/setup --no-run first (or set RINGTRAIN)"; exit 1; }
if [[ " $models " == *" mlp "* || " $models " == *" cnn "* ]]; then
  [[ -f $data/train-00000.h5 ]] || { echo "run .ci/setup --no-run first (or set DATA)"; exit 1; }
fi
devices=$("$bin" devices)
if [[ $devices == "cuda: none"* ]]; then echo "skipped: ${devices#cuda: none }"; exit 0; fi
echo "$devices"

ours() {  # model batch math data [flags...] -> best epoch img/s or tokens/s (nothing if the run failed)
  "$bin" train --data "$4" --model "$1" --batch "$2" --precision "$3" --device cuda --epochs "$epochs" \
    --lr 0.05 --prefetch 8 "${@:5}" | sed -n 's/^epoch .*  \([0-9]*\) \(img\|tokens\)\/s.*/\1/p' | sort -n | tail -1 || true
}
gpt_peer() {  # batch math steps -> tokens/s (nothing if the run failed)
  "$python" bench/torch_gpt.py --device cuda --data synthetic-tokens:1024:50257 --layers 12 --heads 12 --channels 768 \
    --context 1024 --tied --batch "$1" --math "$2" --steps "$3" | sed -n 's/.*tokens_per_s=\([0-9]*\).*/\1/p' || true
}
peer() {  # model batch math steps data -> img/s (nothing if the run failed)
  "$python" bench/torch_gpu_train.py "$1" "$2" "$4" "$3" --data "$5" | sed -n 's/.*img_per_s=\([0-9]*\).*/\1/p' || true
}

printf "%-9s %6s %5s %16s %14s %7s\n" model batch math ringtrain_rate pytorch_rate ratio
for model in $models; do
  if [[ $model == gpt2-124m ]]; then  # rates in tokens/s; 32 steps of 8 x 1024 tokens an epoch
    for math in "${maths[@]}"; do
      o=$(ours gpt2-124m 8 "$math" synthetic-tokens:1024:50257:256 --optimizer adamw --lr 6e-4); p=$(gpt_peer 8 "$math" 64)
      printf "%-9s %6d %5s %16s %14s %7s\n" gpt2-124m 8 "$math" "${o:--}" "${p:--}" \
        "$(awk -v a="$o" -v b="$p" 'BEGIN { if (a == "" || b + 0 == 0) print "-"; else printf "%.2f", a / b }')"
    done
    continue
  fi
  if [[ $model == resnet50 ]]; then
    batches=${RESNET50_BATCHES:-64} ours_data=$synthetic peer_data=$synthetic
  else
    batches="64 512" ours_data=$data peer_data=fashion-mnist
  fi
  for batch in $batches; do
    # Fashion-MNIST: one epoch of the training split; synthetic: two of ringtrain's 1280-sample epochs.
    if [[ $model == resnet50 ]]; then steps=$((2560 / batch)); else steps=$((54000 / batch)); fi
    for math in "${maths[@]}"; do
      o=$(ours "$model" "$batch" "$math" "$ours_data"); p=$(peer "$model" "$batch" "$math" "$steps" "$peer_data")
      printf "%-9s %6d %5s %16s %14s %7s\n" "$model" "$batch" "$math" "${o:--}" "${p:--}" \
        "$(awk -v a="$o" -v b="$p" 'BEGIN { if (a == "" || b + 0 == 0) print "-"; else printf "%.2f", a / b }')"
    done
  done
done
