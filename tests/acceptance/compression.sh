#!/usr/bin/env bash
# Acceptance: gradients sent as 16-bit floats (--compress bf16, fp16) train the mlp on Fashion-MNIST to within
# 0.5% test accuracy of the same run with float32 on the wire (2 ranks, the README's main job's settings), and
# the timeline's allreduce spans show half the bytes.
# usage: compression.sh RINGTRAIN_BIN EPOCHS   (RANKS and MPIRUN as for fashion_mnist.sh)
set -euo pipefail
bin=$1 epochs=$2
source "$(dirname "$0")/prepared_data.sh"
train=(train --data "$work/data" --model mlp --epochs "$epochs" --batch 32 --lr 0.05 --lr-schedule cosine)
accuracy() { sed -n 's/.*test_accuracy \([0-9.]*\).*/\1/p' "$1"; }
"${launch[@]}" "$bin" "${train[@]}" | tee "$work/none.log"
base=$(accuracy "$work/none.log")
for wire in bf16 fp16; do
  "${launch[@]}" "$bin" "${train[@]}" --compress "$wire" --timeline "$work/$wire.json" --timeline-steps 5:5 |
    tee "$work/$wire.log"
  acc=$(accuracy "$work/$wire.log")
  echo "$wire: test accuracy $acc, float32 on the wire $base (need within 0.005)"
  awk -v a="$acc" -v b="$base" 'BEGIN { d = a - b; exit !(d <= 0.005 && d >= -0.005) }'
  /usr/bin/python3 - "$work/$wire.json" <<'PY'
import json, re, sys
names = [e["name"] for e in json.load(open(sys.argv[1]))["traceEvents"] if e.get("name", "").startswith("ALLREDUCE ")]
sizes = [re.fullmatch(r"ALLREDUCE .*, (\d+) bytes, 16-bit on the wire: (\d+) bytes", n) for n in names]
assert names and all(m and int(m.group(1)) == 2 * int(m.group(2)) for m in sizes), names[:3]
full = sum(int(m.group(1)) for m in sizes)
print(f"step 5: {full} bytes of gradients, {full // 2} on the wire")
PY
done
