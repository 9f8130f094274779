#!/usr/bin/env bash
# Acceptance (issue 20): fine-tuning beats training from scratch on a small set. The cnn learns Fashion-MNIST's
# classes 0-4 (T-shirt, trouser, pullover, dress, coat: their 27,007 training images, 1 epoch). Then, on a small
# set of the other five (sandal, shirt, sneaker, bag, ankle boot: 20 training images each, relabelled 0-4),
# the same cnn trains for the same 250 steps at the same settings twice: fine-tuned (--init-from the first
# model, its convolutional layers conv1..maxpool2 frozen, --reset-head for the new classes) and from scratch.
# Both are scored on all 5,000 test images of those five classes, and the fine-tuned one must score MARGIN
# more. The frozen layers of the saved fine-tuned model must equal the first model's, bit for bit.
#
# The runs are deterministic (seeds, thread count), so the test cannot flake; the margin says the lead is not
# the luck of a seed. Over seeds 0-4 the fine-tuned cnn scored 0.907-0.914 and the one from scratch
# 0.876-0.891: it led by 0.016 to 0.038 (0.023 on average) every time (docs/workflow.md). An accuracy on 5,000
# images has a standard error of about 0.004, a difference of two about 0.006; a margin of 0.01 is below every
# lead seen and, with the five leads' mean 0.023 and spread 0.009, still a real one. With 100 images a class the
# cnn from scratch catches up at this learning rate (both 0.91-0.94), hence the 20. That the first model's
# weights were loaded and kept is checked apart, from the log and the saved files.
# usage: finetune.sh RINGTRAIN_BIN [MARGIN]
set -euo pipefail
bin=$1 margin=${2:-0.01}
source "$(dirname "$0")/prepared_data.sh"

# The two tasks, from the prepared shards (same normalisation), with h5py.
/usr/bin/python3 - "$work/data" "$work" <<'PY'
import glob, os, sys, h5py, numpy as np
src, out = sys.argv[1], sys.argv[2]
def read(split):
    xs, ys, attrs = [], [], None
    for path in sorted(glob.glob(os.path.join(src, split + "-*.h5"))):
        with h5py.File(path, "r") as f:
            xs.append(f["x"][()]); ys.append(f["y"][()]); attrs = dict(f.attrs)
    return np.concatenate(xs), np.concatenate(ys), attrs
def write(path, x, y, attrs):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with h5py.File(path, "w") as f:
        f["x"] = x; f["y"] = y.astype(np.int64)
        for key, value in attrs.items(): f.attrs[key] = value
        f.attrs["num_classes"] = 5
x, y, attrs = read("train")
tx, ty, _ = read("test")
write(f"{out}/first/train-00000.h5", x[y < 5], y[y < 5], attrs)
write(f"{out}/first/test-00000.h5", tx[ty < 5], ty[ty < 5], attrs)
rng = np.random.default_rng(0)
pick = rng.permutation(np.concatenate([rng.permutation(np.flatnonzero(y == c))[:20] for c in range(5, 10)]))
write(f"{out}/second/train-00000.h5", x[pick], y[pick] - 5, attrs)
write(f"{out}/second/test-00000.h5", tx[ty >= 5], ty[ty >= 5] - 5, attrs)
print(f"classes 0-4: {(y < 5).sum()} training images; classes 5-9: {len(pick)} training, {(ty >= 5).sum()} test images")
PY

accuracy() { sed -n 's/.*test_accuracy \([0-9.]*\).*/\1/p' "$1"; }
"$bin" train --data "$work/first" --model cnn --threads 2 --epochs 1 --lr 0.05 --lr-schedule cosine \
  --save "$work/first.h5" | tee "$work/first.log"
echo "classes 0-4: test accuracy $(accuracy "$work/first.log")"
small=(--data "$work/second" --model cnn --threads 2 --epochs 50 --batch 20 --lr 0.01)
"$bin" train "${small[@]}" --init-from "$work/first.h5" --freeze :6 --reset-head --save "$work/tuned.h5" |
  tee "$work/tuned.log"
"$bin" train "${small[@]}" | tee "$work/scratch.log"
tuned=$(accuracy "$work/tuned.log") scratch=$(accuracy "$work/scratch.log")
grep -q "  --freeze: 6 layers frozen (conv1, relu1, maxpool1, conv2, relu2, maxpool2)" "$work/tuned.log"
grep -q "loaded 6 of 8 tensors: conv1, conv2, linear1" "$work/tuned.log"
/usr/bin/python3 - "$work/first.h5" "$work/tuned.h5" <<'PY'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as first, h5py.File(sys.argv[2], "r") as tuned:
    for name in ("conv1/weight", "conv1/bias", "conv2/weight", "conv2/bias"):
        assert np.array_equal(first[name][()], tuned[name][()]), f"frozen {name} changed"
    assert not np.array_equal(first["linear1/weight"][()], tuned["linear1/weight"][()]), "linear1 did not train"
    assert tuned["linear2/weight"].shape == (5, 1024), tuned["linear2/weight"].shape
print("the frozen convolutions are the first model's, bit for bit")
PY
echo "classes 5-9 from 100 images: fine-tuned $tuned, from scratch $scratch (the fine-tuned must lead by $margin)"
awk -v t="$tuned" -v s="$scratch" -v m="$margin" 'BEGIN { exit !(t >= s + m) }'
