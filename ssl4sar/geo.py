"""Front masks → georeferenced lines: pixel chains, map coordinates, lengths, reprojection, GeoJSON.

Pixel conventions: a front mask is an ``(H, W)`` array, non-zero on the front (the 1-px wide glacier/ocean
boundary of :func:`ssl4sar.postprocess.extract_front`). Pixel ``(row, col)`` covers the square
``[col, col + 1) × [row, row + 1)`` of the raster's pixel space; its **centre** ``(col + 0.5, row + 0.5)`` is
mapped to map coordinates ``(x, y) = transform * (col + 0.5, row + 0.5)`` with the raster's affine transform
(rasterio / GDAL ``AREA_OR_POINT=Area`` convention). Without a CRS the identity transform gives *pixel
coordinates* ``x = col + 0.5``, ``y = row + 0.5``.

Ordering front pixels into polylines (:func:`front_polylines`): the front pixels are a graph with an edge
between 8-neighbours (weight 1 for a side, √2 for a diagonal neighbour). For every 8-connected component the
**longest geodesic path** is taken: a Dijkstra sweep from the component's first pixel finds the farthest pixel
``a``, a second sweep from ``a`` finds the farthest pixel ``b``, and the shortest path ``a → b`` is the
polyline (exact for tree-shaped fronts; for the small loops that 8-connectivity creates along staircases it
cuts the corners, which is the better line anyway). Mode ``"longest"`` stops there (one line per component,
side branches dropped). Mode ``"chains"`` (default) also traces branches: the pixels on the path *and their
8-neighbours* count as covered (this swallows the parallel staircase pixels of 4-connected boundaries), and
every remaining piece with at least ``min_branch_px`` pixels is traced the same way (recursively) and joined
to the nearest vertex of the lines already traced when that vertex is within 3 px. Lines run from the
endpoint that comes first in row-major order. Components of a single pixel give no line.

Lengths (:func:`geometry_length_m`) are planar in a projected CRS (times the CRS's linear unit in metres) and
geodesic on the CRS's ellipsoid (``pyproj.Geod``) in a geographic CRS. Reprojection uses pyproj with
``always_xy=True``, so geographic coordinates are always (longitude, latitude), the GeoJSON order of RFC 7946.

GeoJSON (:func:`write_geojson`, :func:`read_geojson`): a FeatureCollection; files in EPSG:4326 follow RFC 7946
(lon/lat, no ``crs`` member); any other CRS is named in the (pre-RFC, GDAL/QGIS-readable) ``crs`` member
``{"type": "name", "properties": {"name": "EPSG:32622"}}``; pixel-coordinate files carry
``"coordinate_system": "pixel"`` instead. Writing is atomic.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import shapely
from pyproj import CRS, Geod, Transformer
from pyproj.exceptions import CRSError
from rasterio.transform import Affine
from scipy import sparse
from scipy.sparse import csgraph
from shapely.geometry import LineString, MultiLineString, mapping, shape
from shapely.geometry.base import BaseGeometry

from ssl4sar.errors import DataError
from ssl4sar.io import write_text_atomic

__all__ = [
    "LineMode", "WGS84", "Feature", "FeatureCollection",
    "front_polylines", "pixels_to_map", "polylines_to_geometry", "front_to_geometry",
    "as_crs", "is_wgs84", "unit_factor_m", "geometry_length_m", "reproject_geometry", "local_metric_crs",
    "write_geojson", "read_geojson", "feature_collection",
]

log = logging.getLogger(__name__)

LineMode = Literal["longest", "chains"]
WGS84 = CRS.from_epsg(4326)
PIXEL_COORDINATES = "pixel"
_JOIN_DISTANCE_PX = 3.0
_SQRT2 = math.sqrt(2.0)


# --------------------------------------------------------------------------------------------------------------
# pixel chains

def _front_graph(front: np.ndarray) -> tuple[np.ndarray, np.ndarray, sparse.csr_matrix]:
    """Front pixels in row-major order and their symmetric 8-neighbour graph (weights 1 / √2)."""
    front = np.asarray(front)
    if front.ndim != 2:
        raise DataError(None, f"front mask must be 2-D (H, W), got shape {front.shape}")
    h, w = front.shape
    lin = np.flatnonzero(np.ravel(front))
    rows, cols = np.divmod(lin, w)
    n = lin.size
    src: list[np.ndarray] = []
    dst: list[np.ndarray] = []
    wts: list[np.ndarray] = []
    if n:
        for dr, dc, weight in ((0, 1, 1.0), (1, -1, _SQRT2), (1, 0, 1.0), (1, 1, _SQRT2)):
            nr, nc = rows + dr, cols + dc
            ok = (nr < h) & (nc >= 0) & (nc < w)
            target = nr[ok].astype(np.int64) * w + nc[ok]
            pos = np.minimum(np.searchsorted(lin, target), n - 1)
            hit = lin[pos] == target
            src.append(np.flatnonzero(ok)[hit])
            dst.append(pos[hit])
            wts.append(np.full(int(hit.sum()), weight))
    s = np.concatenate(src) if src else np.zeros(0, dtype=np.int64)
    d = np.concatenate(dst) if dst else np.zeros(0, dtype=np.int64)
    wt = np.concatenate(wts) if wts else np.zeros(0)
    graph = sparse.coo_matrix((np.r_[wt, wt], (np.r_[s, d], np.r_[d, s])), shape=(n, n)).tocsr()
    return rows, cols, graph


def _longest_path(graph: sparse.csr_matrix) -> np.ndarray:
    """Node indices of the longest geodesic path of a connected graph (double Dijkstra sweep)."""
    n = graph.shape[0]
    if n == 1:
        return np.zeros(1, dtype=np.int64)
    d0 = csgraph.dijkstra(graph, directed=False, indices=0)
    a = int(np.argmax(np.where(np.isfinite(d0), d0, -1.0)))
    da, pred = csgraph.dijkstra(graph, directed=False, indices=a, return_predecessors=True)
    b = int(np.argmax(np.where(np.isfinite(da), da, -1.0)))
    path = [b]
    while path[-1] != a:
        path.append(int(pred[path[-1]]))
    return np.asarray(path[::-1], dtype=np.int64)


def _orient(rc: np.ndarray) -> np.ndarray:
    """Start the chain at the endpoint that comes first in row-major order."""
    if (rc[-1, 0], rc[-1, 1]) < (rc[0, 0], rc[0, 1]):
        return rc[::-1].copy()
    return rc


def _trace_component(rc: np.ndarray, graph: sparse.csr_matrix, mode: LineMode, min_branch_px: int
                     ) -> list[np.ndarray]:
    """Polylines (row, col) of one connected component (``rc`` its pixels, ``graph`` its subgraph)."""
    lines: list[np.ndarray] = []
    pending = [np.arange(rc.shape[0])]
    while pending:
        nodes = pending.pop(0)
        sub = graph[nodes][:, nodes]
        path = nodes[_longest_path(sub)]
        chain = rc[path].astype(np.float64)
        if lines and chain.shape[0] >= 1:
            # join a branch to the closest vertex already traced (within _JOIN_DISTANCE_PX)
            traced = np.concatenate(lines)
            best: tuple[float, int, np.ndarray] | None = None
            for end in (0, chain.shape[0] - 1):
                dist = np.hypot(*(traced - chain[end]).T)
                j = int(np.argmin(dist))
                if best is None or dist[j] < best[0]:
                    best = (float(dist[j]), end, traced[j])
            assert best is not None
            if best[0] <= _JOIN_DISTANCE_PX:
                chain = np.vstack([best[2], chain]) if best[1] == 0 else np.vstack([chain, best[2]])
        if chain.shape[0] >= 2:
            lines.append(_orient(chain))
        if mode == "longest":
            break
        covered = np.zeros(rc.shape[0], dtype=bool)
        covered[path] = True
        covered[graph[path].indices] = True
        rest = nodes[~covered[nodes]]
        if rest.size < max(int(min_branch_px), 1):
            continue
        n_sub, labels = csgraph.connected_components(graph[rest][:, rest], directed=False)
        sizes = np.bincount(labels, minlength=n_sub)
        for k in np.argsort(-sizes, kind="stable"):
            if sizes[k] >= min_branch_px:
                pending.append(rest[labels == k])
    return lines


def front_polylines(front: np.ndarray, mode: LineMode = "chains", min_branch_px: int = 3) -> list[np.ndarray]:
    """Order the pixels of a front mask into polylines (see the module docstring for the rules).

    Args:
        front: ``(H, W)`` mask, non-zero on the front (bool, 0/1 or 0/255).
        mode: ``"chains"`` (longest path per component plus its branches) or ``"longest"`` (longest path only).
        min_branch_px: in ``"chains"`` mode, left-over pieces with fewer pixels are dropped.

    Returns:
        A list of ``(N, 2)`` float64 arrays of ``(row, col)`` pixel indices (N ≥ 2), components in the
        row-major order of their first pixel, longest chain of a component first.
    """
    if mode not in ("longest", "chains"):
        raise ValueError(f"mode must be 'longest' or 'chains', got {mode!r}")
    rows, cols, graph = _front_graph(front)
    if rows.size == 0:
        return []
    rc = np.column_stack([rows, cols])
    n_comp, labels = csgraph.connected_components(graph, directed=False)
    out: list[np.ndarray] = []
    for k in range(n_comp):  # labels are numbered in order of first appearance = row-major order
        idx = np.flatnonzero(labels == k)
        if idx.size < 2:
            continue
        out.extend(_trace_component(rc[idx], graph[idx][:, idx], mode, min_branch_px))
    return out


def pixels_to_map(rows: np.ndarray, cols: np.ndarray, transform: Affine) -> tuple[np.ndarray, np.ndarray]:
    """Map coordinates ``(x, y)`` of pixel **centres**: ``transform * (col + 0.5, row + 0.5)``.

    Args:
        rows, cols: pixel indices (any shape; may be fractional).
        transform: the raster's affine pixel → map transform (``Affine.identity()`` for pixel coordinates).

    Returns:
        ``(x, y)`` float64 arrays in the units of the raster's CRS.
    """
    r = np.asarray(rows, dtype=np.float64) + 0.5
    c = np.asarray(cols, dtype=np.float64) + 0.5
    a, b, xoff, d, e, yoff = tuple(transform)[:6]
    return a * c + b * r + xoff, d * c + e * r + yoff


def polylines_to_geometry(lines: Sequence[np.ndarray], transform: Affine) -> LineString | MultiLineString | None:
    """Pixel polylines ``(N, 2)`` (row, col) → a LineString (one line) or MultiLineString in map coordinates.

    Returns ``None`` for no line.
    """
    parts = []
    for rc in lines:
        x, y = pixels_to_map(rc[:, 0], rc[:, 1], transform)
        parts.append(np.column_stack([x, y]))
    if not parts:
        return None
    if len(parts) == 1:
        return LineString(parts[0])
    return MultiLineString(parts)


def front_to_geometry(front: np.ndarray, transform: Affine | None = None, mode: LineMode = "chains",
                      min_branch_px: int = 3) -> LineString | MultiLineString | None:
    """A front mask as a LineString / MultiLineString through its pixel centres in map coordinates.

    ``transform`` is the raster's affine transform (None = identity → pixel coordinates); see
    :func:`front_polylines`. Returns ``None`` when the mask holds no line (empty, or isolated pixels only).
    """
    t = Affine.identity() if transform is None else transform
    return polylines_to_geometry(front_polylines(front, mode, min_branch_px), t)


# --------------------------------------------------------------------------------------------------------------
# CRS, lengths, reprojection

def as_crs(crs: Any) -> CRS:
    """Any CRS description (pyproj/rasterio CRS, ``"EPSG:32622"``, an EPSG int, WKT, URN) → ``pyproj.CRS``."""
    if isinstance(crs, CRS):
        return crs
    if hasattr(crs, "to_wkt"):  # rasterio.crs.CRS
        return CRS.from_wkt(crs.to_wkt())
    return CRS.from_user_input(crs)


def is_wgs84(crs: Any) -> bool:
    """True for EPSG:4326 / OGC:CRS84 (the RFC 7946 coordinate system)."""
    c = as_crs(crs)
    return c == WGS84 or c == CRS.from_user_input("OGC:CRS84")


def unit_factor_m(crs: Any) -> float:
    """Metres per unit of a projected CRS's first axis (any CRS description, see :func:`as_crs`); 1.0 when the CRS
    does not state a linear unit."""
    c = as_crs(crs)
    axis = c.axis_info[0] if c.axis_info else None
    factor = getattr(axis, "unit_conversion_factor", None)
    return float(factor) if factor else 1.0


def geometry_length_m(geom: BaseGeometry | None, crs: Any) -> float:
    """Length of a (multi)line in metres.

    Projected CRS: planar length × the CRS's linear unit (metres). Geographic CRS: geodesic length on the CRS's
    ellipsoid; the coordinates must be (longitude, latitude) as everywhere in this module. ``None`` / empty → 0.
    """
    if geom is None or geom.is_empty:
        return 0.0
    c = as_crs(crs)
    if c.is_geographic:
        return float(Geod(**_geod_params(c)).geometry_length(geom))
    return float(geom.length) * unit_factor_m(c)


def _geod_params(crs: CRS) -> dict[str, float]:
    ell = crs.ellipsoid
    if ell is None:
        return {"ellps": "WGS84"}
    return {"a": float(ell.semi_major_metre), "b": float(ell.semi_minor_metre)}


def reproject_geometry(geom: BaseGeometry | None, src_crs: Any, dst_crs: Any, *, densify: int | None = None
                       ) -> BaseGeometry | None:
    """Reproject a shapely geometry between CRSs (pyproj, ``always_xy``: geographic = (lon, lat)).

    ``densify``: first split every edge longer than 1/``densify`` of the geometry's larger bounding-box side, so
    that straight edges of footprints and boxes bend as they should in the target CRS (``None``: keep the
    vertices, as for fronts traced through pixel centres). A polygon that the transform makes invalid is
    repaired (``shapely.make_valid``).
    """
    if geom is None:
        return None
    src, dst = as_crs(src_crs), as_crs(dst_crs)
    if src == dst:
        return geom
    if densify:
        minx, miny, maxx, maxy = geom.bounds
        span = max(maxx - minx, maxy - miny)
        if span > 0:
            geom = shapely.segmentize(geom, max_segment_length=span / float(densify))
    tr = Transformer.from_crs(src, dst, always_xy=True)

    def fn(xy: np.ndarray) -> np.ndarray:
        x, y = tr.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    out = shapely.transform(geom, fn)
    if out.geom_type in ("Polygon", "MultiPolygon") and not out.is_valid:
        out = shapely.make_valid(out)
    return out


def local_metric_crs(geom: BaseGeometry, crs: Any) -> CRS:
    """A projected CRS for measuring ``geom``: ``crs`` itself when projected, else the UTM (or UPS beyond ±84°)
    zone of the geometry's centroid."""
    c = as_crs(crs)
    if c.is_projected:
        return c
    centre = reproject_geometry(geom.centroid, c, WGS84)
    assert centre is not None
    lon, lat = float(centre.x), float(centre.y)
    if lat >= 84.0:
        return CRS.from_epsg(32661)
    if lat <= -80.0:
        return CRS.from_epsg(32761)
    zone = int((lon + 180.0) // 6.0) % 60 + 1
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


# --------------------------------------------------------------------------------------------------------------
# GeoJSON

@dataclass
class Feature:
    """A GeoJSON feature: shapely geometry (or ``None``) and JSON-able properties."""

    geometry: BaseGeometry | None
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass
class FeatureCollection:
    """Features of a GeoJSON file and their CRS (``None`` = pixel coordinates)."""

    features: list[Feature]
    crs: CRS | None
    path: Path | None = None

    def geometries(self) -> list[BaseGeometry]:
        """The non-empty geometries, in file order."""
        return [f.geometry for f in self.features if f.geometry is not None and not f.geometry.is_empty]


def _crs_name(crs: CRS) -> str:
    auth = crs.to_authority()
    if auth is not None:
        return f"{auth[0]}:{auth[1]}"
    return crs.to_wkt()


def _json_value(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, Mapping):
        return {str(k): _json_value(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_value(x) for x in v]
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return str(v)


def _round_coords(obj: Any, ndigits: int) -> Any:
    if isinstance(obj, (list, tuple)):
        return [_round_coords(o, ndigits) for o in obj]
    if isinstance(obj, float):
        return round(obj, ndigits)
    return obj


def feature_collection(features: Iterable[Feature | tuple[BaseGeometry | None, Mapping[str, Any]]], crs: Any,
                       precision: int | None = None) -> dict[str, Any]:
    """The GeoJSON FeatureCollection dict of ``features`` in ``crs`` (``None`` = pixel coordinates).

    ``precision`` rounds coordinates to that many decimals (default: full float precision).
    """
    feats = []
    for f in features:
        geom, props = (f.geometry, f.properties) if isinstance(f, Feature) else f
        g = None
        if geom is not None and not geom.is_empty:
            g = mapping(geom)
            g = {"type": g["type"], "coordinates": _round_coords(json.loads(json.dumps(g["coordinates"])),
                                                                 precision) if precision is not None
                 else json.loads(json.dumps(g["coordinates"]))}
        feats.append({"type": "Feature", "properties": _json_value(dict(props)), "geometry": g})
    out: dict[str, Any] = {"type": "FeatureCollection"}
    if crs is None:
        out["coordinate_system"] = PIXEL_COORDINATES
    else:
        c = as_crs(crs)
        if not is_wgs84(c):
            out["crs"] = {"type": "name", "properties": {"name": _crs_name(c)}}
    out["features"] = feats
    return out


def write_geojson(path: str | Path, features: Iterable[Feature | tuple[BaseGeometry | None, Mapping[str, Any]]],
                  crs: Any, precision: int | None = None) -> Path:
    """Write a GeoJSON FeatureCollection atomically (see :func:`feature_collection`); returns the path.

    Geometries must already be in ``crs``; for EPSG:4326 they must be (lon, lat) (RFC 7946).
    """
    path = Path(path)
    text = json.dumps(feature_collection(features, crs, precision), allow_nan=False)
    write_text_atomic(path, text + "\n")
    log.debug("wrote %s", path)
    return path


def _parse_crs_member(obj: Mapping[str, Any], path: Path) -> tuple[bool, CRS | None]:
    """(found, crs) from a ``crs`` / ``coordinate_system`` member."""
    if obj.get("coordinate_system") == PIXEL_COORDINATES:
        return True, None
    member = obj.get("crs")
    if member is None:
        return False, None
    try:
        props = member.get("properties", {}) if isinstance(member, Mapping) else {}
        name = props.get("name") if isinstance(props, Mapping) else None
        if name is None:
            raise CRSError(f"unsupported crs member {member!r}")
        return True, CRS.from_user_input(name)
    except (CRSError, AttributeError, TypeError) as exc:
        raise DataError(path, f"cannot understand the 'crs' member: {exc}",
                        'expected {"type": "name", "properties": {"name": "EPSG:xxxx"}}') from exc


def has_non_finite_coordinates(geom: BaseGeometry | None) -> bool:
    """Whether ``geom`` has a NaN or infinite x / y: Python's JSON reader takes ``NaN`` and ``Infinity``, which
    GeoJSON (RFC 7946) does not allow, and shapely builds such geometries without complaint."""
    return geom is not None and not bool(np.isfinite(shapely.get_coordinates(geom)).all())


def read_geojson(path: str | Path, default_crs: Any = WGS84) -> FeatureCollection:
    """Read a GeoJSON FeatureCollection, Feature or bare geometry.

    The CRS comes from the ``crs`` member (GDAL/QGIS style), ``"coordinate_system": "pixel"`` (pixel
    coordinates, CRS ``None``), or is ``default_crs`` (RFC 7946: EPSG:4326 lon/lat). Raises
    :class:`DataError` naming the file for unreadable JSON, anything that is not GeoJSON and NaN / infinite
    coordinates (which Python's JSON reader accepts).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found")
    try:
        obj = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(path, f"not readable as JSON: {exc}", "is this a GeoJSON file?") from exc
    if not isinstance(obj, Mapping) or "type" not in obj:
        raise DataError(path, "not a GeoJSON object (no 'type' member)")
    found, crs = _parse_crs_member(obj, path)
    if not found:
        crs = as_crs(default_crs) if default_crs is not None else None
    kind = obj["type"]
    if kind == "FeatureCollection":
        raw = obj.get("features")
        if not isinstance(raw, list):
            raise DataError(path, "FeatureCollection without a 'features' list")
    elif kind == "Feature":
        raw = [obj]
    else:
        raw = [{"type": "Feature", "geometry": obj, "properties": {}}]
    feats = []
    for i, f in enumerate(raw):
        if not isinstance(f, Mapping) or f.get("type") != "Feature":
            raise DataError(path, f"feature {i} is not a GeoJSON Feature")
        g = f.get("geometry")
        try:
            geom = shape(g) if g is not None else None
        except (ValueError, TypeError, AttributeError, KeyError, shapely.errors.GEOSException) as exc:
            raise DataError(path, f"feature {i} has an invalid geometry: {exc}") from exc
        if has_non_finite_coordinates(geom):
            raise DataError(path, f"feature {i} has non-finite coordinates (NaN or infinite)",
                            "GeoJSON coordinates are numbers; the file is corrupt or was written from missing values")
        feats.append(Feature(geom, dict(f.get("properties") or {})))
    return FeatureCollection(feats, crs, path)
