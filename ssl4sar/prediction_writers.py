"""Files ``ssl4sar predict`` writes for a scene: GeoTIFF profiles and single-band rasters, the probability
encoding, the overlay PNG, the mean uncertainty along the front, and the run's CSV tables
(see :mod:`ssl4sar.predict` for the list of outputs).
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import rasterio
import torch
from rasterio.enums import Resampling
from rasterio.errors import NotGeoreferencedWarning
from rasterio.transform import Affine

from ssl4sar import geo
from ssl4sar.data.scenes import PREDICT_OUTPUT_TAG, SceneSource
from ssl4sar.domain import display_step, downsample_for_display
from ssl4sar.io import atomic_path, write_text_atomic

_OVERLAY_MAX_SIDE = 1600

ProbabilityDtype = Literal["float32", "uint8"]


def raster_profile(shape: tuple[int, int], count: int, dtype: str, crs: Any, transform: Affine,
                   threads: int | None = None) -> dict[str, Any]:
    """Creation profile of an output GeoTIFF: deflate, 256 px tiles. GDAL compresses the tiles on ``threads``
    threads (default: torch's intra-op threads, the CPU budget of this process); the file's bytes do not depend on
    it. Deflate is most of the time of writing a float32 probability raster: a 10-MP, 4-class one took 1.88 s on
    one thread and 0.97 s on two (``book/bench/cpu-2core-predict-outputs-2026-12-06``)."""
    h, w = shape
    n_threads = max(1, int(threads if threads is not None else torch.get_num_threads()))
    profile: dict[str, Any] = {"driver": "GTiff", "height": h, "width": w, "count": count, "dtype": dtype,
                               "crs": crs, "transform": transform, "compress": "deflate", "num_threads": n_threads}
    if h >= 256 and w >= 256:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    return profile


@contextlib.contextmanager
def open_for_write(path: Path, profile: dict[str, Any]) -> Iterator[Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        ds = rasterio.open(path, "w", **profile)
    with ds:
        yield ds


def encode_probabilities(arr: np.ndarray, dtype: ProbabilityDtype) -> np.ndarray:
    if dtype == "uint8":
        return np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8)
    return arr.astype(np.float32, copy=False)


def crs_label(crs: Any) -> str | None:
    if crs is None:
        return None
    c = geo.as_crs(crs)
    auth = c.to_authority()
    return f"{auth[0]}:{auth[1]}" if auth else c.to_wkt()


def mean_at_front(uncertainty_at: Callable[[np.ndarray, np.ndarray], np.ndarray], front: np.ndarray,
                  dtype: ProbabilityDtype) -> float | None:
    """Mean over front pixels of the largest per-class uncertainty as the uncertainty GeoTIFF stores it:
    ``uncertainty_at(rows, cols)`` gives the ``(K, n)`` float32 values of those scene pixels before
    :func:`encode_probabilities` (so with ``"uint8"`` the mean is that of the rounded values). None without front
    pixels. Summed in row-major order, so tiled and whole-scene runs give the same number."""
    rows, cols = np.nonzero(front)
    if rows.size == 0:
        return None
    vals = encode_probabilities(uncertainty_at(rows, cols), dtype).astype(np.float64)
    if dtype == "uint8":
        vals /= 255.0
    return float(vals.max(axis=0).sum()) / rows.size


def write_raster(path: Path, array: np.ndarray, src: SceneSource, kind: str, tags: Mapping[str, str]) -> Path:
    """A single-band uint8 output on the scene's grid, marked as ``predict``'s output of this ``kind``."""
    with atomic_path(path) as tmp:
        with open_for_write(tmp, raster_profile(src.shape, 1, "uint8", src.crs, src.transform)) as ds:
            ds.write(array, 1)
            ds.update_tags(scene=src.stem, **tags, **{PREDICT_OUTPUT_TAG: kind})
    return path


def write_overlay(path: Path, src: SceneSource, zones: np.ndarray, front: np.ndarray) -> Path:
    from ssl4sar.viz import plot_prediction, save_figure

    h, w = src.shape
    f = display_step((h, w), _OVERLAY_MAX_SIDE)
    small = (math.ceil(h / f), math.ceil(w / f))
    if f == 1:
        sar = src.read(0, h, 0, w)
    else:
        sar = src._convert(src._read(out_shape=small, resampling=Resampling.nearest))
    fr = downsample_for_display(front != 0, f, keep_lines=True).astype(np.uint8)
    title = src.stem + (f" ({src.date.isoformat()})" if src.date else "")
    fig = plot_prediction(sar, zones[::f, ::f], pred_front=fr, title=title,
                          thickness_px=1 if min(small) < 256 else 3)
    return save_figure(fig, path, metadata={PREDICT_OUTPUT_TAG: "overlay"})



SUMMARY_COLUMNS = ["scene", "path", "date", "sensor", "glacier", "crs", "height_px", "width_px", "resolution_m",
                    "model_height_px", "model_width_px", "n_maps", "n_front_pixels", "length_m", "mean_uncertainty",
                    "front", "windows_s", "outputs_s"]


def write_csv(path: Path, rows: list[dict[str, Any]], cols: list[str]) -> Path:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    return write_text_atomic(path, buf.getvalue())


def describe_rasters(paths: Sequence[Path]) -> Any:
    """What written GeoTIFFs say about themselves, one row each: file name, CRS, size (H × W), bands, dtype, pixel
    size (m) and the first band's description (else its tags, without ``scene``, ``AREA_OR_POINT`` and the output
    mark)."""
    import pandas as pd

    rows = []
    for path in paths:
        with rasterio.open(path) as ds:
            tags = ", ".join(f"{k}={v}" for k, v in ds.tags().items()
                             if k not in ("scene", "AREA_OR_POINT", PREDICT_OUTPUT_TAG))
            rows.append({"file": Path(path).name, "CRS": str(ds.crs), "size (H × W)": f"{ds.height} × {ds.width}",
                         "bands": ds.count, "dtype": ds.dtypes[0], "pixel (m)": abs(ds.transform.a),
                         "band 1": ds.descriptions[0] or tags})
    return pd.DataFrame(rows, columns=["file", "CRS", "size (H × W)", "bands", "dtype", "pixel (m)", "band 1"])


def geographic_fronts(results: Sequence[Any], metadata_csv: Path | None = None) -> tuple[Any, list[dict[str, Any]]]:
    """Read back the EPSG:4326 fronts of predicted scenes (``SceneResult`` s of :func:`ssl4sar.predict.predict_scenes`
    run with ``to_wgs84=True``) to show where on the Earth they lie.

    ``metadata_csv`` (``id``, ``glacier``, ``date`` per scene stem without ``_img``) names the scenes. Returns a table
    (patch, glacier, date, CRS, pixel (m), model grid (px), front pixels, front length (m), first front vertex
    (lon, lat), 4 decimals) and one panel per scene for :func:`ssl4sar.viz.plot_geographic_fronts` (``sar``,
    ``transform``, ``crs``, ``front`` in lon/lat, ``title``).
    """
    import pandas as pd
    import shapely

    from ssl4sar.data.raster import read_raster

    meta = (pd.read_csv(metadata_csv).set_index("id") if metadata_csv is not None and Path(metadata_csv).is_file()
            else pd.DataFrame())
    rows, panels = [], []
    for r in results:
        pid = r.stem.removesuffix("_img")
        m = meta.loc[pid] if pid in meta.index else {}
        glacier = str(m.get("glacier", "")).replace("\x96", "–")  # the CaFFe metadata holds a cp1252 dash
        geometries = geo.read_geojson(r.outputs["front_wgs84"]).geometries()
        front = geometries[0] if geometries else None
        rows.append({"patch": pid, "glacier": glacier.split(" / ")[0], "date": m.get("date", ""), "CRS": r.crs,
                     "pixel (m)": round(r.resolution_m, 3), "model grid (px)": "×".join(map(str, r.model_shape)),
                     "front pixels": r.n_front_pixels, "front length (m)": round(r.length_m),
                     "first front vertex (lon, lat)": None if front is None
                     else tuple(np.round(shapely.get_coordinates(front)[0], 4).tolist())})
        img, info = read_raster(r.path, 1, require_crs=True)
        panels.append({"sar": img, "transform": info.transform, "crs": info.crs, "front": front,
                       "title": f"{pid}: {glacier.split(' / ')[0]}\n{m.get('date', '')}, {r.crs}"})
    return pd.DataFrame(rows), panels


def describe_outputs(outputs: Mapping[str, Path]) -> Any:
    """The files one scene's prediction wrote (``SceneResult.outputs``), one row each: output, file name, bytes."""
    import pandas as pd

    return pd.DataFrame([{"output": k, "file": Path(p).name, "bytes": Path(p).stat().st_size}
                         for k, p in outputs.items()], columns=["output", "file", "bytes"])


def text_excerpt(path: str | Path, limit: int, with_length: bool = True) -> str:
    """``"<file name> (<n> characters):\\n<the first limit characters>"`` (`` …`` when cut); without ``with_length``
    the file name alone heads it."""
    p = Path(path)
    text = p.read_text()
    head = f"{p.name} ({len(text)} characters)" if with_length else p.name
    return f"{head}:\n{text[:limit]}" + (" …" if len(text) > limit else "")
