#!/usr/bin/env bash
# Acceptance (issue 22): gpt-tiny learns English from a real text. The `fortunes` package's files (Debian's
# fortune cookies, about 2.6 MB of UTF-8; .ci/setup installs it) are prepared as byte tokens in windows of
# 128; gpt-tiny trains STEPS steps of batch 16 with AdamW (a warm-up over the first 45 steps, gradients clipped
# to norm 1: without them the loss may sit at the byte frequencies' entropy for hundreds of steps, longer or
# shorter by the seed's luck, in either program) on 2 threads, and must reach a validation loss of
#  - at most 0.9 x the validation cross-entropy of a bigram model fitted on the same training split, and
#  - within 3% of the PyTorch peer (bench/torch_gpt.py) trained the same way: same model, data, steps, batch,
#    learning rate and optimizer, on the same threads.
# Then `generate` continues a prompt (temperature 0.6, the 10 likeliest bytes: the usual settings for readable
# samples of a small model): the same seed gives the same text, and most of its words (more than half) are
# words of the text it learnt from.
# usage: gpt_text.sh RINGTRAIN_BIN STEPS
set -euo pipefail
bin=$1 steps=$2
here=$(cd "$(dirname "$0")" && pwd)
text=${FORTUNES:-/usr/share/games/fortunes}
[[ -d $text ]] || { echo "no text at $text: install Debian's fortunes package (.ci/setup does)"; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin" prep --format text --input "$text" --context 128 --out "$work/data"
flags=(--batch 16 --steps "$steps" --lr 2e-3 --weight-decay 0.01 --clip-grad-norm 1 --threads 2)

bigram=$(/usr/bin/python3 - "$work/data" <<'PY'
import glob, sys, h5py, numpy as np
def tokens(pattern):  # every window's x with its last label: the split's text, window after window
    out = []
    for path in sorted(glob.glob(pattern)):
        with h5py.File(path, "r") as f:
            x, y = np.asarray(f["x"], np.int64), np.asarray(f["y"], np.int64)
        out.append(np.concatenate([x, y[:, -1:]], axis=1))
    return out
counts = np.full((256, 256), 0.01)  # a little mass on every pair, or an unseen one costs infinity
for w in tokens(sys.argv[1] + "/train-*.h5"):
    np.add.at(counts, (w[:, :-1].ravel(), w[:, 1:].ravel()), 1)
p = counts / counts.sum(1, keepdims=True)
nll = [-np.log(p[w[:, :-1].ravel(), w[:, 1:].ravel()]) for w in tokens(sys.argv[1] + "/val-*.h5")]
print(f"{np.concatenate(nll).mean():.4f}")
PY
)
echo "bigram model: validation cross-entropy $bigram nats/token"

# 0.05 of the 905 steps an epoch has at batch 16: the peer's 45 warm-up steps.
"$bin" train --data "$work/data" --model gpt-tiny --optimizer adamw --epochs 1 --warmup-epochs 0.05 "${flags[@]}" \
  --save "$work/gpt.h5" |
  tee "$work/train.log"
ours=$(sed -n 's/^epoch 1\/1.* val_loss \([0-9.]*\).*/\1/p' "$work/train.log")
/usr/bin/python3 "$here/../../bench/torch_gpt.py" --data "$work/data" --steps "$steps" --batch 16 --lr 2e-3 \
  --weight-decay 0.01 --warmup-steps 45 --clip-grad-norm 1 --threads 2 | tee "$work/peer.log"
peer=$(sed -n 's/.*val_loss=\([0-9.]*\).*/\1/p' "$work/peer.log")
echo "validation loss: ringtrain $ours, PyTorch $peer, bigram $bigram (need <= 0.9 x bigram, within 3% of PyTorch)"
awk -v o="$ours" -v b="$bigram" 'BEGIN { exit !(o > 0 && o <= 0.9 * b) }' || { echo "FAIL: not below 0.9 x bigram"; exit 1; }
awk -v o="$ours" -v p="$peer" 'BEGIN { d = (o - p) / p; exit !(d <= 0.03 && d >= -0.03) }' ||
  { echo "FAIL: not within 3% of PyTorch"; exit 1; }

prompt="The meaning of life is"
"$bin" generate --model-file "$work/gpt.h5" --prompt "$prompt" --tokens 400 --temperature 0.6 --top-k 10 --seed 7 >"$work/a.txt"
"$bin" generate --model-file "$work/gpt.h5" --prompt "$prompt" --tokens 400 --temperature 0.6 --top-k 10 --seed 7 >"$work/b.txt"
cmp -s "$work/a.txt" "$work/b.txt" || { echo "FAIL: the same seed gave different text"; exit 1; }
cat "$work/a.txt"
/usr/bin/python3 - "$text" "$work/a.txt" "${#prompt}" <<'PY'
import os, re, sys
words = lambda s: re.findall(r"[a-z]+", s.lower())
known = set()
for name in os.listdir(sys.argv[1]):
    if not name.endswith((".dat", ".u8")):
        known.update(words(open(os.path.join(sys.argv[1], name), encoding="utf-8").read()))
drawn = [w for w in words(open(sys.argv[2], encoding="utf-8").read()[int(sys.argv[3]):]) if len(w) > 1]
share = sum(w in known for w in drawn) / max(1, len(drawn))
print(f"generated: {len(drawn)} words of two letters or more, {share:.0%} of them words of the text")
sys.exit(0 if len(drawn) >= 20 and share > 0.5 else 1)
PY
