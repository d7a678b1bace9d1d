"""Front-position time series from predicted (or mapped) calving fronts.

Inputs are fronts with dates: GeoJSON files (``ssl4sar predict`` output, or any LineString / MultiLineString
file) or front masks (GeoTIFF, non-zero on the front, turned into lines by :mod:`ssl4sar.geo`). The date comes
from the feature property ``date``, else from the file name (CaFFe stem, ``YYYY-MM-DD`` or ``YYYYMMDD``).
Files named ``<stem>_front_wgs84.geojson`` / ``<stem>_front_members.geojson`` next to ``<stem>_front.geojson``
are recognised: the scene is used once, and the members (one front per ensemble member × augmentation map,
``ssl4sar predict --member-fronts``) give the uncertainty.

Two measures of the front position, both in metres along the flow:

* **Rectilinear box** (Moon & Joughin 2008; Lea et al. 2014): a fixed box (a 4-vertex Polygon) spans the
  fjord, its *upstream edge* on the glacier. The glacier area inside the box upstream of the front divided by
  the box width is the mean front position; its change over time is the mean advance (+) or retreat (−).
  Here the area is integrated with ``n_transects`` flow-parallel transects at the midpoints of equal slices of
  the upstream edge, each running from the upstream edge to the opposite (downstream) edge; the glacier length
  of a transect is the distance from the upstream edge to its first crossing with the front, and the mean over
  the transects is area / width (exact for a rectangle or parallelogram up to the midpoint rule). Transects
  that do not cross the front are left out; ``coverage`` is the fraction that do, and a date with
  ``coverage < min_coverage`` gets no position. By default the upstream edge is the polygon's first edge
  (vertex 1 → 2, the convention of :func:`ssl4sar.data.synthetic.generate_time_series`); a ``flow_direction``
  (argument, or the box feature's ``flow_direction`` property ``[dx, dy]``) chooses the edge that lies furthest
  upstream instead.
* **Centreline**: a LineString drawn from upstream to downstream; the front position is the distance along it
  from its start to its first crossing with the front.

The positions are relative to the first date (``position_m``; the absolute ``distance_m`` is kept). With
member fronts, ``position_std_m`` is the population standard deviation of the members' positions (the
ensemble / TTA spread); otherwise it is empty. All geometry is measured in one projected CRS: the box's /
centreline's when projected, else the fronts', else the UTM zone of the reference geometry
(:func:`ssl4sar.geo.local_metric_crs`); everything else is reprojected into it.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shapely
from pyproj import CRS
from shapely.geometry import LineString, MultiLineString, Polygon
from shapely.geometry.base import BaseGeometry

from ssl4sar import geo
from ssl4sar.errors import DataError, SettingError
from ssl4sar.io import write_text_atomic

__all__ = [
    "FrontObservation", "load_fronts", "read_reference", "box_transects", "box_positions",
    "centreline_positions", "front_time_series", "compare_to_truth", "read_truth_table", "TRUTH_COLUMNS",
    "write_time_series", "check_position_settings",
    "SERIES_REFERENCES", "series_scenes", "series_by_method", "references_in", "fronts_in",
    "read_truth", "write_series", "positions_table",
]

log = logging.getLogger(__name__)

_VECTOR_SUFFIXES = {".geojson", ".json"}
_RASTER_SUFFIXES = {".tif", ".tiff", ".png", ".vrt"}
_SCENE_SUFFIX = re.compile(r"(_front(_wgs84|_members)?)$")
COLUMNS = ["date", "scene", "method", "distance_m", "position_m", "position_std_m", "n_members", "coverage",
           "source"]


@dataclass
class FrontObservation:
    """One dated front: geometry (lines) in ``crs``, optional member fronts, and where it came from."""

    date: dt.date
    scene: str
    geometry: BaseGeometry | None
    crs: CRS
    source: Path
    members: list[BaseGeometry | None] = field(default_factory=list)


# --------------------------------------------------------------------------------------------------------------
# reading fronts

#: the files of a folder that :func:`load_fronts` reads: the fronts ``ssl4sar predict`` writes (members are found
#: beside them)
_FOLDER_FRONT_PATTERNS = ("*_front.geojson", "*_front_wgs84.geojson", "*_front.tif")


def _front_files(paths: Sequence[str | Path]) -> list[Path]:
    """``paths`` with each folder replaced by its front files (:data:`_FOLDER_FRONT_PATTERNS`, sorted)."""
    files: list[Path] = []
    for p in map(Path, paths):
        if not p.is_dir():
            files.append(p)
            continue
        found = sorted({f for pattern in _FOLDER_FRONT_PATTERNS for f in p.glob(pattern) if f.is_file()})
        if not found:
            raise DataError(p, "no front file in this folder (<stem>_front.geojson, <stem>_front_wgs84.geojson or "
                               "<stem>_front.tif)", "give the folder ssl4sar predict wrote, or the front files")
        files += found
    return files


def _scene_key(path: Path) -> str:
    stem = path.name
    for suffix in sorted(_VECTOR_SUFFIXES | _RASTER_SUFFIXES, key=len, reverse=True):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    return _SCENE_SUFFIX.sub("", stem)


def _date_of(value: Any, scene: str, path: Path) -> dt.date:
    from ssl4sar.data.scenes import scene_metadata

    if isinstance(value, str) and value:
        try:
            return dt.date.fromisoformat(value[:10])
        except ValueError:
            pass
    date = scene_metadata(scene)["date"]
    if date is None:
        raise DataError(path, "no date: neither a 'date' property nor a date in the file name",
                        "add a 'date' property (YYYY-MM-DD) or name the file with the date")
    return date


def _lines_only(geom: BaseGeometry | None, path: Path) -> BaseGeometry | None:
    if geom is None or geom.is_empty:
        return None
    if geom.geom_type in ("LineString", "MultiLineString"):
        return geom
    if geom.geom_type == "GeometryCollection":
        parts = [g for g in geom.geoms if g.geom_type in ("LineString", "MultiLineString")]
        return shapely.union_all(parts) if parts else None
    raise DataError(path, f"a front must be a LineString or MultiLineString, got a {geom.geom_type}")


def _union(geoms: Sequence[BaseGeometry | None]) -> BaseGeometry | None:
    parts = [g for g in geoms if g is not None and not g.is_empty]
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    lines: list[Any] = []
    for g in parts:
        lines.extend(getattr(g, "geoms", [g]))
    return MultiLineString(lines)


def _read_vector(path: Path) -> tuple[list[BaseGeometry | None], list[BaseGeometry | None], dict[str, Any], CRS]:
    fc = geo.read_geojson(path)
    if not fc.features:
        raise DataError(path, "no front in the file (a FeatureCollection without features)",
                        "give the fronts written by ssl4sar predict (one feature per scene, null geometry when no "
                        "front was found)")
    if fc.crs is None:
        raise DataError(path, "front in pixel coordinates (no CRS)", "time series need georeferenced fronts")
    main, members, props = [], [], {}
    for f in fc.features:
        g = _lines_only(f.geometry, path)
        if "member" in f.properties:
            members.append(g)
        else:
            main.append(g)
            if not props:
                props = f.properties
    if not props and fc.features:
        props = fc.features[0].properties
    return main, members, props, fc.crs


def _read_mask(path: Path) -> tuple[BaseGeometry | None, CRS]:
    from ssl4sar.data.raster import read_raster

    arr, info = read_raster(path, 1, require_crs=True)
    return geo.front_to_geometry(np.asarray(arr) > 0, info.transform), geo.as_crs(info.crs)


def load_fronts(paths: Sequence[str | Path]) -> list[FrontObservation]:
    """Read dated fronts from GeoJSON files and/or front-mask rasters (module docstring), sorted by date. A folder
    (``ssl4sar predict``'s ``--out``) stands for its ``<stem>_front.geojson``, ``…_front_wgs84.geojson`` and
    ``…_front.tif`` files.

    Files of one scene (``<stem>_front.geojson``, ``…_front_wgs84.geojson``, ``…_front_members.geojson``,
    ``…_front.tif``) are merged: the projected GeoJSON is preferred, then the WGS84 one, then the mask; member
    files found next to a front file are read even when not listed. Raises :class:`DataError` for unreadable
    files, fronts without CRS or without a date.

    The other rasters and the overlay that ``ssl4sar predict`` writes (zones, probabilities, uncertainty;
    :func:`ssl4sar.data.scenes.predict_output_kind`) are no fronts: they are left out with a warning that counts
    them (``pred/*.tif`` names them beside the masks); a :class:`DataError` when nothing else is given.
    """
    from ssl4sar.data.scenes import predict_output_kind

    groups: dict[tuple[Path, str], dict[str, Path]] = {}
    left_out: list[tuple[Path, str]] = []
    for p in _front_files(paths):
        suffix = p.suffix.lower()
        if suffix not in _VECTOR_SUFFIXES | _RASTER_SUFFIXES:
            raise DataError(p, f"unknown front file type {p.suffix!r}", "give GeoJSON fronts or GeoTIFF masks")
        kind = predict_output_kind(p) if suffix in _RASTER_SUFFIXES else None
        if kind not in (None, "front_mask"):
            left_out.append((p, str(kind)))
            continue
        name = p.name.lower()
        kind = ("members" if "_front_members." in name else "wgs84" if "_front_wgs84." in name
                else "vector" if suffix in _VECTOR_SUFFIXES else "mask")
        groups.setdefault((p.parent, _scene_key(p)), {})[kind] = p
    if left_out:
        kinds = ", ".join(sorted({k for _, k in left_out}))
        message = (f"{len(left_out)} raster(s) that ssl4sar predict wrote that are not front masks ({kinds}; "
                   f"{left_out[0][0]} …)")
        if not groups:
            raise DataError(left_out[0][0], f"no front among the files given: {message}",
                            "give the <stem>_front.tif masks or <stem>_front.geojson fronts")
        log.warning("left out %s", message)
    out: list[FrontObservation] = []
    for (folder, scene), files in groups.items():
        if "members" not in files:
            candidate = folder / f"{scene}_front_members.geojson"
            if candidate.is_file():
                files["members"] = candidate
        members: list[BaseGeometry | None] = []
        props: dict[str, Any] = {}
        if "vector" in files or "wgs84" in files:
            src = files.get("vector", files.get("wgs84"))
            assert src is not None
            main, inline_members, props, crs = _read_vector(src)
            geometry = _union(main)
            members = inline_members
        elif "mask" in files:
            src = files["mask"]
            geometry, crs = _read_mask(src)
        else:
            src = files["members"]
            _, members, props, crs = _read_vector(src)
            geometry = None
            log.warning("%s: only member fronts given; the fused front is their union", src)
            geometry = _union(members)
        if "members" in files and files["members"] != src:
            _, extra, mprops, mcrs = _read_vector(files["members"])
            members = [geo.reproject_geometry(g, mcrs, crs) for g in extra]
            props = props or mprops
        date = _date_of(props.get("date"), scene, src)
        out.append(FrontObservation(date=date, scene=str(props.get("scene") or scene), geometry=geometry, crs=crs,
                                    source=src, members=members))
    out.sort(key=lambda o: (o.date, o.scene))
    return out


def read_reference(path: str | Path) -> tuple[BaseGeometry, CRS, dict[str, Any]]:
    """The first geometry of a box / centreline GeoJSON, its CRS (RFC 7946 default EPSG:4326) and properties."""
    fc = geo.read_geojson(path)
    for f in fc.features:
        if f.geometry is not None and not f.geometry.is_empty:
            if fc.crs is None:
                raise DataError(path, "reference geometry in pixel coordinates (no CRS)")
            return f.geometry, fc.crs, f.properties
    raise DataError(path, "no geometry in the file")


# --------------------------------------------------------------------------------------------------------------
# measuring

def _working_crs(reference: BaseGeometry, ref_crs: CRS, fronts: Sequence[FrontObservation]) -> CRS:
    if ref_crs.is_projected:
        return ref_crs
    for f in fronts:
        if f.crs.is_projected:
            return f.crs
    return geo.local_metric_crs(reference, ref_crs)


def _unit_m(crs: CRS) -> float:
    axis = crs.axis_info[0] if crs.axis_info else None
    factor = getattr(axis, "unit_conversion_factor", None)
    return float(factor) if factor else 1.0


def _is_direction(f: np.ndarray) -> bool:
    return f.shape == (2,) and bool(np.all(np.isfinite(f))) and bool(np.any(f))


def check_position_settings(*, n_transects: int | None = None, min_coverage: float | None = None,
                            flow_direction: Sequence[float] | None = None) -> None:
    """:class:`~ssl4sar.errors.SettingError` naming the first of the given settings of :func:`front_time_series`
    outside its values: fewer than 1 transect, a ``min_coverage`` outside [0, 1] (NaN included), a
    ``flow_direction`` that is not two finite numbers, not both 0. A flow direction read from the box file is checked
    where it is read, as data of that file."""
    if n_transects is not None and n_transects < 1:
        raise SettingError(f"n_transects must be >= 1, got {n_transects}")
    if min_coverage is not None and not 0.0 <= min_coverage <= 1.0:
        raise SettingError(f"min_coverage must be in [0, 1], got {min_coverage:g}")
    if flow_direction is not None and not _is_direction(np.asarray(flow_direction, dtype=np.float64)):
        raise SettingError(f"flow_direction must be two finite numbers (dx, dy), not both 0, got "
                           f"{list(flow_direction)}")


def _box_vertices(box: BaseGeometry, flow_direction: Sequence[float] | None) -> np.ndarray:
    if box.geom_type == "MultiPolygon" and len(box.geoms) == 1:
        box = box.geoms[0]
    if box.geom_type != "Polygon":
        raise DataError(None, f"the reference box must be a Polygon, got a {box.geom_type}")
    assert isinstance(box, Polygon)
    ring = np.asarray(box.exterior.coords, dtype=np.float64)[:-1]
    keep = np.ones(len(ring), dtype=bool)
    keep[1:] = np.any(np.diff(ring, axis=0) != 0, axis=1)
    ring = ring[keep]
    if len(ring) != 4:
        raise DataError(None, f"the reference box must have 4 corners, it has {len(ring)}",
                        "draw a rectangle across the fjord, its first edge upstream")
    if flow_direction is not None:
        f = np.asarray(flow_direction, dtype=np.float64)
        if not _is_direction(f):
            raise DataError(None, f"flow_direction must be two finite numbers (dx, dy), not both 0, got "
                                  f"{flow_direction}")
        mids = (ring + np.roll(ring, -1, axis=0)) / 2.0
        start = int(np.argmin(mids @ f))
        ring = np.roll(ring, -start, axis=0)
    return ring


def box_transects(box: BaseGeometry, n_transects: int = 200,
                  flow_direction: Sequence[float] | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """The flow-parallel transects of a 4-corner box (module docstring).

    Returns:
        ``(starts, ends, width)``: ``(N, 2)`` points on the upstream edge and on the opposite edge, and the
        upstream edge length (map units).
    """
    check_position_settings(n_transects=n_transects)
    v0, v1, v2, v3 = _box_vertices(box, flow_direction)
    f = (np.arange(n_transects, dtype=np.float64) + 0.5) / n_transects
    starts = v0 + f[:, None] * (v1 - v0)
    ends = v3 + f[:, None] * (v2 - v3)
    return starts, ends, float(np.hypot(*(v1 - v0)))


def _first_crossing(starts: np.ndarray, ends: np.ndarray, front: BaseGeometry | None) -> np.ndarray:
    """Distance (map units) from each start to the first crossing of segment start→end with ``front``."""
    out = np.full(len(starts), np.nan)
    if front is None or front.is_empty:
        return out
    segs = shapely.linestrings(np.stack([starts, ends], axis=1))
    hits = shapely.intersection(segs, front)
    direction = ends - starts
    length = np.hypot(direction[:, 0], direction[:, 1])
    unit = direction / np.where(length > 0, length, 1.0)[:, None]
    for i, h in enumerate(hits):
        if h is None or h.is_empty:
            continue
        pts = shapely.get_coordinates(h)
        out[i] = float(np.min((pts - starts[i]) @ unit[i]))
    return out


def _reproject(geom: BaseGeometry | None, src: CRS, dst: CRS) -> BaseGeometry | None:
    return geo.reproject_geometry(geom, src, dst)


def _frame(rows: list[dict[str, Any]], method: str) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=COLUMNS)
    df["date"] = pd.to_datetime(df["date"])
    df["method"] = method
    ok = df["distance_m"].notna()
    ref = df.loc[ok, "distance_m"].iloc[0] if ok.any() else np.nan
    df["position_m"] = df["distance_m"] - ref
    return df.reset_index(drop=True)


def box_positions(fronts: Sequence[FrontObservation], box: BaseGeometry, box_crs: Any, *,
                  flow_direction: Sequence[float] | None = None, n_transects: int = 200,
                  min_coverage: float = 0.5) -> pd.DataFrame:
    """Rectilinear-box front positions (module docstring) → DataFrame with :data:`COLUMNS`.

    ``flow_direction`` is in the box's CRS. Distances in metres; ``coverage`` in [0, 1].
    """
    bcrs = geo.as_crs(box_crs)
    work = _working_crs(box, bcrs, fronts)
    flow = None
    if flow_direction is not None:  # a direction in the box CRS → the working CRS (through two points)
        c = box.centroid
        p = np.array([[c.x, c.y], [c.x + 1e-3 * flow_direction[0], c.y + 1e-3 * flow_direction[1]]])
        q = shapely.get_coordinates(_reproject(LineString(p), bcrs, work))
        flow = tuple(q[1] - q[0])
    box_w = _reproject(box, bcrs, work)
    assert box_w is not None
    starts, ends, width = box_transects(box_w, n_transects, flow)
    unit = _unit_m(work)
    rows = []
    for f in fronts:
        d = _first_crossing(starts, ends, _reproject(f.geometry, f.crs, work))
        coverage = float(np.mean(np.isfinite(d)))
        dist = float(np.nanmean(d)) * unit if coverage >= min_coverage and coverage > 0 else np.nan
        if coverage < min_coverage:
            log.warning("%s (%s): the front crosses only %.0f %% of the box transects; no position",
                        f.scene, f.date, 100 * coverage)
        member_d = []
        for g in f.members:
            dm = _first_crossing(starts, ends, _reproject(g, f.crs, work))
            cov = float(np.mean(np.isfinite(dm)))
            member_d.append(float(np.nanmean(dm)) * unit if cov >= min_coverage and cov > 0 else np.nan)
        rows.append(_row(f, dist, member_d, coverage))
    log.info("box method: %d fronts, box width %.0f m, %d transects", len(fronts), width * unit, n_transects)
    return _frame(rows, "box")


def _row(f: FrontObservation, dist: float, member_d: list[float], coverage: float) -> dict[str, Any]:
    md = np.asarray([x for x in member_d if np.isfinite(x)], dtype=np.float64)
    return {"date": f.date, "scene": f.scene, "distance_m": dist,
            "position_std_m": float(np.std(md)) if md.size >= 2 else np.nan,
            "n_members": len(f.members), "coverage": coverage, "source": str(f.source)}


def centreline_positions(fronts: Sequence[FrontObservation], centreline: BaseGeometry, line_crs: Any
                         ) -> pd.DataFrame:
    """Centreline front positions (module docstring) → DataFrame with :data:`COLUMNS` (``coverage`` 1 / 0)."""
    lcrs = geo.as_crs(line_crs)
    line = centreline
    if line.geom_type == "MultiLineString":
        line = shapely.line_merge(line)
    if line.geom_type != "LineString":
        raise DataError(None, f"the centreline must be one LineString, got a {line.geom_type}")
    work = _working_crs(line, lcrs, fronts)
    line_w = _reproject(line, lcrs, work)
    assert isinstance(line_w, LineString)
    unit = _unit_m(work)

    def position(g: BaseGeometry | None) -> float:
        if g is None or g.is_empty:
            return np.nan
        hit = line_w.intersection(g)
        if hit.is_empty:
            return np.nan
        pts = shapely.points(shapely.get_coordinates(hit))
        return float(np.min(shapely.line_locate_point(line_w, pts))) * unit

    rows = []
    for f in fronts:
        d = position(_reproject(f.geometry, f.crs, work))
        if not np.isfinite(d):
            log.warning("%s (%s): the front does not cross the centreline", f.scene, f.date)
        member_d = [position(_reproject(g, f.crs, work)) for g in f.members]
        rows.append(_row(f, d, member_d, float(np.isfinite(d))))
    return _frame(rows, "centreline")


def front_time_series(fronts: Sequence[str | Path] | Sequence[FrontObservation], *,
                      box: str | Path | None = None, centreline: str | Path | None = None,
                      flow_direction: Sequence[float] | None = None, n_transects: int = 200,
                      min_coverage: float = 0.5) -> pd.DataFrame:
    """Front positions of ``fronts`` (files or observations) by the box or the centreline method.

    Exactly one of ``box`` / ``centreline`` (GeoJSON files) must be given. Returns a DataFrame with
    :data:`COLUMNS`, sorted by date.
    """
    if (box is None) == (centreline is None):
        raise ValueError("give exactly one of box= or centreline=")
    check_position_settings(n_transects=n_transects, min_coverage=min_coverage, flow_direction=flow_direction)
    obs = [f for f in fronts if isinstance(f, FrontObservation)]
    if len(obs) != len(fronts):
        obs = load_fronts([Path(p) for p in fronts])  # type: ignore[arg-type]
    if not obs:
        raise ValueError("no fronts given")
    if box is not None:
        geom, crs, props = read_reference(box)
        flow = flow_direction if flow_direction is not None else props.get("flow_direction")
        try:
            return box_positions(obs, geom, crs, flow_direction=flow, n_transects=n_transects,
                                 min_coverage=min_coverage)
        except DataError as exc:
            if exc.path is None:
                raise DataError(box, exc.problem, exc.hint) from exc
            raise
    assert centreline is not None
    geom, crs, _ = read_reference(centreline)
    try:
        return centreline_positions(obs, geom, crs)
    except DataError as exc:
        if exc.path is None:
            raise DataError(centreline, exc.problem, exc.hint) from exc
        raise


#: the columns a truth table must have: the date and the front position (m, relative to the first date)
TRUTH_COLUMNS = ("date", "position_m")
_TRUTH_HINT = "a truth table is a CSV with a date column (YYYY-MM-DD) and a position_m column (metres)"


def _missing_truth_columns(columns: Sequence[str]) -> str | None:
    missing = [c for c in TRUTH_COLUMNS if c not in columns]
    return f"no column {missing[0]!r} (columns: {', '.join(map(str, columns))})" if missing else None


def read_truth_table(path: str | Path) -> pd.DataFrame:
    """A truth table (CSV with :data:`TRUTH_COLUMNS`; more columns are kept), ``date`` parsed and ``position_m``
    numeric (a blank position stays NaN: not known). :class:`DataError` naming the file, and the line (1 = header)
    where one is at fault, for a missing, unreadable or empty file, a missing column, a date that does not parse, a
    position that is not a finite number (``nan``, ``inf``), a blank date, or a date given twice."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found", _TRUTH_HINT)
    try:  # the two columns as text, to name a bad cell as written; the others with their natural types
        raw = pd.read_csv(path, dtype={c: str for c in TRUTH_COLUMNS})
    except pd.errors.EmptyDataError:
        raise DataError(path, "empty file", _TRUTH_HINT) from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as exc:
        raise DataError(path, f"not readable as CSV: {exc}", _TRUTH_HINT) from None
    problem = _missing_truth_columns(list(raw.columns))
    if problem:
        raise DataError(path, problem, _TRUTH_HINT)
    if raw.empty:
        raise DataError(path, "no rows", _TRUTH_HINT)
    date_text = raw["date"].fillna("").astype(object).str.strip()
    dates = pd.to_datetime(date_text, format="ISO8601", errors="coerce")
    text = raw["position_m"].fillna("").astype(object).str.strip()
    positions = pd.to_numeric(text.where(text != ""), errors="coerce").astype(np.float64)
    for i in range(len(raw)):  # the first bad cell, by its line in the file (line 1 is the header)
        if pd.isna(dates.iloc[i]):
            raise DataError(path, f"line {i + 2}: date {date_text.iloc[i]!r} is not a date (YYYY-MM-DD)", _TRUTH_HINT)
        if text.iloc[i] != "" and not np.isfinite(positions.iloc[i]):
            raise DataError(path, f"line {i + 2}: position_m {text.iloc[i]!r} is not a finite number", _TRUTH_HINT)
    twice = dates[dates.duplicated()]
    if len(twice):
        raise DataError(path, f"dated twice: {twice.iloc[0]:%Y-%m-%d} (one truth per date)", _TRUTH_HINT)
    return raw.assign(date=dates.to_numpy(), position_m=positions.to_numpy())


def compare_to_truth(series: pd.DataFrame, truth: pd.DataFrame | str | Path) -> dict[str, float]:
    """RMSE, mean error (bias) and maximum absolute error in metres of ``position_m`` against a truth table.

    ``truth`` has ``date`` and ``position_m`` columns (e.g. the synthetic ``truth.csv``), both relative to the
    first date; a path is read by :func:`read_truth_table`. Dates present in both are compared (``n``).
    """
    if isinstance(truth, (str, Path)):
        t = read_truth_table(truth)
    else:
        problem = _missing_truth_columns(list(truth.columns))
        if problem:
            raise ValueError(f"the truth table has {problem}")
        t = truth.copy()
    t["date"] = pd.to_datetime(t["date"])
    m = series[["date", "position_m"]].merge(t[["date", "position_m"]], on="date", suffixes=("", "_true"))
    err = (m["position_m"] - m["position_m_true"]).dropna().to_numpy(dtype=np.float64)
    if err.size == 0:
        return {"rmse_m": math.nan, "bias_m": math.nan, "max_abs_m": math.nan, "n": 0}
    return {"rmse_m": float(np.sqrt(np.mean(err ** 2))), "bias_m": float(np.mean(err)),
            "max_abs_m": float(np.max(np.abs(err))), "n": int(err.size)}


def write_time_series(series: pd.DataFrame, path: str | Path) -> Path:
    """Write the time series as CSV (dates ISO, metres to 3 decimals), atomically."""
    df = series.copy()
    df["date"] = pd.to_datetime(df["date"]).dt.strftime("%Y-%m-%d")
    return write_text_atomic(path, df.to_csv(index=False, float_format="%.3f"))



#: the measuring devices of a series folder: method → GeoJSON file (``<root>/<file>``)
SERIES_REFERENCES = {"box": "reference_box.geojson", "centreline": "centreline.geojson"}


def series_scenes(root: str | Path) -> list[Path]:
    """The scenes of a time-series folder (``<root>/sar/*.tif``, sorted), after checking that the folder also holds
    the reference box and the centreline (:data:`SERIES_REFERENCES`); :class:`DataError` naming what is missing."""
    from ssl4sar.errors import DataError

    folder = Path(root)
    for needed in (folder / "sar", *(folder / name for name in SERIES_REFERENCES.values())):
        if not needed.exists():
            raise DataError(needed, "not found", "a time-series folder needs sar/*.tif, "
                            + " and ".join(SERIES_REFERENCES.values()))
    scenes = sorted((folder / "sar").glob("*.tif"))
    if not scenes:
        raise DataError(folder / "sar", "no scenes (*.tif)")
    return scenes


def series_by_method(fronts: Sequence[str | Path] | Sequence[FrontObservation], root: str | Path
                     ) -> dict[str, pd.DataFrame]:
    """:func:`front_time_series` of ``fronts`` by each method of :data:`SERIES_REFERENCES`, with the reference files
    of the series folder ``root``: ``{"box": …, "centreline": …}``."""
    folder = Path(root)
    return {method: front_time_series(fronts, **{method: folder / name})  # type: ignore[arg-type]
            for method, name in SERIES_REFERENCES.items()}


def references_in(root: str | Path, crs: Any) -> dict[str, BaseGeometry]:
    """The reference box and centreline of a series folder reprojected to ``crs`` (for drawing over a scene):
    ``{"reference box": …, "centreline": …}``."""
    from ssl4sar import geo

    labels = {"box": "reference box", "centreline": "centreline"}
    out = {}
    for method, name in SERIES_REFERENCES.items():
        geom, ref_crs, _ = read_reference(Path(root) / name)
        out[labels[method]] = geo.reproject_geometry(geom, ref_crs, crs)
    return out


def fronts_in(observations: Sequence[FrontObservation], crs: Any) -> tuple[list[BaseGeometry | None], list[str]]:
    """The observations' fronts reprojected to ``crs`` and their dates (ISO), for drawing over a scene."""
    from ssl4sar import geo

    return ([geo.reproject_geometry(o.geometry, o.crs, crs) for o in observations],
            [o.date.isoformat() for o in observations])


def read_truth(root: str | Path) -> pd.DataFrame | None:
    """``<root>/truth.csv`` of a synthetic series (``date`` parsed; ``position_m`` relative to the first date), or
    ``None`` when the folder has none (real scenes)."""
    path = Path(root) / "truth.csv"
    return read_truth_table(path) if path.is_file() else None


def write_series(series: Mapping[str, pd.DataFrame], folder: str | Path, prefix: str) -> list[Path]:
    """Write each method's series to ``<folder>/<prefix>_<method>.csv`` (:func:`write_time_series`); the paths."""
    return [write_time_series(s, Path(folder) / f"{prefix}_{method}.csv") for method, s in series.items()]


def positions_table(series: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Positions and their spread (m, 0.1 m) per date, one column pair per method: ``(position_m | position_std_m,
    method)``."""
    long = pd.concat([s[["date", "position_m", "position_std_m"]].assign(method=m) for m, s in series.items()])
    return long.pivot(index="date", columns="method", values=["position_m", "position_std_m"]).round(1)
