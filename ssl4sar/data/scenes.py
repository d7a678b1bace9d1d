"""Reading SAR scenes for prediction: open, check and convert any single-band raster to the 8-bit model input.

:func:`open_scene` returns a :class:`SceneSource` (georeferencing, metadata, windowed 8-bit reads);
:func:`scene_metadata` reads date, sensor and glacier from a file name and raster tags.

Any single-band raster GDAL reads (band 1 is used): GeoTIFFs in any CRS, or CaFFe PNGs.

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
* The rasters and the overlay PNG that ``ssl4sar predict`` writes carry the metadata item
  :data:`PREDICT_OUTPUT_TAG` (their kind). Such a file is not a SAR scene: :func:`open_scene` refuses it, and
  :func:`predict_output_kind` tells it apart (also by the tags of outputs written before the item existed), so that
  a folder of scenes and their outputs can be given to ``predict`` again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import math
import re
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.transform import Affine
from rasterio.windows import Window

from ssl4sar import geo
from ssl4sar.data.construct import parse_date
from ssl4sar.domain import CAFFE_PIXEL_SPACING_M
from ssl4sar.errors import DataError

__all__ = ["SceneSource", "open_scene", "scene_metadata", "to_model_input", "PREDICT_OUTPUT_TAG", "ZONES_TAGS",
           "FRONT_MASK_TAGS", "predict_output_kind"]

log = logging.getLogger(__name__)

_SUBSAMPLE_MAX = 1_000_000
#: metadata item (GeoTIFF tag, PNG text) that marks a file written by ``ssl4sar predict``; its value is the kind
PREDICT_OUTPUT_TAG = "ssl4sar_output"
#: the other tags ``predict`` writes on its zone and front-mask rasters; with the probability rasters' tag names,
#: they recognise outputs written before :data:`PREDICT_OUTPUT_TAG` was
ZONES_TAGS = {"classes": "0 NA, 1 rock, 2 glacier, 3 ocean + ice melange"}
FRONT_MASK_TAGS = {"front": "255 = calving front"}
_PROBABILITY_TAG_NAMES = ("n_maps", "rotations", "flips")
_STRIP_PIXELS = 4_000_000


_SENSOR_TOKENS = {"S1": "S1", "S1A": "S1", "S1B": "S1", "S1C": "S1", "SENTINEL1": "S1", "SENTINEL-1": "S1",
                  "TSX": "TSX", "TSX1": "TSX", "TERRASAR-X": "TSX", "TDX": "TDX", "TDX1": "TDX",
                  "TANDEM-X": "TDX", "ERS": "ERS", "ERS1": "ERS", "ERS2": "ERS", "ENVISAT": "ENVISAT",
                  "ASAR": "ENVISAT", "PALSAR": "PALSAR", "ALOS": "PALSAR", "RSAT": "RSAT", "RADARSAT": "RSAT",
                  "RS1": "RSAT", "RS2": "RSAT"}
_DATE_TAGS = ("ACQUISITION_DATE", "ACQUISITION_START_TIME", "START_TIME", "SENSING_TIME", "DATE",
              "TIFFTAG_DATETIME", "DATETIME")
_SENSOR_TAGS = ("SENSOR", "MISSION", "MISSION_ID", "PLATFORM", "SATELLITE", "SPACECRAFT")


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
            out["date"] = parse_date(upper[key].replace(":", "-", 2))
    for key in _SENSOR_TAGS:
        if key in upper and out["sensor"] is None:
            out["sensor"] = _sensor_from_text(upper[key]) or upper[key]
    if out["date"] is None:
        out["date"] = parse_date(stem)
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
        """The whole scene as 8-bit model input on a ``out_shape`` grid: GDAL ``average`` when shrinking,
        ``bilinear`` when enlarging, validity from a ``nearest`` read (``ssl4sar.predict`` resampling)."""
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


def predict_output_kind(path: str | Path) -> str | None:
    """The kind of ``ssl4sar predict`` output the file is (``zones``, ``probabilities``, ``uncertainty``,
    ``front_mask``, ``overlay``; ``probabilities or uncertainty`` for those written before they were marked), from
    its metadata; ``None`` for anything else, a file that cannot be read included (reading it says why)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as ds:
                tags = {str(k): str(v) for k, v in ds.tags().items()}
    except (RasterioError, OSError):
        return None
    return _output_kind(tags)


def _output_kind(tags: Mapping[str, str]) -> str | None:
    if tags.get(PREDICT_OUTPUT_TAG):
        return str(tags[PREDICT_OUTPUT_TAG])
    for kind, marks in (("zones", ZONES_TAGS), ("front_mask", FRONT_MASK_TAGS)):
        if all(tags.get(k) == v for k, v in marks.items()):
            return kind
    if "scene" in tags and all(k in tags for k in _PROBABILITY_TAG_NAMES):
        return "probabilities or uncertainty"
    return None


def open_scene(path: str | Path, *, allow_no_crs: bool = False, pixel_size_m: float | None = None,
               value_range: tuple[float, float] | None = None, percentiles: tuple[float, float] = (1.0, 99.0)
               ) -> SceneSource:
    """Open a scene for prediction and check it (see the module docstring).

    Raises :class:`DataError` naming the file when it is unreadable, is an output of ``ssl4sar predict``, has no
    CRS (GeoTIFF without ``allow_no_crs``), holds no valid pixel, or its pixel spacing is unknown. The caller must
    ``close()`` it.
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
    tags = {str(k): str(v) for k, v in ds.tags().items()}
    kind = _output_kind(tags)
    if kind is not None:
        raise DataError(path, f"this file is an output of ssl4sar predict ({kind}), not a SAR scene",
                        "give predict the SAR scenes only")
    crs = ds.crs if ds.crs else None
    is_png = ds.driver.upper() == "PNG" or path.suffix.lower() == ".png"
    if crs is None and not (is_png or allow_no_crs):
        n_gcps = len(ds.gcps[0]) if ds.gcps and ds.gcps[0] else 0
        if n_gcps:  # e.g. a Sentinel-1 GRD measurement file: a CRS assigned to its pixel grid would be wrong
            raise DataError(path, f"the raster is located by {n_gcps} ground control points only, not on a map grid",
                            "warp it onto one first, at a spacing within the model's "
                            f"{CAFFE_PIXEL_SPACING_M[0]:g}-{CAFFE_PIXEL_SPACING_M[1]:g} m/px, e.g. gdalwarp -t_srs "
                            f"EPSG:<UTM zone> -tr {CAFFE_PIXEL_SPACING_M[1]:g} {CAFFE_PIXEL_SPACING_M[1]:g} "
                            "-r average IN OUT.tif; or pass "
                            "--allow-no-crs --pixel-size-m M for pixel coordinates")
        raise DataError(path, "raster has no coordinate reference system (CRS)",
                        "assign one (gdal_edit.py -a_srs EPSG:xxxx) or pass --allow-no-crs for pixel coordinates")
    if crs is None:
        log.warning("%s: no CRS, the front is written in pixel coordinates (x = column + 0.5, y = row + 0.5)", path)
    if ds.count > 1:
        log.warning("%s: %d bands, using band 1 as the SAR amplitude", path, ds.count)
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
