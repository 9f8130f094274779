#!/usr/bin/env bash
# -DRINGTRAIN_CUDA=OFF must keep building: configures and builds the CLI CPU-only (every role's
# cuda_disabled.cpp instead of the CUDA engine) and checks that it says why there is no GPU. The build is
# also portable (-DRINGTRAIN_NATIVE=OFF: no AVX-512), so the kernels' OpenBLAS fallbacks are compiled and
# their tests run here; the main build takes the AVX-512 path on this machine.
# usage: build_without_cuda.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1 dir=$2
cmake -S "$src" -B "$dir" -DRINGTRAIN_CUDA=OFF -DRINGTRAIN_NATIVE=OFF -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$dir" --target ringtrain ringtrain_tests -j2 >/dev/null
out=$("$dir/src/ringtrain" devices)
echo "$out"
[[ $out == "cuda: none (no CUDA device: ringtrain was built with RINGTRAIN_CUDA=OFF)" ]]
"$dir/tests/ringtrain_tests" --gtest_brief=1 --gtest_filter='StridedGemm*:IndexedGemm*:LayerGradients*:Conv2d*:Im2col*'
