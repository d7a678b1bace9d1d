"""Putting raw scenes on a glacier grid (rasterio / GDAL ``reproject``, only the window around the grid is read) and
writing the output rasters atomically."""

from __future__ import annotations

import errno
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioError, RasterioIOError
from rasterio.transform import Affine
from rasterio.warp import reproject, transform_bounds
from rasterio.windows import Window, from_bounds

from ssl4sar.data.construct.grids import GlacierGrid
from ssl4sar.data.construct.radiometry import db_to_uint8, resolve_sar_units, sar_to_db
from ssl4sar.data.construct.scanning import (
    CATEGORICAL_BANDS,
    REQUIRED_S2_BANDS,
    S2_BANDS,
    OpticalScene,
    SarScene,
    _open,
)
from ssl4sar.errors import DataError
from ssl4sar.io import atomic_path, free_disk_bytes


def _source_window(src_transform: Affine, src_shape: tuple[int, int], src_crs: CRS, grid: GlacierGrid,
                   pad: int = 3) -> Window | None:
    """The window of a source raster that covers ``grid`` (plus ``pad`` pixels), or ``None`` if disjoint."""
    bounds = grid.bounds
    if src_crs != grid.crs:
        bounds = transform_bounds(grid.crs, src_crs, *bounds, densify_pts=21)
    win = from_bounds(*bounds, transform=src_transform)
    r0 = math.floor(min(win.row_off, win.row_off + win.height)) - pad
    c0 = math.floor(min(win.col_off, win.col_off + win.width)) - pad
    r1 = math.ceil(max(win.row_off, win.row_off + win.height)) + pad
    c1 = math.ceil(max(win.col_off, win.col_off + win.width)) + pad
    r0, c0 = max(r0, 0), max(c0, 0)
    r1, c1 = min(r1, src_shape[0]), min(c1, src_shape[1])
    if r1 <= r0 or c1 <= c0:
        return None
    return Window(c0, r0, c1 - c0, r1 - r0)


def reproject_to_grid(values: np.ndarray, src_transform: Affine, src_crs: CRS, grid: GlacierGrid,
                      resampling: Resampling = Resampling.bilinear) -> np.ndarray:
    """Resample float ``values`` (H, W) (NaN = no data) onto ``grid`` → float32 (H', W'), NaN outside / no data."""
    dst = np.full(grid.shape, np.nan, dtype=np.float32)
    reproject(source=np.ascontiguousarray(values, dtype=np.float32), destination=dst, src_transform=src_transform,
              src_crs=src_crs, src_nodata=np.nan, dst_transform=grid.transform, dst_crs=grid.crs, dst_nodata=np.nan,
              resampling=resampling)
    return dst


def _read_bands(path: Path, indexes: Sequence[int], win: Window) -> tuple[dict[int, np.ndarray], Affine]:
    """Bands ``indexes`` (1-based) of one file, in one read: a multi-band GeoTIFF stores its bands pixel-interleaved
    (Earth Engine's exports do), so reading them one at a time would decode the whole file once per band."""
    wanted = sorted(set(indexes))
    with _open(path) as src:
        data = src.read(wanted, window=win)
        return dict(zip(wanted, data, strict=True)), src.window_transform(win)


def _sar_on_grid(scene: SarScene, grid: GlacierGrid, units: str, db_range: tuple[float, float],
                 dn_percentiles: tuple[float, float]) -> tuple[np.ndarray, str] | None:
    """The scene on ``grid`` as uint8 (0 = no data) and the units used, or ``None`` if it has no data there."""
    win = _source_window(scene.transform, scene.shape, scene.crs, grid)
    if win is None:
        return None
    bands, wtransform = _read_bands(scene.path, [1], win)
    raw = bands[1]
    invalid = ~np.isfinite(raw.astype(np.float64)) if raw.dtype.kind == "f" else np.zeros(raw.shape, bool)
    if scene.nodata is not None:
        invalid |= raw == scene.nodata if not math.isnan(scene.nodata) else np.isnan(raw)
    valid_values = np.where(invalid, np.nan, raw.astype(np.float64))
    unit = resolve_sar_units(units, scene.dtype, scene.hint, valid_values)
    logdb = sar_to_db(raw, unit, invalid)
    if not np.isfinite(logdb).any():
        return None
    on_grid = reproject_to_grid(logdb, wtransform, scene.crs, grid, Resampling.bilinear)
    return db_to_uint8(on_grid, unit, db_range, dn_percentiles), unit


class _UnreadableBand(Exception):
    """A band file of a Sentinel-2 scene whose pixel data cannot be read (truncated or corrupt)."""

    def __init__(self, path: Path, cause: Exception) -> None:
        super().__init__(f"{path.name}: {cause}")
        self.path = path
        self.cause = cause


def _optical_on_grid(scene: OpticalScene, grid: GlacierGrid) -> tuple[np.ndarray, np.ndarray, np.dtype, list[str]]:
    """The scene's 15 output bands on ``grid``: float32 (15, H, W) with NaN = no data, the valid mask (all
    required bands valid), the output dtype, and the names of absent optional bands (filled with 0)."""
    stack = np.full((len(S2_BANDS), *grid.shape), np.nan, dtype=np.float32)
    absent: list[str] = []
    dtypes = []
    # per file: the window of its grid that covers the glacier grid, and the bands wanted from it
    windows: dict[Path, tuple[Window | None, list[int]]] = {}
    for name in S2_BANDS:
        band = scene.bands.get(name)
        if band is not None and band.path not in windows:
            windows[band.path] = (_source_window(band.transform, band.shape, band.crs, grid), [])
        if band is not None:
            windows[band.path][1].append(band.index)
    read: dict[Path, tuple[dict[int, np.ndarray], Affine]] = {}
    for i, name in enumerate(S2_BANDS):
        band = scene.bands.get(name)
        if band is None:
            absent.append(name)
            continue
        dtypes.append(np.dtype(band.dtype))
        win, indexes = windows[band.path]
        if win is None:
            continue
        if band.path not in read:
            try:
                read[band.path] = _read_bands(band.path, indexes, win)
            except (RasterioIOError, OSError) as exc:
                raise _UnreadableBand(band.path, exc) from exc
        bands_of_file, wtransform = read[band.path]
        raw = bands_of_file[band.index]
        indexes.remove(band.index)
        if not indexes:  # the file's last band: free its pixels before the next file is read
            del read[band.path]
        x = raw.astype(np.float32)
        bad = ~np.isfinite(x)
        if band.nodata is not None:
            bad |= np.isnan(x) if math.isnan(band.nodata) else (raw == band.nodata)
        x[bad] = np.nan
        resampling = Resampling.nearest if name in CATEGORICAL_BANDS else Resampling.bilinear
        stack[i] = reproject_to_grid(x, wtransform, band.crs, grid, resampling)
    required = [S2_BANDS.index(b) for b in REQUIRED_S2_BANDS]
    valid = np.all(np.isfinite(stack[required]), axis=0)
    out_dtype = np.dtype(np.uint16) if all(np.issubdtype(d, np.integer) for d in dtypes) else np.dtype(np.float32)
    for name in absent:
        stack[S2_BANDS.index(name)] = np.where(valid, 0.0, np.nan)
    return stack, valid, out_dtype, absent


def _to_dtype(stack: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.rint(np.nan_to_num(stack, nan=0.0)), info.min, info.max).astype(dtype)
    return np.nan_to_num(stack, nan=0.0).astype(dtype)


def _write_raster(path: Path, array: np.ndarray, grid: GlacierGrid, nodata: float, band_names: Sequence[str] | None,
                  tags: Mapping[str, str]) -> None:
    arr = array[None] if array.ndim == 2 else array
    profile: dict[str, Any] = {"driver": "GTiff", "height": arr.shape[1], "width": arr.shape[2],
                               "count": arr.shape[0], "dtype": arr.dtype.name, "crs": grid.crs,
                               "transform": grid.transform, "nodata": nodata, "compress": "deflate"}
    if arr.shape[1] >= 256 and arr.shape[2] >= 256:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    with atomic_path(path) as tmp:
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(arr)
            dst.update_tags(**{k: str(v) for k, v in tags.items()})
            for i, name in enumerate(band_names or (), start=1):
                dst.set_band_description(i, name)
        # GDAL does not always report a failed write (a full disk, when the tiles leave its cache at close): the file
        # is read back before it takes its name
        problem = damaged_output(tmp, grid)
        if problem is not None:
            if free_disk_bytes(path.parent) < 2**20:
                raise OSError(errno.ENOSPC, f"No space left on device (writing {path})")
            raise DataError(path, f"the raster just written cannot be read back: {problem}")


def damaged_output(path: Path, grid: GlacierGrid) -> str | None:
    """Why the output raster ``path`` of an earlier run cannot be reused, or ``None`` when it is intact: it does not
    open, it is not on ``grid``, or not all its pixels can be read (a truncated file, e.g. an interrupted copy of the
    output folder; outputs are written atomically, so a run itself leaves none). Reads the whole raster."""
    try:
        with rasterio.open(path) as src:
            if src.crs != grid.crs or src.shape != grid.shape or not src.transform.almost_equals(grid.transform):
                return "not on the glacier's grid (grids.json)"
            src.read()
    except (RasterioError, OSError) as exc:
        return f"unreadable ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
    return None
