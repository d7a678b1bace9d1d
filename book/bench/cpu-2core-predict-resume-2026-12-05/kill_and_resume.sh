#!/bin/bash
# SIGKILL an `ssl4sar predict` run over real patches during its third scene, resume it, compare with an uninterrupted run.
set -u
cd "$(git -C "$(dirname "$0")" rev-parse --show-toplevel)"
W=/tmp/resume-demo; rm -rf $W; mkdir -p $W
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=2
PY=.venv/bin/python
$PY - <<PYEOF
import torch
from ssl4sar.config import load_preset
from ssl4sar.models.convert import save_checkpoint
from ssl4sar.models.tyrion import Tyrion
torch.manual_seed(0)
save_checkpoint("$W/paper.pt", Tyrion.from_config(load_preset("paper")["model"]))
from ssl4sar.data.samples import patches_dir
import shutil, glob
for p in sorted(glob.glob(str(patches_dir() / "*_img.tif")))[:5]:
    shutil.copy(p, "$W/")
PYEOF
SCENES=$(ls $W/*_img.tif)
ARGS="--checkpoint $W/paper.pt --tta --no-overlay --no-progress --device cpu"
t0=$(date +%s.%N)
$PY -m ssl4sar.cli predict $SCENES $ARGS --out $W/full > $W/full.log 2>&1
t1=$(date +%s.%N)
echo "uninterrupted: $(echo "$t1 - $t0" | bc) s"
$PY -m ssl4sar.cli predict $SCENES $ARGS --out $W/out > $W/run1.log 2>&1 &
pid=$!
while [ "$(ls $W/out/*.prediction.json 2>/dev/null | wc -l)" -lt 2 ]; do sleep 0.2; done
sleep 2; kill -9 $pid; wait $pid 2>/dev/null
t2=$(date +%s.%N)
echo "killed after: $(echo "$t2 - $t1" | bc) s; records: $(ls $W/out/*.prediction.json | xargs -n1 basename | tr '\n' ' ')"
echo "predictions.csv rows: $(($(wc -l < $W/out/predictions.csv) - 1)); leftovers: $(ls -A $W/out | grep '^\.' | tr '\n' ' ')"
$PY -m ssl4sar.cli predict $SCENES $ARGS --out $W/out --resume > $W/run2.log 2>&1; echo "resume rc $?"
t3=$(date +%s.%N)
echo "resume: $(echo "$t3 - $t2" | bc) s"
grep -E "kept|predicted|predicting" $W/run2.log | sed 's/^.*INFO[^:]*: //'
$PY - <<PYEOF
import glob, numpy as np, rasterio, os, csv
full = sorted(glob.glob("$W/full/*_zones.tif"))
same = 0
for f in full:
    g = f.replace("/full/", "/out/")
    with rasterio.open(f) as a, rasterio.open(g) as b:
        same += bool(np.array_equal(a.read(), b.read()))
for f in sorted(glob.glob("$W/full/*_front.geojson")):
    same_front = open(f).read() == open(f.replace("/full/", "/out/")).read()
    print(os.path.basename(f), "front identical:", same_front)
print(f"zones identical: {same} of {len(full)}")
rows = list(csv.DictReader(open("$W/out/predictions.csv")))
print("predictions.csv rows after resume:", len(rows))
PYEOF
