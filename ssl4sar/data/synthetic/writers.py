"""Deterministic file writers of the synthetic layouts (no timestamps: same seed, byte-identical files):
PNG, GeoTIFF, CSV, the layout marker, CaFFe file stems and bounding-box files, and the per-scene random streams.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ssl4sar.data.synthetic.catalogue import (
    GENERATOR_VERSION,
    LAYOUT_MARKER,
)
from ssl4sar.io import atomic_path, write_bytes_atomic, write_text_atomic


def _png_bytes(arr: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr, dtype=np.uint8)).save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def write_png(path: Path, arr: np.ndarray) -> Path:
    """Write an (H, W) uint8 array as 8-bit grayscale PNG, atomically."""
    return write_bytes_atomic(path, _png_bytes(arr))


def write_geotiff(path: Path, array: np.ndarray, crs: str, transform: Any, nodata: float | None = None,
                  band_names: Sequence[str] | None = None) -> Path:
    """Write (H, W) or (C, H, W) ``array`` as a deflate-compressed GeoTIFF, atomically and reproducibly."""
    import rasterio

    arr = array[None] if array.ndim == 2 else array
    profile = {"driver": "GTiff", "height": arr.shape[1], "width": arr.shape[2], "count": arr.shape[0],
               "dtype": arr.dtype.name, "crs": crs, "transform": transform, "compress": "deflate",
               "tiled": False}
    if nodata is not None:
        profile["nodata"] = nodata
    with atomic_path(path) as tmp, rasterio.open(tmp, "w", **profile) as ds:
        ds.write(arr)
        if band_names:
            for i, name in enumerate(band_names, start=1):
                ds.set_band_description(i, name)
    return Path(path)


def caffe_stem(glacier: str, date: dt.date, sensor: str, resolution_m: float, quality: int, orbit: int) -> str:
    """``<Glacier>_<YYYY-MM-DD>_<Sensor>_<Res>_<Q>_<Orbit:03d>`` (spec §1.2)."""
    return f"{glacier}_{date.isoformat()}_{sensor}_{int(round(resolution_m))}_{int(quality)}_{int(orbit):03d}"


def bounding_box_text(front: np.ndarray, margin_px: int) -> str:
    """Bounding-box file (spec §1.4) around the front pixels of ``front`` (H, W) with a margin (px).

    Header ``x,y`` then left-upper, left-lower, right-lower, right-upper corners as ``x,y`` pixel
    coordinates (x column, y row); "upper" is the larger row index. End coordinates are exclusive
    (kept rows ``y_lower ≤ r < y_upper``) and stay within ``[0, W]`` × ``[0, H]`` so that the reference
    clamping keeps every ground-truth front pixel.
    """
    h, w = front.shape
    rr, cc = np.nonzero(front)
    if rr.size == 0:
        r0, r1, c0, c1 = 0, h, 0, w
    else:
        r0, r1 = max(int(rr.min()) - margin_px, 0), min(int(rr.max()) + 1 + margin_px, h)
        c0, c1 = max(int(cc.min()) - margin_px, 0), min(int(cc.max()) + 1 + margin_px, w)
    corners = [(c0, r1), (c0, r0), (c1, r0), (c1, r1)]
    return "x,y\n" + "".join(f"{x:.1f},{y:.1f}\n" for x, y in corners)


def _random_date(rng: np.random.Generator, first_year: int, last_year: int) -> dt.date:
    start = dt.date(first_year, 1, 1).toordinal()
    end = dt.date(last_year, 12, 31).toordinal()
    return dt.date.fromordinal(int(rng.integers(start, end + 1)))


def _scene_rng(seed: int, layout: int, index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), layout, index])


def _check_size(scene_size: Sequence[int]) -> tuple[int, int]:
    lo, hi = (int(scene_size[0]), int(scene_size[1])) if len(scene_size) == 2 else (int(scene_size[0]),) * 2
    if lo < 32 or hi < lo:
        raise ValueError(f"scene_size must be (min, max) with 32 <= min <= max, got {tuple(scene_size)}")
    return lo, hi



def _write_marker(out: Path, layout: str) -> None:
    write_text_atomic(out / LAYOUT_MARKER, f"ssl4sar.data.synthetic {layout} layout, generator {GENERATOR_VERSION}\n")


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return write_text_atomic(path, buf.getvalue())
