#!/usr/bin/env bash
# The project's one-command GPU check, for a GPU machine that has the CUDA driver, toolkit and PyTorch but none
# of our Debian packages. It unpacks the bundle that tests/gpu/bundle.sh made on a build machine (ringtrain
# built for sm_90 with every library it needs, Fashion-MNIST's IDX files), finds cuBLAS, cuDNN and NCCL (in the
# toolkit or in PyTorch's pip packages), checks that every bundled program finds its libraries and runs on the
# CPU (with mpirun), then runs every GPU test (CudaEngine and the other GPU twins; the NCCL tests on one rank),
# the CUDA acceptance runs and bench/gpu_vs_torch.sh, each under its own timeout and all within RT_BUDGET_S,
# and prints one summary, also written to $OUT/gpu-check.txt with every part's log in
# $OUT/gpu-check-logs.tar.gz (without OUT: next to the bundle folder).
# usage: bash tests/gpu/on-device.sh [BUNDLE_DIR]        (default build-gpu/bundle)
#   env: RT_BUDGET_S (seconds for all parts, default 450), RT_BENCH_EPOCHS (default 2), PYTHON (the one with
#        PyTorch and h5py, default python3), RT_CUDA_LIB_DIRS (more folders to search for the CUDA libraries,
#        colon-separated), RT_STRICT=1 (a library found outside the bundle, the CUDA folders and the base
#        system fails the check), RT_PLUMBING=1 (without a GPU, run the GPU parts all the same: their tests
#        skip inside, which checks the parts' own workings); the dry run sets both
# exit: 0 every part passed; 1 a part failed; 77 no GPU here (every part before the GPU passed)
set -euo pipefail

# Libraries every glibc system has, and the CUDA ones (as tests/gpu/bundle.sh divides them).
base_re='^(linux-vdso|ld-linux-x86-64|libc|libm|libdl|libpthread|librt|libresolv|libutil|libanl|libgcc_s|libstdc\+\+|libz)\.so'
cuda_re='^lib(cuda|cudart|cublas|cublasLt|cudnn[a-z_]*|nccl|nvrtc|nvJitLink|nvidia-ml)\.so'
gpu_filter=${RT_GPU_FILTER:-'*Cuda*:*Gpu*:*Nccl*:DeviceChoice.*'}
cpu_filter='ModelSpec.*:Shard.*:Loss.*:Optimizer.*'

# --- the parts; each runs as `on-device.sh --part NAME` under a timeout, with the variables exported below ---
part_libraries() {  # every ELF file in the bundle finds every library it needs
  # shellcheck source=/dev/null  # written by bundle.sh
  . "$RT_BUNDLE/env.sh"
  local files=0 bad=0 others=() e line soname path magic
  declare -A from=([bundle]=0 [cuda]=0 [base]=0)
  while IFS= read -r -d '' e; do
    magic=
    LC_ALL=C IFS= read -r -N4 magic <"$e" || true
    [[ $magic == $'\x7fELF' ]] || continue
    files=$((files + 1))
    while IFS= read -r line; do
      if [[ $line == *"not found"* ]]; then
        echo "missing for ${e#"$RT_BUNDLE"/}: ${line//[[:space:]]/ }"; bad=1; continue
      fi
      read -r soname _ path _ <<<"$line"
      [[ $path == /* ]] || continue
      if [[ $path == "$RT_BUNDLE"/* ]]; then from[bundle]=$((from[bundle] + 1))
      elif [[ $soname =~ $cuda_re ]]; then from[cuda]=$((from[cuda] + 1))
      elif [[ $soname =~ $base_re ]]; then from[base]=$((from[base] + 1))
      else others+=("$soname ($path, for $(basename "$e"))")
      fi
    done < <(ldd "$e" 2>&1)
  done < <(find "$RT_BUNDLE"/{libexec,lib,openmpi,pmix} -type f -print0)
  local counts="bundle ${from[bundle]}, CUDA ${from[cuda]}, base system ${from[base]}, other ${#others[@]}"
  if ((${#others[@]})); then
    printf 'from this system, not the bundle: %s\n' "${others[@]}" | sort -u
    [[ ${RT_STRICT:-0} == 1 ]] && bad=1
  fi
  ((bad == 0)) && echo "RESULT $files ELF files find every library they need ($counts)"
  return $bad
}

part_cpu() {  # the bundled programs run on the CPU: help, prep, CPU unit tests, a 1-rank and a 2-rank train
  local rt=$RT_BUNDLE/bin/ringtrain
  "$rt" --help >/dev/null
  "$rt" prep --input "$RT_IDX" --out "$RT_WORK/data" --shards 4 | tee "$RT_WORK/prep.txt"
  "$RT_BUNDLE/bin/ringtrain_tests" --gtest_filter="$cpu_filter" | tee "$RT_WORK/cpu-tests.txt"
  local train=(train --data "$RT_WORK/data" --model mlp --epochs 1 --steps 20 --batch 32)
  "$rt" "${train[@]}"   # alone: a one-rank MPI job (an isolated singleton: no orted)
  "$RT_BUNDLE/bin/mpirun" --oversubscribe -np 2 "$rt" "${train[@]}"
  echo "RESULT help, prep ($(sed -n 's/.*: \([0-9]*\) train.*/\1/p' "$RT_WORK/prep.txt") train samples)," \
       "$(gtest_counts "$RT_WORK/cpu-tests.txt") CPU tests, a 1-rank and a 2-rank (mpirun) train"
}

part_devices() {  # the GPU this process sees; skip (77) without one
  local first
  "$RT_BUNDLE/bin/ringtrain" devices | tee "$RT_WORK/devices.txt"
  first=$(head -1 "$RT_WORK/devices.txt")
  if [[ $first == "cuda: none"* ]]; then first=${first#cuda: none (}; echo "RESULT no GPU: ${first%)}"; return 77; fi
  echo "RESULT $(sed -n '2s/^ *//p' "$RT_WORK/devices.txt")"
}

part_gpu_tests() {  # the GPU unit tests and twins
  "$RT_BUNDLE/bin/ringtrain_tests" --gtest_filter="$gpu_filter" | tee "$RT_WORK/gpu-tests.txt" || true
  gtest_verdict "$RT_WORK/gpu-tests.txt"
}

part_gpu_mpi_tests() {  # the NCCL and data/pipeline-parallel GPU tests, on one rank (one GPU) under mpirun
  "$RT_BUNDLE/bin/mpirun" -np 1 "$RT_BUNDLE/bin/ringtrain_mpi_tests" --gtest_filter="$gpu_filter" |
    tee "$RT_WORK/gpu-mpi-tests.txt" || true
  gtest_verdict "$RT_WORK/gpu-mpi-tests.txt"
}

part_acceptance() {  # NAME: tests/CMakeLists.txt's acceptance.fashion_mnist.NAME, with DEVICE=cuda
  local args
  args=$(awk -v n="$1" '$1 == n { $1 = ""; print }' "$RT_BUNDLE/acceptance.txt")
  [[ -n $args ]] || { echo "no acceptance run named $1 in the bundle"; return 1; }
  local rc=0 log=$RT_WORK/$1.txt
  # shellcheck disable=SC2086  # the arguments are plain words
  DEVICE=cuda FMNIST_IDX=$RT_IDX bash "$RT_BUNDLE/tests/acceptance/fashion_mnist.sh" "$RT_BUNDLE/bin/ringtrain" $args |
    tee "$log" || rc=$?
  if ((rc == 77)); then echo "RESULT skipped: no GPU"; return 77; fi
  echo "RESULT $(grep -m1 '^test accuracy' "$log" || echo 'no test accuracy'), $(grep -c '^epoch' "$log") epochs," \
       "best $(sed -n 's/^epoch .*  \([0-9]*\) img\/s.*/\1/p' "$log" | sort -n | tail -1) img/s"
  return $rc
}

part_bench() {  # bench/gpu_vs_torch.sh: img/s against PyTorch on this GPU
  local rows
  RINGTRAIN=$RT_BUNDLE/bin/ringtrain DATA=$RT_WORK/data FMNIST_IDX=$RT_IDX \
    bash "$RT_BUNDLE/bench/gpu_vs_torch.sh" "${RT_BENCH_EPOCHS:-2}" | tee "$RT_WORK/bench.txt"
  if grep -q '^skipped:' "$RT_WORK/bench.txt"; then echo "RESULT skipped: no GPU"; return 77; fi
  rows=$(grep -cE '^(mlp|cnn) ' "$RT_WORK/bench.txt" || true)
  echo "RESULT ${rows:-0} configurations measured (table below)"
  ((rows > 0))
}

gtest_counts() {  # gtest's report -> "N passed, M skipped, K failed"
  local p s f
  p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$1" | tail -1)
  s=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) test.*/\1/p' "$1" | tail -1)
  f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$1" | tail -1)
  echo "${p:-0} passed, ${s:-0} skipped, ${f:-0} failed"
}

gtest_verdict() {  # passes when gtest ran tests, none failed and, with a GPU, some passed; names the failed ones
  local ran passed failed
  ran=$(sed -n 's/^\[==========\] \([0-9]*\) tests\{0,1\} from .* ran\..*/\1/p' "$1" | tail -1)
  passed=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$1" | tail -1)
  failed=$(sed -n 's/^\[  FAILED  \] \([A-Za-z0-9_/]*\.[A-Za-z0-9_/]*\).*/\1/p' "$1" | sort -u | paste -sd' ')
  echo "RESULT $(gtest_counts "$1")${failed:+: $failed}"
  [[ ${ran:-0} -gt 0 && -z $failed ]] || return 1
  if ((${passed:-0} == 0)); then  # every test skipped: right without a GPU (the dry run), wrong with one
    [[ ${RT_HAVE_GPU:-0} == 1 ]] && return 1
    return 77
  fi
}

if [[ ${1:-} == --part ]]; then "part_$2" "${@:3}"; exit; fi

# --- set-up: the bundle, the CUDA libraries, the time budget ---
die() { echo "on-device.sh: $*" >&2; exit 1; }
repo=$(cd "$(dirname "$0")/../.." && pwd)
bundle=$(realpath -m "${1:-$repo/build-gpu/bundle}")
archive=$bundle/ringtrain-gpu.tar.xz
[[ -f $archive ]] ||
  die "no bundle in $bundle: make one with tests/gpu/bundle.sh on a build machine and carry it (docs/gpu.md)"
results=${OUT:-$(dirname "$bundle")}
mkdir -p "$results"
budget=${RT_BUDGET_S:-450}
start=$SECONDS
work=$(mktemp -d "${TMPDIR:-/tmp}/ringtrain-gpu-check.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/logs"
# The system's xz, or the bundle's own (tests/gpu/bundle.sh: a bare system has none) with its liblzma.
xz=$(command -v xz || echo "$bundle/tools/xz")
LD_LIBRARY_PATH=$bundle/tools${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} "$xz" -dc "$archive" | tar -C "$work" -xf - ||
  die "cannot unpack $archive"
export RT_BUNDLE=$work/ringtrain-gpu RT_WORK=$work RT_IDX=$bundle/fashion-mnist RT_STRICT=${RT_STRICT:-0}
export RINGTRAIN_BIN=$RT_BUNDLE/bin/ringtrain  # the unit tests that run the program (test_util.cpp run_cli)
export PYTHON=${PYTHON:-python3}
sed -n '1,5p' "$RT_BUNDLE/MANIFEST.txt"

# cuBLAS, cuDNN and NCCL (cuda-libs.txt) and the driver's libcuda: the first folder that holds each, from
# RT_CUDA_LIB_DIRS and LD_LIBRARY_PATH, the toolkit, the driver's folders, then PyTorch's pip packages
# (site-packages/nvidia/*/lib), then ldconfig's cache.
candidates() {
  tr ':' '\n' <<<"${RT_CUDA_LIB_DIRS:-}:${LD_LIBRARY_PATH:-}"
  local c
  for c in ${CUDA_HOME:-} ${CUDA_PATH:-} /usr/local/cuda /usr/local/cuda-[0-9]*; do
    [[ -d $c ]] && printf '%s\n' "$c/lib64" "$c/lib" "$c/targets/x86_64-linux/lib"
  done
  printf '%s\n' /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib/x86_64-linux-gnu /usr/lib64
  if command -v "$PYTHON" >/dev/null; then
    "$PYTHON" -c 'import glob, os, sys
for p in sys.path: print("\n".join(sorted(glob.glob(os.path.join(p, "nvidia", "*", "lib")))))' 2>/dev/null || true
  fi
}
mapfile -t dirs < <(candidates | awk 'NF && !seen[$0]++')
ldcache=$(ldconfig -p 2>/dev/null || true)
cuda_dirs=() missing=()
while read -r soname; do
  found=
  for d in "${dirs[@]}"; do [[ -e $d/$soname ]] && { found=$d; break; }; done
  [[ -z $found ]] && found=$(awk -v s="$soname" '$1 == s && !n++ { print $NF }' <<<"$ldcache" | xargs -r dirname)
  if [[ -z $found ]]; then missing+=("$soname"); continue; fi
  echo "  $soname: $(readlink -f "$found/$soname")"
  [[ " ${cuda_dirs[*]} " == *" $found "* ]] || cuda_dirs+=("$found")
done < <(cat "$RT_BUNDLE/cuda-libs.txt"; echo libcuda.so.1)
# cuDNN's runtime-compiled engines open NVRTC by name: its folder too, where it is found.
major=$(sed -n 's/^libcudart\.so\.\([0-9]*\)$/\1/p' "$RT_BUNDLE/cuda-libs.txt")
for d in "${dirs[@]}"; do
  [[ -n $major && -e $d/libnvrtc.so.$major ]] || continue
  [[ " ${cuda_dirs[*]} " == *" $d "* ]] || cuda_dirs+=("$d")
  break
done
RT_CUDA_LIBS=$(IFS=:; echo "${cuda_dirs[*]}")
export RT_CUDA_LIBS
((${#missing[@]})) && echo "  not found: ${missing[*]}"

# --- the parts, in order; each one's log is in logs/NAME.log, its last line "RESULT ..." its detail ---
rows=() failed=() gpu=1
run() {  # NAME CAP_S PART [ARGS]: runs the part under min(CAP_S, what is left of the budget)
  local name=$1 cap=$2 log=$work/logs/$1.log s=$SECONDS rc detail verdict
  local left=$((budget - (SECONDS - start) - 10))
  if ((gpu < 0)); then
    rows+=("$(printf '%-18s %-7s %5s  %s' "$name" skip - "not run: devices failed")"); return
  fi
  if ((gpu == 0)) && [[ ${RT_PLUMBING:-0} != 1 ]]; then
    rows+=("$(printf '%-18s %-7s %5s  %s' "$name" skip - "no GPU")"); return
  fi
  if ((left < 20)); then
    rows+=("$(printf '%-18s %-7s %5s  %s' "$name" fail - "not run: the ${budget}s budget is spent")")
    failed+=("$name"); return
  fi
  ((cap > left)) && cap=$left
  echo "== $name (at most ${cap}s)"
  set +e
  timeout -k 10 "$cap" bash "$0" --part "${@:3}" >"$log" 2>&1 </dev/null
  rc=$?
  set -e
  detail=$(sed -n 's/^RESULT //p' "$log" | tail -1)
  case $rc in
    0) verdict=pass ;;
    77) verdict=skip ;;
    124 | 137) verdict=fail detail="timed out after ${cap}s${detail:+; $detail}" ;;
    *) verdict=fail ;;
  esac
  if [[ $verdict == fail ]]; then
    failed+=("$name")
    echo "-- $name failed (exit $rc); the end of its log:"
    tail -15 "$log"
  fi
  detail=${detail:-exit $rc: $(tail -1 "$log")}
  rows+=("$(printf '%-18s %-7s %4ss  %s' "$name" "$verdict" $((SECONDS - s)) "$detail")")
  echo "   $verdict: $detail"
  if [[ $name == devices ]]; then
    case $rc in
      0) export RT_HAVE_GPU=1 ;;
      77) gpu=0 no_gpu=$detail ;;
      *) gpu=-1 ;;
    esac
  fi
}
run bundle-libraries 60 libraries
run cpu-run 120 cpu
run devices 60 devices
run gpu-unit-tests 150 gpu_tests
run gpu-mpi-tests 90 gpu_mpi_tests
while read -r name _; do
  run "accept-$name" 150 acceptance "$name"
done <"$RT_BUNDLE/acceptance.txt"
run bench 240 bench

# --- the summary ---
summary=$results/gpu-check.txt
{
  echo "ringtrain GPU check, $(date -u +%FT%TZ), $((SECONDS - start))s of a ${budget}s budget"
  sed -n '2,5p' "$RT_BUNDLE/MANIFEST.txt"
  echo "GPU: $( ((gpu > 0)) && sed -n '2s/^ *//p' "$work/devices.txt" || echo none)"
  echo "CUDA libraries from: ${RT_CUDA_LIBS:-nowhere}${missing[*]:+ (not found: ${missing[*]})}"
  echo
  printf '%-18s %-7s %5s  %s\n' part result time detail
  printf '%s\n' "${rows[@]}"
  if grep -qE '^(mlp|cnn) ' "$work/bench.txt" 2>/dev/null; then
    echo
    echo "bench/gpu_vs_torch.sh (img/s; ringtrain's best of ${RT_BENCH_EPOCHS:-2} epochs, PyTorch from GPU memory):"
    grep -E '^(model|mlp|cnn) ' "$work/bench.txt" || true
  fi
  echo
  if ((${#failed[@]})); then echo "RESULT: FAIL (${failed[*]})"
  elif ((gpu == 0)); then echo "RESULT: SKIP, no GPU here (${no_gpu#no GPU: }); every part before the GPU passed"
  else echo "RESULT: PASS"
  fi
} >"$summary"
tar -C "$work" -czf "$results/gpu-check-logs.tar.gz" logs
echo
cat "$summary"
echo "(summary: $summary; logs: $results/gpu-check-logs.tar.gz)"
((${#failed[@]} == 0)) || exit 1
((gpu > 0)) || exit 77
