import json, sys, numpy as np
from pathlib import Path
from affine import Affine
import rasterio
root = Path(sys.argv[1]); n = int(sys.argv[2])
rng = np.random.default_rng(0)
(root / "sar").mkdir(parents=True, exist_ok=True); (root / "optical").mkdir(parents=True, exist_ok=True)
H, W = 6000, 8000  # 120 x 160 km at 20 m
for k in range(n):
    x0, y0 = 400000 + rng.uniform(-5000, 5000), 7700000 + rng.uniform(-5000, 5000)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    db = (-12 + 4 * np.sin(yy / 300) + 3 * np.cos(xx / 500) + rng.normal(0, 2, (H, W))).astype(np.float32)
    prof = dict(driver="GTiff", height=H, width=W, count=1, dtype="float32", crs="EPSG:32622",
                transform=Affine(20, 0, x0, 0, -20, y0), tiled=True, blockxsize=512, blockysize=512, compress="deflate", predictor=3)
    with rasterio.open(root / "sar" / f"S1A_IW_GRDH_2019{1 + k % 12:02d}{1 + k:02d}T120000_{k}.tif", "w", **prof) as dst:
        dst.write(db, 1); dst.update_tags(1, UNITS="dB")
# one S2 15-band scene over the AOI (10 m)
h2, w2 = 3500, 3500
opt = (1000 + rng.integers(0, 3000, (15, h2, w2))).astype(np.uint16)
names = ["B1","B2","B3","B4","B5","B6","B7","B8","B8A","B9","B11","B12","AOT","WVP","SCL"]
prof = dict(driver="GTiff", height=h2, width=w2, count=15, dtype="uint16", crs="EPSG:32622", nodata=0,
            transform=Affine(10, 0, 440000, 0, -10, 7660000), tiled=True, compress="deflate")
with rasterio.open(root / "optical" / "S2A_MSIL2A_20190712T150759_T22WEV_S2SR.tif", "w", **prof) as dst:
    dst.write(opt)
    for i, nme in enumerate(names, 1): dst.set_band_description(i, nme)
aoi = {"type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": "EPSG:32622"}},
       "features": [{"type": "Feature", "properties": {"glacier": "Jakobshavn"},
                     "geometry": {"type": "Polygon", "coordinates": [[[445000, 7625000], [475000, 7625000], [475000, 7655000], [445000, 7655000], [445000, 7625000]]]}}]}
(root / "aoi.geojson").write_text(json.dumps(aoi))
