"""Chapter 07's prediction of the 12 time-series scenes (demo model, TTA) in float32 and in bf16 autocast, alternating.

Usage: python chapter07_precision.py WORK_DIR  (the work folder of a demo `make book`: book/_work/demo)
"""
import sys, time, tempfile
from pathlib import Path
import numpy as np, rasterio
from ssl4sar import application
from ssl4sar.book import WorkLayout
from ssl4sar.config import load_preset
from ssl4sar.predict import predict_scenes
import torch

work = Path(sys.argv[1])
layout = WorkLayout(work)
cfg = load_preset("demo")
model = application.load_chosen_model(layout, cfg, "demo", device="cpu")
scenes = sorted((work / "data" / "timeseries" / "sar").glob("*.tif"))
kw = model.predict_kwargs()
out = {}
times = {"float32": [], "bfloat16": []}
for rnd in range(2):
    for name, amp in (("float32", None), ("bfloat16", torch.bfloat16)):
        d = Path(tempfile.mkdtemp()) / name
        t = time.perf_counter()
        run = predict_scenes(model.members, scenes, d, **{**kw, "amp_dtype": amp}, to_wgs84=True, member_fronts=True,
                             overlay=True)
        times[name].append(time.perf_counter() - t)
        out[name] = d
print({k: [round(x, 1) for x in v] for k, v in times.items()})
print("ratio fp32/bf16 per round:", [round(a / b, 2) for a, b in zip(times["float32"], times["bfloat16"])])
diff = tot = 0
for s in scenes:
    with rasterio.open(out["float32"] / f"{s.stem}_zones.tif") as a, rasterio.open(out["bfloat16"] / f"{s.stem}_zones.tif") as b:
        x, y = a.read(1), b.read(1)
    diff += int((x != y).sum()); tot += x.size
print(f"zone agreement {100 * (1 - diff / tot):.3f} % ({diff} of {tot} px differ)")
