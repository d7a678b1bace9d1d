"""The CaFFe benchmark layout (labelled data, spec §1): scene names, masks, bounding boxes, splits, seasons.

Layout (as distributed on PANGAEA, doi 10.1594/PANGAEA.940950)::

    <root>/sar_images/{train,test}/<stem>.png           8-bit SAR amplitude, 0 = no data
    <root>/zones/{train,test}/<stem>_zones.png          zone mask, 0 NA / 64 (63) rock / 127 glacier / 254 ocean
    <root>/fronts/{train,test}/<stem>_front.png         front line, 0 background / 255 front
    <root>/bounding_boxes/<stem>_front_extent_coord.txt front search box (pixel coordinates)

Stems are ``<Glacier>_<YYYY-MM-DD>_<Sensor>_<Res>_<Q>_<Orbit>``, e.g. ``Mapple_2018-06-11_S1_20_2_009``
(resolution in metres per pixel). Class ids in memory (§1.3): 0 = NA, 1 = rock, 2 = glacier, 3 = ocean and
ice mélange; fronts are 0 / 1. Images and masks are ``(H, W)`` uint8 arrays (rows, columns).

Splits (§1.7): ``train`` and ``val`` partition the 559 sorted training images exactly as the official code
does (``np.random.RandomState(1).permutation(559)``, first 56 = validation); ``trainval`` is the whole train
folder; ``test`` the test folder.
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import UnidentifiedImageError

from ssl4sar.data.raster import open_image
from ssl4sar.domain import (  # re-exported: the class and glacier facts and the season rule live in ssl4sar.domain
    CLASS_NAMES,
    CLASS_TO_ZONE_VALUE,
    GLACIERS,
    NORTHERN_GLACIERS,
    NUM_CLASSES,
    ZONE_VALUE_TO_CLASS,
    is_winter,
    season_of,
)
from ssl4sar.errors import DataError

__all__ = [
    "CLASS_NAMES", "NUM_CLASSES", "ZONE_VALUE_TO_CLASS", "CLASS_TO_ZONE_VALUE", "GLACIERS", "SENSORS",
    "NORTHERN_GLACIERS", "CAFFE_N_TRAIN", "CAFFE_N_VAL", "SPLITS",
    "SceneMeta", "parse_stem", "zones_to_classes", "classes_to_zones", "front_to_binary",
    "read_sar", "read_zones", "read_front", "BoundingBox", "read_bounding_box", "parse_bounding_box",
    "CaffeScene", "discover", "validation_indices", "load_scene", "season_of", "is_winter",
]

log = logging.getLogger(__name__)

SENSORS: tuple[str, ...] = ("RSAT", "S1", "ENVISAT", "ERS", "PALSAR", "TSX", "TDX")
CAFFE_N_TRAIN = 559
CAFFE_N_VAL = 56
#: the logical splits a scene list can be drawn for (see :func:`discover`)
SPLITS = ("train", "val", "test", "trainval")
BBOX_SUFFIX = "_front_extent_coord.txt"

_INVALID = 255
_ZONE_LUT = np.full(256, _INVALID, dtype=np.uint8)
for _value, _cls in ZONE_VALUE_TO_CLASS.items():
    _ZONE_LUT[_value] = _cls
_FRONT_LUT = np.full(256, _INVALID, dtype=np.uint8)
_FRONT_LUT[0] = 0
_FRONT_LUT[255] = 1

_STEM_HINT = ("CaFFe stems are <Glacier>_<YYYY-MM-DD>_<Sensor>_<Res m/px>_<Quality>_<Orbit>, "
              "e.g. Mapple_2018-06-11_S1_20_2_009")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


# ---------------------------------------------------------------------------------------------------------
# scene metadata
# ---------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SceneMeta:
    """Metadata parsed from a CaFFe stem.

    Attributes:
        glacier: glacier code (``Mapple``, ``COL``, ``Crane``, ``DBE``, ``JAC``, ``Jorum``, ``SI``).
        date: acquisition date.
        sensor: sensor code (``RSAT``, ``S1``, ``ENVISAT``, ``ERS``, ``PALSAR``, ``TSX``, ``TDX``).
        resolution_m: pixel spacing in metres per pixel.
        quality: quality factor (unused by any metric).
        orbit: orbit / track field, as written (e.g. ``"009"``).
    """

    glacier: str
    date: _dt.date
    sensor: str
    resolution_m: float
    quality: int
    orbit: str

    @property
    def hemisphere(self) -> str:
        """``"north"`` for COL and JAC, ``"south"`` for every other glacier (§8.4)."""
        return "north" if self.glacier in NORTHERN_GLACIERS else "south"

    @property
    def season(self) -> str:
        """``"winter"`` or ``"summer"`` by the hemisphere-dependent month rule (§8.4)."""
        return season_of(self.glacier, self.date.month)

    @property
    def sensor_group(self) -> str:
        """Sensor for breakdowns: TSX and TDX are pooled as ``"TSX/TDX"`` (§8.3)."""
        return "TSX/TDX" if self.sensor in ("TSX", "TDX") else self.sensor

    @property
    def resolution_label(self) -> str:
        """Resolution as written in breakdown tables: ``"20"`` for 20.0 m/px, ``"6.67"`` otherwise."""
        return f"{self.resolution_m:g}"


def parse_stem(stem: str, path: str | Path | None = None) -> SceneMeta:
    """Parse ``<Glacier>_<YYYY-MM-DD>_<Sensor>_<Res>_<Q>_<Orbit>`` into :class:`SceneMeta`.

    The stem is split on ``_`` and fields 0..5 are used (the [FIX] of §1.2). ``path`` (the file the stem came
    from) is only used in the error message. Raises :class:`DataError` for anything that does not parse.
    """
    where = path if path is not None else stem
    fields = stem.split("_")
    if len(fields) != 6:
        raise DataError(where, f"stem {stem!r} has {len(fields)} '_'-separated field(s), expected 6", _STEM_HINT)
    glacier, date_s, sensor, res_s, q_s, orbit = fields
    if not glacier or not sensor or not orbit:
        raise DataError(where, f"stem {stem!r} has an empty glacier, sensor or orbit field", _STEM_HINT)
    if not _DATE_RE.match(date_s):
        raise DataError(where, f"stem {stem!r}: date field {date_s!r} is not YYYY-MM-DD", _STEM_HINT)
    try:
        date = _dt.date.fromisoformat(date_s)
    except ValueError as exc:
        raise DataError(where, f"stem {stem!r}: invalid date {date_s!r} ({exc})", _STEM_HINT) from exc
    try:
        resolution = float(res_s)
    except ValueError as exc:
        raise DataError(where, f"stem {stem!r}: resolution field {res_s!r} is not a number", _STEM_HINT) from exc
    if not math.isfinite(resolution) or resolution <= 0:
        raise DataError(where, f"stem {stem!r}: resolution {res_s!r} m/px must be positive", _STEM_HINT)
    try:
        quality = int(q_s)
    except ValueError as exc:
        raise DataError(where, f"stem {stem!r}: quality field {q_s!r} is not an integer", _STEM_HINT) from exc
    if glacier not in GLACIERS:
        log.debug("stem %s: glacier %r is not one of the CaFFe glaciers", stem, glacier)
    if sensor not in SENSORS:
        log.debug("stem %s: sensor %r is not one of the CaFFe sensors", stem, sensor)
    return SceneMeta(glacier=glacier, date=date, sensor=sensor, resolution_m=resolution, quality=quality,
                     orbit=orbit)


# ---------------------------------------------------------------------------------------------------------
# masks and readers
# ---------------------------------------------------------------------------------------------------------

def _describe_bad(values: np.ndarray, lut: np.ndarray) -> str:
    bad = lut[values] == _INVALID
    vals, counts = np.unique(values[bad], return_counts=True)
    listed = ", ".join(f"{int(v)} ({int(c)} px)" for v, c in zip(vals[:12], counts[:12]))
    if len(vals) > 12:
        listed += f", … ({len(vals) - 12} more values)"
    return listed


def zones_to_classes(zones: np.ndarray, path: str | Path | None = None) -> np.ndarray:
    """Map zone pixel values 0 / 64 (or 63) / 127 / 254 to class ids 0..3 (uint8, same shape).

    Any other value raises :class:`DataError` listing the bad values and their pixel counts.
    """
    arr = np.asarray(zones)
    if arr.dtype != np.uint8:
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise DataError(path, f"zone mask values outside 0..255 (dtype {arr.dtype})",
                            "zone masks are 8-bit PNGs with values 0, 64, 127, 254")
        arr = arr.astype(np.uint8)
    out = _ZONE_LUT[arr]
    if (out == _INVALID).any():
        raise DataError(path, f"zone mask has unknown pixel values: {_describe_bad(arr, _ZONE_LUT)}",
                        "expected only 0 (NA), 64 or 63 (rock), 127 (glacier), 254 (ocean / ice mélange)")
    return out


def classes_to_zones(classes: np.ndarray) -> np.ndarray:
    """Inverse of :func:`zones_to_classes`: class ids 0..3 → 0 / 64 / 127 / 254 (uint8)."""
    arr = np.asarray(classes)
    if arr.size and (arr.min() < 0 or arr.max() >= NUM_CLASSES):
        raise ValueError(f"class ids must be in 0..{NUM_CLASSES - 1}, got range {arr.min()}..{arr.max()}")
    return np.asarray(CLASS_TO_ZONE_VALUE, dtype=np.uint8)[arr]


def front_to_binary(front: np.ndarray, path: str | Path | None = None) -> np.ndarray:
    """Map front pixel values 0 / 255 to 0 / 1 (uint8). Other values raise :class:`DataError`."""
    arr = np.asarray(front)
    if arr.dtype != np.uint8:
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise DataError(path, f"front mask values outside 0..255 (dtype {arr.dtype})",
                            "front masks are 8-bit PNGs with values 0 and 255")
        arr = arr.astype(np.uint8)
    out = _FRONT_LUT[arr]
    if (out == _INVALID).any():
        raise DataError(path, f"front mask has pixel values other than 0 and 255: {_describe_bad(arr, _FRONT_LUT)}",
                        "front masks contain only 0 (background) and 255 (front)")
    return out


_GRAY_MODES = {"L", "P", "RGB", "RGBA", "LA", "1", "PA"}


def _read_gray_png(path: str | Path, what: str) -> np.ndarray:
    """Decode an 8-bit image file to an ``(H, W)`` uint8 array (PIL ``convert('L')`` as the reference does)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, f"{what} file not found", "check the data root and the CaFFe folder layout")
    try:
        with open_image(path, f"{what} image") as im:
            im.load()
            mode = im.mode
            arr = np.array(im) if mode == "L" else (np.array(im.convert("L")) if mode in _GRAY_MODES else None)
    except DataError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(path, f"cannot decode {what} image: {exc}",
                        "the file is corrupt or truncated; download or regenerate it") from exc
    if arr is None:
        raise DataError(path, f"{what} image has unsupported mode {mode!r}", "expected an 8-bit grayscale PNG")
    return arr


def read_sar(path: str | Path) -> np.ndarray:
    """Read a SAR amplitude image as ``(H, W)`` uint8 (0 = no data). Colour images are converted like PIL 'L'."""
    return _read_gray_png(path, "SAR")


def read_zones(path: str | Path) -> np.ndarray:
    """Read a ``*_zones.png`` mask as ``(H, W)`` uint8 class ids 0..3."""
    path = Path(path)
    return zones_to_classes(_read_gray_png(path, "zone mask"), path)


def read_front(path: str | Path) -> np.ndarray:
    """Read a ``*_front.png`` mask as ``(H, W)`` uint8 with 0 = background, 1 = front pixel."""
    path = Path(path)
    return front_to_binary(_read_gray_png(path, "front mask"), path)


# ---------------------------------------------------------------------------------------------------------
# bounding boxes (§1.4)
# ---------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BoundingBox:
    """Front search box of one scene, in pixel coordinates (x = column, y = row), after the official
    rounding (Python ``round``, half-to-even) and clamping (§1.4).

    The file lists the left-upper, left-lower, right-lower and right-upper corners; in CaFFe files the
    "upper" y is the *larger* row index. :meth:`mask` keeps rows ``y_rl ≤ r < y_lu`` and columns
    ``x_lu ≤ c < x_rl`` of a predicted front, with Python slice semantics exactly as the official code
    (so a negative bound that escaped clamping counts from the end, as there).
    """

    x_lu: int
    y_lu: int
    x_ll: int
    y_ll: int
    x_rl: int
    y_rl: int
    x_ru: int
    y_ru: int
    image_shape: tuple[int, int]
    path: Path | None = None

    @classmethod
    def from_corners(cls, corners: Sequence[tuple[float, float]], image_shape: tuple[int, int],
                     path: str | Path | None = None) -> BoundingBox:
        """Round (half-to-even) and clamp the four ``(x, y)`` corners (LU, LL, RL, RU) for an ``(H, W)`` image.

        Clamping rules, exactly those of the official code (only these): x_LU, x_LL < 0 → 0;
        x_RU, x_RL > W → W−1; y_LU > H → H−1; y_LL < 0 → 0; y_RU > H → H−1; y_RL < 0 → 0.
        """
        if len(corners) != 4:
            raise ValueError(f"expected 4 corners (LU, LL, RL, RU), got {len(corners)}")
        height, width = int(image_shape[0]), int(image_shape[1])
        (x_lu, y_lu), (x_ll, y_ll), (x_rl, y_rl), (x_ru, y_ru) = [
            (round(float(x)), round(float(y))) for x, y in corners]
        if x_lu < 0:
            x_lu = 0
        if x_ll < 0:
            x_ll = 0
        if x_ru > width:
            x_ru = width - 1
        if x_rl > width:
            x_rl = width - 1
        if y_lu > height:
            y_lu = height - 1
        if y_ll < 0:
            y_ll = 0
        if y_ru > height:
            y_ru = height - 1
        if y_rl < 0:
            y_rl = 0
        return cls(x_lu=x_lu, y_lu=y_lu, x_ll=x_ll, y_ll=y_ll, x_rl=x_rl, y_rl=y_rl, x_ru=x_ru, y_ru=y_ru,
                   image_shape=(height, width), path=Path(path) if path is not None else None)

    def mask(self, front: np.ndarray) -> np.ndarray:
        """Return a copy of ``front`` (``(H, W)``) with everything outside the box set to 0."""
        arr = np.array(front, copy=True)
        if arr.shape[-2:] != self.image_shape:
            raise DataError(self.path, f"bounding box is for an image of {self.image_shape} (HxW) but the front "
                            f"has shape {arr.shape[-2:]}", "use the bounding box of the same scene")
        arr[..., : self.y_rl, :] = 0
        arr[..., self.y_lu:, :] = 0
        arr[..., :, : self.x_lu] = 0
        arr[..., :, self.x_rl:] = 0
        return arr

    def keep_mask(self) -> np.ndarray:
        """Boolean ``(H, W)`` array, True where :meth:`mask` keeps pixels."""
        return self.mask(np.ones(self.image_shape, dtype=bool))


def parse_bounding_box(text: str, image_shape: tuple[int, int], path: str | Path | None = None) -> BoundingBox:
    """Parse the text of a ``*_front_extent_coord.txt`` file (header line, then 4 lines ``x,y``)."""
    lines = [ln for ln in text.splitlines()]
    if len(lines) < 5:
        raise DataError(path, f"bounding-box file has {len(lines)} line(s), expected a header and 4 'x,y' lines",
                        "CaFFe bounding-box files list the LU, LL, RL, RU corners after one header line")
    corners: list[tuple[float, float]] = []
    for lineno in range(1, 5):
        parts = lines[lineno].split(",")
        try:
            if len(parts) != 2:
                raise ValueError
            x, y = float(parts[0]), float(parts[1])
        except ValueError as exc:
            raise DataError(path, f"line {lineno + 1} {lines[lineno]!r} is not 'x,y' with two numbers",
                            "CaFFe bounding-box files list the LU, LL, RL, RU corners as 'x,y'") from exc
        if not (math.isfinite(x) and math.isfinite(y)):
            raise DataError(path, f"line {lineno + 1} {lines[lineno]!r} holds a non-finite coordinate")
        corners.append((x, y))
    return BoundingBox.from_corners(corners, image_shape, path)


def read_bounding_box(path: str | Path, image_shape: tuple[int, int]) -> BoundingBox:
    """Read a bounding-box file for an image of ``image_shape`` = ``(H, W)`` pixels."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "bounding-box file not found", "check <root>/bounding_boxes/")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(path, f"cannot read bounding-box file: {exc}") from exc
    return parse_bounding_box(text, image_shape, path)


# ---------------------------------------------------------------------------------------------------------
# scenes, discovery and splits
# ---------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CaffeScene:
    """One CaFFe scene: its files and parsed metadata.

    ``split`` is the logical split (``train``, ``val``, ``test``, ``trainval``) the scene was discovered for.
    """

    stem: str
    meta: SceneMeta
    sar_path: Path
    zones_path: Path
    front_path: Path
    bbox_path: Path | None
    split: str


def validation_indices(n: int) -> np.ndarray:
    """Indices (into the sorted training names) of the validation images, sorted ascending (§1.7).

    For the CaFFe train folder (n = 559) this is ``np.random.RandomState(1).permutation(559)[:56]`` — the
    official 503 / 56 split. For other ``n`` (synthetic data) the same rule is applied with ``ceil(0.1 n)``
    validation images (sklearn's ``train_test_split(test_size=0.1, random_state=1)``), with a warning.
    """
    if n < 2:
        raise ValueError(f"cannot split {n} training image(s) into train and validation (need at least 2)")
    n_val = math.ceil(0.1 * n)
    if n != CAFFE_N_TRAIN:
        log.warning("train folder holds %d images, not the %d of CaFFe: using the same rule "
                    "(RandomState(1) permutation, first ceil(0.1 n) = %d for validation), "
                    "which is not the CaFFe validation split", n, CAFFE_N_TRAIN, n_val)
    perm = np.random.RandomState(1).permutation(n)
    return np.sort(perm[:n_val]).astype(np.int64)


def _bbox_index(root: Path) -> dict[str, Path]:
    folder = root / "bounding_boxes"
    if not folder.is_dir():
        return {}
    return {p.name: p for p in sorted(folder.iterdir()) if p.is_file()}


def _find_bbox(stem: str, index: dict[str, Path]) -> Path | None:
    exact = index.get(stem + BBOX_SUFFIX)
    if exact is not None:
        return exact
    # the official code takes the first file whose name starts with the stem (re.match, §1.1)
    for name, path in index.items():
        if name.startswith(stem):
            return path
    return None


def _mask_partners(folder: Path, suffix: str) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    out: dict[str, Path] = {}
    for p in folder.iterdir():
        if p.is_file() and p.name.endswith(suffix + ".png") and not p.name.startswith("."):
            out[p.name[: -len(suffix + ".png")]] = p
    return out


def discover(root: str | Path, split: str, *, strict_split: bool = False) -> list[CaffeScene]:
    """List the scenes of ``split`` (``train``, ``val``, ``test``, ``trainval``) under ``root``.

    Every ``sar_images/<folder>/<stem>.png`` must have ``zones/<folder>/<stem>_zones.png`` and
    ``fronts/<folder>/<stem>_front.png`` and vice versa (:class:`DataError` otherwise); stems must parse
    (:func:`parse_stem`). Bounding boxes are optional (``bbox_path=None`` when absent). Scenes come back
    sorted by stem. ``strict_split=True`` requires the train folder to hold exactly the 559 CaFFe images
    (so that ``train`` / ``val`` are the official split) and raises :class:`DataError` otherwise.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: expected one of {', '.join(SPLITS)}")
    root = Path(root)
    folder = "test" if split == "test" else "train"
    sar_dir = root / "sar_images" / folder
    if not sar_dir.is_dir():
        raise DataError(sar_dir, "folder not found",
                        "expected the CaFFe layout <root>/sar_images/{train,test}, zones/…, fronts/…")
    sar_files = sorted(p for p in sar_dir.iterdir()
                       if p.is_file() and p.suffix.lower() == ".png" and not p.name.startswith("."))
    if not sar_files:
        raise DataError(sar_dir, "no SAR images (*.png) found")
    zones = _mask_partners(root / "zones" / folder, "_zones")
    fronts = _mask_partners(root / "fronts" / folder, "_front")
    stems = [p.stem for p in sar_files]
    stem_set = set(stems)
    for kind, partners, suffix in (("zone mask", zones, "_zones"), ("front mask", fronts, "_front")):
        missing = [s for s in stems if s not in partners]
        if missing:
            first = missing[0]
            raise DataError(sar_dir / f"{first}.png",
                            f"no {kind} {first}{suffix}.png" + (f" (and {len(missing) - 1} more images lack one)"
                                                                 if len(missing) > 1 else ""),
                            f"every SAR image needs <stem>{suffix}.png in the matching folder")
        orphans = sorted(s for s in partners if s not in stem_set)
        if orphans:
            raise DataError(partners[orphans[0]], f"{kind} without a SAR image {orphans[0]}.png"
                            + (f" (and {len(orphans) - 1} more)" if len(orphans) > 1 else ""),
                            "remove the stray mask or add the missing image")
    n = len(sar_files)
    if split != "test" and strict_split and n != CAFFE_N_TRAIN:
        raise DataError(sar_dir, f"holds {n} training images, not the {CAFFE_N_TRAIN} of CaFFe, so the "
                        "official train/val split cannot be reproduced",
                        "point the data root at the real CaFFe data or use strict_split=False")
    if split in ("train", "val"):
        val_idx = set(validation_indices(n).tolist())
        keep = [i for i in range(n) if (i in val_idx) == (split == "val")]
    else:
        keep = list(range(n))
    bboxes = _bbox_index(root)
    scenes = []
    for i in keep:
        stem = stems[i]
        scenes.append(CaffeScene(
            stem=stem, meta=parse_stem(stem, sar_files[i]), sar_path=sar_files[i], zones_path=zones[stem],
            front_path=fronts[stem], bbox_path=_find_bbox(stem, bboxes), split=split))
    log.info("CaFFe %s split under %s: %d scenes", split, root, len(scenes))
    return scenes


def load_scene(scene: CaffeScene, *, with_front: bool = True, with_bbox: bool = True) -> dict[str, Any]:
    """Load a scene's arrays.

    Returns a dict with ``image`` (``(H, W)`` uint8 SAR), ``zones`` (``(H, W)`` uint8 class ids 0..3),
    ``front`` (``(H, W)`` uint8 0/1, when ``with_front``), ``bbox`` (:class:`BoundingBox` or ``None``, when
    ``with_bbox``), ``stem`` and ``meta``. Image and masks must have the same size (:class:`DataError`).
    """
    image = read_sar(scene.sar_path)
    zones = read_zones(scene.zones_path)
    if zones.shape != image.shape:
        raise DataError(scene.zones_path, f"zone mask is {zones.shape[0]}x{zones.shape[1]} (HxW) but the SAR "
                        f"image {scene.sar_path.name} is {image.shape[0]}x{image.shape[1]}",
                        "image and masks of a scene must have the same size")
    out: dict[str, Any] = {"stem": scene.stem, "meta": scene.meta, "image": image, "zones": zones}
    if with_front:
        front = read_front(scene.front_path)
        if front.shape != image.shape:
            raise DataError(scene.front_path, f"front mask is {front.shape[0]}x{front.shape[1]} (HxW) but the "
                            f"SAR image {scene.sar_path.name} is {image.shape[0]}x{image.shape[1]}",
                            "image and masks of a scene must have the same size")
        out["front"] = front
    if with_bbox:
        out["bbox"] = (read_bounding_box(scene.bbox_path, image.shape) if scene.bbox_path is not None else None)
    return out
