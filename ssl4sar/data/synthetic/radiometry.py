"""SAR radiometry of a synthetic scene, and :func:`make_scene`, which draws one whole scene.

Class-dependent backscatter σ⁰ (dB): rock bright-ish with topographic foreshortening/shadow and texture; dry
(winter) glacier bright, wet-snow (summer) glacier dark; crevasse fields (transverse near the front, shear
crevasses near the walls, flow-parallel foliation upstream); open water dark with wind modulation, sometimes
wind-roughened; ice mélange bright and clumpy near the front, icebergs as bright blobs; a bright ice cliff or
its shadow along the front depending on the look direction. Multiplicative gamma speckle with a configurable
number of looks (intensity ENL), then 8-bit amplitude scaling with saturation like CaFFe's amplitude PNGs
(0 is kept for no data; valid pixels are 1–255).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy import ndimage as ndi

from ssl4sar.data.synthetic.catalogue import SENSORS
from ssl4sar.data.synthetic.geometry import (
    FjordGeometry,
    _Frame,
    _na_mask,
    front_from_zones,
    random_geometry,
    rasterise_zones,
)
from ssl4sar.data.synthetic.noise import fractal_noise, oriented_noise
from ssl4sar.domain import GLACIER, NA, OCEAN, ROCK

log = logging.getLogger(__name__)


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
    with np.errstate(over="ignore"):  # far from the front exp overflows to inf: a density of exactly 0, as meant
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
