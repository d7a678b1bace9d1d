"""Samples per second of one pretraining data-loader worker on a pool shaped like the paper's: 14 glaciers, one
15-band uint16 optical GeoTIFF each, SAR uint8 GeoTIFFs (tiled 256 px, deflate, as `ssl4sar data construct` writes
them) on the same ~2 MP grids (the reference configuration's mean SAR image: 2,052,490 px), 512 px crops.

Three ways of sampling, in alternating rounds, the same keys in each round:
  on-demand   each worker reads optical images when needed and keeps the 4 most recently used, whole SAR images
              (what PretrainDataModule did before this change; now preload=False, but with SAR windows)
  whole-sar   optical images preloaded, whole SAR images read per sample (the first change alone)
  windowed    optical images preloaded, only the crop's SAR window read (the library's default now)

Usage: python sampler_pool14.py POOL_DIR [N_SAMPLES] [ROUNDS]   (writes the pool on the first run, ~40 s)
"""

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from affine import Affine

from ssl4sar.data.datasets import EpochSampler, OpticalImages, UnlabeledTrainDataset
from ssl4sar.data.raster import write_geotiff
from ssl4sar.data.unlabeled import discover_unlabeled

torch.set_num_threads(1)
root = Path(sys.argv[1])
n_samples = int(sys.argv[2]) if len(sys.argv) > 2 else 40
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
if not (root / "optical").is_dir():
    rng = np.random.default_rng(0)
    for g in range(14):
        h, w = int(rng.integers(1100, 1800)), int(rng.integers(1100, 1800))
        transform = Affine(40.0, 0, 500000 + g * 1e5, 0, -40.0, 8e6)
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.sin(yy / 70.0) + np.cos(xx / 90.0)
        optical = np.stack([np.clip(3000 + 1500 * base + rng.normal(0, 300, (h, w)), 0, 12000)
                            for _ in range(15)]).astype(np.uint16)
        write_geotiff(root / "optical" / f"G{g:02d}_S2_2019-07-01.tif", optical, 32622, transform, nodata=0)
        for k in range(6):
            sar = np.clip(120 + 40 * base + rng.gamma(4, 10, (h, w)), 1, 255).astype(np.uint8)
            write_geotiff(root / "sar" / ("val" if k == 0 else "train") / f"S1_G{g:02d}_2019-{1 + k:02d}-01_{k}.tif",
                          sar, 32622, transform, nodata=0)
pairs = discover_unlabeled(root, "train")
shared = OpticalImages()
t0 = time.perf_counter()
shared.preload([p.optical_path for p in pairs], progress=False)
preload_s = time.perf_counter() - t0
modes = {"on-demand": UnlabeledTrainDataset(pairs, 512, 76496, seed=0, optical_cache_size=4),
         "whole-sar": UnlabeledTrainDataset(pairs, 512, 76496, seed=0, optical_images=shared),
         "windowed": UnlabeledTrainDataset(pairs, 512, 76496, seed=0, optical_images=shared)}
for name in ("on-demand", "whole-sar"):  # whole SAR images per sample, as before the window reads
    cache = modes[name]._cache
    cache.sar_cut = lambda pair, crop, c=cache: crop.cut(c.load(pair)[0])
times = {name: [] for name in modes}
sampler = EpochSampler(modes["windowed"])
for r in range(rounds):
    sampler.set_epoch(r)
    keys = list(sampler)[:n_samples]
    for name in (list(modes) if r % 2 == 0 else list(reversed(modes))):
        t0 = time.perf_counter()
        for k in keys:
            modes[name][k]
        times[name].append(time.perf_counter() - t0)
out = {"pool": {"glaciers": len({p.optical_path for p in pairs}), "pairs": len(pairs),
                "mean_image_mp": float(np.mean([np.prod(a.shape[-2:]) for a, _ in shared._items.values()])) / 1e6,
                "optical_mb_preloaded": shared.nbytes / 1e6, "preload_s": preload_s},
       "n_samples": n_samples, "rounds": rounds,
       "samples_per_s_best": {k: n_samples / min(v) for k, v in times.items()},
       "round_s": times,
       "ratio_per_round_vs_on_demand": {k: [a / b for a, b in zip(times["on-demand"], v)] for k, v in times.items()},
       "ratio_per_round_windowed_vs_whole_sar": [a / b for a, b in zip(times["whole-sar"], times["windowed"])]}
print(json.dumps(out, indent=1))
