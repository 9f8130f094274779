#!/usr/bin/env bash
# Assembles the GPU check's bundle, the one thing a GPU machine without our Debian packages needs besides the
# repository: ringtrain's binaries built for sm_90 (CPU code portable, no -march=native), every shared library
# they need that neither a bare Debian/Ubuntu base (glibc, libstdc++, libgcc_s, zlib) nor the CUDA toolkit and
# driver hold (Open MPI with its components, help files, orterun/orted and PMIx; HDF5 and what it links; Boost;
# OpenBLAS with the gfortran runtime; hwloc, libevent...), the scripts that tests/gpu/on-device.sh runs, and
# Fashion-MNIST's IDX files. Writes OUT/ringtrain-gpu.tar.xz and OUT/fashion-mnist/*.gz, at most 64 MiB in all.
# usage: tests/gpu/bundle.sh [--build DIR] [--reuse] [--out DIR]
#   --build DIR  build directory (default build-gpu): configured and built here for sm_90
#   --reuse      take the binaries already built in DIR as they are (they must hold sm_90 code); the dry run's
#                CTest uses the main build this way, and such a bundle is marked as not portable if that build
#                was tuned for this CPU
#   --out DIR    where the bundle goes (default DIR/bundle, the folder to `carry` to a GPU machine)
#   env: FMNIST_IDX (the IDX files, default /usr/share/datasets/fashion-mnist), JOBS (build jobs, default 2)
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
build=$src/build-gpu reuse=0 out=''
while (($#)); do
  case $1 in
    --build) build=$(realpath -m "$2"); shift 2 ;;
    --reuse) reuse=1; shift ;;
    --out) out=$(realpath -m "$2"); shift 2 ;;
    *) sed -n '8,14s/^# \{0,1\}//p' "$0"; exit 2 ;;
  esac
done
out=${out:-$build/bundle}
idx=${FMNIST_IDX:-/usr/share/datasets/fashion-mnist}
limit=$((64 * 1024 * 1024))
die() { echo "bundle.sh: $*" >&2; exit 1; }

# Libraries every glibc system has; everything else is carried unless the CUDA toolkit or driver provides it.
base_re='^(linux-vdso|ld-linux-x86-64|libc|libm|libdl|libpthread|librt|libresolv|libutil|libanl|libgcc_s|libstdc\+\+|libz)\.so'
cuda_re='^lib(cuda|cudart|cublas|cublasLt|cudnn[a-z_]*|nccl|nvrtc|nvJitLink|nvidia-ml)\.so'
# Open MPI components for fabrics a one-node check never uses (UCX, libfabric, verbs, PSM) and OpenSHMEM's:
# left out rather than carrying their libraries.
skip_component_re='lib(ucp|ucs|uct|ucm|fabric|ibverbs|rdmacm|psm_infinipath|psm2|oshmem)\.so'

# --- 1. the binaries, built for sm_90 ---
if ((!reuse)); then
  cuda_flag=()
  if ! command -v nvcc >/dev/null && [[ -x /usr/local/cuda/bin/nvcc ]]; then
    cuda_flag=(-DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc)
  fi
  mkdir -p "$build"
  echo "== building for sm_90 in $build (log: $build/bundle-build.log)"
  { cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DRINGTRAIN_NATIVE=OFF -DRINGTRAIN_CUDA=ON \
      -DCMAKE_CUDA_ARCHITECTURES=90 "${cuda_flag[@]}" &&
    cmake --build "$build" -j"${JOBS:-2}" --target ringtrain ringtrain_tests ringtrain_mpi_tests; } \
    >"$build/bundle-build.log" 2>&1 || { tail -20 "$build/bundle-build.log"; die "the build failed (above)"; }
fi
programs=("$build/src/ringtrain" "$build/tests/ringtrain_tests" "$build/tests/ringtrain_mpi_tests")
for p in "${programs[@]}"; do [[ -x $p ]] || die "$p is missing: build it, or drop --reuse"; done
cache=$build/CMakeCache.txt
grep -q '^RINGTRAIN_CUDA:BOOL=ON' "$cache" || die "$build was built without CUDA (RINGTRAIN_CUDA=OFF)"
# The architectures nvcc was given (CMake writes them into the CUDA objects' flags).
archs=$(find "$build" -maxdepth 5 -path '*/CMakeFiles/*.dir/flags.make' -exec cat {} + |
          grep -oE 'arch=compute_[0-9]+,code=\[?[a-z_0-9,]*' | grep -oE 'sm_[0-9]+' | sort -u | tr '\n' ' ' || true)
[[ $archs == *sm_90* ]] || die "$build's CUDA code is not built for sm_90 (found: ${archs:-none})"
built_from=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$cache")
portable=yes
grep -q '^RINGTRAIN_NATIVE:BOOL=ON' "$cache" && portable="no (built with -march=native: for the dry run only)"

# --- 2. assemble the tree ---
stage=$(mktemp -d "${TMPDIR:-/tmp}/ringtrain-bundle.XXXXXX")
trap 'rm -rf "$stage"' EXIT
root=$stage/ringtrain-gpu
mkdir -p "$root"/{bin,libexec,lib,openmpi/{bin,lib/openmpi3,share,etc},pmix/{lib/pmix,share,etc},tests/acceptance,bench}

for p in "${programs[@]}"; do strip --strip-unneeded -o "$root/libexec/$(basename "$p")" "$p"; done

# Open MPI: orterun (mpirun) and orted (a one-rank job without a launcher starts one), the components, help
# files and default parameters; relocated by env.sh's OPAL_* variables.
command -v ompi_info >/dev/null || die "ompi_info not found (openmpi-bin)"
ompi_paths=$(ompi_info --path all)
ompi_path() { awk -v k="$1:" '$1 == k && !n++ { print $2 }' <<<"$ompi_paths"; }
ompi_bin=$(ompi_path Bindir) ompi_pkglib=$(ompi_path Pkglibdir)
ompi_data=$(ompi_path Pkgdatadir) ompi_etc=$(ompi_path Sysconfdir)
cp "$(readlink -f "$ompi_bin/orterun")" "$root/openmpi/bin/orterun"
cp "$(readlink -f "$ompi_bin/orted")" "$root/openmpi/bin/orted"
ln -s orterun "$root/openmpi/bin/mpirun"
skipped=()
for c in "$ompi_pkglib"/*.so; do
  if grep -qE "$skip_component_re" <<<"$(ldd "$c")"; then skipped+=("$(basename "$c" .so)"); continue; fi
  cp "$c" "$root/openmpi/lib/openmpi3/"
done
cp -r "$ompi_data" "$root/openmpi/share/openmpi"
cp "$ompi_etc"/openmpi-mca-params.conf "$ompi_etc"/openmpi-default-hostfile "$root/openmpi/etc/"
# PMIx (Open MPI's runtime talks to it): its plugins and help files. Its own parameter file only names its
# Debian plugin folder, which env.sh replaces.
pmix_lib=$(ldd "$(readlink -f "$ompi_pkglib/mca_pmix_ext3x.so")" | awk '$1 == "libpmix.so.2" { print $3 }')
[[ -n $pmix_lib ]] || die "Open MPI's PMIx library not found"
pmix_prefix=$(dirname "$(dirname "$(readlink -f "$pmix_lib")")")
cp "$pmix_prefix"/lib/pmix/*.so "$root/pmix/lib/pmix/"
cp -r "$pmix_prefix/share/pmix" "$root/pmix/share/pmix"

# Every library these ELF files need, by soname, from this system (ldd gives the whole closure of each).
elves=("$root"/libexec/* "$root"/openmpi/bin/orte* "$root"/openmpi/lib/openmpi3/*.so "$root"/pmix/lib/pmix/*.so)
declare -A carried=() cuda=()
for e in "${elves[@]}"; do
  lines=$(ldd "$e") || die "ldd failed on $e"
  if grep -q 'not found' <<<"$lines"; then die "$e: $(grep 'not found' <<<"$lines" | tr -s ' \t\n' ' ')"; fi
  while read -r soname _ path _; do
    [[ $soname == *.so* && $soname != /* ]] || continue
    if [[ $soname =~ $base_re ]]; then continue; fi
    if [[ $soname =~ $cuda_re ]]; then cuda[$soname]=1; continue; fi
    [[ -n ${carried[$soname]:-} ]] && continue
    carried[$soname]=$path
    cp -L "$path" "$root/lib/$soname"
  done <<<"$lines"
done

cp "$src/tests/acceptance/fashion_mnist.sh" "$src/tests/acceptance/prepared_data.sh" "$root/tests/acceptance/"
cp "$src/bench/gpu_vs_torch.sh" "$src/bench/torch_gpu_train.py" "$root/bench/"
printf '%s\n' "${!cuda[@]}" | sort >"$root/cuda-libs.txt"
# The CUDA acceptance runs as CTest registers them (tests/CMakeLists.txt): "NAME ARGS..." after the binary.
ctest --test-dir "$build" -R '^acceptance[.]fashion_mnist[.].*_cuda$' --show-only=json-v1 | python3 -c '
import json, sys
for t in json.load(sys.stdin)["tests"]:
    print(t["name"].rsplit(".", 1)[1], *t["command"][2:])' >"$root/acceptance.txt"
[[ -s $root/acceptance.txt ]] || die "no acceptance.fashion_mnist.*_cuda tests in $build (tests/CMakeLists.txt)"

# env.sh: what every bundled program runs with; the wrappers in bin/ source it.
cat >"$root/env.sh" <<'EOF'
# Sourced by the bundle's bin/ wrappers (RT_BUNDLE set): the bundle's libraries first, then the CUDA
# libraries that tests/gpu/on-device.sh found (RT_CUDA_LIBS), and Open MPI and PMIx relocated into the bundle.
export RT_BUNDLE
export LD_LIBRARY_PATH="$RT_BUNDLE/lib${RT_CUDA_LIBS:+:$RT_CUDA_LIBS}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
o=$RT_BUNDLE/openmpi
export OPAL_PREFIX="$o" OPAL_EXEC_PREFIX="$o" OPAL_BINDIR="$o/bin" OPAL_LIBDIR="$RT_BUNDLE/lib"
export OPAL_PKGLIBDIR="$o/lib/openmpi3" OPAL_DATAROOTDIR="$o/share" OPAL_DATADIR="$o/share"
export OPAL_PKGDATADIR="$o/share/openmpi" OPAL_SYSCONFDIR="$o/etc"
export OMPI_MCA_mca_base_component_path="$o/lib/openmpi3"
p=$RT_BUNDLE/pmix
export PMIX_PREFIX="$p" PMIX_EXEC_PREFIX="$p" PMIX_LIBDIR="$RT_BUNDLE/lib" PMIX_PKGLIBDIR="$p/lib/pmix"
export PMIX_DATADIR="$p/share" PMIX_PKGDATADIR="$p/share/pmix" PMIX_SYSCONFDIR="$p/etc"
export PMIX_MCA_mca_base_component_path="$p/lib/pmix"
# One node: Open MPI's default launcher (plm rsh) aborts where there is no ssh; GPU machines are lent as root.
export OMPI_MCA_plm=isolated OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
unset o p
EOF
for name in ringtrain ringtrain_tests ringtrain_mpi_tests mpirun; do
  target=libexec/$name
  [[ $name == mpirun ]] && target=openmpi/bin/orterun
  cat >"$root/bin/$name" <<EOF
#!/bin/sh
# The bundled $name with the bundle's libraries (env.sh).
RT_BUNDLE=\$(cd "\$(dirname "\$(readlink -f "\$0")")/.." && pwd) || exit 1
. "\$RT_BUNDLE/env.sh"
exec "\$RT_BUNDLE/$target" "\$@"
EOF
  chmod +x "$root/bin/$name"
done

# What the GPU machine's glibc and libstdc++ must provide (the newest symbol versions referenced).
needs=$({ find "$root"/{libexec,lib,openmpi/bin,openmpi/lib,pmix/lib} -type f -print0 |
          xargs -0 objdump -T 2>/dev/null || true; } | grep -oE '(GLIBC|GLIBCXX|CXXABI)_[0-9.]+' | sort -u -V |
          awk -F_ '{ v[$1] = $2 } END { for (k in v) printf "%s_%s ", k, v[k] }')
{
  echo "ringtrain GPU bundle"
  echo "source: $built_from at $(git -C "$built_from" rev-parse --short HEAD 2>/dev/null || echo unknown)$(
    git -C "$built_from" diff --quiet HEAD 2>/dev/null || echo ' with uncommitted changes')"
  echo "built: $(date -u +%FT%TZ) on $(sed -n 's/^PRETTY_NAME="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' /etc/os-release)"
  echo "cuda architectures: $archs"
  echo "portable CPU code: $portable"
  echo "needs from the system: ${needs}and the CUDA libraries in cuda-libs.txt"
  echo "open mpi components left out: ${skipped[*]:-none}"
  echo "carried libraries:"
  for s in $(printf '%s\n' "${!carried[@]}" | sort); do echo "  $s  (${carried[$s]})"; done
} >"$root/MANIFEST.txt"

# --- 3. a first check here: every ELF finds every library in the bundle, this system's CUDA, or the base ---
cache=$(ldconfig -p)
cuda_dirs=$(for s in "${!cuda[@]}"; do awk -v s="$s" '$1 == s && !n++ { print $NF }' <<<"$cache"; done |
              xargs -r -n1 dirname | sort -u | paste -sd:)
for e in "$root"/libexec/* "$root"/openmpi/bin/orte* "$root"/openmpi/lib/openmpi3/*.so "$root"/pmix/lib/pmix/*.so \
         "$root"/lib/*; do
  if LD_LIBRARY_PATH=$root/lib${cuda_dirs:+:$cuda_dirs} ldd "$e" 2>&1 | grep -q 'not found'; then
    die "$e does not find all its libraries in the bundle"
  fi
done

# --- 4. the archive and the data, within 64 MiB ---
mkdir -p "$out"
rm -rf "${out:?}"/ringtrain-gpu.tar.* "$out/fashion-mnist" "$out/tools"
archive=$out/ringtrain-gpu.tar.xz
echo "== compressing $(du -sh "$root" | cut -f1) into $archive"
# xz, not gzip: since oneDNN (libdnnl, 40 MB) the gzip archive (38 MiB) and the data (29 MiB) passed 64 MiB;
# xz packs the libraries a third smaller. A bare system has no xz program (Debian's minbase, most container
# bases), so the bundle brings this system's (tools/: 0.3 MiB with its liblzma) for on-device.sh to unpack with.
xz=$(command -v xz) || die "xz not found (xz-utils)"
tar -C "$stage" -cf - ringtrain-gpu | "$xz" -6 -T"${JOBS:-2}" >"$archive"
mkdir -p "$out/tools"
cp "$xz" "$out/tools/xz"
cp -L "$(ldd "$xz" | awk '$1 ~ /^liblzma[.]so/ { print $3 }')" "$out/tools/" || die "xz's liblzma not found"
mkdir -p "$out/fashion-mnist"
for f in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz; do
  [[ -f $idx/$f ]] || die "$idx/$f missing: install dataset-fashion-mnist (.ci/setup does) or set FMNIST_IDX"
  cp "$idx/$f" "$out/fashion-mnist/"
done
size=$(du -cb "$archive" "$out"/fashion-mnist/* "$out"/tools/* | tail -1 | cut -f1)
# What a call sends besides the bundle: tracked and untracked-not-ignored files.
tree=$({ git -C "$src" ls-files -co --exclude-standard -z 2>/dev/null || true; } |
         (cd "$src" && { du -cb --files0-from=- 2>/dev/null || true; }) | awk 'END { print $1 + 0 }')
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
echo "bundle: $out ($(mib "$size"): archive $(mib "$(stat -c %s "$archive")"), data" \
     "$(mib "$(du -cb "$out"/fashion-mnist/* | tail -1 | cut -f1)"); ${#carried[@]} libraries carried;" \
     "portable CPU code: $portable)"
((size <= limit)) || die "the bundle is $(mib "$size"), over the 64 MiB that a GPU machine is sent"
((size + tree <= limit)) || echo "bundle.sh: warning: with the working tree ($(mib "$tree")) it is over 64 MiB" >&2
