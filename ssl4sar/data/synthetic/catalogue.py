"""Facts the synthetic scenes are named and drawn from: SAR sensors (pixel spacing, looks, years flown),
CaFFe and Arctic glaciers with their hemisphere and season, and the generator's version and layout marker.

Sensors of spec §1.2 with their CaFFe pixel spacing (S1/ERS/ENVISAT 20 m, PALSAR 17 m, RSAT 12 m, TSX 6–7 m,
TDX 7 m) and years of operation; months drive the season through the hemisphere rule of spec §8.4
(summer → wet snow). The class and glacier facts themselves live in :mod:`ssl4sar.domain`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ssl4sar.domain import CAFFE_GLACIERS, CLASS_TO_ZONE_VALUE, season_in

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
