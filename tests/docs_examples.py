#!/usr/bin/python3
"""Runs every command block of README.md and docs/*.md, so that the docs and the program cannot drift apart.

Each fenced block tagged bash, sh or shell is cut into commands (a command goes on over lines that end in a
backslash, |, && or || or inside quotes; comment lines are dropped), and the commands of one document run for
real, in order, in a scratch directory of its own that looks like a checkout: the repository's top-level
entries as symbolic links, build/src, build/bench and build/data/fashion-mnist (the prepared shards) linking
into the real build, `ringtrain` on PATH, and the inputs the docs name made here as realistic fixtures unless
the document makes them itself: data/fmnist and d (prep of a Fashion-MNIST subset), houses.csv (a housing
table, prices in the hundreds of thousands) and run.ini. Blocks of one document share the directory and its
shell variables, as one shell session would (`B=build/src/ringtrain` in one command is seen by the later ones:
a command's variables and directory are saved when it ends and restored before the next), since later blocks
use what earlier ones made. Blocks in other fences (console, text, none) are output samples and are not run.

To keep the run short, commands are changed, each change printed as a NOTE:
  - training (`ringtrain train`, an sbatch template that runs it) gets `--steps 3 --epochs 1` appended
    (later flags win), bench/scaling `--steps 3 --model mlp --modes sync` (every mode of it runs in the
    CTest scaling.report);
  - mpirun/srun/sbatch rank counts above 4 become 4 (CI has 2 cores; no command is about a count above 4);
  - sbatch waits for its job (`--wait`), so that the job's own exit code counts;
  - the Fashion-MNIST IDX files (/usr/share/datasets/fashion-mnist) become the first 6000 training and 1000
    test images of the same files, so that a cnn epoch's evaluation takes a second, not a minute;
  - the fortunes text (/usr/share/games/fortunes) becomes a directory holding its first 64 KB, for the same
    reason.
Commands are skipped, each printed as `SKIP file:line: reason`, only when they need a GPU this machine lacks
(--device cuda, --precision tf32/bf16/fp16, --gpus*, NCCL; they run where `ringtrain devices` finds one), more
than one node (--nodes/-N above 1, on the command line or in the sbatch template), optional software that is
not installed (apptainer, buildah, srun --container-image without pyxis, ...), a SLURM when none was given
(--slurm-conf or SLURM_CONF), when they start or stop a SLURM of their own (the given one stands in for it),
run until interrupted (tail -f, watch), or are marked by an HTML comment line
`<!-- docs-test: skip: REASON -->` just before their block (slow by nature, or a cluster's paths).

Every command that runs prints `RUN file:line: command`; a failure prints its exit code and the end of its
output, and the run ends with the counts and exit 1 if anything failed. The time per document is printed.

usage: /usr/bin/python3 tests/docs_examples.py [--build DIR] [--slurm-conf FILE] [--only NAME]... [--work DIR]
                                                [--keep]
--build: the build directory (default: build/ in this checkout); --only: run only documents whose path ends
with NAME; --work: where the scratch directories go (default: a new temporary directory, removed after a run
that passed); --keep: keep it in any case.
"""
import argparse
import glob
import gzip
import os
import random
import re
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN_LANGUAGES = {"bash", "sh", "shell"}
SKIP_MARKER = re.compile(r"^\s*<!--\s*docs-test:\s*skip:\s*(.*?)\s*-->\s*$")
FENCE = re.compile(r"^\s*(`{3,}|~{3,})\s*([\w+-]*)")
TRAIN_SHORT = "--steps 3 --epochs 1"
SCALING_SHORT = "--steps 3 --model mlp --modes sync"
MAX_RANKS = 4
COMMAND_TIMEOUT_S = 120
FMNIST_IDX = "/usr/share/datasets/fashion-mnist"
IDX_SUBSET = {"train": 6000, "t10k": 1000}  # images per IDX file prefix
FORTUNES = "/usr/share/games/fortunes"
# Bytes of it the docs' commands read: about 500 windows of 129 bytes, enough for every split to hold some at
# context 128, where the whole 2.6 MB made every `train` evaluate 720k tokens (over a minute of CI a document).
TEXT_SUBSET_BYTES = 64 * 1024
LAUNCHERS = {"mpirun", "mpiexec", "srun", "sbatch", "salloc"}
SLURM_PROGRAMS = {"srun", "sbatch", "salloc", "squeue", "scancel", "sinfo", "sacct", "scontrol"}
# Software a document may use that a machine need not have; a command naming one that is missing is skipped.
# Any other missing program fails, so that a misspelt command is found.
OPTIONAL_TOOLS = {"apptainer", "singularity", "enroot", "docker", "podman", "buildah", "debootstrap", "ch-run",
                  "nvidia-smi", "nsys", "ncu"}
FOREVER = [(re.compile(r"(^|\s)tail\s+(-\w*[fF]|--follow)"), "tail -f"), (re.compile(r"^\s*(watch|top)\b"), "watch")]
GPU_PATTERNS = [(re.compile(r"--device[= ]cuda\b"), "--device cuda"),
                (re.compile(r"--precision[= ](tf32|bf16|fp16)\b"), "--precision on tensor cores"),
                (re.compile(r"--gpus(-per-task|-per-node)?[= ]"), "--gpus"),
                (re.compile(r"--gres[= ]\S*gpu"), "--gres gpu"),
                (re.compile(r"\bNCCL\b"), "NCCL")]
NODES = re.compile(r"(?:^|\s)(?:-N\s*|--nodes[= ])(\d+)")
RANKS = re.compile(r"(?<!\S)(-np|-n|--np|--ntasks|--ntasks-per-node)([ =])(\d+)(?!\S)")
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
# Settings of the environment the tests run in that would replace the docs' defaults (the templates read
# DATA, MODEL and RINGTRAIN; bench/scaling also ALLREDUCE).
DROPPED_ENV = ("DATA", "MODEL", "RINGTRAIN", "ALLREDUCE")


# ---------------------------------------------------------------------------------------------------------------
# Extraction: documents into blocks, blocks into commands.

@dataclass
class Block:
    doc: str
    line: int  # of the opening fence
    language: str
    lines: list  # (line number, text)
    skip: str = ""  # the marker's reason


@dataclass
class Command:
    doc: str
    line: int
    raw: str  # as written, comment included
    text: str  # without the comment
    skip: str = ""


def read_blocks(path, name):
    """The fenced blocks of a Markdown file, with the skip marker of the line before each."""
    blocks, current, fence, previous = [], None, None, ""
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip("\n")
            match = FENCE.match(line)
            if current is None and match:
                marker = SKIP_MARKER.match(previous)
                current = Block(name, number, match.group(2).lower(), [], marker.group(1) if marker else "")
                fence = match.group(1)
            elif current is not None and line.strip() == fence:
                blocks.append(current)
                current = None
            elif current is not None:
                current.lines.append((number, line))
            if line.strip():
                previous = line
    return blocks


def block_commands(block):
    """A block's commands: a command goes on over lines that end in a backslash, |, && or || or inside quotes;
    blank and comment-only lines are dropped."""
    commands, pending, start = [], "", 0
    for number, line in block.lines:
        if not pending:
            start = number
        pending += line + "\n"
        text, open_quote = scan(pending)
        if open_quote or re.search(r"(\\|\||&&)\s*$", text):
            continue
        raw, pending = pending.strip(), ""
        text = re.sub(r"\\\n", " ", text).strip()
        if text:
            commands.append(Command(block.doc, start, raw, text, block.skip))
    if pending.strip():
        commands.append(Command(block.doc, start, pending.strip(), scan(pending)[0].strip(), block.skip))
    return commands


# ---------------------------------------------------------------------------------------------------------------
# Shell text: comments, segments, words.

def scan(text):
    """The text without its comments (a `#` that starts a word outside quotes, to the line's end), and whether
    a quote is still open at its end."""
    kept, quote, escaped, comment = [], None, False, False
    for i, c in enumerate(text):
        if comment:
            comment = c != "\n"
            if comment:
                continue
        elif escaped:
            escaped = False
        elif c == "\\" and quote != "'":
            escaped = True
        elif quote:
            quote = None if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c == "#" and (i == 0 or text[i - 1].isspace()):
            comment = True
            continue
        kept.append(c)
    return "".join(kept), quote is not None


def split_segments(text):
    """The simple commands of a line, split at |, ||, &&, ; and & outside quotes: [(segment, separator)]."""
    segments, start, i, quote = [], 0, 0, None
    while i < len(text):
        c = text[i]
        if quote:
            quote = None if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c in "|&;" and not is_redirection(text, i):
            separator = text[i:i + 2] if text[i:i + 2] in ("||", "&&") else c
            segments.append((text[start:i], separator))
            i += len(separator)
            start = i
            continue
        i += 1
    segments.append((text[start:], ""))
    return segments


def is_redirection(text, i):
    """Whether the & at i belongs to a redirection (2>&1, &>file, <&3) rather than ending a command."""
    return text[i] == "&" and ((i > 0 and text[i - 1] in "<>") or text[i + 1:i + 2] == ">")


def words(segment):
    try:
        return shlex.split(segment)
    except ValueError:  # an unclosed quote: the shell will say so when it runs
        return segment.split()


def program(segment_words):
    """The program a simple command runs (after its leading VAR=value words), or ""."""
    for word in segment_words:
        if not ASSIGNMENT.match(word):
            return word
    return ""


# ---------------------------------------------------------------------------------------------------------------
# The machine: what it has, asked once.

@dataclass
class Machine:
    gpu: str  # "" where a GPU is usable, else why not
    slurm_conf: str
    pyxis: bool  # srun has --container-image


def probe_machine(ringtrain, slurm_conf):
    devices = subprocess.run([ringtrain, "devices"], capture_output=True, text=True)
    summary = (devices.stdout + devices.stderr).strip().splitlines()
    gpu = "" if devices.returncode == 0 and summary and re.match(r"cuda: [1-9]", summary[0]) else \
        (summary[0] if summary else f"ringtrain devices exited {devices.returncode}")
    pyxis = False
    if shutil.which("srun"):
        pyxis = "--container-image" in subprocess.run(["srun", "--help"], capture_output=True, text=True).stdout
    return Machine(gpu, slurm_conf, pyxis)


# ---------------------------------------------------------------------------------------------------------------
# Skips: why a command cannot run here, or "".

def sbatch_script(segment_words, scratch):
    """The batch script an sbatch command submits (its first argument that is a file), or None."""
    if program(segment_words) != "sbatch":
        return None
    for word in segment_words[segment_words.index("sbatch") + 1:]:
        if not word.startswith("-") and os.path.isfile(os.path.join(scratch, word)):
            return os.path.join(scratch, word)
    return None


def script_directives(path):
    """A batch script's commands and #SBATCH lines: what it asks of the machine (not its comments)."""
    with open(path, encoding="utf-8") as f:
        return "\n".join(line for line in f if line.startswith("#SBATCH") or not line.lstrip().startswith("#"))


def command_scope(command, scratch):
    """The command's text and, for sbatch, its script's directives: everything that says what it needs."""
    scope = [command.raw]
    for segment, _ in split_segments(command.text):
        script = sbatch_script(words(segment), scratch)
        if script:
            scope.append(script_directives(script))
    return scope


def gpu_skip(command, scratch, machine):
    if not machine.gpu:
        return ""
    for pattern, what in GPU_PATTERNS:
        if any(pattern.search(text) for text in command_scope(command, scratch)):
            return f"needs a GPU ({what}); here: {machine.gpu}"
    return ""


def node_count(segment, scratch):
    """The nodes a launcher segment asks for: its --nodes/-N, else its sbatch script's #SBATCH line."""
    segment_words = words(segment)
    if program(segment_words) not in LAUNCHERS:
        return 1
    match = NODES.search(segment)
    if match:
        return int(match.group(1))
    script = sbatch_script(segment_words, scratch)
    if script:
        match = re.search(r"^#SBATCH\s+(?:-N\s*|--nodes[= ])(\d+)", script_directives(script), re.M)
        if match:
            return int(match.group(1))
    return 1


def multi_node_skip(command, scratch, machine):
    nodes = max(node_count(segment, scratch) for segment, _ in split_segments(command.text))
    return f"multi-node ({nodes} nodes): this machine is one node" if nodes > 1 else ""


def software_skip(command, scratch, machine):
    for segment, _ in split_segments(command.text):
        segment_words = words(segment)
        for tool in sorted(OPTIONAL_TOOLS.intersection(segment_words)):
            if not shutil.which(tool):
                return f"needs {tool}, which this machine lacks"
        if program(segment_words) == "srun" and "--container-image" in segment and not machine.pyxis:
            return "srun --container-image needs the pyxis plugin, which this machine's SLURM lacks"
    return ""


def slurm_skip(command, scratch, machine):
    for segment, _ in split_segments(command.text):
        name = program(words(segment))
        if name.endswith("local-cluster.sh"):
            where = f"the one of --slurm-conf {machine.slurm_conf}" if machine.slurm_conf else "none was given"
            return f"starts or stops a SLURM of its own; the docs run on the test's SLURM ({where}), " \
                   "whose ports a second one would take"
        if name in SLURM_PROGRAMS and not machine.slurm_conf:
            return "needs SLURM: none given (run under CTest's slurm fixture, or pass --slurm-conf)"
    return ""


def forever_skip(command, scratch, machine):
    for pattern, what in FOREVER:
        if pattern.search(command.text):
            return f"runs until interrupted ({what})"
    return ""


SKIP_RULES = [forever_skip, gpu_skip, multi_node_skip, software_skip, slurm_skip]


def skip_reason(command, scratch, machine):
    if command.skip:
        return command.skip
    for rule in SKIP_RULES:
        reason = rule(command, scratch, machine)
        if reason:
            return reason
    return ""


# ---------------------------------------------------------------------------------------------------------------
# Rewrites: the command as it runs here, and a note for each change.

def trains(segment, scratch, shell):
    """Whether a simple command trains: `ringtrain train`, or an sbatch template that runs it with "$@"."""
    segment_words = [shell.expand(w) for w in words(segment)]
    for word, following in zip(segment_words, segment_words[1:]):
        if os.path.basename(word) == "ringtrain" and following == "train":
            return True
    script = sbatch_script(segment_words, scratch)
    if script:
        body = script_directives(script)
        return "ringtrain" in body and re.search(r"\btrain\b", body) is not None and '"$@"' in body
    return False


def shorten_segment(segment, scratch, shell):
    """The segment with short-run flags appended where it trains or runs a scaling study."""
    body = segment.rstrip()
    space = segment[len(body):]  # kept before a separator that follows: `... --steps 3 | tee out`
    if {"--help", "-h"} & set(words(segment)):  # prints and exits: nothing to shorten
        return segment, ""
    if trains(segment, scratch, shell):
        return f"{body} {TRAIN_SHORT}{space}", f"appended {TRAIN_SHORT}"
    if any(w.endswith("bench/scaling") for w in words(segment)):
        return f"{body} {SCALING_SHORT}{space}", f"appended {SCALING_SHORT}"
    return segment, ""


def fewer_ranks(segment):
    """A launcher's rank counts above MAX_RANKS lowered to it (ringtrain and the templates take none of these
    flags, so they can only be the launcher's)."""
    if program(words(segment)) not in LAUNCHERS:
        return segment, ""
    notes = []

    def lower(match):
        if int(match.group(3)) <= MAX_RANKS:
            return match.group(0)
        notes.append(f"{match.group(1)} {match.group(3)} -> {MAX_RANKS} (at most {MAX_RANKS} ranks on this machine)")
        return f"{match.group(1)}{match.group(2)}{MAX_RANKS}"
    return RANKS.sub(lower, segment), "; ".join(notes)


def wait_for_job(segment):
    """sbatch with --wait, so that the command ends with the job and its exit code."""
    segment_words = words(segment)
    if program(segment_words) != "sbatch" or {"--wait", "-W"} & set(segment_words):
        return segment, ""
    return re.sub(r"\bsbatch\b", "sbatch --wait", segment, count=1), "sbatch --wait (the job's exit code counts)"


def rewrite_segment(segment, scratch, shell):
    notes = []
    for change in (fewer_ranks, wait_for_job):
        segment, note = change(segment)
        notes.append(note)
    segment, note = shorten_segment(segment, scratch, shell)
    notes.append(note)
    return segment, [n for n in notes if n]


def rewrite(command, scratch, shell, fixtures, machine):
    """The command as it runs here and what was changed."""
    text, notes = command.text, []
    if FMNIST_IDX in text:
        text = text.replace(FMNIST_IDX, fixtures.idx)
        notes.append(f"{FMNIST_IDX} -> the first {IDX_SUBSET['train']} training and {IDX_SUBSET['t10k']} test "
                     "images of it")
    if FORTUNES in text:
        text = text.replace(FORTUNES, fixtures.text)
        notes.append(f"{FORTUNES} -> a directory of its first {TEXT_SUBSET_BYTES // 1024} KB")
    if machine.slurm_conf and re.search(r"(^|\s)SLURM_CONF=", text):
        text = re.sub(r"SLURM_CONF=\S+", f"SLURM_CONF={machine.slurm_conf}", text)
        notes.append("SLURM_CONF is the test's SLURM")
    pieces = []
    for segment, separator in split_segments(text):
        segment, segment_notes = rewrite_segment(segment, scratch, shell)
        pieces.append(segment + separator)
        notes += segment_notes
    return "".join(pieces), notes


# ---------------------------------------------------------------------------------------------------------------
# Fixtures: inputs the docs name, made once per run.

@dataclass
class Fixtures:
    idx: str  # a directory of IDX files: a subset of Fashion-MNIST's
    text: str  # a directory of one text file: the start of the fortunes
    files: dict  # name in a scratch directory -> path of the fixture


def write_idx_subset(source, target, count):
    """The first `count` items of a gzipped IDX file, in the same format."""
    with gzip.open(source, "rb") as f:
        head = f.read(4)
        dims = struct.unpack(f">{head[3]}I", f.read(4 * head[3]))
        item = 1
        for d in dims[1:]:
            item *= d
        body = f.read(count * item)  # the files hold unsigned bytes (IDX type 0x08)
    with gzip.GzipFile(target, "wb", compresslevel=1, mtime=0) as f:
        f.write(head + struct.pack(f">{head[3]}I", count, *dims[1:]) + body)


def write_text_subset(source_dir, target_dir, size):
    """The first `size` bytes of the text files of source_dir, in name order as prep reads them (fortune's .dat
    and .u8 index files left out), cut at a line break so that no UTF-8 sequence is split, as one file."""
    text = b""
    for name in sorted(os.listdir(source_dir)):
        path = os.path.join(source_dir, name)
        if len(text) >= size or name.endswith((".dat", ".u8")) or not os.path.isfile(path):
            continue
        with open(path, "rb") as f:
            text += f.read(size - len(text))
    os.makedirs(target_dir)
    with open(os.path.join(target_dir, "fortunes"), "wb") as f:
        f.write(text[:text.rfind(b"\n") + 1])


def write_houses_csv(path, rows=400):
    """A housing table for CSV prep: an identifier (for --drop), numeric and categorical features, a price in the
    hundreds of thousands."""
    rng = random.Random(0)
    districts = {"centre": 4200, "riverside": 3600, "north": 2500, "suburbs": 1900}
    with open(path, "w", encoding="utf-8") as f:
        f.write("id,area_m2,rooms,year_built,district,garden,distance_km,price\n")
        for listing in range(rows):
            area = rng.uniform(35, 220)
            rooms = max(1, round(area / 30 + rng.gauss(0, 0.7)))
            year = rng.randint(1900, 2023)
            district = rng.choice(list(districts))
            garden = rng.choice(["yes", "no"])
            distance = rng.uniform(0.5, 25)
            price = (area * districts[district] + 12000 * rooms + (15000 if garden == "yes" else 0)
                     - 300 * (2024 - year) - 2500 * distance + rng.gauss(0, 20000))
            f.write(f"H{listing:05d},{area:.1f},{rooms},{year},{district},{garden},{distance:.1f},"
                    f"{max(price, 40000):.0f}\n")


RUN_INI = """# a training run in a file: any `ringtrain train` option by its long name; flags on the command line win
data = data/fmnist
model = mlp
epochs = 3
batch = 64
lr = 0.05
lr-schedule = cosine
metrics = run.csv
"""


def make_fixtures(work, ringtrain):
    idx = os.path.join(work, "fixtures", "fashion-mnist-idx")
    os.makedirs(idx)
    for name in sorted(n for n in os.listdir(FMNIST_IDX) if n.endswith("-ubyte.gz")):
        write_idx_subset(os.path.join(FMNIST_IDX, name), os.path.join(idx, name), IDX_SUBSET[name.split("-")[0]])
    shards = os.path.join(work, "fixtures", "fmnist")
    prep = subprocess.run([ringtrain, "prep", "--input", idx, "--out", shards, "--shards", "4"],
                          capture_output=True, text=True)
    if prep.returncode != 0:
        sys.exit(f"docs_examples: could not make the Fashion-MNIST fixture: {prep.stderr.strip()}")
    houses = os.path.join(work, "fixtures", "houses.csv")
    write_houses_csv(houses)
    run_ini = os.path.join(work, "fixtures", "run.ini")
    with open(run_ini, "w", encoding="utf-8") as f:
        f.write(RUN_INI)
    files = {"data/fmnist": shards, "d": shards, "houses.csv": houses, "run.ini": run_ini}
    text = os.path.join(work, "fixtures", "fortunes")
    write_text_subset(FORTUNES, text, TEXT_SUBSET_BYTES)
    return Fixtures(idx, text, files)


# ---------------------------------------------------------------------------------------------------------------
# Scratch checkouts, one per document.

def outputs_of(commands):
    """Paths a document's commands write with --out: fixtures there would be overwritten, so none is made."""
    found = set()
    for command in commands:
        found.update(re.findall(r"--out[= ](\S+)", command.text))
    return found


def make_scratch(run, doc, made_by_doc):
    scratch = os.path.join(run.work, re.sub(r"[^\w.-]", "_", doc))
    os.makedirs(os.path.join(scratch, "build", "data"))
    for name in os.listdir(ROOT):
        if name not in (".git", "build"):
            os.symlink(os.path.join(ROOT, name), os.path.join(scratch, name))
    for name in ("src", "bench", "data/fashion-mnist"):
        os.symlink(os.path.join(run.build, name), os.path.join(scratch, "build", name))
    os.makedirs(os.path.join(scratch, "bin"))
    os.symlink(run.ringtrain, os.path.join(scratch, "bin", "ringtrain"))
    for name, path in run.fixtures.files.items():
        if name not in made_by_doc:
            os.makedirs(os.path.dirname(os.path.join(scratch, name)), exist_ok=True)
            os.symlink(path, os.path.join(scratch, name))
    return scratch


# ---------------------------------------------------------------------------------------------------------------
# Running.

class Shell:
    """Runs a document's commands in its scratch directory as one shell session would: the variables a command
    sets (bash's own aside) and the directory it ends in are saved when it ends and restored before the next."""

    def __init__(self, scratch, env, internals):
        self.scratch, self.env, self.internals = scratch, env, internals
        self.state = os.path.join(scratch, ".docs-test-session.sh")
        open(self.state, "w").close()

    def run(self, text, timeout):
        saved = self.state + ".next"
        variables = f"declare -p $(compgen -v | grep -vxF -f {shlex.quote(self.internals)})"
        save = f"{{ {variables}; printf 'cd -- %q\\n' \"$PWD\"; }} >{shlex.quote(saved)} 2>/dev/null"
        script = f"source {shlex.quote(self.state)}\ntrap {shlex.quote(save)} EXIT\n{text}\n"
        # No input: a command that would wait for some (salloc, a prompt) fails instead of hanging.
        process = subprocess.Popen(["bash", "-o", "pipefail", "-c", script], cwd=self.scratch, env=self.env,
                                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, start_new_session=True)
        try:
            output, _ = process.communicate(timeout=timeout)
            status = process.returncode
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
            status = f"timeout after {timeout} s"
        if os.path.exists(saved):
            os.replace(saved, self.state)
        return status, output

    def expand(self, word):
        """A word's value where it is a variable the session set (`$B`), else the word."""
        if not re.fullmatch(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?", word):
            return word
        _, value = self.run(f'printf %s "{word}"', 10)
        return value


def bash_internals(work):
    """A file naming bash's own variables (PATH aside), which a session does not carry between commands."""
    names = subprocess.run(["env", "-i", "bash", "-c", "compgen -v"], capture_output=True, text=True).stdout.split()
    path = os.path.join(work, "bash-internals.txt")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(sorted(set(names) - {"PATH"})) + "\n")
    return path


def command_env(work, scratch, machine):
    env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}
    env.update(PATH=os.path.join(scratch, "bin") + os.pathsep + env.get("PATH", ""),
               TMPDIR=os.path.join(work, "tmp"),  # SLURM jobs stage shards here, once for every document
               OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_rmaps_base_oversubscribe="1")
    if machine.slurm_conf:
        env["SLURM_CONF"] = machine.slurm_conf
    return env


@dataclass
class Tally:
    ran: int = 0
    skipped: int = 0
    failed: list = field(default_factory=list)


@dataclass
class Run:
    """What every document's run shares."""
    work: str
    build: str
    ringtrain: str
    machine: Machine
    fixtures: Fixtures
    internals: str  # bash_internals()
    tally: Tally


def output_tail(output, lines=25):
    return "\n".join("    | " + line for line in output.rstrip().splitlines()[-lines:])


def run_command(command, shell, scratch, run):
    where, tally = f"{command.doc}:{command.line}", run.tally
    reason = skip_reason(command, scratch, run.machine)
    if reason:
        print(f"SKIP {where}: {reason}", flush=True)
        tally.skipped += 1
        return
    text, notes = rewrite(command, scratch, shell, run.fixtures, run.machine)
    print(f"RUN {where}: {text}", flush=True)
    for note in notes:
        print(f"    NOTE: {note}", flush=True)
    started = time.monotonic()
    status, output = shell.run(text, COMMAND_TIMEOUT_S)
    tally.ran += 1
    if status != 0:
        print(f"FAIL {where}: exit {status}: {text}\n{output_tail(output)}", flush=True)
        tally.failed.append(f"{where}: {text} (exit {status})")
        return
    print(f"    ok, {time.monotonic() - started:.1f} s", flush=True)


def run_document(path, doc, run):
    commands = [c for b in read_blocks(path, doc) if b.language in RUN_LANGUAGES for c in block_commands(b)]
    if not commands:
        return
    tally = run.tally
    started, before = time.monotonic(), (tally.ran, tally.skipped, len(tally.failed))
    print(f"== {doc}: {len(commands)} commands", flush=True)
    scratch = make_scratch(run, doc, outputs_of(commands))
    shell = Shell(scratch, command_env(run.work, scratch, run.machine), run.internals)
    for command in commands:
        run_command(command, shell, scratch, run)
    ran, skipped, failed = tally.ran - before[0], tally.skipped - before[1], len(tally.failed) - before[2]
    print(f"== {doc}: {ran} run, {skipped} skipped, {failed} failed, {time.monotonic() - started:.1f} s",
          flush=True)


def documents(only):
    paths = [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
    names = [os.path.relpath(p, ROOT) for p in paths]
    return [(p, n) for p, n in zip(paths, names) if not only or any(n.endswith(o) for o in only)]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build", default=os.path.join(ROOT, "build"))
    p.add_argument("--slurm-conf", default=os.environ.get("SLURM_CONF", ""))
    p.add_argument("--only", action="append", default=[])
    p.add_argument("--work")
    p.add_argument("--keep", action="store_true")
    return p.parse_args()


def main():
    args = parse_args()
    build = os.path.abspath(args.build)
    ringtrain = os.path.join(build, "src", "ringtrain")
    for needed in (ringtrain, os.path.join(build, "data", "fashion-mnist", "test-00000.h5"), FMNIST_IDX, FORTUNES):
        if not os.path.exists(needed):
            sys.exit(f"docs_examples: {needed} is missing (bash .ci/setup installs, builds and prepares it)")
    if args.slurm_conf and not os.path.isfile(args.slurm_conf):
        sys.exit(f"docs_examples: no SLURM at {args.slurm_conf} (slurm/local-cluster.sh start DIR writes it)")
    work = os.path.abspath(args.work) if args.work else tempfile.mkdtemp(prefix="ringtrain-docs-")
    if os.path.isdir(work) and os.listdir(work):
        sys.exit(f"docs_examples: --work {work} is not empty (each run starts from fresh scratch directories)")
    os.makedirs(os.path.join(work, "tmp"))
    machine = probe_machine(ringtrain, os.path.abspath(args.slurm_conf) if args.slurm_conf else "")
    run = Run(work, build, ringtrain, machine, make_fixtures(work, ringtrain), bash_internals(work), Tally())
    started, tally = time.monotonic(), run.tally
    for path, doc in documents(args.only):
        run_document(path, doc, run)
    print(f"docs examples: {tally.ran} run, {tally.skipped} skipped, {len(tally.failed)} failed, "
          f"{time.monotonic() - started:.0f} s")
    for failure in tally.failed:
        print(f"  FAILED {failure}")
    if tally.failed or args.keep:
        print(f"scratch directories kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if tally.failed else 0


if __name__ == "__main__":
    sys.exit(main())
