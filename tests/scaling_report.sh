#!/usr/bin/env bash
# bench/scaling on a small grid: it must write the CSV (every mode at 1, 2 and 4 ranks, weak and strong, with
# the model beside synchronous data parallel), the model's extrapolation, three PNG plots and the report, and
# the report must say what the extrapolation assumes (the network's alpha and bandwidth and where they came
# from, the step time and that it is this machine's CPU), warn when alpha and bandwidth were fitted on one
# node, keep every prediction at or below 1, explain measured efficiencies above 1, and describe only the
# modes that ran. A second, smaller run (sync only, the network given) checks the other side of each.
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
# The fit runs on 2 ranks as mpirun places them; on one machine, or a hostfile's first node, that is one host.
fit_hosts=$(mpirun --oversubscribe -np 2 hostname | sort -u | wc -l)
/usr/bin/python3 - "$out" "$fit_hosts" <<'PY' || exit 1
import csv, os, re, sys
out, fit_hosts = sys.argv[1], int(sys.argv[2])

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
    # No prediction above 1: the model against measurement, the extrapolation, and the report's tables.
    predicted = [float(r["predicted_efficiency"]) for r in rows if r["predicted_efficiency"]]
    predicted += [float(m["predicted_weak_efficiency"]) for m in model]
    assert max(predicted) <= 1.0, (run, predicted)
    for m in re.finditer(r"model (\d+\.\d+)|^\| \d+ \| (\d+\.\d+) \|$", report, re.M):
        assert float(m.group(1) or m.group(2)) <= 1.0, (run, m.group(0))
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
print("PASS")
PY
