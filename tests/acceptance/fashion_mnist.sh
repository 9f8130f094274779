#!/usr/bin/env bash
# Acceptance: train MODEL on Fashion-MNIST for EPOCHS and require test accuracy >= MIN; check that the
# saved model opens in h5py with one dataset per parameter.
# usage: fashion_mnist.sh RINGTRAIN_BIN MODEL EPOCHS MIN_ACCURACY [extra train flags...]
# RANKS=N in the environment trains data parallel on N ranks under mpirun (MPIRUN, default mpirun).
# DEVICE=cuda trains on the GPU, and exits 77 (CTest's skip) saying why where there is none.
# FMNIST_IDX (the IDX files, default Debian's) and PYTHON (one with h5py, default /usr/bin/python3) are for
# machines without our packages (tests/gpu/on-device.sh).
set -euo pipefail
bin=$1 model=$2 epochs=$3 min=$4
shift 4
if [[ ${DEVICE:-cpu} == cuda ]]; then
  devices=$("$bin" devices | head -1)
  if [[ $devices == "cuda: none"* ]]; then echo "SKIP: ${devices#cuda: none }"; exit 77; fi
  set -- "$@" --device cuda
fi
source "$(dirname "$0")/prepared_data.sh"
"${launch[@]}" "$bin" train --data "$work/data" --model "$model" --epochs "$epochs" --save "$work/model.h5" "$@" | tee "$work/log"
acc=$(sed -n 's/.*test_accuracy \([0-9.]*\).*/\1/p' "$work/log")
echo "test accuracy $acc (need >= $min)"
awk -v a="$acc" -v m="$min" 'BEGIN { exit !(a >= m) }'
"${PYTHON:-/usr/bin/python3}" - "$work/model.h5" <<'PY'
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    names = []
    f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
    assert f.attrs["format"] == "ringtrain-model-1", f.attrs["format"]
    assert "linear1/weight" in names and all(f[n].dtype == "float32" for n in names), names
    print("h5py reads", len(names), "parameter datasets:", ", ".join(sorted(names)))
PY
