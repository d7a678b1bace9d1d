"""How the SSL4SAR construction (:func:`ssl4sar.data.construct.construct_ssl4sar`) treated raw scenes, for the
book's before/after figure and its check against a known truth.

* :func:`coregistration_example` — the raw SAR and Sentinel-2 scenes of one glacier next to the constructed
  images, with the footprints of every raw scene, the area of interest and the glacier grid (:class:`Footprint`,
  :class:`CoregistrationExample`);
* :func:`coregistration_residuals` — for synthetic raw scenes (a :class:`ssl4sar.data.synthetic.RawPattern` that
  knows the true σ⁰ and SCL everywhere) how far the constructed images lie from the truth on the glacier grid.

Units: σ⁰ in dB, coordinates in the glacier grid's CRS. Nothing is written. (Split out of
:mod:`ssl4sar.data.summary`, which re-exports these names.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from ssl4sar.errors import DataError

__all__ = ["Footprint", "CoregistrationExample", "coregistration_example", "coregistration_residuals"]


class _Pattern(Protocol):
    crs: str

    def sigma0_db(self, x: np.ndarray, y: np.ndarray) -> np.ndarray: ...

    def reflectance(self, band: str, x: np.ndarray, y: np.ndarray) -> np.ndarray: ...

    def scl(self, x: np.ndarray, y: np.ndarray) -> np.ndarray: ...


@dataclass
class Footprint:
    """Outline of a raw scene in the glacier grid's CRS: ``geometry`` (shapely), ``kind`` (``sar`` / ``optical`` /
    ``aoi`` / ``grid``), ``name`` and whether the construction ``used`` it for this glacier."""

    name: str
    kind: str
    geometry: Any
    used: bool


@dataclass
class CoregistrationExample:
    """One glacier's raw inputs and constructed outputs, ready to plot (:func:`ssl4sar.viz.plot_coregistration`).

    Extents are ``(left, right, bottom, top)`` in the CRS named next to them (metres). Raw SAR ``raw_sar_db``
    (σ⁰ in dB, NaN = no data) on its own grid; raw ``raw_scl`` (Sentinel-2 scene classification codes, 0 = no data)
    on its native grid; constructed ``sar`` (uint8, 0 = no data), ``rgb`` (H, W, 3 reflectance, B4/B3/B2) and
    ``scl`` on the glacier grid (``grid_extent`` in ``grid_crs``). ``truth_db`` / ``truth_scl`` are the known
    pattern on the glacier grid when a pattern was given.
    """

    glacier: str
    grid_crs: str
    grid_extent: tuple[float, float, float, float]
    resolution_m: float
    footprints: list[Footprint]
    raw_sar_name: str
    raw_sar_crs: str
    raw_sar_extent: tuple[float, float, float, float]
    raw_sar_resolution_m: float
    raw_sar_db: np.ndarray
    raw_optical_name: str
    raw_optical_crs: str
    raw_optical_extent: tuple[float, float, float, float]
    raw_optical_resolution_m: float
    raw_scl: np.ndarray
    sar_file: str
    sar: np.ndarray
    optical_file: str
    rgb: np.ndarray
    scl: np.ndarray
    truth_db: np.ndarray | None = None
    truth_scl: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)


def _extent(transform: Any, shape: tuple[int, int]) -> tuple[float, float, float, float]:
    h, w = shape
    xs = [transform.c, transform.c + w * transform.a]
    ys = [transform.f, transform.f + h * transform.e]
    return min(xs), max(xs), min(ys), max(ys)


def _crs_name(crs: Any) -> str:
    epsg = crs.to_epsg() if crs is not None else None
    return f"EPSG:{epsg}" if epsg else (crs.to_string() if crs is not None else "none")


def _in_pattern_crs(x: np.ndarray, y: np.ndarray, src: Any, pattern_crs: str) -> tuple[np.ndarray, np.ndarray]:
    from pyproj import CRS as PCRS
    from pyproj import Transformer

    if PCRS.from_user_input(src) == PCRS.from_user_input(pattern_crs):
        return x, y
    tx, ty = Transformer.from_crs(src, pattern_crs, always_xy=True).transform(x.ravel(), y.ravel())
    return np.asarray(tx).reshape(x.shape), np.asarray(ty).reshape(y.shape)


def _read_band(path: Path, index: int = 1) -> tuple[np.ndarray, Any, Any, float | None]:
    import warnings

    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path) as src:
            return src.read(index), src.transform, src.crs, src.nodatavals[index - 1]


def _band_index(path: Path, name: str) -> int:
    import rasterio

    from ssl4sar.data.construct import S2_BANDS

    with rasterio.open(path) as src:
        desc = [d.upper() if d else "" for d in src.descriptions]
    if name in desc:
        return desc.index(name) + 1
    if len(desc) >= len(S2_BANDS):
        return S2_BANDS.index(name) + 1
    raise DataError(path, f"no band {name} (band descriptions: {desc})", "the constructed optical image is broken")


def coregistration_example(raw_sar_dir: str | Path, raw_optical_dir: str | Path, aoi_path: str | Path,
                           constructed_dir: str | Path, glacier: str | None = None,
                           pattern: _Pattern | None = None) -> CoregistrationExample:
    """Collect what :func:`ssl4sar.data.construct.construct_ssl4sar` read and wrote for one glacier.

    ``glacier`` defaults to the first glacier of the manifest with an optical image. Chooses the glacier's first
    constructed SAR image whose source scene is in a different pixel grid from the glacier grid when there is one
    (the interesting case), and the first Sentinel-2 scene of the glacier's optical mosaic. Footprints of every
    readable raw scene (also the ones that were skipped) are given in the glacier grid's CRS. With ``pattern`` (the
    :class:`ssl4sar.data.synthetic.RawPattern` of synthetic raw scenes) the true σ⁰ and SCL on the glacier grid are
    added.
    """
    from ssl4sar.data.construct import (
        ConstructionManifest,
        read_aois,
        resolve_sar_units,
        sar_to_db,
        scan_optical,
        scan_sar,
    )

    out = Path(constructed_dir)
    manifest = ConstructionManifest.read(out)
    if not manifest.rows:
        raise DataError(out / "manifest.csv", "the construction wrote no output", "see manifest_skipped.csv")
    optical_rows = [r for r in manifest.rows if r["sensor"] == "S2"]
    if glacier is None:
        if not optical_rows:
            raise DataError(out / "manifest.csv", "no optical output in the manifest")
        glacier = optical_rows[0]["glacier"]
    if glacier not in manifest.grids:
        raise DataError(out / "grids.json", f"no grid for glacier {glacier!r} (grids: {', '.join(manifest.grids)})")
    grid = manifest.grids[glacier]
    sar_rows = [r for r in manifest.rows if r["glacier"] == glacier and r["sensor"] != "S2"]
    opt_row = next((r for r in optical_rows if r["glacier"] == glacier), None)
    if not sar_rows or opt_row is None:
        raise DataError(out / "manifest.csv", f"glacier {glacier}: needs a constructed SAR and optical image")

    sar_scenes = {s.path.name: s for s in scan_sar(raw_sar_dir)}
    opt_scenes = {o.key: o for o in scan_optical(raw_optical_dir)}

    def regridded(row: Mapping[str, str]) -> bool:
        """True when the raw scene is not on the glacier grid's pixel lattice (other CRS, spacing or offset)."""
        s = sar_scenes.get(row["source"])
        if s is None:
            return False
        t, g = s.transform, grid.transform
        if s.crs != grid.crs or not np.allclose([t.a, t.e, t.b, t.d], [g.a, g.e, g.b, g.d]):
            return True
        off = np.array([(t.c - g.c) / g.a, (t.f - g.f) / g.e])
        return not np.allclose(off, np.round(off), atol=1e-6)

    sar_row = next((r for r in sar_rows if regridded(r)), sar_rows[0])
    raw_sar = sar_scenes.get(sar_row["source"])
    if raw_sar is None:
        raise DataError(Path(raw_sar_dir) / sar_row["source"], "raw SAR scene of the manifest not found")
    values, transform, crs, nodata = _read_band(raw_sar.path)
    values = values.astype(np.float64)
    invalid = ~np.isfinite(values) | ((values == nodata) if nodata is not None else False)
    unit = resolve_sar_units("auto", raw_sar.dtype, raw_sar.hint, values[~invalid])
    if unit in ("uint8", "dn"):
        raw_db = np.where(invalid, np.nan, values)
    else:
        raw_db = sar_to_db(values, unit, invalid)
        raw_db = np.where(invalid | ~np.isfinite(raw_db), np.nan, raw_db)

    key = opt_row["source"].split(";")[0]
    scene = opt_scenes.get(key)
    if scene is None or "SCL" not in scene.bands:
        raise DataError(Path(raw_optical_dir), f"raw Sentinel-2 scene {key} (with an SCL band) not found")
    band = scene.bands["SCL"]
    raw_scl, o_transform, o_crs, _ = _read_band(band.path, band.index)

    sar, _, _, _ = _read_band(out / sar_row["file"])
    opath = out / opt_row["file"]
    rgb = np.stack([_read_band(opath, _band_index(opath, b))[0] for b in ("B4", "B3", "B2")], axis=-1)
    scl, _, _, _ = _read_band(opath, _band_index(opath, "SCL"))
    rgb = rgb.astype(np.float32) / 10000.0

    footprints: list[Footprint] = []
    used_sar = {r["source"] for r in sar_rows}
    used_opt = set(opt_row["source"].split(";"))
    for s in sar_scenes.values():
        geom = _to_grid_crs(s.footprint, s.crs, grid.crs)
        footprints.append(Footprint(s.path.name, "sar", geom, s.path.name in used_sar))
    for o in opt_scenes.values():
        footprints.append(Footprint(o.key, "optical", o.footprint_in(grid.crs), o.key in used_opt))
    for aoi in read_aois(aoi_path):
        if aoi.name == glacier:
            footprints.append(Footprint(f"area of interest {glacier}", "aoi", aoi.in_crs(grid.crs), True))
    from shapely.geometry import box

    footprints.append(Footprint(f"grid {glacier}", "grid", box(*grid.bounds), True))

    ex = CoregistrationExample(
        glacier=glacier, grid_crs=_crs_name(grid.crs), grid_extent=_extent(grid.transform, grid.shape),
        resolution_m=grid.resolution_m, footprints=footprints,
        raw_sar_name=raw_sar.path.name, raw_sar_crs=_crs_name(crs), raw_sar_extent=_extent(transform, values.shape),
        raw_sar_resolution_m=float(abs(transform.a)), raw_sar_db=raw_db.astype(np.float32),
        raw_optical_name=band.path.name, raw_optical_crs=_crs_name(o_crs),
        raw_optical_extent=_extent(o_transform, raw_scl.shape), raw_optical_resolution_m=float(abs(o_transform.a)),
        raw_scl=raw_scl, sar_file=sar_row["file"], sar=sar, optical_file=opt_row["file"], rgb=rgb, scl=scl)
    if unit != "db":
        ex.notes.append(f"{raw_sar.path.name} stores σ⁰ as {unit}; shown converted to dB")
    if pattern is not None:
        x, y = grid.pixel_centres()
        px, py = _in_pattern_crs(x, y, grid.crs, pattern.crs)
        ex.truth_db = pattern.sigma0_db(px, py).astype(np.float32)
        ex.truth_scl = pattern.scl(px, py)
    return ex


def _to_grid_crs(geom: Any, src: Any, dst: Any) -> Any:
    import shapely
    from pyproj import Transformer
    from shapely.ops import transform as shapely_transform

    if src == dst:
        return geom
    minx, miny, maxx, maxy = geom.bounds
    geom = shapely.segmentize(geom, max_segment_length=max(maxx - minx, maxy - miny, 1.0) / 32.0)
    tr = Transformer.from_crs(src, dst, always_xy=True)
    return shapely_transform(lambda xx, yy, zz=None: tr.transform(xx, yy), geom)


def coregistration_residuals(constructed_dir: str | Path, pattern: _Pattern,
                             db_range: tuple[float, float] | None = None) -> pd.DataFrame:
    """How far each constructed image lies from the known ``pattern`` of synthetic raw scenes.

    For every SAR output: its 8-bit values mapped back to dB (``dB = lo + (DN − 1)·(hi − lo)/254``, the inverse of
    the construction's scaling, ``db_range`` = its default −30 … +5 dB) against ``pattern.sigma0_db`` at the pixel
    centres. For every optical output: band B4 reflectance (DN / 10000) against ``pattern.reflectance('B4')``, and
    the share of pixels whose SCL code equals ``pattern.scl``. Columns: ``file``, ``glacier``, ``sensor``,
    ``valid_px``, ``quantity``, ``median_abs_error``, ``p95_abs_error``, ``shift_1px_error`` (the median absolute
    change of the truth itself under a shift by one grid pixel along x: the error a one-pixel misregistration would
    cause), ``scl_agreement``. Errors are in dB for SAR and reflectance units (0–1) for B4.
    """
    import rasterio

    from ssl4sar.data.construct import DEFAULT_DB_RANGE, ConstructionManifest

    lo, hi = db_range or DEFAULT_DB_RANGE
    out = Path(constructed_dir)
    manifest = ConstructionManifest.read(out)
    rows = []
    for r in manifest.rows:
        grid = manifest.grids.get(r["glacier"])
        if grid is None:
            continue
        x, y = grid.pixel_centres()
        px, py = _in_pattern_crs(x, y, grid.crs, pattern.crs)
        sx, sy = _in_pattern_crs(x + grid.resolution_m, y, grid.crs, pattern.crs)
        path = out / r["file"]
        with rasterio.open(path) as src:
            if r["sensor"] == "S2":
                desc = [d.upper() if d else "" for d in src.descriptions]
                b4 = src.read(desc.index("B4") + 1 if "B4" in desc else 4).astype(np.float64)
                scl = src.read(desc.index("SCL") + 1 if "SCL" in desc else 15)
                valid = b4 > 0
                got, truth = b4 / 10000.0, pattern.reflectance("B4", px, py)
                shifted = pattern.reflectance("B4", sx, sy)
                agree = float((scl[valid] == pattern.scl(px, py)[valid]).mean()) if valid.any() else float("nan")
                quantity = "B4 reflectance"
            else:
                dn = src.read(1).astype(np.float64)
                valid = dn > 0
                got = lo + (dn - 1.0) * (hi - lo) / 254.0
                truth, shifted = pattern.sigma0_db(px, py), pattern.sigma0_db(sx, sy)
                agree = float("nan")
                quantity = "sigma0 (dB)"
        err = np.abs(got - truth)[valid]
        rows.append({"file": r["file"], "glacier": r["glacier"], "sensor": r["sensor"], "valid_px": int(valid.sum()),
                     "quantity": quantity,
                     "median_abs_error": float(np.median(err)) if err.size else float("nan"),
                     "p95_abs_error": float(np.percentile(err, 95)) if err.size else float("nan"),
                     "shift_1px_error": float(np.median(np.abs(shifted - truth)[valid])) if err.size else float("nan"),
                     "scl_agreement": agree})
    return pd.DataFrame(rows, columns=["file", "glacier", "sensor", "valid_px", "quantity", "median_abs_error",
                                       "p95_abs_error", "shift_1px_error", "scl_agreement"])
