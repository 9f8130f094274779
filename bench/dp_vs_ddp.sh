#!/usr/bin/env bash
# Data-parallel training on 2 ranks x 1 thread: ringtrain (mpirun, ring allreduce engine) vs PyTorch DDP
# (gloo, ../shared/peers/ddp.sh), same model, per-rank batch and steps, in one run. Each is also run on one
# rank, for its own scaling efficiency: img/s on 2 ranks / (2 x img/s on 1 rank). Runs are interleaved
# REPEAT times and the best of each kept (this 2-core machine is noisy).
# usage: bench/dp_vs_ddp.sh [BATCH] [REPEAT]     (MODELS="mlp cnn"; run .ci/setup --no-run first)
set -euo pipefail
cd "$(dirname "$0")/.."
batch=${1:-64} repeat=${2:-2}
peers=${PEERS:-$(cd .. && pwd)/shared/peers}
bin=${RINGTRAIN:-build/src/ringtrain} data=${DATA:-build/data/fashion-mnist}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
[[ -x $bin && -f $data/test-00000.h5 ]] || { echo "run .ci/setup --no-run first (or set RINGTRAIN and DATA)"; exit 1; }
[[ -f $peers/ddp.sh ]] || { echo "no peer at $peers/ddp.sh (set PEERS)"; exit 1; }
if ! /usr/bin/python3 -c "import torch" 2>/dev/null; then
  echo "== installing python3-torch (the peer)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-torch >/dev/null
fi

ours() {  # model ranks steps -> total img/s of the epoch
  local launch=()
  (($2 > 1)) && launch=(mpirun --oversubscribe -np "$2")
  "${launch[@]}" "$bin" train --data "$data" --model "$1" --batch "$batch" --epochs 1 --steps "$3" |
    sed -n 's/^epoch 1\/1 .*  \([0-9]*\) img\/s.*/\1/p'
}
peer() {  # model ranks steps -> total img/s after its 5 warm-up steps
  local epochs
  epochs=$(awk -v s="$3" -v b="$batch" -v r="$2" 'BEGIN { printf "%.4f", s * b * r / 60000 }')
  if (($2 > 1)); then (cd "$peers" && bash ddp.sh "$1" "$batch" "$epochs")
  else (cd "$peers" && /usr/bin/python3 torch_train.py "$1" "$batch" "$epochs" 1); fi |
    sed -n 's/.*img_per_s_total=\([0-9]*\).*/\1/p'
}
best() { local b=0; for v in "$@"; do ((v > b)) && b=$v; done; echo "$b"; }

printf "%-5s %6s | %10s %10s %6s | %10s %10s %6s | %8s\n" model batch ours_1r ours_2r eff ddp_1r ddp_2r eff 2r_ratio
for model in ${MODELS:-mlp cnn}; do
  if [[ $model == mlp ]]; then steps=400; else steps=250; fi
  o1=() o2=() p1=() p2=()
  for ((r = 0; r < repeat; ++r)); do
    o1+=("$(ours "$model" 1 "$steps")"); p1+=("$(peer "$model" 1 "$steps")")
    o2+=("$(ours "$model" 2 "$steps")"); p2+=("$(peer "$model" 2 "$steps")")
  done
  a1=$(best "${o1[@]}") a2=$(best "${o2[@]}") b1=$(best "${p1[@]}") b2=$(best "${p2[@]}")
  awk -v m="$model" -v bt="$batch" -v a1="$a1" -v a2="$a2" -v b1="$b1" -v b2="$b2" 'BEGIN {
    printf "%-5s %6d | %10d %10d %5.0f%% | %10d %10d %5.0f%% | %8.2f\n", m, bt, a1, a2, 100 * a2 / (2 * a1),
           b1, b2, 100 * b2 / (2 * b1), a2 / b2 }'
done
