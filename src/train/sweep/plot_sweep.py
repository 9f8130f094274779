#!/usr/bin/python3
"""sweep.png of a ringtrain sweep: the ranked trials' metric against each swept setting, one panel per setting.
`ringtrain sweep --collect DIR` runs it (installed beside the binary as ringtrain-plot-sweep) after writing
DIR/summary.csv; the distributions come from DIR/sweep.json. A setting drawn from loguniform(), or whose
values are all positive and span a factor of 100 or more, gets a log x-axis; one whose values are not numbers
(optimizer=sgd,adam) one tick per value.

usage: ringtrain-plot-sweep DIR METRIC
Exit 3, with one line saying so, when matplotlib is missing (summary.csv is written all the same).
"""
import csv
import json
import math
import os
import sys


def number(text):
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def random_axis(key, record):
    return next((axis for axis in record.get("random", []) if axis["key"] == key), None)


def log_axis(key, values, record):
    axis = random_axis(key, record)
    if axis:
        return axis["distribution"] == "loguniform"
    return all(v > 0 for v in values) and max(values) >= 100 * min(values)


def panel(ax, key, rows, metric, record):
    texts = [row[key] for row in rows]
    scores = [float(row[metric]) for row in rows]
    best = min(range(len(rows)), key=lambda i: int(rows[i]["rank"]))
    values = [number(t) for t in texts]
    if all(v is not None for v in values):
        ax.scatter(values, scores, color="tab:blue")
        ax.scatter([values[best]], [scores[best]], color="tab:red", zorder=3, label=f"best: {rows[best]['trial']}")
        log = log_axis(key, values, record)
        if log:
            ax.set_xscale("log")
        axis = random_axis(key, record)
        if axis:  # the range searched, a little wider
            low, high = axis["low"], axis["high"]
            ax.set_xlim(*((low / 1.2, high * 1.2) if log else (low - 0.05 * (high - low), high + 0.05 * (high - low))))
    else:
        labels = sorted(set(texts), key=texts.index)
        ax.scatter([labels.index(t) for t in texts], scores, color="tab:blue")
        ax.scatter([labels.index(texts[best])], [scores[best]], color="tab:red", zorder=3,
                   label=f"best: {rows[best]['trial']}")
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels)
    ax.set_xlabel(key)
    ax.set_ylabel(metric)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: ringtrain-plot-sweep DIR METRIC")
    directory, metric = sys.argv[1], sys.argv[2]
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"matplotlib is not installed for {sys.executable} (Debian: apt-get install python3-matplotlib; "
              "RINGTRAIN_PYTHON names another Python)")
        return 3
    with open(os.path.join(directory, "summary.csv"), newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        keys = reader.fieldnames[5:-1]  # rank, trial, status, metric, epoch, the swept settings..., note
        rows = [row for row in reader if row["rank"]]
    with open(os.path.join(directory, "sweep.json"), encoding="utf-8") as f:
        record = json.load(f)
    if not rows:
        print("no trial is ranked yet: nothing to plot")
        return 1
    fig, axes = plt.subplots(1, len(keys), figsize=(4.5 * len(keys), 4), squeeze=False)
    for ax, key in zip(axes[0], keys):
        panel(ax, key, rows, metric, record)
    fig.suptitle(f"{os.path.basename(os.path.abspath(directory))}: best epoch's {metric} of {len(rows)} trials")
    fig.tight_layout()
    png = os.path.join(directory, "sweep.png")
    fig.savefig(f"{png}.tmp.{os.getpid()}", dpi=100, format="png")  # whole or not at all, as ringtrain writes
    os.replace(f"{png}.tmp.{os.getpid()}", png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
