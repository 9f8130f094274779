#!/usr/bin/env bash
# -DRINGTRAIN_CUDA=OFF must keep building: configures and builds the CLI CPU-only (every role's
# cuda_disabled.cpp instead of the CUDA engine) and checks that it says why there is no GPU.
# usage: build_without_cuda.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1 dir=$2
cmake -S "$src" -B "$dir" -DRINGTRAIN_CUDA=OFF -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$dir" --target ringtrain -j2 >/dev/null
out=$("$dir/src/ringtrain" devices)
echo "$out"
[[ $out == "cuda: none (no CUDA device: ringtrain was built with RINGTRAIN_CUDA=OFF)" ]]
