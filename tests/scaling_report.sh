#!/usr/bin/env bash
# bench/scaling on a small grid: it must write the CSV (every mode at 1, 2 and 4 ranks, weak and strong, with
# the model beside synchronous data parallel), the model's extrapolation, three PNG plots and the report.
# The binaries are this build's (CMake passes them), and the shards are prepared here from Debian's
# Fashion-MNIST, so the test runs from a build directory of any name and place.
# usage: scaling_report.sh BENCH_SCALING RINGTRAIN ALLREDUCE OUT_DIR
set -uo pipefail
scaling=$1 bin=$2 allreduce=$3 out=$4
rm -rf "$out"
"$bin" prep --input /usr/share/datasets/fashion-mnist --out "$out/data" --shards 4 >/dev/null ||
  { echo "FAIL: ringtrain prep exited $? (is dataset-fashion-mnist installed? .ci/setup installs it)"; exit 1; }
"$scaling" --bin "$bin" --allreduce "$allreduce" --data "$out/data" --model mlp --steps 50 --out "$out" ||
  { echo "FAIL: bench/scaling exited $?"; exit 1; }
/usr/bin/python3 - "$out" <<'PY' || exit 1
import csv, os, sys
out = sys.argv[1]
rows = list(csv.DictReader(open(os.path.join(out, "scaling.csv"))))
have = {(r["mode"], r["scaling"], int(r["ranks"])) for r in rows}
for scaling in ("weak", "strong"):
    for n in (1, 2, 4):
        assert ("sync", scaling, n) in have and ("pipeline", scaling, n) in have, (scaling, n, have)
    for n in (2, 4):
        assert ("ps", scaling, n) in have, (scaling, n, have)
assert all(r["predicted_efficiency"] for r in rows if r["mode"] == "sync"), "sync rows without the model"
model = list(csv.DictReader(open(os.path.join(out, "model.csv"))))
assert [int(m["ranks"]) for m in model] == [2 ** k for k in range(11)], model
for png in ("throughput.png", "efficiency.png", "prediction.png"):
    with open(os.path.join(out, png), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n", png
report = open(os.path.join(out, "report.md")).read()
for want in ("| sync | weak | 2 |", "weak, 2 ranks: measured", "## Predicted weak scaling at 1..1024 ranks", "| 1024 |"):
    assert want in report, want
print("PASS")
PY
