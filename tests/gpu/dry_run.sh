#!/usr/bin/env bash
# The GPU check's dry run, everything up to the GPU: makes the bundle (tests/gpu/bundle.sh; at most 64 MiB),
# then runs tests/gpu/on-device.sh on it in a bare Debian 12 (debootstrap --variant=minbase, cached in ROOT)
# where nothing of this system is visible but the CUDA toolkit: no Open MPI, HDF5, Boost, OpenBLAS or gtest,
# and no Fashion-MNIST package. There every bundled program must find all its libraries in the bundle, the
# toolkit or the base system (RT_STRICT=1), ringtrain must prep, pass CPU tests and train on 1 rank and on 2
# under the bundle's mpirun, and the check must stop at "no GPU" (exit 77) with every earlier part passed; the
# GPU parts run all the same (RT_PLUMBING=1), each to its "no GPU" skip.
# usage: tests/gpu/dry_run.sh [--root DIR] [BUNDLE.SH OPTIONS...]
#   --root DIR   the cached bare Debian (default: BUILD/bookworm-minbase; made when missing, about 30 s)
#   the rest goes to tests/gpu/bundle.sh (--build DIR, --reuse, --out DIR)
#   env: DEBIAN_MIRROR (default http://deb.debian.org/debian)
# exit: 0 passed; 1 failed; 77 (skipped) when no bare Debian can be made here (no debootstrap or no archive)
set -euo pipefail

# In the mount namespace (unshare): the bare root gets /proc, /dev, /sys, the CUDA toolkit (read-only, at its
# own path), the repository and the bundle (read-only) and a results folder; then on-device.sh runs inside it
# with an empty environment. The mounts are unmounted on the way out (the namespace's end drops them anyway).
mounts=()
inside() {
  local root=$1 src=$2 bundle=$3 cuda=$4 results=$5
  trap 'for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount -l "${mounts[i]}"; done' EXIT
  mount -t proc proc "$root/proc"; mounts+=("$root/proc")
  mount --rbind /dev "$root/dev"; mounts+=("$root/dev")
  mount --rbind /sys "$root/sys"; mounts+=("$root/sys")  # hwloc reads the CPU topology there
  bind "$cuda" "$root$cuda" ro
  [[ -e $root/usr/local/cuda ]] || ln -s "$cuda" "$root/usr/local/cuda"
  bind "$src" "$root/repo" ro
  bind "$bundle" "$root/bundle" ro
  bind "$results" "$root/results"
  chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TMPDIR=/tmp OUT=/results \
    RT_STRICT=1 RT_PLUMBING=1 RT_BUDGET_S=300 /bin/bash /repo/tests/gpu/on-device.sh /bundle
}
bind() {  # SOURCE TARGET [ro]
  mkdir -p "$2"
  mount --bind "$1" "$2"; mounts+=("$2")
  if [[ ${3:-} == ro ]]; then mount -o remount,bind,ro "$2"; fi
}
if [[ ${1:-} == --inside ]]; then shift; inside "$@"; exit; fi

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
root='' build=$src/build-gpu out='' args=()
while (($#)); do
  case $1 in
    --root) root=$(realpath -m "$2"); shift 2 ;;
    --build) build=$(realpath -m "$2"); args+=("$1" "$build"); shift 2 ;;
    --out) out=$(realpath -m "$2"); args+=("$1" "$out"); shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
root=${root:-$build/bookworm-minbase} out=${out:-$build/bundle}
die() { echo "dry_run.sh: $*" >&2; exit 1; }
skip() { echo "SKIP: $*"; exit 77; }
[[ $(id -u) == 0 ]] || skip "the dry run needs root (chroot and mounts in a mount namespace of its own)"
unshare --mount --propagation private true 2>/dev/null || skip "no mount namespace can be made here (unshare --mount)"
t0=$SECONDS

echo "== the bundle"
"$here/bundle.sh" "${args[@]}" || die "tests/gpu/bundle.sh failed"

# The bare system, made once: debootstrap's minimal variant (what a Debian container starts from).
if [[ ! -x $root/bin/bash ]]; then
  if ! command -v debootstrap >/dev/null; then
    if command -v apt-get >/dev/null; then
      echo "== installing debootstrap"
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null 2>&1 ||
        skip "debootstrap is not installed and could not be (apt-get install debootstrap)"
    else
      skip "debootstrap is not installed"
    fi
  fi
  echo "== making a bare Debian 12 in $root (debootstrap --variant=minbase bookworm)"
  rm -rf "$root.tmp"
  debootstrap --variant=minbase bookworm "$root.tmp" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" \
    >"$root.log" 2>&1 || { tail -3 "$root.log"; rm -rf "$root.tmp"; skip "debootstrap failed (above; $root.log)"; }
  mv "$root.tmp" "$root"
fi
for lib in libmpi.so.40 libhdf5_serial.so.103 libopenblas.so.0 libboost_program_options.so.1.74.0 libgomp.so.1; do
  [[ -z $(find "$root/usr/lib" "$root/lib" -name "$lib" -print -quit 2>/dev/null) ]] ||
    die "$root is not bare: it holds $lib"
done

# The CUDA toolkit, as the GPU machine has it: the real folder, and /usr/local/cuda pointing at it.
cuda=$(readlink -f "${CUDA_HOME:-/usr/local/cuda}")
[[ -d $cuda ]] || skip "no CUDA toolkit at ${CUDA_HOME:-/usr/local/cuda}"

# In a mount namespace of its own the mounts vanish with the namespace, on failure too; the trap inside
# unmounts them first all the same, and the one outside catches any left behind.
results=$(mktemp -d "${TMPDIR:-/tmp}/ringtrain-dry-run.XXXXXX")
cleanup() {
  findmnt -rn -o TARGET | grep -F "$root/" | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$results"
}
trap cleanup EXIT
echo "== tests/gpu/on-device.sh in the bare Debian, with only the CUDA toolkit ($cuda) and the bundle mounted"
set +e
unshare --mount --propagation private -- bash "$0" --inside "$root" "$src" "$out" "$cuda" "$results"
rc=$?
set -e
summary=$results/gpu-check.txt
[[ -f $summary ]] || die "on-device.sh wrote no summary (exit $rc)"
((rc == 77)) || die "on-device.sh exited $rc in the bare Debian; it must stop at 'no GPU' (77)"
grep -q '^RESULT: SKIP, no GPU here' "$summary" || die "the summary does not end at 'no GPU'"
for part in bundle-libraries cpu-run; do
  grep -qE "^$part +pass " "$summary" || die "part $part did not pass"
done
# The GPU parts ran all the same (RT_PLUMBING): their tests found and skipped, the acceptance runs and the
# bench stopped at "no GPU".
for part in gpu-unit-tests gpu-mpi-tests; do
  grep -qE "^$part +(pass|skip) +[0-9]+s .* [1-9][0-9]* skipped, 0 failed" "$summary" ||
    die "GPU part $part found no GPU tests to skip"
done
for part in accept-mlp_cuda accept-cnn_cuda bench; do
  grep -qE "^$part +skip +[0-9]+s " "$summary" || die "GPU part $part did not run to its skip"
done
echo "PASS: the GPU check's dry run, $((SECONDS - t0))s: the bundle in $out is complete (every program found its" \
     "libraries with this system's hidden) and on-device.sh stopped at 'no GPU'"
