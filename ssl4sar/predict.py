"""Apply trained models to new scenes: zone maps, probabilities, uncertainty and georeferenced fronts.

``ssl4sar predict --checkpoint CKPT [--ensemble CKPT …] [--tta] SCENE … --out DIR`` and the library function
:func:`predict_scene` (one scene) / :func:`predict_scenes` (many; bad scenes are skipped and reported).

**Inputs.** Any single-band raster GDAL reads (band 1 is used): GeoTIFFs in any CRS, or CaFFe PNGs.

* ``uint8`` rasters are the 8-bit SAR amplitude the model was trained on (CaFFe, spec §1.3) and are used as
  they are; 0 means no data. When the file declares another no-data value ``v``, pixels equal to ``v`` become
  0 and valid pixels of value 0 become 1.
* Any other type (float σ⁰ or amplitude, uint16 …) is stretched linearly: valid values (finite, not the
  no-data value) in ``[lo, hi]`` map to ``1 … 255`` (rounded, clipped), no data to 0. ``lo, hi`` are
  ``value_range`` when given (use a fixed range such as ``-25 0`` dB for a time series, so that every date
  shares one scaling) and otherwise the ``percentiles`` (1 %, 99 %) of a deterministic subsample
  (≤ 10⁶ values) of the scene's valid pixels. The model then reads the 8-bit value / 255 (spec §3.1).
* Georeferencing: the scene's CRS and affine transform are copied to every raster output and used for the
  front line. A GeoTIFF without CRS is refused unless ``allow_no_crs``; PNGs never have one and are accepted.
  Without a CRS the front is written in **pixel coordinates** (x = column + 0.5, y = row + 0.5, the
  GeoJSON says ``"coordinate_system": "pixel"``) and its length is ``pixels × resolution_m``.
* Pixel spacing (m/px): from the transform of a projected CRS, the geodesic size of the centre pixel for a
  geographic CRS, else the CaFFe stem (``<Glacier>_<date>_<Sensor>_<Res>_<Q>_<Orbit>``), else
  ``pixel_size_m``; a scene whose spacing is unknown is refused. The short-front threshold
  (``min_front_length_m``, 750 m) is converted with it.

**Resampling** (``resolution_m``): the training data spans 6–20 m/px. With a target spacing R, the scene is
read at ``round(H·s_y/R) × round(W·s_x/R)`` px (GDAL ``average`` when shrinking, ``bilinear`` when
enlarging; validity from a ``nearest`` read), the model runs on that grid, and the mean probabilities and
standard deviations are brought back to the scene grid by bilinear interpolation (pixel centres aligned,
edge values repeated); member class maps by nearest neighbour. All outputs are on the scene grid.

**Inference** (:mod:`ssl4sar.inference`): overlapping sliding windows with Gaussian stitching
(``context_size`` = the model's ``img_size``, ``stride`` default C/4 = 128 px for C = 512), for every ensemble
member × TTA rotation (× flip); the softmax maps are averaged (unweighted, Welford order member → rotation →
flip, exactly like :func:`ssl4sar.inference.predict_probabilities`), the class map is the argmax of the mean
and the uncertainty the per-class population standard deviation over the maps.

**Tiles** (``tile_size``): a scene is processed in core tiles of ``tile_size`` px (rounded up to a multiple of
the stride) in the model's frame. For every member/augmentation the tile is read with a halo of at least one
context window (``ceil(C / stride)·stride`` px), and — in the rotated/flipped frame of that augmentation — the
read window starts on the scene's window grid (a multiple of the stride). Every window that contributes to a
core pixel is then the same window, on the same pixels, as in the whole-scene run, so tiled results equal the
whole-scene results (same class map and front). Only the tile's float canvases are in memory; the model-frame
mean / std live in temporary ``.npy`` memory maps in the output folder (removed afterwards), and the outputs
are written window by window. The scene-size uint8 class map and front are held in memory for the
post-processing (its largest-component rules are global), 1 byte/px each; with resampling, the resampled 8-bit
image too. Without ``tile_size`` everything is computed in memory. Opening a scene reads it once in strips to
count its valid pixels (and, for non-uint8 data, to sample the percentiles).

**Post-processing** (:func:`ssl4sar.postprocess.extract_front`, no bounding box): the argmax class map, with
class 0 (NA) written where the scene has no data [deviation: the reference evaluation keeps the network's
prediction there], is turned into a front mask; :mod:`ssl4sar.geo` orders it into lines.

**Outputs** per scene ``<stem>`` in ``out_dir``:

========================================  ====================================================================
``<stem>_zones.tif``                       uint8 class ids (0 NA, 1 rock, 2 glacier, 3 ocean + ice mélange)
``<stem>_probabilities.tif``               K bands, mean softmax: float32, or uint8 = round(255·p) with the
                                           GDAL scale 1/255 (``probability_dtype="uint8"``)
``<stem>_uncertainty.tif``                 K bands, per-class std of the softmax over members × TTA (0 for a
                                           single map), same encoding as the probabilities
``<stem>_front.tif``                       uint8 front mask 0 / 255
``<stem>_front.geojson``                   the front (LineString / MultiLineString, ``null`` when none) in the
                                           scene CRS, properties below
``<stem>_front_wgs84.geojson``             the same in EPSG:4326 (lon, lat; RFC 7946), with ``to_wgs84``
``<stem>_front_members.geojson``           one front per member × augmentation map (``member_fronts``)
``<stem>_overlay.png``                     SAR + zones + front
========================================  ====================================================================

Front properties: ``scene``, ``date`` (ISO, from the CaFFe stem, the raster tags or a date in the name),
``sensor``, ``glacier`` (when known), ``length_m``, ``mean_uncertainty`` (mean over front pixels of the largest
per-class std, in probability units), ``n_pixels``, ``n_lines``, ``n_maps``, ``resolution_m``, ``crs``.
:func:`predict_scenes` also writes ``predictions.csv`` (one row per scene) and ``skipped.csv`` (``scene``,
``reason``) and the CLI exits with the number of failed scenes (at most 125).
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import logging
import math
import re
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import rasterio
import torch
from rasterio.enums import Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.transform import Affine
from rasterio.windows import Window

from ssl4sar import geo
from ssl4sar.config import paper_preset
from ssl4sar.domain import CLASS_NAMES, display_step, downsample_for_display
from ssl4sar.errors import DataError
from ssl4sar.inference import sliding_window_probabilities
from ssl4sar.io import atomic_path, write_text_atomic
from ssl4sar.postprocess import DEFAULT_MIN_FRONT_LENGTH_M, extract_front

__all__ = [
    "CLASS_NAMES", "SceneSource", "SceneResult", "PredictionRun", "open_scene", "scene_metadata",
    "predict_scene", "predict_scenes",
]

log = logging.getLogger(__name__)

_SUBSAMPLE_MAX = 1_000_000
_STRIP_PIXELS = 4_000_000
_OVERLAY_MAX_SIDE = 1600
_RESAMPLE_TOL = 1e-3

ProbabilityDtype = Literal["float32", "uint8"]


# --------------------------------------------------------------------------------------------------------------
# scene metadata

_DATE_PATTERNS = (
    re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)"),
    re.compile(r"(?<!\d)(\d{4})(\d{2})(\d{2})(?:T\d{6})?(?!\d)"),
)
_SENSOR_TOKENS = {"S1": "S1", "S1A": "S1", "S1B": "S1", "S1C": "S1", "SENTINEL1": "S1", "SENTINEL-1": "S1",
                  "TSX": "TSX", "TSX1": "TSX", "TERRASAR-X": "TSX", "TDX": "TDX", "TDX1": "TDX",
                  "TANDEM-X": "TDX", "ERS": "ERS", "ERS1": "ERS", "ERS2": "ERS", "ENVISAT": "ENVISAT",
                  "ASAR": "ENVISAT", "PALSAR": "PALSAR", "ALOS": "PALSAR", "RSAT": "RSAT", "RADARSAT": "RSAT",
                  "RS1": "RSAT", "RS2": "RSAT"}
_DATE_TAGS = ("ACQUISITION_DATE", "ACQUISITION_START_TIME", "START_TIME", "SENSING_TIME", "DATE",
              "TIFFTAG_DATETIME", "DATETIME")
_SENSOR_TAGS = ("SENSOR", "MISSION", "MISSION_ID", "PLATFORM", "SATELLITE", "SPACECRAFT")


def _date_from_text(text: str) -> dt.date | None:
    for pat in _DATE_PATTERNS:
        for m in pat.finditer(text):
            try:
                return dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
            except ValueError:
                continue
    return None


def _sensor_from_text(text: str) -> str | None:
    norm = text.upper().replace(" ", "")
    if norm in _SENSOR_TOKENS:
        return _SENSOR_TOKENS[norm]
    for token in re.split(r"[_\-.\s]+", text.upper()):
        if token in _SENSOR_TOKENS:
            return _SENSOR_TOKENS[token]
    return None


def scene_metadata(stem: str, tags: dict[str, str] | None = None) -> dict[str, Any]:
    """Date, sensor and glacier of a scene from its file stem and raster tags.

    Priority: a CaFFe stem (``<Glacier>_<YYYY-MM-DD>_<Sensor>_<Res>_<Q>_<Orbit>``, which also gives
    ``resolution_m``), then tags (``ACQUISITION_DATE``, ``TIFFTAG_DATETIME`` …, ``SENSOR``, ``MISSION_ID`` …),
    then a date (``YYYY-MM-DD`` or ``YYYYMMDD``) and a sensor token (``S1A``, ``TSX`` …) in the name.

    Returns:
        dict with ``date`` (``datetime.date`` or None), ``sensor``, ``glacier``, ``resolution_m`` (None if unknown).
    """
    from ssl4sar.data.caffe import parse_stem

    out: dict[str, Any] = {"date": None, "sensor": None, "glacier": None, "resolution_m": None}
    with contextlib.suppress(DataError):
        meta = parse_stem(stem)
        return {"date": meta.date, "sensor": meta.sensor, "glacier": meta.glacier,
                "resolution_m": meta.resolution_m}
    upper = {str(k).upper(): str(v) for k, v in (tags or {}).items()}
    for key in _DATE_TAGS:
        if key in upper and out["date"] is None:
            out["date"] = _date_from_text(upper[key].replace(":", "-", 2))
    for key in _SENSOR_TAGS:
        if key in upper and out["sensor"] is None:
            out["sensor"] = _sensor_from_text(upper[key]) or upper[key]
    if out["date"] is None:
        out["date"] = _date_from_text(stem)
    if out["sensor"] is None:
        out["sensor"] = _sensor_from_text(stem)
    return out


# --------------------------------------------------------------------------------------------------------------
# reading scenes

@dataclass
class SceneSource:
    """An open scene: georeferencing, metadata, and 8-bit model input read by windows.

    Attributes:
        path, stem: the file and its name without suffix.
        crs: rasterio CRS or ``None``; transform: pixel → map affine (of the file).
        shape: ``(H, W)`` px; pixel_size_m: ``(s_x, s_y)`` in m/px; resolution_m: their mean.
        date, sensor, glacier: from :func:`scene_metadata`.
        scaling: ``None`` for uint8 input, else ``(lo, hi)`` of the linear stretch to 1..255.
        n_valid: number of pixels with data.
    """

    path: Path
    stem: str
    crs: Any
    transform: Affine
    shape: tuple[int, int]
    pixel_size_m: tuple[float, float]
    resolution_m: float
    date: dt.date | None
    sensor: str | None
    glacier: str | None
    scaling: tuple[float, float] | None
    nodata: float | None
    n_valid: int
    tags: dict[str, str] = field(default_factory=dict)
    _ds: Any = None

    def close(self) -> None:
        if self._ds is not None:
            self._ds.close()
            self._ds = None

    def _convert(self, values: np.ndarray) -> np.ndarray:
        return to_model_input(values, self.nodata, self.scaling)

    def _read(self, **kwargs: Any) -> np.ndarray:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                return self._ds.read(1, **kwargs)
        except RasterioError as exc:
            raise DataError(self.path, f"cannot read pixel data: {exc}", "the file is corrupt or truncated") from exc

    def read(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        """8-bit model input of rows ``[r0, r1)`` and columns ``[c0, c1)`` (0 = no data)."""
        return self._convert(self._read(window=Window(c0, r0, c1 - c0, r1 - r0)))

    def read_resampled(self, out_shape: tuple[int, int]) -> np.ndarray:
        """The whole scene as 8-bit model input on a ``out_shape`` grid (see the module docstring)."""
        shrink = out_shape[0] * out_shape[1] < self.shape[0] * self.shape[1]
        method = Resampling.average if shrink else Resampling.bilinear
        values = self._convert(self._read(out_shape=out_shape, resampling=method))
        valid = self._convert(self._read(out_shape=out_shape, resampling=Resampling.nearest)) > 0
        values[~valid] = 0
        values[valid & (values == 0)] = 1
        return values


def to_model_input(values: np.ndarray, nodata: float | None, scaling: tuple[float, float] | None) -> np.ndarray:
    """Raster values → the 8-bit input the model reads (0 = no data); see the module docstring.

    Args:
        values: ``(H, W)`` raster values.
        nodata: the file's no-data value or None.
        scaling: None for uint8 input used as is, else ``(lo, hi)``: ``1 + 254·(v − lo)/(hi − lo)`` rounded and
            clipped to 1..255.
    """
    if scaling is None:
        out = np.asarray(values, dtype=np.uint8).copy()
        if nodata is not None and nodata != 0 and 0 <= nodata <= 255:
            nod = values == nodata
            out[out == 0] = 1
            out[nod] = 0
        return out
    v = np.asarray(values, dtype=np.float64)
    valid = np.isfinite(v)
    if nodata is not None:
        valid &= ~((v == nodata) | (np.isnan(nodata) & np.isnan(v)))
    lo, hi = scaling
    scaled = np.zeros(v.shape, dtype=np.float64)
    np.subtract(v, lo, out=scaled, where=valid)
    scaled = 1.0 + 254.0 * scaled / (hi - lo)
    out = np.clip(np.rint(np.where(valid, scaled, 0.0)), 1, 255).astype(np.uint8)
    out[~valid] = 0
    return out


def _geographic_pixel_size(crs: Any, transform: Affine, shape: tuple[int, int]) -> tuple[float, float]:
    from pyproj import Geod

    g = geo.as_crs(crs)

    ell = g.ellipsoid
    geod = Geod(a=ell.semi_major_metre, b=ell.semi_minor_metre) if ell is not None else Geod(ellps="WGS84")
    r, c = shape[0] / 2.0, shape[1] / 2.0
    x0, y0 = transform @ (c, r)
    x1, y1 = transform @ (c + 1, r)
    x2, y2 = transform @ (c, r + 1)
    _, _, dx = geod.inv(x0, y0, x1, y1)
    _, _, dy = geod.inv(x0, y0, x2, y2)
    return float(dx), float(dy)


def open_scene(path: str | Path, *, allow_no_crs: bool = False, pixel_size_m: float | None = None,
               value_range: tuple[float, float] | None = None, percentiles: tuple[float, float] = (1.0, 99.0)
               ) -> SceneSource:
    """Open a scene for prediction and check it (see the module docstring).

    Raises :class:`DataError` naming the file when it is unreadable, has no CRS (GeoTIFF without
    ``allow_no_crs``), holds no valid pixel, or its pixel spacing is unknown. The caller must ``close()`` it.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            ds = rasterio.open(path)
    except RasterioError as exc:
        raise DataError(path, f"cannot read raster: {exc}", "the file is corrupt or not a raster") from exc
    try:
        return _inspect(ds, path, allow_no_crs, pixel_size_m, value_range, percentiles)
    except BaseException:
        ds.close()
        raise


def _inspect(ds: Any, path: Path, allow_no_crs: bool, pixel_size_m: float | None,
             value_range: tuple[float, float] | None, percentiles: tuple[float, float]) -> SceneSource:
    crs = ds.crs if ds.crs else None
    is_png = ds.driver.upper() == "PNG" or path.suffix.lower() == ".png"
    if crs is None and not (is_png or allow_no_crs):
        raise DataError(path, "raster has no coordinate reference system (CRS)",
                        "assign one (gdal_edit.py -a_srs EPSG:xxxx) or pass --allow-no-crs for pixel coordinates")
    if crs is None:
        log.warning("%s: no CRS, the front is written in pixel coordinates (x = column + 0.5, y = row + 0.5)", path)
    if ds.count > 1:
        log.warning("%s: %d bands, using band 1 as the SAR amplitude", path, ds.count)
    tags = {str(k): str(v) for k, v in ds.tags().items()}
    meta = scene_metadata(path.stem, tags)
    t = ds.transform
    if crs is not None and crs.is_projected:
        f = geo.unit_factor_m(crs)
        sx, sy = math.hypot(t.a, t.d) * f, math.hypot(t.b, t.e) * f
    elif crs is not None and crs.is_geographic:
        sx, sy = _geographic_pixel_size(crs, t, (ds.height, ds.width))
    elif meta["resolution_m"] is not None:
        sx = sy = float(meta["resolution_m"])
    elif pixel_size_m is not None:
        sx = sy = float(pixel_size_m)
    else:
        raise DataError(path, "pixel spacing unknown (no CRS and not a CaFFe stem)",
                        "pass --pixel-size-m, or name the file <Glacier>_<YYYY-MM-DD>_<Sensor>_<Res>_<Q>_<Orbit>")
    if not (sx > 0 and sy > 0 and math.isfinite(sx) and math.isfinite(sy)):
        raise DataError(path, f"invalid pixel spacing {sx:g} × {sy:g} m")
    dtype = np.dtype(ds.dtypes[0])
    nodata = None if ds.nodata is None else float(ds.nodata)
    src = SceneSource(path=path, stem=path.stem, crs=crs, transform=t, shape=(int(ds.height), int(ds.width)),
                      pixel_size_m=(float(sx), float(sy)), resolution_m=float((sx + sy) / 2.0),
                      date=meta["date"], sensor=meta["sensor"], glacier=meta["glacier"], scaling=None,
                      nodata=nodata, n_valid=0, tags=tags, _ds=ds)
    if dtype != np.uint8:
        if value_range is not None:
            lo, hi = float(value_range[0]), float(value_range[1])
        else:
            lo, hi = _percentile_range(src, percentiles)
        if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
            raise DataError(path, f"cannot scale the {dtype} values to 8 bits: range [{lo:g}, {hi:g}] is empty",
                            "pass --value-range LO HI")
        src.scaling = (lo, hi)
        log.info("%s: %s values stretched from [%g, %g] to 1..255", path, dtype, lo, hi)
    src.n_valid = _count_valid(src)
    if src.n_valid == 0:
        raise DataError(path, "the scene holds no valid pixel (all no data)")
    return src


def _strips(shape: tuple[int, int]) -> Iterator[tuple[int, int]]:
    step = max(1, _STRIP_PIXELS // max(shape[1], 1))
    for r in range(0, shape[0], step):
        yield r, min(shape[0], r + step)


def _percentile_range(src: SceneSource, percentiles: tuple[float, float]) -> tuple[float, float]:
    k = max(1, math.ceil(src.shape[0] * src.shape[1] / _SUBSAMPLE_MAX))
    parts = []
    for r0, r1 in _strips(src.shape):
        v = src._read(window=Window(0, r0, src.shape[1], r1 - r0)).astype(np.float64).ravel()
        ok = np.isfinite(v)
        if src.nodata is not None:
            ok &= v != src.nodata
        parts.append(v[ok][::k])
    values = np.concatenate(parts) if parts else np.zeros(0)
    if values.size == 0:
        raise DataError(src.path, "the scene holds no valid pixel (all no data)")
    lo, hi = np.percentile(values, [float(percentiles[0]), float(percentiles[1])])
    return float(lo), float(hi)


def _count_valid(src: SceneSource) -> int:
    return int(sum(np.count_nonzero(src.read(r0, r1, 0, src.shape[1])) for r0, r1 in _strips(src.shape)))


# --------------------------------------------------------------------------------------------------------------
# dihedral frames (rotation k × 90° clockwise, then an optional horizontal flip, as in ssl4sar.inference)

Rect = tuple[int, int, int, int]  # row0, row1, col0, col1 (half-open)


def _frame_shape(shape: tuple[int, int], k: int) -> tuple[int, int]:
    return (shape[1], shape[0]) if k % 2 else shape


def _rect_forward(rect: Rect, shape: tuple[int, int], k: int, flip: bool) -> Rect:
    """Where a rectangle of the original frame lies in the rotated (k × 90° cw) and flipped frame."""
    r0, r1, c0, c1 = rect
    h, w = shape
    for _ in range(k % 4):  # (r, c) → (c, h − 1 − r); the new shape is (w, h)
        r0, r1, c0, c1 = c0, c1, h - r1, h - r0
        h, w = w, h
    if flip:
        c0, c1 = w - c1, w - c0
    return r0, r1, c0, c1


def _rect_inverse(rect: Rect, shape: tuple[int, int], k: int, flip: bool) -> Rect:
    """Inverse of :func:`_rect_forward` (``shape`` is the original frame's shape)."""
    r0, r1, c0, c1 = rect
    h, w = _frame_shape(shape, k)
    if flip:
        c0, c1 = w - c1, w - c0
    for _ in range(k % 4):  # new (i, j) ← old (H − 1 − j, i), old shape (H, W) = (w, h) of the new frame
        old_h = w
        r0, r1, c0, c1 = old_h - c1, old_h - c0, r0, r1
        h, w = w, h
    return r0, r1, c0, c1


def _forward(image: np.ndarray, k: int, flip: bool) -> np.ndarray:
    out = np.rot90(image, k=-k)
    return np.ascontiguousarray(out[:, ::-1] if flip else out)


def _inverse(prob: np.ndarray, k: int, flip: bool) -> np.ndarray:
    if flip:
        prob = prob[:, :, ::-1]
    return np.rot90(prob, k=k, axes=(1, 2))


def _tiles(shape: tuple[int, int], tile: int | None) -> list[Rect]:
    h, w = shape
    if tile is None or (tile >= h and tile >= w):
        return [(0, h, 0, w)]
    return [(r, min(h, r + tile), c, min(w, c + tile)) for r in range(0, h, tile) for c in range(0, w, tile)]


# --------------------------------------------------------------------------------------------------------------
# results

@dataclass
class SceneResult:
    """What :func:`predict_scene` produced for one scene.

    ``geometry`` is the front in the scene CRS (pixel coordinates without CRS), ``None`` when no front was found;
    ``outputs`` maps ``zones``, ``probabilities``, ``uncertainty``, ``front_mask``, ``front``, (``front_wgs84``,
    ``front_members``, ``overlay``) to files. Lengths in metres, spacings in m/px.
    """

    path: Path
    stem: str
    outputs: dict[str, Path]
    crs: str | None
    transform: tuple[float, ...]
    shape: tuple[int, int]
    model_shape: tuple[int, int]
    resolution_m: float
    date: dt.date | None
    sensor: str | None
    glacier: str | None
    n_maps: int
    n_front_pixels: int
    length_m: float
    mean_uncertainty: float | None
    geometry: Any = None

    def summary(self) -> dict[str, Any]:
        """One CSV row."""
        return {"scene": self.stem, "path": str(self.path), "date": self.date.isoformat() if self.date else "",
                "sensor": self.sensor or "", "glacier": self.glacier or "", "crs": self.crs or "pixel",
                "height_px": self.shape[0], "width_px": self.shape[1], "resolution_m": round(self.resolution_m, 4),
                "model_height_px": self.model_shape[0], "model_width_px": self.model_shape[1],
                "n_maps": self.n_maps, "n_front_pixels": self.n_front_pixels, "length_m": round(self.length_m, 3),
                "mean_uncertainty": "" if self.mean_uncertainty is None else round(self.mean_uncertainty, 6),
                "front": str(self.outputs.get("front", ""))}


@dataclass
class PredictionRun:
    """Results of :func:`predict_scenes`: the scenes done and ``(path, reason)`` of those skipped."""

    results: list[SceneResult]
    skipped: list[tuple[Path, str]]


# --------------------------------------------------------------------------------------------------------------
# the core

def _alloc(shape: tuple[int, ...], dtype: Any, tmpdir: Path | None, name: str) -> np.ndarray:
    if tmpdir is None:
        return np.zeros(shape, dtype=dtype)
    return np.lib.format.open_memmap(tmpdir / f"{name}.npy", mode="w+", dtype=dtype, shape=shape)


def _model_frame_inference(maps: Sequence[tuple[Any, int, bool]], read: Any, shape: tuple[int, int],
                           tiles: Sequence[Rect], halo: int, stride: int, window_kwargs: dict[str, Any],
                           mean_out: np.ndarray, std_out: np.ndarray, member_out: np.ndarray | None,
                           progress: bool) -> None:
    """Fill ``mean_out``/``std_out`` ``(K, h, w)`` (and per-map class maps) tile by tile (module docstring)."""
    it: Any = tiles
    if progress and len(tiles) > 1:
        from tqdm.auto import tqdm

        it = tqdm(tiles, desc="tiles", unit="tile")
    for rect in it:
        y0, y1, x0, x1 = rect
        mean: np.ndarray | None = None
        m2: np.ndarray | None = None
        n = 0
        for mi, (model, k, flip) in enumerate(maps):
            ht, wt = _frame_shape(shape, k)
            a0, a1, b0, b1 = _rect_forward(rect, shape, k, flip)
            s0, s1 = max(0, ((a0 - halo) // stride) * stride), min(ht, a1 + halo)
            t0, t1 = max(0, ((b0 - halo) // stride) * stride), min(wt, b1 + halo)
            image = _forward(read(*_rect_inverse((s0, s1, t0, t1), shape, k, flip)), k, flip)
            prob_t = sliding_window_probabilities(model, image, **window_kwargs)
            prob = _inverse(prob_t[:, a0 - s0:a1 - s0, b0 - t0:b1 - t0], k, flip)
            n += 1
            if mean is None:
                mean = np.array(prob, dtype=np.float32)
                m2 = np.zeros_like(mean)
            else:
                assert m2 is not None
                delta = prob - mean
                mean += delta / n
                m2 += delta * (prob - mean)
            if member_out is not None:
                member_out[mi, y0:y1, x0:x1] = prob.argmax(axis=0).astype(np.uint8)
        assert mean is not None and m2 is not None
        mean_out[:, y0:y1, x0:x1] = mean
        std_out[:, y0:y1, x0:x1] = np.sqrt(np.maximum(m2 / n, 0.0)).astype(np.float32)


def _bilinear_axis(start: int, stop: int, n_out: int, n_src: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices (i0, i1) and weight of i1 for output pixel centres ``start..stop-1`` (global, exact)."""
    u = (np.arange(start, stop, dtype=np.float64) + 0.5) * (n_src / n_out) - 0.5
    u = np.clip(u, 0.0, n_src - 1.0)
    i0 = np.floor(u).astype(np.int64)
    i1 = np.minimum(i0 + 1, n_src - 1)
    return i0, i1, (u - i0).astype(np.float32)


def _nearest_axis(start: int, stop: int, n_out: int, n_src: int) -> np.ndarray:
    u = (np.arange(start, stop, dtype=np.float64) + 0.5) * (n_src / n_out)
    return np.clip(np.floor(u).astype(np.int64), 0, n_src - 1)


class _SceneFrame:
    """Model-frame arrays seen on the scene grid (identity, or bilinear / nearest resampling)."""

    def __init__(self, scene_shape: tuple[int, int], model_shape: tuple[int, int]) -> None:
        self.scene_shape = scene_shape
        self.model_shape = model_shape
        self.identity = scene_shape == model_shape

    def bilinear(self, arr: np.ndarray, rect: Rect) -> np.ndarray:
        y0, y1, x0, x1 = rect
        if self.identity:
            return np.asarray(arr[:, y0:y1, x0:x1])
        (hs, ws), (hm, wm) = self.scene_shape, self.model_shape
        ri0, ri1, rw = _bilinear_axis(y0, y1, hs, hm)
        ci0, ci1, cw = _bilinear_axis(x0, x1, ws, wm)
        r_lo, r_hi = int(ri0.min()), int(ri1.max()) + 1
        c_lo, c_hi = int(ci0.min()), int(ci1.max()) + 1
        crop = np.asarray(arr[:, r_lo:r_hi, c_lo:c_hi], dtype=np.float32)
        ri0, ri1, ci0, ci1 = ri0 - r_lo, ri1 - r_lo, ci0 - c_lo, ci1 - c_lo
        top = crop[:, ri0][:, :, ci0] * (1 - cw) + crop[:, ri0][:, :, ci1] * cw
        bot = crop[:, ri1][:, :, ci0] * (1 - cw) + crop[:, ri1][:, :, ci1] * cw
        return (top * (1 - rw)[:, None] + bot * rw[:, None]).astype(np.float32)

    def nearest(self, arr: np.ndarray, rect: Rect) -> np.ndarray:
        y0, y1, x0, x1 = rect
        if self.identity:
            return np.asarray(arr[y0:y1, x0:x1])
        (hs, ws), (hm, wm) = self.scene_shape, self.model_shape
        ri = _nearest_axis(y0, y1, hs, hm)
        ci = _nearest_axis(x0, x1, ws, wm)
        return np.asarray(arr)[ri][:, ci]


def _out_profile(shape: tuple[int, int], count: int, dtype: str, crs: Any, transform: Affine) -> dict[str, Any]:
    h, w = shape
    profile: dict[str, Any] = {"driver": "GTiff", "height": h, "width": w, "count": count, "dtype": dtype,
                               "crs": crs, "transform": transform, "compress": "deflate"}
    if h >= 256 and w >= 256:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    return profile


@contextlib.contextmanager
def _open_for_write(path: Path, profile: dict[str, Any]) -> Iterator[Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        ds = rasterio.open(path, "w", **profile)
    with ds:
        yield ds


def _encode(arr: np.ndarray, dtype: ProbabilityDtype) -> np.ndarray:
    if dtype == "uint8":
        return np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8)
    return arr.astype(np.float32, copy=False)


def _crs_name(crs: Any) -> str | None:
    if crs is None:
        return None
    c = geo.as_crs(crs)
    auth = c.to_authority()
    return f"{auth[0]}:{auth[1]}" if auth else c.to_wkt()


def _mean_at_front(path: Path, front: np.ndarray, tiles: Sequence[Rect], dtype: ProbabilityDtype) -> float | None:
    """Mean over front pixels of the largest per-class value stored in ``path`` (the uncertainty GeoTIFF)."""
    total, count = 0.0, 0
    with rasterio.open(path) as ds:
        for y0, y1, x0, x1 in tiles:
            sub = front[y0:y1, x0:x1]
            if not sub.any():
                continue
            vals = ds.read(window=Window(x0, y0, x1 - x0, y1 - y0)).astype(np.float64)
            if dtype == "uint8":
                vals /= 255.0
            total += float(vals.max(axis=0)[sub > 0].sum())
            count += int(np.count_nonzero(sub))
    return total / count if count else None


def _as_models(models: Any) -> list[Any]:
    members = list(models) if isinstance(models, (list, tuple)) else [models]
    if not members:
        raise ValueError("no models given")
    return members


def predict_scene(models: Any, path: str | Path, out_dir: str | Path, *, resolution_m: float | None = None,
                  rotations: Sequence[int] = (0,), flips: bool = False, tile_size: int | None = None,
                  context_size: int | None = None, stride: int | None = None, sigma: float | None = None,
                  batch_size: int = paper_preset().inference.batch_size, device: str | torch.device | None = None,
                  amp_dtype: torch.dtype | None = None, min_front_length_m: float = DEFAULT_MIN_FRONT_LENGTH_M,
                  to_wgs84: bool = False,
                  allow_no_crs: bool = False, pixel_size_m: float | None = None,
                  value_range: tuple[float, float] | None = None, percentiles: tuple[float, float] = (1.0, 99.0),
                  probability_dtype: ProbabilityDtype = "float32", member_fronts: bool = False,
                  overlay: bool = True, line_mode: geo.LineMode = "chains", progress: bool = False) -> SceneResult:
    """Predict one scene and write its outputs (module docstring) to ``out_dir``.

    Args:
        models: one model or ensemble members, each mapping ``(B, 1, C, C)`` in [0, 1] to logits ``(B, K, C, C)``
            (e.g. :func:`ssl4sar.models.convert.load_model`), already on ``device``.
        path: the scene (GeoTIFF, CaFFe PNG, any single-band raster).
        out_dir: output folder (created).
        resolution_m: run the model at this pixel spacing (m/px) instead of the scene's; None = scene grid.
        rotations: TTA quarter turns (``(0, 1, 2, 3)`` in the paper); flips: also the mirrored versions.
        tile_size: process the model-frame image in tiles of this many px (rounded up to a multiple of the
            stride); None = whole scene at once. Results are identical either way.
        context_size: window side C in px (default: the first model's ``img_size``); stride: default C / 4;
            sigma: Gaussian σ in px (default C / 16); batch_size: windows per forward pass; device: where the
            model runs (default: its parameters' device); amp_dtype: autocast dtype (e.g. ``torch.bfloat16`` on
            a GPU), the softmax stays float32.
        min_front_length_m: shorter front pieces are removed (§7.2, converted with the scene's spacing).
        to_wgs84: also write the front in EPSG:4326 (needs a CRS).
        allow_no_crs: accept GeoTIFFs without CRS (pixel coordinates); pixel_size_m: spacing when unknown.
        value_range, percentiles: scaling of non-uint8 input (module docstring).
        probability_dtype: ``"float32"`` or ``"uint8"`` (round(255·p), GDAL scale 1/255) for the K-band rasters.
        member_fronts: also extract and write one front per member × augmentation map.
        overlay: write the overlay PNG.
        line_mode: how front pixels become lines (:func:`ssl4sar.geo.front_polylines`).
        progress: tqdm bars.

    Raises:
        DataError: for a bad scene (unreadable, no CRS, no data, unknown spacing), naming the file.
    """
    members = _as_models(models)
    rots = [int(k) % 4 for k in rotations] or [0]
    if probability_dtype not in ("float32", "uint8"):
        raise ValueError(f"probability_dtype must be 'float32' or 'uint8', got {probability_dtype!r}")
    c = int(context_size if context_size is not None else getattr(members[0], "img_size", 0) or 0)
    if c <= 0:
        raise ValueError("context_size is unknown: pass context_size= (the model has no img_size attribute)")
    s = int(stride) if stride is not None else max(1, c // 4)
    halo = -(-c // s) * s
    tile = None if tile_size is None else max(s, -(-int(tile_size) // s) * s)
    window_kwargs: dict[str, Any] = {"context_size": c, "stride": s, "sigma": sigma, "batch_size": batch_size,
                                     "device": device, "amp_dtype": amp_dtype, "progress": progress and tile is None}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    src = open_scene(path, allow_no_crs=allow_no_crs, pixel_size_m=pixel_size_m, value_range=value_range,
                     percentiles=percentiles)
    try:
        return _predict_open_scene(members, src, out, resolution_m, rots, flips, tile, halo, s, window_kwargs,
                                   min_front_length_m, to_wgs84, probability_dtype, member_fronts, overlay,
                                   line_mode, progress)
    finally:
        src.close()


def _predict_open_scene(members: list[Any], src: SceneSource, out: Path, resolution_m: float | None,
                        rots: list[int], flips: bool, tile: int | None, halo: int, stride: int,
                        window_kwargs: dict[str, Any], min_front_length_m: float, to_wgs84: bool,
                        probability_dtype: ProbabilityDtype, member_fronts: bool, overlay: bool,
                        line_mode: geo.LineMode, progress: bool) -> SceneResult:
    h, w = src.shape
    model_shape = src.shape
    if resolution_m is not None:
        if not resolution_m > 0:
            raise ValueError(f"resolution_m must be positive (m/px), got {resolution_m}")
        sx, sy = src.pixel_size_m
        if abs(sx / resolution_m - 1) > _RESAMPLE_TOL or abs(sy / resolution_m - 1) > _RESAMPLE_TOL:
            model_shape = (max(1, round(h * sy / resolution_m)), max(1, round(w * sx / resolution_m)))
    if model_shape != src.shape:
        log.info("%s: resampling %dx%d px at %.2f m to %dx%d px at %.2f m", src.path, h, w, src.resolution_m,
                 model_shape[0], model_shape[1], resolution_m)
        resampled = src.read_resampled(model_shape)

        def read(r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
            return resampled[r0:r1, c0:c1]
    else:
        read = src.read
    maps = [(m, k, f) for m in members for k in rots for f in ((False, True) if flips else (False,))]
    n_maps = len(maps)
    model_tiles = _tiles(model_shape, tile)
    scene_tiles = _tiles(src.shape, tile)
    stem = src.stem
    paths = {"zones": out / f"{stem}_zones.tif", "probabilities": out / f"{stem}_probabilities.tif",
             "uncertainty": out / f"{stem}_uncertainty.tif", "front_mask": out / f"{stem}_front.tif",
             "front": out / f"{stem}_front.geojson"}
    with contextlib.ExitStack() as stack:
        tmpdir = None
        if tile is not None:
            tmpdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f".{stem}.", dir=out)))
        k_classes = _n_classes(members[0], read, model_shape, window_kwargs)
        mean = _alloc((k_classes, *model_shape), np.float32, tmpdir, "mean")
        std = _alloc((k_classes, *model_shape), np.float32, tmpdir, "std")
        member_maps = _alloc((n_maps, *model_shape), np.uint8, tmpdir, "members") if member_fronts else None
        _model_frame_inference(maps, read, model_shape, model_tiles, halo, stride, window_kwargs, mean, std,
                               member_maps, progress)
        if not np.isfinite(mean).all():  # NaN softmax would argmax to NA everywhere: say so instead
            raise DataError(src.path, "the network output is not finite (NaN or inf) for this scene",
                            "check the checkpoint and the image values")
        frame = _SceneFrame(src.shape, model_shape)
        zones = np.zeros(src.shape, dtype=np.uint8)
        names = list(CLASS_NAMES) + [f"class {i}" for i in range(len(CLASS_NAMES), k_classes)]
        prob_dtype = "uint8" if probability_dtype == "uint8" else "float32"
        with atomic_path(paths["probabilities"]) as p_tmp, atomic_path(paths["uncertainty"]) as u_tmp:
            profile = _out_profile(src.shape, k_classes, prob_dtype, src.crs, src.transform)
            with _open_for_write(p_tmp, profile) as p_ds, _open_for_write(u_tmp, profile) as u_ds:
                for ds, what in ((p_ds, "mean softmax probability"), (u_ds, "std of the softmax over maps")):
                    for b in range(k_classes):
                        ds.set_band_description(b + 1, f"{names[b]}: {what}")
                    if probability_dtype == "uint8":
                        ds.scales = [1.0 / 255.0] * k_classes
                    ds.update_tags(n_maps=n_maps, rotations=",".join(map(str, rots)), flips=str(flips),
                                   scene=stem)
                for rect in scene_tiles:
                    y0, y1, x0, x1 = rect
                    m_t = frame.bilinear(mean, rect)
                    s_t = frame.bilinear(std, rect)
                    z = m_t.argmax(axis=0).astype(np.uint8)
                    z[src.read(y0, y1, x0, x1) == 0] = 0
                    zones[y0:y1, x0:x1] = z
                    win = Window(x0, y0, x1 - x0, y1 - y0)
                    p_ds.write(_encode(m_t, probability_dtype), window=win)
                    u_ds.write(_encode(s_t, probability_dtype), window=win)
        _write_raster(paths["zones"], zones, src, {"classes": "0 NA, 1 rock, 2 glacier, 3 ocean + ice melange"})
        front = extract_front(zones, src.resolution_m, min_front_length_m=min_front_length_m)
        _write_raster(paths["front_mask"], front * np.uint8(255), src, {"front": "255 = calving front"})
        member_geoms: list[tuple[Any, dict[str, Any]]] = []
        if member_maps is not None:
            for mi, (_, k, f) in enumerate(maps):
                mz = np.zeros(src.shape, dtype=np.uint8)
                for rect in scene_tiles:
                    y0, y1, x0, x1 = rect
                    z = frame.nearest(member_maps[mi], rect).astype(np.uint8)
                    z[src.read(y0, y1, x0, x1) == 0] = 0
                    mz[y0:y1, x0:x1] = z
                mf = extract_front(mz, src.resolution_m, min_front_length_m=min_front_length_m)
                g = _front_geometry(mf, src, line_mode)
                per_model = len(rots) * (2 if flips else 1)
                member_geoms.append((g, {"scene": stem, "member": mi, "model": mi // per_model, "rotation": k,
                                         "flip": f, "n_pixels": int(mf.sum()),
                                         "length_m": round(_length_m(g, src), 3)}))
    geometry = _front_geometry(front, src, line_mode)
    length_m = _length_m(geometry, src)
    mean_unc = _mean_at_front(paths["uncertainty"], front, scene_tiles, probability_dtype)
    crs_name = _crs_name(src.crs)
    props = {"scene": stem, "date": src.date.isoformat() if src.date else None, "sensor": src.sensor,
             "glacier": src.glacier, "length_m": round(length_m, 3),
             "mean_uncertainty": None if mean_unc is None else round(mean_unc, 6), "n_pixels": int(front.sum()),
             "n_lines": 0 if geometry is None else len(getattr(geometry, "geoms", [geometry])),
             "n_maps": n_maps, "resolution_m": round(src.resolution_m, 4), "crs": crs_name or "pixel",
             "kind": "fused"}
    geo.write_geojson(paths["front"], [(geometry, props)], src.crs)
    if to_wgs84:
        if src.crs is None:
            log.warning("%s: no CRS, cannot write the front in EPSG:4326", src.path)
        else:
            paths["front_wgs84"] = geo.write_geojson(
                out / f"{stem}_front_wgs84.geojson",
                [(geo.reproject_geometry(geometry, src.crs, geo.WGS84), props)], geo.WGS84)
    if member_fronts:
        paths["front_members"] = geo.write_geojson(out / f"{stem}_front_members.geojson", member_geoms, src.crs)
    if overlay:
        paths["overlay"] = _write_overlay(out / f"{stem}_overlay.png", src, zones, front)
    log.info("%s: front of %d px, %.0f m (%d maps)", stem, int(front.sum()), length_m, n_maps)
    return SceneResult(path=src.path, stem=stem, outputs=paths, crs=crs_name, transform=tuple(src.transform)[:6],
                       shape=src.shape, model_shape=model_shape, resolution_m=src.resolution_m, date=src.date,
                       sensor=src.sensor, glacier=src.glacier, n_maps=n_maps, n_front_pixels=int(front.sum()),
                       length_m=length_m, mean_uncertainty=mean_unc, geometry=geometry)


def _n_classes(model: Any, read: Any, shape: tuple[int, int], window_kwargs: dict[str, Any]) -> int:
    k = getattr(model, "num_classes", None)
    if isinstance(k, int) and k > 0:
        return k
    c = int(window_kwargs["context_size"])
    probe = np.zeros((c, c), dtype=np.uint8)
    img = read(0, min(c, shape[0]), 0, min(c, shape[1]))
    probe[:img.shape[0], :img.shape[1]] = img
    x = torch.from_numpy(probe.astype(np.float32) / 255.0)[None, None]
    dev = window_kwargs.get("device")
    if dev is not None:
        x = x.to(dev)
    with torch.inference_mode():
        y = model(x)
    y = y[0] if isinstance(y, (tuple, list)) else y
    return int(y.shape[1])


def _front_geometry(front: np.ndarray, src: SceneSource, line_mode: geo.LineMode) -> Any:
    transform = src.transform if src.crs is not None else Affine.identity()
    return geo.front_to_geometry(front, transform, mode=line_mode)


def _length_m(geometry: Any, src: SceneSource) -> float:
    if geometry is None:
        return 0.0
    if src.crs is None:
        return float(geometry.length) * src.resolution_m
    return geo.geometry_length_m(geometry, src.crs)


def _write_raster(path: Path, array: np.ndarray, src: SceneSource, tags: dict[str, str]) -> Path:
    with atomic_path(path) as tmp:
        with _open_for_write(tmp, _out_profile(src.shape, 1, "uint8", src.crs, src.transform)) as ds:
            ds.write(array, 1)
            ds.update_tags(scene=src.stem, **tags)
    return path


def _write_overlay(path: Path, src: SceneSource, zones: np.ndarray, front: np.ndarray) -> Path:
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
    return save_figure(fig, path)


# --------------------------------------------------------------------------------------------------------------
# many scenes

def predict_scenes(models: Any, paths: Sequence[str | Path], out_dir: str | Path, **kwargs: Any) -> PredictionRun:
    """:func:`predict_scene` for every path; bad scenes are logged, listed in ``skipped.csv`` and skipped.

    Writes ``predictions.csv`` (one row per predicted scene, :meth:`SceneResult.summary`) and ``skipped.csv``
    (``scene,reason``; header only when nothing was skipped) to ``out_dir``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results: list[SceneResult] = []
    skipped: list[tuple[Path, str]] = []
    for p in paths:
        p = Path(p)
        try:
            results.append(predict_scene(models, p, out, **kwargs))
        except (DataError, RasterioError) as exc:
            reason = exc.problem if isinstance(exc, DataError) else str(exc)
            log.error("skipping %s: %s", p, reason)
            skipped.append((p, reason))
    _write_csv(out / "predictions.csv", [r.summary() for r in results], _SUMMARY_COLUMNS)
    _write_csv(out / "skipped.csv", [{"scene": str(p), "reason": r} for p, r in skipped], ["scene", "reason"])
    return PredictionRun(results, skipped)


_SUMMARY_COLUMNS = ["scene", "path", "date", "sensor", "glacier", "crs", "height_px", "width_px", "resolution_m",
                    "model_height_px", "model_width_px", "n_maps", "n_front_pixels", "length_m", "mean_uncertainty",
                    "front"]


def _write_csv(path: Path, rows: list[dict[str, Any]], cols: list[str]) -> Path:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    return write_text_atomic(path, buf.getvalue())

