#!/usr/bin/python3
"""Property test of `ringtrain train`: random settings, within and beyond their types, must end cleanly.

Each run draws up to five train flags from FLAGS below, each with a value that is valid, on a boundary (0, 1,
-1, the type's min/max), beyond a range (1e308, 1e-50, inf, nan), of the wrong type ("abc", "", "1.5" for an
integer), huge (5000 characters), carries a control character, or for path flags names /dev/null, /proc, a
directory, a missing file, a symbolic link, or the dataset's own shard. Most runs draw from one GROUP of flags
that act on each other, and half of them favour valid values, so that settings meet past the parser. Runs
alternate between one process and `mpirun -np 2`. Whatever the settings, every run must (one function each, check_* below):
  - end within TIMEOUT_S, with no process left running;
  - not be killed by a signal (no rank either: mpirun's report of one);
  - exit 0, or 1 or 2 with exactly one "ringtrain: error:" line on stderr (none on success);
  - print that error line as a single printable line (no control characters but tab, not split by one);
  - create nothing in the fixture directory except at a path an output flag named (--save, --metrics,
    --save-best, --timeline, --checkpoint-dir, --stage-to, --tensorboard, --run-dir, directly or through --config), change no
    existing file that no output flag named, and never change the dataset's shards.
Why: users and schedulers pass settings by hand, by script and by config file; a wrong one must be an error
that says so, not a crash, a hang, a garbled message or a file written somewhere else.

usage: /usr/bin/python3 tests/property_settings.py RINGTRAIN MPIRUN [--runs N] [--seed S] [--only I] [--keep]
                                                    [--verbose]
Deterministic for a seed (defaults: 60 runs, seed 0; about 50 s on 2 cores). --only I runs just the I-th draw
of that seed (to reproduce a violation); --keep keeps the fixture; --verbose prints every run.
Each run is limited to MEMORY_LIMIT bytes of address space so that a huge setting cannot exhaust the machine.
"""
import argparse
import hashlib
import os
import random
import re
import resource
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

TIMEOUT_S = 60
MEMORY_LIMIT = 4 << 30  # RLIMIT_AS per process
MAX_FLAGS = 5
BASE_FLAGS = {"--epochs": "1", "--batch": "8", "--model": "flatten,linear(8),relu,linear(out)", "--device": "cpu"}
OUTPUT_FILE_FLAGS = {"--save", "--metrics", "--timeline", "--save-best"}
OUTPUT_DIR_FLAGS = {"--checkpoint-dir", "--stage-to", "--tensorboard", "--run-dir"}
SIGNAL_TEXT = ("exited on signal", "Segmentation fault", "core dumped", "terminate called", "Aborted")
ERROR_PREFIX = "ringtrain: error:"

# ---------------------------------------------------------------------------------------------------------------
# Values. Each pool is a list of strings; a generator draws a pool by weight, then a value from it.

INT_BOUNDARY = ["0", "1", "-1", "2147483647", "-2147483648", "2147483648", "4294967296", "9223372036854775807",
                "-9223372036854775808", "9223372036854775808", "18446744073709551616"]
FLOAT_BOUNDARY = ["0", "1", "-1", "3.4028235e38", "1.1754944e-38", "2147483647", "9223372036854775807",
                  "-9223372036854775808"]
BEYOND = ["1e308", "1e-50", "-1e30", "inf", "-inf", "nan", "-nan", "-0", "1e309", "3.5e38", "1e-39"]
WRONG_INT = ["abc", "", "1.5", "0x10", "1e3", " 1", "1 ", "+1", "--1", "1,2", "\u0663"]
WRONG_FLOAT = ["abc", "", "0x10", "1e", ".", "1.5.5", " 1", "1 ", "1,5", "infinity!", "0x1p-200"]
HUGE = ["9" * 5000, "A" * 5000, "1" + "0" * 4999, "0." + "0" * 4997 + "1"]
CONTROL = ["1\nINJECTED-LINE", "\x1b[31m1", "1\r", "1\x7f", "1\tx", "1\x08"]
JUNK_WORDS = ["", "abc", "A" * 5000, "x\nINJECTED-LINE", "\x1b[2Jx", "%value%", "%canonical_option%"]


class Draw:
    """What a value generator draws with: the random source, the fixture, and how much to favour the first
    (valid) pool: a run that draws mostly valid values reaches training, where the settings meet each other."""

    def __init__(self, rng, fx, valid_boost=1):
        self.rng, self.fx, self.valid_boost = rng, fx, valid_boost


def pools(d, weighted):
    """weighted: [(weight, list of values)], the valid values first -> one value."""
    rng = d.rng
    weighted = [(weighted[0][0] * d.valid_boost, weighted[0][1])] + list(weighted[1:])
    total = sum(w for w, values in weighted if values)
    pick = rng.uniform(0, total)
    for w, values in weighted:
        if not values:
            continue
        if pick <= w:
            return rng.choice(values)
        pick -= w
    return rng.choice(weighted[-1][1])


def integer(*valid, boundary=()):
    """An integer flag: mostly small valid values, then boundaries, floats, wrong types, huge, control."""
    return lambda d: pools(d, [(50, [str(v) for v in valid]), (20, INT_BOUNDARY + list(boundary)),
                                       (8, BEYOND), (10, WRONG_INT), (6, HUGE), (6, CONTROL)])


def real(*valid, boundary=FLOAT_BOUNDARY):
    """A float flag (boundary: pass a list without valid but slow values where a large one would be long)."""
    return lambda d: pools(d, [(50, [str(v) for v in valid]), (15, list(boundary)), (15, BEYOND),
                                       (8, WRONG_FLOAT), (6, HUGE), (6, CONTROL)])


def choice(*valid, junk=()):
    return lambda d: pools(d, [(60, list(valid)), (40, JUNK_WORDS + list(junk))])


def switch(d):
    """A flag without a value; now and then given one anyway (as --flag=1, or as a stray word after it)."""
    return pools(d, [(80, [None]), (10, ["=1", "=abc"]), (10, [["1"], ["abc"]])])


def path(*extra):
    """A path flag: the fixture's paths, devices, /proc, missing, huge, relative, plus this flag's own names."""
    def generate(d):
        return pools(d, [(40, [d.fx.p(name) for name in extra]), (60, d.fx.common_paths())])
    return generate


def model(d):
    valid = ["flatten,linear(8),relu,linear(out)", "linreg", "mlp", "cnn", "flatten,linear(out)", "linear(out)",
             "flatten,linear(4),tanh,dropout(0.5),linear(out)", "conv(2,3,pad=1),relu,maxpool(2),flatten,linear(out)",
             "batchnorm,flatten,linear(out)", "flatten,linear(8),sigmoid,linear(8),relu,linear(out)"]
    bad = ["", ",", ",,,", "flatten,,linear(out)", "linear(out", "nosuchlayer", "flatten,linear(0),linear(out)",
           "flatten,linear(-1),linear(out)", "flatten,linear(2147483648),linear(out)",
           "flatten,linear(99999999999999999999),linear(out)", "flatten,linear(1e3),linear(out)",
           "flatten,linear(8)", "dropout(nan),flatten,linear(out)", "dropout(1),flatten,linear(out)",
           "maxpool(5),flatten,linear(out)", "maxpool(0),flatten,linear(out)", "conv(1,9),flatten,linear(out)",
           "conv(1,1,stride=0),flatten,linear(out)", "conv(2147483647,1),flatten,linear(out)",
           "avgpool(2147483647),flatten,linear(out)", "batchnorm(eps=0),flatten,linear(out)",
           "flatten,linear(out,bias=2)", "flatten,linear(out,out=3)", "relu", "flatten,linear(8),relu,linear(out)x"]
    return pools(d, [(50, valid), (35, bad), (15, JUNK_WORDS + HUGE + CONTROL)])


def split(d):
    return pools(d, [(50, ["1", "2", "3", "1,2", "1,2,3"]),
                       (50, ["0", "4", "3,1", "1,1", "", ",", "1,,2", "-1", "a,b", "99999999999", "1 ,2", "2147483647",
                             "1" * 5000, "," * 5000] + CONTROL)])


def freeze(d):
    """--freeze: layer names, globs and index ranges of BASE_FLAGS' model (flatten1, linear1, relu1, linear2)."""
    return pools(d, [(50, ["0", "1", ":2", "linear1", "relu?", "0-1", "2:", "linear1,relu1", "flatten*"]),
                     (35, ["", ",", "3-1", "4", "99999999999", "conv*", "1:x", "linear1,,relu1", "-1", ":", "0:0",
                           "linear*", "1-", "[", "*"]),
                     (15, JUNK_WORDS + HUGE + CONTROL)])


# The flags of `ringtrain train --help`, each with its value generator ("@x": the fixture's path x).
FLAGS = {
    "--model": model,
    "--data": path("@data", "@data", "@data/", "@empty", "@adir", "@data/train-00000.h5"),
    "--train": path("@data/train-00000.h5", "@data", "@data/train-*.h5", "@data/*.h5", "@data/nomatch-*.h5",
                    "@data/test-00000.h5", "@ckpt/step-000000000016.h5"),
    "--val": path("@data/val-00000.h5", "@data", "@data/train-00000.h5", "@data/nomatch-*.h5"),
    "--test": path("@data/test-00000.h5", "@data", "@data/test-*.h5", "@data/nomatch-*.h5"),
    "--shuffle-window": integer(0, 1, 2, 1000),
    "--prefetch": integer(0, 1, 4, 1024, boundary=["1025"]),
    "--batch": integer(1, 4, 8, 16, 32, 128, 129, 1000, boundary=["16777216", "16777217"]),
    "--epochs": integer(1, 1, 2, boundary=["1000001"]),
    "--steps": integer(0, 1, 3, 20),
    "--threads": integer(1, 2, 3, boundary=["4097"]),
    "--seed": integer(0, 1, 42, "18446744073709551615", "18446744073709551616"),
    "--metrics": path("@out/metrics.csv", "@out/metrics-%j.csv", "metrics.csv", "@data/val-00000.h5"),
    "--save": path("@out/model.h5", "@out/model-%j.h5", "model.h5", "@out/model.h5", "@data/train-00000.h5",
                   "@links/to-shard.h5"),
    "--log-every": integer(0, 1, 5),
    "--progress": choice("auto", "bar", "lines", "none", junk=["Bar", "fancy", "bar,lines"]),
    "--tensorboard": path("@out/tb", "@out/tb-%j", "@out/new/tb", "@adir", "tb", "@data/test-00000.h5"),
    "--optimizer": choice("sgd", "adam", "adamw", "rmsprop", junk=["SGD", "sgd ", "sgd,adam", "adam-w"]),
    "--lr": real(0.05, 0.01, 0.5, 10, 1e30),
    "--momentum": real(0, 0.5, 0.9, 0.99),
    "--nesterov": switch,
    "--weight-decay": real(0, 1e-4, 0.5, 1e30),
    "--clip-grad-norm": real(0, 0.5, 1, 1e30),
    "--beta1": real(0, 0.5, 0.9),
    "--beta2": real(0, 0.9, 0.999, 0.9999999),
    "--eps": real(1e-8, 1e-3, 1),
    "--alpha": real(0, 0.5, 0.99),
    "--lr-schedule": choice("constant", "step", "cosine", junk=["Cosine", "linear"]),
    "--warmup-epochs": real(0, 0.5, 1, 3, boundary=FLOAT_BOUNDARY + ["1000000", "1000001"]),
    "--lr-step-epochs": real(1, 0.5, 1e-6, 3, boundary=FLOAT_BOUNDARY + ["1000000", "1000001"]),
    "--lr-gamma": real(0.1, 0.5, 1),
    "--lr-min": real(0, 0.001, 0.04),
    "--lr-scaling": choice("none", "linear", junk=["sqrt", "Linear"]),
    "--device": choice("cpu", "cpu", "auto", "cuda", junk=["gpu", "cuda:0", "tpu"]),
    "--gpu": integer(-1, 0, 1, 7),
    "--precision": choice("fp32", "tf32", "bf16", junk=["fp16", "fp64"]),
    "--allreduce": choice("ring", "mpi", junk=["nccl", "tree"]),
    "--mode": choice("sync", "ps", junk=["async", "PS"]),
    "--fusion-mb": real(64, 1e-6, 0.0001, 1, 1048576, boundary=FLOAT_BOUNDARY + ["1048577", "9.5e-7"]),
    # no valid value above 20 ms: a cycle of 10 s (the maximum) is legitimately slow
    "--cycle-ms": real(0.1, 1, 5, 20, boundary=["0", "-1", "10001", "2147483647", "1e-50"]),
    "--stall-warn-s": real(0, 0.001, 60, boundary=FLOAT_BOUNDARY + ["1000000", "1000001"]),
    "--timeline": path("@out/timeline.json", "@out/timeline-%j.json", "timeline.json", "@data/test-00000.h5"),
    "--pipeline-stages": integer(1, 2, 3, 4, 5),
    "--micro-batches": integer(1, 2, 3, 4, 8),
    "--schedule": choice("gpipe", "1f1b", junk=["GPipe", "2f2b"]),
    "--split": split,
    "--stage-to": path("none", "none", "@out/stage", "@out/stage-%n", "@out/deep/er/stage", "@data", "@adir"),
    "--ps-servers": integer(1, 2),
    "--staleness": integer(0, 1, 3, 1000),
    "--ps-timeout-s": real(1, 5, 30, boundary=FLOAT_BOUNDARY + ["1000000", "1000001"]),
    "--straggler-rank": integer(-1, 0, 1, 2),
    # no valid value above 50 ms: an hour a step (the maximum) is legitimately slow
    "--straggler-ms": real(0, 1, 10, 50, boundary=["0", "-1", "-0", "3600001", "2147483647", "1e-50"]),
    "--checkpoint-dir": path("@out/ckpt", "@out/ckpt-%j", "@out/new/ckpt", "@ckpt", "@ckpt-other", "ckpt"),
    "--checkpoint-every": integer(0, 1, 5),
    "--keep-checkpoints": integer(1, 2, 3, 1000000, boundary=["1000001"]),
    "--resume": path("auto", "auto", "auto", "@ckpt/step-000000000016.h5", "@ckpt-other/step-000000000016.h5",
                     "@ckpt"),
    "--skip-nonfinite": switch,
    "--shard-optimizer": switch,
    "--run-dir": path("@out/run", "@out/run-%j", "run", "@out/new/run", "@ckpt", "@data/train-00000.h5"),
    "--peer-timeout-s": real(0, 0.5, 10, boundary=FLOAT_BOUNDARY + ["1000000", "1000001"]),
    "--early-stop-patience": integer(1, 2, 3, boundary=["1000000", "1000001"]),
    "--monitor": choice("val_loss", "val_accuracy", "val_mae", junk=["loss", "val_acc", "VAL_LOSS"]),
    "--min-delta": real(0, 0.001, 0.1, 10),
    "--save-best": path("@out/best.h5", "@out/best-%j.h5", "best.h5", "@out/model.h5", "@data/val-00000.h5"),
    "--l1": real(0, 1e-5, 1e-3, 1e30),
    "--label-smoothing": real(0, 0.1, 0.5, boundary=FLOAT_BOUNDARY + ["1", "0.9999999"]),
    "--init-from": path("@ckpt/step-000000000016.h5", "@ckpt-other/step-000000000016.h5", "@data/train-00000.h5"),
    "--freeze": freeze,
    "--augment": choice("crop:1,flip", "flip", "crop:2", "none", "crop:4", "flip,crop:1",
                        junk=["crop", "crop:0", "crop:-1", "rotate", "flip,flip", "crop:99999", "crop:1,,flip",
                              "crop:1e3", "crop: 1"]),
    "--reset-head": switch,
    "--config": path("@cfg/good.ini", "@cfg/outputs.ini", "@cfg/junk.ini", "@cfg/unknown.ini", "@cfg/badvalue.ini",
                     "@cfg/control.ini", "@cfg/placeholder.ini", "@cfg/huge.ini", "@cfg/dup.ini", "@cfg/empty.ini",
                     "@cfg/nested.ini", "@cfg/section.ini"),
}

# Flags whose settings act on each other.
GROUPS = {
    "files": ["--data", "--train", "--val", "--test", "--save", "--metrics", "--timeline", "--checkpoint-dir",
              "--checkpoint-every", "--keep-checkpoints", "--resume", "--stage-to", "--config", "--tensorboard",
              "--run-dir", "--save-best"],
    "parallel": ["--mode", "--pipeline-stages", "--micro-batches", "--schedule", "--split", "--ps-servers",
                 "--staleness", "--ps-timeout-s", "--allreduce", "--fusion-mb", "--cycle-ms", "--straggler-rank",
                 "--straggler-ms", "--peer-timeout-s", "--batch", "--steps", "--threads", "--prefetch", "--augment",
                 "--shard-optimizer"],
    "finetune": ["--init-from", "--freeze", "--reset-head", "--resume", "--model", "--save", "--checkpoint-dir",
                 "--optimizer", "--weight-decay", "--pipeline-stages", "--mode"],
    "optimizer": ["--optimizer", "--lr", "--momentum", "--nesterov", "--weight-decay", "--beta1", "--beta2", "--eps",
                  "--alpha", "--lr-schedule", "--warmup-epochs", "--lr-step-epochs", "--lr-gamma", "--lr-min",
                  "--lr-scaling", "--skip-nonfinite", "--epochs", "--steps", "--model", "--shard-optimizer",
                  "--clip-grad-norm", "--mode", "--pipeline-stages"],
    "early stopping": ["--early-stop-patience", "--monitor", "--min-delta", "--save-best", "--save", "--l1",
                       "--label-smoothing", "--data", "--train", "--val", "--epochs", "--steps", "--checkpoint-dir",
                       "--resume", "--mode"],
}
assert all(flag in FLAGS for group in GROUPS.values() for flag in group)

# ---------------------------------------------------------------------------------------------------------------
# Fixture: a pristine tree (dataset, a directory, configs, checkpoints, links) copied afresh before every run.


def write_shards(directory):
    """tests/mpi/common.sh's write_shards: 3-class [1, 4, 4] samples in the ringtrain shard format."""
    import h5py
    import numpy as np
    rng = np.random.default_rng(0)
    for name, n in (("train-00000.h5", 128), ("val-00000.h5", 32), ("test-00000.h5", 32)):
        y = rng.integers(0, 3, n)
        x = (rng.normal(size=(n, 1, 4, 4)) + y[:, None, None, None]).astype(np.float32)
        with h5py.File(os.path.join(directory, name), "w") as f:
            f["x"] = x
            f["y"] = y.astype(np.int64)
            f.attrs["format"] = "ringtrain-shard-1"
            f.attrs["num_classes"] = 3


class Fixture:
    SHARDS = ("data/train-00000.h5", "data/val-00000.h5", "data/test-00000.h5")

    def __init__(self, top, ringtrain):
        self.top = top
        self.pristine = os.path.join(top, "pristine")
        self.root = os.path.join(top, "fx")  # the tree runs see (every fixture path names a file in it)
        self.cwd = os.path.join(self.root, "cwd")
        # Config files that name outputs: the outputs they name.
        self.config_outputs = {
            self.p("@cfg/outputs.ini"): [("--save", self.p("@out/cfg-model.h5")),
                                         ("--metrics", self.p("@out/cfg-metrics.csv")),
                                         ("--checkpoint-dir", self.p("@out/cfg-ckpt"))]}
        self._build(ringtrain)

    def p(self, name):
        """'@rel' -> the fixture path of rel; anything else unchanged."""
        return os.path.join(self.root, name[1:]) if name.startswith("@") else name

    def common_paths(self):
        return ["/dev/null", "/dev/full", "/proc/x", "/proc/self/status", self.p("@adir"), self.p("@adir/existing.txt"),
                self.p("@missing/none.h5"), self.p("@out/new.h5"), self.p("@data/train-00000.h5"),
                self.p("@data/val-00000.h5"), self.p("@data"), self.p("@links/to-shard.h5"),
                self.p("@links/dangling.h5"), self.p("@links/to-dir/x.h5"), self.p("@out/with space.h5"),
                self.p("@out/") + "p" * 5000, "", "relative.out", "A" * 5000, self.p("@out/x\nINJECTED-LINE")]

    def _build(self, ringtrain):
        pr = self.pristine
        for d in ("data", "adir", "empty", "cfg", "links", "out", "cwd"):
            os.makedirs(os.path.join(pr, d))
        write_shards(os.path.join(pr, "data"))
        with open(os.path.join(pr, "adir/existing.txt"), "w") as f:
            f.write("existing\n")
        configs = {
            "good.ini": "epochs = 1\nlr = 0.01\n",
            "outputs.ini": "".join(f"{flag[2:]} = {value}\n" for flag, value in
                                   self.config_outputs[self.p("@cfg/outputs.ini")]),
            "junk.ini": "this is not an ini file\n[[[\n= =\n",
            "unknown.ini": "no-such-option = 3\n",
            "badvalue.ini": "epochs = abc\n",
            "control.ini": "lr = 1\x1b[31m\n",
            "placeholder.ini": "model = %value%\n",
            "huge.ini": "model = " + "A" * 5000 + "\n",
            "dup.ini": "epochs = 1\nepochs = 2\n",
            "empty.ini": "",
            "nested.ini": f"config = {self.p('@cfg/good.ini')}\n",
            "section.ini": "[train]\nepochs = 1\n",
        }
        for name, text in configs.items():
            with open(os.path.join(pr, "cfg", name), "w") as f:
                f.write(text)
        os.symlink("../data/train-00000.h5", os.path.join(pr, "links/to-shard.h5"))
        os.symlink("../out/dangling-target.h5", os.path.join(pr, "links/dangling.h5"))
        os.symlink("../adir", os.path.join(pr, "links/to-dir"))
        # Two checkpoints to resume from: this model's, and another model's.
        for name, spec in (("ckpt", BASE_FLAGS["--model"]), ("ckpt-other", "flatten,linear(4),relu,linear(out)")):
            cmd = [ringtrain, "train", "--data", os.path.join(pr, "data"), "--epochs", "1", "--batch", "8",
                   "--model", spec, "--device", "cpu", "--checkpoint-dir", os.path.join(pr, name)]
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
            if done.returncode != 0 or not os.path.exists(os.path.join(pr, name, "step-000000000016.h5")):
                sys.exit(f"cannot write the fixture's checkpoint: {shlex.join(cmd)}: {done.stderr.strip()}")
        self.expected = snapshot(pr, pr, self.root)
        self.reset()

    def reset(self):
        if os.path.lexists(self.root):
            shutil.rmtree(self.root, ignore_errors=True)
        shutil.copytree(self.pristine, self.root, symlinks=True)


def snapshot(directory, base, as_root):
    """{path as under as_root: 'dir' | 'link:TARGET' | 'file:SHA256' | 'special'} for everything in directory."""
    out = {}
    for top, dirs, files in os.walk(directory):
        for name in dirs + files:
            full = os.path.join(top, name)
            key = os.path.join(as_root, os.path.relpath(full, base))
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                out[key] = "link:" + os.readlink(full)
            elif stat.S_ISDIR(st.st_mode):
                out[key] = "dir"
            elif stat.S_ISREG(st.st_mode):
                with open(full, "rb") as f:
                    out[key] = "file:" + hashlib.sha256(f.read()).hexdigest()
            else:
                out[key] = "special"
    return out


# ---------------------------------------------------------------------------------------------------------------
# A draw, its command, and its run.


def draw(rng, fx):
    """[(flag, [argv words])]: the drawn flags, each as --flag VALUE, now and then --flag=VALUE.

    Settings meet in groups (outputs with inputs, parallel modes with each other): most runs draw from one
    GROUP, and half the runs favour valid values, so that drawn flags reach the code where they interact."""
    candidates = sorted(FLAGS) if rng.random() < 0.4 else GROUPS[rng.choice(sorted(GROUPS))]
    d = Draw(rng, fx, valid_boost=rng.choice([1, 10]))
    flags = rng.sample(candidates, rng.randint(0, MAX_FLAGS))
    if flags and rng.random() < 0.05:  # the same flag twice
        flags.append(rng.choice(flags))
    drawn = []
    for flag in flags:
        value = FLAGS[flag](d)
        if value is None:  # a switch
            words = [flag]
        elif isinstance(value, list):  # a switch followed by a stray word
            words = [flag] + value
        elif FLAGS[flag] is switch:  # a switch given a value: --flag=1
            words = [flag + value]
        elif rng.random() < 0.2:
            words = [flag + "=" + value]
        else:
            words = [flag, value]
        drawn.append((flag, words))
    return drawn


def command_args(drawn, fx):
    """ringtrain's arguments: the base flags the draw did not name, then the drawn ones."""
    args = ["train"]
    named = {flag for flag, _ in drawn}
    for flag, value in [("--data", fx.p("@data"))] + list(BASE_FLAGS.items()):
        if flag not in named:
            args += [flag, value]
    for _, words in drawn:
        args += words
    return args


def given_outputs(args, fx):
    """[(flag, absolute path)] of every output the run was told to write, from flags and --config files."""
    out = []
    for i, arg in enumerate(args):
        flag, eq, joined = arg.partition("=")
        value = joined if eq else (args[i + 1] if i + 1 < len(args) else None)
        if value is None:
            continue
        if flag in OUTPUT_FILE_FLAGS | OUTPUT_DIR_FLAGS:
            out.append((flag, value))
        if flag == "--config":
            out += fx.config_outputs.get(value, [])
    resolved = []
    for flag, value in out:
        if not value or value == "none":
            continue
        full = os.path.normpath(os.path.join(fx.cwd, value))
        resolved += [(flag, full), (flag, os.path.realpath(full))]
    return resolved


def run_one(cmd, cwd, env):
    """(returncode or None on timeout, stdout, stderr, seconds)."""
    def limits():
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True, preexec_fn=limits)
    try:
        out, err = proc.communicate(timeout=TIMEOUT_S)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        # mpirun puts each rank in a process group of its own: asked to stop (SIGTERM) it ends them; then
        # whatever is left of the run (by its working directory) is killed.
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            for pid in processes_in(cwd):
                kill(pid)
            out, err = proc.communicate()
        rc = None
    text = lambda b: b.decode("utf-8", errors="surrogateescape")
    return rc, text(out), text(err), time.monotonic() - start


def kill(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


def processes_in(directory):
    """Pids of processes whose working directory is directory (a run's leftovers)."""
    pids = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if os.readlink(f"/proc/{pid}/cwd") == directory:
                    pids.append(int(pid))
            except OSError:
                pass
    return pids


# ---------------------------------------------------------------------------------------------------------------
# The properties: each returns a list of violations (text naming the property).


def check_bound(r):
    return [f"no end within {TIMEOUT_S} s (killed)"] if r["rc"] is None else []


def check_no_leftovers(r):
    return [f"process left running after the run ended (pids {r['leftovers']})"] if r["leftovers"] else []


def check_no_signal(r):
    if r["rc"] is not None and r["rc"] < 0:
        return [f"killed by signal {-r['rc']} ({signal.Signals(-r['rc']).name})"]
    found = [text for text in SIGNAL_TEXT if text in r["stderr"]]
    return [f"a rank ended by a signal (stderr says '{found[0]}')"] if found else []


def error_lines(stderr):
    return [line for line in stderr.split("\n") if line.startswith(ERROR_PREFIX)]


def check_exit_and_error_line(r):
    if r["rc"] is None or r["rc"] < 0:
        return []
    lines = error_lines(r["stderr"])
    if r["rc"] == 0:
        return [f"exit 0 with {len(lines)} error line(s)"] if lines else []
    if r["rc"] not in (1, 2):
        return [f"exit code {r['rc']} (expected 0, 1 or 2)"]
    return [] if len(lines) == 1 else [f"exit {r['rc']} with {len(lines)} error lines (expected 1)"]


def check_error_line_printable(r):
    problems = []
    for line in error_lines(r["stderr"]):
        bad = sorted({c for c in line if (ord(c) < 0x20 and c != "\t") or 0x7f <= ord(c) < 0xa0})
        if bad:
            problems.append("error line has control characters " + ", ".join(f"0x{ord(c):02x}" for c in bad))
    # A newline inside a value must not split the error line: the injected text must not start a line.
    if error_lines(r["stderr"]) and any(line.startswith("INJECTED-LINE") for line in r["stderr"].split("\n")):
        problems.append("error line split by a newline from a value")
    return problems


def path_matches(pattern, path, descendants, ancestors):
    """pattern: an absolute path where %j and %n stand for any text within a component."""
    pat = pattern.rstrip("/").split("/")
    got = path.rstrip("/").split("/")
    def same(p, g):
        return re.fullmatch(".*".join(re.escape(part) for part in re.split("%[jn]", p)), g, re.S) is not None
    n = min(len(pat), len(got))
    if not all(same(p, g) for p, g in zip(pat[:n], got[:n])):
        return False
    return len(pat) == len(got) or (len(got) > len(pat) and descendants) or (len(got) < len(pat) and ancestors)


def check_files(r, fx):
    problems = []
    after = snapshot(fx.root, fx.root, fx.root)
    outputs = r["outputs"]
    def named(p, kind):
        return any(path_matches(g, p, flag in OUTPUT_DIR_FLAGS, flag in OUTPUT_DIR_FLAGS and kind == "dir")
                   for flag, g in outputs)
    for shard in Fixture.SHARDS:
        full = os.path.join(fx.root, shard)
        if after.get(full) != fx.expected[full]:
            problems.append(f"dataset shard changed or removed: {full}")
    killed = r["rc"] is None  # a run killed at the bound may leave its temporaries: only the shards count
    for p, kind in sorted(after.items()):
        if p not in fx.expected and not named(p, kind) and not killed:
            problems.append(f"file created at a path no output flag named: {p}")
    for p, kind in sorted(fx.expected.items()):
        if after.get(p) != kind and not named(p, kind) and p[len(fx.root) + 1:] not in Fixture.SHARDS and not killed:
            problems.append(f"existing path {'changed' if p in after else 'removed'} that no output flag named: {p}")
    for device in ("/dev/null", "/dev/full"):
        if not stat.S_ISCHR(os.stat(device).st_mode):
            problems.append(f"{device} is no longer a device")
    return problems


# ---------------------------------------------------------------------------------------------------------------
# Reporting.


def quote(arg):
    """Shell-quotes one argument for bash; long runs of one character become $(printf ...)."""
    def plain(text):
        if not text:
            return ""
        if all(c.isprintable() for c in text):
            return shlex.quote(text)
        return "$'" + "".join(c if c.isprintable() and c not in "'\\" else
                              ("\\x%02x" % (ord(c) & 0xff) if ord(c) < 0x100 or 0xdc80 <= ord(c) <= 0xdcff
                               else c) for c in text) + "'"
    if arg == "":
        return "''"
    parts, at = [], 0
    for m in re.finditer(r"([0-9A-Za-z])\1{99,}", arg):
        parts.append(plain(arg[at:m.start()]))
        parts.append(f"\"$(printf '{m.group(1)}%.0s' {{1..{len(m.group(0))}}})\"")
        at = m.end()
    parts.append(plain(arg[at:]))
    return "".join(parts)


def one_line(text, limit=300):
    text = text[:limit]
    return "".join(c if c.isprintable() or c == "\t" else repr(c)[1:-1] for c in text)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("ringtrain")
    ap.add_argument("mpirun")
    ap.add_argument("--runs", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", type=int, default=None, help="run just this draw (0-based)")
    ap.add_argument("--keep", action="store_true", help="keep the fixture directory")
    ap.add_argument("--verbose", action="store_true", help="print every run's command and outcome")
    opts = ap.parse_args()
    ringtrain = os.path.abspath(opts.ringtrain)
    mpirun = shutil.which(opts.mpirun) or opts.mpirun

    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "OMPI_COMM_WORLD_", "PMIX_", "PMI_"))}
    if os.geteuid() == 0:
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    env["OMPI_MCA_rmaps_base_oversubscribe"] = "1"

    top = tempfile.mkdtemp(prefix="ringtrain-property-")
    violations = runs = 0
    started = time.monotonic()
    try:
        fx = Fixture(top, ringtrain)
        print(f"fixture: {fx.root} (seed {opts.seed}, {opts.runs} runs)", flush=True)
        rng = random.Random(opts.seed)
        for i in range(opts.runs):
            args = command_args(draw(rng, fx), fx)
            launcher = [] if i % 2 == 0 else [mpirun, "--oversubscribe", "-np", "2"]
            if opts.only is not None and i != opts.only:
                continue
            cmd = launcher + [ringtrain] + args
            rc, out, err, seconds = run_one(cmd, fx.cwd, env)
            leftovers = [] if rc is None else processes_in(fx.cwd)  # after a timeout: killed by run_one
            for _ in range(10):
                if not leftovers:
                    break
                time.sleep(0.1)
                leftovers = processes_in(fx.cwd)
            for pid in leftovers + processes_in(fx.cwd):
                kill(pid)
            r = {"rc": rc, "stdout": out, "stderr": err, "leftovers": leftovers, "outputs": given_outputs(args, fx)}
            found = (check_bound(r) + check_no_leftovers(r) + check_no_signal(r) + check_exit_and_error_line(r) +
                     check_error_line_printable(r) + check_files(r, fx))
            line = "cd " + quote(fx.cwd) + " && " + " ".join(quote(a) for a in cmd)
            if opts.verbose:
                print(f"run {i}: rc={rc} {seconds:.1f}s | {line[:400]} | {one_line(err, 200)}", flush=True)
            for problem in found:
                print(f"VIOLATION: {problem} (seed {opts.seed}, run {i}) | cmd: {line} | rc={rc} | "
                      f"stderr: {one_line(err)}", flush=True)
            violations += len(found)
            runs += 1
            fx.reset()
    finally:
        if opts.keep:
            print(f"kept {top}")
        else:
            shutil.rmtree(top, ignore_errors=True)
    took = time.monotonic() - started
    if violations:
        print(f"FAIL: {violations} violations in {runs} runs ({took:.0f} s)")
        return 1
    print(f"PASS: {runs} runs ({took:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
