"""Procedural glacier scenes written in the CaFFe and SSL4SAR layouts, plus a georeferenced time series.

The book's default run, CI and the tests train and evaluate on this data, so the scenes imitate what
makes calving-front extraction hard in real SAR imagery:

* **Geometry** (:class:`FjordGeometry`): a fjord with rough rock walls on both sides, possibly curved and
  widening towards a mouth that opens onto the sea; a glacier tongue flowing down the fjord (any
  direction, the front is not axis-aligned) ending in a bulging, fractal calving front; sometimes a
  tributary glacier joining from the side; sometimes a no-data wedge (class NA, SAR value 0) cut off a
  corner or border.
* **Labels**: ``zones`` with the CaFFe class ids (0 NA, 1 rock, 2 glacier, 3 ocean and ice mélange) and
  ``front`` = ocean pixels with a 4-neighbour glacier pixel, exactly the rule of the post-processing
  (spec §7.2 step 3). The zones are made a fixed point of §7.2 steps 1–2 (one non-ocean component, one
  ocean component), so that post-processing the ground-truth zones returns the ground-truth front.
* **Radiometry**: class-dependent backscatter σ⁰ (dB) — rock bright-ish with topographic
  foreshortening/shadow and texture; dry (winter) glacier bright, wet-snow (summer) glacier dark;
  crevasse fields (transverse near the front, shear crevasses near the walls, flow-parallel foliation
  upstream); open water dark with wind modulation, sometimes wind-roughened; ice mélange bright and
  clumpy near the front, icebergs as bright blobs; a bright ice cliff or its shadow along the front
  depending on the look direction. Multiplicative gamma speckle with a configurable number of looks
  (intensity ENL), then 8-bit amplitude scaling with saturation like CaFFe's amplitude PNGs (0 is kept
  for no data; valid pixels are 1–255).
* **Metadata**: CaFFe glaciers (train: Crane, DBE, JAC, Jorum, SI; test: Mapple, COL), sensors with their
  pixel spacing (spec §1.2: S1/ERS/ENVISAT 20 m, PALSAR 17 m, RSAT 12 m, TSX 6–7 m, TDX 7 m) and their
  years of operation, months drive the season through the hemisphere rule of spec §8.4 (summer → wet snow).

Layouts written (all files deterministic: same seed → byte-identical files, no timestamps):

``generate_caffe``  (spec §1.1)::

    sar_images/{train,test}/<stem>.png               uint8 SAR amplitude, 0 = no data
    zones/{train,test}/<stem>_zones.png              0 NA, 64 rock, 127 glacier, 254 ocean
    fronts/{train,test}/<stem>_front.png             0 / 255, the raw 1-px front
    bounding_boxes/<stem>_front_extent_coord.txt     "x,y" header + 4 corners (spec §1.4)

``generate_ssl4sar`` (spec §2; the layout ``ssl4sar.data.unlabeled`` reads)::

    sar/{train,val}/S1_<Glacier>_<YYYY-MM-DD>_<k>.tif  uint8 single band, same grid as the optical image
    optical/<Glacier>_S2_<YYYY-MM-DD>.tif              uint16, 15 bands B1…B12, AOT, WVP, SCL (EPSG:3413)

``generate_time_series``::

    sar/<stem>.tif  zones/<stem>_zones.tif  fronts/<stem>_front.tif  fronts/<stem>_front.geojson
    truth.csv  reference_box.geojson  centreline.geojson  (EPSG:32622, 20 m pixels)

``generate`` runs the layouts named in a preset's ``synthetic`` section and writes ``synthetic.json``.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import functools
import io
import json
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from scipy import fft as sfft
from scipy import ndimage as ndi

from ssl4sar.config import paper_preset
from ssl4sar.domain import (  # re-exported: the class and glacier facts live in ssl4sar.domain
    CAFFE_GLACIERS,
    CLASS_TO_ZONE_VALUE,
    GLACIER,
    NA,
    OCEAN,
    ROCK,
    season_in,
)
from ssl4sar.errors import DataError
from ssl4sar.io import atomic_path, write_bytes_atomic, write_json_atomic, write_text_atomic

log = logging.getLogger(__name__)

GENERATOR_VERSION = "1.0"
#: Marker file written first into every layout folder: identifies folders this generator may replace.
LAYOUT_MARKER = ".ssl4sar-synthetic"

#: PNG pixel values of the CaFFe class ids (spec §1.3), as a lookup array.
ZONE_PNG_VALUES = np.array(CLASS_TO_ZONE_VALUE, dtype=np.uint8)

TRAIN_GLACIERS = tuple(g for g, v in CAFFE_GLACIERS.items() if v["split"] == "train")
TEST_GLACIERS = tuple(g for g, v in CAFFE_GLACIERS.items() if v["split"] == "test")


@dataclass(frozen=True)
class SensorSpec:
    """A SAR sensor: pixel spacing (m/px) as in CaFFe file names, intensity looks (ENL), years flown."""

    name: str
    resolution_m: float
    looks: float
    first_year: int
    last_year: int


#: Sensors of spec §1.2 with CaFFe pixel spacings. ``looks`` is the intensity ENL of the product
#: (S1 GRD ≈ 4.4; ERS/ENVISAT PRI/IMP 3; PALSAR ≈ 2; RADARSAT-1 ≈ 2; TerraSAR-X/TanDEM-X 1.3, chosen so
#: that the ENL of homogeneous areas matches the real CaFFe TerraSAR-X patches, see ``data.realism``).
SENSORS: dict[str, SensorSpec] = {
    "S1": SensorSpec("S1", 20.0, 4.4, 2015, 2021),
    "ERS": SensorSpec("ERS", 20.0, 3.0, 1995, 2010),
    "ENVISAT": SensorSpec("ENVISAT", 20.0, 3.0, 2003, 2011),
    "PALSAR": SensorSpec("PALSAR", 17.0, 2.0, 2007, 2010),
    "RSAT": SensorSpec("RSAT", 12.0, 2.0, 1997, 2008),
    "TSX": SensorSpec("TSX", 7.0, 1.3, 2008, 2021),
    "TDX": SensorSpec("TDX", 7.0, 1.3, 2011, 2021),
}
#: TerraSAR-X scenes of Jakobshavn are 6 m in CaFFe (``JAC_2009-08-15_TSX_6_1_005``).
SENSOR_RESOLUTION_OVERRIDES = {("JAC", "TSX"): 6.0}

#: Sentinel-2 band order of the optical GeoTIFFs (GEE ``COPERNICUS/S2_SR``), spec §2.2.
S2_SR_BAND_ORDER = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B11", "B12",
                    "AOT", "WVP", "SCL")

#: Arctic glaciers of the synthetic SSL4SAR set: approximate front location (lat, lon in degrees).
ARCTIC_GLACIERS: dict[str, tuple[float, float]] = {
    "Jakobshavn": (69.17, -49.80),
    "Helheim": (66.35, -38.20),
    "Kangerlussuaq": (68.63, -32.90),
    "Upernavik": (72.90, -54.30),
    "Petermann": (80.60, -60.50),
    "Humboldt": (79.60, -64.50),
    "Rink": (71.75, -51.60),
    "Columbia": (61.13, -147.05),
}


def hemisphere(glacier: str) -> Literal["north", "south"]:
    """Hemisphere of a glacier: CaFFe codes per spec §8.4 (COL and JAC north, all others south); the
    synthetic SSL4SAR glaciers (:data:`ARCTIC_GLACIERS`) are northern."""
    info = CAFFE_GLACIERS.get(glacier)
    if info is not None:
        return info["hemisphere"]
    return "north" if glacier in ARCTIC_GLACIERS else "south"


def season_of(glacier: str, month: int) -> Literal["winter", "summer"]:
    """Season at a CaFFe or synthetic SSL4SAR glacier (:func:`hemisphere`) by the rule of spec §8.4
    (:func:`ssl4sar.domain.season_in`)."""
    return season_in(hemisphere(glacier), month)


# ---------------------------------------------------------------------------------------------------
# Noise fields (spectral synthesis, one FFT per field)
# ---------------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=16)
def _freq_grid(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frequencies (cycles/px) of a real 2-D FFT of ``shape``: ``ky`` (H, 1), ``kx`` (1, W//2+1), |k|."""
    ky = sfft.fftfreq(shape[0]).astype(np.float32)[:, None]
    kx = sfft.rfftfreq(shape[1]).astype(np.float32)[None, :]
    k = np.sqrt(ky**2 + kx**2)
    k[0, 0] = 1.0
    return ky, kx, k


def _normalise(a: np.ndarray) -> np.ndarray:
    """``a`` shifted and scaled to zero mean and unit standard deviation, float32."""
    a = np.asarray(a, dtype=np.float32)
    mean = float(a.mean(dtype=np.float64))
    std = float(a.std(dtype=np.float64))
    out = a - np.float32(mean)
    if std > 0:
        out *= np.float32(1.0 / std)
    return out


def _fast_shape(shape: tuple[int, int]) -> tuple[int, int]:
    """The smallest shape ≥ ``shape`` whose sides have only small prime factors (fast FFTs)."""
    return (sfft.next_fast_len(int(shape[0]), real=True), sfft.next_fast_len(int(shape[1]), real=True))


@dataclass(frozen=True)
class _Filter:
    """An rfft2 filter ``amp`` on an FFT ``grid`` and the block (``rows``, first ``cols`` columns) of
    frequencies where it is not negligible (> 1e-4 · max)."""

    grid: tuple[int, int]
    amp: np.ndarray
    rows: np.ndarray
    cols: int
    amp_block: np.ndarray   # amp[rows, :cols]
    full: bool              # the block is the whole filter


def _make_filter(grid: tuple[int, int], amp: np.ndarray) -> _Filter:
    big = amp > 1e-4 * float(amp.max()) if amp.size and amp.max() > 0 else np.zeros(amp.shape, bool)
    rows = np.flatnonzero(big.any(axis=1))
    cols = int(np.flatnonzero(big.any(axis=0)).max()) + 1 if big.any() else 1
    if rows.size == 0:
        rows = np.array([0])
    full = rows.size == amp.shape[0] and cols == amp.shape[1]
    block = np.ascontiguousarray(amp[rows, :cols])
    for a in (amp, block):
        a.flags.writeable = False
    return _Filter(grid, amp, rows, cols, block, full)


def _filtered_white(rng: np.random.Generator, shape: tuple[int, int], filt: _Filter) -> np.ndarray:
    """White noise filtered by ``filt`` on its FFT grid, cropped to ``shape``, zero mean, unit std.

    The white-noise spectrum is drawn directly as complex Gaussian coefficients, and only inside the
    block of frequencies where the filter is not negligible (large-scale fields cost little).
    """
    rows, cols = filt.rows, filt.cols
    coef = rng.standard_normal((rows.size, 2 * cols), dtype=np.float32).view(np.complex64)
    coef *= filt.amp_block
    if filt.full:
        spec = coef
    else:
        spec = np.zeros(filt.amp.shape, dtype=np.complex64)
        spec[rows, :cols] = coef
    return _normalise(sfft.irfft2(spec, s=filt.grid)[: shape[0], : shape[1]])


@functools.lru_cache(maxsize=48)
def _power_law_filter(shape: tuple[int, int], min_scale_px: float, max_scale_px: float, beta: float) -> _Filter:
    _, _, k = _freq_grid(shape)
    amp = k ** np.float32(-beta / 2.0)
    amp *= np.exp(-np.square(k * np.float32(max(min_scale_px, 0.5))) * np.float32(0.5))
    amp *= 1.0 - np.exp(-np.square(k * np.float32(max_scale_px)) * np.float32(0.5))
    amp[0, 0] = 0.0
    return _make_filter(shape, amp)


def fractal_noise(rng: np.random.Generator, shape: tuple[int, int], min_scale_px: float,
                  max_scale_px: float, beta: float = 3.0) -> np.ndarray:
    """Zero-mean, unit-std power-law noise (power ∝ k^-beta) with features between the two scales (px).

    Layout (H, W) float32. Equivalent to a sum of octaves between ``min_scale_px`` and ``max_scale_px``;
    periodic at the borders of the FFT grid (a little larger than ``shape``).
    """
    shape = (int(shape[0]), int(shape[1]))
    filt = _power_law_filter(_fast_shape(shape), round(min_scale_px, 2), round(max_scale_px, 2), beta)
    return _filtered_white(rng, shape, filt)


@functools.lru_cache(maxsize=32)
def _oriented_filter(shape: tuple[int, int], angle: float, wavelength_px: float, bandwidth: float,
                     elongation: float) -> _Filter:
    ky, kx, _ = _freq_grid(shape)
    k0 = np.float32(1.0 / max(wavelength_px, 2.0))
    kp = kx * np.float32(math.cos(angle)) + ky * np.float32(math.sin(angle))
    kq = -kx * np.float32(math.sin(angle)) + ky * np.float32(math.cos(angle))
    amp = np.exp(-0.5 * np.square((np.abs(kp) - k0) / (bandwidth * k0))
                 - 0.5 * np.square(kq / (k0 / elongation))).astype(np.float32)
    amp[0, 0] = 0.0
    return _make_filter(shape, amp)


def oriented_noise(rng: np.random.Generator, shape: tuple[int, int], angle: float,
                   wavelength_px: float, bandwidth: float = 0.35, elongation: float = 6.0) -> np.ndarray:
    """Zero-mean unit-std streak texture: ridges whose *normal* points along ``angle`` (radians, in
    (row, col) = (sin, cos) convention), spaced ~``wavelength_px`` px, ridges ~``elongation`` × longer
    than their spacing. Layout (H, W) float32. Used for crevasses, foliation and wind rows.
    """
    shape = (int(shape[0]), int(shape[1]))
    filt = _oriented_filter(_fast_shape(shape), round(angle % (2 * math.pi), 4), round(wavelength_px, 2),
                            bandwidth, elongation)
    return _filtered_white(rng, shape, filt)


def fractal_noise_1d(rng: np.random.Generator, n: int, min_scale: float, max_scale: float,
                     beta: float = 2.0) -> np.ndarray:
    """1-D zero-mean unit-std power-law noise of length ``n`` (scales in samples). float64 (n,)."""
    n = max(int(n), 8)
    k = sfft.rfftfreq(n)
    k[0] = 1.0
    amp = k ** (-beta / 2.0) * np.exp(-0.5 * (k * min_scale) ** 2) * (1.0 - np.exp(-0.5 * (k * max_scale) ** 2))
    amp[0] = 0.0
    out = sfft.irfft(sfft.rfft(rng.standard_normal(n)) * amp, n=n)
    out -= out.mean()
    s = out.std()
    return out / s if s > 0 else out


# ---------------------------------------------------------------------------------------------------
# Geometry
# ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Tributary:
    """A side glacier: a band of ice along a ray from a wall point, in fjord coordinates (px)."""

    u0_px: float          # along-flow position where it joins the main glacier
    side: int             # +1 left wall (v > 0), -1 right wall
    angle: float          # angle of the ray against the upstream direction (radians, 0.3–1.2)
    half_width_px: float


@dataclass(frozen=True)
class FjordGeometry:
    """Geometry of one glacier scene, in pixels of an (H, W) grid.

    Fjord coordinates: ``u`` along the flow (px from the image centre), ``v`` across it (positive to the
    left of the flow); the flow direction in (row, col) is ``(sin(flow_angle), cos(flow_angle))``.
    ``noise_seed`` seeds the wall/front-shape noise, so one geometry re-rasterised with another
    ``front_px`` gives the same fjord with a moved front.
    """

    shape: tuple[int, int]
    resolution_m: float
    flow_angle: float
    axis_offset_px: float
    axis_curvature: float
    axis_wiggle: float
    half_width_px: float
    widening: float
    mouth_px: float
    mouth_opening: float
    wall_rough_px: float
    front_px: float
    front_bulge_px: float
    front_rough_px: float
    edge_rough_px: float
    tributaries: tuple[Tributary, ...]
    noise_seed: int

    @property
    def flow_direction(self) -> tuple[float, float]:
        """Unit flow vector in image axes (d_row, d_col)."""
        return (math.sin(self.flow_angle), math.cos(self.flow_angle))

    def with_front(self, front_px: float) -> FjordGeometry:
        return dataclasses.replace(self, front_px=float(front_px))


def random_geometry(rng: np.random.Generator, shape: tuple[int, int], resolution_m: float,
                    flow_angle: float | None = None) -> FjordGeometry:
    """Draw a random fjord geometry for an (H, W) grid of ``resolution_m`` m/px."""
    h, w = shape
    m = float(min(h, w))
    radius = 0.5 * math.hypot(h, w)
    angle = float(rng.uniform(0, 2 * math.pi)) if flow_angle is None else float(flow_angle)
    half_width = float(rng.uniform(0.2, 0.36)) * m
    front = float(rng.uniform(-0.18, 0.18)) * radius
    tribs = []
    if rng.random() < 0.45:
        tribs.append(Tributary(u0_px=front - float(rng.uniform(0.3, 0.9)) * radius,
                               side=int(rng.choice([-1, 1])), angle=float(rng.uniform(0.35, 1.1)),
                               half_width_px=float(rng.uniform(0.05, 0.1)) * m))
    return FjordGeometry(
        shape=(int(h), int(w)), resolution_m=float(resolution_m), flow_angle=angle,
        axis_offset_px=float(rng.uniform(-0.12, 0.12)) * m,
        axis_curvature=float(rng.uniform(-0.25, 0.25)), axis_wiggle=float(rng.uniform(0.0, 0.05)),
        half_width_px=half_width, widening=float(rng.uniform(0.0, 0.35)),
        mouth_px=front + float(rng.uniform(0.25, 0.9)) * radius, mouth_opening=float(rng.uniform(0.5, 1.5)),
        wall_rough_px=float(rng.uniform(0.015, 0.045)) * m,
        front_px=front, front_bulge_px=float(rng.uniform(-0.1, 0.35)) * half_width,
        front_rough_px=float(rng.uniform(0.03, 0.09)) * half_width,
        edge_rough_px=float(rng.uniform(0.8, 2.0)),
        tributaries=tuple(tribs), noise_seed=int(rng.integers(0, 2**31 - 1)),
    )


def _profiles(geom: FjordGeometry) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """The 1-D noise profiles of a geometry (axis, left wall, right wall, front shape) on their grid (px)."""
    radius = 0.5 * math.hypot(*geom.shape)
    nrng = np.random.default_rng(geom.noise_seed)
    n = profile_length(geom.shape)
    axis_noise = fractal_noise_1d(nrng, n, 0.2 * radius, 2.0 * radius)
    wall_l = fractal_noise_1d(nrng, n, 5.0, 0.6 * radius, beta=3.4)
    wall_r = fractal_noise_1d(nrng, n, 5.0, 0.6 * radius, beta=3.4)
    front_n = fractal_noise_1d(nrng, n, 2.5, 0.4 * radius, beta=3.0)
    return profile_grid(geom.shape), (axis_noise, wall_l, wall_r, front_n)


def profile_length(shape: tuple[int, int]) -> int:
    """Number of samples of the 1-D profiles of a scene of ``shape`` (covers its diagonal)."""
    return int(math.hypot(shape[0], shape[1])) + 8


def profile_grid(shape: tuple[int, int]) -> np.ndarray:
    """Coordinates (px, centred on 0) of the samples of the 1-D profiles of a scene of ``shape``."""
    n = profile_length(shape)
    return np.arange(n, dtype=np.float64) - n / 2.0


@dataclass
class _Frame:
    """Per-pixel fjord coordinates and distances (float32 (H, W) arrays, px)."""

    u: np.ndarray
    v: np.ndarray              # across-flow coordinate relative to the (curved) fjord axis
    wall_dist: np.ndarray      # distance inside the fjord to the nearest wall (negative in rock)
    front_u: np.ndarray        # along-flow position of the front at each pixel's v
    in_fjord: np.ndarray       # bool


def _frame(geom: FjordGeometry, front_shape_date: np.ndarray | None = None,
           edge_rng: np.random.Generator | None = None) -> _Frame:
    h, w = geom.shape
    radius = 0.5 * math.hypot(h, w)
    rows = np.arange(h, dtype=np.float32)[:, None] - (h - 1) / 2.0
    cols = np.arange(w, dtype=np.float32)[None, :] - (w - 1) / 2.0
    s, c = math.sin(geom.flow_angle), math.cos(geom.flow_angle)
    u = cols * c + rows * s
    v = -cols * s + rows * c
    grid, (axis_noise, wall_l, wall_r, front_n) = _profiles(geom)

    def at(profile: np.ndarray, x: np.ndarray) -> np.ndarray:
        return np.interp(x.ravel(), grid, profile).reshape(x.shape).astype(np.float32)

    # Pixel-scale raggedness of every boundary (new each acquisition when edge_rng is given).
    erng = edge_rng if edge_rng is not None else np.random.default_rng(geom.noise_seed + 1)
    edge = fractal_noise(erng, (h, w), 1.0, 12.0, beta=2.5) * geom.edge_rough_px
    uu = u + edge
    axis = geom.axis_offset_px + geom.axis_curvature * (u / radius) ** 2 * radius * 0.5 \
        + at(axis_noise, u) * geom.axis_wiggle * radius
    vv = v - axis + edge
    hw = geom.half_width_px * (1.0 + geom.widening * u / radius)
    hw = hw + np.maximum(u - geom.mouth_px, 0.0) * geom.mouth_opening
    hw = np.maximum(hw, 0.05 * min(h, w)).astype(np.float32)
    left = hw + at(wall_l, u) * geom.wall_rough_px
    right = hw + at(wall_r, u) * geom.wall_rough_px
    wall_dist = np.minimum(left - vv, right + vv)
    in_fjord = wall_dist > 0
    hw_f = max(geom.half_width_px * (1.0 + geom.widening * geom.front_px / radius), 1.0)
    shape_v = geom.front_bulge_px * (1.0 - np.clip(vv / hw_f, -1.0, 1.0) ** 2) \
        + at(front_n, vv) * geom.front_rough_px
    if front_shape_date is not None:
        shape_v = shape_v + at(front_shape_date, vv)
    front_u = (geom.front_px + shape_v).astype(np.float32)
    return _Frame(u=uu.astype(np.float32), v=vv.astype(np.float32),
                  wall_dist=wall_dist.astype(np.float32), front_u=front_u, in_fjord=in_fjord)


def _tributary_mask(geom: FjordGeometry, fr: _Frame) -> np.ndarray:
    mask = np.zeros(geom.shape, dtype=bool)
    for t in geom.tributaries:
        # Ray from the wall point (u0, side·hw) pointing upstream and outward.
        d_u, d_v = -math.cos(t.angle), t.side * math.sin(t.angle)
        du = fr.u - t.u0_px
        dv = fr.v - t.side * 0.8 * geom.half_width_px
        along = du * d_u + dv * d_v
        across = np.abs(-du * d_v + dv * d_u)
        mask |= (along > 0) & (across < t.half_width_px * (1.0 + 0.3 * np.tanh(along / (4 * t.half_width_px))))
    return mask


def _na_mask(rng: np.random.Generator, shape: tuple[int, int], probability: float) -> np.ndarray:
    """A no-data wedge cut off a random corner or border (SAR swath edge), or nothing."""
    h, w = shape
    if rng.random() >= probability:
        return np.zeros(shape, dtype=bool)
    rows = np.arange(h, dtype=np.float32)[:, None]
    cols = np.arange(w, dtype=np.float32)[None, :]
    ang = float(rng.uniform(0, 2 * math.pi))
    n_r, n_c = math.sin(ang), math.cos(ang)
    proj = rows * n_r + cols * n_c
    frac = float(rng.uniform(0.03, 0.25))
    thr = np.quantile(proj, 1.0 - frac)
    jag = fractal_noise(rng, shape, 1.0, 6.0) * 0.6 if rng.random() < 0.5 else 0.0
    return (proj + jag) > thr


def _component_cleanup(zones: np.ndarray) -> np.ndarray:
    """Make ``zones`` a fixed point of spec §7.2 steps 1–2.

    Non-ocean components (8-connectivity) other than the largest become ocean (islands, detached bits);
    each pixel of an ocean component other than the largest takes the class of its nearest non-ocean
    pixel (a lake in the rock stays rock, a pocket in the glacier becomes glacier).
    """
    eight = np.ones((3, 3), dtype=bool)
    z = zones.copy()
    lab, n = ndi.label(z != OCEAN, structure=eight)
    if n > 1:
        sizes = np.bincount(lab.ravel())
        sizes[0] = 0
        z[(lab > 0) & (lab != int(sizes.argmax()))] = OCEAN
    lab, n = ndi.label(z == OCEAN, structure=eight)
    if n > 1:
        sizes = np.bincount(lab.ravel())
        sizes[0] = 0
        stray = (lab > 0) & (lab != int(sizes.argmax()))
        # Each stray ocean pixel takes the class of the nearest non-ocean pixel.
        _, (ri, ci) = ndi.distance_transform_edt(z == OCEAN, return_indices=True)
        z[stray] = z[ri[stray], ci[stray]]
    return z


def front_from_zones(zones: np.ndarray) -> np.ndarray:
    """Front = ocean pixels with at least one 4-neighbour glacier pixel (spec §7.2 step 3).

    ``zones`` (H, W) class ids; returns (H, W) uint8 0/1. Pixels outside the image count as not glacier.
    """
    g = np.pad(zones == GLACIER, 1, constant_values=False)
    nb = g[:-2, 1:-1] | g[2:, 1:-1] | g[1:-1, :-2] | g[1:-1, 2:]
    return ((zones == OCEAN) & nb).astype(np.uint8)


def rasterise_zones(geom: FjordGeometry, na: np.ndarray | None = None,
                    front_shape_date: np.ndarray | None = None,
                    edge_rng: np.random.Generator | None = None) -> tuple[np.ndarray, _Frame]:
    """Class ids (H, W) uint8 of a geometry (with an optional NA mask), and the fjord frame used."""
    fr = _frame(geom, front_shape_date, edge_rng)
    zones = np.full(geom.shape, ROCK, dtype=np.uint8)
    glacier = fr.in_fjord & (fr.u < fr.front_u)
    zones[fr.in_fjord] = OCEAN
    zones[glacier] = GLACIER
    trib = _tributary_mask(geom, fr) & ~fr.in_fjord & (fr.u < fr.front_u)
    zones[trib] = GLACIER
    if na is not None:
        zones[na] = NA
    return _component_cleanup(zones), fr


# ---------------------------------------------------------------------------------------------------
# Radiometry
# ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Radiometry:
    """Backscatter model parameters (σ⁰ in dB) and the 8-bit display scaling.

    ``white_db``: σ⁰ (dB) mapped to 255 in linear amplitude scaling (brighter pixels saturate);
    ``scaling="db"`` instead maps ``[black_db, white_db]`` linearly in dB to [1, 255].
    Ranges are (low, high) of uniform draws per scene.
    """

    rock_db: tuple[float, float] = (-13.0, -5.0)
    rock_topo_db: tuple[float, float] = (7.0, 12.0)
    glacier_dry_db: tuple[float, float] = (-8.0, -1.0)
    glacier_wet_db: tuple[float, float] = (-16.0, -10.0)
    crevasse_db: tuple[float, float] = (5.0, 10.0)
    water_calm_db: tuple[float, float] = (-22.0, -15.0)
    water_windy_db: tuple[float, float] = (-14.0, -8.0)
    windy_probability: float = 0.2
    melange_db: tuple[float, float] = (-7.0, -1.0)
    iceberg_db: tuple[float, float] = (-2.0, 3.0)
    texture_db: tuple[float, float] = (2.0, 4.0)
    calibration_db: tuple[float, float] = (-1.5, 1.5)
    white_db: float = 1.0
    black_db: float = -26.0
    scaling: Literal["amplitude", "db"] = "amplitude"


@dataclass
class Scene:
    """One synthetic SAR scene with its labels.

    Arrays are (H, W): ``sar`` uint8 amplitude (0 = no data), ``zones`` uint8 class ids (0 NA, 1 rock,
    2 glacier, 3 ocean), ``front`` uint8 0/1, ``sigma0_db`` float32 speckle-free backscatter (dB; NaN in
    NA). ``front_position_m``: along-flow position of the mean front line relative to the image centre
    (metres); ``flow_direction``: unit vector (d_row, d_col) in image axes.
    """

    sar: np.ndarray
    zones: np.ndarray
    front: np.ndarray
    sigma0_db: np.ndarray
    resolution_m: float
    sensor: str
    looks: float
    season: str
    geometry: FjordGeometry
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def front_position_m(self) -> float:
        return self.geometry.front_px * self.resolution_m

    @property
    def flow_direction(self) -> tuple[float, float]:
        return self.geometry.flow_direction


def _u(rng: np.random.Generator, r: tuple[float, float]) -> float:
    return float(rng.uniform(r[0], r[1]))


def _shading(height: np.ndarray, look: float) -> np.ndarray:
    """Slope of ``height`` towards the sensor (ground-range direction ``look``), unit std, float32.

    Positive = facing the sensor (foreshortening, bright), negative = facing away (dark, shadow).
    """
    gr, gc = np.gradient(height)
    s = -(gr * math.sin(look) + gc * math.cos(look))
    return (s / (s.std() + 1e-6)).astype(np.float32)


def _sigma0_db(rng: np.random.Generator, geom: FjordGeometry, fr: _Frame, zones: np.ndarray,
               front: np.ndarray, season: str, rad: Radiometry) -> tuple[np.ndarray, dict[str, Any]]:
    """Speckle-free σ⁰ (dB, float32 (H, W)) for the zones of one scene, and the drawn parameters.

    Surface relief is modelled as height fields whose slope towards the sensor modulates σ⁰ (local
    incidence angle): facets facing the sensor are bright, those facing away dark or in radar shadow.
    """
    h, w = geom.shape
    res = geom.resolution_m
    shp = (h, w)

    def px(metres: float) -> float:   # a length in metres as pixels, never below the resolution cell
        return max(metres / res, 3.0)

    # Facets smaller than the resolution cell average out: relief contrast drops at coarse resolution.
    gain = min(1.0, math.sqrt(8.0 / res))
    flow = geom.flow_angle
    look = float(rng.uniform(0, 2 * math.pi))   # ground-range look direction (towards far range)
    p: dict[str, Any] = {"look_angle": look}

    # Rock: mountains (fractal relief + ridges) shaded by the local incidence angle; radar shadow.
    relief = fractal_noise(rng, shp, px(30), px(4000), beta=4.0) \
        + 0.3 * np.abs(fractal_noise(rng, shp, px(60), px(1500), beta=3.0))
    slope = _shading(relief, look)
    topo = _u(rng, rad.rock_topo_db) * gain
    rock = _u(rng, rad.rock_db) + topo * np.tanh(0.9 * slope) \
        + 1.5 * gain * fractal_noise(rng, shp, px(50), px(800), beta=2.5)
    rock = np.where(slope < -1.6, rock - 8.0, rock)          # radar shadow behind steep slopes

    # Glacier: dry (winter) bright / wet snow (summer) dark; crevasse fields as narrow slots whose
    # walls light up or fall into shadow; long undulations of the surface.
    wet = bool(rng.random() < 0.85) and season == "summer"   # draw always: same stream both seasons
    base = _u(rng, rad.glacier_wet_db if wet else rad.glacier_dry_db)
    dist_front = np.clip(fr.front_u - fr.u, 0.0, None) * res                  # m upstream of the front
    zone_len = float(rng.uniform(1500, 6000))
    w_trans = np.exp(-dist_front / zone_len)
    wall_m = np.clip(fr.wall_dist, 0.0, None) * res
    w_shear = np.exp(-wall_m / float(rng.uniform(300, 1500))) * (1 - w_trans)
    spacing = max(float(rng.uniform(40, 200)), 5.0 * res)
    trans = oriented_noise(rng, shp, flow + float(rng.normal(0, 0.2)), px(spacing), bandwidth=0.6,
                           elongation=float(rng.uniform(2, 6)))
    shear = oriented_noise(rng, shp, flow + float(rng.choice([-1, 1])) * math.pi / 4, px(spacing * 1.3),
                           bandwidth=0.6, elongation=4.0)
    slots = np.exp(-np.square(trans / 0.45)) * w_trans + np.exp(-np.square(shear / 0.45)) * w_shear
    slots *= gain
    foliation = oriented_noise(rng, shp, flow + math.pi / 2, px(float(rng.uniform(80, 300))),
                               bandwidth=0.6, elongation=12.0)
    undulation = fractal_noise(rng, shp, px(100), px(4000), beta=3.0)
    ice_relief = -float(rng.uniform(1.0, 2.0)) * slots + 0.5 * foliation * (1 - w_trans) + 1.0 * undulation
    crev = _u(rng, rad.crevasse_db) * gain
    glacier = base + crev * np.tanh(1.5 * _shading(ice_relief, look)) + 3.0 * slots \
        + 1.5 * fractal_noise(rng, shp, px(60), px(3000), beta=2.8)
    if wet:   # the crevassed lower tongue stays brighter than the wet-snow surface
        glacier = glacier + 5.0 * w_trans

    # Ocean: open water with wind modulation; clumpy mélange and icebergs near the front.
    windy = rng.random() < rad.windy_probability
    water = _u(rng, rad.water_windy_db if windy else rad.water_calm_db) \
        + _u(rng, (1.5, 3.5)) * fractal_noise(rng, shp, px(100), px(8000), beta=3.0) \
        + 1.0 * oriented_noise(rng, shp, float(rng.uniform(0, math.pi)), px(400), elongation=8.0)
    dist_ocean = np.clip(fr.u - fr.front_u, 0.0, None) * res                  # m downstream of the front
    mel_len = float(rng.exponential(2500.0) if season == "winter" else rng.exponential(700.0))   # m
    mel_density = 1.0 / (1.0 + np.exp((dist_ocean - mel_len) / max(0.15 * mel_len, 100.0)))
    clumps = fractal_noise(rng, shp, px(20), px(800), beta=2.4)
    melange_frac = np.clip(mel_density * (1.0 + 0.9 * clumps), 0.0, 1.0)
    blocks = fractal_noise(rng, shp, px(10), px(300), beta=2.2)
    melange = _u(rng, rad.melange_db) + 2.0 * clumps + 4.0 * gain * np.tanh(_shading(blocks, look))
    ocean = water + (melange - water) * melange_frac
    bergs_src = fractal_noise(rng, shp, px(15), px(200), beta=2.0)
    berg_rate = 0.015 + 0.12 * np.exp(-dist_ocean / float(rng.uniform(500, 3000)))
    bergs = bergs_src > (2.4 - 1.6 * berg_rate / 0.135)
    berg_db = _u(rng, rad.iceberg_db) + 5.0 * np.tanh(_shading(bergs_src, look))
    ocean = np.where(bergs, berg_db, ocean)

    sig = np.select([zones == ROCK, zones == GLACIER, zones == OCEAN], [rock, glacier, ocean], default=np.nan)

    # Ice cliff along the front: bright when it faces the sensor, radar shadow when it faces away.
    facing = math.cos(flow - (look + math.pi))
    cliff = ndi.binary_dilation(front.astype(bool), iterations=max(1, int(round(px(12)))))
    cliff_ocean = cliff & (zones == OCEAN)
    sig = np.where(cliff_ocean & (facing > 0.2), sig + 7.0 * facing, sig)
    sig = np.where(cliff_ocean & (facing < -0.2), sig + 9.0 * facing, sig)
    sig = sig + _u(rng, rad.texture_db) * gain * fractal_noise(rng, shp, px(40), px(600), beta=2.5) \
        + 2.0 * fractal_noise(rng, shp, px(30), px(2000), beta=2.5)
    sig = sig + _u(rng, rad.calibration_db)
    # Class boundaries are not infinitely sharp in SAR (resolution cell, layover).
    valid = zones != NA
    filled = np.where(valid, sig, np.nanmean(sig[valid]) if valid.any() else 0.0)
    sig = np.where(valid, ndi.gaussian_filter(filled, 0.6), np.nan).astype(np.float32)
    p.update(wet_snow=bool(wet), windy=bool(windy), melange_extent_m=mel_len, crevasse_spacing_m=spacing)
    return sig, p


def speckle_and_quantise(rng: np.random.Generator, sigma0_db: np.ndarray, looks: float,
                         rad: Radiometry = Radiometry()) -> np.ndarray:
    """Multiplicative gamma speckle (intensity, mean 1, ENL ``looks``) and 8-bit scaling.

    ``sigma0_db`` (H, W) float dB with NaN for no data. Returns (H, W) uint8: 0 = no data, valid 1–255.
    """
    valid = np.isfinite(sigma0_db)
    intensity = np.power(10.0, np.where(valid, sigma0_db, -30.0) / 10.0, dtype=np.float32)
    intensity *= rng.gamma(looks, 1.0 / looks, size=sigma0_db.shape).astype(np.float32)
    if rad.scaling == "amplitude":
        dn = 255.0 * np.sqrt(intensity / 10.0 ** (rad.white_db / 10.0))
    else:
        db = 10.0 * np.log10(np.maximum(intensity, 1e-10))
        dn = 1.0 + 254.0 * (db - rad.black_db) / (rad.white_db - rad.black_db)
    out = np.clip(np.rint(dn), 1, 255).astype(np.uint8)
    out[~valid] = 0
    return out


def make_scene(rng: np.random.Generator, shape: tuple[int, int] = (512, 512), resolution_m: float = 20.0,
               season: str | None = None, sensor: str = "S1", looks: float | None = None, *,
               geometry: FjordGeometry | None = None, front_shift_m: float = 0.0,
               na_probability: float = 0.35, radiometry: Radiometry = Radiometry(),
               front_shape_date: np.ndarray | None = None, min_front_px: int | None = None,
               max_tries: int = 20) -> Scene:
    """Draw one synthetic glacier scene.

    ``shape`` (H, W) px, ``resolution_m`` m/px, ``season`` "winter"/"summer" (summer → wet snow; None →
    random), ``sensor`` a key of :data:`SENSORS` (only used for ``looks`` when not given, and recorded).
    ``geometry`` fixes the fjord (e.g. one glacier over many dates); ``front_shift_m`` moves its front
    along the flow (metres, positive = advance). Without ``geometry`` a random one is drawn until the
    glacier–ocean front has at least ``min_front_px`` pixels (default 15 % of the shorter side).
    """
    if season is None:
        season = "winter" if rng.random() < 0.5 else "summer"
    if season not in ("winter", "summer"):
        raise ValueError(f"season must be 'winter' or 'summer', got {season!r}")
    if looks is None:
        looks = SENSORS[sensor].looks if sensor in SENSORS else 1.0
    if looks <= 0:
        raise ValueError(f"looks must be > 0, got {looks}")
    h, w = int(shape[0]), int(shape[1])
    if min(h, w) < 16:
        raise ValueError(f"scene shape {shape} too small (min side 16 px)")
    need = int(0.15 * min(h, w)) if min_front_px is None else int(min_front_px)
    for attempt in range(max_tries):
        geom = geometry if geometry is not None else random_geometry(rng, (h, w), resolution_m)
        if front_shift_m:
            geom = geom.with_front(geom.front_px + front_shift_m / resolution_m)
        na = _na_mask(rng, (h, w), na_probability)
        zones, fr = rasterise_zones(geom, na, front_shape_date, edge_rng=rng)
        front = front_from_zones(zones)
        if geometry is not None or int(front.sum()) >= need:
            break
        log.debug("scene attempt %d: front of %d px < %d px, redrawing", attempt, int(front.sum()), need)
    else:
        raise RuntimeError(f"could not draw a scene with a front of >= {need} px in {max_tries} tries")
    sig, params = _sigma0_db(rng, geom, fr, zones, front, season, radiometry)
    sar = speckle_and_quantise(rng, sig, float(looks), radiometry)   # NA ⇔ SAR 0 (σ⁰ is NaN there)
    params.update(front_px=int(front.sum()))
    return Scene(sar=sar, zones=zones, front=front, sigma0_db=sig, resolution_m=float(resolution_m),
                 sensor=sensor, looks=float(looks), season=season, geometry=geom, params=params)


# ---------------------------------------------------------------------------------------------------
# Writers (deterministic: no timestamps)
# ---------------------------------------------------------------------------------------------------

def _png_bytes(arr: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr, dtype=np.uint8)).save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def write_png(path: Path, arr: np.ndarray) -> Path:
    """Write an (H, W) uint8 array as 8-bit grayscale PNG, atomically."""
    return write_bytes_atomic(path, _png_bytes(arr))


def write_geotiff(path: Path, array: np.ndarray, crs: str, transform: Any, nodata: float | None = None,
                  band_names: Sequence[str] | None = None) -> Path:
    """Write (H, W) or (C, H, W) ``array`` as a deflate-compressed GeoTIFF, atomically and reproducibly."""
    import rasterio

    arr = array[None] if array.ndim == 2 else array
    profile = {"driver": "GTiff", "height": arr.shape[1], "width": arr.shape[2], "count": arr.shape[0],
               "dtype": arr.dtype.name, "crs": crs, "transform": transform, "compress": "deflate",
               "tiled": False}
    if nodata is not None:
        profile["nodata"] = nodata
    with atomic_path(path) as tmp, rasterio.open(tmp, "w", **profile) as ds:
        ds.write(arr)
        if band_names:
            for i, name in enumerate(band_names, start=1):
                ds.set_band_description(i, name)
    return Path(path)


def caffe_stem(glacier: str, date: dt.date, sensor: str, resolution_m: float, quality: int, orbit: int) -> str:
    """``<Glacier>_<YYYY-MM-DD>_<Sensor>_<Res>_<Q>_<Orbit:03d>`` (spec §1.2)."""
    return f"{glacier}_{date.isoformat()}_{sensor}_{int(round(resolution_m))}_{int(quality)}_{int(orbit):03d}"


def bounding_box_text(front: np.ndarray, margin_px: int) -> str:
    """Bounding-box file (spec §1.4) around the front pixels of ``front`` (H, W) with a margin (px).

    Header ``x,y`` then left-upper, left-lower, right-lower, right-upper corners as ``x,y`` pixel
    coordinates (x column, y row); "upper" is the larger row index. End coordinates are exclusive
    (kept rows ``y_lower ≤ r < y_upper``) and stay within ``[0, W]`` × ``[0, H]`` so that the reference
    clamping keeps every ground-truth front pixel.
    """
    h, w = front.shape
    rr, cc = np.nonzero(front)
    if rr.size == 0:
        r0, r1, c0, c1 = 0, h, 0, w
    else:
        r0, r1 = max(int(rr.min()) - margin_px, 0), min(int(rr.max()) + 1 + margin_px, h)
        c0, c1 = max(int(cc.min()) - margin_px, 0), min(int(cc.max()) + 1 + margin_px, w)
    corners = [(c0, r1), (c0, r0), (c1, r0), (c1, r1)]
    return "x,y\n" + "".join(f"{x:.1f},{y:.1f}\n" for x, y in corners)


def _random_date(rng: np.random.Generator, first_year: int, last_year: int) -> dt.date:
    start = dt.date(first_year, 1, 1).toordinal()
    end = dt.date(last_year, 12, 31).toordinal()
    return dt.date.fromordinal(int(rng.integers(start, end + 1)))


def _scene_rng(seed: int, layout: int, index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), layout, index])


def _check_size(scene_size: Sequence[int]) -> tuple[int, int]:
    lo, hi = (int(scene_size[0]), int(scene_size[1])) if len(scene_size) == 2 else (int(scene_size[0]),) * 2
    if lo < 32 or hi < lo:
        raise ValueError(f"scene_size must be (min, max) with 32 <= min <= max, got {tuple(scene_size)}")
    return lo, hi


# ---------------------------------------------------------------------------------------------------
# CaFFe layout
# ---------------------------------------------------------------------------------------------------

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


def generate_caffe(out_dir: str | Path, n_train: int = 24, n_test: int = 8,
                   scene_size: Sequence[int] = (320, 480), seed: int = 0,
                   radiometry: Radiometry = Radiometry(), na_probability: float = 0.35,
                   looks: float | None = None, progress: bool = True) -> Path:
    """Write a synthetic dataset in the CaFFe layout (spec §1.1) under ``out_dir``; return ``out_dir``.

    ``n_train`` scenes of the training glaciers (Crane, DBE, JAC, Jorum, SI) go to ``train``, ``n_test``
    of the test glaciers (Mapple, COL) to ``test``. Each scene's side lengths are drawn from
    ``scene_size = (min, max)`` px. ``radiometry`` sets the backscatter model, ``na_probability`` the
    chance of a no-data wedge per scene, ``looks`` the speckle's intensity looks (ENL) of every scene
    (``None``: each sensor's own, :data:`SENSORS`; more looks = less speckle, an easier task). Also writes
    ``scenes.csv`` (stem, split, glacier, date, sensor, resolution_m, season, height, width, front_px,
    flow angle).
    """
    if looks is not None and not looks > 0:
        raise ValueError(f"looks must be > 0, got {looks}")
    from tqdm import tqdm

    out = Path(out_dir)
    lo, hi = _check_size(scene_size)
    _write_marker(out, "caffe")
    rows = []
    metas = caffe_scene_list(n_train, n_test, seed)
    for i, meta in enumerate(tqdm(metas, desc="synthetic CaFFe", disable=not progress or len(metas) < 8,
                                  leave=False)):
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
        rows.append({"stem": stem, "split": split, "glacier": meta["glacier"], "date": meta["date"].isoformat(),
                     "sensor": meta["sensor"], "resolution_m": meta["resolution_m"], "season": meta["season"],
                     "height": shape[0], "width": shape[1], "front_px": int(scene.front.sum()),
                     "flow_angle_deg": round(math.degrees(scene.geometry.flow_angle), 3),
                     "wet_snow": scene.params["wet_snow"]})
    _write_csv(out / "scenes.csv", rows)
    log.info("wrote %d synthetic CaFFe scenes to %s", len(rows), out)
    return out


def _write_marker(out: Path, layout: str) -> None:
    write_text_atomic(out / LAYOUT_MARKER, f"ssl4sar.data.synthetic {layout} layout, generator {GENERATOR_VERSION}\n")


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return write_text_atomic(path, buf.getvalue())


# ---------------------------------------------------------------------------------------------------
# Optical (Sentinel-2-like) scenes
# ---------------------------------------------------------------------------------------------------

#: Surface reflectance (0–1) of bands B1…B12 per surface type.
_SPECTRA: dict[str, tuple[float, ...]] = {
    "snow": (0.92, 0.93, 0.92, 0.89, 0.86, 0.83, 0.80, 0.76, 0.73, 0.55, 0.10, 0.07),
    "ice": (0.62, 0.63, 0.58, 0.50, 0.44, 0.38, 0.35, 0.31, 0.29, 0.18, 0.03, 0.02),
    "water": (0.09, 0.08, 0.06, 0.03, 0.02, 0.015, 0.012, 0.010, 0.009, 0.005, 0.003, 0.002),
    "rock": (0.08, 0.09, 0.11, 0.14, 0.16, 0.18, 0.19, 0.20, 0.21, 0.19, 0.27, 0.21),
    "cloud": (0.62, 0.61, 0.60, 0.60, 0.61, 0.62, 0.62, 0.63, 0.63, 0.42, 0.48, 0.36),
}
#: Sentinel-2 scene classification (SCL) codes used.
SCL_CODES = {"no_data": 0, "dark": 2, "cloud_shadow": 3, "bare_soil": 5, "water": 6, "cloud_medium": 8,
             "cloud_high": 9, "cirrus": 10, "snow_ice": 11}


def make_optical(rng: np.random.Generator, zones: np.ndarray, geom: FjordGeometry,
                 cloud_cover: float | None = None, sun_azimuth: float | None = None) -> np.ndarray:
    """A Sentinel-2 L2A-like image for the class map ``zones`` (H, W).

    Returns (15, H, W) uint16 in the GEE ``COPERNICUS/S2_SR`` order B1…B12, AOT, WVP, SCL: reflectance
    ×10000 for B1–B12, AOT and WVP ×1000 (smooth fields), SCL categorical (0 no data, 2 dark, 3 cloud
    shadow, 5 bare soil, 6 water, 8/9 cloud medium/high probability, 10 cirrus, 11 snow/ice).
    Surface spectra: snow/ice bright in the visible and dark in SWIR; water dark; rock moderate and
    brighter in SWIR; clouds bright in visible *and* SWIR (what separates them from snow).
    """
    h, w = zones.shape
    shp = (h, w)
    res = geom.resolution_m

    def px(metres: float) -> float:
        return max(metres / res, 1.0)

    spec = {k: np.asarray(v, dtype=np.float32)[:, None, None] for k, v in _SPECTRA.items()}
    fr = _frame(geom)
    dist_front = np.clip(fr.front_u - fr.u, 0, None) * res
    ice_frac = np.clip(np.exp(-dist_front / float(rng.uniform(1500, 5000))) * 0.8
                       + 0.2 * fractal_noise(rng, shp, px(50), px(2000)), 0, 1)[None]
    glacier = spec["snow"] * (1 - ice_frac) + spec["ice"] * ice_frac
    glacier = glacier * (1 + 0.05 * fractal_noise(rng, shp, 1, px(500)))[None]
    height = fractal_noise(rng, shp, px(60), px(3000), beta=3.2)
    az = float(rng.uniform(0, 2 * math.pi)) if sun_azimuth is None else sun_azimuth
    gr = np.gradient(height)
    shade = gr[0] * math.sin(az) + gr[1] * math.cos(az)
    shade = np.clip(1.0 + 0.5 * np.tanh(shade / (shade.std() + 1e-6)), 0.15, 1.6)
    snow_patches = (fractal_noise(rng, shp, px(40), px(1500)) > 0.8)[None]
    rock = np.where(snow_patches, spec["snow"] * 0.9, spec["rock"]) * shade[None]
    dist_ocean = np.clip(fr.u - fr.front_u, 0, None) * res
    mel = np.clip(np.exp(-dist_ocean / float(rng.uniform(300, 3000)))
                  * (1.1 + 0.5 * fractal_noise(rng, shp, px(30), px(600))), 0, 1)[None]
    ocean = spec["water"] * (1 - mel) + spec["ice"] * mel
    refl = np.where(zones[None] == GLACIER, glacier, np.where(zones[None] == ROCK, rock, ocean))
    refl = refl * (1 + 0.02 * rng.standard_normal((12, h, w), dtype=np.float32))

    # Clouds (alpha) and their shadows (the cloud mask shifted away from the sun).
    cover = float(rng.uniform(0.0, 0.35)) if cloud_cover is None else float(cloud_cover)
    cn = fractal_noise(rng, shp, px(100), px(6000), beta=3.0)
    thr = np.quantile(cn, 1.0 - cover) if cover > 0 else np.inf
    alpha = np.clip((cn - thr) / 0.8, 0.0, 1.0) if cover > 0 else np.zeros(shp, np.float32)
    shift = (int(round(math.sin(az) * px(600))), int(round(math.cos(az) * px(600))))
    shadow = np.roll(alpha, shift=shift, axis=(0, 1)) * (1 - alpha)
    refl = refl * (1 - 0.6 * shadow)[None]
    refl = refl * (1 - alpha)[None] + spec["cloud"] * alpha[None]
    bands = np.clip(np.rint(refl * 10000.0), 1, 10000).astype(np.uint16)

    aot = np.clip(120 + 40 * fractal_noise(rng, shp, px(2000), px(20000)), 20, 600)
    wvp = np.clip(float(rng.uniform(300, 1500)) * (1 + 0.2 * fractal_noise(rng, shp, px(2000), px(20000))), 50, 5000)
    scl = np.select([zones == GLACIER, zones == ROCK, zones == OCEAN],
                    [SCL_CODES["snow_ice"], SCL_CODES["bare_soil"], SCL_CODES["water"]], SCL_CODES["no_data"])
    scl = np.where((zones == OCEAN) & (mel[0] > 0.3), SCL_CODES["snow_ice"], scl)   # mélange
    scl = np.where((zones == ROCK) & snow_patches[0], SCL_CODES["snow_ice"], scl)
    scl = np.where((zones == ROCK) & (shade < 0.4), SCL_CODES["dark"], scl)
    scl = np.where(shadow > 0.3, SCL_CODES["cloud_shadow"], scl)
    scl = np.where((alpha > 0.05) & (alpha <= 0.25), SCL_CODES["cirrus"], scl)
    scl = np.where((alpha > 0.25) & (alpha <= 0.6), SCL_CODES["cloud_medium"], scl)
    scl = np.where(alpha > 0.6, SCL_CODES["cloud_high"], scl)
    out = np.concatenate([bands, np.rint(aot)[None].astype(np.uint16), np.rint(wvp)[None].astype(np.uint16),
                          scl[None].astype(np.uint16)], axis=0)
    out[:, zones == NA] = 0
    return out


def polar_transform(lat: float, lon: float, shape: tuple[int, int], resolution_m: float,
                    crs: str = "EPSG:3413") -> Any:
    """Affine transform of a north-up grid of ``shape`` (H, W) at ``resolution_m`` m/px centred on (lat, lon)."""
    from affine import Affine
    from pyproj import Transformer

    x, y = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(lon, lat)
    h, w = shape
    west = math.floor((x - w * resolution_m / 2) / resolution_m) * resolution_m
    north = math.floor((y + h * resolution_m / 2) / resolution_m) * resolution_m
    return Affine(resolution_m, 0.0, west, 0.0, -resolution_m, north)


# ---------------------------------------------------------------------------------------------------
# SSL4SAR layout
# ---------------------------------------------------------------------------------------------------

def generate_ssl4sar(out_dir: str | Path, n_sar: int = 16, seed: int = 0, n_glaciers: int = 3,
                     scene_size: Sequence[int] = (320, 480), val_fraction: float = 0.2,
                     resolution_m: float = 20.0, crs: str = "EPSG:3413",
                     radiometry: Radiometry = Radiometry()) -> Path:
    """Write a synthetic SSL4SAR-layout dataset (spec §2) under ``out_dir``; return ``out_dir``.

    ``n_glaciers`` Arctic glaciers, each with one 15-band optical GeoTIFF
    ``optical/<Glacier>_S2_<date>.tif`` and ``n_sar`` Sentinel-1-like uint8 GeoTIFFs spread over the
    glaciers, ``sar/{train,val}/S1_<Glacier>_<date>_<k>.tif`` (about ``val_fraction`` of each glacier's
    dates go to ``val``, at least one when the glacier has ≥ 2). Every SAR image lies on exactly the
    grid (CRS ``crs``, transform, shape) of its glacier's optical image; the front moves between dates.
    Also writes ``scenes.csv``.
    """
    out = Path(out_dir)
    lo, hi = _check_size(scene_size)
    if n_glaciers < 1 or n_glaciers > len(ARCTIC_GLACIERS):
        raise ValueError(f"n_glaciers must be in 1..{len(ARCTIC_GLACIERS)}, got {n_glaciers}")
    names = list(ARCTIC_GLACIERS)[:n_glaciers]
    _write_marker(out, "ssl4sar")
    rows = []
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
        for k, date in enumerate(dates):
            split = "val" if k >= n - n_val else "train"
            srng = _scene_rng(seed, 3, g * 100000 + k)
            shift = amplitude * math.sin(2 * math.pi * date.timetuple().tm_yday / 365.25) \
                - 0.02 * min(shape) * resolution_m * (date.year - 2016)
            scene = make_scene(srng, shape, resolution_m, season_of(name, date.month), "S1", geometry=geom,
                               front_shift_m=shift, na_probability=0.25, radiometry=radiometry)
            fname = f"S1_{name}_{date.isoformat()}_{k}.tif"
            write_geotiff(out / "sar" / split / fname, scene.sar, crs, transform, nodata=0)
            rows.append({"file": f"sar/{split}/{fname}", "glacier": name, "date": date.isoformat(),
                         "split": split, "height": shape[0], "width": shape[1],
                         "front_shift_m": round(shift, 3), "season": scene.season})
    _write_csv(out / "scenes.csv", rows)
    log.info("wrote %d synthetic SSL4SAR SAR images of %d glaciers to %s", len(rows), n_glaciers, out)
    return out


# ---------------------------------------------------------------------------------------------------
# Time series
# ---------------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------------

LAYOUTS = ("caffe", "ssl4sar", "timeseries")


def _prepare_dir(path: Path, overwrite: bool) -> None:
    """Refuse a non-empty ``path`` unless ``overwrite`` and it is a folder this generator wrote."""
    import shutil

    if not path.exists() or (path.is_dir() and not any(path.iterdir())):
        return
    ours = path.is_dir() and any((path / name).is_file() for name in (LAYOUT_MARKER, "scenes.csv", "truth.csv"))
    if not overwrite:
        raise DataError(path, "output folder is not empty",
                        "pass overwrite=True (ssl4sar data synth --force) to regenerate, or choose another folder")
    if not ours:
        raise DataError(path, "refusing to delete a folder the synthetic generator did not write",
                        "choose an empty or new output folder")
    log.info("removing previous synthetic data in %s", path)
    shutil.rmtree(path)


def generate(out_dir: str | Path, preset: str = "demo", seed: int = 0,
             layouts: Iterable[str] = ("caffe", "ssl4sar"), overwrite: bool = False,
             progress: bool = True) -> dict[str, Path]:
    """Generate the synthetic datasets of a preset's ``synthetic`` section under ``out_dir``.

    Writes ``out_dir/caffe`` (``n_train``/``n_test`` scenes, sides in ``scene_size`` px),
    ``out_dir/ssl4sar`` (``n_unlabeled`` SAR images; the glacier grid side is drawn from ``scene_size``
    scaled by ``optical_size_scale``), ``out_dir/timeseries`` when asked (``n_dates``, default 12), and
    ``out_dir/synthetic.json`` (generator version, seed, preset, and per layout its relative path, seed,
    preset and counts; entries of layouts written by earlier calls into the same ``out_dir`` are kept).
    Returns ``{layout: path}``. Same arguments → byte-identical files.

    A layout folder that already holds files is an error (stale files would mix with new ones) unless
    ``overwrite`` is true; then a folder this generator wrote (it holds the marker file
    ``.ssl4sar-synthetic``, written first, so interrupted runs are recognised too) is deleted first, and
    any other non-empty folder is still refused. ``progress``: a progress bar over the CaFFe scenes.
    """
    from ssl4sar.config import load_preset

    layouts = tuple(layouts)
    bad = [x for x in layouts if x not in LAYOUTS]
    if bad:
        raise ValueError(f"unknown layout(s) {bad}: choose from {LAYOUTS}")
    cfg = load_preset(preset)
    syn = cfg.get("synthetic")
    if not isinstance(syn, dict):
        raise DataError(preset, "preset has no 'synthetic' section", "add n_train, n_test, scene_size, n_unlabeled")
    try:
        n_train, n_test = int(syn["n_train"]), int(syn["n_test"])
        lo, hi = _check_size(syn["scene_size"])
        n_unlabeled = int(syn["n_unlabeled"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(preset, f"bad 'synthetic' section: {exc}",
                        "expected n_train, n_test, scene_size: [min, max], n_unlabeled") from exc
    scale = float(syn["optical_size_scale"])
    difficulty = synthetic_difficulty(syn, preset)
    out = Path(out_dir)
    for layout in layouts:
        _prepare_dir(out / layout, overwrite)
    paths: dict[str, Path] = {}
    name = str(cfg.get("name", preset))
    record: dict[str, Any] = {"generator": "ssl4sar.data.synthetic", "version": GENERATOR_VERSION,
                              "seed": int(seed), "preset": name, "layouts": _previous_layouts(out, layouts)}
    common = {"seed": int(seed), "preset": name, "version": GENERATOR_VERSION}
    if "caffe" in layouts:
        paths["caffe"] = generate_caffe(out / "caffe", n_train, n_test, (lo, hi), seed, progress=progress,
                                        **difficulty)
        record["layouts"]["caffe"] = {"path": "caffe", **common, "n_train": n_train, "n_test": n_test,
                                      "scene_size": [lo, hi]}
        if difficulty:   # recorded only when the preset changes the data's difficulty
            rad = difficulty.get("radiometry")
            record["layouts"]["caffe"]["difficulty"] = {
                **({"looks": difficulty["looks"]} if "looks" in difficulty else {}),
                **({"na_probability": difficulty["na_probability"]} if "na_probability" in difficulty else {}),
                **({"radiometry": dataclasses.asdict(rad)} if rad is not None else {}),
            }
    if "ssl4sar" in layouts:
        size = (max(32, int(round(lo * scale))), max(32, int(round(hi * scale))))
        n_glaciers = max(1, min(3, n_unlabeled // 2))
        paths["ssl4sar"] = generate_ssl4sar(out / "ssl4sar", n_unlabeled, seed, n_glaciers=n_glaciers,
                                            scene_size=size)
        record["layouts"]["ssl4sar"] = {"path": "ssl4sar", **common, "n_sar": n_unlabeled,
                                        "n_glaciers": n_glaciers, "scene_size": list(size)}
    if "timeseries" in layouts:
        n_dates = int(syn["n_dates"])
        side = int(round((lo + hi) / 2))
        paths["timeseries"] = generate_time_series(out / "timeseries", n_dates, seed, shape=(side, side))
        record["layouts"]["timeseries"] = {"path": "timeseries", **common, "n_dates": n_dates,
                                           "shape": [side, side]}
    record["layouts"] = dict(sorted(record["layouts"].items()))
    write_json_atomic(out / "synthetic.json", record)
    return paths


def synthetic_difficulty(syn: dict[str, Any], source: str | Path = "preset") -> dict[str, Any]:
    """The data-difficulty keyword arguments of :func:`generate_caffe` set in a preset's ``synthetic`` section.

    Optional keys: ``looks`` (intensity looks of every scene's speckle, > 0), ``na_probability`` (chance of a
    no-data wedge per scene, in [0, 1]) and ``radiometry`` (a mapping of :class:`Radiometry` field overrides;
    ranges as ``[low, high]`` in dB). Absent keys are left out, so the generator's defaults (the realistic
    data) apply. Bad values raise :class:`~ssl4sar.errors.DataError` naming ``source``.
    """
    out: dict[str, Any] = {}
    hint = "synthetic: {looks: >0, na_probability: 0..1, radiometry: {<Radiometry field>: value}}"
    if syn.get("looks") is not None:
        try:
            looks = float(syn["looks"])
        except (TypeError, ValueError) as exc:
            raise DataError(source, f"synthetic.looks must be a number, got {syn['looks']!r}", hint) from exc
        if not looks > 0 or not math.isfinite(looks):
            raise DataError(source, f"synthetic.looks must be > 0, got {looks}", hint)
        out["looks"] = looks
    if syn.get("na_probability") is not None:
        try:
            na_p = float(syn["na_probability"])
        except (TypeError, ValueError) as exc:
            raise DataError(source, f"synthetic.na_probability must be a number, got {syn['na_probability']!r}",
                            hint) from exc
        if not 0.0 <= na_p <= 1.0:
            raise DataError(source, f"synthetic.na_probability must be in [0, 1], got {na_p}", hint)
        out["na_probability"] = na_p
    overrides = syn.get("radiometry")
    if overrides is not None:
        if not isinstance(overrides, dict):
            raise DataError(source, f"synthetic.radiometry must be a mapping, got {type(overrides).__name__}", hint)
        fields = {f.name: f for f in dataclasses.fields(Radiometry)}
        unknown = sorted(set(overrides) - set(fields))
        if unknown:
            raise DataError(source, f"synthetic.radiometry: unknown field(s) {unknown}",
                            f"choose from {sorted(fields)}")
        defaults = Radiometry()
        values: dict[str, Any] = {}
        for key, value in overrides.items():
            default = getattr(defaults, key)
            try:
                if isinstance(default, tuple):
                    pair = tuple(float(v) for v in value)
                    if len(pair) != 2 or pair[0] > pair[1]:
                        raise ValueError("expected [low, high] with low <= high")
                    values[key] = pair
                elif isinstance(default, str):
                    if value not in ("amplitude", "db"):
                        raise ValueError("expected 'amplitude' or 'db'")
                    values[key] = str(value)
                else:
                    values[key] = float(value)
            except (TypeError, ValueError) as exc:
                raise DataError(source, f"synthetic.radiometry.{key}: bad value {value!r} ({exc})", hint) from exc
        out["radiometry"] = dataclasses.replace(defaults, **values)
    return out


def _previous_layouts(out: Path, regenerated: Sequence[str]) -> dict[str, Any]:
    """Entries of ``out/synthetic.json`` for layouts that still exist and are not regenerated now."""
    path = out / "synthetic.json"
    if not path.is_file():
        return {}
    try:
        old = json.loads(path.read_text())
        entries = dict(old.get("layouts", {}))
    except (ValueError, AttributeError, TypeError):
        log.warning("%s: unreadable, starting a new record", path)
        return {}
    return {k: v for k, v in entries.items()
            if k in LAYOUTS and k not in regenerated and (out / k).is_dir() and isinstance(v, dict)}


# ---------------------------------------------------------------------------------------------------
# Raw georeferenced Sentinel-1 / Sentinel-2 scenes (input of ssl4sar.data.construct)
# ---------------------------------------------------------------------------------------------------

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
