#!/bin/bash
# SIGKILL an `ssl4sar evaluate` run (paper network, TTA) on the demo preset's synthetic test split after 10 scenes,
# resume it, and compare every table and file with an uninterrupted run.
set -u
cd "$(git -C "$(dirname "$0")" rev-parse --show-toplevel)"
W=/tmp/eval-resume; rm -rf $W; mkdir -p $W
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=2
PY=.venv/bin/python
echo "commit $(git rev-parse --short HEAD); $(nproc) cores"
$PY -m ssl4sar.cli data synth --out $W/data --preset demo --layouts caffe --no-progress > $W/synth.log 2>&1 || { tail $W/synth.log; exit 1; }
$PY - <<PYEOF
import torch
from ssl4sar.config import load_preset
from ssl4sar.models.convert import save_checkpoint
from ssl4sar.models.tyrion import Tyrion
torch.manual_seed(0)
save_checkpoint("$W/paper.pt", Tyrion.from_config(load_preset("paper")["model"]))
PYEOF
ARGS="--checkpoint $W/paper.pt --tta --split test --data $W/data --device cpu --no-progress --figures 4 --min-front-length-m 0"
t0=$(date +%s.%N)
$PY -m ssl4sar.cli evaluate $ARGS --out $W/full > $W/full.log 2>&1; echo "uninterrupted rc $?"
t1=$(date +%s.%N)
echo "uninterrupted: $(echo "$t1 - $t0" | bc) s, $(ls $W/full/records | wc -l) scenes"
$PY -m ssl4sar.cli evaluate $ARGS --out $W/out > $W/run1.log 2>&1 &
pid=$!
while [ "$(ls $W/out/records 2>/dev/null | wc -l)" -lt 10 ]; do sleep 0.2; done
sleep 1; kill -9 $pid; wait $pid 2>/dev/null
t2=$(date +%s.%N)
echo "killed after: $(echo "$t2 - $t1" | bc) s; records: $(ls $W/out/records | wc -l); summary.json: $(ls $W/out/summary.json 2>/dev/null || echo none)"
echo "hidden files left: $(find $W/out -name '.*' | wc -l)"
$PY -m ssl4sar.cli evaluate $ARGS --out $W/out --resume > $W/run2.log 2>&1; echo "resume rc $?"
t3=$(date +%s.%N)
echo "resume: $(echo "$t3 - $t2" | bc) s"
grep -E "kept|MDE \(pooled\)" $W/run2.log
$PY - <<PYEOF
import json, pathlib
import pandas as pd
full, out = pathlib.Path("$W/full"), pathlib.Path("$W/out")
def files(d):
    return {str(p.relative_to(d)): p.read_bytes() for p in d.rglob("*") if p.is_file() and p.parent != d
            and p.parent.name != "records"}
a, b = files(full), files(out)
print(f"per-scene files: {len(a)} uninterrupted, {len(b)} resumed, identical: {a == b}")
for name in ("per_image.csv", "breakdown.csv", "zone_metrics.csv"):
    x = pd.read_csv(full / name).drop(columns=["inference_s"], errors="ignore")
    y = pd.read_csv(out / name).drop(columns=["inference_s"], errors="ignore")
    print(f"{name} identical (but inference_s): {x.equals(y)}")
s, t = (json.loads((d / "summary.json").read_text()) for d in (full, out))
skip = {"elapsed_s", "scenes_kept_from_earlier_run"}
print("summary.json identical (but elapsed_s, scenes kept):", {k: v for k, v in s.items() if k not in skip}
      == {k: v for k, v in t.items() if k not in skip})
print("pooled MDE (m):", s["pooled_mde_m"], t["pooled_mde_m"], "; scenes kept:", t["scenes_kept_from_earlier_run"])
PYEOF
