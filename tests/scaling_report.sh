#!/usr/bin/env bash
# bench/scaling on a small grid: it must write the CSV (every mode at 1, 2 and 4 ranks, weak and strong, with
# the model beside synchronous data parallel), the model's extrapolation, three PNG plots and the report, and
# the report must say what the extrapolation assumes (the network's alpha and bandwidth and where they came
# from, the step time and that it is this machine's CPU), warn when alpha and bandwidth were fitted on one
# node, keep every prediction at or below 1, explain measured efficiencies above 1, and describe only the
# modes that ran. A second, smaller run (sync only, the network given) checks the other side of each.
# model.csv and the report carry the overlap model (the engine simulated on the one-rank run's timeline and saved
# model) beside the no-overlap bound; a third run (--predict-only --horovod, resnet20 on synthetic 1x28x28
# samples) checks the prediction path for other models: overlap.csv at 1..1024 ranks, the alpha sensitivity,
# Horovod's comparison table; and the simulation itself is checked against a step worked out by hand.
# The binaries are this build's (CMake passes them), and the shards are prepared here from Debian's
# Fashion-MNIST, so the test runs from a build directory of any name and place.
# usage: scaling_report.sh BENCH_SCALING RINGTRAIN ALLREDUCE OUT_DIR
set -uo pipefail
scaling=$1 bin=$2 allreduce=$3 out=$4
rm -rf "$out"
mkdir -p "$out"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
"$scaling" --help >"$out/help.txt" || { echo "FAIL: bench/scaling --help exited $?"; exit 1; }
"$bin" prep --input /usr/share/datasets/fashion-mnist --out "$out/data" --shards 4 >/dev/null ||
  { echo "FAIL: ringtrain prep exited $? (is dataset-fashion-mnist installed? .ci/setup installs it)"; exit 1; }
"$scaling" --bin "$bin" --allreduce "$allreduce" --data "$out/data" --model mlp --steps 50 --out "$out/all" \
  | tee "$out/all.log" || { echo "FAIL: bench/scaling exited $?"; exit 1; }
"$scaling" --bin "$bin" --allreduce "$allreduce" --data "$out/data" --model mlp --steps 10 --modes sync --ranks 1,2 \
  --alpha-us 2 --bandwidth-gbs 25 --out "$out/sync" | tee "$out/sync.log" ||
  { echo "FAIL: bench/scaling --modes sync exited $?"; exit 1; }
"$scaling" --bin "$bin" --predict-only --horovod --models resnet20 --profile-data synthetic:1x28x28:10 \
  --profile-batch 8 --profile-steps 3 --img-per-s resnet20=2000 --out "$out/predict" | tee "$out/predict.log" ||
  { echo "FAIL: bench/scaling --predict-only --horovod exited $?"; exit 1; }
# The fit runs on 2 ranks as mpirun places them; on one machine, or a hostfile's first node, that is one host.
fit_hosts=$(mpirun --oversubscribe -np 2 hostname | sort -u | wc -l)
/usr/bin/python3 - "$out" "$fit_hosts" "$(dirname "$scaling")" <<'PY' || exit 1
import csv, os, re, sys
out, fit_hosts = sys.argv[1], int(sys.argv[2])
sys.dont_write_bytecode = True
sys.path.insert(0, sys.argv[3])
import scaling_overlap as so

# --help: every option says what it does and its default.
text = open(os.path.join(out, "help.txt")).read()
section = text[text.index("\noptions:\n"):]
entries = re.split(r"\n  (?=-)", section)[1:]
assert len(entries) >= 12, entries
for entry in entries:
    name = entry.split()[0].rstrip(",")
    assert len(entry.split()) > 2, f"--help: no text for {name}"  # more than the option and its metavar
    if name not in ("-h", "--help"):
        assert "default" in entry, f"--help: {name} does not say its default: {entry!r}"

def load(run):
    rows = list(csv.DictReader(open(os.path.join(out, run, "scaling.csv"))))
    model = list(csv.DictReader(open(os.path.join(out, run, "model.csv"))))
    report = open(os.path.join(out, run, "report.md"), encoding="utf-8").read()
    log = open(os.path.join(out, f"{run}.log"), encoding="utf-8").read()
    for png in ("throughput.png", "efficiency.png", "prediction.png"):
        with open(os.path.join(out, run, png), "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n", (run, png)
    assert [int(m["ranks"]) for m in model] == [2 ** k for k in range(11)], model
    # No prediction above 1: the model against measurement, the extrapolation (both columns), and the report's
    # tables. The overlap model is 1 on one rank and falls with the rank count only through communication.
    predicted = [float(r["predicted_efficiency"]) for r in rows if r["predicted_efficiency"]]
    predicted += [float(m["predicted_weak_efficiency"]) for m in model]
    overlapped = [float(m["overlap_weak_efficiency"]) for m in model]
    assert max(predicted + overlapped) <= 1.0 and min(overlapped) > 0, (run, predicted, overlapped)
    assert overlapped[0] == 1.0 and float(model[0]["overlap_exposed_s"]) == 0, (run, model[0])
    table = re.findall(r"^\| (\d+) \| (\d+\.\d+) \| (\d+\.\d+) \|$", report, re.M)
    assert [int(t[0]) for t in table] == [2 ** k for k in range(11)], (run, table)
    for m in re.finditer(r"model (\d+\.\d+)", report):
        assert float(m.group(1)) <= 1.0, (run, m.group(0))
    assert max(float(e) for t in table for e in t[1:]) <= 1.0, (run, table)
    assert "| ranks | efficiency, no overlap | efficiency, overlap |" in report, run
    measured_above = [r for r in rows if float(r["efficiency"]) > 1.0]
    assert bool(measured_above) == ("Measured efficiencies above 1" in report), (run, measured_above)
    # The assumptions, named: network figures with units and origin, the step time and whose it is.
    assert re.search(r"- Network: alpha \d+\.\d µs", report) and re.search(r"\d+\.\d\d GB/s", report), run
    assert re.search(r"- Step time: \d+\.\d\d ms per step of 64 samples .*this machine's CPU, measured", report), run
    assert "one per GPU" not in report, run
    return rows, report, log

# The whole grid, the network fitted here.
rows, report, log = load("all")
have = {(r["mode"], r["scaling"], int(r["ranks"])) for r in rows}
for scaling in ("weak", "strong"):
    for n in (1, 2, 4):
        assert ("sync", scaling, n) in have and ("pipeline", scaling, n) in have, (scaling, n, have)
    for n in (2, 4):
        assert ("ps", scaling, n) in have, (scaling, n, have)
assert all(r["predicted_efficiency"] for r in rows if r["mode"] == "sync"), "sync rows without the model"
for want in ("| sync | weak | 2 |", "weak, 2 ranks: measured", "## Predicted weak scaling at 1..1024 ranks", "| 1024 |",
             "- `sync`:", "- `ps`:", "- `pipeline`:", "ideal scaling", "no prediction exceeds 1.",
             "fitted by bench/allreduce on 2 ranks on "):
    assert want in report, want
warning = "the prediction's alpha and bandwidth were fitted on one node"
if fit_hosts == 1:
    assert warning in report and "pass --alpha-us and --bandwidth-gbs" in report, "report: no one-node warning"
    assert f"warning: {warning}" in log, "stdout: no one-node warning"
    assert "on one host" in report and "shared memory, not a network" in report, "report: fit's host not named"
else:
    assert warning not in report and warning not in log, "one-node warning on several hosts"

# Data parallel alone, the network given: no other mode described, no warning, the flags named as the source.
rows, report, log = load("sync")
assert {r["mode"] for r in rows} == {"sync"}, rows
lower = report.lower()
for unwanted in ("`ps`", "`pipeline`", "pipeline", "server", "staleness", "micro-batch"):
    assert unwanted not in lower, f"--modes sync: report describes {unwanted}"
assert "- Network: alpha 2.0 µs, given by --alpha-us; bandwidth 25.00 GB/s, given by --bandwidth-gbs." in report, \
    "given network not named"
assert "warning" not in lower and "warning" not in log.lower(), "warning although the network was given"

# The prediction path: one model profiled, Horovod's setup, no grid and no fit.
run = os.path.join(out, "predict")
assert not os.path.exists(os.path.join(run, "scaling.csv")), "--predict-only ran the grid"
with open(os.path.join(run, "overlap.png"), "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n", "overlap.png"
rows = list(csv.DictReader(open(os.path.join(run, "overlap.csv"))))
assert [(r["model"], int(r["ranks"]), r["engine"]) for r in rows] == \
    [("resnet20", 2 ** k, "horovod") for k in range(11)], rows
for r in rows:
    for col in ("no_overlap_efficiency", "overlap_efficiency"):
        assert 0 < float(r[col]) <= 1.0, r
assert abs(float(rows[0]["step_s_one_rank"]) - 64 / 2000) < 1e-6, rows[0]  # --rank-batch 64 at 2000 img/s
assert float(rows[-1]["overlap_efficiency"]) < 1.0 and int(rows[-1]["allreduces"]) > 0, rows[-1]
sens = list(csv.DictReader(open(os.path.join(run, "sensitivity.csv"))))
assert [float(s["alpha_us"]) for s in sens] == [1, 2, 5, 10, 20, 50], sens
# The bound falls as alpha grows. The engines' cycles are discrete (a longer allreduce lets more tensors fuse
# into the next one), so between neighbours they may not, but 50 µs is worse than 1 µs for each.
values = [float(s["no_overlap_efficiency"]) for s in sens]
assert values == sorted(values, reverse=True), values
for col in ("overlap_efficiency_ringtrain", "overlap_efficiency_horovod"):
    assert float(sens[-1][col]) < float(sens[0][col]), (col, sens)
report = open(os.path.join(run, "report.md"), encoding="utf-8").read()
for want in ("# Overlap prediction: resnet20", "### resnet20", "| 8 |", "| 1024 |", "efficiency, overlap",
             "Horovod's engine of 2017", "set by --horovod", "### How the 512-rank prediction moves with alpha",
             "### Against Horovod's measurement: 512 Pascal GPUs", "| resnet20 | 2000 | 32.0 | - |",
             "2000 img/s at 64 samples a step (--img-per-s)", "![overlap](overlap.png)"):
    assert want in report, f"--predict-only report: no {want!r}"
assert "warning" not in report.lower(), "warning although --horovod gave the network"

# The simulation against a step worked out by hand: forward 5 ms, two layers of 10 ms backward each with one
# tensor of 1000 floats, rest 5 ms (T(1) 30 ms); 2 ranks, alpha 0.5 ms, B 4 MB/s, so one tensor's allreduce is
# 1 ms of bytes + 2 alpha = 2 ms and a negotiation alpha + 24 bytes / B = 0.506 ms.
layers = [so.Layer("a", 0.010, [["a/weight", 1000]]), so.Layer("b", 0.010, [["b/weight", 1000]])]
p = so.Profile("hand", 1, 1, 0.030, 0.005, layers, 2000)
ms = lambda s: round(s * 1e3, 6)
# ringtrain: b ready at 10, its cycle at 11 (one cycle later), done 13.506; a ready at 20 with the backward's end,
# its cycle at once, done 22.506. T(2) = 5 + 22.506 + 5.
r = so.simulate(p, 2, 0.5e-3, 4e6, so.ringtrain_engine())
assert (ms(r["step_s"]), ms(r["exposed_s"]), r["allreduces"], r["cycles"]) == (32.506, 2.506, 2, 2), r
# Horovod's: each tensor waits half a 5 ms cycle, negotiation 2 alpha + 24 bytes / B: done 15.506 and 25.506.
r = so.simulate(p, 2, 0.5e-3, 4e6, so.horovod_engine())
assert (ms(r["step_s"]), ms(r["exposed_s"])) == (35.506, 5.506), r
# The bound: T(1) + one allreduce of 8000 bytes, 2 ms of bytes + 2 alpha.
assert ms(so.no_overlap_step(p, 2, 0.5e-3, 4e6)) == 33.0
# One rank: no engine, T(1) itself.
assert ms(so.simulate(p, 1, 0.5e-3, 4e6, so.ringtrain_engine())["step_s"]) == 30.0
# Fusion: ringtrain reduces tensors of 1 MiB or more alone and fuses the rest in order up to the buffer; Horovod
# fuses everything that fits.
assert so.ringtrain_engine(fusion_mb=1).groups([300000, 100, 200, 262000, 50]) == [1200000, 1200, 1048200]
assert so.horovod_engine(fusion_mb=64).groups([300000, 100, 200]) == [1201200]
print("PASS")
PY
