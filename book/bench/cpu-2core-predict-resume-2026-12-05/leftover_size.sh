#!/bin/bash
# How much a SIGKILL during a tiled prediction of a 10-MP scene leaves behind (smoke network, CPU).
cd "$(git -C "$(dirname "$0")" rev-parse --show-toplevel)"; W=/tmp/leftover; rm -rf $W; mkdir -p $W
export HF_HUB_OFFLINE=1
.venv/bin/python - <<PY
import numpy as np, rasterio, torch
from rasterio.transform import from_origin
from ssl4sar.config import load_preset
from ssl4sar.models.convert import save_checkpoint
from ssl4sar.models.tyrion import Tyrion
torch.manual_seed(0)
save_checkpoint("$W/smoke.pt", Tyrion.from_config(load_preset("smoke")["model"]))
rng = np.random.default_rng(0)
img = rng.integers(1, 255, (3162, 3162), dtype=np.uint8)
with rasterio.open("$W/big.tif", "w", driver="GTiff", height=3162, width=3162, count=1, dtype="uint8",
                   crs="EPSG:32622", transform=from_origin(547000, 7675000, 20, 20)) as ds:
    ds.write(img, 1)
PY
.venv/bin/python -m ssl4sar.cli predict $W/big.tif --checkpoint $W/smoke.pt --out $W/out --tile-size 1024 --no-progress --no-overlay --device cpu > $W/run1.log 2>&1 &
pid=$!; sleep 25; kill -9 $pid; wait $pid 2>/dev/null
echo "left after SIGKILL: $(ls -A $W/out | grep '^\.' | tr '\n' ' ') on disk $(du -sh $W/out/.big.* | cut -f1), apparent $(du -sh --apparent-size $W/out/.big.* | cut -f1)"
.venv/bin/python -m ssl4sar.cli -v predict $W/big.tif --checkpoint $W/smoke.pt --out $W/out --tile-size 1024 --no-progress --no-overlay --device cpu --resume > $W/run2.log 2>&1; echo "resume rc $?"
grep -h "removed\|predicting" $W/run2.log | sed 's/^.*: \//\//'
echo "hidden entries after resume: $(ls -A $W/out | grep -c '^\.')"
rm -rf $W
