#!/usr/bin/python3
"""--progress as a user sees it: a bar on a terminal, the lines of before anywhere else.

The terminal is a pseudo-terminal of a set size (python's pty module), read to the end; what stays on the
screen is, for each line, the text after its last carriage return with the erase-to-end-of-line escapes
(ESC [K) applied. Runs on synthetic data (the mlp, 1 thread):
  1. auto on a 120-column terminal: a bar, redrawn in place (carriage return, text, ESC [K) several times and
     at most 10 times a second, at most 119 characters wide, with a meter, the steps counting up to the
     epoch's, the running loss and accuracy, img/s and an ETA; a checkpoint's line mid-epoch (--checkpoint-every)
     erases the bar and stands alone; what stays on the screen is the header, the checkpoint lines, one line per
     epoch and the closing line, as --progress lines prints them without --log-every;
  2. auto on a 60-column terminal: no drawing wider than 59 characters (the meter left out, the text cut);
  3. auto into a pipe, as a log file under SLURM: no carriage return or escape, the --log-every step lines;
  4. --progress lines on the terminal: the step lines, no bar;
  5. --progress bar into a pipe: the bar all the same;
  6. --progress none with --log-every: neither step lines nor a bar, the epoch lines;
  7. mpirun -np 2 on the terminal: lines (Open MPI gives its ranks a pseudo-terminal of its own, also when its
     output goes to a file), and a bar when asked for;
  8. an error during training: the bar's last drawing stays, and the error line starts a line of its own.

usage: progress_terminal.py RINGTRAIN MPIRUN
"""
import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import tempfile
import termios
import time

ESC_K = "\x1b[K"
# The figures that fit, in this order, the last dropped first on a narrow terminal.
DRAWING = re.compile(r"^epoch (\d+)/(\d+)  (\d+)/(\d+)(  \[[=> ]+\])?(  loss \S+  accuracy \S+)?(  \S+ img/s)?"
                     r"(  ETA \d+:\d\d(:\d\d)?)?$")
EPOCH_LINE = re.compile(r"^epoch \d+/\d+  loss \S+  accuracy \S+  \d+ img/s  \d+\.\d s$")
STEP_LINE = re.compile(r"^  step \d+  loss \S+  accuracy \S+  \S+ img/s$")


def fail(message):
    print("FAIL: " + message)
    sys.exit(1)


def on_terminal(command, columns, env=None):
    """The bytes a terminal of `columns` columns receives from `command` (stdout and stderr), as text with the
    terminal's own line ends (\\r\\n, from each \\n) made \\n again; and the exit code."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=follower, stderr=follower, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: every writer has closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    code = process.wait(timeout=120)
    return re.sub(r"\r+\n", "\n", b"".join(chunks).decode()), code


def in_pipe(command, env=None):
    """stdout and stderr of `command`, byte for byte (no newline translation), and the exit code."""
    done = subprocess.run(command, capture_output=True, timeout=120, env=env)
    return (done.stdout + done.stderr).decode(), done.returncode


def screen(text):
    """What stays on the screen: each line's text after its last carriage return, erased where ESC [K says."""
    return [line.split("\r")[-1].replace(ESC_K, "") for line in text.split("\n")]


def drawings(text):
    """Every drawing of the bar: the text between a carriage return and its ESC [K (erasures left out)."""
    return [part.split(ESC_K)[0] for line in text.split("\n") for part in line.split("\r")[1:]
            if part.split(ESC_K)[0]]


def trained_seconds(text):
    match = re.search(r"^trained \d+ steps in ([\d.]+) s$", "\n".join(screen(text)), re.M)
    if not match:
        fail(f"no closing line:\n{text!r}")
    return float(match.group(1))


def check_bar(text, columns, what):
    """The drawings of a bar: well formed, counting up, at most `columns` - 1 wide. Returns them."""
    drawn = drawings(text)
    if not drawn:
        fail(f"{what}: no bar was drawn:\n{text!r}")
    last = (0, 0)
    for d in drawn:
        if len(d) > columns - 1:
            fail(f"{what}: a drawing of {len(d)} characters on a {columns}-column terminal: {d!r}")
        match = DRAWING.match(d)
        if not match:
            fail(f"{what}: a drawing that is not epoch E/N  S/T [meter]  loss ...  accuracy ...  R img/s  ETA m:ss: {d!r}")
        at = (int(match.group(1)), int(match.group(3)))
        if at < last or int(match.group(3)) > int(match.group(4)):
            fail(f"{what}: the bar went from epoch/step {last} to {at} of {match.group(4)}")
        last = at
    return drawn


def auto_on_a_wide_terminal(bin_, work):
    # 8000 samples, batch 32: 250 steps an epoch, a couple of seconds each on a loaded CPU.
    text, code = on_terminal([bin_, "train", "--data", "synthetic:1x28x28:10:8000", "--model", "mlp", "--batch", "32",
                              "--epochs", "2", "--checkpoint-dir", os.path.join(work, "ckpt"), "--checkpoint-every",
                              "100"], 120)
    if code != 0:
        fail(f"the run on a terminal exited {code}:\n{text}")
    drawn = check_bar(text, 120, "a 120-column terminal")
    full = [d for d in drawn if all(DRAWING.match(d).groups()[4:8])]
    if not full:
        fail(f"no drawing with the meter, the running loss, img/s and ETA: {drawn}")
    seconds = trained_seconds(text)
    if not 3 <= len(drawn) <= 10 * seconds + 2:
        fail(f"{len(drawn)} drawings in {seconds} s of training: not several, at most 10 a second")
    kept = [line for line in screen(text) if line]
    header, rest = kept[:3], kept[3:]
    if (not header[0].startswith("model ") or not header[1].startswith("  input ")
            or not header[2].startswith("  optimizer state ")):
        fail(f"the header is not on the screen: {kept}")
    checkpoints = [line for line in rest if line.startswith("  checkpoint ")]
    epochs = [line for line in rest if EPOCH_LINE.match(line)]
    if len(checkpoints) != 5 or len(epochs) != 2 or len(rest) != 8 or not rest[-1].startswith("trained 500 steps"):
        fail("the screen is not the header, the checkpoints at steps 100, 200, 300, 400 and 500 (each a line of its "
             f"own), 2 epoch lines and the closing line:\n" + "\n".join(kept))
    print(f"ok: auto on a terminal: {len(drawn)} drawings in {seconds} s, e.g. {full[-1]!r}; the screen keeps "
          f"{len(kept)} lines")


def auto_on_a_narrow_terminal(bin_):
    text, code = on_terminal([bin_, "train", "--data", "synthetic:1x28x28:10:4000", "--model", "mlp", "--batch", "32",
                              "--epochs", "1"], 60)
    if code != 0:
        fail(f"the run on a narrow terminal exited {code}:\n{text}")
    drawn = check_bar(text, 60, "a 60-column terminal")
    print(f"ok: a 60-column terminal: {len(drawn)} drawings, none wider than 59, e.g. {drawn[-1]!r}")


def lines_without_a_terminal(bin_):
    args = [bin_, "train", "--data", "synthetic:1x28x28:10:2000", "--model", "mlp", "--batch", "32", "--epochs", "1",
            "--log-every", "20"]
    text, code = in_pipe(args)
    if code != 0 or "\r" in text or "\x1b" in text:
        fail(f"auto into a pipe: a carriage return or an escape (exit {code}):\n{text!r}")
    steps = [line for line in text.splitlines() if STEP_LINE.match(line)]
    if len(steps) != 3:  # 62 steps: 20, 40, 60
        fail(f"auto into a pipe: {len(steps)} step lines, not 3:\n{text}")
    text, code = on_terminal(args + ["--progress", "lines"], 120)
    steps_on_terminal = [line for line in screen(text) if STEP_LINE.match(line)]
    if code != 0 or drawings(text) or len(steps_on_terminal) != 3:
        fail(f"--progress lines on a terminal: not the 3 step lines alone (exit {code}):\n{text!r}")
    text, code = in_pipe(args + ["--progress", "bar"])
    if code != 0 or not drawings(text) or any(STEP_LINE.match(line) for line in screen(text)):
        fail(f"--progress bar into a pipe: no bar, or step lines (exit {code}):\n{text!r}")
    text, code = on_terminal(args + ["--progress", "none"], 120)
    kept = screen(text)
    if code != 0 or drawings(text) or any(STEP_LINE.match(line) for line in kept) or \
            not any(EPOCH_LINE.match(line) for line in kept):
        fail(f"--progress none: a bar or step lines, or no epoch line (exit {code}):\n{text!r}")
    print("ok: lines into a pipe and with --progress lines; the bar when forced; neither with none")


def under_mpirun(bin_, mpirun):
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    args = [mpirun, "--oversubscribe", "-np", "2", bin_, "train", "--data", "synthetic:1x28x28:10:4000", "--model",
            "mlp", "--batch", "32", "--epochs", "1", "--log-every", "20"]
    text, code = on_terminal(args, 120, env)
    if code != 0 or drawings(text) or not any(STEP_LINE.match(line) for line in screen(text)):
        fail(f"mpirun on a terminal, auto: not lines (exit {code}):\n{text!r}")
    text, code = on_terminal(args + ["--progress", "bar"], 120, env)
    if code != 0:
        fail(f"mpirun --progress bar exited {code}:\n{text}")
    check_bar(text, 120, "mpirun --progress bar")
    print("ok: under mpirun: lines, and the bar when asked for")


def error_after_the_bar(bin_, work):
    # Samples so large that the first step's gradient is not finite: the run stops with an error, after the
    # bar's first drawing (0 of N steps, before the first step).
    import h5py
    import numpy as np
    with h5py.File(os.path.join(work, "train-00000.h5"), "w") as f:
        f["x"], f["y"] = np.full((256, 64), 3e38, np.float32), np.arange(256, dtype=np.int64) % 2
        f.attrs["format"] = "ringtrain-shard-1"
        f.attrs["num_classes"] = 2
    text, code = on_terminal([bin_, "train", "--train", os.path.join(work, "train-00000.h5"), "--model",
                              "linear(out)", "--batch", "8", "--epochs", "1"], 120)
    kept = [line for line in screen(text) if line]
    errors = [line for line in kept if "ringtrain: error:" in line]
    if code == 0 or len(errors) != 1 or not errors[0].startswith("ringtrain: error:") or not drawings(text):
        fail(f"an error after the bar: not a line of its own after a drawing (exit {code}):\n{text!r}")
    print(f"ok: an error's line after the bar's: {kept[-2]!r} / {errors[0][:80]!r}...")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    bin_, mpirun = sys.argv[1:]
    with tempfile.TemporaryDirectory() as work:
        auto_on_a_wide_terminal(bin_, work)
        auto_on_a_narrow_terminal(bin_)
        lines_without_a_terminal(bin_)
        under_mpirun(bin_, mpirun)
        error_after_the_bar(bin_, work)
    print("PASS")


if __name__ == "__main__":
    main()
