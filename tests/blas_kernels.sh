#!/usr/bin/env bash
# OpenBLAS on a CPU it does not recognise (Debian 12's 0.3.21 on Sapphire Rapids and newer) runs generic SSE3
# kernels: ringtrain then restarts itself once with OPENBLAS_CORETYPE naming the kernels the CPU can run
# (src/cli/main.cpp). OpenBLAS says which kernels it loaded under OPENBLAS_VERBOSE=2 ("Core: NAME", once per
# load). A user's own OPENBLAS_CORETYPE is kept, and the process keeps its name.
# usage: blas_kernels.sh RINGTRAIN_BIN
set -euo pipefail
bin=$1
cores() { OPENBLAS_VERBOSE=2 "$bin" devices 2>&1 | sed -n 's/^Core: //p'; }
loads=$(cores)
first=$(head -1 <<<"$loads") last=$(tail -1 <<<"$loads")
flags=$(grep -m1 '^flags' /proc/cpuinfo)
has() { for f in "$@"; do [[ " $flags " == *" $f "* ]] || return 1; done; }
if [[ $first != Prescott ]]; then
  want=$first  # recognised: loaded once, no restart
elif has avx512f avx512bw avx512dq avx512vl; then
  want=SkylakeX
elif has avx2 fma; then
  want=Haswell
else
  want=Prescott
fi
expected_loads=$([[ $want == "$first" ]] && echo 1 || echo 2)
[[ $last == "$want" && $(wc -l <<<"$loads") == "$expected_loads" ]] ||
  { echo "FAIL: OpenBLAS loaded '$(tr '\n' ' ' <<<"$loads")'; expected $expected_loads load(s) ending in $want"; exit 1; }
kept=$(OPENBLAS_VERBOSE=2 OPENBLAS_CORETYPE=Prescott "$bin" devices 2>&1 | sed -n 's/^Core: //p')
[[ $kept == Prescott ]] || { echo "FAIL: OPENBLAS_CORETYPE=Prescott was not kept: loaded '$kept'"; exit 1; }
# The restarted process keeps its name (top, pgrep, the MPI tests' pid_of look for "ringtrain").
"$bin" train --data synthetic:8:2:100000 --model 'linear(out)' --epochs 1000 >/dev/null 2>&1 &
pid=$!
sleep 1
name=$(cat "/proc/$pid/comm" 2>/dev/null || echo "(ended)")
kill "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
[[ $name == ringtrain ]] || { echo "FAIL: a training process is named '$name', not ringtrain"; exit 1; }
echo "PASS: OpenBLAS first chose $first; ringtrain runs $want, as a process named ringtrain"
