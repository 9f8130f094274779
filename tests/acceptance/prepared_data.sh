# Sourced by the Fashion-MNIST acceptance scripts: `launch` (mpirun -np RANKS where RANKS > 1, else
# nothing), a scratch directory `work` removed on exit, and Debian's Fashion-MNIST (or FMNIST_IDX)
# prepared into $work/data by `$bin prep`. Needs `bin` set.
launch=()
if ((${RANKS:-1} > 1)); then launch=("${MPIRUN:-mpirun}" --oversubscribe -np "$RANKS"); fi
src=${FMNIST_IDX:-/usr/share/datasets/fashion-mnist}
[[ -f $src/train-images-idx3-ubyte.gz ]] || { echo "Fashion-MNIST missing: install dataset-fashion-mnist (.ci/setup does)"; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin" prep --input "$src" --out "$work/data" --shards 4
