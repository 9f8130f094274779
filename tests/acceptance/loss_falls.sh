#!/usr/bin/env bash
# Acceptance: a short run on Fashion-MNIST whose training loss must fall: the running loss over the last
# --log-every window at most RATIO x the first window's. For modes where a short run's test accuracy says
# little (batchnorm's running statistics lag a fast-moving model early on), this is what "it trains" means.
# usage: loss_falls.sh RINGTRAIN_BIN RATIO [train flags...]      RANKS=N trains under mpirun (MPIRUN)
set -euo pipefail
bin=$1 ratio=$2
shift 2
source "$(dirname "$0")/prepared_data.sh"
"${launch[@]}" "$bin" train --data "$work/data" --epochs 1 "$@" | tee "$work/log"
losses=$(sed -n 's/^  step [0-9]*  loss \([0-9.]*\).*/\1/p' "$work/log")
first=$(head -1 <<<"$losses") last=$(tail -1 <<<"$losses")
[[ -n $first && $first != "$last" ]] || { echo "fewer than two --log-every lines in the log"; exit 1; }
echo "training loss $first -> $last (need <= $ratio x $first)"
awk -v a="$last" -v b="$first" -v r="$ratio" 'BEGIN { exit !(a <= r * b) }'
