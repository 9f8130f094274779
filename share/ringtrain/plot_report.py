#!/usr/bin/python3
"""Draws the plots of a `ringtrain eval --report DIR` report from the JSON and CSV files ringtrain wrote there.

ringtrain runs it after writing them: /usr/bin/python3 plot_report.py DIR. Classification: confusion_matrix.png
(a heat map of the counts, rows the true class, columns the predicted one, labelled with the class names) and
roc.png (the ROC curves with their AUC: class 1's of two classes, else one per class against the rest and
their macro average).
Regression: predicted_vs_true.png (a scatter per target, with the line of exact predictions). Each PNG is
written beside its final name (NAME.tmp.PID, as ringtrain's own outputs) and renamed into place, so an earlier
plot is replaced whole or kept. Prints one line naming the plots; exits 3 saying why when matplotlib is missing.
"""
import csv
import json
import math
import os
import sys

MAX_ANNOTATED_CLASSES = 20  # beyond, the counts in the cells would be unreadable
MAX_SCATTERS = 16


def save(fig, directory, name):
    path = os.path.join(directory, name)
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return name


def read_csv(directory, name):
    with open(os.path.join(directory, name), newline="") as f:
        return list(csv.reader(f))


def confusion_plot(plt, directory, report):
    rows = read_csv(directory, "confusion_matrix.csv")
    names = rows[0][1:]
    counts = [[int(v) for v in row[1:]] for row in rows[1:]]
    k = len(names)
    size = max(4.0, min(16.0, 0.6 * k + 2))
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(counts, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(k), labels=names, rotation=45 if k > 4 else 0, ha="right" if k > 4 else "center")
    ax.set_yticks(range(k), labels=names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"confusion matrix: {report['samples']} samples, accuracy {report['accuracy']:.4f}")
    if k <= MAX_ANNOTATED_CLASSES:
        top = max(max(row) for row in counts) or 1
        for t in range(k):
            for p in range(k):
                ax.text(p, t, str(counts[t][p]), ha="center", va="center", fontsize=8,
                        color="white" if counts[t][p] > top / 2 else "black")
    name = save(fig, directory, "confusion_matrix.png")
    plt.close(fig)
    return name


def roc_plot(plt, directory, report):
    curves = {}
    for row in read_csv(directory, "roc.csv")[1:]:
        curve = curves.setdefault((int(row[0]), row[1]), ([], []))
        curve[0].append(float(row[2]))
        curve[1].append(float(row[3]))
    binary = report["classes"] == 2
    aucs = [report["roc_auc"]] if binary else report["roc_auc_per_class"]
    fig, ax = plt.subplots(figsize=(6.5, 6))
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="chance")
    for ((cls, name), (fpr, tpr)), auc in zip(sorted(curves.items()), [a for a in aucs if a is not None]):
        label = f"class {name}" if binary else name
        ax.plot(fpr, tpr, linewidth=1.5, label=f"{label} (AUC {auc:.4f})")
    if not binary and curves:
        # The classes' curves averaged at every false positive rate any of them reaches.
        import numpy as np
        grid = np.unique(np.concatenate([fpr for fpr, _ in curves.values()]))
        mean = np.mean([np.interp(grid, fpr, tpr) for fpr, tpr in curves.values()], axis=0)
        ax.plot(grid, mean, color="black", linestyle=":", linewidth=2.5, label="macro average of the curves")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    auc = report["roc_auc"]
    headline = "n/a" if auc is None else f"{auc:.4f}"
    ax.set_title(f"ROC, class 1 vs 0: AUC {headline}" if binary else f"ROC, one vs rest: macro AUC {headline}")
    ax.legend(loc="lower right", fontsize=7 if len(curves) > 10 else 9)
    name = save(fig, directory, "roc.png")
    plt.close(fig)
    return name


def scatter_plot(plt, directory, report):
    rows = read_csv(directory, "predictions.csv")
    targets = report["targets"]
    shown = min(targets, MAX_SCATTERS)
    columns = min(shown, 4)
    lines = math.ceil(shown / columns)
    fig, axes = plt.subplots(lines, columns, figsize=(5 * columns, 5 * lines), squeeze=False)
    for t in range(shown):
        ax = axes[t // columns][t % columns]
        truth = [float(r[1 + t]) for r in rows[1:]]
        predicted = [float(r[1 + targets + t]) for r in rows[1:]]
        ax.scatter(truth, predicted, s=6, alpha=0.5)
        low, high = min(truth + predicted), max(truth + predicted)
        ax.plot([low, high], [low, high], linestyle="--", color="grey", linewidth=1)
        scores = report["per_target"][t]
        ax.set_title(f"{scores['name']}: MAE {scores['mae']:.4g}, RMSE {scores['rmse']:.4g}, R² {scores['r2']:.4f}",
                     fontsize=9)
        ax.set_xlabel("true value")
        ax.set_ylabel("predicted value")
    for t in range(shown, lines * columns):
        axes[t // columns][t % columns].axis("off")
    name = save(fig, directory, "predicted_vs_true.png")
    plt.close(fig)
    return name


def main():
    directory = sys.argv[1]
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        print(f"matplotlib is not installed for {sys.executable} ({e}); apt-get install python3-matplotlib")
        return 3
    with open(os.path.join(directory, "report.json")) as f:
        report = json.load(f)
    if report["task"] == "classification":
        written = [confusion_plot(plt, directory, report), roc_plot(plt, directory, report)]
    else:
        written = [scatter_plot(plt, directory, report)]
    print("plots: " + ", ".join(os.path.join(directory, name) for name in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
