"""bench/scaling's overlap model: one data-parallel step simulated the way the allreduce engine runs it.

A profile is one short one-rank run's timeline (`ringtrain train --timeline`) and saved model (`--save`):
  - T(1), the whole step (the timeline's `step K` spans), and F, the forward (the `forward LAYER` spans);
  - for each top-level layer, its backward time (the `backward LAYER` span) and the gradients it hands to the
    engine when that backward ends: one tensor per parameter (`LAYER/.../weight`, `.../bias` in the model
    file, 4 bytes an element; batchnorm's running statistics are buffers and travel nowhere);
  - R = T(1) - F - the backward's sum: the data, the loss, the optimizer and the gaps between spans.
Every figure is the mean over the recorded steps after the first (which pays for first-touch allocation).

simulate() then replays a step on n ranks that are all alike (no stragglers, no contention). Times are from
the start of the backward, which runs the layers last to first; layer l's gradients are ready when its
backward ends. The engine (ringtrain's, src/comm/allreduce_engine.cpp):
  - sleeps while nothing is outstanding; the first gradient wakes it, and it gathers more for one cycle
    (`--cycle-ms`) before its cycle starts, or less when the backward ends first (the training thread's
    wait() flushes);
  - a cycle takes every gradient submitted by its start, negotiates (one allgather of each rank's ready bits:
    ceil(log2 n) alpha + (n-1) x its bytes / B), then runs the allreduces one after another: tensors of 1 MiB
    or more alone, smaller ones fused in order into buffers of up to `--fusion-mb`; a ring allreduce of b
    bytes on n ranks takes 2(n-1)/n x b/B + 2(n-1) alpha;
  - the next cycle starts one cycle after this one started or when this one ends, whichever is later, at
    once when the backward is over; with nothing left outstanding the engine sleeps again.
The step on n ranks ends when the backward and the last allreduce have both ended:
    T(n) = F + max(Tb, end of the last allreduce) + R,     efficiency(n) = T(1) / T(n)
The fusion buffer's copies (memory bandwidth, not network) are left out.

The `horovod` engine is Horovod's of 2017 as its docs describe it (the 512-GPU benchmark's): every tensor
fused in order up to the threshold (64 MB, no tensor alone), a cycle every 5 ms whether or not the backward
is over (a tensor waits for the next cycle: its first cycle after a quiet spell is taken to start half a
cycle after the first submission, the mean wait), and a negotiation through rank 0 (a gather and a
broadcast: 2 ceil(log2 n) alpha).

no_overlap_step() is the bound the rest of bench/scaling uses: T(1) + one ring allreduce of every gradient
after the backward, 2(n-1)/n x bytes/B + 2(n-1) alpha. It overlaps nothing but pays only one latency, so
where latency dominates (many ranks, a large alpha, an engine that reduces many tensors alone) the
simulation can come out below it.
"""
import json
import math
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field

ALONE_BYTES = 1 << 20  # ringtrain's engine reduces a tensor of 1 MiB or more alone, in place (kAloneBytes)
BUFFER_NAMES = ("running_mean", "running_var")  # saved with the model, never allreduced


@dataclass
class Layer:
    name: str
    backward_s: float
    tensors: list = field(default_factory=list)  # [name, elements], in the order the layer submits them

    @property
    def bytes(self):
        return 4 * sum(count for _, count in self.tensors)


@dataclass
class Profile:
    model: str
    batch: int          # samples per step in the run profiled
    steps: int          # steps averaged (the first left out)
    step_s: float       # T(1): the whole one-rank step
    forward_s: float    # F
    layers: list        # [Layer], forward order
    params: int
    source: str = ""    # what the figures are: the run's machine, or a throughput they were scaled to

    @property
    def backward_s(self):
        return sum(layer.backward_s for layer in self.layers)

    @property
    def rest_s(self):
        return self.step_s - self.forward_s - self.backward_s

    @property
    def bytes(self):
        return 4 * self.params

    def scaled(self, factor, source):
        """The same step with every part (forward, each layer's backward, the rest) `factor` times as long."""
        layers = [Layer(l.name, l.backward_s * factor, l.tensors) for l in self.layers]
        return Profile(self.model, self.batch, self.steps, self.step_s * factor, self.forward_s * factor, layers,
                       self.params, source)

    def to_json(self):
        return json.dumps(asdict(self), indent=1)

    @staticmethod
    def from_json(text):
        d = json.loads(text)
        d["layers"] = [Layer(**l) for l in d["layers"]]
        return Profile(**d)


def read_timeline(path, skip=1):
    """T(1), F and each top-level layer's backward seconds (rank 0, the mean over the steps after the first
    `skip`), the layers in forward order, and how many steps that mean is over."""
    with open(path) as f:
        events = [e for e in json.load(f)["traceEvents"] if e.get("ph") == "X" and e.get("pid", 0) == 0]
    steps = sorted((e for e in events if re.fullmatch(r"step \d+", e["name"])), key=lambda e: e["ts"])
    if not steps:
        raise ValueError(f"{path}: no `step N` spans")
    kept = steps[skip:] or steps[-1:]  # one recorded step: use it rather than nothing
    forward, backward, order = 0.0, {}, []
    for step in kept:
        begin, end = step["ts"], step["ts"] + step["dur"]
        for e in events:
            if not begin <= e["ts"] < end:
                continue
            kind, _, layer = e["name"].partition(" ")
            if kind == "forward" and "micro-batch" not in layer:
                forward += e["dur"]
                if step is kept[0]:
                    order.append(layer)
            elif kind == "backward" and "micro-batch" not in layer:
                backward[layer] = backward.get(layer, 0.0) + e["dur"]
    n = len(kept)
    step_s = sum(s["dur"] for s in kept) * 1e-6 / n
    return step_s, forward * 1e-6 / n, [(l, backward.get(l, 0.0) * 1e-6 / n) for l in order], n


def read_param_tensors(model_file):
    """{top-level layer: [[tensor name, elements], ...]} of a model saved by `ringtrain train --save`: every
    dataset but batchnorm's running statistics, grouped by the first component of its path. Read with h5ls
    (hdf5-tools, which .ci/setup installs), else h5py."""
    datasets = []
    if shutil.which("h5ls"):
        out = subprocess.run(["h5ls", "-r", model_file], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            m = re.match(r"^(/\S+)\s+Dataset \{([^}]*)\}", line)
            if m:
                dims = [d.split("/")[0].strip() for d in m.group(2).split(",")]
                count = math.prod(int(d) for d in dims) if dims != ["SCALAR"] else 1
                datasets.append((m.group(1).lstrip("/"), count))
    else:
        try:
            import h5py
        except ImportError:
            raise SystemExit("scaling: reading a model's parameters needs h5ls (apt-get install hdf5-tools) or h5py")
        with h5py.File(model_file, "r") as f:
            f.visititems(lambda name, obj: datasets.append((name, int(obj.size)))
                         if isinstance(obj, h5py.Dataset) else None)
    layers = {}
    for name, count in datasets:
        if name.rsplit("/", 1)[-1] in BUFFER_NAMES:
            continue
        layers.setdefault(name.split("/")[0], []).append([name, count])
    return layers


def build_profile(model, batch, timeline, model_file, params=None, source=""):
    """A Profile from a run's timeline and saved model. `params`, the count the run printed, is checked
    against the saved tensors' sum, so that a tensor missed (or a buffer counted) cannot go unnoticed."""
    step_s, forward_s, backward, steps = read_timeline(timeline)
    tensors = read_param_tensors(model_file)
    layers = [Layer(name, seconds, tensors.pop(name, [])) for name, seconds in backward]
    if tensors:
        raise ValueError(f"{model_file}: parameters of layers the timeline has no backward span for: "
                         f"{', '.join(sorted(tensors))}")
    total = sum(count for layer in layers for _, count in layer.tensors)
    if params is not None and total != params:
        raise ValueError(f"{model_file}: its tensors hold {total} parameters, the run printed {params}")
    return Profile(model, batch, steps, step_s, forward_s, layers, total, source)


def ring_seconds(n, nbytes, alpha, bandwidth):
    return 0.0 if n == 1 else 2 * (n - 1) / n * nbytes / bandwidth + 2 * (n - 1) * alpha


@dataclass
class Engine:
    name: str
    fusion_bytes: int
    cycle_s: float
    alone_bytes: float    # tensors this large or larger are reduced alone
    flush: bool           # the end of the backward starts a cycle at once (ringtrain) or waits for the next
    gather_rounds: int    # negotiation: this many ceil(log2 n)-round collectives of the ranks' ready state

    def negotiation_s(self, n, alpha, bandwidth, tensors):
        if n == 1:
            return 0.0
        bits = 8 * (2 + (tensors + 63) // 64)  # ringtrain's message: a header and one bit per known tensor
        return self.gather_rounds * math.ceil(math.log2(n)) * alpha + (n - 1) * bits / bandwidth

    def groups(self, ready):
        """The allreduces of one cycle, as byte counts, for tensors ready in this order (element counts)."""
        limit = max(1, self.fusion_bytes // 4)
        out, elements, members = [], 0, 0
        for count in ready:
            if 4 * count >= self.alone_bytes or count >= limit:
                out.append(4 * count)
                continue
            if members and elements + count > limit:
                out.append(4 * elements)
                elements, members = 0, 0
            elements += count
            members += 1
        if members:
            out.append(4 * elements)
        return out


def ringtrain_engine(fusion_mb=64, cycle_ms=1.0):
    return Engine("ringtrain", int(fusion_mb * (1 << 20)), cycle_ms * 1e-3, ALONE_BYTES, True, 1)


def horovod_engine(fusion_mb=64, cycle_ms=5.0):
    return Engine("horovod", int(fusion_mb * (1 << 20)), cycle_ms * 1e-3, math.inf, False, 2)


ENGINES = {"ringtrain": ringtrain_engine, "horovod": horovod_engine}


def simulate(profile, n, alpha, bandwidth, engine):
    """One step on n ranks: {'step_s', 'backward_s', 'comm_end_s' (from the backward's start), 'exposed_s'
    (communication past the backward's end), 'allreduces', 'cycles', 'comm_s' (the allreduces' sum), 'trace'
    (each cycle's start, end and allreduces in bytes)}."""
    # Submissions in backward order: (time ready, element count).
    submits, t = [], 0.0
    for layer in reversed(profile.layers):
        t += layer.backward_s
        submits += [(t, count) for _, count in layer.tensors]
    backward = t
    result = {"backward_s": backward, "allreduces": 0, "cycles": 0, "comm_s": 0.0, "comm_end_s": backward,
              "trace": []}
    if n > 1 and submits:
        tensors = len(submits)
        i, end, start = 0, None, None  # next submission; the last cycle's end and start
        while i < len(submits):
            if end is None or submits[i][0] > end:
                # Idle: the first submission wakes the engine, which gathers for one cycle (or, in Horovod's,
                # waits for its next cycle, half a cycle on average).
                wake = submits[i][0] if end is None else max(submits[i][0], end)
                if engine.flush:
                    start = max(wake, min(wake + engine.cycle_s, backward))
                else:
                    start = wake + engine.cycle_s / 2
            elif engine.flush and end >= backward:
                start = end
            elif engine.flush:
                start = max(end, min(start + engine.cycle_s, backward))
            else:
                start = max(end, start + engine.cycle_s)
            ready = []
            while i < len(submits) and submits[i][0] <= start:
                ready.append(submits[i][1])
                i += 1
            now = start + engine.negotiation_s(n, alpha, bandwidth, tensors)
            groups = engine.groups(ready)
            for nbytes in groups:
                seconds = ring_seconds(n, nbytes, alpha, bandwidth)
                now += seconds
                result["comm_s"] += seconds
                result["allreduces"] += 1
            result["cycles"] += 1
            result["trace"].append((start, now, groups))
            end = now
        result["comm_end_s"] = max(backward, end)
    result["exposed_s"] = result["comm_end_s"] - backward
    result["step_s"] = profile.forward_s + result["comm_end_s"] + profile.rest_s
    return result


def no_overlap_step(profile, n, alpha, bandwidth):
    """The bound: the one-rank step, then one ring allreduce of every gradient."""
    return profile.step_s + ring_seconds(n, profile.bytes, alpha, bandwidth)
