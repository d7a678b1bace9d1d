"""Apply trained models to new scenes: zone maps, probabilities, uncertainty and georeferenced fronts.

``ssl4sar predict --checkpoint CKPT [--ensemble CKPT …] [--tta] SCENE … --out DIR`` and the library function
:func:`predict_scene` (one scene) / :func:`predict_scenes` (many; bad scenes are skipped and reported).

**Inputs** are read by :mod:`ssl4sar.data.scenes` (any single-band raster GDAL reads: GeoTIFFs in
any CRS, or CaFFe PNGs; 8-bit scaling, georeferencing and pixel spacing are described there).

**Resampling** (``resolution_m``): the training data spans 6–20 m/px (a scene run more than twice as fine or as
coarse is warned about). With a target spacing R, the scene is
read at ``round(H·s_y/R) × round(W·s_x/R)`` px (GDAL ``average`` when shrinking, ``bilinear`` when
enlarging; validity from a ``nearest`` read), the model runs on that grid, and the mean probabilities and
standard deviations are brought back to the scene grid by bilinear interpolation (pixel centres aligned,
edge values repeated); member class maps by nearest neighbour. All outputs are on the scene grid.

**Inference** (:mod:`ssl4sar.inference`): overlapping sliding windows with Gaussian stitching
(``context_size`` = the model's ``img_size``, ``stride`` default C/4 = 128 px for C = 512), for every ensemble
member × TTA rotation (× flip); the softmax maps are averaged (unweighted, Welford order member → rotation →
flip, exactly like :func:`ssl4sar.inference.predict_probabilities`), the class map is the argmax of the mean
and the uncertainty the per-class population standard deviation over the maps.

**Tiles** (``tile_size``): a scene is processed in core tiles of ``tile_size`` px (rounded up to a multiple of
the stride) in the model's frame. For every member/augmentation the tile is read with a halo of at least one
context window (``ceil(C / stride)·stride`` px), and — in the rotated/flipped frame of that augmentation — the
read window starts on the scene's window grid (a multiple of the stride). Every window that contributes to a
core pixel is then the same window, on the same pixels, as in the whole-scene run, so tiled results equal the
whole-scene results (same class map and front). Only the tile's float canvases are in memory; the model-frame
mean / std live in temporary ``.npy`` memory maps in the output folder (removed afterwards), and the outputs
are written window by window. The scene-size uint8 class map and front are held in memory for the
post-processing (its largest-component rules are global), 1 byte/px each; with resampling, the resampled 8-bit
image too. Without ``tile_size`` everything is computed in memory. Opening a scene reads it once in strips to
count its valid pixels (and, for non-uint8 data, to sample the percentiles).

**Post-processing** (:func:`ssl4sar.postprocess.extract_front`, no bounding box): the argmax class map, with
class 0 (NA) written where the scene has no data [deviation: the reference evaluation keeps the network's
prediction there], is turned into a front mask; :mod:`ssl4sar.geo` orders it into lines.

**Outputs** per scene ``<stem>`` in ``out_dir``:

========================================  ====================================================================
``<stem>_zones.tif``                       uint8 class ids (0 NA, 1 rock, 2 glacier, 3 ocean + ice mélange)
``<stem>_probabilities.tif``               K bands, mean softmax: float32, or uint8 = round(255·p) with the
                                           GDAL scale 1/255 (``probability_dtype="uint8"``)
``<stem>_uncertainty.tif``                 K bands, per-class std of the softmax over members × TTA (0 for a
                                           single map), same encoding as the probabilities
``<stem>_front.tif``                       uint8 front mask 0 / 255
``<stem>_front.geojson``                   the front (LineString / MultiLineString, ``null`` when none) in the
                                           scene CRS, properties below
``<stem>_front_wgs84.geojson``             the same in EPSG:4326 (lon, lat; RFC 7946), with ``to_wgs84``
``<stem>_front_members.geojson``           one front per member × augmentation map (``member_fronts``)
``<stem>_overlay.png``                     SAR + zones + front
``<stem>.prediction.json``                 written last by :func:`predict_scenes`: the input file, models and
                                           settings that made the outputs (:mod:`ssl4sar.prediction_records`)
========================================  ====================================================================

Front properties: ``scene``, ``date`` (ISO, from the CaFFe stem, the raster tags or a date in the name),
``sensor``, ``glacier`` (when known), ``length_m``, ``mean_uncertainty`` (mean over front pixels of the largest
per-class std, in probability units), ``n_pixels``, ``n_lines``, ``n_maps``, ``resolution_m``, ``crs``.
:func:`predict_scenes` also writes ``predictions.csv`` (one row per scene) and ``skipped.csv`` (``scene``,
``reason``), both rewritten after every scene, and the CLI exits with the number of failed scenes (at most 125).
Each row says where the scene's time went: ``windows_s`` in the sliding-window passes (the network's part, on
the GPU when there is one) and ``outputs_s`` for the rest (reading, the files above, the front; on the CPU).

**Many scenes, and runs that stop.** A season of scenes takes hours on a CPU. ``resume=True`` (``ssl4sar predict
--resume``) keeps every scene whose record matches its input file, models and settings and predicts the rest,
so a killed run continues where it stopped and new scenes can be added to a folder. What a killed run left of
the scene it was predicting (the tiles' memory-mapped folder, half-written files) is deleted when that scene is
predicted again. Two scenes with the same stem would write the same files, and a scene named like another's
output (``a_zones.tif`` beside ``a.tif``) would be overwritten by it: both are refused before anything is
predicted. The rasters and the overlay carry the metadata item ``ssl4sar_output`` (their kind), so the outputs
given back as scenes (``predict scenes/*.tif --out scenes``, run again) are left out and counted, not predicted.
A full disk stops the run with a :class:`~ssl4sar.errors.DiskFull` naming the output folder: before a scene's
windows, when the space its outputs can take (uncompressed) is not free or the tiles' memory maps cannot be
reserved, and whenever a write finds no space. GDAL does not always report a failed write, so the check comes
first.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import glob
import inspect
import logging
import math
import os
import re
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rasterio.errors import RasterioError
from rasterio.transform import Affine
from rasterio.windows import Window

from ssl4sar import geo, prediction_records
from ssl4sar.config import paper_preset
from ssl4sar.data.manifest import format_size
from ssl4sar.data.scenes import (
    FRONT_MASK_TAGS,
    PREDICT_OUTPUT_TAG,
    ZONES_TAGS,
    SceneSource,
    open_scene,
    predict_output_kind,
    scene_metadata,
    to_model_input,
)
from ssl4sar.domain import CAFFE_PIXEL_SPACING_M, CLASS_NAMES
from ssl4sar.errors import DataError, DiskFull, SettingError
from ssl4sar.inference import (
    Rect,
    class_map,
    ensemble_members,
    tile_rects,
    tiled_ensemble_probabilities,
)
from ssl4sar.inference_settings import check_window_settings, ensemble_context_size
from ssl4sar.io import atomic_leftovers, atomic_path, disk_full_raises, free_disk_bytes, reserve_disk_space
from ssl4sar.postprocess import DEFAULT_MIN_FRONT_LENGTH_M, check_min_front_length_m, extract_front
from ssl4sar.prediction_writers import (
    SUMMARY_COLUMNS,
    ProbabilityDtype,
    crs_label,
    encode_probabilities,
    mean_at_front,
    open_for_write,
    raster_profile,
    write_csv,
    write_overlay,
    write_raster,
)

__all__ = [
    "CLASS_NAMES", "SceneSource", "SceneResult", "PredictionRun", "open_scene", "scene_metadata", "to_model_input",
    "predict_scene", "predict_scenes", "output_paths",
]

log = logging.getLogger(__name__)

_RESAMPLE_TOL = 1e-3
#: factor outside the training spacing (m/px) from which a scene's spacing is warned about
_SPACING_TOLERANCE = 2.0


# --------------------------------------------------------------------------------------------------------------
# results

@dataclass
class SceneResult:
    """What :func:`predict_scene` produced for one scene.

    ``geometry`` is the front in the scene CRS (pixel coordinates without CRS), ``None`` when no front was found;
    ``outputs`` maps ``zones``, ``probabilities``, ``uncertainty``, ``front_mask``, ``front``, (``front_wgs84``,
    ``front_members``, ``overlay``) to files. Lengths in metres, spacings in m/px.
    """

    path: Path
    stem: str
    outputs: dict[str, Path]
    crs: str | None
    transform: tuple[float, ...]
    shape: tuple[int, int]
    model_shape: tuple[int, int]
    resolution_m: float
    date: dt.date | None
    sensor: str | None
    glacier: str | None
    n_maps: int
    n_front_pixels: int
    length_m: float
    mean_uncertainty: float | None
    geometry: Any = None
    #: seconds in the sliding-window passes (network, stitching, ensemble mean and std): the accelerator's part
    windows_s: float | None = None
    #: seconds for everything else: reading the scene, the outputs, the front (the CPU's part)
    outputs_s: float | None = None

    def summary(self) -> dict[str, Any]:
        """One CSV row."""
        return {"scene": self.stem, "path": str(self.path), "date": self.date.isoformat() if self.date else "",
                "sensor": self.sensor or "", "glacier": self.glacier or "", "crs": self.crs or "pixel",
                "height_px": self.shape[0], "width_px": self.shape[1], "resolution_m": round(self.resolution_m, 4),
                "model_height_px": self.model_shape[0], "model_width_px": self.model_shape[1],
                "n_maps": self.n_maps, "n_front_pixels": self.n_front_pixels, "length_m": round(self.length_m, 3),
                "mean_uncertainty": "" if self.mean_uncertainty is None else round(self.mean_uncertainty, 6),
                "front": str(self.outputs.get("front", "")),
                "windows_s": "" if self.windows_s is None else round(self.windows_s, 3),
                "outputs_s": "" if self.outputs_s is None else round(self.outputs_s, 3)}

    def record_fields(self) -> dict[str, Any]:
        """Everything but the path, outputs and geometry, as exact JSON values (a scene's record)."""
        return {"stem": self.stem, "crs": self.crs, "transform": list(self.transform), "shape": list(self.shape),
                "model_shape": list(self.model_shape), "resolution_m": self.resolution_m,
                "date": self.date.isoformat() if self.date else None, "sensor": self.sensor,
                "glacier": self.glacier, "n_maps": self.n_maps, "n_front_pixels": self.n_front_pixels,
                "length_m": self.length_m, "mean_uncertainty": self.mean_uncertainty,
                "windows_s": self.windows_s, "outputs_s": self.outputs_s}

    @classmethod
    def from_record(cls, path: Path, fields: dict[str, Any], outputs: dict[str, Path]) -> SceneResult:
        """The result of an earlier prediction: its :meth:`record_fields`, with the front read from its GeoJSON."""
        features = geo.read_geojson(outputs["front"], default_crs=None).features
        date = fields.get("date")
        return cls(path=path, stem=fields["stem"], outputs=outputs, crs=fields["crs"],
                   transform=tuple(fields["transform"]), shape=tuple(fields["shape"]),
                   model_shape=tuple(fields["model_shape"]), resolution_m=float(fields["resolution_m"]),
                   date=dt.date.fromisoformat(date) if date else None, sensor=fields["sensor"],
                   glacier=fields["glacier"], n_maps=int(fields["n_maps"]),
                   n_front_pixels=int(fields["n_front_pixels"]), length_m=float(fields["length_m"]),
                   mean_uncertainty=fields["mean_uncertainty"],
                   geometry=features[0].geometry if features else None,
                   windows_s=fields.get("windows_s"), outputs_s=fields.get("outputs_s"))


@dataclass
class PredictionRun:
    """Results of :func:`predict_scenes`: the scenes done (in input order, those kept from an earlier run
    included), ``(path, reason)`` of those skipped, the wall-clock seconds it took, the paths of the scenes
    whose earlier outputs were kept (``resume``), and the files left out because ``predict`` wrote them."""

    results: list[SceneResult]
    skipped: list[tuple[Path, str]]
    seconds: float = 0.0
    reused: list[Path] = field(default_factory=list)
    left_out: list[Path] = field(default_factory=list)  # given as scenes, but outputs of an earlier prediction


# --------------------------------------------------------------------------------------------------------------
# the core

#: what to do when the disk of the output folder is full (:class:`~ssl4sar.errors.DiskFull`)
_RESUME_HINT = "then run the same command with --resume: the scenes finished before are kept"
_DISK_FULL_HINT = ("free some space (--uint8-probabilities makes the two probability rasters 4x smaller), "
                   + _RESUME_HINT)
#: disk space a scene's outputs can take beside their rasters: GeoJSON fronts, overlay PNG, record (a generous bound)
_SMALL_OUTPUTS_BYTES = 32 * 2**20


def _alloc(shape: tuple[int, ...], dtype: Any, tmpdir: Path | None, name: str) -> np.ndarray:
    """A zeroed array in memory, or (``tmpdir``) a memory map whose disk space is reserved at once: a full disk is
    then a :class:`DiskFull` now, not a SIGBUS in the middle of the windows."""
    if tmpdir is None:
        return np.zeros(shape, dtype=dtype)
    path = tmpdir / f"{name}.npy"
    array = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
    try:
        reserve_disk_space(path, path.stat().st_size)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        del array
        stem = tmpdir.name[1:].rsplit(".", 1)[0]     # the folder is .<stem>.XXXXXXXX
        size = format_size(int(np.prod(shape)) * np.dtype(dtype).itemsize)
        raise DiskFull(tmpdir.parent, f"no space left on the device for the tiles' memory maps of {stem} ({size} "
                       f"for {name}.npy)", f"free some space, or predict without tiles (no --tile-size: in "
                       f"memory), {_RESUME_HINT}") from exc
    return array


def _outputs_bytes_bound(shape: tuple[int, int], k_classes: int, probability_dtype: str) -> int:
    """The most disk space the outputs of a scene of ``shape`` can take: the rasters uncompressed (deflate never
    grows data by more than a fraction of a percent), with 1 % and 1 MiB each for headers and tile indexes, and
    :data:`_SMALL_OUTPUTS_BYTES` for the rest."""
    px = int(shape[0]) * int(shape[1])
    rasters = [2 * k_classes * px * np.dtype(probability_dtype).itemsize, px, px]   # probabilities + std, zones, front
    return sum(int(b * 1.01) + 2**20 for b in rasters) + _SMALL_OUTPUTS_BYTES


def _check_free_space(out: Path, scene: Path, shape: tuple[int, int], k_classes: int, probability_dtype: str) -> None:
    need, free = _outputs_bytes_bound(shape, k_classes, probability_dtype), free_disk_bytes(out)
    if free < need:
        raise DiskFull(out, f"no space for the outputs of {scene.name}: they can take up to {format_size(need)} "
                            f"(their uncompressed size), and {format_size(free)} are free", _DISK_FULL_HINT)



def _bilinear_axis(start: int, stop: int, n_out: int, n_src: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices (i0, i1) and weight of i1 for output pixel centres ``start..stop-1`` (global, exact)."""
    return _bilinear_index(np.arange(start, stop), n_out, n_src)


def _bilinear_index(index: np.ndarray, n_out: int, n_src: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_bilinear_axis` for any output pixel indices (an integer array)."""
    u = (np.asarray(index).astype(np.float64) + 0.5) * (n_src / n_out) - 0.5
    u = np.clip(u, 0.0, n_src - 1.0)
    i0 = np.floor(u).astype(np.int64)
    i1 = np.minimum(i0 + 1, n_src - 1)
    return i0, i1, (u - i0).astype(np.float32)


def _nearest_axis(start: int, stop: int, n_out: int, n_src: int) -> np.ndarray:
    u = (np.arange(start, stop, dtype=np.float64) + 0.5) * (n_src / n_out)
    return np.clip(np.floor(u).astype(np.int64), 0, n_src - 1)


class _SceneFrame:
    """Model-frame arrays seen on the scene grid (identity, or bilinear / nearest resampling)."""

    def __init__(self, scene_shape: tuple[int, int], model_shape: tuple[int, int]) -> None:
        self.scene_shape = scene_shape
        self.model_shape = model_shape
        self.identity = scene_shape == model_shape

    def bilinear(self, arr: np.ndarray, rect: Rect) -> np.ndarray:
        y0, y1, x0, x1 = rect
        if self.identity:
            return np.asarray(arr[:, y0:y1, x0:x1])
        (hs, ws), (hm, wm) = self.scene_shape, self.model_shape
        ri0, ri1, rw = _bilinear_axis(y0, y1, hs, hm)
        ci0, ci1, cw = _bilinear_axis(x0, x1, ws, wm)
        r_lo, r_hi = int(ri0.min()), int(ri1.max()) + 1
        c_lo, c_hi = int(ci0.min()), int(ci1.max()) + 1
        crop = np.asarray(arr[:, r_lo:r_hi, c_lo:c_hi], dtype=np.float32)
        ri0, ri1, ci0, ci1 = ri0 - r_lo, ri1 - r_lo, ci0 - c_lo, ci1 - c_lo
        top = crop[:, ri0][:, :, ci0] * (1 - cw) + crop[:, ri0][:, :, ci1] * cw
        bot = crop[:, ri1][:, :, ci0] * (1 - cw) + crop[:, ri1][:, :, ci1] * cw
        return (top * (1 - rw)[:, None] + bot * rw[:, None]).astype(np.float32)

    def bilinear_at(self, arr: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """``(K, n)``: :meth:`bilinear` at the scene pixels ``(rows[i], cols[i])`` only, the same float32 values
        (the same operations, element by element)."""
        if self.identity:
            return np.asarray(arr[:, rows, cols], dtype=np.float32)
        (hs, ws), (hm, wm) = self.scene_shape, self.model_shape
        ri0, ri1, rw = _bilinear_index(rows, hs, hm)
        ci0, ci1, cw = _bilinear_index(cols, ws, wm)
        a = np.asarray(arr)
        top = a[:, ri0, ci0].astype(np.float32) * (1 - cw) + a[:, ri0, ci1].astype(np.float32) * cw
        bot = a[:, ri1, ci0].astype(np.float32) * (1 - cw) + a[:, ri1, ci1].astype(np.float32) * cw
        return (top * (1 - rw) + bot * rw).astype(np.float32)

    def nearest(self, arr: np.ndarray, rect: Rect) -> np.ndarray:
        y0, y1, x0, x1 = rect
        if self.identity:
            return np.asarray(arr[y0:y1, x0:x1])
        (hs, ws), (hm, wm) = self.scene_shape, self.model_shape
        ri = _nearest_axis(y0, y1, hs, hm)
        ci = _nearest_axis(x0, x1, ws, wm)
        return np.asarray(arr)[ri][:, ci]


def predict_scene(models: Any, path: str | Path, out_dir: str | Path, *, resolution_m: float | None = None,
                  rotations: Sequence[int] = (0,), flips: bool = False, tile_size: int | None = None,
                  context_size: int | None = None, stride: int | None = None, sigma: float | None = None,
                  batch_size: int = paper_preset().inference.batch_size, device: str | torch.device | None = None,
                  amp_dtype: torch.dtype | None = None, min_front_length_m: float = DEFAULT_MIN_FRONT_LENGTH_M,
                  to_wgs84: bool = False,
                  allow_no_crs: bool = False, pixel_size_m: float | None = None,
                  value_range: tuple[float, float] | None = None, percentiles: tuple[float, float] = (1.0, 99.0),
                  probability_dtype: ProbabilityDtype = "float32", member_fronts: bool = False,
                  overlay: bool = True, line_mode: geo.LineMode = "chains", progress: bool = False) -> SceneResult:
    """Predict one scene and write its outputs (module docstring) to ``out_dir``.

    Args:
        models: one model or ensemble members, each mapping ``(B, 1, C, C)`` in [0, 1] to logits ``(B, K, C, C)``
            (e.g. :func:`ssl4sar.models.convert.load_model`), already on ``device``.
        path: the scene (GeoTIFF, CaFFe PNG, any single-band raster).
        out_dir: output folder (created).
        resolution_m: run the model at this pixel spacing (m/px) instead of the scene's; None = scene grid.
        rotations: TTA quarter turns (``(0, 1, 2, 3)`` in the paper); flips: also the mirrored versions.
        tile_size: process the model-frame image in tiles of this many px (rounded up to a multiple of the
            stride); None = whole scene at once. Results are identical either way.
        context_size: window side C in px (default: the first model's ``img_size``); stride: default C / 4;
            sigma: Gaussian σ in px (default C / 16); batch_size: windows per forward pass; device: where the
            model runs (default: its parameters' device); amp_dtype: autocast dtype (e.g. ``torch.bfloat16`` on
            a GPU), the softmax stays float32.
        min_front_length_m: shorter front pieces are removed (§7.2, converted with the scene's spacing).
        to_wgs84: also write the front in EPSG:4326 (needs a CRS).
        allow_no_crs: accept GeoTIFFs without CRS (pixel coordinates); pixel_size_m: spacing when unknown.
        value_range, percentiles: scaling of non-uint8 input (module docstring).
        probability_dtype: ``"float32"`` or ``"uint8"`` (round(255·p), GDAL scale 1/255) for the K-band rasters.
        member_fronts: also extract and write one front per member × augmentation map.
        overlay: write the overlay PNG.
        line_mode: how front pixels become lines (:func:`ssl4sar.geo.front_polylines`).
        progress: tqdm bars.

    Raises:
        DataError: for a bad scene (unreadable, no CRS, no data, unknown spacing), naming the file.
        SettingError: for a setting outside its values (e.g. a stride above C / 2, a pixel spacing ≤ 0), before the
            scene is read.
    """
    members = ensemble_members(models)
    rots = [int(k) % 4 for k in rotations] or [0]
    c, s, sg = _check_settings(members, context_size=context_size, stride=stride, sigma=sigma,
                               batch_size=batch_size, resolution_m=resolution_m, tile_size=tile_size,
                               pixel_size_m=pixel_size_m, value_range=value_range,
                               min_front_length_m=min_front_length_m, probability_dtype=probability_dtype)
    halo = -(-c // s) * s
    tile = None if tile_size is None else max(s, -(-int(tile_size) // s) * s)
    window_kwargs: dict[str, Any] = {"context_size": c, "stride": s, "sigma": sg, "batch_size": batch_size,
                                     "device": device, "amp_dtype": amp_dtype, "progress": progress and tile is None}
    start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(out, Path(path).stem)
    src = open_scene(path, allow_no_crs=allow_no_crs, pixel_size_m=pixel_size_m, value_range=value_range,
                     percentiles=percentiles)
    try:
        with disk_full_raises(out, f"the outputs of {src.path.name}", _DISK_FULL_HINT):
            result = _predict_open_scene(members, src, out, resolution_m, rots, flips, tile, halo, s, window_kwargs,
                                         min_front_length_m, to_wgs84, probability_dtype, member_fronts, overlay,
                                         line_mode, progress)
    finally:
        src.close()
    assert result.windows_s is not None
    result.outputs_s = time.perf_counter() - start - result.windows_s
    log.info("%s: %.1f s in the windows, %.1f s for the outputs", result.stem, result.windows_s, result.outputs_s)
    return result


def _window_settings(members: list[Any], context_size: int | None, stride: int | None, sigma: float | None
                     ) -> tuple[int, int, float]:
    """The window side C, stride and Gaussian σ (px) that :func:`predict_scene` uses: those given, else the first
    member's ``img_size``, C / 4 and T / 8 = C / 16 (the σ :func:`~ssl4sar.inference.sliding_window_probabilities`
    takes by default). A member of another input size is a :class:`DataError` (:func:`ensemble_context_size`)."""
    c = ensemble_context_size(members, context_size=context_size)
    s = int(stride) if stride is not None else max(1, c // 4)
    sg = float(sigma) if sigma is not None else (c // 2) / 8.0
    return c, s, sg


def _check_settings(members: list[Any], *, context_size: int | None, stride: int | None, sigma: float | None,
                    batch_size: int, resolution_m: float | None, tile_size: int | None, pixel_size_m: float | None,
                    value_range: tuple[float, float] | None, min_front_length_m: float,
                    probability_dtype: str) -> tuple[int, int, float]:
    """:class:`SettingError` for a setting of :func:`predict_scene` outside its values, naming it; else the window
    side, stride and σ used (:func:`_window_settings`). NaN and infinity fail every check."""
    c, s, sg = _window_settings(members, context_size, stride, sigma)
    check_window_settings(c, s, sg, int(batch_size))
    for name, value, unit in (("resolution_m", resolution_m, "m/px"), ("pixel_size_m", pixel_size_m, "m/px"),
                              ("tile_size", tile_size, "px")):
        if value is not None and not (value > 0 and math.isfinite(value)):
            raise SettingError(f"{name} must be a positive number of {unit}, got {value:g}")
    check_min_front_length_m(min_front_length_m)
    if value_range is not None:
        lo, hi = (float(v) for v in value_range)
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise SettingError(f"value_range needs finite LO < HI, got ({lo:g}, {hi:g})")
    if probability_dtype not in ("float32", "uint8"):
        raise SettingError(f"probability_dtype must be 'float32' or 'uint8', got {probability_dtype!r}")
    return c, s, sg


#: the settings of :func:`predict_scene` that :func:`_check_settings` checks
_CHECKED_SETTINGS = tuple(inspect.signature(_check_settings).parameters)[1:]


def _warn_far_from_training_spacing(path: Path, spacing_m: float, chosen: bool) -> None:
    """Warn when the model runs at a pixel spacing more than :data:`_SPACING_TOLERANCE` times outside the CaFFe
    training range (:data:`~ssl4sar.domain.CAFFE_PIXEL_SPACING_M`): glacier and ocean then look like nothing it
    learnt, and fronts are missed or misplaced without any other sign."""
    lo, hi = CAFFE_PIXEL_SPACING_M
    if lo / _SPACING_TOLERANCE <= spacing_m <= hi * _SPACING_TOLERANCE:
        return
    advice = (f"choose a resolution_m (--resolution-m) within {lo:g}–{hi:g}" if chosen else
              f"resample it with resolution_m (--resolution-m), e.g. {hi:g}")
    log.warning("%s: the model runs at %.3g m/px, far from the %g–%g m/px of its training data (CaFFe); fronts may "
                "be missed or misplaced: %s", path, spacing_m, lo, hi, advice)


def _predict_open_scene(members: list[Any], src: SceneSource, out: Path, resolution_m: float | None,
                        rots: list[int], flips: bool, tile: int | None, halo: int, stride: int,
                        window_kwargs: dict[str, Any], min_front_length_m: float, to_wgs84: bool,
                        probability_dtype: ProbabilityDtype, member_fronts: bool, overlay: bool,
                        line_mode: geo.LineMode, progress: bool) -> SceneResult:
    h, w = src.shape
    model_shape = src.shape
    _warn_far_from_training_spacing(src.path, resolution_m or src.resolution_m, resolution_m is not None)
    if resolution_m is not None:
        sx, sy = src.pixel_size_m
        if abs(sx / resolution_m - 1) > _RESAMPLE_TOL or abs(sy / resolution_m - 1) > _RESAMPLE_TOL:
            model_shape = (max(1, round(h * sy / resolution_m)), max(1, round(w * sx / resolution_m)))
    if model_shape != src.shape:
        log.info("%s: resampling %dx%d px at %.2f m to %dx%d px at %.2f m", src.path, h, w, src.resolution_m,
                 model_shape[0], model_shape[1], resolution_m)
        resampled = src.read_resampled(model_shape)

        def read(r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
            return resampled[r0:r1, c0:c1]
    else:
        read = src.read
    maps = [(m, k, f) for m in members for k in rots for f in ((False, True) if flips else (False,))]
    n_maps = len(maps)
    model_tiles = tile_rects(model_shape, tile)
    scene_tiles = tile_rects(src.shape, tile)
    stem = src.stem
    planned = output_paths(out, stem)
    paths = {k: planned[k] for k in ("zones", "probabilities", "uncertainty", "front_mask", "front")}
    with contextlib.ExitStack() as stack:
        tmpdir = None
        if tile is not None:
            tmpdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f".{stem}.", dir=out)))
        k_classes = _n_classes(members[0], read, model_shape, window_kwargs)
        mean = _alloc((k_classes, *model_shape), np.float32, tmpdir, "mean")
        std = _alloc((k_classes, *model_shape), np.float32, tmpdir, "std")
        member_maps = _alloc((n_maps, *model_shape), np.uint8, tmpdir, "members") if member_fronts else None
        _check_free_space(out, src.path, src.shape, k_classes, "uint8" if probability_dtype == "uint8" else "float32")
        t_windows = time.perf_counter()
        tiled_ensemble_probabilities(maps, read, model_shape, model_tiles, halo, stride, window_kwargs, mean, std,
                                     member_maps, progress)
        windows_s = time.perf_counter() - t_windows
        if not np.isfinite(mean).all():  # NaN softmax would argmax to NA everywhere: say so instead
            raise DataError(src.path, "the network output is not finite (NaN or inf) for this scene",
                            "check the checkpoint and the image values")
        frame = _SceneFrame(src.shape, model_shape)
        zones = np.zeros(src.shape, dtype=np.uint8)
        names = list(CLASS_NAMES) + [f"class {i}" for i in range(len(CLASS_NAMES), k_classes)]
        prob_dtype = "uint8" if probability_dtype == "uint8" else "float32"
        with atomic_path(paths["probabilities"]) as p_tmp, atomic_path(paths["uncertainty"]) as u_tmp:
            profile = raster_profile(src.shape, k_classes, prob_dtype, src.crs, src.transform)
            with open_for_write(p_tmp, profile) as p_ds, open_for_write(u_tmp, profile) as u_ds:
                for ds, kind, what in ((p_ds, "probabilities", "mean softmax probability"),
                                       (u_ds, "uncertainty", "std of the softmax over maps")):
                    for b in range(k_classes):
                        ds.set_band_description(b + 1, f"{names[b]}: {what}")
                    if probability_dtype == "uint8":
                        ds.scales = [1.0 / 255.0] * k_classes
                    ds.update_tags(n_maps=n_maps, rotations=",".join(map(str, rots)), flips=str(flips),
                                   scene=stem, **{PREDICT_OUTPUT_TAG: kind})
                for rect in scene_tiles:
                    y0, y1, x0, x1 = rect
                    m_t = frame.bilinear(mean, rect)
                    s_t = frame.bilinear(std, rect)
                    z = class_map(m_t)
                    z[src.read(y0, y1, x0, x1) == 0] = 0
                    zones[y0:y1, x0:x1] = z
                    win = Window(x0, y0, x1 - x0, y1 - y0)
                    p_ds.write(encode_probabilities(m_t, probability_dtype), window=win)
                    u_ds.write(encode_probabilities(s_t, probability_dtype), window=win)
        write_raster(paths["zones"], zones, src, "zones", ZONES_TAGS)
        front = extract_front(zones, src.resolution_m, min_front_length_m=min_front_length_m)
        write_raster(paths["front_mask"], front * np.uint8(255), src, "front_mask", FRONT_MASK_TAGS)
        # from the model-frame std still in memory, at the front pixels only, encoded as stored: the GeoTIFF is not
        # read back
        mean_unc = mean_at_front(lambda rows, cols: frame.bilinear_at(std, rows, cols), front, probability_dtype)
        member_geoms: list[tuple[Any, dict[str, Any]]] = []
        if member_maps is not None:
            for mi, (_, k, f) in enumerate(maps):
                mz = np.zeros(src.shape, dtype=np.uint8)
                for rect in scene_tiles:
                    y0, y1, x0, x1 = rect
                    z = frame.nearest(member_maps[mi], rect).astype(np.uint8)
                    z[src.read(y0, y1, x0, x1) == 0] = 0
                    mz[y0:y1, x0:x1] = z
                mf = extract_front(mz, src.resolution_m, min_front_length_m=min_front_length_m)
                g = _front_geometry(mf, src, line_mode)
                per_model = len(rots) * (2 if flips else 1)
                member_geoms.append((g, {"scene": stem, "member": mi, "model": mi // per_model, "rotation": k,
                                         "flip": f, "n_pixels": int(mf.sum()),
                                         "length_m": round(_length_m(g, src), 3)}))
    geometry = _front_geometry(front, src, line_mode)
    length_m = _length_m(geometry, src)
    crs_name = crs_label(src.crs)
    props = {"scene": stem, "date": src.date.isoformat() if src.date else None, "sensor": src.sensor,
             "glacier": src.glacier, "length_m": round(length_m, 3),
             "mean_uncertainty": None if mean_unc is None else round(mean_unc, 6), "n_pixels": int(front.sum()),
             "n_lines": 0 if geometry is None else len(getattr(geometry, "geoms", [geometry])),
             "n_maps": n_maps, "resolution_m": round(src.resolution_m, 4), "crs": crs_name or "pixel",
             "kind": "fused"}
    geo.write_geojson(paths["front"], [(geometry, props)], src.crs)
    if to_wgs84:
        if src.crs is None:
            log.warning("%s: no CRS, cannot write the front in EPSG:4326", src.path)
        else:
            paths["front_wgs84"] = geo.write_geojson(
                planned["front_wgs84"],
                [(geo.reproject_geometry(geometry, src.crs, geo.WGS84), props)], geo.WGS84)
    if member_fronts:
        paths["front_members"] = geo.write_geojson(planned["front_members"], member_geoms, src.crs)
    if overlay:
        paths["overlay"] = write_overlay(planned["overlay"], src, zones, front)
    log.info("%s: front of %d px, %.0f m (%d maps)", stem, int(front.sum()), length_m, n_maps)
    return SceneResult(path=src.path, stem=stem, outputs=paths, crs=crs_name, transform=tuple(src.transform)[:6],
                       shape=src.shape, model_shape=model_shape, resolution_m=src.resolution_m, date=src.date,
                       sensor=src.sensor, glacier=src.glacier, n_maps=n_maps, n_front_pixels=int(front.sum()),
                       length_m=length_m, mean_uncertainty=mean_unc, geometry=geometry, windows_s=windows_s)


#: output kinds whose temporary files (``.<stem>_<kind>.XXXXXXXX.part.<ext>``, :func:`ssl4sar.io.atomic_path`) a
#: killed run can leave
_OUTPUT_KINDS = ("zones", "probabilities", "uncertainty", "front", "front_wgs84", "front_members", "overlay")


def _remove_leftovers(out: Path, stem: str) -> None:
    """Delete what a killed earlier prediction of ``stem`` left in ``out``: the tiles' memory-mapped folder
    (``.<stem>.XXXXXXXX``, two float32 arrays of the scene's size) and half-written outputs and record. Only names
    of exactly these shapes (8 random characters, as :mod:`tempfile` makes them) are touched."""
    tiles = re.compile(rf"\.{re.escape(stem)}\.[a-z0-9_]{{8}}")
    found = [p for p in out.glob(f".{glob.escape(stem)}.*") if tiles.fullmatch(p.name)]
    for name in (stem, f"{stem}.prediction", *(f"{stem}_{kind}" for kind in _OUTPUT_KINDS)):
        found += atomic_leftovers(out, name)
    for p in found:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    removed = len(found)
    if removed:
        log.info("%s: removed %d temporary file(s) of an earlier run that was stopped", out / stem, removed)


def _n_classes(model: Any, read: Any, shape: tuple[int, int], window_kwargs: dict[str, Any]) -> int:
    k = getattr(model, "num_classes", None)
    if isinstance(k, int) and k > 0:
        return k
    c = int(window_kwargs["context_size"])
    probe = np.zeros((c, c), dtype=np.uint8)
    img = read(0, min(c, shape[0]), 0, min(c, shape[1]))
    probe[:img.shape[0], :img.shape[1]] = img
    x = torch.from_numpy(probe.astype(np.float32) / 255.0)[None, None]
    dev = window_kwargs.get("device")
    if dev is not None:
        x = x.to(dev)
    with torch.inference_mode():
        y = model(x)
    y = y[0] if isinstance(y, (tuple, list)) else y
    return int(y.shape[1])


def _front_geometry(front: np.ndarray, src: SceneSource, line_mode: geo.LineMode) -> Any:
    transform = src.transform if src.crs is not None else Affine.identity()
    return geo.front_to_geometry(front, transform, mode=line_mode)


def _length_m(geometry: Any, src: SceneSource) -> float:
    if geometry is None:
        return 0.0
    if src.crs is None:
        return float(geometry.length) * src.resolution_m
    return geo.geometry_length_m(geometry, src.crs)



# --------------------------------------------------------------------------------------------------------------
# many scenes

def predict_scenes(models: Any, paths: Sequence[str | Path], out_dir: str | Path, *, replace: bool = False,
                   resume: bool = False, **kwargs: Any) -> PredictionRun:
    """:func:`predict_scene` for every path; bad scenes are logged, listed in ``skipped.csv`` and skipped.

    Writes ``predictions.csv`` (one row per predicted scene, :meth:`SceneResult.summary`) and ``skipped.csv``
    (``scene,reason``; header only when nothing was skipped) to ``out_dir``, both rewritten after every scene so
    that a stopped run still lists what it finished. Each finished scene also gets a record,
    ``<stem>.prediction.json`` (:mod:`ssl4sar.prediction_records`).

    Args:
        models, kwargs: as for :func:`predict_scene`.
        paths: the scenes. The same file named twice is predicted once; two files with the same stem (their
            outputs would overwrite each other), or a scene that another's output would overwrite, raise a
            :class:`DataError` before anything is predicted. Files that ``predict`` wrote
            (:func:`~ssl4sar.data.scenes.predict_output_kind`: a folder given again after its scenes were
            predicted into it) are left out, logged and listed in :attr:`PredictionRun.left_out`.
        replace: delete ``out_dir`` first (a fresh run; no file of an earlier one is left).
        resume: keep the outputs of scenes whose record shows they were made from the same input file, models
            and settings (an interrupted run, or new scenes added to a folder); predict the others.
    """
    if replace and resume:
        raise ValueError("replace=True deletes the earlier outputs that resume=True would keep: choose one")
    out = Path(out_dir)
    scenes, left_out = _scenes_and_outputs(paths)
    scenes = _distinct_scenes(scenes, out)
    members = ensemble_members(models)
    settings = prediction_records.output_settings(predict_scene, kwargs)
    models_digest = prediction_records.models_sha256(members)
    if resume and models_digest is None:
        raise ValueError("resume=True needs models that are torch.nn.Modules: a plain function has no state by "
                         "which its earlier predictions could be recognised")
    # every setting checked before the first scene; the window values used, not those passed: a default follows the
    # network (its img_size), as evaluate records them
    defaults = {n: p.default for n, p in inspect.signature(predict_scene).parameters.items()}
    c, s, sg = _check_settings(members, **{n: kwargs.get(n, defaults[n]) for n in _CHECKED_SETTINGS})
    settings.update(context_size=c, stride=s, sigma=sg)
    if replace and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    results: list[SceneResult] = []
    skipped: list[tuple[Path, str]] = []
    reused: list[Path] = []
    for p in scenes:
        kept = _earlier_result(out, p, models_digest, settings) if resume else None
        if kept is not None:
            results.append(kept)
            reused.append(p)
            continue
        prediction_records.remove_record(out, p.stem)
        # taken before the scene is read: a record must describe the content its outputs were made from
        identity = _identity(p) if models_digest is not None else None
        try:
            res = predict_scene(members, p, out, **kwargs)
        except DiskFull:  # every later scene would fail alike: stop, keeping the scenes written before
            raise
        except (DataError, RasterioError) as exc:
            reason = exc.problem if isinstance(exc, DataError) else str(exc)
            hint = exc.hint if isinstance(exc, DataError) and exc.hint else None
            log.error("skipping %s: %s%s", p, reason, f" ({hint})" if hint else "")
            skipped.append((p, reason))
        else:
            results.append(res)
            if models_digest is not None:
                _write_record(out, p, res, identity, models_digest, settings)
        _write_tables(out, results, skipped)
    _write_tables(out, results, skipped)
    return PredictionRun(results, skipped, time.perf_counter() - start, reused, left_out)


def _scenes_and_outputs(paths: Sequence[str | Path]) -> tuple[list[Path], list[Path]]:
    """``paths`` split into scenes and files that ``predict`` wrote (logged: one line each, one warning for all)."""
    scenes: list[Path] = []
    outputs: list[Path] = []
    for p in map(Path, paths):
        kind = predict_output_kind(p)
        if kind is None:
            scenes.append(p)
        else:
            outputs.append(p)
            log.info("%s: left out, an output of ssl4sar predict (%s), not a SAR scene", p, kind)
    if outputs:
        names = ", ".join(map(str, outputs[:3])) + (" …" if len(outputs) > 3 else "")
        log.warning("left out %d file(s) that ssl4sar predict wrote, not SAR scenes: %s", len(outputs), names)
    return scenes, outputs


def _write_record(out: Path, scene: Path, res: SceneResult, identity: dict[str, Any] | None, models_digest: str,
                  settings: dict[str, Any]) -> None:
    """The scene's record, when the file still is the one read before its prediction (``identity``); else none
    (logged): its outputs stand, and a resumed run predicts it again."""
    if identity is None or not prediction_records.same_file(identity, scene):
        log.warning("%s: no record written (the file changed or vanished while it was predicted): a resumed run "
                    "predicts this scene again", scene)
        return
    try:
        prediction_records.write_record(out, res.stem, scene, identity, res.record_fields(), res.outputs,
                                        models_digest, settings)
    except OSError as exc:
        log.warning("%s: no record written (%s): a resumed run predicts this scene again", scene, exc)


def _identity(scene: Path) -> dict[str, Any] | None:
    """The scene file's identity for its record; ``None`` when it cannot be read (:func:`predict_scene` says why)."""
    try:
        return prediction_records.file_identity(scene)
    except OSError:
        return None


def _earlier_result(out: Path, scene: Path, models_digest: str | None, settings: dict[str, Any]
                    ) -> SceneResult | None:
    """The result of an earlier prediction of ``scene`` into ``out`` when its record matches (logged), else None
    (and why is logged)."""
    record, why_not = prediction_records.read_matching_record(out, scene.stem, scene, models_digest, settings)
    if record is not None:
        try:
            result = SceneResult.from_record(scene, record["summary"], record["outputs"])
            log.info("%s: kept from an earlier run", scene)
            return result
        except (DataError, KeyError, TypeError, ValueError) as exc:
            why_not = f"its earlier outputs are unreadable ({exc})"
    log.info("%s: predicting (%s)", scene, why_not)
    return None


def _write_tables(out: Path, results: list[SceneResult], skipped: list[tuple[Path, str]]) -> None:
    write_csv(out / "predictions.csv", [r.summary() for r in results], SUMMARY_COLUMNS)
    write_csv(out / "skipped.csv", [{"scene": str(p), "reason": r} for p, r in skipped], ["scene", "reason"])


def _distinct_scenes(paths: Sequence[str | Path], out: Path) -> list[Path]:
    """The paths without repeats of the same file; a :class:`DataError` when two files share a stem.

    Stems are compared without case: on case-insensitive file systems (macOS, Windows) ``Scene.tif`` and
    ``scene.png`` write the same output files.
    """
    scenes: list[Path] = []
    seen: set[Path] = set()
    by_stem: dict[str, list[Path]] = {}
    for p in map(Path, paths):
        key = Path(os.path.realpath(p))
        if key in seen:
            log.warning("%s is given more than once: predicted once", p)
            continue
        seen.add(key)
        scenes.append(p)
        by_stem.setdefault(p.stem.casefold(), []).append(p)
    clashes = [ps for ps in by_stem.values() if len(ps) > 1]
    if clashes:
        listed = "; ".join(f"'{ps[0].stem}': " + ", ".join(map(str, ps)) for ps in clashes)
        raise DataError(out, f"scenes with the same output name would overwrite each other's outputs here: {listed}",
                        "rename them, or predict them into separate output folders")
    for p in scenes:
        for kind, written in output_paths(out, p.stem).items():
            # only a raster can be a scene: a GeoJSON given as one is skipped as unreadable
            if written.suffix in (".tif", ".png") and Path(os.path.realpath(written)) in seen:
                raise DataError(written, f"this scene would be overwritten by the {kind} output of {p}",
                                "predict into another --out folder, or rename the scene")
    return scenes


def output_paths(out: Path, stem: str) -> dict[str, Path]:
    """The files :func:`predict_scene` writes for a scene of this ``stem`` into ``out``, by output kind (the
    optional ones included)."""
    return {"zones": out / f"{stem}_zones.tif", "probabilities": out / f"{stem}_probabilities.tif",
            "uncertainty": out / f"{stem}_uncertainty.tif", "front_mask": out / f"{stem}_front.tif",
            "front": out / f"{stem}_front.geojson", "front_wgs84": out / f"{stem}_front_wgs84.geojson",
            "front_members": out / f"{stem}_front_members.geojson", "overlay": out / f"{stem}_overlay.png"}
