"""The SSL4SAR construction run: :func:`construct_ssl4sar` scans the inputs, derives each glacier's grid, mosaics
its Sentinel-2 scenes, converts its SAR scenes and keeps the run record (the whole behaviour is described in
:mod:`ssl4sar.data.construct`)."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from rasterio.errors import RasterioIOError
from tqdm.auto import tqdm

from ssl4sar.data.construct.grids import GlacierAOI, GlacierGrid, _footprint, glacier_grid, read_aois
from ssl4sar.data.construct.manifest import (
    GRIDS_NAME,
    MANIFEST_COLUMNS,
    MANIFEST_NAME,
    SKIPPED_COLUMNS,
    SKIPPED_NAME,
    ConstructionManifest,
    _check_settings,
    _csv_text,
    _Journal,
    _read_grids,
    _read_manifest,
    _row,
    _skip,
)
from ssl4sar.data.construct.radiometry import DEFAULT_DB_RANGE, DEFAULT_DN_PERCENTILES, SAR_UNITS
from ssl4sar.data.construct.resampling import (
    _optical_on_grid,
    _sar_on_grid,
    _to_dtype,
    _UnreadableBand,
    _write_raster,
    damaged_output,
)
from ssl4sar.data.construct.scanning import S2_BANDS, OpticalScene, SarScene, scan_optical, scan_sar
from ssl4sar.errors import DataError, SettingError
from ssl4sar.io import atomic_leftovers, ensure_writable_dir, write_text_atomic
from ssl4sar.parallel import parallel_imap

#: one logger for the whole construction (the name it had as one module), so that log filters keep working
log = logging.getLogger(__package__)


def _splits(scenes: Sequence[SarScene], val_fraction: float) -> dict[Path, str]:
    n = len(scenes)
    n_val = 0 if n < 2 or val_fraction <= 0 else min(n - 1, max(1, int(round(val_fraction * n))))
    ordered = sorted(scenes, key=lambda s: s.sort_key)
    return {s.path: ("val" if i >= n - n_val else "train") for i, s in enumerate(ordered)}


def _convert_sar_scene(job: tuple[SarScene, str], *, out: Path, grid: GlacierGrid, glacier: str, sar_units: str,
                       db_range: tuple[float, float], dn_percentiles: tuple[float, float],
                       min_valid_fraction: float) -> tuple[str, float | str]:
    """One SAR scene onto its glacier's grid, written to ``out / rel`` (in a worker process when the construction
    has workers): ``("written", valid fraction)`` or ``("skipped", reason)``."""
    s, rel = job
    try:
        got = _sar_on_grid(s, grid, sar_units, db_range, dn_percentiles)
    except (RasterioIOError, OSError) as exc:
        return "skipped", f"unreadable (truncated or corrupt): {exc}"
    frac = 0.0 if got is None else float((got[0] > 0).mean())
    if got is None or frac == 0.0:
        return "skipped", "no valid pixel over the area of interest (all no-data)"
    if frac < min_valid_fraction:
        return "skipped", f"only {100 * frac:.1f} % of the grid is valid (< {100 * min_valid_fraction:g} %)"
    img, unit = got
    target = out / rel
    for leftover in atomic_leftovers(target.parent, target.stem):  # of a run killed while writing this file
        leftover.unlink(missing_ok=True)
    _write_raster(target, img, grid, 0, None, {"GLACIER": glacier, "SOURCE": s.path.name, "SAR_UNITS": unit,
                                               "ACQUISITION_DATE": s.date.isoformat()})
    return "written", frac


def check_construction_settings(*, resolution_m: float | None, sar_units: str, db_range: tuple[float, float],
                                dn_percentiles: tuple[float, float], val_fraction: float, min_valid_fraction: float,
                                workers: int) -> None:
    """:class:`~ssl4sar.errors.SettingError` naming the first argument of :func:`construct_ssl4sar` outside its
    values (the comparisons are written so that NaN fails them), before anything is read or written."""
    if resolution_m is not None and not (resolution_m > 0 and math.isfinite(resolution_m)):
        raise SettingError(f"resolution_m must be a positive number of metres, got {resolution_m:g}")
    if sar_units not in SAR_UNITS:
        raise SettingError(f"sar_units must be one of {SAR_UNITS}, got {sar_units!r}")
    if not (db_range[1] > db_range[0] and all(map(math.isfinite, db_range))):
        raise SettingError(f"db_range must be (low, high) with low < high, got {tuple(db_range)}")
    if not 0.0 <= dn_percentiles[0] < dn_percentiles[1] <= 100.0:
        raise SettingError("dn_percentiles must be (low, high) with 0 <= low < high <= 100, "
                           f"got {tuple(dn_percentiles)}")
    if not 0.0 <= val_fraction < 1.0:
        raise SettingError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if not 0.0 <= min_valid_fraction <= 1.0:
        raise SettingError(f"min_valid_fraction must be in [0, 1], got {min_valid_fraction}")
    if workers < 1:
        raise SettingError(f"workers must be at least 1, got {workers}")


def construct_ssl4sar(sar_scenes: str | Path | Iterable[str | Path], optical_scenes: str | Path | Iterable[str | Path],
                      glaciers: str | Path | Sequence[GlacierAOI], out_dir: str | Path, *,
                      resolution_m: float | None = None, sar_units: str = "auto",
                      db_range: tuple[float, float] = DEFAULT_DB_RANGE,
                      dn_percentiles: tuple[float, float] = DEFAULT_DN_PERCENTILES, val_fraction: float = 0.2,
                      min_valid_fraction: float = 0.05, sensor: str | None = None, workers: int = 1,
                      progress: bool = True) -> ConstructionManifest:
    """Build the SSL4SAR layout under ``out_dir`` from raw scenes (described in :mod:`ssl4sar.data.construct`).

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
        workers: processes that convert SAR scenes side by side (the output does not depend on it; about one per
            core, each needs a few hundred MB).
        progress: tqdm progress bars.

    Returns:
        the :class:`ConstructionManifest` (also written to ``manifest.csv`` / ``manifest_skipped.csv``).
    """
    check_construction_settings(resolution_m=resolution_m, sar_units=sar_units, db_range=db_range,
                                dn_percentiles=dn_percentiles, val_fraction=val_fraction,
                                min_valid_fraction=min_valid_fraction, workers=workers)
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

    def done(rel: str, grid: GlacierGrid) -> dict[str, str] | None:
        """The earlier run's record of output ``rel`` where the file is there and intact, else ``None`` (redo)."""
        row = previous.get(rel)
        if row is None or not (out / rel).is_file():
            return None
        problem = damaged_output(out / rel, grid)
        if problem is not None:
            log.warning("%s: an earlier run's output is damaged, %s; written again", out / rel, problem)
            return None
        return row

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
        prior = [r for r in previous.values() if r["glacier"] == g and r["sensor"] == "S2" and done(r["file"], grid)]
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
        pending: list[tuple[SarScene, str]] = []
        for s in overlapping:
            rel = f"sar/{split[s.path]}/{s.sensor}_{g}_{s.date.isoformat()}_{k_of[s.path]}.tif"
            row = done(rel, grid)
            if row is not None:
                rows[rel] = row
                result.reused.append(rel)
            else:
                pending.append((s, rel))
        # converted in `workers` processes; each outcome is recorded (in scene order) as soon as it is in
        outcomes = parallel_imap(_convert_sar_scene, pending, workers, out=out, grid=grid, glacier=g,
                                 sar_units=sar_units, db_range=db_range, dn_percentiles=dn_percentiles,
                                 min_valid_fraction=min_valid_fraction)
        for (s, rel), (status, detail) in tqdm(zip(pending, outcomes, strict=True), total=len(pending),
                                               desc=f"{g} SAR", disable=not progress, leave=False):
            if status == "skipped":
                _skip(skipped, s.path, "sar", str(detail), g)
                continue
            row = _row(rel, g, s.date, s.sensor, grid, float(detail), s.path.name, split[s.path])
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
