"""Facts of the glacier-front domain, named once: CaFFe classes (ids, names, zone-mask values, colours), the
CaFFe glaciers and their hemispheres, the season rule, the "no MDE" placeholder, and display downsampling.

Every other module imports these names from here (some re-export them under their old names).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np

__all__ = [
    "NA", "ROCK", "GLACIER", "OCEAN", "CLASS_NAMES", "CLASS_LABELS", "NUM_CLASSES", "ZONE_VALUE_TO_CLASS",
    "CLASS_TO_ZONE_VALUE", "ZONE_COLORS", "CAFFE_GLACIERS", "GLACIERS", "NORTHERN_GLACIERS", "SEASONS",
    "Hemisphere", "Season", "season_in", "is_winter", "season_of", "MDE_UNDEFINED_M", "is_undefined_mde",
    "display_step", "downsample_for_display",
]

# --------------------------------------------------------------------------------------------------- classes
#: CaFFe class ids (spec §1.3): no data / not annotated, rock, glacier, ocean and ice mélange
NA, ROCK, GLACIER, OCEAN = 0, 1, 2, 3
#: class names by id, as the metrics tables name their columns
CLASS_NAMES: tuple[str, ...] = ("NA", "rock", "glacier", "ocean")
#: class names by id for figure legends
CLASS_LABELS: tuple[str, ...] = ("NA", "rock", "glacier", "ocean / mélange")
NUM_CLASSES = len(CLASS_NAMES)
#: zone-mask pixel value → class id (63 is an accepted variant of 64, §1.3)
ZONE_VALUE_TO_CLASS: dict[int, int] = {0: NA, 63: ROCK, 64: ROCK, 127: GLACIER, 254: OCEAN}
#: class id → zone-mask pixel value written to disk
CLASS_TO_ZONE_VALUE: tuple[int, ...] = (0, 64, 127, 254)
#: colours of class ids 0..3 (NA, rock, glacier, ocean + ice mélange)
ZONE_COLORS: tuple[str, ...] = ("#000000", "#8c6d46", "#d9f0ff", "#1f4e99")

# --------------------------------------------------------------------------------------------------- glaciers
Hemisphere = Literal["north", "south"]
#: the seven CaFFe glaciers (spec §1.6): hemisphere, split (test: Mapple, COL) and the sensors that imaged them
CAFFE_GLACIERS: dict[str, dict[str, Any]] = {
    "Mapple": {"hemisphere": "south", "split": "test", "sensors": ("ERS", "ENVISAT", "RSAT", "PALSAR", "TSX", "S1")},
    "COL": {"hemisphere": "north", "split": "test", "sensors": ("ERS", "RSAT", "TSX", "TDX", "S1")},
    "Crane": {"hemisphere": "south", "split": "train", "sensors": ("ERS", "ENVISAT", "RSAT", "PALSAR", "TSX", "S1")},
    "DBE": {"hemisphere": "south", "split": "train", "sensors": ("ERS", "ENVISAT", "PALSAR", "TSX", "S1")},
    "JAC": {"hemisphere": "north", "split": "train", "sensors": ("TSX",)},
    "Jorum": {"hemisphere": "south", "split": "train", "sensors": ("ERS", "ENVISAT", "RSAT", "PALSAR", "TSX", "S1")},
    "SI": {"hemisphere": "south", "split": "train",
           "sensors": ("ERS", "ENVISAT", "RSAT", "PALSAR", "TSX", "TDX", "S1")},
}
#: the CaFFe glacier codes, in the reference's order
GLACIERS: tuple[str, ...] = tuple(CAFFE_GLACIERS)
#: CaFFe glaciers in the northern hemisphere (Columbia, Jakobshavn); all others are southern (§8.4)
NORTHERN_GLACIERS: frozenset[str] = frozenset(g for g, v in CAFFE_GLACIERS.items() if v["hemisphere"] == "north")

# --------------------------------------------------------------------------------------------------- seasons
Season = Literal["winter", "summer"]
SEASONS: tuple[str, ...] = ("winter", "summer")


def season_in(hemisphere: Hemisphere, month: int) -> Season:
    """The season rule of the official evaluation (§8.4): in the north winter ⇔ month ≤ 3 or month ≥ 9, in the
    south winter ⇔ 4 ≤ month ≤ 8. ``month`` in 1..12 (``ValueError`` otherwise)."""
    if not 1 <= int(month) <= 12:
        raise ValueError(f"month must be in 1..12, got {month}")
    if hemisphere not in ("north", "south"):
        raise ValueError(f"hemisphere must be 'north' or 'south', got {hemisphere!r}")
    northern_summer = 4 <= int(month) <= 8
    winter = not northern_summer if hemisphere == "north" else northern_summer
    return "winter" if winter else "summer"


def is_winter(glacier: str, month: int) -> bool:
    """True when ``month`` is winter at CaFFe glacier ``glacier`` (COL and JAC north, all others south; §8.4)."""
    return season_of(glacier, month) == "winter"


def season_of(glacier: str, month: int) -> Season:
    """``"winter"`` or ``"summer"`` for a CaFFe glacier code and a month (§8.4)."""
    return season_in("north" if glacier in NORTHERN_GLACIERS else "south", month)


# --------------------------------------------------------------------------------------------------- sensors
#: Pixel spacing of the CaFFe training images (m/px, finest and coarsest; the file names give 6, 7, 12, 17, 20).
CAFFE_PIXEL_SPACING_M = (6.0, 20.0)


# --------------------------------------------------------------------------------------------------- metrics
#: Value logged for ``val/mde`` (and the normalised MDEs) when no front could be evaluated (metres): the checkpoint
#: monitor needs a number; 1e6 m (1000 km) is no plausible MDE (the reference logs 7777), and figures leave it out.
MDE_UNDEFINED_M = 1.0e6


def is_undefined_mde(value_m: float) -> bool:
    """Whether a logged MDE is the placeholder :data:`MDE_UNDEFINED_M` (no front found), not a distance."""
    return value_m >= MDE_UNDEFINED_M


# --------------------------------------------------------------------------------------------------- display
def display_step(shape: tuple[int, ...], max_side_px: int | None) -> int:
    """Subsampling step that brings the longer side of ``shape`` (H, W, …) to at most ``max_side_px`` pixels
    (1 when it already fits or ``max_side_px`` is ``None`` / 0)."""
    if not max_side_px:
        return 1
    return max(1, math.ceil(max(shape[:2]) / float(max_side_px)))


def downsample_for_display(arr: Any, step: int, keep_lines: bool = False) -> np.ndarray:
    """``arr`` (H, W) subsampled by ``step`` for display → (⌈H/step⌉, ⌈W/step⌉); ``keep_lines``: the maximum over
    ``step × step`` blocks instead of every ``step``-th pixel, so that one-pixel front lines survive."""
    a = np.asarray(arr)
    if step <= 1:
        return a
    if not keep_lines:
        return a[::step, ::step]
    h, w = a.shape
    hp, wp = -(-h // step) * step, -(-w // step) * step
    pad = np.zeros((hp, wp), dtype=a.dtype)
    pad[:h, :w] = a
    return pad.reshape(hp // step, step, wp // step, step).max(axis=(1, 3))
