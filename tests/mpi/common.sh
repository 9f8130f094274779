# Shared by the CLI test scripts under mpirun (sourced, after they set bin and mpirun).

fail() { echo "FAIL: $*"; exit 1; }

# make_test_dir: a temporary directory in $dir, removed at exit with any ringtrain still running on it (a test
# that failed midway may leave a job behind).
make_test_dir() {
  dir=$(mktemp -d)
  trap 'pkill -KILL -f "$dir" 2>/dev/null; rm -rf "$dir"' EXIT
}

# write_shards DIR NAME:SAMPLES...: 3-class shards of [1, 4, 4] samples (the class shifts the mean), in the
# ringtrain shard format, e.g. write_shards "$dir" train-00000.h5:200 test-00000.h5:100.
write_shards() {
  /usr/bin/python3 - "$@" <<'PY' || fail "could not write the test shards"
import os, sys, h5py, numpy as np
rng = np.random.default_rng(0)
for item in sys.argv[2:]:
    name, n = item.split(":")
    path = os.path.join(sys.argv[1], name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    y = rng.integers(0, 3, int(n))
    x = (rng.normal(size=(int(n), 1, 4, 4)) + y[:, None, None, None]).astype(np.float32)
    with h5py.File(path, "w") as f:
        f["x"] = x; f["y"] = y.astype(np.int64)
        f.attrs["format"] = "ringtrain-shard-1"; f.attrs["num_classes"] = 3
PY
}

# expect_error RANKS MESSAGE RINGTRAIN_ARGS...: the job fails (not by timeout) with exactly one error line,
# which starts with MESSAGE: one rank says it, and every rank exits.
expect_error() {
  local ranks=$1 message=$2
  shift 2
  timeout 120 "$mpirun" --oversubscribe -np "$ranks" "$bin" "$@" >"$dir/out" 2>"$dir/err"
  local rc=$?
  [[ $rc != 0 && $rc != 124 ]] || fail "$*: exit code $rc (124 = hang)"
  local errors
  errors=$(grep -c '^ringtrain: error:' "$dir/err")
  [[ $errors == 1 ]] || fail "$*: expected one error line, got $errors: $(cat "$dir/err")"
  grep -q "^ringtrain: error: $message" "$dir/err" || fail "$*: unexpected error: $(cat "$dir/err")"
}

# pid_of RANK: the running ringtrain process (of this test's $dir) with that MPI rank, as its launcher set
# OMPI_COMM_WORLD_RANK.
pid_of() {
  local p
  for p in $(pgrep -f "$bin train --data $dir"); do
    [[ $(cat "/proc/$p/comm" 2>/dev/null) == ringtrain ]] || continue  # not a shell that wraps it
    if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$1"; then echo "$p"; return; fi
  done
}

# as_written_before_positions CHECKPOINT: the checkpoint as ringtrain wrote it before it recorded the global
# sample position (pass_sample, replicas, global_batch taken out, the seal made again over the rest).
as_written_before_positions() {
  /usr/bin/python3 - "$1" <<'PY' || fail "could not make a checkpoint of the old kind"
import sys, zlib, h5py
path = sys.argv[1]
with h5py.File(path, "r+") as f:
    for name in ("pass_sample", "replicas", "global_batch"):
        del f.attrs[name]
raw = bytearray(open(path, "rb").read())
seal = b"ringtrain-seal-1 crc32=%08x bytes=%d\n" % (zlib.crc32(bytes(raw[512:])), len(raw) - 512)
raw[:512] = seal + bytes(512 - len(seal))
open(path, "wb").write(raw)
PY
}

# run NP NAME ARGS...: a job of "${base[@]}" ARGS on NP ranks that must succeed (the caller sets the array
# base); its output in $dir/NAME.out and $dir/NAME.err.
run() {
  local np=$1 name=$2
  shift 2
  timeout 120 "$mpirun" --oversubscribe -np "$np" "$bin" "${base[@]}" "$@" >"$dir/$name.out" 2>"$dir/$name.err" ||
    fail "$name: exit $?: $(cat "$dir/$name.err")"
}
