"""One glacier's georeferenced SAR scenes over many dates with a known moving front (EPSG:32622, 20 m)::

    sar/<stem>.tif  zones/<stem>_zones.tif  fronts/<stem>_front.tif  fronts/<stem>_front.geojson
    truth.csv  reference_box.geojson  centreline.geojson
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from ssl4sar.config import paper_preset
from ssl4sar.data.synthetic.catalogue import (
    ARCTIC_GLACIERS,
    season_of,
)
from ssl4sar.data.synthetic.geometry import (
    FjordGeometry,
    _profiles,
    profile_grid,
    profile_length,
    random_geometry,
)
from ssl4sar.data.synthetic.noise import fractal_noise_1d
from ssl4sar.data.synthetic.optical import polar_transform
from ssl4sar.data.synthetic.radiometry import make_scene
from ssl4sar.data.synthetic.writers import (
    _scene_rng,
    _write_csv,
    _write_marker,
    caffe_stem,
    write_geotiff,
)
from ssl4sar.io import write_json_atomic

log = logging.getLogger(__name__)


def generate_time_series(out_dir: str | Path, n_dates: int = paper_preset().synthetic.n_dates, seed: int = 0,
                         shape: tuple[int, int] = (384, 384), resolution_m: float = 20.0,
                         crs: str = "EPSG:32622", glacier: str = "JAC", start: dt.date = dt.date(2019, 1, 5),
                         interval_days: int = 24, seasonal_amplitude_m: float = 600.0,
                         trend_m_per_year: float = -400.0, noise_m: float = 60.0) -> Path:
    """One glacier's georeferenced SAR scenes over ``n_dates`` dates with a known moving front.

    The fjord is fixed; the front profile moves along the flow by
    ``p(t) = A·sin(2π t/1 yr) + trend·t + noise`` metres (A = ``seasonal_amplitude_m``), with a small
    zero-mean (over the reference box) change of its shape per date. Writes under ``out_dir``:

    * ``sar/<stem>.tif`` single-band uint8 (0 = no data), ``zones/<stem>_zones.tif`` class ids 0–3,
      ``fronts/<stem>_front.tif`` 0/255 and ``fronts/<stem>_front.geojson`` (the analytic front line),
      all on one grid: CRS ``crs`` (default UTM 22N), north-up, ``resolution_m`` m pixels;
      stems are CaFFe-style ``<glacier>_<date>_S1_<res>_1_<orbit>``;
    * ``truth.csv``: date, stem, ``position_m`` (front position along the flow relative to the first date),
      ``flow_x, flow_y`` (unit flow vector in map coordinates) and the reference box corners
      ``box_x1, box_y1 … box_x4, box_y4`` (map coordinates, a rectangle across the fjord whose along-flow
      extent contains every front);
    * ``reference_box.geojson`` (Polygon) and ``centreline.geojson`` (LineString along the flow through
      the box centre), with the CRS named in a ``crs`` member.

    The glacier area inside the box divided by the box width changes exactly by ``position_m`` up to
    rasterisation (pixel-scale raggedness of the front).
    """
    out = Path(out_dir)
    if n_dates < 1:
        raise ValueError(f"n_dates must be >= 1, got {n_dates}")
    _write_marker(out, "timeseries")
    rng = _scene_rng(seed, 4, 0)
    h, w = int(shape[0]), int(shape[1])
    m = float(min(h, w))
    geom = random_geometry(rng, (h, w), resolution_m)
    geom = dataclasses.replace(geom, axis_curvature=0.0, axis_wiggle=0.0, widening=0.0, tributaries=(),
                               edge_rough_px=0.4,
                               half_width_px=float(rng.uniform(0.26, 0.34)) * m,
                               front_px=-0.05 * m, mouth_px=0.5 * m,
                               front_bulge_px=float(rng.uniform(0.0, 0.2)) * 0.3 * m)
    lat, lon = (69.17, -49.80) if crs == "EPSG:32622" else ARCTIC_GLACIERS["Jakobshavn"]
    transform = polar_transform(lat, lon, (h, w), resolution_m, crs)
    days = np.arange(n_dates) * interval_days
    t_years = days / 365.25
    pos = seasonal_amplitude_m * np.sin(2 * np.pi * t_years) + trend_m_per_year * t_years \
        + rng.normal(0.0, noise_m, n_dates)
    pos = pos - pos[0]
    # Reference box in fjord coordinates (px): across the fjord inside its walls, along the flow
    # around all fronts (bulge and roughness included).
    span = np.abs(pos).max() / resolution_m
    u_lo = geom.front_px + pos.min() / resolution_m - 0.08 * m - 4
    u_hi = geom.front_px + pos.max() / resolution_m + geom.front_bulge_px + 0.08 * m + 4
    v_half = 0.55 * geom.half_width_px - 2 * geom.wall_rough_px
    if v_half < 4:
        raise RuntimeError("fjord too narrow for a reference box; change the seed or shape")
    n_prof = profile_length((h, w))
    grid = profile_grid((h, w))
    in_box_v = np.abs(grid) <= v_half
    rows = []
    drow, dcol = geom.flow_direction
    a, b, d, e = transform.a, transform.b, transform.d, transform.e
    fx, fy = a * dcol + b * drow, d * dcol + e * drow
    norm = math.hypot(fx, fy)
    flow_xy = (fx / norm, fy / norm)
    corners_px = [(u_lo, -v_half), (u_lo, v_half), (u_hi, v_half), (u_hi, -v_half)]
    corners_map = [_fjord_to_map(geom, transform, uu, vv) for uu, vv in corners_px]
    for i in range(n_dates):
        date = start + dt.timedelta(days=int(days[i]))
        srng = _scene_rng(seed, 5, i)
        shape_date = fractal_noise_1d(srng, n_prof, 2.0, 0.3 * n_prof, beta=1.8) * geom.front_rough_px * 0.5
        shape_date -= shape_date[in_box_v].mean()
        scene = make_scene(srng, (h, w), resolution_m, season_of(glacier, date.month), "S1", geometry=geom,
                           front_shift_m=float(pos[i]), na_probability=0.0, front_shape_date=shape_date)
        stem = caffe_stem(glacier, date, "S1", resolution_m, 1, 25 + 150 * (i % 2))
        write_geotiff(out / "sar" / f"{stem}.tif", scene.sar, crs, transform, nodata=0)
        write_geotiff(out / "zones" / f"{stem}_zones.tif", scene.zones, crs, transform)
        write_geotiff(out / "fronts" / f"{stem}_front.tif", scene.front * np.uint8(255), crs, transform)
        line = _front_line_map(scene.geometry, transform, shape_date, grid, v_half * 1.6)
        write_json_atomic(out / "fronts" / f"{stem}_front.geojson", _geojson(
            "LineString", line, crs, {"date": date.isoformat(), "position_m": round(float(pos[i]), 4)}))
        row = {"date": date.isoformat(), "stem": stem, "position_m": round(float(pos[i]), 4),
               "flow_x": round(flow_xy[0], 8), "flow_y": round(flow_xy[1], 8)}
        for j, (x, y) in enumerate(corners_map, start=1):
            row[f"box_x{j}"], row[f"box_y{j}"] = round(x, 3), round(y, 3)
        rows.append(row)
    _write_csv(out / "truth.csv", rows)
    write_json_atomic(out / "reference_box.geojson",
                      _geojson("Polygon", [corners_map + [corners_map[0]]], crs, {"glacier": glacier}))
    c0 = _fjord_to_map(geom, transform, u_lo - 0.1 * m, 0.0)
    c1 = _fjord_to_map(geom, transform, u_hi + 0.1 * m, 0.0)
    write_json_atomic(out / "centreline.geojson", _geojson("LineString", [c0, c1], crs, {"glacier": glacier}))
    log.info("wrote a %d-date synthetic time series (front span %.0f m) to %s", n_dates, span * resolution_m, out)
    return out


def _fjord_to_map(geom: FjordGeometry, transform: Any, u: float, v: float) -> tuple[float, float]:
    """Fjord coordinates (px, straight axis, no axis noise) → map coordinates of the pixel-centre grid."""
    h, w = geom.shape
    s, c = math.sin(geom.flow_angle), math.cos(geom.flow_angle)
    v = v + geom.axis_offset_px
    col = u * c - v * s + (w - 1) / 2.0 + 0.5
    row = u * s + v * c + (h - 1) / 2.0 + 0.5
    x, y = transform @ (col, row)
    return float(x), float(y)


def _front_line_map(geom: FjordGeometry, transform: Any, shape_date: np.ndarray, grid: np.ndarray,
                    v_half: float) -> list[tuple[float, float]]:
    """The analytic front u(v) across ``|v| ≤ v_half`` as map coordinates (every 0.5 px)."""
    radius = 0.5 * math.hypot(*geom.shape)
    _, (_, _, _, front_n) = _profiles(geom)
    hw_f = max(geom.half_width_px * (1.0 + geom.widening * geom.front_px / radius), 1.0)
    vs = np.arange(-v_half, v_half + 1e-9, 0.5)
    us = geom.front_px + geom.front_bulge_px * (1 - np.clip(vs / hw_f, -1, 1) ** 2) \
        + np.interp(vs, grid, front_n) * geom.front_rough_px + np.interp(vs, grid, shape_date)
    return [_fjord_to_map(geom, transform, float(uu), float(vv)) for uu, vv in zip(us, vs)]


def _geojson(kind: str, coords: Any, crs: str, props: dict[str, Any]) -> dict[str, Any]:
    def rnd(obj: Any) -> Any:
        if isinstance(obj, tuple | list):
            return [rnd(o) for o in obj]
        return round(float(obj), 3)

    return {"type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": crs}},
            "features": [{"type": "Feature", "properties": props,
                          "geometry": {"type": kind, "coordinates": rnd(coords)}}]}
