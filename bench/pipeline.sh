#!/usr/bin/env bash
# Pipeline efficiency against the bubble's ideal M / (M + P - 1). A model of 8 equal blocks (linear(1024),
# relu) splits evenly over P = 2 and 4 stages; each configuration trains the same global batch (512) cut into
# M micro-batches; the second epoch is timed (warm). Two efficiencies:
# - busy: the stages' own compute time / (P x step time), as the trainer reports it ("pipeline busy"): what
#   the schedule, its bubble and the transfers leave of each step. This is the figure the ideal predicts.
# - speed-up: pipeline img/s / (P x img/s of the whole model on one rank with the same M), measured in the
#   same script (the peer), interleaved, best of REPEAT. It also counts what running P processes at once
#   costs each of them (shared caches, memory bandwidth, SMT siblings, the loaders' threads).
# Rows where P exceeds this machine's cores share cores between stages and are marked: they do not measure
# the pipeline.
# usage: bench/pipeline.sh [REPEAT] [MICRO...]     (STAGES="2 4"; run .ci/setup --no-run first)
set -euo pipefail
cd "$(dirname "$0")/.."
repeat=${1:-2}
shift || true
micro=("${@:-1 2 4 8 16}")
read -r -a micro <<<"${micro[*]}"
bin=${RINGTRAIN:-build/src/ringtrain}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
[[ -x $bin ]] || { echo "run .ci/setup --no-run first (or set RINGTRAIN)"; exit 1; }
cores=$(nproc)
data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT
/usr/bin/python3 - "$data" <<'PY'
import sys, h5py, numpy as np
rng = np.random.default_rng(0)
for name, n in (("train-00000.h5", 1536), ("train-00001.h5", 1536)):
    y = rng.integers(0, 16, n)
    x = (rng.normal(size=(n, 1024)) + 0.1 * y[:, None]).astype(np.float32)
    with h5py.File(f"{sys.argv[1]}/{name}", "w") as f:
        f["x"] = x; f["y"] = y.astype(np.int64)
        f.attrs["format"] = "ringtrain-shard-1"; f.attrs["num_classes"] = 16
PY
model=$(printf 'linear(1024),relu,%.0s' 1 2 3 4 5 6 7 8)linear\(out\)
batch=512

run() {  # stages micro -> "img/s busy%" of the second epoch (busy: 100 on one rank)
  local launch=() out
  (($1 > 1)) && launch=(mpirun --oversubscribe -np "$1")
  out=$("${launch[@]}" "$bin" train --data "$data" --model "$model" --batch "$batch" --epochs 2 --lr 0.01 \
    --pipeline-stages "$1" --micro-batches "$2")
  local busy
  busy=$(sed -n '/^epoch 2\/2/{n;s/^  pipeline busy \([0-9.]*\)%.*/\1/p}' <<<"$out")
  echo "$(sed -n 's/^epoch 2\/2 .*  \([0-9]*\) img\/s.*/\1/p' <<<"$out") ${busy:-100}"
}
# The run with the best img/s, as "img/s busy%".
best() { printf '%s\n' "$@" | sort -n -k1,1 | tail -1; }

echo "model: 8 x (linear(1024),relu) + linear(16); global batch $batch; $cores cores; best of $repeat"
printf "%2s %3s | %8s | %10s %10s %8s | %10s %10s %8s %s\n" P M ideal 1rank_img/s pipe_img/s speedup busy busy/ideal \
  speed/ideal ""
for p in ${STAGES:-2 4}; do
  for m in "${micro[@]}"; do
    one=() pipe=()
    for ((r = 0; r < repeat; ++r)); do
      one+=("$(run 1 "$m")")
      pipe+=("$(run "$p" "$m")")
    done
    read -r a _ <<<"$(best "${one[@]}")"
    read -r b busy <<<"$(best "${pipe[@]}")"
    note=""
    ((p > cores)) && note="(oversubscribed: $p stages on $cores cores)"
    awk -v p="$p" -v m="$m" -v a="$a" -v b="$b" -v busy="$busy" -v note="$note" 'BEGIN {
      ideal = m / (m + p - 1); speedup = b / (p * a)
      printf "%2d %3d | %7.1f%% | %10d %10d %7.1f%% | %9.1f%% %10.2f %8.2f %s\n", p, m, 100 * ideal, a, b,
             100 * speedup, busy, busy / 100 / ideal, speedup / ideal, note }'
  done
done
