#!/usr/bin/env bash
# Transformer training throughput on the CPU, ringtrain vs the PyTorch peer (bench/torch_gpt.py, Debian's
# python3-torch with OpenBLAS): the same GPT, batch, optimizer (AdamW) and threads on random tokens, measured
# side by side in one run. Models: gpt-tiny (4 layers, 4 heads, 128 channels, context 128, byte vocabulary)
# and a mid-size one (6 layers, 6 heads, 384 channels, context 256). Each pair runs REPEAT times interleaved
# (ours, peer, ours, peer, ...) and the best of each is kept, since this 2-core machine is noisy.
# Both sides measure the same thing: STEPS steps after 3 warm-up steps (start-up, the first touch of every
# buffer, OpenBLAS's thread pool), wall time from the end of step 3 to the end of the last step. The warm-up
# is not small: on gpt-tiny ringtrain's first 3 steps run at half speed, and a figure that counted them (the
# epoch's tokens/s) read 10-25% low at 12 steps. Ours comes from the step lines (--log-every 3): each gives
# the tokens/s since the line before, and the intervals after step 3 add up to the measured span.
# Prints tokens/s for both and the ratio ours / peer.
# usage: bench/gpt_vs_torch.sh [STEPS] [REPEAT]     (run .ci/setup first; env RINGTRAIN, MODELS="tiny mid")
# STEPS is rounded up to a multiple of 3.
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-12} repeat=${2:-2}
steps=$(((steps + 2) / 3 * 3))
bin=${RINGTRAIN:-build/src/ringtrain}
[[ -x $bin ]] || { echo "run .ci/setup --no-run first (or set RINGTRAIN)"; exit 1; }
if ! /usr/bin/python3 -c "import torch" 2>/dev/null; then
  echo "== installing python3-torch (the peer)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-torch >/dev/null
fi

spec() {  # layers heads channels context -> ringtrain's model spec of that GPT
  local s="embedding(out,$3,context=$4)"
  for ((i = 0; i < $1; ++i)); do s+=",block($2)"; done
  echo "$s,layernorm,linear(out,per_token=1,bias=0)"
}
ours() {  # layers heads channels context batch threads -> tokens/s after 3 warm-up steps
  "$bin" train --data "synthetic-tokens:$4:256" --model "$(spec "$1" "$2" "$3" "$4")" --optimizer adamw --lr 1e-3 \
    --batch "$5" --threads "$6" --epochs 1 --steps $((steps + 3)) --prefetch 4 --progress lines --log-every 3 |
    awk -v tokens=$((3 * $4 * $5)) '$1 == "step" && $2 > 3 && $(NF) == "tokens/s" { n += tokens; s += tokens / $(NF - 1) }
      END { if (s > 0) printf "%.0f\n", n / s }'
}
peer() {  # layers heads channels context batch threads -> tokens/s after its 3 warm-up steps
  /usr/bin/python3 bench/torch_gpt.py --data "synthetic-tokens:$4:256" --layers "$1" --heads "$2" --channels "$3" \
    --context "$4" --batch "$5" --threads "$6" --steps $((steps + 3)) | sed -n 's/.*tokens_per_s=\([0-9]*\).*/\1/p'
}

printf "%-9s %6s %7s %16s %16s %7s\n" model batch threads ringtrain_tok/s pytorch_tok/s ratio
for model in ${MODELS:-tiny mid}; do
  if [[ $model == tiny ]]; then shape=(4 4 128 128) batch=16; else shape=(6 6 384 256) batch=8; fi
  for threads in 1 2; do
    best_ours=0 best_peer=0
    for ((r = 0; r < repeat; ++r)); do
      o=$(ours "${shape[@]}" "$batch" "$threads"); p=$(peer "${shape[@]}" "$batch" "$threads")
      ((o > best_ours)) && best_ours=$o
      ((p > best_peer)) && best_peer=$p
    done
    printf "%-9s %6d %7d %16d %16d %7.2f\n" "gpt-$model" "$batch" "$threads" "$best_ours" "$best_peer" \
      "$(awk -v a="$best_ours" -v b="$best_peer" 'BEGIN { print a / b }')"
  done
done
