#!/usr/bin/env bash
# OpenBLAS on a CPU it does not recognise (Debian 12's 0.3.21 on Sapphire Rapids and newer) runs generic SSE3
# kernels: before its first GEMM ringtrain has it choose again for what the CPU can run (src/tensor/blas.cpp).
# OpenBLAS says which kernels it sets up under OPENBLAS_VERBOSE=2 ("Core: NAME", once per choice). A user's
# own OPENBLAS_CORETYPE is kept.
# usage: blas_kernels.sh RINGTRAIN_BIN
set -euo pipefail
bin=$1
cores() { OPENBLAS_VERBOSE=2 "$bin" train --data synthetic:16:2:64 --model mlp --steps 1 2>&1 | sed -n 's/^Core: //p'; }
choices=$(cores)
first=$(head -1 <<<"$choices") last=$(tail -1 <<<"$choices")
flags=$(grep -m1 '^flags' /proc/cpuinfo)
has() { for f in "$@"; do [[ " $flags " == *" $f "* ]] || return 1; done; }
if [[ $first != Prescott ]]; then
  want=$first  # recognised: chosen once
elif has avx512f avx512bw avx512dq avx512vl; then
  want=SkylakeX
elif has avx2 fma; then
  want=Haswell
else
  want=Prescott
fi
expected=$([[ $want == "$first" ]] && echo 1 || echo 2)
[[ $last == "$want" && $(wc -l <<<"$choices") == "$expected" ]] ||
  { echo "FAIL: OpenBLAS chose '$(tr '\n' ' ' <<<"$choices")'; expected $expected choice(s) ending in $want"; exit 1; }
kept=$(OPENBLAS_CORETYPE=Prescott cores)
[[ $kept == Prescott ]] || { echo "FAIL: OPENBLAS_CORETYPE=Prescott was not kept: chose '$kept'"; exit 1; }
echo "PASS: OpenBLAS first chose $first; ringtrain's GEMMs run $want"
