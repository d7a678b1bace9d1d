"""Sentinel-2 L2A-like optical scenes (15 bands in the GEE ``COPERNICUS/S2_SR`` order) for a class map,
and the polar-stereographic grid they are written on.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ssl4sar.data.synthetic.geometry import (
    FjordGeometry,
    _frame,
)
from ssl4sar.data.synthetic.noise import fractal_noise
from ssl4sar.domain import GLACIER, NA, OCEAN, ROCK

#: Surface reflectance (0–1) of bands B1…B12 per surface type.
_SPECTRA: dict[str, tuple[float, ...]] = {
    "snow": (0.92, 0.93, 0.92, 0.89, 0.86, 0.83, 0.80, 0.76, 0.73, 0.55, 0.10, 0.07),
    "ice": (0.62, 0.63, 0.58, 0.50, 0.44, 0.38, 0.35, 0.31, 0.29, 0.18, 0.03, 0.02),
    "water": (0.09, 0.08, 0.06, 0.03, 0.02, 0.015, 0.012, 0.010, 0.009, 0.005, 0.003, 0.002),
    "rock": (0.08, 0.09, 0.11, 0.14, 0.16, 0.18, 0.19, 0.20, 0.21, 0.19, 0.27, 0.21),
    "cloud": (0.62, 0.61, 0.60, 0.60, 0.61, 0.62, 0.62, 0.63, 0.63, 0.42, 0.48, 0.36),
}
#: Sentinel-2 scene classification (SCL) codes used.
SCL_CODES = {"no_data": 0, "dark": 2, "cloud_shadow": 3, "bare_soil": 5, "water": 6, "cloud_medium": 8,
             "cloud_high": 9, "cirrus": 10, "snow_ice": 11}


def make_optical(rng: np.random.Generator, zones: np.ndarray, geom: FjordGeometry,
                 cloud_cover: float | None = None, sun_azimuth: float | None = None) -> np.ndarray:
    """A Sentinel-2 L2A-like image for the class map ``zones`` (H, W).

    Returns (15, H, W) uint16 in the GEE ``COPERNICUS/S2_SR`` order B1…B12, AOT, WVP, SCL: reflectance
    ×10000 for B1–B12, AOT and WVP ×1000 (smooth fields), SCL categorical (0 no data, 2 dark, 3 cloud
    shadow, 5 bare soil, 6 water, 8/9 cloud medium/high probability, 10 cirrus, 11 snow/ice).
    Surface spectra: snow/ice bright in the visible and dark in SWIR; water dark; rock moderate and
    brighter in SWIR; clouds bright in visible *and* SWIR (what separates them from snow).
    """
    h, w = zones.shape
    shp = (h, w)
    res = geom.resolution_m

    def px(metres: float) -> float:
        return max(metres / res, 1.0)

    spec = {k: np.asarray(v, dtype=np.float32)[:, None, None] for k, v in _SPECTRA.items()}
    fr = _frame(geom)
    dist_front = np.clip(fr.front_u - fr.u, 0, None) * res
    ice_frac = np.clip(np.exp(-dist_front / float(rng.uniform(1500, 5000))) * 0.8
                       + 0.2 * fractal_noise(rng, shp, px(50), px(2000)), 0, 1)[None]
    glacier = spec["snow"] * (1 - ice_frac) + spec["ice"] * ice_frac
    glacier = glacier * (1 + 0.05 * fractal_noise(rng, shp, 1, px(500)))[None]
    height = fractal_noise(rng, shp, px(60), px(3000), beta=3.2)
    az = float(rng.uniform(0, 2 * math.pi)) if sun_azimuth is None else sun_azimuth
    gr = np.gradient(height)
    shade = gr[0] * math.sin(az) + gr[1] * math.cos(az)
    shade = np.clip(1.0 + 0.5 * np.tanh(shade / (shade.std() + 1e-6)), 0.15, 1.6)
    snow_patches = (fractal_noise(rng, shp, px(40), px(1500)) > 0.8)[None]
    rock = np.where(snow_patches, spec["snow"] * 0.9, spec["rock"]) * shade[None]
    dist_ocean = np.clip(fr.u - fr.front_u, 0, None) * res
    mel = np.clip(np.exp(-dist_ocean / float(rng.uniform(300, 3000)))
                  * (1.1 + 0.5 * fractal_noise(rng, shp, px(30), px(600))), 0, 1)[None]
    ocean = spec["water"] * (1 - mel) + spec["ice"] * mel
    refl = np.where(zones[None] == GLACIER, glacier, np.where(zones[None] == ROCK, rock, ocean))
    refl = refl * (1 + 0.02 * rng.standard_normal((12, h, w), dtype=np.float32))

    # Clouds (alpha) and their shadows (the cloud mask shifted away from the sun).
    cover = float(rng.uniform(0.0, 0.35)) if cloud_cover is None else float(cloud_cover)
    cn = fractal_noise(rng, shp, px(100), px(6000), beta=3.0)
    thr = np.quantile(cn, 1.0 - cover) if cover > 0 else np.inf
    alpha = np.clip((cn - thr) / 0.8, 0.0, 1.0) if cover > 0 else np.zeros(shp, np.float32)
    shift = (int(round(math.sin(az) * px(600))), int(round(math.cos(az) * px(600))))
    shadow = np.roll(alpha, shift=shift, axis=(0, 1)) * (1 - alpha)
    refl = refl * (1 - 0.6 * shadow)[None]
    refl = refl * (1 - alpha)[None] + spec["cloud"] * alpha[None]
    bands = np.clip(np.rint(refl * 10000.0), 1, 10000).astype(np.uint16)

    aot = np.clip(120 + 40 * fractal_noise(rng, shp, px(2000), px(20000)), 20, 600)
    wvp = np.clip(float(rng.uniform(300, 1500)) * (1 + 0.2 * fractal_noise(rng, shp, px(2000), px(20000))), 50, 5000)
    scl = np.select([zones == GLACIER, zones == ROCK, zones == OCEAN],
                    [SCL_CODES["snow_ice"], SCL_CODES["bare_soil"], SCL_CODES["water"]], SCL_CODES["no_data"])
    scl = np.where((zones == OCEAN) & (mel[0] > 0.3), SCL_CODES["snow_ice"], scl)   # mélange
    scl = np.where((zones == ROCK) & snow_patches[0], SCL_CODES["snow_ice"], scl)
    scl = np.where((zones == ROCK) & (shade < 0.4), SCL_CODES["dark"], scl)
    scl = np.where(shadow > 0.3, SCL_CODES["cloud_shadow"], scl)
    scl = np.where((alpha > 0.05) & (alpha <= 0.25), SCL_CODES["cirrus"], scl)
    scl = np.where((alpha > 0.25) & (alpha <= 0.6), SCL_CODES["cloud_medium"], scl)
    scl = np.where(alpha > 0.6, SCL_CODES["cloud_high"], scl)
    out = np.concatenate([bands, np.rint(aot)[None].astype(np.uint16), np.rint(wvp)[None].astype(np.uint16),
                          scl[None].astype(np.uint16)], axis=0)
    out[:, zones == NA] = 0
    return out


def polar_transform(lat: float, lon: float, shape: tuple[int, int], resolution_m: float,
                    crs: str = "EPSG:3413") -> Any:
    """Affine transform of a north-up grid of ``shape`` (H, W) at ``resolution_m`` m/px centred on (lat, lon)."""
    from affine import Affine
    from pyproj import Transformer

    x, y = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(lon, lat)
    h, w = shape
    west = math.floor((x - w * resolution_m / 2) / resolution_m) * resolution_m
    north = math.floor((y + h * resolution_m / 2) / resolution_m) * resolution_m
    return Affine(resolution_m, 0.0, west, 0.0, -resolution_m, north)
