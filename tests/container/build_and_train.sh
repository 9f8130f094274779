#!/usr/bin/env bash
# container.build_and_train: the portable environment end to end, from nothing but Debian's archive. A bare
# Debian 12 (debootstrap --variant=minbase) imported into buildah as the base, the Containerfile built on it
# from this checkout (buildah bud --isolation chroot --pull=never), then, inside the image, Fashion-MNIST
# prepared from Debian's dataset-fashion-mnist and the mlp trained for a few steps on 2 ranks under the
# image's mpirun. Prints the time of each phase and the image's size (docs/container.md has the figures).
# usage: tests/container/build_and_train.sh [SOURCE_DIR]   (default: the checkout holding this script)
#   env: DEBIAN_MIRROR (default http://deb.debian.org/debian);
#        CONTAINER_BUDGET_S (default 1500): the script stops its own steps past this, so that its clean-up
#        still runs, where CTest's TIMEOUT would kill it with nothing cleaned up
# exit: 0 passed; 1 failed; 77 (CTest's skip) without root, buildah or debootstrap, or when debootstrap
# cannot reach the archive
set -euo pipefail

src=$(cd "${1:-$(dirname "$0")/../..}" && pwd)
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
deadline=$((SECONDS + ${CONTAINER_BUDGET_S:-1500}))
die() { echo "build_and_train.sh: FAIL: $*" >&2; exit 1; }
skip() { echo "SKIP: $*"; exit 77; }
left() { local s=$((deadline - SECONDS)); echo $((s > 1 ? s : 1)); }

[[ $(id -u) == 0 ]] || skip "needs root (debootstrap, and buildah's chroot isolation without a user namespace)"
command -v buildah >/dev/null || skip "buildah is not installed (apt-get install buildah; .ci/setup installs it)"
command -v debootstrap >/dev/null ||
  skip "debootstrap is not installed (apt-get install debootstrap; .ci/setup installs it)"
[[ -f $src/Containerfile ]] || die "no Containerfile in $src"

# A storage of the test's own under its temp dir: whatever a failed build leaves there (working containers,
# stage images, overlay mounts) goes with it, and nobody else's images are touched.
work=$(mktemp -d "${TMPDIR:-/tmp}/ringtrain-container.XXXXXX")
store=(--root "$work/storage" --runroot "$work/run" --storage-driver overlay)
bh() { buildah "${store[@]}" "$@"; }
cleanup() {
  local rc=$?
  if [[ -d $work/storage ]]; then
    bh rm --all >/dev/null 2>&1 || true
    bh rmi --all --force >/dev/null 2>&1 || true
  fi
  # Mounts that a step stopped half-way can leave: debootstrap's /proc and /sys in the new root, buildah's
  # overlays. They go first so that rm cannot reach through them.
  findmnt -rn -o TARGET | grep -F "$work/" | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf --one-file-system "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
# set -e alone ends the script without a word: say which command failed.
trap 'echo "build_and_train.sh: FAIL: line $LINENO: $BASH_COMMAND (exit $?)" >&2' ERR
t_start=$SECONDS

echo "== a bare Debian 12 (debootstrap --variant=minbase bookworm, $mirror)"
t=$SECONDS
if ! timeout "$(left)" debootstrap --variant=minbase bookworm "$work/root" "$mirror" \
       >"$work/debootstrap.log" 2>&1; then
  tail -5 "$work/debootstrap.log"
  ((SECONDS < deadline)) || die "debootstrap ran past the budget"
  skip "debootstrap could not make a Debian 12 from $mirror (above): the archive is out of reach"
fi
t_root=$((SECONDS - t))

echo "== imported into buildah as the base"
t=$SECONDS
base=localhost/ringtrain-test-base:bookworm-minbase
ctr=$(bh from scratch)
mnt=$(bh mount "$ctr")
# debootstrap's downloaded packages, package lists and caches are of no use in an image whose builds update
# first.
tar -C "$work/root" --exclude='./var/cache/apt/archives/*.deb' --exclude='./var/cache/apt/*.bin' \
    --exclude='./var/lib/apt/lists/*' -cf - . |
  tar -C "$mnt" -xf -
bh umount "$ctr" >/dev/null
bh config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --cmd /bin/bash "$ctr"
bh commit --quiet --rm "$ctr" "$base" >/dev/null
rm -rf --one-file-system "$work/root"
t_import=$((SECONDS - t))

echo "== the image, built from $src (Containerfile; buildah bud --isolation chroot --pull=never)"
t=$SECONDS
image=localhost/ringtrain-test:latest
# The log goes to a file: its steps ("[stage/stages] STEP n/m: ...") are shown, and its end if the build fails.
steps='^(\[[0-9]+/[0-9]+\] )?STEP '
if ! timeout "$(left)" buildah "${store[@]}" bud --isolation chroot --pull=never --build-arg BASE="$base" \
       --build-arg DEBIAN_MIRROR="$mirror" -f "$src/Containerfile" -t "$image" "$src" \
       >"$work/build.log" 2>&1; then
  grep -E "$steps" "$work/build.log" || true
  echo "-- the end of the build's log:"
  tail -60 "$work/build.log"
  die "the image did not build (timed out if the budget of ${CONTAINER_BUDGET_S:-1500} s ran out:" \
      "$((SECONDS - t_start)) s)"
fi
grep -E "$steps" "$work/build.log" || true
t_build=$((SECONDS - t))
size=$(bh images --format '{{.Size}}' "$image")

echo "== in the image: Fashion-MNIST from Debian's package, then the mlp for 50 steps on 2 ranks (mpirun)"
t=$SECONDS
ctr=$(bh from --pull=never "$image")
# Open MPI refuses root unless told, and --oversubscribe lets 2 ranks start on a 1-core machine.
timeout "$(left)" buildah "${store[@]}" run --isolation chroot \
  --env OMPI_ALLOW_RUN_AS_ROOT=1 --env OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "$ctr" -- bash -c '
    set -euo pipefail
    ! command -v g++ && ! command -v cmake || { echo "the image holds the build stage'\''s compiler"; exit 1; }
    ringtrain prep --input /usr/share/datasets/fashion-mnist --out /tmp/fmnist --shards 4
    mpirun --oversubscribe -np 2 ringtrain train --data /tmp/fmnist --model mlp --epochs 1 --steps 50 \
      --batch 32 --save /tmp/mlp.h5
    [[ -s /tmp/mlp.h5 ]] || { echo "no model saved"; exit 1; }' 2>&1 | tee "$work/train.log" ||
  die "the run in the image failed (above)"
t_train=$((SECONDS - t))
grep -q 'x 2 ranks' "$work/train.log" || die "the run in the image was not one job of 2 ranks"
grep -q '^test  test_loss' "$work/train.log" || die "the run in the image did not finish (no test line)"

echo "PASS: container.build_and_train in $((SECONDS - t_start)) s: base root ${t_root} s (debootstrap)," \
     "import ${t_import} s, image build ${t_build} s, image ${size}," \
     "the job in the image (prep and training) ${t_train} s"
