#!/usr/bin/python3
"""ringtrain's TensorBoard event files (--tensorboard DIR), decoded with the protobuf library itself.

TensorBoard is not packaged in Debian 12, so this reads the files as TensorBoard would: TensorFlow's event.proto
and summary.proto (tests/, cut to the fields ringtrain writes) compiled by protoc at test time into Python
classes (python3-protobuf), and the TFRecord framing checked with a CRC-32C computed here, apart from
ringtrain's. Two runs on a small dataset made here:
  1. one rank, --log-every 4 --progress lines --metrics: one file, named as TensorFlow names them, its first
     event file_version "brain.Event:2"; every record's two masked CRCs; a step/ point at every 4th step whose
     loss, accuracy and img/s are the step line's and whose lr is the run's; an epoch/ point at each epoch's
     last step equal to the --metrics CSV's row;
  2. two ranks under mpirun, --tensorboard DIR-%j without --log-every: only rank 0 writes, into the directory
     %j names; a step point at every step (about 100 an epoch: here an epoch is 16 steps); epoch points equal
     that run's CSV; and a rank without --tensorboard beside one with it is an error, not a hang;
  3. a run resumed from a checkpoint: a file of its own, starting with session_log START one step past the
     checkpoint, so that TensorBoard (which then drops the earlier files' points from that step on) shows
     every step once.

usage: tensorboard_events.py RINGTRAIN MPIRUN       the test
       tensorboard_events.py --print DIR            every scalar of the event files in DIR (tag, step, value)
"""
import csv
import glob
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
FILE_NAME = re.compile(r"^events\.out\.tfevents\.(\d{10})\.(.+)\.(\d+)\.(\d+)$")
STEP_LINE = re.compile(r"^  step (\d+)  loss (\S+)  accuracy (\S+)  (\S+) img/s$")


def fail(message):
    print("FAIL: " + message)
    sys.exit(1)


def crc32c(data):
    """CRC-32C (Castagnoli), bit by bit over a table: reflected polynomial 0x82F63B78."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = CRC_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def crc_table():
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


CRC_TABLE = crc_table()


def masked(crc):
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def compile_protos(out_dir):
    """event_pb2 and summary_pb2 from tests/*.proto, made by protoc now."""
    subprocess.run(["protoc", "-I", HERE, "--python_out=" + out_dir, os.path.join(HERE, "event.proto"),
                    os.path.join(HERE, "summary.proto")], check=True)
    sys.path.insert(0, out_dir)
    import event_pb2  # noqa: E402 (made just above)
    return event_pb2


def records(path):
    """The data of each TFRecord in the file, every length and data CRC checked."""
    raw = open(path, "rb").read()
    at, out = 0, []
    while at < len(raw):
        if len(raw) - at < 12:
            fail(f"{path}: {len(raw) - at} stray bytes at offset {at}")
        length_bytes = raw[at:at + 8]
        (length,) = struct.unpack("<Q", length_bytes)
        (length_crc,) = struct.unpack("<I", raw[at + 8:at + 12])
        if length_crc != masked(crc32c(length_bytes)):
            fail(f"{path}: the length's CRC at offset {at} is {length_crc:#x}, not {masked(crc32c(length_bytes)):#x}")
        data = raw[at + 12:at + 12 + length]
        (data_crc,) = struct.unpack("<I", raw[at + 12 + length:at + 16 + length])
        if data_crc != masked(crc32c(data)):
            fail(f"{path}: the data's CRC at offset {at} is {data_crc:#x}, not {masked(crc32c(data)):#x}")
        out.append(data)
        at += 16 + length
    return out


def read_events(event_pb2, path, starts=None):
    """file_version, and {tag: {step: value}}; a resumed run's session_log START steps go into `starts`
    (refused where it is None), each before any summary."""
    events = []
    for data in records(path):
        event = event_pb2.Event()
        event.ParseFromString(data)
        events.append(event)
    if not events or events[0].file_version != "brain.Event:2":
        fail(f"{path}: the first event is not file_version 'brain.Event:2': {events[:1]}")
    scalars = {}
    for event in events[1:]:
        if event.WhichOneof("what") == "session_log" and starts is not None and not scalars:
            if event.session_log.status != event_pb2.SessionLog.START:
                fail(f"{path}: a session_log that is not START: {event}")
            starts.append(event.step)
            continue
        if event.WhichOneof("what") != "summary":
            fail(f"{path}: an event that is not a summary: {event}")
        if not 1.5e9 < event.wall_time < 4e9:
            fail(f"{path}: wall_time {event.wall_time} is not a time of our era")
        for value in event.summary.value:
            if value.WhichOneof("value") != "simple_value":
                fail(f"{path}: {value.tag} is not a simple_value")
            scalars.setdefault(value.tag, {})[event.step] = value.simple_value
    return scalars


def close(got, want, digits_tolerance=0.0, what=""):
    """A float32 value against the run's text of it: equal to float precision and the text's rounding."""
    if abs(got - want) > digits_tolerance + 2e-6 * max(abs(want), 1e-3) + 1e-7:
        fail(f"{what}: {got} in the event file, {want} in the run's output")


def one_event_file(tb_dir):
    files = os.listdir(tb_dir)
    if len(files) != 1:
        fail(f"{tb_dir} holds {files}, not one event file")
    match = FILE_NAME.match(files[0])
    if not match or match.group(2) != socket.gethostname():
        fail(f"{files[0]} is not named events.out.tfevents.<time>.{socket.gethostname()}.<pid>.<n>")
    return os.path.join(tb_dir, files[0])


def check_epochs(scalars, metrics_csv):
    rows = list(csv.DictReader(open(metrics_csv)))
    if not rows:
        fail(f"{metrics_csv} has no rows")
    epoch_steps = sorted(scalars.get("epoch/loss", {}))
    if epoch_steps != [int(r["step"]) for r in rows]:
        fail(f"epoch points at steps {epoch_steps}, the CSV's epochs end at {[r['step'] for r in rows]}")
    columns = {"epoch/loss": "train_loss", "epoch/accuracy": "train_accuracy", "epoch/val_loss": "val_loss",
               "epoch/val_accuracy": "val_accuracy", "epoch/lr": "lr", "epoch/img_per_s": "images_per_s",
               "epoch/seconds": "epoch_seconds"}
    for tag, column in columns.items():
        for row in rows:
            # The CSV has 6 significant digits.
            want = float(row[column])
            close(scalars[tag][int(row["step"])], want, 6e-6 * abs(want), f"{tag} at step {row['step']}")
    return rows


def make_data(root):
    import h5py
    import numpy as np
    rng = np.random.default_rng(1)
    for split, n in (("train", 512), ("val", 128)):
        y = rng.integers(0, 3, n)
        x = (rng.normal(size=(n, 1, 4, 4)) + y[:, None, None, None]).astype(np.float32)
        with h5py.File(os.path.join(root, f"{split}-00000.h5"), "w") as f:
            f["x"], f["y"] = x, y.astype(np.int64)
            f.attrs["format"] = "ringtrain-shard-1"
            f.attrs["num_classes"] = 3


def run(command, what):
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        fail(f"{what} exited {done.returncode}: {done.stderr}")
    return done.stdout


def one_rank(bin_, event_pb2, work):
    tb = os.path.join(work, "tb", "one")
    out = run([bin_, "train", "--data", work, "--model", "flatten,linear(16),relu,linear(out)", "--batch", "16",
               "--epochs", "2", "--lr", "0.05", "--log-every", "4", "--progress", "lines", "--tensorboard", tb,
               "--metrics", os.path.join(work, "one.csv")], "the one-rank run")
    scalars = read_events(event_pb2, one_event_file(tb))
    lines = [STEP_LINE.match(line) for line in out.splitlines() if line.startswith("  step ")]
    if len(lines) != 16 or not all(lines):
        fail(f"expected 16 step lines (2 epochs of 32 steps, every 4th):\n{out}")
    steps = [int(m.group(1)) for m in lines]
    for tag in ("step/loss", "step/accuracy", "step/lr", "step/img_per_s"):
        if sorted(scalars.get(tag, {})) != steps:
            fail(f"{tag} at steps {sorted(scalars.get(tag, {}))}, the step lines at {steps}")
    for m in lines:
        step = int(m.group(1))
        close(scalars["step/loss"][step], float(m.group(2)), 5e-5, f"step/loss at step {step}")
        close(scalars["step/accuracy"][step], float(m.group(3)), 5e-5, f"step/accuracy at step {step}")
        rate = float(m.group(4))
        close(scalars["step/img_per_s"][step], rate, 0.05 if "." in m.group(4) else 0.5, f"step/img_per_s at {step}")
        close(scalars["step/lr"][step], 0.05, 0.0, f"step/lr at step {step}")
    check_epochs(scalars, os.path.join(work, "one.csv"))
    print(f"ok: one rank: {len(steps)} step points and 2 epoch points match the step lines and the CSV")


def two_ranks(bin_, mpirun, event_pb2, work):
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    env.pop("SLURM_JOB_ID", None)  # %j: the id ringtrain makes outside SLURM
    done = subprocess.run([mpirun, "--oversubscribe", "-np", "2", bin_, "train", "--data", work, "--model",
                           "flatten,linear(16),relu,linear(out)", "--batch", "16", "--epochs", "2", "--tensorboard",
                           os.path.join(work, "tb", "two-%j"), "--metrics", os.path.join(work, "two.csv")],
                          capture_output=True, text=True, timeout=120, env=env)
    if done.returncode != 0:
        fail(f"the two-rank run exited {done.returncode}: {done.stderr}")
    dirs = glob.glob(os.path.join(work, "tb", "two-*"))
    if len(dirs) != 1 or "%j" in dirs[0] or not os.path.basename(dirs[0]).startswith("two-local-"):
        fail(f"--tensorboard two-%j made {dirs}, not one directory named by the job id")
    scalars = read_events(event_pb2, one_event_file(dirs[0]))
    if sorted(scalars.get("step/loss", {})) != list(range(1, 33)):
        fail(f"2 epochs of 16 steps: step points at {sorted(scalars.get('step/loss', {}))}, not every step")
    check_epochs(scalars, os.path.join(work, "two.csv"))
    # Ranks that disagree would sum their scores at different steps (a hang): one error instead.
    common = [bin_, "train", "--data", work, "--model", "flatten,linear(16),relu,linear(out)", "--batch", "16"]
    done = subprocess.run([mpirun, "--oversubscribe", "-np", "1"] + common + ["--tensorboard", os.path.join(work, "x")] +
                          [":", "-np", "1"] + common, capture_output=True, text=True, timeout=60, env=env)
    if done.returncode == 0 or "ranks disagree on TensorBoard: rank 0 has 'on', rank 1 has 'off'" not in done.stderr:
        fail(f"ranks with and without --tensorboard: exit {done.returncode}, {done.stderr}")
    print("ok: two ranks: rank 0's one file, a step point at every step, epoch points match the CSV; ranks that "
          "disagree are an error")


def resumed(bin_, event_pb2, work):
    """A run resumed from its step-40 checkpoint: its own file, which starts with session_log START at step 41
    (TensorBoard then drops the first file's points from 41 on) and holds points after step 40 only; the two
    files, read as TensorBoard reads them, give every step once."""
    tb, ckpt = os.path.join(work, "tb", "resumed"), os.path.join(work, "ckpt")
    common = [bin_, "train", "--data", work, "--model", "flatten,linear(16),relu,linear(out)", "--batch", "16",
              "--epochs", "2", "--log-every", "4", "--progress", "lines", "--tensorboard", tb]
    run(common + ["--checkpoint-dir", ckpt, "--checkpoint-every", "8", "--keep-checkpoints", "10"], "the first run")
    first = one_event_file(tb)
    # Its checkpoints go elsewhere: the first run's newer ones would mix two histories (ringtrain refuses).
    run(common + ["--resume", os.path.join(ckpt, "step-000000000040.h5"), "--checkpoint-dir", ckpt + "-resumed"],
        "the resumed run")
    files = [os.path.join(tb, f) for f in os.listdir(tb)]
    if len(files) != 2:
        fail(f"{tb} holds {files}, not the first run's file and the resumed run's")
    second = [f for f in files if f != first][0]
    starts_first, starts = [], []
    before = read_events(event_pb2, first, starts_first)
    after = read_events(event_pb2, second, starts)
    if starts_first or starts != [41]:
        fail(f"session_log START in the first file at {starts_first}, in the resumed run's at {starts}, not [] and [41]")
    if min(min(points) for points in after.values()) <= 40:
        fail(f"the resumed run's file holds points at or before its checkpoint's step 40: {after}")
    for tag, points in before.items():
        merged = sorted([s for s in points if s < 41] + list(after.get(tag, {})))
        if merged != sorted(points):
            fail(f"{tag}: TensorBoard would show steps {merged}, the uninterrupted run has {sorted(points)}")
    print("ok: a resumed run: its own file, START at step 41, every step shown once")


def print_scalars(tb_dir, work):
    event_pb2 = compile_protos(work)
    for path in sorted(glob.glob(os.path.join(tb_dir, "events.out.tfevents.*"))):
        print(path)
        for tag, points in sorted(read_events(event_pb2, path).items()):
            for step, value in sorted(points.items()):
                print(f"  {tag}  step {step}  {value:.6g}")


def main():
    with tempfile.TemporaryDirectory() as work:
        if len(sys.argv) == 3 and sys.argv[1] == "--print":
            return print_scalars(sys.argv[2], work)
        if len(sys.argv) != 3:
            sys.exit(__doc__)
        bin_, mpirun = sys.argv[1:]
        if crc32c(b"123456789") != 0xE3069283:
            fail("this test's own CRC-32C misses the check value")
        event_pb2 = compile_protos(work)
        make_data(work)
        one_rank(bin_, event_pb2, work)
        two_ranks(bin_, mpirun, event_pb2, work)
        resumed(bin_, event_pb2, work)
    print("PASS")


if __name__ == "__main__":
    main()
