"""GDAL deflate on 1 and 2 threads, and at level 1, for a realistic 10-MP 4-class float32 probability raster:
seconds (best of 3 alternating rounds), size, md5 and whether the pixels read back equal what was written.

    python write_speed.py WORK_DIR
"""
import time, os, hashlib, sys
from pathlib import Path
import numpy as np, rasterio
from scipy import ndimage
from rasterio.transform import Affine
sys.path.insert(0, str(Path(__file__).parent))
from predict_outputs import scene
side = 3162
img = scene(side).astype(np.float32) / 255
rng = np.random.default_rng(0)
c = np.array([0.0, 0.2, 0.55, 0.9], np.float32)[:, None, None]
logits = -((ndimage.gaussian_filter(img, 8)[None] - c) ** 2) * 80
logits += ndimage.gaussian_filter(rng.normal(0, 6, logits.shape).astype(np.float32), (0, 5, 5))
logits -= logits.max(0, keepdims=True)
p = np.exp(logits); p /= p.sum(0, keepdims=True); p = p.astype(np.float32)
np.save(Path(sys.argv[1]) / "probs.npy", p)
prof = {"driver": "GTiff", "height": side, "width": side, "count": 4, "dtype": "float32", "crs": "EPSG:3413",
        "transform": Affine(20, 0, 0, 0, -20, 0), "compress": "deflate", "tiled": True, "blockxsize": 256, "blockysize": 256}
def write(opts, path):
    q = dict(prof); q.update(opts)
    t = time.perf_counter()
    with rasterio.open(path, "w", **q) as d:
        d.write(p)
    return time.perf_counter() - t
V = {"t1": {}, "t2": {"num_threads": 2}, "tall": {"num_threads": "all_cpus"}, "z1": {"zlevel": 1}, "z1t2": {"zlevel": 1, "num_threads": 2}}
res = {k: [] for k in V}
for r in range(3):
    for k, o in V.items():
        res[k].append(write(o, str(Path(sys.argv[1]) / f"w_{k}.tif")))
for k in V:
    b = open(str(Path(sys.argv[1]) / f"w_{k}.tif"), "rb").read()
    with rasterio.open(str(Path(sys.argv[1]) / f"w_{k}.tif")) as d: same = np.array_equal(d.read(), p)
    print(f"{k:6s} best {min(res[k]):.2f} s all {[round(x,2) for x in res[k]]} size {len(b)/1e6:.1f} MB md5 {hashlib.md5(b).hexdigest()[:10]} pixels_equal {same}")
