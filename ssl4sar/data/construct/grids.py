"""Glacier grids and areas of interest of the SSL4SAR construction: :class:`GlacierGrid`, :class:`GlacierAOI`,
:func:`read_aois` (the GeoJSON format) and :func:`glacier_grid` (the rules, in :mod:`ssl4sar.data.construct`)."""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rasterio.crs import CRS
from rasterio.errors import CRSError
from rasterio.transform import Affine
from shapely.geometry import Polygon, box, shape

from ssl4sar import geo
from ssl4sar.errors import DataError

if TYPE_CHECKING:
    from ssl4sar.data.construct.scanning import SarScene

#: tolerance (pixels, or relative) for comparing grid positions and resolutions
_EPS = 1e-6


def _to_crs(value: Any, source: Any) -> CRS:
    try:
        return value if isinstance(value, CRS) else CRS.from_user_input(value)
    except (CRSError, ValueError, TypeError) as exc:
        raise DataError(source, f"unknown CRS {value!r}: {exc}", "use e.g. 'EPSG:32622'") from exc


def _crs_str(crs: CRS) -> str:
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.to_string()


def _footprint(transform: Affine, shape_hw: tuple[int, int]) -> Polygon:
    h, w = shape_hw
    return Polygon([transform @ (0, 0), transform @ (w, 0), transform @ (w, h), transform @ (0, h)])


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
        if geo.has_non_finite_coordinates(self.geometry):  # checked first: a NaN area compares as not empty
            raise DataError(None, f"glacier {self.name}: the geometry has non-finite coordinates (NaN or infinite)")
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
    """Read the glaciers' areas of interest from a GeoJSON file (format in :mod:`ssl4sar.data.construct`)."""
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
                if not (kwargs["resolution_m"] > 0 and math.isfinite(kwargs["resolution_m"])):
                    raise DataError(path, f"glacier {name}: resolution_m must be a positive number of metres, got "
                                          f"{props['resolution_m']!r}")
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


def glacier_grid(aoi: GlacierAOI, anchor: SarScene | None, resolution_m: float | None = None) -> GlacierGrid:
    """The glacier's grid (rules in :mod:`ssl4sar.data.construct`); ``anchor`` is its first SAR scene."""
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
