#!/usr/bin/python3
"""ringtrain predict and eval --report against scikit-learn, on models trained here for a few steps.

Three cases: a Fashion-MNIST subset (10 classes), a binary CSV and a regression CSV, each prepared with
`ringtrain prep`. For each, `ringtrain predict` writes the test split's predictions, and every number of the
report.json that `ringtrain eval --report` writes must equal what scikit-learn computes from those predictions
and the shards' own labels or targets: to 1e-6 (for regression errors, in the target's units, 1e-6 of the
value), the confusion matrix exactly. Precision, recall and F1 with zero_division=0 over every class of the
model; AUC with roc_auc_score (one-vs-rest, macro, for more than two classes); the ROC curves of roc.csv with roc_curve. Also: predict on 2 and 3 ranks writes the same file as on one, and eval
--report on 2 ranks the same report; the PNG plots are written, and without matplotlib (a stand-in module that
fails to import) the JSON and CSV files still are, with one line saying why the plots were skipped; files of
the report directory that are not the report's are left alone.

usage: report_vs_sklearn.py RINGTRAIN MPIRUN
"""
import csv
import gzip
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile

import h5py
import numpy as np
from sklearn import metrics

BIN, MPIRUN = sys.argv[1], sys.argv[2]
FMNIST = "/usr/share/datasets/fashion-mnist"
TOLERANCE = 1e-6
checked = 0


def fail(message):
    print("FAIL: " + message)
    sys.exit(1)


def run(*args, ranks=1, env=None):
    command = ([MPIRUN, "--oversubscribe", "-np", str(ranks)] if ranks > 1 else []) + [BIN, *map(str, args)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    if done.returncode != 0:
        fail(f"{' '.join(command)} exited {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def close(name, got, want, relative=False):
    global checked
    scale = max(1.0, abs(want)) if relative else 1.0
    if got is None or want is None or not math.isfinite(got) or abs(got - want) > TOLERANCE * scale:
        fail(f"{name}: report says {got}, scikit-learn {want}")
    checked += 1


def exact(name, got, want):
    global checked
    if got != want:
        fail(f"{name}: report says {got}, scikit-learn {want}")
    checked += 1


def read_predictions(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], np.array(rows[1:], dtype=np.float64)
    if [int(i) for i in body[:, 0]] != list(range(len(body))):
        fail(f"{path}: rows are not in the input's order")
    return header, body


def test_truth(data_dir):
    """The test split's labels or targets as the shards store them, in order."""
    ys, names = [], None
    for name in sorted(n for n in os.listdir(data_dir) if n.startswith("test-") and n.endswith(".h5")):
        with h5py.File(os.path.join(data_dir, name), "r") as f:
            ys.append(f["y"][()])
            names = [n.decode() if isinstance(n, bytes) else n for n in f.attrs.get("class_names", [])]
    return np.concatenate(ys), names


def check_classification(label, data_dir, model, report_dir, work):
    out = run("predict", "--model-file", model, "--input", data_dir, "--out", f"{work}/{label}.csv")
    if "samples/s" not in out:
        fail(f"predict does not print its throughput: {out}")
    header, body = read_predictions(f"{work}/{label}.csv")
    predicted, probabilities = body[:, 1].astype(np.int64), body[:, 2:]
    classes = probabilities.shape[1]
    if header != ["index", "predicted"] + [f"p_{c}" for c in range(classes)]:
        fail(f"{label}: predict's header is {header}")
    exact(f"{label}: predicted = argmax", list(predicted), list(np.argmax(probabilities, axis=1)))
    y, names = test_truth(data_dir)
    labels = list(range(classes))
    eval_out = run("eval", "--model-file", model, "--data", data_dir, "--report", report_dir)
    with open(f"{report_dir}/report.json") as f:
        report = json.load(f)
    exact(f"{label}: samples", report["samples"], len(y))
    exact(f"{label}: classes", report["classes"], classes)
    if names:
        exact(f"{label}: class names", report["class_names"], names)
    close(f"{label}: accuracy", report["accuracy"], metrics.accuracy_score(y, predicted))
    exact(f"{label}: confusion matrix", report["confusion_matrix"],
          metrics.confusion_matrix(y, predicted, labels=labels).tolist())
    p, r, f1, support = metrics.precision_recall_fscore_support(y, predicted, labels=labels, zero_division=0)
    for c, row in enumerate(report["per_class"]):
        close(f"{label}: class {c} precision", row["precision"], p[c])
        close(f"{label}: class {c} recall", row["recall"], r[c])
        close(f"{label}: class {c} f1", row["f1"], f1[c])
        exact(f"{label}: class {c} support", row["support"], int(support[c]))
    for average in ("macro", "weighted"):
        p, r, f1, _ = metrics.precision_recall_fscore_support(y, predicted, labels=labels, average=average,
                                                             zero_division=0)
        close(f"{label}: {average} precision", report[f"{average}_avg"]["precision"], p)
        close(f"{label}: {average} recall", report[f"{average}_avg"]["recall"], r)
        close(f"{label}: {average} f1", report[f"{average}_avg"]["f1"], f1)
    if classes == 2:
        close(f"{label}: AUC", report["roc_auc"], metrics.roc_auc_score(y, probabilities[:, 1]))
        curves = {1: probabilities[:, 1]}
    else:
        close(f"{label}: macro AUC (one vs rest)", report["roc_auc"],
              metrics.roc_auc_score(y, probabilities, multi_class="ovr", average="macro", labels=labels))
        for c in labels:
            close(f"{label}: class {c} AUC", report["roc_auc_per_class"][c],
                  metrics.roc_auc_score(y == c, probabilities[:, c]))
        curves = {c: probabilities[:, c] for c in labels}
    with open(f"{report_dir}/roc.csv", newline="") as f:
        points = list(csv.DictReader(f))
    for c, scores in curves.items():
        fpr, tpr, thresholds = metrics.roc_curve(y == c, scores)
        mine = [row for row in points if int(row["class"]) == c]
        exact(f"{label}: class {c} ROC points", len(mine), len(fpr))
        for i, row in enumerate(mine):
            close(f"{label}: class {c} ROC fpr {i}", float(row["fpr"]), fpr[i])
            close(f"{label}: class {c} ROC tpr {i}", float(row["tpr"]), tpr[i])
            if i > 0:  # the first threshold is above every score: inf here, max + 1 in scikit-learn 1.2
                close(f"{label}: class {c} ROC threshold {i}", float(row["threshold"]), thresholds[i])
    accuracy_line = next(line for line in eval_out.splitlines() if line.startswith("test "))
    if f"test_accuracy {report['accuracy']:.4f}" not in accuracy_line:
        fail(f"{label}: eval prints '{accuracy_line}', the report {report['accuracy']}")
    for png in ("confusion_matrix.png", "roc.png"):
        with open(f"{report_dir}/{png}", "rb") as f:
            if f.read(8) != b"\x89PNG\r\n\x1a\n":
                fail(f"{label}: {png} is not a PNG")
    if "plots: " not in eval_out:
        fail(f"{label}: eval does not name its plots: {eval_out}")
    print(f"ok {label}: {len(y)} samples, {classes} classes, accuracy {report['accuracy']:.4f}, "
          f"AUC {report['roc_auc']:.4f}")
    return report


def check_regression(data_dir, model, report_dir, work):
    run("predict", "--model-file", model, "--input", data_dir, "--out", f"{work}/regression.csv")
    header, body = read_predictions(f"{work}/regression.csv")
    if header != ["index", "value"]:
        fail(f"regression: predict's header is {header}")
    predicted = body[:, 1]
    y, _ = test_truth(data_dir)
    run("eval", "--model-file", model, "--data", data_dir, "--report", report_dir)
    with open(f"{report_dir}/report.json") as f:
        report = json.load(f)
    exact("regression: samples", report["samples"], len(y))
    close("regression: MAE", report["mae"], metrics.mean_absolute_error(y, predicted), relative=True)
    close("regression: RMSE", report["rmse"], math.sqrt(metrics.mean_squared_error(y, predicted)), relative=True)
    close("regression: R^2", report["r2"], metrics.r2_score(y, predicted), relative=True)
    with open(f"{report_dir}/predictions.csv", newline="") as f:
        rows = np.array(list(csv.reader(f))[1:], dtype=np.float64)
    # As floats: the CSV holds each float's shortest text, which reads back as that float.
    exact("regression: true values in predictions.csv", list(rows[:, 1].astype(np.float32)), list(y))
    exact("regression: predicted values in predictions.csv", list(rows[:, 2]), list(predicted))
    with open(f"{report_dir}/predicted_vs_true.png", "rb") as f:
        if f.read(8) != b"\x89PNG\r\n\x1a\n":
            fail("regression: predicted_vs_true.png is not a PNG")
    print(f"ok regression: {len(y)} samples, MAE {report['mae']:.4g}, RMSE {report['rmse']:.4g}, R^2 {report['r2']:.4f}")


def idx_subset(source, target, counts):
    """The first N images and labels of each Fashion-MNIST IDX file (a short training run's data)."""
    os.makedirs(target)
    for prefix, n in counts.items():
        for kind, item in (("images-idx3", 784), ("labels-idx1", 1)):
            name = f"{prefix}-{kind}-ubyte.gz"
            with gzip.open(os.path.join(source, name)) as f:
                data = f.read()
            dims = data[3]
            header = bytearray(data[:4 + 4 * dims])
            header[4:8] = n.to_bytes(4, "big")
            with gzip.open(os.path.join(target, name), "wb") as f:
                f.write(bytes(header) + data[4 + 4 * dims:4 + 4 * dims + n * item])


def write_csvs(work):
    rng = random.Random(0)
    with open(f"{work}/binary.csv", "w") as f:
        f.write("a,b,c,label\n")
        for _ in range(400):
            a, b, c = (rng.gauss(0, 1) for _ in range(3))
            f.write(f"{a:.4f},{b:.4f},{c:.4f},{'yes' if a - 0.5 * b + rng.gauss(0, 0.7) > 0 else 'no'}\n")
    with open(f"{work}/regression.csv", "w") as f:
        f.write("x1,x2,x3,price\n")
        for _ in range(400):
            x = [rng.uniform(0, 10) for _ in range(3)]
            f.write(f"{x[0]:.3f},{x[1]:.3f},{x[2]:.3f},{2000 * x[0] - 900 * x[1] + 50000 + rng.gauss(0, 800):.2f}\n")


def check_without_matplotlib(data_dir, model, work):
    fake = f"{work}/no-matplotlib/matplotlib"
    os.makedirs(fake)
    with open(f"{fake}/__init__.py", "w") as f:
        f.write("raise ImportError('No module named matplotlib (a stand-in of the test)')\n")
    env = dict(os.environ, PYTHONPATH=os.path.dirname(fake))
    out = run("eval", "--model-file", model, "--data", data_dir, "--report", f"{work}/plain", env=env)
    skipped = [line for line in out.splitlines() if line.startswith("plots skipped:")]
    if len(skipped) != 1 or "matplotlib is not installed" not in skipped[0]:
        fail(f"without matplotlib, eval says: {out}")
    written = sorted(os.listdir(f"{work}/plain"))
    if written != ["confusion_matrix.csv", "per_class.csv", "report.json", "roc.csv"]:
        fail(f"without matplotlib, the report directory holds {written}")
    print(f"ok without matplotlib: {skipped[0]}")


def main():
    work = tempfile.mkdtemp(prefix="ringtrain-report-")
    try:
        idx_subset(FMNIST, f"{work}/idx", {"train": 3000, "t10k": 1000})
        run("prep", "--input", f"{work}/idx", "--out", f"{work}/fmnist", "--shards", "2")
        run("train", "--data", f"{work}/fmnist", "--model", "mlp", "--steps", "40", "--batch", "64",
            "--save", f"{work}/fmnist.h5")
        os.makedirs(f"{work}/fmnist-report")
        with open(f"{work}/fmnist-report/notes.txt", "w") as f:
            f.write("not the report's")
        report = check_classification("fashion-mnist", f"{work}/fmnist", f"{work}/fmnist.h5", f"{work}/fmnist-report",
                                      work)
        with open(f"{work}/fmnist-report/notes.txt") as f:
            if f.read() != "not the report's":
                fail("eval --report changed a file of the directory that is not the report's")
        # N ranks: the same predictions file as one rank, and the same report. The same batch size (the default
        # 256, in 4 batches of the 1,000 samples): an optimised GEMM may round a row differently in a batch of
        # another size (OpenBLAS's AVX-512 kernels do), and predict keeps each sample in the batch it meets on one rank.
        with open(f"{work}/fashion-mnist.csv") as f:
            one_rank = f.read()
        for ranks in (2, 3):
            run("predict", "--model-file", f"{work}/fmnist.h5", "--input", f"{work}/fmnist", "--out",
                f"{work}/ranks{ranks}.csv", ranks=ranks)
            with open(f"{work}/ranks{ranks}.csv") as f:
                if f.read() != one_rank:
                    fail(f"predict on {ranks} ranks wrote another file than on one rank")
        run("eval", "--model-file", f"{work}/fmnist.h5", "--data", f"{work}/fmnist", "--report", f"{work}/report2",
            ranks=2)
        with open(f"{work}/report2/report.json") as f:
            if json.load(f) != report:
                fail("eval --report on 2 ranks wrote another report than on one rank")
        print("ok: predict on 2 and 3 ranks, and eval --report on 2, as on one rank")
        check_without_matplotlib(f"{work}/fmnist", f"{work}/fmnist.h5", work)

        write_csvs(work)
        run("prep", "--format", "csv", "--input", f"{work}/binary.csv", "--target", "label", "--out", f"{work}/binary")
        run("train", "--data", f"{work}/binary", "--model", "flatten,linear(8),relu,linear(out)", "--steps", "30",
            "--batch", "16", "--save", f"{work}/binary.h5")
        check_classification("binary", f"{work}/binary", f"{work}/binary.h5", f"{work}/binary-report", work)
        run("prep", "--format", "csv", "--input", f"{work}/regression.csv", "--target", "price", "--task",
            "regression", "--out", f"{work}/regression")
        run("train", "--data", f"{work}/regression", "--model", "flatten,linear(16),relu,linear(out)", "--steps", "60",
            "--batch", "16", "--save", f"{work}/regression.h5")
        check_regression(f"{work}/regression", f"{work}/regression.h5", f"{work}/regression-report", work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"PASS: {checked} numbers equal scikit-learn's")


if __name__ == "__main__":
    main()
