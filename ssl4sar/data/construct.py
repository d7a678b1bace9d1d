"""Building the SSL4SAR pretraining layout from raw, georeferenced Sentinel-1 and Sentinel-2 scenes.

The reference code assumes that every SAR image of a glacier and that glacier's optical image share one pixel
grid (spec §2.2, "nothing reprojects"). This module makes that true for arbitrary inputs:

Inputs
    * **Sentinel-1 scenes**: single-band GeoTIFFs (band 1 is used) in any projected or geographic CRS, holding
      σ⁰ in dB, linear σ⁰ (intensity), calibrated amplitude, uncalibrated digital numbers (any integer type) or
      an 8-bit image. ``sar_units="auto"`` decides per scene (:func:`resolve_sar_units`): ``uint8`` → already
      8-bit; a band description / tag naming the unit (``dB``, ``amplitude``, ``intensity``/``power``/``linear``)
      → that; other integer types → ``dn``; floats with any negative valid value → ``db``; other floats →
      ``intensity``. Declare the unit (``sar_units=...`` / ``--sar-units``) when the guess could be wrong.
      No-data: the file's no-data value, NaN/±inf, and for the linear units values ≤ 0.
      Acquisition date: ``YYYYMMDD[Thhmmss]`` or ``YYYY-MM-DD`` in the file name, else the ``ACQUISITION_DATE``
      / ``DATE`` / ``TIFFTAG_DATETIME`` tag. Sensor: ``S1`` (``S1A``/``S1B``/… prefixes), or the file name's first
      ``_`` field, or ``sensor=...``.
    * **Sentinel-2 L2A scenes**: any mix of one multi-band file per scene (bands named by their descriptions, or
      the Google Earth Engine ``COPERNICUS/S2_SR`` order when the file has ≥ 15 unnamed bands), one file per
      resolution group (10 / 20 / 60 m, band descriptions), or one file per band (the band in the file name,
      e.g. ``T22WEV_20190712T150759_B04_10m.jp2``), in any CRS. Files whose names differ only by the band / the
      ``_10m``-style suffix form one scene; a band present at several resolutions is taken at the finest.
      B1…B12 are required, AOT, WVP and SCL are filled with 0 (and logged) when absent. No-data: the file's
      no-data value (0 for L2A products when unset).
    * **Areas of interest** (:func:`read_aois`): a GeoJSON ``FeatureCollection``, one feature per glacier with
      the property ``glacier`` (no ``_`` in the name — it is a file-name field), and a Polygon / MultiPolygon
      geometry or a ``bbox`` ``[minx, miny, maxx, maxy]`` (feature member or property). Coordinates are lon/lat
      (EPSG:4326) unless the collection's ``crs`` member or the feature's ``crs`` property names another CRS.
      Optional properties: ``resolution_m`` (grid spacing), ``grid_crs`` (grid CRS), or a full ``grid``
      ``{"crs": ..., "transform": [a, b, c, d, e, f], "width": W, "height": H}``.

The glacier grid
    An explicit ``grid``, else: CRS = ``grid_crs`` or the CRS of the glacier's *first* overlapping SAR scene (by
    acquisition date, then name); spacing = ``resolution_m`` (property, else the ``resolution_m`` argument, else
    the first scene's pixel size); the grid covers the area of interest's bounding box and, when it shares that
    scene's CRS, lies on that scene's pixel lattice (so the first scene is cropped, not resampled). Grids are
    stored in ``grids.json`` and reused by later runs into the same folder.

Resampling (rasterio / GDAL ``reproject``)
    SAR: bilinear, in the log domain (dB), before the 8-bit conversion; only the part of a scene around the grid
    is read. Sentinel-2: bilinear for reflectances, AOT and WVP, nearest for SCL, each band from its native
    resolution. Several Sentinel-2 scenes of a glacier are mosaicked: the one covering most of the grid first,
    its gaps filled from the next ones; the output is named after the first one's date.

8-bit SAR (what :mod:`ssl4sar.data.unlabeled` reads; 0 = no data)
    ``db`` / ``intensity`` / ``amplitude``: converted to dB (``10·log10`` of intensity, ``20·log10`` of
    amplitude), clipped to ``db_range`` (default −30 … +5 dB) and mapped linearly to 1 … 255
    (``DN = 1 + 254·(dB − lo)/(hi − lo)``, rounded). ``dn``: ``20·log10(DN)`` stretched between its
    ``dn_percentiles`` (0.5 %, 99.5 %) over the glacier grid, mapped to 1 … 255 (uncalibrated, so per scene).
    ``uint8``: kept (bilinear resampling, rounded, 1 … 255).

Output (the layout :mod:`ssl4sar.data.unlabeled` reads)::

    <out>/sar/{train,val}/<Sensor>_<Glacier>_<YYYY-MM-DD>_<k>.tif   uint8, 1 band, nodata 0, the glacier grid
    <out>/optical/<Glacier>_S2_<YYYY-MM-DD>.tif                     15 bands B1…B12, AOT, WVP, SCL (S2_SR order),
                                                                    the input dtype (uint16 for L2A), nodata 0
    <out>/manifest.csv          file, glacier, date, sensor, crs, resolution_m, valid_fraction, source, split
    <out>/manifest_skipped.csv  source, kind (sar / optical / aoi), glacier, reason
    <out>/grids.json            the glacier grids
    <out>/construction.json     the settings of the run (units, dB range, percentiles, split, thresholds, sensor)

``k`` numbers the scenes of one glacier and date (sorted by source name). ``split``: per glacier the latest
``val_fraction`` of the overlapping scenes (by date; at least one when a glacier has two or more) go to ``val``.
Scenes whose valid part of the grid is below ``min_valid_fraction`` are skipped.

Robustness
    Every output is written to a temporary file and renamed. A row is appended to ``manifest.csv`` (and flushed)
    as soon as its file is complete, so an interrupted run can be repeated: outputs that exist *and* have a row
    are skipped; the manifest is rewritten sorted at the end. Bad inputs — unreadable (also when only the pixel
    data is cut off, found while reading it), no CRS, no overlap with any area of interest, no valid pixel over
    it, no date, unidentifiable bands — are logged, listed in ``manifest_skipped.csv`` with the reason, and
    skipped without stopping the run. A re-run into a folder built with other settings (``resolution_m`` other
    than its grids', or any setting of ``construction.json``) is refused with a :class:`DataError` instead of
    silently reusing outputs made with the old ones.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import json
import logging
import math
import os
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import shapely
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import CRSError, NotGeoreferencedWarning, RasterioIOError
from rasterio.transform import Affine
from rasterio.warp import reproject, transform_bounds
from rasterio.windows import Window, from_bounds
from shapely.geometry import Polygon, box, shape
from tqdm.auto import tqdm

from ssl4sar import geo
from ssl4sar.errors import DataError
from ssl4sar.io import atomic_path, ensure_writable_dir, write_text_atomic

__all__ = [
    "SAR_UNITS", "DEFAULT_DB_RANGE", "DEFAULT_DN_PERCENTILES", "S2_BANDS", "MANIFEST_COLUMNS", "SKIPPED_COLUMNS",
    "GlacierGrid", "GlacierAOI", "SarScene", "OpticalScene", "ConstructionManifest",
    "read_aois", "scan_sar", "scan_optical", "resolve_sar_units", "sar_to_db", "db_to_uint8", "glacier_grid",
    "reproject_to_grid", "construct_ssl4sar", "parse_date",
]

log = logging.getLogger(__name__)

#: SAR value encodings understood (see the module docstring)
SAR_UNITS: tuple[str, ...] = ("auto", "db", "intensity", "amplitude", "dn", "uint8")
#: σ⁰ range (dB) mapped to 1 … 255
DEFAULT_DB_RANGE: tuple[float, float] = (-30.0, 5.0)
#: percentiles (%) of log-DN mapped to 1 and 255 for uncalibrated SAR
DEFAULT_DN_PERCENTILES: tuple[float, float] = (0.5, 99.5)
#: bands of the optical output, GEE ``COPERNICUS/S2_SR`` order up to SCL (what ``unlabeled.read_optical`` reads)
S2_BANDS: tuple[str, ...] = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B11", "B12", "AOT",
                             "WVP", "SCL")
#: full GEE ``COPERNICUS/S2_SR`` band order (for multi-band files without band descriptions)
S2_SR_ORDER: tuple[str, ...] = S2_BANDS + ("TCI_R", "TCI_G", "TCI_B", "MSK_CLDPRB", "MSK_SNWPRB")
REQUIRED_S2_BANDS = S2_BANDS[:12]
CATEGORICAL_BANDS = frozenset({"SCL"})
MANIFEST_COLUMNS: tuple[str, ...] = ("file", "glacier", "date", "sensor", "crs", "resolution_m", "valid_fraction",
                                     "source", "split")
SKIPPED_COLUMNS: tuple[str, ...] = ("source", "kind", "glacier", "reason")
MANIFEST_NAME = "manifest.csv"
SKIPPED_NAME = "manifest_skipped.csv"
GRIDS_NAME = "grids.json"
SETTINGS_NAME = "construction.json"
#: settings that change the outputs: a re-run into the same folder must use the same values (resolution_m is
#: checked against the stored grids instead, see :func:`_check_settings`)
_OUTPUT_SETTINGS = ("sar_units", "db_range", "dn_percentiles", "val_fraction", "min_valid_fraction", "sensor")
RASTER_SUFFIXES = (".tif", ".tiff", ".jp2", ".vrt")
_EPS = 1e-6

_RE_DATE_COMPACT = re.compile(r"(?<!\d)(\d{4})(\d{2})(\d{2})(?:T\d{6})?(?!\d)")
_RE_DATE_ISO = re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)")
_RE_RES_SUFFIX = re.compile(r"_(\d{1,3})m$", re.IGNORECASE)
_RE_BAND_TOKEN = re.compile(r"_(B0?[1-9]|B1[0-2]|B8A|SCL|AOT|WVP)$", re.IGNORECASE)


# ------------------------------------------------------------------------------------------------------ small helpers
def _to_crs(value: Any, source: Any) -> CRS:
    try:
        return value if isinstance(value, CRS) else CRS.from_user_input(value)
    except (CRSError, ValueError, TypeError) as exc:
        raise DataError(source, f"unknown CRS {value!r}: {exc}", "use e.g. 'EPSG:32622'") from exc


def _crs_str(crs: CRS) -> str:
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.to_string()


def parse_date(text: str) -> dt.date | None:
    """The first ``YYYY-MM-DD`` or ``YYYYMMDD[Thhmmss]`` date in ``text`` (a file name or a tag), or ``None``."""
    for rx in (_RE_DATE_ISO, _RE_DATE_COMPACT):
        for m in rx.finditer(text):
            try:
                return dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
            except ValueError:
                continue
    return None


def _date_from_tags(tags: Mapping[str, str]) -> dt.date | None:
    for key in ("ACQUISITION_DATE", "acquisition_date", "DATE", "date", "TIFFTAG_DATETIME"):
        if key in tags:
            value = str(tags[key]).replace(":", "-", 2) if key == "TIFFTAG_DATETIME" else str(tags[key])
            d = parse_date(value)
            if d is not None:
                return d
    return None


def _footprint(transform: Affine, shape_hw: tuple[int, int]) -> Polygon:
    h, w = shape_hw
    return Polygon([transform @ (0, 0), transform @ (w, 0), transform @ (w, h), transform @ (0, h)])


def _open(path: Path) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        return rasterio.open(path)


def _band_name(text: str | None) -> str | None:
    """Normalise a band label (``B04``, ``b8a``, ``SCL`` …) to the :data:`S2_SR_ORDER` spelling, or ``None``."""
    if not text:
        return None
    t = text.strip().upper()
    m = re.fullmatch(r"B0?(\d{1,2})", t)
    if m:
        name = f"B{int(m.group(1))}"
        return name if name in S2_SR_ORDER else None
    t = t.replace("B08A", "B8A")
    return t if t in S2_SR_ORDER else None


# ------------------------------------------------------------------------------------------------------ grids and AOIs
@dataclass(frozen=True)
class GlacierGrid:
    """A glacier's pixel grid: ``crs``, north-up affine ``transform`` (CRS units per pixel) and ``shape`` (H, W)."""

    crs: CRS
    transform: Affine
    shape: tuple[int, int]

    @property
    def resolution_m(self) -> float:
        """Mean pixel size in metres (CRS units × their factor; degrees are reported as they are)."""
        res = (abs(self.transform.a) + abs(self.transform.e)) / 2.0
        if self.crs.is_projected:
            with contextlib.suppress(CRSError, TypeError, IndexError):
                res *= float(self.crs.linear_units_factor[1])
        return float(res)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(minx, miny, maxx, maxy) in the grid CRS."""
        return _footprint(self.transform, self.shape).bounds

    def pixel_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """Map coordinates ``(x, y)`` of all pixel centres, each (H, W)."""
        h, w = self.shape
        cols, rows = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
        t = self.transform
        return t.c + cols * t.a + rows * t.b, t.f + cols * t.d + rows * t.e

    def to_json(self) -> dict[str, Any]:
        return {"crs": self.crs.to_wkt() if self.crs.to_epsg() is None else _crs_str(self.crs),
                "transform": list(self.transform)[:6], "height": self.shape[0], "width": self.shape[1]}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], source: Any = None) -> GlacierGrid:
        try:
            crs = _to_crs(obj["crs"], source)
            t = [float(v) for v in obj["transform"]][:6]
            h, w = int(obj["height"]), int(obj["width"])
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(source, f"bad grid description {obj!r}: {exc}",
                            "expected {crs, transform: [a, b, c, d, e, f], width, height}") from exc
        if len(t) != 6 or h < 1 or w < 1:
            raise DataError(source, f"bad grid description {obj!r}")
        return cls(crs, Affine(*t), (h, w))


@dataclass(frozen=True)
class GlacierAOI:
    """A glacier's area of interest: ``geometry`` (shapely) in ``crs``; optional grid settings."""

    name: str
    geometry: Any
    crs: CRS
    resolution_m: float | None = None
    grid_crs: CRS | None = None
    grid: GlacierGrid | None = None

    def __post_init__(self) -> None:
        if not self.name or not re.fullmatch(r"[A-Za-z0-9.\-]+", self.name):
            raise DataError(None, f"glacier name {self.name!r} is not usable in file names",
                            "use letters, digits, '-' and '.' only (no '_': it separates file-name fields)")
        if self.geometry is None or self.geometry.is_empty or self.geometry.area <= 0:
            raise DataError(None, f"glacier {self.name}: empty area of interest")

    @classmethod
    def from_bbox(cls, name: str, bbox: Sequence[float], crs: Any = "EPSG:4326", **kwargs: Any) -> GlacierAOI:
        """An area of interest from ``bbox = (minx, miny, maxx, maxy)`` in ``crs`` (default lon/lat)."""
        minx, miny, maxx, maxy = (float(v) for v in bbox)
        if not (maxx > minx and maxy > miny):
            raise DataError(None, f"glacier {name}: bbox {list(bbox)} is empty", "expected [minx, miny, maxx, maxy]")
        return cls(name, box(minx, miny, maxx, maxy), _to_crs(crs, name), **kwargs)

    def in_crs(self, crs: CRS) -> Any:
        """The geometry in ``crs``."""
        return geo.reproject_geometry(self.geometry, self.crs, crs, densify=64)


def read_aois(path: str | Path) -> list[GlacierAOI]:
    """Read the glaciers' areas of interest from a GeoJSON file (format in the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "area-of-interest file not found")
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(path, f"not valid JSON: {exc}", "expected a GeoJSON FeatureCollection") from exc
    if isinstance(doc, Mapping) and doc.get("type") == "Feature":
        doc = {"type": "FeatureCollection", "features": [doc], "crs": doc.get("crs")}
    if not isinstance(doc, Mapping) or not isinstance(doc.get("features"), list):
        raise DataError(path, "not a GeoJSON FeatureCollection", "one feature per glacier with property 'glacier'")
    default_crs: Any = "EPSG:4326"
    crs_member = doc.get("crs")
    if isinstance(crs_member, Mapping):
        default_crs = (crs_member.get("properties") or {}).get("name", default_crs)
    elif isinstance(crs_member, str):
        default_crs = crs_member
    aois: list[GlacierAOI] = []
    seen: set[str] = set()
    for i, feat in enumerate(doc["features"]):
        props = dict((feat or {}).get("properties") or {})
        name = props.get("glacier") or props.get("name")
        if not name:
            raise DataError(path, f"feature {i} has no 'glacier' property")
        name = str(name)
        if name in seen:
            raise DataError(path, f"glacier {name!r} appears twice", "one feature per glacier")
        seen.add(name)
        crs = _to_crs(props.get("crs", default_crs), path)
        bbox = feat.get("bbox") or props.get("bbox")
        kwargs: dict[str, Any] = {}
        try:
            if props.get("resolution_m") is not None:
                kwargs["resolution_m"] = float(props["resolution_m"])
            if props.get("grid_crs"):
                kwargs["grid_crs"] = _to_crs(props["grid_crs"], path)
            if props.get("grid"):
                kwargs["grid"] = GlacierGrid.from_json(props["grid"], path)
            if feat.get("geometry"):
                geom = shape(feat["geometry"])
                if geom.geom_type not in ("Polygon", "MultiPolygon"):
                    raise DataError(path, f"glacier {name}: geometry is a {geom.geom_type}",
                                    "use a Polygon, a MultiPolygon or a bbox")
                aois.append(GlacierAOI(name, geom, crs, **kwargs))
            elif bbox:
                aois.append(GlacierAOI.from_bbox(name, bbox, crs, **kwargs))
            else:
                raise DataError(path, f"glacier {name}: neither a geometry nor a bbox")
        except DataError as exc:
            if exc.path is None:
                raise DataError(path, exc.problem, exc.hint) from exc
            raise
        except (ValueError, TypeError, AttributeError) as exc:
            raise DataError(path, f"glacier {name}: bad geometry: {exc}") from exc
    if not aois:
        raise DataError(path, "no areas of interest (empty FeatureCollection)")
    return aois


# ------------------------------------------------------------------------------------------------------ scanning
@dataclass(frozen=True)
class SarScene:
    """A raw SAR scene (metadata only): band 1 of ``path``."""

    path: Path
    crs: CRS
    transform: Affine
    shape: tuple[int, int]
    date: dt.date
    sensor: str
    dtype: str
    nodata: float | None
    hint: str

    @property
    def footprint(self) -> Polygon:
        return _footprint(self.transform, self.shape)

    @property
    def sort_key(self) -> tuple[dt.date, str]:
        return self.date, self.path.name


@dataclass(frozen=True)
class BandSource:
    """Where one Sentinel-2 band of a scene is: file, 1-based band index, grid, dtype and no-data value."""

    path: Path
    index: int
    crs: CRS
    transform: Affine
    shape: tuple[int, int]
    dtype: str
    nodata: float | None

    @property
    def resolution(self) -> float:
        return (abs(self.transform.a) + abs(self.transform.e)) / 2.0


@dataclass
class OpticalScene:
    """A raw Sentinel-2 scene: its ``key`` (file stem without band / resolution suffix), date and band sources."""

    key: str
    date: dt.date
    bands: dict[str, BandSource] = field(default_factory=dict)

    @property
    def paths(self) -> list[Path]:
        return sorted({b.path for b in self.bands.values()})

    def footprint_in(self, crs: CRS) -> Any:
        polys = [geo.reproject_geometry(_footprint(b.transform, b.shape), b.crs, crs, densify=64) for b in self.bands.values()]
        return shapely.union_all(polys)


def _raster_files(source: str | Path | Iterable[str | Path]) -> list[Path]:
    if isinstance(source, (str, Path)):
        p = Path(source)
        if p.is_dir():
            return sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in RASTER_SUFFIXES
                          and not q.name.startswith("."))
        if not p.exists():
            raise DataError(p, "input not found", "pass a folder of GeoTIFFs or a list of files")
        return [p]
    return sorted(Path(p) for p in source)


def _skip(skipped: list[dict[str, str]], source: Any, kind: str, reason: str, glacier: str = "") -> None:
    log.warning("skipping %s %s%s: %s", kind, Path(str(source)).name, f" ({glacier})" if glacier else "", reason)
    skipped.append({"source": str(source), "kind": kind, "glacier": glacier, "reason": reason})


def _unit_hint(src: Any) -> str:
    parts = [str(src.descriptions[0] or "") if src.descriptions else ""]
    with contextlib.suppress(Exception):
        parts += [f"{k}={v}" for k, v in src.tags(1).items()]
    with contextlib.suppress(Exception):
        parts += [f"{k}={v}" for k, v in src.tags().items() if "unit" in k.lower()]
    with contextlib.suppress(Exception):
        parts.append(" ".join(u or "" for u in src.units))
    return " ".join(p for p in parts if p)


def _sensor_from_name(name: str) -> str:
    first = name.split("_")[0]
    if re.fullmatch(r"S1[A-D]?", first, re.IGNORECASE):
        return "S1"
    return first if first and first.isalnum() else "S1"


def scan_sar(sources: str | Path | Iterable[str | Path], sensor: str | None = None,
             skipped: list[dict[str, str]] | None = None) -> list[SarScene]:
    """Read the metadata of raw SAR scenes; unreadable / CRS-less / undated ones go to ``skipped``."""
    skipped = skipped if skipped is not None else []
    scenes = []
    for path in _raster_files(sources):
        try:
            with _open(path) as src:
                if not src.crs:
                    _skip(skipped, path, "sar", "no coordinate reference system (CRS)")
                    continue
                date = parse_date(path.stem) or _date_from_tags(src.tags())
                if date is None:
                    _skip(skipped, path, "sar", "no acquisition date in the file name or tags")
                    continue
                scenes.append(SarScene(
                    path=path, crs=src.crs, transform=src.transform, shape=(src.height, src.width), date=date,
                    sensor=sensor or _sensor_from_name(path.name), dtype=str(src.dtypes[0]),
                    nodata=None if src.nodata is None else float(src.nodata), hint=_unit_hint(src)))
        except (RasterioIOError, OSError) as exc:
            _skip(skipped, path, "sar", f"cannot read raster: {exc}")
    return sorted(scenes, key=lambda s: s.sort_key)


def _scene_key(stem: str) -> str:
    key = _RE_RES_SUFFIX.sub("", stem)
    return _RE_BAND_TOKEN.sub("", key)


def _bands_of(path: Path, src: Any) -> list[str] | None:
    names = [_band_name(d) for d in (src.descriptions or ())]
    if names and all(names) and len(set(names)) == len(names):
        return [str(n) for n in names]
    if src.count == 1:
        m = _RE_BAND_TOKEN.search(_RE_RES_SUFFIX.sub("", path.stem))
        if m:
            return [str(_band_name(m.group(1)))]
    if src.count >= len(S2_BANDS):
        return list(S2_SR_ORDER[: min(src.count, len(S2_SR_ORDER))])
    return None


def scan_optical(sources: str | Path | Iterable[str | Path], skipped: list[dict[str, str]] | None = None
                 ) -> list[OpticalScene]:
    """Group raw Sentinel-2 files into scenes and identify their bands; bad files go to ``skipped``."""
    skipped = skipped if skipped is not None else []
    scenes: dict[str, OpticalScene] = {}
    for path in _raster_files(sources):
        try:
            with _open(path) as src:
                if not src.crs:
                    _skip(skipped, path, "optical", "no coordinate reference system (CRS)")
                    continue
                bands = _bands_of(path, src)
                if bands is None:
                    _skip(skipped, path, "optical", f"cannot tell which Sentinel-2 bands its {src.count} band(s) "
                          "are (name them in the band descriptions, or in the file name for single-band files)")
                    continue
                date = parse_date(path.stem) or _date_from_tags(src.tags())
                if date is None:
                    _skip(skipped, path, "optical", "no acquisition date in the file name or tags")
                    continue
                key = _scene_key(path.stem)
                scene = scenes.setdefault(key, OpticalScene(key=key, date=date))
                for i, name in enumerate(bands, start=1):
                    dtype = str(src.dtypes[i - 1])
                    nodata = src.nodatavals[i - 1]
                    if nodata is None and np.issubdtype(np.dtype(dtype), np.integer):
                        nodata = 0.0   # L2A convention
                    cand = BandSource(path=path, index=i, crs=src.crs, transform=src.transform,
                                      shape=(src.height, src.width), dtype=dtype,
                                      nodata=None if nodata is None else float(nodata))
                    old = scene.bands.get(name)
                    if old is None or cand.resolution < old.resolution - _EPS:
                        scene.bands[name] = cand
        except (RasterioIOError, OSError) as exc:
            _skip(skipped, path, "optical", f"cannot read raster: {exc}")
    out = []
    for scene in scenes.values():
        missing = [b for b in REQUIRED_S2_BANDS if b not in scene.bands]
        if missing:
            for p in scene.paths:
                _skip(skipped, p, "optical", f"scene {scene.key} lacks band(s) {', '.join(missing)}")
            continue
        out.append(scene)
    return sorted(out, key=lambda s: (s.date, s.key))


# ------------------------------------------------------------------------------------------------------ radiometry
def resolve_sar_units(declared: str, dtype: str, hint: str = "", values: np.ndarray | None = None) -> str:
    """The unit of a SAR scene's values (rules in the module docstring); ``declared`` wins unless ``auto``."""
    if declared not in SAR_UNITS:
        raise ValueError(f"sar_units must be one of {SAR_UNITS}, got {declared!r}")
    if declared != "auto":
        return declared
    dt_ = np.dtype(dtype)
    if dt_ == np.uint8:
        return "uint8"
    h = hint.lower()
    if re.search(r"(?<![a-z])db(?![a-z])|decibel", h):
        return "db"
    if "amplitude" in h:
        return "amplitude"
    if re.search(r"intensity|power|linear", h):
        return "intensity"
    if np.issubdtype(dt_, np.integer):
        return "dn"
    if values is not None:
        v = values[np.isfinite(values)]
        if v.size and float(v.min()) < 0:
            return "db"
    return "intensity"


def sar_to_db(values: np.ndarray, units: str, invalid: np.ndarray | None = None) -> np.ndarray:
    """SAR values → float32 log-domain values (dB; for ``dn``: ``20·log10(DN)``, for ``uint8``: unchanged), NaN
    where invalid (``invalid`` mask, non-finite values, values ≤ 0 for the linear units, 0 for ``uint8``)."""
    x = np.asarray(values, dtype=np.float64)
    bad = ~np.isfinite(x) if invalid is None else (np.asarray(invalid, bool) | ~np.isfinite(x))
    if units == "db":
        out = x
    elif units in ("intensity", "amplitude", "dn"):
        bad = bad | (x <= 0)
        factor = 10.0 if units == "intensity" else 20.0
        with np.errstate(divide="ignore", invalid="ignore"):
            out = factor * np.log10(np.where(bad, 1.0, x))
    elif units == "uint8":
        bad = bad | (x <= 0)
        out = x
    else:
        raise ValueError(f"unknown SAR units {units!r}")
    return np.where(bad, np.nan, out).astype(np.float32)


def db_to_uint8(x: np.ndarray, units: str, db_range: tuple[float, float] = DEFAULT_DB_RANGE,
                dn_percentiles: tuple[float, float] = DEFAULT_DN_PERCENTILES) -> np.ndarray:
    """Log-domain SAR (from :func:`sar_to_db`, NaN = no data) → uint8, 0 = no data, valid 1 … 255."""
    valid = np.isfinite(x)
    if units == "uint8":
        dn = np.clip(np.rint(np.where(valid, x, 1.0)), 1, 255)
    else:
        if units == "dn":
            if not valid.any():
                return np.zeros(x.shape, np.uint8)
            lo, hi = (float(v) for v in np.percentile(x[valid], dn_percentiles))
        else:
            lo, hi = float(db_range[0]), float(db_range[1])
        if not hi > lo:
            hi = lo + 1e-3
        v = np.clip(np.where(valid, x, lo), lo, hi)
        dn = np.clip(np.rint(1.0 + 254.0 * (v - lo) / (hi - lo)), 1, 255)
    out = dn.astype(np.uint8)
    out[~valid] = 0
    return out


# ------------------------------------------------------------------------------------------------------ reprojection
def glacier_grid(aoi: GlacierAOI, anchor: SarScene | None, resolution_m: float | None = None) -> GlacierGrid:
    """The glacier's grid (rules in the module docstring); ``anchor`` is its first SAR scene."""
    if aoi.grid is not None:
        return aoi.grid
    crs = aoi.grid_crs or (anchor.crs if anchor is not None else None)
    if crs is None:
        raise DataError(None, f"glacier {aoi.name}: no grid CRS", "give grid_crs or a SAR scene")
    res = aoi.resolution_m or resolution_m
    aligned = anchor is not None and anchor.crs == crs and anchor.transform.b == 0 and anchor.transform.d == 0
    if res is None:
        if anchor is None or anchor.crs != crs:
            raise DataError(None, f"glacier {aoi.name}: no grid resolution", "give resolution_m")
        rx, ry = abs(anchor.transform.a), abs(anchor.transform.e)
    else:
        factor = 1.0
        if crs.is_projected:
            with contextlib.suppress(CRSError, TypeError, IndexError):
                factor = float(crs.linear_units_factor[1])
        rx = ry = float(res) / factor
    x0, y0 = (anchor.transform.c, anchor.transform.f) if aligned else (0.0, 0.0)
    minx, miny, maxx, maxy = aoi.in_crs(crs).bounds
    left = x0 + math.floor((minx - x0) / rx + _EPS) * rx
    right = x0 + math.ceil((maxx - x0) / rx - _EPS) * rx
    top = y0 - math.floor((y0 - maxy) / ry + _EPS) * ry
    bottom = y0 - math.ceil((y0 - miny) / ry - _EPS) * ry
    w, h = int(round((right - left) / rx)), int(round((top - bottom) / ry))
    if w < 1 or h < 1:
        raise DataError(None, f"glacier {aoi.name}: area of interest smaller than one pixel")
    return GlacierGrid(crs, Affine(rx, 0.0, left, 0.0, -ry, top), (h, w))


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


def _read_window(path: Path, index: int, win: Window) -> tuple[np.ndarray, Affine]:
    with _open(path) as src:
        return src.read(index, window=win), src.window_transform(win)


def _sar_on_grid(scene: SarScene, grid: GlacierGrid, units: str, db_range: tuple[float, float],
                 dn_percentiles: tuple[float, float]) -> tuple[np.ndarray, str] | None:
    """The scene on ``grid`` as uint8 (0 = no data) and the units used, or ``None`` if it has no data there."""
    win = _source_window(scene.transform, scene.shape, scene.crs, grid)
    if win is None:
        return None
    raw, wtransform = _read_window(scene.path, 1, win)
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
    for i, name in enumerate(S2_BANDS):
        band = scene.bands.get(name)
        if band is None:
            absent.append(name)
            continue
        dtypes.append(np.dtype(band.dtype))
        win = _source_window(band.transform, band.shape, band.crs, grid)
        if win is None:
            continue
        try:
            raw, wtransform = _read_window(band.path, band.index, win)
        except (RasterioIOError, OSError) as exc:
            raise _UnreadableBand(band.path, exc) from exc
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
    with atomic_path(path) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        dst.write(arr)
        dst.update_tags(**{k: str(v) for k, v in tags.items()})
        for i, name in enumerate(band_names or (), start=1):
            dst.set_band_description(i, name)


# ------------------------------------------------------------------------------------------------------ manifest
@dataclass
class ConstructionManifest:
    """The result of :func:`construct_ssl4sar`: ``rows`` of ``manifest.csv`` (dicts with
    :data:`MANIFEST_COLUMNS`), ``skipped`` rows of ``manifest_skipped.csv`` (:data:`SKIPPED_COLUMNS`), the files
    ``written`` in this run and those ``reused`` from an earlier one (relative paths), and the glacier ``grids``."""

    out_dir: Path
    rows: list[dict[str, str]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    grids: dict[str, GlacierGrid] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.out_dir / MANIFEST_NAME

    @property
    def skipped_path(self) -> Path:
        return self.out_dir / SKIPPED_NAME

    def files(self, sensor: str | None = None) -> list[str]:
        """Relative paths of the outputs (optionally of one ``sensor``: ``S2`` for optical, ``S1`` …)."""
        return [r["file"] for r in self.rows if sensor is None or r["sensor"] == sensor]

    @classmethod
    def read(cls, out_dir: str | Path) -> ConstructionManifest:
        """Read ``manifest.csv`` and ``manifest_skipped.csv`` of a constructed folder."""
        out = Path(out_dir)
        rows = _read_manifest(out / MANIFEST_NAME)
        skipped = _read_csv(out / SKIPPED_NAME, SKIPPED_COLUMNS) if (out / SKIPPED_NAME).is_file() else []
        return cls(out_dir=out, rows=list(rows.values()), skipped=skipped, grids=_read_grids(out))


def _read_csv(path: Path, columns: Sequence[str]) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or any(c not in reader.fieldnames for c in columns):
            raise DataError(path, f"not a construction manifest (columns {reader.fieldnames}, expected "
                            f"{list(columns)})", "remove it to start afresh")
        return [{c: r[c] for c in columns} for r in reader if all(r.get(c) is not None for c in columns)]


def _read_manifest(path: Path) -> dict[str, dict[str, str]]:
    """Rows of an existing manifest by file (a torn last line from an interrupted run is dropped)."""
    if not path.is_file() or path.stat().st_size == 0:
        return {}
    rows = {}
    for r in _read_csv(path, MANIFEST_COLUMNS):
        try:
            float(r["valid_fraction"])
            float(r["resolution_m"])
        except ValueError:
            continue
        rows[r["file"]] = r
    return rows


class _Journal:
    """Appends manifest rows as outputs complete (flushed and synced), so that an interrupted run can resume."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, row: Mapping[str, Any]) -> None:
        new = not self.path.is_file() or self.path.stat().st_size == 0
        if not new:   # make sure a torn last line from a crash does not swallow this row
            with self.path.open("rb") as fh:
                fh.seek(-1, os.SEEK_END)
                needs_newline = fh.read(1) != b"\n"
        with self.path.open("a", newline="") as fh:
            if not new and needs_newline:
                fh.write("\n")
            writer = csv.DictWriter(fh, fieldnames=MANIFEST_COLUMNS)
            if new:
                writer.writeheader()
            writer.writerow({c: row[c] for c in MANIFEST_COLUMNS})
            fh.flush()
            os.fsync(fh.fileno())


def _csv_text(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({c: r.get(c, "") for c in columns})
    return buf.getvalue()


def _read_grids(out: Path) -> dict[str, GlacierGrid]:
    path = out / GRIDS_NAME
    if not path.is_file():
        return {}
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(path, f"corrupt grid file: {exc}", "remove it to derive the grids again") from exc
    return {name: GlacierGrid.from_json(g, path) for name, g in doc.items()}


def _check_settings(out: Path, settings: Mapping[str, Any], resolution_m: float | None,
                    aois: Sequence[GlacierAOI]) -> None:
    """Refuse a re-run into ``out`` whose settings differ from those its outputs were made with; record them."""
    path = out / SETTINGS_NAME
    old: dict[str, Any] = {}
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(path, f"corrupt settings file: {exc}", "remove the folder and build it again") from exc
    changed = [f"{k}: {old[k]!r} -> {settings[k]!r}" for k in _OUTPUT_SETTINGS if k in old and old[k] != settings[k]]
    if resolution_m is not None:
        own = {a.name for a in aois if a.resolution_m is not None or a.grid is not None}
        for name, grid in _read_grids(out).items():
            if name not in own and abs(grid.resolution_m - resolution_m) > _EPS * max(1.0, resolution_m):
                changed.append(f"resolution_m: {grid.resolution_m:g} -> {resolution_m:g} (glacier {name})")
                break
    if changed:
        raise DataError(out, "was built with other settings than this run's (" + "; ".join(changed) + "): its "
                        "outputs would be reused or mixed", "write to a new --out folder, or delete this one to "
                        "rebuild it with the new settings")
    write_text_atomic(path, json.dumps(dict(settings), indent=2) + "\n")


# ------------------------------------------------------------------------------------------------------ construction
def _row(file: str, glacier: str, date: dt.date, sensor: str, grid: GlacierGrid, valid_fraction: float,
         source: str, split: str) -> dict[str, str]:
    return {"file": file, "glacier": glacier, "date": date.isoformat(), "sensor": sensor, "crs": _crs_str(grid.crs),
            "resolution_m": f"{grid.resolution_m:.6g}", "valid_fraction": f"{valid_fraction:.4f}",
            "source": source, "split": split}


def _splits(scenes: Sequence[SarScene], val_fraction: float) -> dict[Path, str]:
    n = len(scenes)
    n_val = 0 if n < 2 or val_fraction <= 0 else min(n - 1, max(1, int(round(val_fraction * n))))
    ordered = sorted(scenes, key=lambda s: s.sort_key)
    return {s.path: ("val" if i >= n - n_val else "train") for i, s in enumerate(ordered)}


def construct_ssl4sar(sar_scenes: str | Path | Iterable[str | Path], optical_scenes: str | Path | Iterable[str | Path],
                      glaciers: str | Path | Sequence[GlacierAOI], out_dir: str | Path, *,
                      resolution_m: float | None = None, sar_units: str = "auto",
                      db_range: tuple[float, float] = DEFAULT_DB_RANGE,
                      dn_percentiles: tuple[float, float] = DEFAULT_DN_PERCENTILES, val_fraction: float = 0.2,
                      min_valid_fraction: float = 0.05, sensor: str | None = None,
                      progress: bool = True) -> ConstructionManifest:
    """Build the SSL4SAR layout under ``out_dir`` from raw scenes (everything is described in the module docstring).

    Args:
        sar_scenes: folder (searched recursively for ``*.tif``, ``*.tiff``, ``*.jp2``, ``*.vrt``) or files of
            Sentinel-1 scenes.
        optical_scenes: folder or files of Sentinel-2 L2A scenes.
        glaciers: the areas of interest: a GeoJSON file (:func:`read_aois`) or :class:`GlacierAOI` objects.
        out_dir: output folder (created; re-running into it resumes).
        resolution_m: grid spacing in metres (default: the first SAR scene's pixel size).
        sar_units: ``auto`` or one of :data:`SAR_UNITS` for every SAR scene.
        db_range: σ⁰ range in dB mapped to 1 … 255.
        dn_percentiles: percentiles for uncalibrated (``dn``) SAR.
        val_fraction: share of each glacier's (latest) scenes written to ``sar/val``.
        min_valid_fraction: skip outputs with less valid area than this share of the grid.
        sensor: sensor field of the SAR file names (default: from the input names, ``S1``).
        progress: tqdm progress bars.

    Returns:
        the :class:`ConstructionManifest` (also written to ``manifest.csv`` / ``manifest_skipped.csv``).
    """
    if sar_units not in SAR_UNITS:
        raise ValueError(f"sar_units must be one of {SAR_UNITS}, got {sar_units!r}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if not db_range[1] > db_range[0]:
        raise ValueError(f"db_range must be (low, high) with low < high, got {db_range}")
    out = ensure_writable_dir(out_dir)
    aois = read_aois(glaciers) if isinstance(glaciers, (str, Path)) else list(glaciers)
    settings = {"sar_units": sar_units, "db_range": [float(v) for v in db_range],
                "dn_percentiles": [float(v) for v in dn_percentiles], "val_fraction": float(val_fraction),
                "min_valid_fraction": float(min_valid_fraction), "sensor": sensor}
    _check_settings(out, settings, resolution_m, aois)
    skipped: list[dict[str, str]] = []
    sar = scan_sar(sar_scenes, sensor=sensor, skipped=skipped)
    optical = scan_optical(optical_scenes, skipped=skipped)
    log.info("construction: %d SAR scene(s), %d Sentinel-2 scene(s), %d glacier(s) → %s", len(sar), len(optical),
             len(aois), out)

    previous = _read_manifest(out / MANIFEST_NAME)
    journal = _Journal(out / MANIFEST_NAME)
    grids = _read_grids(out)
    result = ConstructionManifest(out_dir=out, grids=grids)
    rows: dict[str, dict[str, str]] = {}
    used_sar: set[Path] = set()
    used_optical: set[str] = set()

    def done(rel: str) -> dict[str, str] | None:
        row = previous.get(rel)
        return row if row is not None and (out / rel).is_file() else None

    for aoi in tqdm(aois, desc="glaciers", disable=not progress):
        g = aoi.name
        overlapping = [s for s in sar if s.footprint.intersection(aoi.in_crs(s.crs)).area > 0]
        used_sar.update(s.path for s in overlapping)
        if g not in grids:
            if not overlapping and aoi.grid is None:
                _skip(skipped, f"aoi:{g}", "aoi", "no SAR scene overlaps the area of interest", g)
                continue
            try:
                grids[g] = glacier_grid(aoi, overlapping[0] if overlapping else None, resolution_m)
            except DataError as exc:
                _skip(skipped, f"aoi:{g}", "aoi", f"no glacier grid: {exc.problem}", g)
                continue
            write_text_atomic(out / GRIDS_NAME, json.dumps({k: v.to_json() for k, v in grids.items()}, indent=2)
                              + "\n")
        grid = grids[g]
        if not overlapping:
            _skip(skipped, f"aoi:{g}", "aoi", "no SAR scene overlaps the area of interest", g)
            continue

        # -------- optical: one mosaic per glacier
        prior = [r for r in previous.values() if r["glacier"] == g and r["sensor"] == "S2" and done(r["file"])]
        grid_poly = _footprint(grid.transform, grid.shape)
        candidates = [o for o in optical if o.footprint_in(grid.crs).intersection(grid_poly).area > 0]
        used_optical.update(o.key for o in candidates)
        if prior:
            row = prior[0]
            rows[row["file"]] = row
            result.reused.append(row["file"])
        else:
            mosaic: np.ndarray | None = None
            covered = np.zeros(grid.shape, bool)
            sources: list[OpticalScene] = []
            dtype = np.dtype(np.uint16)
            pieces = []
            for o in candidates:
                try:
                    stack, valid, odtype, absent = _optical_on_grid(o, grid)
                except _UnreadableBand as exc:
                    for p in o.paths:
                        _skip(skipped, p, "optical", f"unreadable (truncated or corrupt): {exc.cause}" if p == exc.path
                              else f"its Sentinel-2 scene {o.key} has an unreadable file, {exc.path.name}", g)
                    continue
                if not valid.any():
                    for p in o.paths:
                        _skip(skipped, p, "optical", "no valid pixel over the area of interest", g)
                    continue
                if absent:
                    log.warning("%s: Sentinel-2 scene %s has no %s; filled with 0", g, o.key, ", ".join(absent))
                pieces.append((int(valid.sum()), o, stack, valid, odtype))
            pieces.sort(key=lambda t: (-t[0], t[1].date, t[1].key))
            for _, o, stack, valid, odtype in pieces:
                fill = valid & ~covered
                if not fill.any():
                    continue
                if mosaic is None:
                    mosaic = np.where(valid[None], stack, np.nan)
                    dtype = odtype
                else:
                    mosaic[:, fill] = stack[:, fill]
                    if odtype != dtype:
                        dtype = np.dtype(np.float32)
                covered |= fill
                sources.append(o)
            frac = float(covered.mean())
            if mosaic is None or frac < min_valid_fraction or frac == 0.0:
                reason = ("no Sentinel-2 scene overlaps the area of interest" if mosaic is None else
                          f"Sentinel-2 covers only {100 * frac:.1f} % of the grid (< {100 * min_valid_fraction:g} %)")
                _skip(skipped, f"aoi:{g}", "aoi", reason, g)
                for s in overlapping:
                    _skip(skipped, s.path, "sar", f"its glacier has no usable optical image ({reason})", g)
                continue
            primary = sources[0]
            rel = f"optical/{g}_S2_{primary.date.isoformat()}.tif"
            source = ";".join(o.key for o in sources)
            _write_raster(out / rel, _to_dtype(mosaic, dtype), grid, 0, S2_BANDS,
                          {"GLACIER": g, "SOURCE": source, "ACQUISITION_DATE": primary.date.isoformat()})
            row = _row(rel, g, primary.date, "S2", grid, frac, source, "")
            journal.append(row)
            rows[rel] = row
            result.written.append(rel)

        # -------- SAR scenes
        split = _splits(overlapping, val_fraction)
        k_of: dict[Path, int] = {}
        for s in sorted(overlapping, key=lambda s: (s.date, s.path.name)):
            same_day = [q for q in overlapping if q.date == s.date and q.sensor == s.sensor]
            k_of[s.path] = sorted(q.path.name for q in same_day).index(s.path.name)
        for s in tqdm(overlapping, desc=f"{g} SAR", disable=not progress, leave=False):
            rel = f"sar/{split[s.path]}/{s.sensor}_{g}_{s.date.isoformat()}_{k_of[s.path]}.tif"
            row = done(rel)
            if row is not None:
                rows[rel] = row
                result.reused.append(rel)
                continue
            try:
                got = _sar_on_grid(s, grid, sar_units, db_range, dn_percentiles)
            except (RasterioIOError, OSError) as exc:
                _skip(skipped, s.path, "sar", f"unreadable (truncated or corrupt): {exc}", g)
                continue
            if got is None:
                _skip(skipped, s.path, "sar", "no valid pixel over the area of interest (all no-data)", g)
                continue
            img, unit = got
            frac = float((img > 0).mean())
            if frac == 0.0:
                _skip(skipped, s.path, "sar", "no valid pixel over the area of interest (all no-data)", g)
                continue
            if frac < min_valid_fraction:
                _skip(skipped, s.path, "sar", f"only {100 * frac:.1f} % of the grid is valid "
                      f"(< {100 * min_valid_fraction:g} %)", g)
                continue
            _write_raster(out / rel, img, grid, 0, None, {"GLACIER": g, "SOURCE": s.path.name, "SAR_UNITS": unit,
                                                          "ACQUISITION_DATE": s.date.isoformat()})
            row = _row(rel, g, s.date, s.sensor, grid, frac, s.path.name, split[s.path])
            journal.append(row)
            rows[rel] = row
            result.written.append(rel)

    for s in sar:
        if s.path not in used_sar:
            _skip(skipped, s.path, "sar", "does not overlap any area of interest")
    for o in optical:
        if o.key not in used_optical:
            for p in o.paths:
                _skip(skipped, p, "optical", "does not overlap any glacier grid")

    stale = [r for f, r in previous.items() if f not in rows and (out / f).is_file()]
    if stale:
        log.warning("%d output(s) of an earlier run were not produced by this one and are kept: %s", len(stale),
                    ", ".join(r["file"] for r in stale[:5]) + (" …" if len(stale) > 5 else ""))
        for r in stale:
            rows[r["file"]] = r
    ordered = sorted(rows.values(), key=lambda r: (r["sensor"] != "S2", r["glacier"], r["file"]))
    write_text_atomic(out / MANIFEST_NAME, _csv_text(ordered, MANIFEST_COLUMNS))
    write_text_atomic(out / SKIPPED_NAME, _csv_text(skipped, SKIPPED_COLUMNS))
    result.rows = ordered
    result.skipped = skipped
    result.grids = grids
    log.info("construction done: %d file(s) written, %d reused, %d input(s) skipped (see %s)", len(result.written),
             len(result.reused), len(skipped), out / SKIPPED_NAME)
    return result
