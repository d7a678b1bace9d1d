"""Raw georeferenced Sentinel-1 / Sentinel-2 scenes around two glaciers, with known smooth fields
(:class:`RawPattern`), as input of :mod:`ssl4sar.data.construct` (co-registration checked pixel by pixel).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ssl4sar.data.synthetic.catalogue import GENERATOR_VERSION
from ssl4sar.data.synthetic.optical import SCL_CODES
from ssl4sar.data.synthetic.writers import write_geotiff
from ssl4sar.io import write_json_atomic

log = logging.getLogger(__name__)


#: CRS of the raw synthetic SAR scenes (UTM 22N) and of the raw Sentinel-2 scenes (NSIDC polar stereographic).
RAW_SAR_CRS = "EPSG:32622"
RAW_OPTICAL_CRS = "EPSG:3413"
#: Sentinel-2 L2A band groups by native resolution (m/px), as in the SAFE product.
S2_RESOLUTION_GROUPS: dict[int, tuple[str, ...]] = {
    10: ("B2", "B3", "B4", "B8"),
    20: ("B5", "B6", "B7", "B8A", "B11", "B12", "AOT", "WVP", "SCL"),
    60: ("B1", "B9"),
}
#: bands of the raw 15-band Sentinel-2 files (GEE ``COPERNICUS/S2_SR`` order up to SCL)
RAW_S2_BANDS: tuple[str, ...] = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B11", "B12",
                                 "AOT", "WVP", "SCL")
#: glaciers of the raw scenes (both inside UTM zone 22N): front position (lat, lon) in degrees
RAW_GLACIERS: dict[str, tuple[float, float]] = {"Jakobshavn": (69.17, -49.80), "Eqip": (69.81, -50.21)}


@dataclass(frozen=True)
class RawPattern:
    """Known, smooth fields defined in the map coordinates ``(x, y)`` (metres) of :attr:`crs`, from which the raw
    synthetic scenes are sampled, so that a co-registration can be checked pixel by pixel.

    - SAR: ``sigma0_db(x, y) = −14 + 8·sin(2π(x − x0)/1600 + φ)·cos(2π(y − y0)/1100)`` dB;
    - Sentinel-2 band ``b`` (``RAW_S2_BANDS`` index ``i``): reflectance
      ``0.30 + 0.02·i + 0.15·sin(2π(x − x0)/1200 + 0.4·i + φ)·cos(2π(y − y0)/1500) + 0.05·sin(2π(x − x0)/25000)``,
      stored ×10000 (B1…B12) or ×1000 (AOT, WVP) as uint16 DN; every band differs, so a band mix-up shows;
    - SCL: a checkerboard of ``scl_cell_m`` cells in map coordinates: 6 (water) / 11 (snow and ice).
    """

    origin: tuple[float, float]
    phase: float = 0.0
    crs: str = RAW_SAR_CRS
    scl_cell_m: float = 1000.0

    def _xy(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(x, dtype=np.float64) - self.origin[0], np.asarray(y, dtype=np.float64) - self.origin[1]

    def sigma0_db(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """σ⁰ in dB at map coordinates ``(x, y)`` of :attr:`crs`."""
        u, v = self._xy(x, y)
        return -14.0 + 8.0 * np.sin(2 * np.pi * u / 1600.0 + self.phase) * np.cos(2 * np.pi * v / 1100.0)

    def reflectance(self, band: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Surface reflectance (0–1, or the AOT / WVP field in the same units) of ``band`` at ``(x, y)``."""
        i = RAW_S2_BANDS.index(band)
        if band == "SCL":
            raise ValueError("SCL is categorical: use scl()")
        u, v = self._xy(x, y)
        return (0.30 + 0.02 * i + 0.15 * np.sin(2 * np.pi * u / 1200.0 + 0.4 * i + self.phase)
                * np.cos(2 * np.pi * v / 1500.0) + 0.05 * np.sin(2 * np.pi * u / 25000.0))

    def s2_dn(self, band: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The stored value (float, before rounding) of ``band`` at ``(x, y)``: reflectance ×10000 for B1…B12,
        ×1000 for AOT and WVP, the SCL code for SCL."""
        if band == "SCL":
            return self.scl(x, y).astype(np.float64)
        scale = 1000.0 if band in ("AOT", "WVP") else 10000.0
        return self.reflectance(band, x, y) * scale

    def scl(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """SCL class at ``(x, y)``: 6 (water) or 11 (snow / ice) on a checkerboard of ``scl_cell_m`` cells."""
        u, v = self._xy(x, y)
        parity = (np.floor(u / self.scl_cell_m) + np.floor(v / self.scl_cell_m)) % 2
        return np.where(parity == 0, SCL_CODES["water"], SCL_CODES["snow_ice"]).astype(np.uint8)


@dataclass
class RawScenes:
    """What :func:`generate_raw_scenes` wrote.

    ``sar_dir`` and ``optical_dir`` hold the scenes, ``aoi_path`` the glaciers' areas of interest (GeoJSON);
    ``bad`` maps the file name of each deliberately broken scene to the kind of defect (``no_crs``,
    ``no_overlap``, ``all_nodata``); ``pattern`` evaluates the true values anywhere.
    """

    out_dir: Path
    sar_dir: Path
    optical_dir: Path
    aoi_path: Path
    pattern: RawPattern
    glaciers: tuple[str, ...]
    sar_files: list[Path] = field(default_factory=list)
    optical_files: list[Path] = field(default_factory=list)
    bad: dict[str, str] = field(default_factory=dict)


def _centres(transform: Any, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Map coordinates (x, y) of the pixel centres of a north-up grid, each (H, W)."""
    h, w = shape
    cols, rows = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    x = transform.c + cols * transform.a + rows * transform.b
    y = transform.f + cols * transform.d + rows * transform.e
    return x, y


def _in_crs(x: np.ndarray, y: np.ndarray, src: str, dst: str) -> tuple[np.ndarray, np.ndarray]:
    if src == dst:
        return x, y
    from pyproj import Transformer

    tx, ty = Transformer.from_crs(src, dst, always_xy=True).transform(x.ravel(), y.ravel())
    return np.asarray(tx).reshape(x.shape), np.asarray(ty).reshape(y.shape)


def _grid(bounds: tuple[float, float, float, float], res: float, snap: float | None = None
          ) -> tuple[Any, tuple[int, int]]:
    """North-up transform and (H, W) covering ``bounds`` (minx, miny, maxx, maxy) at ``res`` m/px (origin snapped
    to multiples of ``snap`` metres when given)."""
    from rasterio.transform import from_origin

    minx, miny, maxx, maxy = bounds
    if snap:
        minx = math.floor(minx / snap) * snap
        maxy = math.ceil(maxy / snap) * snap
    w = int(math.ceil((maxx - minx) / res))
    h = int(math.ceil((maxy - miny) / res))
    if snap:
        w = int(math.ceil(w * res / snap) * snap / res)
        h = int(math.ceil(h * res / snap) * snap / res)
    return from_origin(minx, maxy, res, res), (h, w)


def _wedge(shape: tuple[int, int], corner: str, fraction: float) -> np.ndarray:
    """Boolean (H, W): a triangular no-data wedge cut off ``corner`` (nw, ne, sw, se), legs ``fraction`` of the
    sides — the slanted no-data borders of real scenes."""
    h, w = shape
    rows, cols = np.mgrid[0:h, 0:w]
    r = rows / max(h - 1, 1)
    c = cols / max(w - 1, 1)
    if "s" in corner:
        r = 1 - r
    if "e" in corner:
        c = 1 - c
    return (r + c) < fraction


def generate_raw_scenes(out_dir: str | Path, seed: int = 0, *, aoi_size_m: tuple[float, float] = (3000.0, 2400.0),
                        sar_resolution_m: float = 20.0, speckle_looks: float | None = None,
                        glaciers: Sequence[str] = ("Jakobshavn", "Eqip")) -> RawScenes:
    """Write raw, georeferenced Sentinel-1-like and Sentinel-2-like scenes around two glaciers, with their areas of
    interest, as input for :func:`ssl4sar.data.construct.construct_ssl4sar`; returns a :class:`RawScenes`.

    Layout::

        sar/S1<A|B>_IW_GRDH_<YYYYMMDDTHHMMSS>_<tag>.tif   float32 σ⁰, EPSG:32622 (UTM 22N)
        optical/S2<A|B>_MSIL2A_<YYYYMMDDTHHMMSS>_T22W<tile>_<10m|20m|60m>.tif      band groups (band descriptions)
        optical/S2<A|B>_MSIL2A_<YYYYMMDDTHHMMSS>_T22W<tile>_<band>_<res>m.tif      one file per band
        optical/S2<A|B>_MSIL2A_<YYYYMMDDTHHMMSS>_T22W<tile>_S2SR.tif               15 bands, GEE S2_SR order
        aoi.geojson                                                                the glaciers' areas of interest
        raw_scenes.json                                                            what is where, and the defects

    Values follow :class:`RawPattern` (map coordinates of EPSG:32622; the pattern's phase depends on ``seed``).
    SAR scenes (``sar_resolution_m`` m/px, one at half that) have sub-pixel offsets between them, partial overlaps
    with the areas of interest and slanted no-data borders, in three encodings: σ⁰ in dB with NaN no-data, σ⁰ in dB
    with a −9999 no-data value, and linear σ⁰ (intensity) with NaN; with ``speckle_looks`` multiplicative gamma
    speckle is added (the pattern check then needs a looser tolerance). Sentinel-2 scenes are in EPSG:3413 at their
    native 10 / 20 / 60 m, uint16 with 0 = no data: glacier 1 is covered by two partly overlapping scenes (one as
    resolution-group files, one as single-band files), glacier 2 by one 15-band file. Area of interest of glacier
    1: a rotated quadrilateral in lon/lat (GeoJSON default CRS); of glacier 2: a bounding box in EPSG:32622.
    Broken scenes, one of each kind: SAR without CRS, SAR far from every glacier, SAR that is all no-data over
    glacier 1, and a Sentinel-2 scene without CRS, one far away and one all no-data.
    """
    import warnings

    from pyproj import Transformer
    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.transform import Affine, from_origin

    out = Path(out_dir)
    names = tuple(glaciers)
    if len(names) != 2 or any(n not in RAW_GLACIERS for n in names):
        raise ValueError(f"glaciers must be two of {sorted(RAW_GLACIERS)}, got {names}")
    rng = np.random.default_rng([int(seed), 7])
    to_utm = Transformer.from_crs("EPSG:4326", RAW_SAR_CRS, always_xy=True)
    to_ll = Transformer.from_crs(RAW_SAR_CRS, "EPSG:4326", always_xy=True)
    centres = {}
    for n in names:
        lat, lon = RAW_GLACIERS[n]
        cx, cy = to_utm.transform(lon, lat)
        centres[n] = (round(cx / 10.0) * 10.0, round(cy / 10.0) * 10.0)
    pattern = RawPattern(origin=centres[names[0]], phase=float(rng.uniform(0, 2 * math.pi)))
    half_w, half_h = aoi_size_m[0] / 2.0, aoi_size_m[1] / 2.0
    res = float(sar_resolution_m)
    sar_dir, opt_dir = out / "sar", out / "optical"
    result = RawScenes(out_dir=out, sar_dir=sar_dir, optical_dir=opt_dir, aoi_path=out / "aoi.geojson",
                       pattern=pattern, glaciers=names)

    # ---- areas of interest
    g1x, g1y = centres[names[0]]
    angle = math.radians(20.0)
    corners = []
    for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1), (-1, -1)):
        dx, dy = sx * half_w * 0.9, sy * half_h * 0.9
        x = g1x + dx * math.cos(angle) - dy * math.sin(angle)
        y = g1y + dx * math.sin(angle) + dy * math.cos(angle)
        lon, lat = to_ll.transform(x, y)
        corners.append([round(lon, 7), round(lat, 7)])
    g2x, g2y = centres[names[1]]
    aoi = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"glacier": names[0]},
         "geometry": {"type": "Polygon", "coordinates": [corners]}},
        {"type": "Feature", "properties": {"glacier": names[1], "crs": RAW_SAR_CRS,
                                           "bbox": [g2x - half_w, g2y - half_h, g2x + half_w, g2y + half_h]},
         "geometry": None},
    ]}
    write_json_atomic(result.aoi_path, aoi)

    # ---- SAR scenes
    def sar_scene(fname: str, cx: float, cy: float, extent: tuple[float, float, float, float], r: float,
                  offset: tuple[float, float], encoding: str, wedge: str | None, all_nodata: bool = False,
                  crs: str | None = RAW_SAR_CRS) -> Path:
        x0, y0, x1, y1 = extent
        transform, shape = _grid((cx + x0 + offset[0], cy + y0 + offset[1], cx + x1 + offset[0],
                                  cy + y1 + offset[1]), r)
        x, y = _centres(transform, shape)
        db = pattern.sigma0_db(x, y).astype(np.float32)
        if speckle_looks:
            db = db + (10 * np.log10(rng.gamma(speckle_looks, 1.0 / speckle_looks, size=shape))).astype(np.float32)
        invalid = _wedge(shape, wedge, 0.35) if wedge else np.zeros(shape, bool)
        if all_nodata:
            invalid[:] = True
        nodata: float | None = None
        if encoding == "db_nan":
            arr = np.where(invalid, np.nan, db).astype(np.float32)
        elif encoding == "db_9999":
            arr = np.where(invalid, -9999.0, db).astype(np.float32)
            nodata = -9999.0
        elif encoding == "intensity_nan":
            arr = np.where(invalid, np.nan, np.power(10.0, db / 10.0)).astype(np.float32)
        else:
            raise ValueError(encoding)
        if crs is None:
            transform = Affine.identity()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            path = write_geotiff(sar_dir / fname, arr, crs, transform, nodata=nodata)
        result.sar_files.append(path)
        return path

    ext = (-half_w - 600.0, -half_h - 500.0, half_w + 600.0, half_h + 500.0)
    partial = (-half_w - 400.0, -half_h - 400.0, 0.3 * half_w, half_h + 400.0)
    sar_scene("S1A_IW_GRDH_20190701T100512_HH.tif", g1x, g1y, ext, res, (0.0, 0.0), "db_nan", "nw")
    sar_scene("S1B_IW_GRDH_20190706T100431_HH.tif", g1x, g1y, partial, res, (7.0, -13.0), "db_9999", "sw")
    sar_scene("S1A_IW_GRDH_20190713T100513_HH.tif", g1x, g1y, ext, res / 2.0, (3.0, 4.0), "intensity_nan", "se")
    sar_scene("S1A_IW_GRDH_20190705T101020_HH.tif", g2x, g2y, ext, res, (0.0, 0.0), "db_nan", "ne")
    sar_scene("S1B_IW_GRDH_20190710T101002_HH.tif", g2x, g2y, ext, res, (-9.0, 5.0), "db_9999", None)
    bad = {
        "S1A_IW_GRDH_20190702T100512_nocrs.tif": ("no_crs", dict(crs=None)),
        "S1A_IW_GRDH_20190703T100512_faraway.tif": ("no_overlap", dict(cx=g1x + 150000.0, cy=g1y - 120000.0)),
        "S1B_IW_GRDH_20190704T100431_empty.tif": ("all_nodata", dict(all_nodata=True)),
    }
    for fname, (kind, kw) in bad.items():
        args = {"cx": g1x, "cy": g1y, "extent": ext, "r": res, "offset": (0.0, 0.0), "encoding": "db_nan",
                "wedge": None, **kw}
        sar_scene(fname, **args)
        result.bad[fname] = kind

    # ---- Sentinel-2 scenes (EPSG:3413, native resolutions, aligned on a 60 m lattice like real tiles)
    def polar_bounds(cx: float, cy: float, fx: tuple[float, float], margin: float) -> tuple[float, ...]:
        xs = [cx - half_w - margin + (2 * half_w + 2 * margin) * f for f in fx]
        pts_x = [xs[0], xs[1], xs[1], xs[0]]
        pts_y = [cy - half_h - margin, cy - half_h - margin, cy + half_h + margin, cy + half_h + margin]
        px, py = Transformer.from_crs(RAW_SAR_CRS, RAW_OPTICAL_CRS, always_xy=True).transform(pts_x, pts_y)
        return min(px), min(py), max(px), max(py)

    def s2_bands(bounds: tuple[float, ...], wedge: str | None) -> dict[int, tuple[Any, dict[str, np.ndarray]]]:
        groups: dict[int, tuple[Any, dict[str, np.ndarray]]] = {}
        transform60, shape60 = _grid(bounds, 60.0, snap=60.0)
        for r, bands in S2_RESOLUTION_GROUPS.items():
            shape = (shape60[0] * 60 // r, shape60[1] * 60 // r)
            transform = from_origin(transform60.c, transform60.f, float(r), float(r))
            x, y = _in_crs(*_centres(transform, shape), RAW_OPTICAL_CRS, RAW_SAR_CRS)
            invalid = _wedge(shape, wedge, 0.4) if wedge else np.zeros(shape, bool)
            arrays = {}
            for b in bands:
                v = np.clip(np.rint(pattern.s2_dn(b, x, y)), 1, 65535).astype(np.uint16)
                v[invalid] = 0
                arrays[b] = v
            groups[r] = (transform, arrays)
        return groups

    def write_groups(stem: str, groups: dict[int, tuple[Any, dict[str, np.ndarray]]], crs: str | None) -> None:
        for r, (transform, arrays) in groups.items():
            stack = np.stack(list(arrays.values()))
            path = write_geotiff(opt_dir / f"{stem}_{r}m.tif", stack, crs, transform, nodata=0,
                                 band_names=list(arrays))
            result.optical_files.append(path)

    def write_single(stem: str, groups: dict[int, tuple[Any, dict[str, np.ndarray]]]) -> None:
        for r, (transform, arrays) in groups.items():
            for b, arr in arrays.items():
                token = f"B{int(b[1:]):02d}" if b[1:].isdigit() else b
                path = write_geotiff(opt_dir / f"{stem}_{token}_{r}m.tif", arr, RAW_OPTICAL_CRS, transform, nodata=0)
                result.optical_files.append(path)

    def write_s2sr(stem: str, bounds: tuple[float, ...], r: float, crs: str | None = RAW_OPTICAL_CRS,
                   empty: bool = False) -> Path:
        transform, shape = _grid(bounds, r, snap=60.0)
        x, y = _in_crs(*_centres(transform, shape), RAW_OPTICAL_CRS, RAW_SAR_CRS)
        stack = np.stack([np.clip(np.rint(pattern.s2_dn(b, x, y)), 1, 65535).astype(np.uint16)
                          for b in RAW_S2_BANDS])
        if empty:
            stack[:] = 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            path = write_geotiff(opt_dir / f"{stem}_S2SR.tif", stack, crs,
                                 transform if crs is not None else Affine.identity(), nodata=0)
        result.optical_files.append(path)
        return path

    # glacier 1: scene A (west 70 %, resolution-group files, no-data wedge), scene B (east 60 %, one file per band)
    write_groups("S2B_MSIL2A_20190712T150759_T22WEV", s2_bands(polar_bounds(g1x, g1y, (0.0, 0.7), 500.0), "sw"),
                 RAW_OPTICAL_CRS)
    write_single("S2A_MSIL2A_20190805T150801_T22WEV", s2_bands(polar_bounds(g1x, g1y, (0.4, 1.0), 500.0), None))
    # glacier 2: one 15-band GEE-style file at 20 m
    write_s2sr("S2A_MSIL2A_20190720T150811_T22WEA", polar_bounds(g2x, g2y, (0.0, 1.0), 600.0), 20.0)
    # broken Sentinel-2 scenes
    p = write_s2sr("S2B_MSIL2A_20190714T150759_T22WEV_nocrs", polar_bounds(g1x, g1y, (0.0, 1.0), 500.0), 20.0,
                   crs=None)
    result.bad[p.name] = "no_crs"
    p = write_s2sr("S2B_MSIL2A_20190716T150759_T21XWB", polar_bounds(g1x + 300000.0, g1y, (0.0, 1.0), 500.0), 20.0)
    result.bad[p.name] = "no_overlap"
    p = write_s2sr("S2A_MSIL2A_20190722T150801_T22WEV_empty", polar_bounds(g1x, g1y, (0.0, 1.0), 500.0), 20.0,
                   empty=True)
    result.bad[p.name] = "all_nodata"

    write_json_atomic(out / "raw_scenes.json", {
        "generator": "ssl4sar.data.synthetic.generate_raw_scenes", "version": GENERATOR_VERSION, "seed": int(seed),
        "pattern": {"crs": pattern.crs, "origin": list(pattern.origin), "phase": pattern.phase,
                    "scl_cell_m": pattern.scl_cell_m},
        "glaciers": list(names), "sar_crs": RAW_SAR_CRS, "optical_crs": RAW_OPTICAL_CRS,
        "sar_resolution_m": res, "speckle_looks": speckle_looks,
        "sar": sorted(p.name for p in result.sar_files), "optical": sorted(p.name for p in result.optical_files),
        "bad": dict(sorted(result.bad.items())),
    })
    log.info("wrote %d raw SAR and %d raw Sentinel-2 files around %s to %s", len(result.sar_files),
             len(result.optical_files), ", ".join(names), out)
    return result
