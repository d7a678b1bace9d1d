"""Fjord geometry of a synthetic scene and its rasterised labels.

**Geometry** (:class:`FjordGeometry`): a fjord with rough rock walls on both sides, possibly curved and widening
towards a mouth that opens onto the sea; a glacier tongue flowing down the fjord (any direction, the front is
not axis-aligned) ending in a bulging, fractal calving front; sometimes a tributary glacier joining from the
side; sometimes a no-data wedge (class NA, SAR value 0) cut off a corner or border.

**Labels**: ``zones`` with the CaFFe class ids (0 NA, 1 rock, 2 glacier, 3 ocean and ice mélange) and ``front``
= ocean pixels with a 4-neighbour glacier pixel, exactly the rule of the post-processing (spec §7.2 step 3).
The zones are made a fixed point of §7.2 steps 1–2 (one non-ocean component, one ocean component), so that
post-processing the ground-truth zones returns the ground-truth front.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from ssl4sar.data.synthetic.noise import fractal_noise, fractal_noise_1d
from ssl4sar.domain import GLACIER, NA, OCEAN, ROCK


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
