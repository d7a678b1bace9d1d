"""Finding the raw scenes of the SSL4SAR construction: reading SAR and Sentinel-2 file metadata (CRS, grid, date,
sensor, units hint, which band is where) and grouping Sentinel-2 files into scenes, without reading pixels."""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import shapely
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.transform import Affine
from shapely.geometry import Polygon

from ssl4sar import geo
from ssl4sar.data.construct.grids import _EPS, _footprint
from ssl4sar.data.construct.manifest import _skip
from ssl4sar.errors import DataError

#: bands of the optical output, GEE ``COPERNICUS/S2_SR`` order up to SCL (what ``unlabeled.read_optical`` reads)
S2_BANDS: tuple[str, ...] = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B11", "B12", "AOT",
                             "WVP", "SCL")
#: full GEE ``COPERNICUS/S2_SR`` band order (for multi-band files without band descriptions)
S2_SR_ORDER: tuple[str, ...] = S2_BANDS + ("TCI_R", "TCI_G", "TCI_B", "MSK_CLDPRB", "MSK_SNWPRB")
REQUIRED_S2_BANDS = S2_BANDS[:12]
CATEGORICAL_BANDS = frozenset({"SCL"})
RASTER_SUFFIXES = (".tif", ".tiff", ".jp2", ".vrt")
_RE_DATE_COMPACT = re.compile(r"(?<!\d)(\d{4})(\d{2})(\d{2})(?:T\d{6})?(?!\d)")
_RE_DATE_ISO = re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)")
_RE_RES_SUFFIX = re.compile(r"_(\d{1,3})m$", re.IGNORECASE)
_RE_BAND_TOKEN = re.compile(r"_(B0?[1-9]|B1[0-2]|B8A|SCL|AOT|WVP)$", re.IGNORECASE)


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


def _acquisition_date(path: Path, src: Any) -> dt.date | None:
    """A raw scene's date: from its file name, else from its tags (the one rule for SAR and Sentinel-2 files)."""
    return parse_date(path.stem) or _date_from_tags(src.tags())


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
        polys = [geo.reproject_geometry(_footprint(b.transform, b.shape), b.crs, crs, densify=64)
                 for b in self.bands.values()]
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


_NO_DATE = "no acquisition date in the file name or tags"


def _scan_rasters(sources: str | Path | Iterable[str | Path], kind: str, skipped: list[dict[str, str]],
                  use: Callable[[Path, Any], str | None]) -> None:
    """Call ``use(path, open dataset)`` for every raster file with a CRS; a file without one, a reason ``use``
    returns, or a read error sends the file to ``skipped`` (as ``kind``)."""
    for path in _raster_files(sources):
        try:
            with _open(path) as src:
                reason = use(path, src) if src.crs else "no coordinate reference system (CRS)"
                if reason is not None:
                    _skip(skipped, path, kind, reason)
        except (RasterioIOError, OSError) as exc:
            _skip(skipped, path, kind, f"cannot read raster: {exc}")


def scan_sar(sources: str | Path | Iterable[str | Path], sensor: str | None = None,
             skipped: list[dict[str, str]] | None = None) -> list[SarScene]:
    """Read the metadata of raw SAR scenes; unreadable / CRS-less / undated ones go to ``skipped``."""
    skipped = skipped if skipped is not None else []
    scenes = []

    def use(path: Path, src: Any) -> str | None:
        date = _acquisition_date(path, src)
        if date is None:
            return _NO_DATE
        scenes.append(SarScene(
            path=path, crs=src.crs, transform=src.transform, shape=(src.height, src.width), date=date,
            sensor=sensor or _sensor_from_name(path.name), dtype=str(src.dtypes[0]),
            nodata=None if src.nodata is None else float(src.nodata), hint=_unit_hint(src)))
        return None

    _scan_rasters(sources, "sar", skipped, use)
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

    def use(path: Path, src: Any) -> str | None:
        bands = _bands_of(path, src)
        if bands is None:
            return (f"cannot tell which Sentinel-2 bands its {src.count} band(s) are (name them in the band "
                    "descriptions, or in the file name for single-band files)")
        date = _acquisition_date(path, src)
        if date is None:
            return _NO_DATE
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
        return None

    _scan_rasters(sources, "optical", skipped, use)
    out = []
    for scene in scenes.values():
        missing = [b for b in REQUIRED_S2_BANDS if b not in scene.bands]
        if missing:
            for p in scene.paths:
                _skip(skipped, p, "optical", f"scene {scene.key} lacks band(s) {', '.join(missing)}")
            continue
        out.append(scene)
    return sorted(out, key=lambda s: (s.date, s.key))
