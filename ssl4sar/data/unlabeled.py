"""The SSL4SAR unlabeled pretraining data (spec §2): Sentinel-1 SAR images paired with their glacier's
14-band Sentinel-2 image, and the pretraining samplers (§2.3 train, §2.4 validation).

Layout (what :mod:`ssl4sar.data.construct` and :mod:`ssl4sar.data.synthetic` write, and what this module reads)::

    <root>/sar/train/<Sensor>_<Glacier>_<YYYY-MM-DD>[_anything].{tif,tiff,png}   8-bit single-band SAR
    <root>/sar/val/<Sensor>_<Glacier>_<YYYY-MM-DD>[_anything].{tif,tiff,png}
    <root>/optical/<Glacier>_<anything>.tif                                      Sentinel-2, ≥ 15 bands

- The glacier key of a SAR file is its **second** ``_``-separated field (the reference rule for its
  ``unlabeled_*`` folders, §2.1); an optical file's key is its **first** field. A SAR image is paired with
  the first optical file (sorted by name) with the same key.
- SAR GeoTIFFs must be single-band uint8 (0 = no data). PNG SAR images are read like PIL ``convert('L')``.
- Optical GeoTIFFs carry the Google Earth Engine ``COPERNICUS/S2_SR`` band order (``B1 … B12, AOT, WVP, SCL``
  then optional ``TCI_R/G/B, MSK_CLDPRB, MSK_SNWPRB``); bands 1–12, 14, 15 (1-based) are used
  (:data:`OPTICAL_BANDS`).
- A SAR GeoTIFF and its optical image must share CRS, geotransform and shape (the samplers cut the same
  pixel window from both); for PNG SAR (no georeferencing) only the shape is checked. Anything else is a
  :class:`~ssl4sar.errors.DataError` naming both files.

Optical normalisation (§2.2): NaN (and ±inf) → 0, each band divided by its own maximum over the image,
quantised as ``round(255·x)`` (half-to-even, float32) to uint8. [FIX] a band whose maximum is ≤ 0 becomes
all zeros (logged) instead of a division by zero; negative values are clipped to 0.

Arrays: SAR ``(H, W)`` uint8, optical ``(14, H, W)`` uint8; pretraining samples are float32 in [0, 1]
(``/255``): ``sar`` ``(1, C, C)``, ``optical`` ``(14, C, C)``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import UnidentifiedImageError

from ssl4sar.config import paper_preset
from ssl4sar.data.caffe import read_sar as _read_png_sar
from ssl4sar.data.raster import RasterInfo, check_same_grid, open_image, read_raster, read_raster_info
from ssl4sar.data.sampling import (
    Padding,
    WindowGrid,
    crop_padded,
    resize_bicubic,
    symmetric_indices,
    validation_windows,
    whole_image_padding,
)
from ssl4sar.errors import DataError

__all__ = [
    "S2_SR_BANDS", "OPTICAL_BANDS", "OPTICAL_BAND_NUMBERS", "OPTICAL_BAND_NAMES", "SAR_SUFFIXES",
    "UnlabeledPair", "sar_glacier_key", "optical_glacier_key", "discover_unlabeled", "read_unlabeled_sar",
    "sar_shape", "read_optical", "check_pair_grid", "normalise_optical", "load_pair", "random_pretrain_crop",
    "PretrainCrop", "draw_pretrain_crop",
    "pretrain_validation_windows", "PretrainExample", "pretrain_example",
]

log = logging.getLogger(__name__)
_PAPER = paper_preset().pretrain  # crop scale and flip defaults (§2.3)

#: band order of Google Earth Engine ``COPERNICUS/S2_SR`` exports (1-based band i = S2_SR_BANDS[i-1])
S2_SR_BANDS: tuple[str, ...] = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B11", "B12", "AOT",
                                "WVP", "SCL", "TCI_R", "TCI_G", "TCI_B", "MSK_CLDPRB", "MSK_SNWPRB")
#: the 14 optical target channels: (1-based band number, name); AOT (band 13) is skipped (§2.2)
OPTICAL_BANDS: tuple[tuple[int, str], ...] = tuple(
    (i, S2_SR_BANDS[i - 1]) for i in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 15))
OPTICAL_BAND_NUMBERS: tuple[int, ...] = tuple(b for b, _ in OPTICAL_BANDS)
OPTICAL_BAND_NAMES: tuple[str, ...] = tuple(n for _, n in OPTICAL_BANDS)
MIN_OPTICAL_BANDS = 15
SAR_SUFFIXES = (".tif", ".tiff", ".png")
OPTICAL_SUFFIXES = (".tif", ".tiff")


@dataclass(frozen=True)
class UnlabeledPair:
    """One SAR image of the SSL4SAR layout and the optical image of its glacier.

    ``name`` is the SAR file name without extension; ``split`` is ``train`` or ``val``.
    """

    name: str
    glacier: str
    sar_path: Path
    optical_path: Path
    split: str

    @property
    def georeferenced(self) -> bool:
        """True for GeoTIFF SAR (full grid check); False for PNG SAR (shape check only)."""
        return self.sar_path.suffix.lower() in (".tif", ".tiff")


def sar_glacier_key(path: str | Path) -> str:
    """Glacier key of a SAR file: the second ``_`` field of ``<Sensor>_<Glacier>_<Date>[_…]`` (§2.1)."""
    path = Path(path)
    fields = path.stem.split("_")
    if len(fields) < 2 or not fields[1]:
        raise DataError(path, "SAR file name has no glacier field",
                        "SSL4SAR SAR files are named <Sensor>_<Glacier>_<YYYY-MM-DD>[_anything].tif")
    return fields[1]


def optical_glacier_key(path: str | Path) -> str:
    """Glacier key of an optical file: the first ``_`` field of ``<Glacier>_<anything>.tif``."""
    return Path(path).stem.split("_")[0]


def _optical_index(optical_dir: Path) -> dict[str, Path]:
    if not optical_dir.is_dir():
        raise DataError(optical_dir, "optical folder not found",
                        "expected <root>/optical/<Glacier>_*.tif next to <root>/sar/")
    index: dict[str, Path] = {}
    for p in sorted(optical_dir.iterdir()):
        if not p.is_file() or p.name.startswith(".") or p.suffix.lower() not in OPTICAL_SUFFIXES:
            continue
        key = optical_glacier_key(p)
        if key in index:
            log.warning("several optical images for glacier %s: using %s, ignoring %s", key, index[key].name, p.name)
            continue
        index[key] = p
    if not index:
        raise DataError(optical_dir, "no optical GeoTIFFs (*.tif) found")
    return index


def discover_unlabeled(root: str | Path, split: str, *, glacier_aliases: Mapping[str, str] | None = None,
                       ) -> list[UnlabeledPair]:
    """Pair every SAR image of ``<root>/sar/<split>`` with its glacier's optical image (sorted by name).

    ``glacier_aliases`` maps SAR glacier keys to optical keys where they differ (the reference maps ``COL`` to
    ``Columbia`` for its validation folder). A SAR image without an optical partner raises :class:`DataError`.
    """
    if split not in ("train", "val"):
        raise ValueError(f"unknown split {split!r}: expected 'train' or 'val'")
    root = Path(root)
    sar_dir = root / "sar" / split
    if not sar_dir.is_dir():
        raise DataError(sar_dir, "folder not found", "expected the SSL4SAR layout <root>/sar/{train,val}/, "
                        "<root>/optical/")
    sar_files = sorted(p for p in sar_dir.iterdir()
                       if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in SAR_SUFFIXES)
    if not sar_files:
        raise DataError(sar_dir, "no SAR images (*.tif, *.png) found")
    optical = _optical_index(root / "optical")
    aliases = dict(glacier_aliases or {})
    pairs = []
    for p in sar_files:
        key = sar_glacier_key(p)
        key = aliases.get(key, key)
        opt = optical.get(key)
        if opt is None:
            raise DataError(p, f"no optical image for glacier {key!r} in {root / 'optical'}",
                            f"available glaciers: {', '.join(sorted(optical))}; add <root>/optical/{key}_*.tif")
        pairs.append(UnlabeledPair(name=p.stem, glacier=key, sar_path=p, optical_path=opt, split=split))
    log.info("SSL4SAR %s split under %s: %d SAR images, %d glaciers", split, root, len(pairs),
             len({q.glacier for q in pairs}))
    return pairs


def read_unlabeled_sar(path: str | Path, window: tuple[tuple[int, int], tuple[int, int]] | None = None,
                       ) -> tuple[np.ndarray, RasterInfo | None]:
    """Read a SAR image as ``(H, W)`` uint8 with its :class:`RasterInfo` (``None`` for PNG).

    ``window`` = ``((row_start, row_stop), (col_start, col_stop))``: only these pixels of a GeoTIFF are read (a
    PNG is decoded whole and cut).
    """
    path = Path(path)
    if path.suffix.lower() == ".png":
        arr = _read_png_sar(path)
        if window is not None:
            (r0, r1), (c0, c1) = window
            arr = arr[r0:r1, c0:c1]
        return arr, None
    arr, info = read_raster(path, window=window)
    if info.count != 1 or arr.dtype != np.uint8:
        raise DataError(path, f"SAR GeoTIFF has {info.count} band(s) of {arr.dtype}, expected one uint8 band",
                        "convert the SAR amplitude to 8-bit (0 = no data) before pretraining")
    return arr[0], info


def sar_shape(path: str | Path) -> tuple[int, int]:
    """``(H, W)`` of a SAR file without decoding its pixels."""
    path = Path(path)
    if path.suffix.lower() == ".png":
        if not path.is_file():
            raise DataError(path, "SAR file not found")
        try:
            with open_image(path, "SAR image") as im:
                return int(im.height), int(im.width)
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:
            raise DataError(path, f"cannot decode SAR image: {exc}", "the file is corrupt") from exc
    return read_raster_info(path).shape


def normalise_optical(bands: np.ndarray, path: str | Path | None = None) -> np.ndarray:
    """Per-band max normalisation and 8-bit quantisation of ``(C, H, W)`` reflectances (§2.2) → uint8."""
    bands = np.asarray(bands)
    out = np.zeros(bands.shape, dtype=np.uint8)
    for c in range(bands.shape[0]):  # one band at a time: a float64 copy of the whole stack is 8x the output
        x = np.nan_to_num(bands[c].astype(np.float64), copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        top = float(x.max()) if x.size else 0.0
        if top <= 0.0:
            name = OPTICAL_BAND_NAMES[c] if bands.shape[0] == len(OPTICAL_BAND_NAMES) else str(c)
            log.warning("%s: optical band %s has no positive value; using zeros", path, name)
            continue
        x /= top
        scaled = x.astype(np.float32)
        del x
        np.clip(scaled, 0.0, 1.0, out=scaled)
        scaled *= np.float32(255.0)
        out[c] = np.round(scaled, out=scaled)  # round half to even, then an exact cast of 0 … 255
    return out


def read_optical(path: str | Path) -> tuple[np.ndarray, RasterInfo]:
    """Read the 14 target bands of an S2_SR GeoTIFF as normalised ``(14, H, W)`` uint8 (see the module doc)."""
    path = Path(path)
    info = read_raster_info(path)
    if info.count < MIN_OPTICAL_BANDS:
        raise DataError(path, f"optical image has {info.count} band(s), expected at least {MIN_OPTICAL_BANDS} in the "
                        "COPERNICUS/S2_SR order", "export B1…B12, AOT, WVP, SCL from Earth Engine")
    bands, info = read_raster(path, list(OPTICAL_BAND_NUMBERS))
    return normalise_optical(bands, path), info


def load_pair(pair: UnlabeledPair, optical: np.ndarray | None = None,
              optical_info: RasterInfo | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Load ``(sar (H, W) uint8, optical (14, H, W) uint8)`` of a pair, checking that the grids agree.

    ``optical`` / ``optical_info`` may be passed in (already read, e.g. cached per glacier).
    """
    sar, sar_info = read_unlabeled_sar(pair.sar_path)
    if optical is None or optical_info is None:
        optical, optical_info = read_optical(pair.optical_path)
    check_pair_grid(pair, sar.shape, sar_info, optical_info)
    return sar, optical


def check_pair_grid(pair: UnlabeledPair, shape: tuple[int, int], sar_info: RasterInfo | None,
                    optical_info: RasterInfo) -> None:
    """Raise :class:`DataError` naming both files unless the SAR grid (``shape`` and, for GeoTIFF SAR, its
    ``sar_info``) equals the optical image's grid."""
    if sar_info is None:
        if tuple(shape) != optical_info.shape:
            raise DataError(pair.sar_path, f"SAR image is {shape[0]}x{shape[1]} (HxW) but its optical image "
                            f"{pair.optical_path} is {optical_info.shape[0]}x{optical_info.shape[1]}",
                            "SAR and optical must be co-registered on the same pixel grid")
        return
    check_same_grid(sar_info, optical_info)


def random_pretrain_crop(sar: np.ndarray, optical: np.ndarray, context_size: int, rng: np.random.Generator, *,
                         min_scale: float = _PAPER.min_scale, prob_flip: float = _PAPER.prob_flip
                         ) -> tuple[np.ndarray, np.ndarray]:
    """One pretraining sample (§2.3) from an unpadded SAR ``(H, W)`` and optical ``(14, H, W)`` pair (uint8).

    Both are (virtually) padded with ``pad_whole_image(·, C)``; a ``C × C`` window at a uniform top-left in
    ``[0, Hp − C) × [0, Wp − C)``; inside it a ``t × t`` sub-window, ``t = int(C·s)``, ``s ~ U[min_scale, 1)``, at a
    uniform offset in ``[0, C − t)``, resized back to ``C × C`` bicubically (SAR and every band); then, with
    probability ``prob_flip``, a horizontal flip of both ([FIX] the reference's ``cv2.flip`` on ``(C, H, W)``
    arrays flips vertically by accident). Returns ``(sar (C, C), optical (14, C, C))`` uint8.
    """
    if sar.shape != optical.shape[-2:]:
        raise ValueError(f"SAR {sar.shape} and optical {optical.shape} are not on the same grid")
    crop = draw_pretrain_crop(sar.shape, context_size, rng, min_scale=min_scale, prob_flip=prob_flip)
    return crop.apply(crop.cut(sar), crop.cut(optical))


@dataclass(frozen=True)
class PretrainCrop:
    """Where one pretraining sample lies (§2.3): the ``size × size`` window at ``(top, left)`` of the image padded
    by ``padding``, resized to ``context_size``, mirrored left-right when ``flip``."""

    padding: Padding
    top: int
    left: int
    size: int
    context_size: int
    flip: bool

    def _source_indices(self, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Rows and columns of the unpadded ``shape`` that the crop's rows and columns come from (mirrored)."""
        return (symmetric_indices(self.top - self.padding.top, self.size, shape[0]),
                symmetric_indices(self.left - self.padding.left, self.size, shape[1]))

    def source_window(self, shape: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
        """``((row_start, row_stop), (col_start, col_stop))`` of the unpadded ``shape`` that the crop reads."""
        rows, cols = self._source_indices(shape)
        return (int(rows.min()), int(rows.max()) + 1), (int(cols.min()), int(cols.max()) + 1)

    def cut(self, arr: np.ndarray, window_origin: tuple[int, int] | None = None,
            shape: tuple[int, int] | None = None) -> np.ndarray:
        """The crop of ``(..., H, W)`` ``arr``: the whole image, or (``window_origin``, the image's ``shape``) the
        part of it that :meth:`source_window` names."""
        if window_origin is None:
            return crop_padded(arr, self.padding, self.top, self.left, self.size, self.size)
        assert shape is not None
        rows, cols = self._source_indices(shape)
        return np.take(np.take(arr, rows - window_origin[0], axis=-2), cols - window_origin[1], axis=-1)

    def apply(self, sar_cut: np.ndarray, optical_cut: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Resize the cut SAR ``(t, t)`` and optical ``(14, t, t)`` to the context size (bicubic) and flip them."""
        c = self.context_size
        stack = resize_bicubic(np.concatenate([sar_cut[None], optical_cut], axis=0), (c, c))
        if self.flip:
            stack = stack[..., ::-1]
        stack = np.ascontiguousarray(stack)
        return stack[0], stack[1:]


def draw_pretrain_crop(shape: tuple[int, int], context_size: int, rng: np.random.Generator, *,
                       min_scale: float = _PAPER.min_scale, prob_flip: float = _PAPER.prob_flip) -> PretrainCrop:
    """Draw the crop of one pretraining sample of an unpadded ``(H, W)`` image (see :func:`random_pretrain_crop`)."""
    c = int(context_size)
    pad = whole_image_padding(tuple(shape), c)
    ph, pw = pad.padded_shape(tuple(shape))
    top = int(rng.integers(0, ph - c))
    left = int(rng.integers(0, pw - c))
    scale = rng.random() * (1.0 - min_scale) + min_scale
    t = max(1, int(c * scale))
    top += int(rng.integers(0, max(1, c - t)))
    left += int(rng.integers(0, max(1, c - t)))
    flip = bool(prob_flip > 0 and rng.random() < prob_flip)
    return PretrainCrop(padding=pad, top=top, left=left, size=t, context_size=c, flip=flip)


def pretrain_validation_windows(shape: tuple[int, int], context_size: int) -> WindowGrid:
    """Validation windows of §2.4: the labelled validation grid (§3.4) with target ``C/2`` (stride ``C/2``)."""
    return validation_windows(shape, int(context_size) // 2)


@dataclass
class PretrainExample:
    """One pair as the reader returns it, subsampled by ``step`` for display, and one pretraining sample from it.

    ``sar`` (H/step, W/step) and ``optical`` (14, H/step, W/step) uint8 are for display only; ``crop_sar``
    (context, context) and ``crop_optical`` (14, context, context) are what the sampler gives the network.
    """

    pair: UnlabeledPair
    sar: np.ndarray
    optical: np.ndarray
    step: int
    crop_sar: np.ndarray
    crop_optical: np.ndarray

    @property
    def context(self) -> int:
        return int(self.crop_sar.shape[-1])

    @property
    def title(self) -> str:
        """Figure title of the whole pair: SAR and optical file, and the display subsampling."""
        return (f"{self.pair.name} and {self.pair.optical_path.name} (whole image"
                + (f", every {self.step}th pixel)" if self.step > 1 else ")"))


def pretrain_example(root: str | Path, pretrain_cfg: Mapping[str, Any], rng: np.random.Generator, *,
                     split: str = "train", max_side_px: int = 1024) -> PretrainExample:
    """The first pair of ``<root>/sar/<split>`` and one pretraining sample drawn from it with the preset's pretraining
    settings (``context_size``, ``min_scale``, ``prob_flip``; :func:`random_pretrain_crop`); the whole images are
    subsampled to at most ``max_side_px`` pixels a side for display. :class:`DataError` when the split is empty."""
    from ssl4sar.domain import display_step

    pairs = discover_unlabeled(root, split)
    if not pairs:
        raise DataError(Path(root) / "sar" / split, "no SAR image paired with an optical image")
    pair = pairs[0]
    sar, optical = load_pair(pair)
    step = display_step(sar.shape, max_side_px)
    crop_sar, crop_optical = random_pretrain_crop(sar, optical, int(pretrain_cfg["context_size"]), rng,
                                                  min_scale=float(pretrain_cfg["min_scale"]),
                                                  prob_flip=float(pretrain_cfg["prob_flip"]))
    return PretrainExample(pair=pair, sar=sar[::step, ::step], optical=optical[:, ::step, ::step], step=step,
                           crop_sar=crop_sar, crop_optical=crop_optical)
