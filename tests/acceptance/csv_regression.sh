#!/usr/bin/env bash
# Acceptance (issue 18): a CSV whose regression target is in the hundreds of thousands (house prices) goes
# through prep with its defaults and trains the default mlp with the defaults: the loss stays finite, the run
# converges, and the test MAE is reported in the price's own units, well below what predicting the training
# mean gives. Before targets were standardised, this run hit a non-finite gradient at step 3.
# usage: csv_regression.sh RINGTRAIN_BIN
set -euo pipefail
bin=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# 3000 houses: price = area x a district's rate + rooms + garden - age - distance + noise (sd 20000).
/usr/bin/python3 - "$work/houses.csv" <<'PY'
import random, sys
rng = random.Random(1)
rates = {"centre": 4200, "riverside": 3600, "north": 2500, "suburbs": 1900}
with open(sys.argv[1], "w") as f:
    f.write("id,area_m2,rooms,year_built,district,garden,distance_km,price\n")
    for i in range(3000):
        area, district = rng.uniform(35, 220), rng.choice(list(rates))
        rooms, year, garden = max(1, round(area / 30 + rng.gauss(0, 0.7))), rng.randint(1900, 2023), rng.random() < 0.5
        distance = rng.uniform(0.5, 25)
        price = (area * rates[district] + 12000 * rooms + 15000 * garden - 300 * (2024 - year) - 2500 * distance
                 + rng.gauss(0, 20000))
        f.write(f"H{i:05d},{area:.1f},{rooms},{year},{district},{'yes' if garden else 'no'},{distance:.1f},{price:.0f}\n")
PY
"$bin" prep --format csv --input "$work/houses.csv" --target price --drop id --out "$work/data"
"$bin" train --data "$work/data" --save "$work/model.h5" | tee "$work/log"
# What predicting the training split's mean scores on the test split: the bar the model must clear.
baseline=$(/usr/bin/python3 - "$work/data" <<'PY'
import glob, sys, h5py, numpy as np
train = np.concatenate([h5py.File(p, "r")["y"][:] for p in sorted(glob.glob(sys.argv[1] + "/train-*.h5"))])
test = h5py.File(sys.argv[1] + "/test-00000.h5", "r")["y"][:]
print(f"{np.mean(np.abs(test - train.mean())):.1f}")
PY
)
mae=$(sed -n 's/^test .*test_mae \([0-9.]*\).*/\1/p' "$work/log")
echo "test MAE $mae (predicting the mean: $baseline; need below a sixth of it)"
awk -v m="$mae" -v b="$baseline" 'BEGIN { exit !(m > 0 && m < b / 6) }'
# eval of the saved model scores in the same units.
"$bin" eval --model-file "$work/model.h5" --data "$work/data" | grep -q "test_mae $mae" ||
  { echo "eval does not report the same MAE"; exit 1; }
