#!/usr/bin/env bash
# One binary for a whole cluster: outside the AVX-512 kernels (functions named *avx512*, chosen at run time
# by cpu_path), the x86-64 binary holds no AVX or AVX-512 instruction (VEX/EVEX-encoded: mnemonics v...), so
# it runs on any x86-64 CPU. Fails listing the functions that do.
# usage: baseline_isa.sh BINARY
set -euo pipefail
bin=$1
# One line per function holding v... instructions: its name, then how many.
counts=$(objdump -d --no-show-raw-insn -C "$bin" | awk -F'\t' '
  /^[0-9a-f]+ <.*>:$/ { fn = $0; next }
  $2 ~ /^v[a-z]/ { n[fn]++ }
  END { for (f in n) print f "\t" n[f] }')
offenders=$(awk -F'\t' '$1 !~ /avx512/ { print $1 }' <<<"$counts")
if [[ -n $offenders ]]; then
  echo "FAIL: AVX instructions outside the run-time-chosen AVX-512 kernels of $bin, in:"
  head -20 <<<"$offenders"
  exit 1
fi
echo "PASS: AVX only in the AVX-512 kernels ($(awk -F'\t' '{ n += $2 } END { print n + 0 }' <<<"$counts")" \
  "instructions in $(grep -c . <<<"$counts") functions)"
