#!/usr/bin/env bash
# Every row of docs/bad-inputs.md, end to end on 2 ranks (3 where the row needs it, 1 where it is one
# process's) under mpirun: the job fails with exactly one "ringtrain: error:" line, which says what the
# table says; every rank exits non-zero on its own (each rank's exit code is recorded by a wrapper); it all
# takes at most 10 s. The messages must also appear in the table, so the two cannot drift apart.
# usage: bad_inputs.sh RINGTRAIN MPIRUN DOCS_TABLE
set -uo pipefail
bin=$1 mpirun=$2 table=$3
dir=$(mktemp -d)
readonly_dir="" full_dir=""
cleanup() {
  [[ -n $readonly_dir ]] && umount "$readonly_dir" 2>/dev/null
  [[ -n $full_dir ]] && umount "$full_dir" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT
source "$(dirname "$0")/mpi/common.sh"

# Fixtures: a good dataset and one directory per kind of bad shard.
/usr/bin/python3 - "$dir" <<'PY' || fail "could not write the fixtures"
import os, sys, h5py, numpy as np
root = sys.argv[1]
rng = np.random.default_rng(0)
def shard(name, n=64, x=None, y=None, drop=None):
    path = os.path.join(root, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with h5py.File(path, "w") as f:
        if drop != "x": f["x"] = x if x is not None else rng.normal(size=(n, 1, 4, 4)).astype(np.float32)
        if drop != "y": f["y"] = y if y is not None else rng.integers(0, 3, n).astype(np.int64)
        f.attrs["format"] = "ringtrain-shard-1"; f.attrs["num_classes"] = 3
shard("good/train-00000.h5"); shard("good/test-00000.h5", 32)
os.makedirs(os.path.join(root, "text"))
open(os.path.join(root, "text/train-00000.h5"), "w").write("x,y\n1,2\n")
shard("nolabels/train-00000.h5", drop="y")
shard("shape/train-00000.h5", y=rng.integers(0, 3, 60).astype(np.int64))
shard("dtype/train-00000.h5", x=rng.normal(size=(64, 1, 4, 4)).astype(np.complex64))
shard("labels/train-00000.h5", y=np.full(64, 7, np.int64))
shard("empty/train-00000.h5", x=np.zeros((0, 1, 4, 4), np.float32), y=np.zeros(0, np.int64))
shard("few/train-00000.h5", n=10)
shard("nofeatures/train-00000.h5", x=np.zeros((64, 0), np.float32))
with h5py.File(os.path.join(root, "good/tokens-00000.h5"), "w") as f:  # token data with an id outside the vocabulary
    x = rng.integers(0, 256, (64, 8)).astype(np.float32); x[3, 5] = 300
    f["x"] = x; f["y"] = rng.integers(0, 256, (64, 8)).astype(np.int64)
    f.attrs["format"] = "ringtrain-shard-1"; f.attrs["num_classes"] = 256
with h5py.File(os.path.join(root, "good/regression-00000.h5"), "w") as f:  # a regression training shard
    f["x"] = rng.normal(size=(64, 1, 4, 4)).astype(np.float32); f["y"] = rng.normal(size=64).astype(np.float32)
    f.attrs["format"] = "ringtrain-shard-1"
os.makedirs(os.path.join(root, "huge"))
with h5py.File(os.path.join(root, "huge/train-00000.h5"), "w") as f:  # a header of 2e9 samples, no data
    f.create_dataset("x", shape=(2000000000, 1, 4, 4), dtype="f4"); f.create_dataset("y", shape=(2000000000,), dtype="i8")
    f.attrs["format"] = "ringtrain-shard-1"; f.attrs["num_classes"] = 3
PY
model=(--model "flatten,linear(8),relu,linear(out)" --batch 8 --epochs 1)
timeout 60 "$bin" train --data "$dir/good" --model "flatten,linear(4),relu,linear(out)" --batch 8 --epochs 1 \
  --checkpoint-dir "$dir/other" >/dev/null 2>&1 || fail "could not write the other model's checkpoint"
# A checkpoint of this model with one weight's sign flipped on disk (under HDF5, whose checksum then fails).
timeout 60 "$bin" train --data "$dir/good" "${model[@]}" --checkpoint-dir "$dir/same" >/dev/null 2>&1 ||
  fail "could not write a checkpoint to damage"
# Copies of it cut short, and with a byte of HDF5's own metadata changed (which the library would trust).
mkdir -p "$dir/cut" "$dir/meta"
cp "$dir/same/step-000000000008.h5" "$dir/cut/" && truncate -s -100 "$dir/cut/step-000000000008.h5"
cp "$dir/same/step-000000000008.h5" "$dir/meta/" &&
  printf '\xff' | dd of="$dir/meta/step-000000000008.h5" bs=1 seek=600 conv=notrunc status=none
printf 'a,b,y\n1,2,x\n3,NA,y\n5,6,x\n7,8,y\n' >"$dir/na.csv"
/usr/bin/python3 - "$dir/same/step-000000000008.h5" <<'PY' || fail "could not damage the checkpoint"
import sys, h5py
path = sys.argv[1]
with h5py.File(path, "r") as f: weights = f["linear1/weight"][()].tobytes()
raw = bytearray(open(path, "rb").read())
at = raw.find(weights[:32])
assert at >= 0, "the weights are not in the file"
raw[at + 3] ^= 0x80
open(path, "wb").write(raw)
PY
# A read-only directory: a read-only bind mount as root (root writes through permission bits), else mode 555.
mkdir -p "$dir/readonly" "$dir/readonly.src"
if [[ $(id -u) == 0 ]]; then
  mount --bind "$dir/readonly.src" "$dir/readonly" && mount -o remount,bind,ro "$dir/readonly" && readonly_dir="$dir/readonly" ||
    fail "cannot make a read-only directory (mount --bind -o ro) to test with"
else
  chmod 555 "$dir/readonly"
fi

checked=0
# row RANKS MESSAGE ARGS...: one row of the table, a `train` unless $command says otherwise.
row() {
  local ranks=$1 message=$2
  shift 2
  grep -qF -- "$message" "$table" || fail "docs: the bad-input table does not say '$message'"
  rm -rf "$dir/exits" && mkdir "$dir/exits"
  local start=$SECONDS
  # Each rank records its own exit code; a rank killed by the launcher records none.
  timeout 30 "$mpirun" --oversubscribe -np "$ranks" sh -c '"$@"; echo $? >"'"$dir"'/exits/$OMPI_COMM_WORLD_RANK"' \
    sh "$bin" "${command:-train}" "$@" >"$dir/out" 2>"$dir/err"
  local rc=$? took=$((SECONDS - start))
  [[ $rc != 124 ]] || fail "'$message': the job hung"
  ((took <= 10)) || fail "'$message': took $took s"
  local lines
  lines=$(grep -c '^ringtrain: error:' "$dir/err")
  [[ $lines == 1 ]] || fail "'$message': $lines error lines: $(cat "$dir/err")"
  grep '^ringtrain: error:' "$dir/err" | grep -qF -- "$message" || fail "'$message': the error says: $(cat "$dir/err")"
  local r code
  for ((r = 0; r < ranks; ++r)); do
    code=$(cat "$dir/exits/$r" 2>/dev/null || echo killed)
    [[ $code != 0 ]] || fail "'$message': rank $r exited 0"
  done
  echo "ok ($took s, exits $(cat "$dir"/exits/* 2>/dev/null | tr '\n' ' ')): $(grep '^ringtrain: error:' "$dir/err")"
  ((++checked))
}

row 2 "no such file" --train "$dir/missing/train-00000.h5" "${model[@]}"
row 2 "no training shards (train-*.h5) in" --data "$dir/missing" "${model[@]}"
row 2 "is not an HDF5 file" --data "$dir/text" "${model[@]}"
row 2 "has no dataset 'y'" --data "$dir/nolabels" "${model[@]}"
row 2 "x has 64 samples but y has 60 in shard" --data "$dir/shape" "${model[@]}"
row 2 "dataset 'x' has type non-numeric in shard" --data "$dir/dtype" "${model[@]}"
row 2 "label 7 at sample 0 is out of range [0, 3) in shard" --data "$dir/labels" "${model[@]}"
row 2 "declares 128000000000 bytes but the file holds 0 of them" --data "$dir/huge" "${model[@]}"
row 2 "has no features per sample" --data "$dir/nofeatures" "${model[@]}"
row 2 "is empty (x has 0 samples)" --data "$dir/empty" "${model[@]}"
row 2 "the training split has 10 samples, fewer than one batch of 16 (2 replicas x --batch 8)" --data "$dir/few" "${model[@]}"
row 2 "--data 'synthetic:' has no sample shape" --data synthetic: "${model[@]}"
row 2 "dimension 2 of the sample shape must be at least 1, got 0" --data synthetic:3x0x224:1000 "${model[@]}"
row 2 "--stage-to: synthetic data is made in memory on every rank; it has no shards to stage" --data synthetic:16:3 \
  --stage-to "$dir/stage" "${model[@]}"
row 2 "does not match 'synthetic:16:3': different sample shape [1, 4, 4] vs [16]" --data synthetic:16:3 \
  --val "$dir/good/train-00000.h5" "${model[@]}"
row 2 "--data 'synthetic-tokens:0:256': the context must be at least 1 token, got 0" --data synthetic-tokens:0:256 \
  "${model[@]}"
row 2 "token id 300 at sample 3 position 5 in shard" \
  --train "$dir/good/tokens-00000.h5" "${model[@]}"
# Token data that does not fit the model: windows longer than its context; an embedding whose vocabulary is
# smaller than the data's; a tied pair that the pipeline would cut.
row 2 "the data's context of 256 tokens is longer than the model's 128 (embedding context=128)" \
  --data synthetic-tokens:256:256:32 --model gpt-tiny --batch 8
row 2 "'embedding(16,8,context=8)' takes token ids below 16, but the data's vocabulary has 256 tokens" \
  --data synthetic-tokens:8:256:32 --batch 8 \
  --model "embedding(16,8,context=8),block(2),layernorm,linear(out,per_token=1)"
row 2 "shares its weight with layer 0 'embedding(32,8,context=16)', and the pipeline puts them in stages 1 and 0: a pipeline trains untied models" \
  --data synthetic-tokens:16:32:64 --batch 8 --pipeline-stages 2 \
  --model "embedding(out,8,context=16),block(2),layernorm,linear(out,per_token=1,bias=0,tied=1)"
row 2 "bad model spec 'linear(abc)': linear: 'out' must be an integer from 1 to 2147483647, got 'abc'" --data "$dir/good" --model "linear(abc)"
row 2 "the model's layer linear1 on input [16]: cannot allocate 128.0 GB of host memory:" --data "$dir/good" \
  --batch 8 --epochs 1 --model "flatten,linear(2000000000),linear(out)"
row 2 "bad model spec 'flatten,conv(3,3),linear(out)': layer 2 'conv(3,3)': conv needs image input [channels, height, width], got [" --data "$dir/good" \
  --model "flatten,conv(3,3),linear(out)"
row 2 "bad model spec 'residual(conv(8,3,pad=1)': missing ')' for the '(' at character 9" --data "$dir/good" \
  --model "residual(conv(8,3,pad=1)"
row 2 "which an identity shortcut cannot add to; give a projection shortcut" --data "$dir/good" \
  --model "residual(conv(8,3,pad=1)),flatten,linear(out)"
row 2 "bad model spec 'resnet34': unknown preset 'resnet34' (presets: cnn, gpt-tiny, gpt2-124m, linreg, mlp, resnet101, resnet18," \
  --data "$dir/good" --model resnet34
row 2 "unrecognised option '--learning-rate'" --data "$dir/good" "${model[@]}" --learning-rate 0.1
row 2 "unexpected argument '0.2'" --data "$dir/good" "${model[@]}" --lr 0.1 0.2
row 2 "--mode must be sync or ps, got 'async'" --data "$dir/good" "${model[@]}" --mode async
row 2 "--mode ps does not combine with --pipeline-stages or --micro-batches" --data "$dir/good" "${model[@]}" --mode ps \
  --pipeline-stages 2
row 2 "--compress applies to the allreduce of --mode sync; parameter servers exchange float32 gradients" \
  --data "$dir/good" "${model[@]}" --mode ps --compress bf16
row 2 "--compress needs ringtrain's ring (--allreduce auto, ring or hierarchical): MPI_Allreduce would add in 16 bits" \
  --data "$dir/good" "${model[@]}" --allreduce mpi --compress bf16
row 2 "--compress must be none, bf16 or fp16, got 'int8'" --data "$dir/good" "${model[@]}" --compress int8
# Nodes of 2 and 1 ranks, emulated (RINGTRAIN_RANKS_PER_NODE groups consecutive ranks into nodes).
RINGTRAIN_RANKS_PER_NODE=2 row 3 "--allreduce hierarchical needs the same number of ranks on every node" \
  --data "$dir/good" "${model[@]}" --allreduce hierarchical
row 2 "--shard-optimizer needs --mode sync: parameter servers already split the optimizer's state between them" \
  --data "$dir/good" "${model[@]}" --mode ps --shard-optimizer
row 2 "--shard-optimizer is for data parallel: pipeline stages (--pipeline-stages, --micro-batches) keep their optimizer whole" \
  --data "$dir/good" "${model[@]}" --pipeline-stages 2 --shard-optimizer
row 2 "--shard-optimizer reduce-scatters float32 gradients: leave --compress out" --data "$dir/good" "${model[@]}" \
  --compress bf16 --shard-optimizer
row 2 "--shard-optimizer runs on the CPU: leave it out with --device cuda (GPU gradients are averaged by NCCL's allreduce)" \
  --data "$dir/good" "${model[@]}" --device cuda --shard-optimizer
row 2 "--checkpoint-every needs --checkpoint-dir" --data "$dir/good" "${model[@]}" --checkpoint-every 100
row 2 "--timeline-steps 5:3 ends before it begins" --data "$dir/good" "${model[@]}" --timeline "$dir/t.json" \
  --timeline-steps 5:3
row 2 "--momentum must be in [0, 1), got -1" --data "$dir/good" "${model[@]}" --momentum -1
row 2 "--lr must be positive, got inf" --data "$dir/good" "${model[@]}" --lr inf
row 2 "is outside the range of a 32-bit float" --data "$dir/good" "${model[@]}" --lr 1e-50
row 2 "--lr-step-epochs must be at most 1000000" --data "$dir/good" "${model[@]}" --lr-step-epochs 1e16
row 2 "--straggler-rank 5 is outside the job's ranks 0..1" --data "$dir/good" "${model[@]}" --straggler-rank 5
row 2 "is not a regular file" --data "$dir/good" "${model[@]}" --config "$dir"
printf '[run]\nlr = 0.1\n' >"$dir/run.ini"
row 2 "run.ini': unrecognised option 'run.lr'" --data "$dir/good" "${model[@]}" --config "$dir/run.ini"
printf 'lr = 0.1\0\033[31m\n' >"$dir/binary.ini"
row 2 "is not a text file (byte 0x00 at offset 8)" --data "$dir/good" "${model[@]}" --config "$dir/binary.ini"
row 3 "a world of 3 ranks is not divisible by --pipeline-stages 2" --data "$dir/good" "${model[@]}" --pipeline-stages 2
row 2 "holds model 'flatten,linear(4),relu,linear(3)', not this run's" --data "$dir/good" "${model[@]}" \
  --resume "$dir/other/step-000000000008.h5"
row 2 "is damaged: its contents do not match the checksum written with it" --data "$dir/good" "${model[@]}" \
  --resume "$dir/same/step-000000000008.h5"
row 2 "is damaged: it holds" --data "$dir/good" "${model[@]}" --resume "$dir/cut/step-000000000008.h5"
command=eval row 2 "is damaged: its contents do not match" --model-file "$dir/meta/step-000000000008.h5" --data "$dir/good"
row 2 "already holds checkpoints" --data "$dir/good" "${model[@]}" --checkpoint-dir "$dir/other"
row 2 "cannot resume: no such file" --data "$dir/good" "${model[@]}" --resume "$dir/nothing.h5"
mkdir -p "$dir/busy"
exec 9>"$dir/busy/.ringtrain.lock" && flock -n 9 || fail "cannot lock $dir/busy"  # as another job would
row 2 "is in use by another job" --data "$dir/good" "${model[@]}" --checkpoint-dir "$dir/busy"
exec 9>&-
row 2 "cannot create the checkpoint directory" --data "$dir/good" "${model[@]}" --checkpoint-dir "$dir/readonly/checkpoints"
row 2 "cannot write the model to" --data "$dir/good" "${model[@]}" --save "$dir/readonly/model.h5"
row 2 "cannot write the metrics to" --data "$dir/good" "${model[@]}" --metrics "$dir/readonly/m.csv"
row 2 "cannot write TensorBoard events to" --data "$dir/good" "${model[@]}" --tensorboard "$dir/readonly/tb"
row 2 "it is not a directory (--tensorboard names the directory the event files go in)" --data "$dir/good" \
  "${model[@]}" --tensorboard "$dir/good/train-00000.h5"
row 2 "--progress must be auto, bar, lines or none, got 'fancy'" --data "$dir/good" "${model[@]}" --progress fancy
row 2 "it is one of this run's inputs" --data "$dir/good" "${model[@]}" --save "$dir/good/train-00000.h5"
row 2 "it is not a regular file (a device, a pipe or a socket)" --data "$dir/good" "${model[@]}" --timeline /dev/null
row 2 "it is a directory" --data "$dir/good" "${model[@]}" --save "$dir/good"
row 2 "cannot create a file in '/proc'" --data "$dir/good" "${model[@]}" --save /proc/model.h5
# Early stopping and regularisation.
val=(--val "$dir/good/test-00000.h5")
row 2 "--early-stop-patience must be at least 1, got 0" --data "$dir/good" "${val[@]}" "${model[@]}" \
  --early-stop-patience 0
row 2 "--monitor must be val_loss, val_accuracy or val_mae, got 'val_f1'" --data "$dir/good" "${val[@]}" "${model[@]}" \
  --early-stop-patience 2 --monitor val_f1
row 2 "--monitor val_mae: this data is for classification, whose validation metrics are val_loss and val_accuracy" \
  --data "$dir/good" "${val[@]}" "${model[@]}" --early-stop-patience 2 --monitor val_mae
row 2 "--monitor val_accuracy needs --early-stop-patience or --save-best (what watches it)" --data "$dir/good" \
  "${val[@]}" "${model[@]}" --monitor val_accuracy
row 2 "--min-delta needs --early-stop-patience or --save-best" --data "$dir/good" "${model[@]}" --min-delta 0.1
row 2 "--min-delta must not be negative, got -1" --data "$dir/good" "${val[@]}" "${model[@]}" --early-stop-patience 2 \
  --min-delta -1
row 2 "--early-stop-patience needs a validation split to monitor: --val FILES, or val-*.h5 shards in --data" \
  --data "$dir/good" "${model[@]}" --early-stop-patience 2
row 2 "--save-best needs a validation split to monitor" --data "$dir/good" "${model[@]}" --save-best "$dir/best.h5"
row 2 "cannot write the best model to" --data "$dir/good" "${val[@]}" "${model[@]}" --save-best "$dir/missing/best.h5"
row 2 "--save and --save-best name the same path" --data "$dir/good" "${val[@]}" "${model[@]}" --save "$dir/m.h5" \
  --save-best "$dir/./m.h5"
row 2 "--l1 must not be negative, got -0.01" --data "$dir/good" "${model[@]}" --l1 -0.01
row 2 "--l1 must be a finite number, got inf" --data "$dir/good" "${model[@]}" --l1 inf
row 2 "--clip-grad-norm must be a finite norm above 0 (0 = off), got -1" --data "$dir/good" "${model[@]}" \
  --clip-grad-norm -1
row 2 "--clip-grad-norm must be a finite norm above 0 (0 = off), got nan" --data "$dir/good" "${model[@]}" \
  --clip-grad-norm nan
row 2 "--label-smoothing must be in [0, 1), got 1" --data "$dir/good" "${model[@]}" --label-smoothing 1
row 2 "--label-smoothing is for classification (it smooths class labels); this data is for regression" \
  --train "$dir/good/regression-00000.h5" "${model[@]}" --label-smoothing 0.1
row 2 "--augment 'crop:2,rotate': 'rotate' is not an augmentation; they are crop:PADDING and flip" \
  --data "$dir/good" "${model[@]}" --augment crop:2,rotate
row 2 "--augment crop:5: the padding is larger than the images (4x4)" --data "$dir/good" "${model[@]}" --augment crop:5
row 2 "--augment flip is for images ([C, H, W] or [H, W] samples); this data's samples are [784]" \
  --data synthetic:784:3:64 "${model[@]}" --augment flip
# A full disk (a 64 KiB tmpfs, as root): the save fails naming the path, and the model saved there before stays.
if [[ $(id -u) == 0 ]] && mkdir -p "$dir/full" && mount -t tmpfs -o size=64k tmpfs "$dir/full"; then
  full_dir="$dir/full"
  timeout 60 "$bin" train --data "$dir/good" --model "flatten,linear(2),linear(out)" --batch 8 --epochs 1 \
    --save "$dir/full/m.h5" >/dev/null 2>&1 || fail "could not write the model to keep"
  before=$(md5sum <"$dir/full/m.h5")
  row 2 "No space left on device (the previous file, if any, is kept)" --data "$dir/good" --batch 8 --epochs 1 \
    --model "flatten,linear(300),linear(out)" --save "$dir/full/m.h5"
  [[ $(md5sum <"$dir/full/m.h5") == "$before" ]] || fail "a failed save changed the previous model"
  [[ $(ls "$dir/full") == m.h5 ]] || fail "a failed save left: $(ls "$dir/full")"
  # A model file of about 27 KB: the first best fits, the second does not fit beside it (validated on the
  # training shard itself, whose loss falls every epoch, so that the second epoch is a new best).
  row 2 "No space left on device (the previous file, if any, is kept)" --data "$dir/good" --batch 8 --epochs 2 \
    --model "flatten,linear(100),linear(out)" --val "$dir/good/train-00000.h5" --save-best "$dir/full/best.h5"
  timeout 60 "$bin" eval --model-file "$dir/full/best.h5" --data "$dir/good" >/dev/null ||
    fail "a failed --save-best did not keep the previous best whole"
  [[ $(ls "$dir/full" | tr '\n' ' ') == "best.h5 m.h5 " ]] || fail "a failed --save-best left: $(ls "$dir/full")"
  rm "$dir/full/best.h5"
  /usr/bin/python3 -c "
import random; random.seed(0)
print(','.join(f'c{j}' for j in range(20)) + ',y')
for i in range(3000): print(','.join(str(random.random()) for _ in range(20)) + ',' + 'ab'[i % 2])" >"$dir/wide.csv"
  command=prep row 2 "No space left on device (the shards already in '" --format csv \
    --input "$dir/wide.csv" --out "$dir/full" --target y
  [[ $(ls -A "$dir/full") == m.h5 ]] || fail "a failed prep left: $(ls -A "$dir/full")"
fi
command=eval row 2 "is not a ringtrain model file" --model-file "$dir/good/train-00000.h5" --data "$dir/good"
command=eval row 2 "no such file '" --model-file "$dir/missing.h5" --data "$dir/good"
command=eval row 2 "the directory does not exist" --model-file "$dir/other/step-000000000008.h5" --data "$dir/missing"
# predict and eval --report: IDX images of another shape and of none, data of one class and its model, a
# model of a CSV's data.
/usr/bin/python3 - "$dir" <<'PY' || fail "could not write the predict fixtures"
import gzip, os, sys, h5py, numpy as np
root = sys.argv[1]
def idx(name, dims):
    with gzip.open(os.path.join(root, name), "wb") as f:
        f.write(bytes([0, 0, 8, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims) + bytes(int(np.prod(dims))))
idx("five-images.gz", [2, 5, 5]); idx("no-images.gz", [0, 4, 4])
os.makedirs(os.path.join(root, "one"))
with h5py.File(os.path.join(root, "one/train-00000.h5"), "w") as f:
    f["x"] = np.random.default_rng(0).normal(size=(16, 1, 4, 4)).astype(np.float32); f["y"] = np.zeros(16, np.int64)
    f.attrs["format"] = "ringtrain-shard-1"; f.attrs["num_classes"] = 1
PY
timeout 60 "$bin" train --data "$dir/one" --model "flatten,linear(out)" --batch 8 --epochs 1 --save "$dir/one.h5" \
  >/dev/null 2>&1 || fail "could not train the one-class model"
printf 'a,b,y\n1,2,x\n3,4,y\n5,6,x\n7,8,y\n2,1,x\n4,3,y\n6,5,x\n8,7,y\n' >"$dir/ab.csv"
{ timeout 60 "$bin" prep --format csv --input "$dir/ab.csv" --target y --out "$dir/ab" &&
  timeout 60 "$bin" train --data "$dir/ab" --model "linear(out)" --batch 2 --epochs 1 --save "$dir/ab.h5"; } \
  >/dev/null 2>&1 || fail "could not train the CSV's model"
m=$dir/other/step-000000000008.h5
command=predict row 2 "no such file '" --model-file "$dir/missing.h5" --input "$dir/good" --out "$dir/p.csv"
command=predict row 2 "is not a ringtrain model file" --model-file "$dir/good/train-00000.h5" --input "$dir/good" \
  --out "$dir/p.csv"
command=predict row 2 "the data's samples are [1, 5, 5] but the model expects [1, 4, 4]" --model-file "$m" \
  --input "$dir/five-images.gz" --out "$dir/p.csv"
command=predict row 2 "no val shards (val-*.h5) in" --model-file "$m" --input "$dir/good" --split val --out "$dir/p.csv"
command=predict row 2 "holds no images (its header says 0)" --model-file "$m" --input "$dir/no-images.gz" --out "$dir/p.csv"
command=predict row 2 "no shards match" --model-file "$m" --input "$dir/new/*.h5" --out "$dir/p.csv"
command=predict row 2 "was trained on data standardised feature by feature (a CSV's), not on images prepared from IDX files" \
  --model-file "$dir/ab.h5" --input "$dir/five-images.gz" --out "$dir/p.csv"
command=predict row 2 "must end in .csv or .h5 (.hdf5), which choose the file's format; got '.txt'" --model-file "$m" \
  --input "$dir/good" --out "$dir/p.txt"
command=predict row 2 "cannot write the predictions to" --model-file "$m" --input "$dir/good" --out "$dir/readonly/p.csv"
command=predict row 2 "it is one of this run's inputs" --model-file "$m" --input "$dir/good" --out "$m"
[[ ! -e $dir/p.csv && ! -e $dir/p.txt ]] || fail "a failed predict wrote its output"
# generate is one process (no MPI): its rows run on 1 rank.
command=generate row 1 "--prompt is not valid UTF-8: byte 0 (0xff) starts no character" --model-file "$m" --prompt $'\xff'
command=generate row 1 "is not a byte-level language model: it maps [1, 4, 4] to [3]" --model-file "$m"
command=generate row 1 "--tokens must be at least 1, got 0" --model-file "$m" --tokens 0
command=generate row 1 "--temperature must be from 0 (always the most likely byte) to 100, got -1" --model-file "$m" \
  --temperature -1
command=generate row 1 "--top-k must not be negative (0: every byte may be drawn), got -1" --model-file "$m" --top-k -1
command=eval row 2 "is a file; it names the directory the report goes into" --model-file "$m" --data "$dir/good" \
  --report "$dir/na.csv"
command=eval row 2 "cannot create the report directory" --model-file "$m" --data "$dir/good" --report "$dir/readonly/report"
command=eval row 2 "--report: the model has 1 class" --model-file "$dir/one.h5" --data "$dir/one" --split train \
  --report "$dir/r1"
command=prep row 2 "CSV line 3, column 'b': missing value ('NA')" --format csv --input "$dir/na.csv" --out "$dir/prep" \
  --target y
command=prep row 2 "looks like a CSV file: add --format csv" --input "$dir/na.csv" --out "$dir/never"
[[ ! -e $dir/never ]] || fail "a failed prep left its output directory $dir/never"
command=prep row 2 "has no such column" --format csv --input "$dir/na.csv" --out "$dir/never" --target y --drop weight
# prep --format text: an empty file, one shorter than a window, one that is not UTF-8.
: >"$dir/empty.txt" && printf 'too short' >"$dir/short.txt" && printf 'caf\xe9 latin-1\n' >"$dir/latin1.txt"
command=prep row 2 "holds no text (1 file, all empty)" --format text --input "$dir/empty.txt" --context 8 --out "$dir/never"
command=prep row 2 "has 9 bytes of text, shorter than one window of 17 bytes (--context 16 + 1)" --format text \
  --input "$dir/short.txt" --context 16 --out "$dir/never"
command=prep row 2 "is not UTF-8 text: the bytes at byte offset 3 (0xE9...) are not a valid character" --format text \
  --input "$dir/latin1.txt" --context 4 --out "$dir/never"
[[ ! -e $dir/never ]] || fail "a failed prep --format text left its output directory $dir/never"
# prep --like: a category the training data never had; a shard of features only given to train.
printf 'a,colour,y\n1,red,x\n2,green,y\n3,blue,x\n4,red,y\n5,green,x\n6,blue,y\n' >"$dir/like.csv"
printf 'a,colour,y\n1,purple,x\n' >"$dir/purple.csv"
printf 'a,colour\n1,red\n2,blue\n' >"$dir/unlabelled.csv"
{ "$bin" prep --format csv --input "$dir/like.csv" --target y --out "$dir/liketrain" --val-fraction 0 \
    --test-fraction 0 && "$bin" prep --input "$dir/unlabelled.csv" --like "$dir/liketrain" --out "$dir/unlabelled"
} >/dev/null 2>&1 || fail "could not prep the --like fixtures"
command=prep row 2 "'purple' is not a category of the training data, which has blue, green, red" \
  --input "$dir/purple.csv" --like "$dir/liketrain" --out "$dir/never"
[[ ! -e $dir/never ]] || fail "a failed prep --like left its output directory $dir/never"
row 2 "holds features only, no targets (prep --like of a CSV without the target column): only predict reads it" \
  --train "$dir/unlabelled/test-00000.h5" "${model[@]}"
# Run directories (--run-dir): another run's directory, a file, one that cannot be made, a value settings.ini
# cannot record.
timeout 60 "$bin" train --data "$dir/good" "${model[@]}" --run-dir "$dir/run" >/dev/null 2>&1 || fail "could not fill a run directory"
row 2 "holds a run that finished at" --data "$dir/good" "${model[@]}" --run-dir "$dir/run"
mkdir -p "$dir/oldrun" && touch "$dir/oldrun/metrics.csv"
row 2 "holds an earlier run's metrics.csv" --data "$dir/good" "${model[@]}" --run-dir "$dir/oldrun"
touch "$dir/notes.txt"
row 2 "is not a directory" --data "$dir/good" "${model[@]}" --run-dir "$dir/notes.txt"
row 2 "cannot create --run-dir" --data "$dir/good" "${model[@]}" --run-dir "$dir/readonly/run"
row 2 "cannot be recorded in settings.ini: an INI value holds no '#' or line break" --data "$dir/shards#1" "${model[@]}" \
  --run-dir "$dir/hash"
# Fine-tuning (--init-from, --freeze, --reset-head): a model trained on 2 classes, and a run with a frozen layer.
/usr/bin/python3 - "$dir/two/train-00000.h5" <<'PY' || fail "could not write the 2-class shard"
import os, sys, h5py, numpy as np
os.makedirs(os.path.dirname(sys.argv[1]), exist_ok=True)
with h5py.File(sys.argv[1], "w") as f:
    f["x"] = np.random.default_rng(1).normal(size=(64, 1, 4, 4)).astype(np.float32); f["y"] = np.arange(64) % 2
    f.attrs["format"] = "ringtrain-shard-1"; f.attrs["num_classes"] = 2
PY
timeout 60 "$bin" train --data "$dir/two" "${model[@]}" --save "$dir/two.h5" >/dev/null 2>&1 ||
  fail "could not write the 2-class model"
timeout 60 "$mpirun" --oversubscribe -np 2 "$bin" train --data "$dir/good" "${model[@]}" --freeze linear1 \
  --checkpoint-dir "$dir/frozen" >/dev/null 2>&1 || fail "could not write a fine-tuning checkpoint on 2 ranks"
row 2 "--init-from: no such file '" --data "$dir/good" "${model[@]}" --init-from "$dir/nothing.h5"
row 2 "' is not a ringtrain model file or checkpoint (no format attribute 'ringtrain-model-1')" --data "$dir/good" \
  "${model[@]}" --init-from "$dir/good/train-00000.h5"
row 2 "holds none of this model's 4 parameters and buffers under its name and shape (the file's model is" \
  --data "$dir/good" --batch 8 --epochs 1 --model "conv(2,3),flatten,linear(out)" --init-from "$dir/two.h5" --reset-head
row 2 "was trained for 2 classes, this data has 3 classes: add --reset-head to start a new output layer for them" \
  --data "$dir/good" "${model[@]}" --init-from "$dir/two.h5"
row 2 "--reset-head needs --init-from" --data "$dir/good" "${model[@]}" --reset-head
row 2 "--init-from and --resume both give the starting weights" --data "$dir/good" "${model[@]}" --init-from "$dir/two.h5" \
  --resume auto --checkpoint-dir "$dir/frozen"
row 2 "--freeze 'conv*' matches no layer of the model (flatten1, linear1, relu1, linear2)" --data "$dir/good" "${model[@]}" \
  --freeze 'conv*'
row 2 "--freeze '9': the model has 4 layers, 0..3" --data "$dir/good" "${model[@]}" --freeze 9
row 2 "freezes every layer with parameters: nothing would train" --data "$dir/good" "${model[@]}" --freeze 'linear*'
row 2 "the output layer --reset-head starts anew: it would never train" --data "$dir/good" "${model[@]}" \
  --init-from "$dir/two.h5" --reset-head --freeze linear2
row 2 "backward through a frozen batchnorm (on its running statistics) is not supported" --data "$dir/good" \
  --batch 8 --epochs 1 --model "flatten,linear(8),batchnorm,linear(out)" --freeze batchnorm1
row 2 "holds an empty item" --data "$dir/good" "${model[@]}" --freeze linear1,,relu1
row 2 "the range '3-1' holds no layer (A-B includes B, A:B does not)" --data "$dir/good" "${model[@]}" --freeze 3-1
row 2 "'x' is not a layer index" --data "$dir/good" "${model[@]}" --freeze 1:x
row 2 "--freeze is 'linear1' in the checkpoint but 'flatten1' in this run" --data "$dir/good" "${model[@]}" --freeze 0 \
  --resume "$dir/frozen/step-000000000004.h5"
row 2 "--augment is '(none)' in the checkpoint but 'crop:1' in this run" --data "$dir/good" "${model[@]}" \
  --augment crop:1 --resume "$dir/frozen/step-000000000004.h5" --freeze linear1
# Resuming on another number of ranks: data parallel and a pipeline's replicas may change (tests/mpi/resume_ranks.sh);
# parameter servers' workers and servers, a pipeline's stages, and the ranks of a checkpoint that records no
# global sample position (as written before it was: the attributes taken out, the seal made again) may not.
timeout 60 "$mpirun" --oversubscribe -np 2 "$bin" train --data "$dir/good" "${model[@]}" --mode ps \
  --checkpoint-dir "$dir/ps" >/dev/null 2>&1 || fail "could not write a parameter-server checkpoint"
timeout 60 "$mpirun" --oversubscribe -np 2 "$bin" train --data "$dir/good" "${model[@]}" --pipeline-stages 2 \
  --checkpoint-dir "$dir/pipeline" >/dev/null 2>&1 || fail "could not write a pipeline checkpoint"
timeout 60 "$bin" train --data "$dir/good" "${model[@]}" --checkpoint-dir "$dir/old" >/dev/null 2>&1 ||
  fail "could not write a checkpoint to make old"
as_written_before_positions "$dir/old/step-000000000008.h5"
row 3 "it was written by 1 worker x --batch 8 and this run has 2 workers x --batch 8: parameter servers resume only on as many workers" \
  --data "$dir/good" "${model[@]}" --mode ps --resume "$dir/ps/step-000000000008.h5"
row 3 "--ps-servers is '1' in the checkpoint but '2' in this run (parameter servers resume on as many servers and workers)" \
  --data "$dir/good" "${model[@]}" --mode ps --ps-servers 2 --resume "$dir/ps/step-000000000008.h5"
row 2 "--pipeline-stages is '2' in the checkpoint but '1' in this run (a pipeline resumes on as many stages" \
  --data "$dir/good" "${model[@]}" --resume "$dir/pipeline/step-000000000008.h5"
row 2 "ranks is '1' in the checkpoint but '2' in this run (the checkpoint records no global sample position" \
  --data "$dir/good" "${model[@]}" --resume "$dir/old/step-000000000008.h5"
echo "PASS: $checked rows"
