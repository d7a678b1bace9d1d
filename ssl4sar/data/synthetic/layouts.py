"""The two labelled/unlabelled dataset layouts: CaFFe (spec §1.1) and SSL4SAR (spec §2).

``generate_caffe``::

    sar_images/{train,test}/<stem>.png               uint8 SAR amplitude, 0 = no data
    zones/{train,test}/<stem>_zones.png              0 NA, 64 rock, 127 glacier, 254 ocean
    fronts/{train,test}/<stem>_front.png             0 / 255, the raw 1-px front
    bounding_boxes/<stem>_front_extent_coord.txt     "x,y" header + 4 corners (spec §1.4)

``generate_ssl4sar`` (the layout ``ssl4sar.data.unlabeled`` reads)::

    sar/{train,val}/S1_<Glacier>_<YYYY-MM-DD>_<k>.tif  uint8 single band, same grid as the optical image
    optical/<Glacier>_S2_<YYYY-MM-DD>.tif              uint16, 15 bands B1…B12, AOT, WVP, SCL (EPSG:3413)
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ssl4sar.data.synthetic.catalogue import (
    ARCTIC_GLACIERS,
    S2_SR_BAND_ORDER,
    SENSOR_RESOLUTION_OVERRIDES,
    SENSORS,
    TEST_GLACIERS,
    TRAIN_GLACIERS,
    ZONE_PNG_VALUES,
    season_of,
)
from ssl4sar.data.synthetic.geometry import (
    front_from_zones,
    random_geometry,
    rasterise_zones,
)
from ssl4sar.data.synthetic.optical import make_optical, polar_transform
from ssl4sar.data.synthetic.radiometry import Radiometry, make_scene
from ssl4sar.data.synthetic.writers import (
    _check_size,
    _random_date,
    _scene_rng,
    _write_csv,
    _write_marker,
    bounding_box_text,
    caffe_stem,
    write_geotiff,
    write_png,
)
from ssl4sar.domain import CAFFE_GLACIERS
from ssl4sar.io import write_text_atomic
from ssl4sar.parallel import parallel_map

log = logging.getLogger(__name__)


def caffe_scene_list(n_train: int, n_test: int, seed: int) -> list[dict[str, Any]]:
    """Metadata of the scenes ``generate_caffe`` writes: split, stem, glacier, date, sensor, resolution."""
    rng = np.random.default_rng([int(seed), 0])
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for split, n, glaciers in (("train", n_train, TRAIN_GLACIERS), ("test", n_test, TEST_GLACIERS)):
        for i in range(n):
            glacier = glaciers[i % len(glaciers)] if i < len(glaciers) else str(rng.choice(glaciers))
            while True:
                sensor = str(rng.choice(CAFFE_GLACIERS[glacier]["sensors"]))
                spec = SENSORS[sensor]
                res = SENSOR_RESOLUTION_OVERRIDES.get((glacier, sensor), spec.resolution_m)
                date = _random_date(rng, spec.first_year, spec.last_year)
                stem = caffe_stem(glacier, date, sensor, res, int(rng.integers(1, 6)), int(rng.integers(1, 176)))
                if stem not in seen:
                    seen.add(stem)
                    break
            out.append({"split": split, "stem": stem, "glacier": glacier, "date": date, "sensor": sensor,
                        "resolution_m": res, "season": season_of(glacier, date.month),
                        "looks": spec.looks})
    return out


def _write_caffe_scene(job: tuple[Any, ...]) -> dict[str, Any]:
    """Make and write scene ``i`` of :func:`generate_caffe`; its ``scenes.csv`` row."""
    out, i, meta, seed, lo, hi, looks, radiometry, na_probability = job
    rng = _scene_rng(seed, 1, i)
    shape = (int(rng.integers(lo, hi + 1)), int(rng.integers(lo, hi + 1)))
    scene_looks = meta["looks"] if looks is None else float(looks)
    scene = make_scene(rng, shape, meta["resolution_m"], meta["season"], meta["sensor"], scene_looks,
                       radiometry=radiometry, na_probability=na_probability)
    split, stem = meta["split"], meta["stem"]
    write_png(out / "sar_images" / split / f"{stem}.png", scene.sar)
    write_png(out / "zones" / split / f"{stem}_zones.png", ZONE_PNG_VALUES[scene.zones])
    write_png(out / "fronts" / split / f"{stem}_front.png", scene.front * np.uint8(255))
    margin = max(8, int(0.05 * max(shape)))
    write_text_atomic(out / "bounding_boxes" / f"{stem}_front_extent_coord.txt",
                      bounding_box_text(scene.front, margin))
    return {"stem": stem, "split": split, "glacier": meta["glacier"], "date": meta["date"].isoformat(),
            "sensor": meta["sensor"], "resolution_m": meta["resolution_m"], "season": meta["season"],
            "height": shape[0], "width": shape[1], "front_px": int(scene.front.sum()),
            "flow_angle_deg": round(math.degrees(scene.geometry.flow_angle), 3),
            "wet_snow": scene.params["wet_snow"]}


def generate_caffe(out_dir: str | Path, n_train: int = 24, n_test: int = 8,
                   scene_size: Sequence[int] = (320, 480), seed: int = 0,
                   radiometry: Radiometry = Radiometry(), na_probability: float = 0.35,  # noqa: B008 (frozen)
                   looks: float | None = None, progress: bool = True, workers: int = 1) -> Path:
    """Write a synthetic dataset in the CaFFe layout (spec §1.1) under ``out_dir``; return ``out_dir``.

    ``n_train`` scenes of the training glaciers (Crane, DBE, JAC, Jorum, SI) go to ``train``, ``n_test``
    of the test glaciers (Mapple, COL) to ``test``. Each scene's side lengths are drawn from
    ``scene_size = (min, max)`` px. ``radiometry`` sets the backscatter model, ``na_probability`` the
    chance of a no-data wedge per scene, ``looks`` the speckle's intensity looks (ENL) of every scene
    (``None``: each sensor's own, :data:`SENSORS`; more looks = less speckle, an easier task). Also writes
    ``scenes.csv`` (stem, split, glacier, date, sensor, resolution_m, season, height, width, front_px,
    flow angle). ``workers`` processes make the scenes (same files for any number).
    """
    if looks is not None and not looks > 0:
        raise ValueError(f"looks must be > 0, got {looks}")
    out = Path(out_dir)
    lo, hi = _check_size(scene_size)
    _write_marker(out, "caffe")
    jobs = [(out, i, meta, seed, lo, hi, looks, radiometry, na_probability)
            for i, meta in enumerate(caffe_scene_list(n_train, n_test, seed))]
    rows = parallel_map(_write_caffe_scene, jobs, workers, progress="synthetic CaFFe" if progress else None)
    _write_csv(out / "scenes.csv", rows)
    log.info("wrote %d synthetic CaFFe scenes to %s", len(rows), out)
    return out


def _write_unlabeled_scene(job: tuple[Any, ...]) -> dict[str, Any]:
    """Make and write SAR image ``k`` of glacier ``g`` of :func:`generate_ssl4sar`; its ``scenes.csv`` row."""
    out, seed, g, k, name, date, split, shape, geom, amplitude, resolution_m, crs, transform, radiometry = job
    srng = _scene_rng(seed, 3, g * 100000 + k)
    shift = amplitude * math.sin(2 * math.pi * date.timetuple().tm_yday / 365.25) \
        - 0.02 * min(shape) * resolution_m * (date.year - 2016)
    scene = make_scene(srng, shape, resolution_m, season_of(name, date.month), "S1", geometry=geom,
                       front_shift_m=shift, na_probability=0.25, radiometry=radiometry)
    fname = f"S1_{name}_{date.isoformat()}_{k}.tif"
    write_geotiff(out / "sar" / split / fname, scene.sar, crs, transform, nodata=0)
    return {"file": f"sar/{split}/{fname}", "glacier": name, "date": date.isoformat(), "split": split,
            "height": shape[0], "width": shape[1], "front_shift_m": round(shift, 3), "season": scene.season}


def generate_ssl4sar(out_dir: str | Path, n_sar: int = 16, seed: int = 0, n_glaciers: int = 3,
                     scene_size: Sequence[int] = (320, 480), val_fraction: float = 0.2,
                     resolution_m: float = 20.0, crs: str = "EPSG:3413",
                     radiometry: Radiometry = Radiometry(),  # noqa: B008 (frozen)
                     workers: int = 1) -> Path:
    """Write a synthetic SSL4SAR-layout dataset (spec §2) under ``out_dir``; return ``out_dir``.

    ``n_glaciers`` Arctic glaciers, each with one 15-band optical GeoTIFF
    ``optical/<Glacier>_S2_<date>.tif`` and ``n_sar`` Sentinel-1-like uint8 GeoTIFFs spread over the
    glaciers, ``sar/{train,val}/S1_<Glacier>_<date>_<k>.tif`` (about ``val_fraction`` of each glacier's
    dates go to ``val``, at least one when the glacier has ≥ 2). Every SAR image lies on exactly the
    grid (CRS ``crs``, transform, shape) of its glacier's optical image; the front moves between dates.
    Also writes ``scenes.csv``. ``workers`` processes make the SAR images (same files for any number).
    """
    out = Path(out_dir)
    lo, hi = _check_size(scene_size)
    if n_glaciers < 1 or n_glaciers > len(ARCTIC_GLACIERS):
        raise ValueError(f"n_glaciers must be in 1..{len(ARCTIC_GLACIERS)}, got {n_glaciers}")
    names = list(ARCTIC_GLACIERS)[:n_glaciers]
    _write_marker(out, "ssl4sar")
    jobs: list[tuple[Any, ...]] = []
    per_glacier = [n_sar // n_glaciers + (1 if g < n_sar % n_glaciers else 0) for g in range(n_glaciers)]
    for g, name in enumerate(names):
        rng = _scene_rng(seed, 2, g)
        shape = (int(rng.integers(lo, hi + 1)), int(rng.integers(lo, hi + 1)))
        geom = random_geometry(rng, shape, resolution_m)
        for _ in range(20):   # make sure the fjord shows a front at the reference position
            z, _fr = rasterise_zones(geom)
            if front_from_zones(z).sum() >= 0.15 * min(shape):
                break
            geom = random_geometry(rng, shape, resolution_m)
        lat, lon = ARCTIC_GLACIERS[name]
        transform = polar_transform(lat, lon, shape, resolution_m, crs)
        opt_date = dt.date(int(rng.integers(2017, 2021)), int(rng.integers(6, 9)), int(rng.integers(1, 29)))
        zones, _ = rasterise_zones(geom.with_front(geom.front_px + float(rng.normal(0, 0.03)) * min(shape)))
        optical = make_optical(rng, zones, geom)
        write_geotiff(out / "optical" / f"{name}_S2_{opt_date.isoformat()}.tif", optical, crs, transform,
                      band_names=S2_SR_BAND_ORDER)
        n = per_glacier[g]
        n_val = 0 if n < 2 else max(1, int(round(val_fraction * n)))
        dates = sorted({_random_date(rng, 2016, 2021) for _ in range(4 * n + 4)})
        pick = sorted(rng.choice(len(dates), size=n, replace=False)) if n <= len(dates) else range(len(dates))
        dates = [dates[i] for i in pick]
        amplitude = float(rng.uniform(0.03, 0.08)) * min(shape) * resolution_m
        jobs += [(out, seed, g, k, name, date, "val" if k >= n - n_val else "train", shape, geom, amplitude,
                  resolution_m, crs, transform, radiometry) for k, date in enumerate(dates)]
    rows = parallel_map(_write_unlabeled_scene, jobs, workers)
    _write_csv(out / "scenes.csv", rows)
    log.info("wrote %d synthetic SSL4SAR SAR images of %d glaciers to %s", len(rows), n_glaciers, out)
    return out
