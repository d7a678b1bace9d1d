"""Whole-scene inference (spec §7.1, §9): sliding windows with Gaussian stitching, TTA, ensembles.

The network always sees a ``C × C`` context window (C = 512 in the paper) and only the centre ``T × T``
(T = C / 2) of its output is kept. Two stitching schemes exist in the reference:

* **overlapping** (:func:`sliding_window_probabilities`, the reported test results): the image is padded
  symmetrically by ``(C − T) / 2`` on all sides, then on the right/bottom up to the window grid; windows start on
  a ``stride`` grid (128 px in the paper); the softmax of each centre crop is weighted by a Gaussian importance
  map ``g`` (:func:`gaussian_importance_map`, σ = T / 8) and ``Σ prob·g / Σ g`` is the per-class probability.
* **non-overlapping** (:func:`non_overlapping_class_map`, validation during training): the image is padded to
  ``(H // T + 2)·T`` (half-to-even rounding of the split, like the reference), windows start on a T-grid, the
  argmax centre tiles tile the canvas, which is centre-cropped back. Tiles are placed by their numeric index
  (the reference sorted ``%03d`` names as strings, which breaks at ≥ 1000 tiles) [FIX].

Memory: one ``(K, H, W)`` float32 canvas plus one ``(H, W)`` weight canvas; windows are cut lazily from the padded
image and batched, never materialised per scene. Everything runs under ``torch.inference_mode`` on the model's
device (or ``device``); the canvases live on ``canvas_device`` (default: the model's device).

Ensembles and TTA (:func:`predict_probabilities`, §9): every member × every rotation (k × 90° clockwise like the
reference's ``cv2.ROTATE_90_CLOCKWISE`` applied k times) [× horizontal flip] is predicted, rotated back, and the
softmax maps are averaged without weights; the class map is the argmax of the mean and the per-class population
standard deviation over the maps is the uncertainty (:class:`RunningMoments`). :func:`predict_with_and_without_tta`
gives the ensemble without and with TTA from one set of passes (each member's unrotated map serves both).

Large scenes (:func:`tiled_ensemble_probabilities`, used by :mod:`ssl4sar.predict`): the same maps computed core
tile by core tile, each tile read with a halo that starts on the window grid of its rotated/flipped frame, so
that the result equals the whole-scene one.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from ssl4sar.config import paper_preset
from ssl4sar.data.sampling import pad_overlapping, whole_image_padding
from ssl4sar.errors import OutOfMemory, device_memory_text, is_out_of_memory
from ssl4sar.models.fast import cudnn_autotuning, is_compiled
from ssl4sar.parallel import threaded_map

logger = logging.getLogger(__name__)

#: the test-time augmentation of the paper: quarter turns k × 90° clockwise (the paper preset's inference.tta_rotations)
PAPER_TTA_ROTATIONS: tuple[int, ...] = tuple(paper_preset().inference.tta_rotations)
_PAPER = paper_preset()  # window size, stride and batch size defaults (§7.1)

Model = Callable[[torch.Tensor], Any]


# --------------------------------------------------------------------------------------------------------------
# weights and padding

def class_map(scores: np.ndarray, rows_per_block: int = 64) -> np.ndarray:
    """``(H, W)`` uint8 class ids of ``(K, H, W)`` finite scores (probabilities, logits): the index of the largest,
    the first one on ties, as ``scores.argmax(axis=0)``. numpy's argmax over the first axis copies the whole array
    to make that axis contiguous (0.2–0.7 s for a 10-MP 4-class map on the build machine); this compares the
    classes block by block instead (0.14 s)."""
    k, h, w = scores.shape
    if k > 256:
        raise ValueError(f"{k} classes do not fit uint8 class ids")
    out = np.zeros((h, w), dtype=np.uint8)
    for r0 in range(0, h, rows_per_block):
        block = scores[:, r0:r0 + rows_per_block]
        best = np.array(block[0], dtype=block.dtype)
        ids = out[r0:r0 + rows_per_block]
        for c in range(1, k):
            better = block[c] > best
            ids[better] = c
            np.maximum(best, block[c], out=best)
    return out


def gaussian_importance_map(target_size: int | tuple[int, int], sigma: float | tuple[float, float] | None = None
                            ) -> np.ndarray:
    """Gaussian importance map of a ``T × T`` centre crop, as the reference builds it (§7.1).

    A unit delta at ``(T // 2, T // 2)`` blurred with ``scipy.ndimage.gaussian_filter(σ, mode="constant")``,
    scaled to a maximum of 1, cast to float32, and zeros replaced by the smallest non-zero value.

    Args:
        target_size: ``T`` or ``(T_h, T_w)`` in pixels.
        sigma: standard deviation in pixels (scalar or per axis); default ``T / 8`` (32 px for T = 256).

    Returns:
        ``(T_h, T_w)`` float32 weights in ``(0, 1]``.
    """
    size = (int(target_size), int(target_size)) if np.isscalar(target_size) else tuple(int(s) for s in target_size)
    if sigma is None:
        sig: Any = [s / 8.0 for s in size]
    else:
        sig = sigma
    tmp = np.zeros(size, dtype=np.float64)
    tmp[tuple(s // 2 for s in size)] = 1.0
    g = gaussian_filter(tmp, sig, 0, mode="constant", cval=0.0)
    g = (g / np.max(g)).astype(np.float32)
    if np.any(g == 0):
        g[g == 0] = np.min(g[g != 0])
    return g


# --------------------------------------------------------------------------------------------------------------
# helpers

def _model_device(model: Any, device: str | torch.device | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    if isinstance(model, torch.nn.Module):
        for p in model.parameters():
            return p.device
        for b in model.buffers():
            return b.device
    return torch.device("cpu")


@contextlib.contextmanager
def _eval_mode(model: Any) -> Iterator[None]:
    if isinstance(model, torch.nn.Module) and model.training:
        model.eval()
        try:
            yield
        finally:
            model.train()
    else:
        yield


def default_inference_workers(device: str | torch.device) -> int:
    """Forward passes that :func:`sliding_window_probabilities` runs at the same time by default: on a CPU two
    (one when torch uses a single thread), each with half of torch's intra-op threads — on the 2-core build machine
    two single-threaded passes gave 1.03–1.10× the windows/s of one two-threaded pass
    (``book/bench/cpu-2core-inference-2026-12-04``); on GPUs one."""
    if torch.device(device).type != "cpu":
        return 1
    return min(2, max(1, torch.get_num_threads()))


def _autocast(device: torch.device, amp_dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=amp_dtype)


def _centre_logits(model: Model, x: torch.Tensor, size: int, centre_only: bool) -> torch.Tensor:
    """Logits of the centre ``size × size`` of every window: the model's own ``centre_logits`` when it has one and
    ``centre_only`` (it skips decoder work outside the centre, :meth:`ssl4sar.models.tyrion.Tyrion.centre_logits`),
    else the full forward pass cropped."""
    fn = getattr(model, "centre_logits", None) if centre_only else None
    if fn is not None:
        return fn(x, size)
    p = (x.shape[-1] - size) // 2
    return _logits(model, x)[:, :, p:p + size, p:p + size]


def _logits(model: Model, x: torch.Tensor) -> torch.Tensor:
    out = model(x)
    if isinstance(out, (tuple, list)):
        out = out[0]
    elif isinstance(out, dict):
        out = out["logits"]
    if not isinstance(out, torch.Tensor) or out.ndim != 4 or out.shape[0] != x.shape[0] \
            or tuple(out.shape[-2:]) != tuple(x.shape[-2:]):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"model must map (B, 1, C, C) to logits (B, K, C, C); got {shape} for input {tuple(x.shape)}")
    return out


def _as_image(image: np.ndarray | torch.Tensor) -> tuple[np.ndarray, bool]:
    """(H, W) array and whether it is 8-bit (to be divided by 255)."""
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[0] == 1:
        image = image[0]
    if image.ndim != 2:
        raise ValueError(f"image must be (H, W) (or (1, H, W)), got shape {image.shape}")
    if image.size == 0:
        raise ValueError("image is empty")
    if image.dtype == np.uint8:
        return image, True
    if not np.issubdtype(image.dtype, np.floating):
        # a uint16 / int64 image of 0–255 values would enter the network unscaled, silently wrong
        raise ValueError(f"image must be uint8 (divided by 255) or float in [0, 1], got {image.dtype}: convert it "
                         "with ssl4sar.data.scenes (8-bit model input) or scale it to [0, 1] first")
    image = image.astype(np.float32, copy=False)
    finite = np.isfinite(image)
    if not finite.all():
        # one NaN spreads through attention and group norms to every window holding it: refuse, do not guess
        bad = np.argwhere(~finite)
        r, col = (int(v) for v in bad[0])
        raise ValueError(f"image has {len(bad)} non-finite pixel(s); the first at row {r}, column {col}: fill or "
                         "mask them before inference")
    return image, False


def _batches(origins: Sequence[tuple[int, int]], batch_size: int) -> Iterator[Sequence[tuple[int, int]]]:
    for i in range(0, len(origins), batch_size):
        yield origins[i:i + batch_size]


def _progress(iterable: Any, total: int, enabled: bool, desc: str) -> Any:
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="batch")


# --------------------------------------------------------------------------------------------------------------
# overlapping windows

def window_origins(padded_shape: tuple[int, int], context_size: int, stride: int) -> list[tuple[int, int]]:
    """Top-left corners ``(row, col)`` of all windows on the stride grid inside a padded image, row-major."""
    rows = range(0, padded_shape[0] - context_size + 1, stride)
    cols = range(0, padded_shape[1] - context_size + 1, stride)
    return [(r, c) for r in rows for c in cols]


def sliding_window_probabilities(model: Model, image: np.ndarray | torch.Tensor,
                                 context_size: int = _PAPER.data.context_size, stride: int = _PAPER.inference.stride,
                                 sigma: float | None = None, batch_size: int = _PAPER.inference.batch_size,
                                 device: str | torch.device | None = None, amp_dtype: torch.dtype | None = None,
                                 canvas_device: str | torch.device | None = None, progress: bool = False,
                                 centre_only: bool = True, workers: int | None = None,
                                 cudnn_autotune: bool = True) -> np.ndarray:
    """Per-class probabilities of a whole scene by overlapping windows with Gaussian stitching (§7.1).

    Args:
        model: maps a ``(B, 1, C, C)`` float32 tensor in [0, 1] to logits ``(B, K, C, C)`` (a tuple/list output
            uses its first element). An ``nn.Module`` in training mode is switched to eval for the call.
        image: ``(H, W)`` SAR image; uint8 is divided by 255, float is used as is (expected in [0, 1]).
        context_size: window side C in pixels (even); the kept centre is ``T = C / 2``.
        stride: pixels between window origins (≤ T so that every pixel is covered; 128 in the paper).
        sigma: Gaussian importance σ in pixels (default T / 8).
        batch_size: windows per forward pass. On the 2-core build CPU the paper network ran fastest at 1–2
            (1.14–1.25× the windows/s of 8, the paper preset's value, which suits GPUs): pass a small batch there.
        device: where the model runs (default: the device of its first parameter, else CPU).
        amp_dtype: e.g. ``torch.bfloat16`` for autocast; the softmax is always computed in float32.
        canvas_device: where the ``(K, H, W)`` accumulation canvas lives (default: ``device``); use ``"cpu"`` to
            save accelerator memory.
        progress: show a tqdm bar over batches.
        centre_only: let a model with a ``centre_logits(x, T)`` method compute only the kept centre (exact, and
            about a third fewer FLOPs for TYRION); ``False``: the full forward pass, then the crop (the official
            code's path).
        workers: forward passes running at the same time on threads of this process, sharing torch's intra-op
            threads (:func:`ssl4sar.parallel.threaded_map`); ``None``: :func:`default_inference_workers`. The
            result does not depend on it for a given number of threads per worker; each worker holds one batch
            of activations.
        cudnn_autotune: on CUDA, let cuDNN time its convolution algorithms for the window shape during the call
            (:func:`ssl4sar.models.fast.cudnn_autotuning`); ``False`` leaves them untimed, as the official code
            runs (the benchmark's reference path). No effect elsewhere.

    Returns:
        ``(K, H, W)`` float32 probabilities (each pixel sums to 1 up to rounding).
    """
    c = int(context_size)
    if c <= 0 or c % 2:
        raise ValueError(f"context_size must be a positive even number of pixels, got {context_size}")
    t = c // 2
    if not 0 < stride <= t:
        raise ValueError(f"stride must be in 1..{t} (= context_size / 2) so that the centre crops cover the image; "
                         f"got {stride}")
    img, is_uint8 = _as_image(image)
    h, w = img.shape
    dev = _model_device(model, device)
    cdev = torch.device(canvas_device) if canvas_device is not None else dev
    padded = torch.from_numpy(np.ascontiguousarray(pad_overlapping(img, c, stride))).to(dev)
    origins = window_origins(tuple(padded.shape), c, stride)
    g = torch.from_numpy(gaussian_importance_map(t, sigma)).to(cdev)
    acc: torch.Tensor | None = None
    wsum = torch.zeros((h, w), dtype=torch.float32, device=cdev)
    n_workers = default_inference_workers(dev) if workers is None else int(workers)
    if n_workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if n_workers > 1 and is_compiled(model):
        # torch.compile is not thread-safe: two passes compiling (or guarding) at once hung a 2-core CPU for minutes
        logger.info("compiled model: one forward pass at a time instead of %d (torch.compile is not thread-safe)",
                    n_workers)
        n_workers = 1

    def probabilities(batch: Sequence[tuple[int, int]]) -> torch.Tensor:
        # inference_mode and autocast are thread-local: entered here, in whichever thread runs the batch
        with torch.inference_mode():
            x = torch.stack([padded[r:r + c, col:col + c] for r, col in batch])[:, None]
            x = x.float() / 255.0 if is_uint8 else x.float()
            with _autocast(dev, amp_dtype):
                logits = _centre_logits(model, x, t, centre_only)
            return torch.softmax(logits.float(), dim=1).to(cdev)

    batches = list(_batches(origins, batch_size))
    try:
        # closing(): a failure while stitching stops the workers and gives torch its threads back now, not when
        # the exception (which holds this frame) is garbage-collected
        with _eval_mode(model), torch.inference_mode(), cudnn_autotuning(dev, cudnn_autotune), \
                contextlib.closing(threaded_map(probabilities, batches, n_workers)) as results:
            for batch, prob in zip(batches, _progress(results, len(batches), progress, "windows"), strict=True):
                if acc is None:
                    acc = torch.zeros((prob.shape[1], h, w), dtype=torch.float32, device=cdev)
                for i, (r, col) in enumerate(batch):
                    # the window's centre covers original rows [r, r + T) and columns [col, col + T)
                    if r >= h or col >= w:
                        continue
                    y1, x1 = min(r + t, h), min(col + t, w)
                    gi = g[: y1 - r, : x1 - col]
                    acc[:, r:y1, col:x1] += prob[i, :, : y1 - r, : x1 - col] * gi
                    wsum[r:y1, col:x1] += gi
            assert acc is not None
            acc /= torch.clamp(wsum, min=1e-12)
            return acc.cpu().numpy()
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
        parallel = f" in {n_workers} parallel passes" if n_workers > 1 else ""
        canvas = "" if cdev.type == "cpu" else (f", or keep the stitching canvas ({h} × {w} px per class, float32) in "
                                                "CPU memory (canvas_device='cpu')")
        raise OutOfMemory(
            f"sliding-window inference of a {h} × {w} px image ran out of memory on {device_memory_text(dev)} with "
            f"{batch_size} windows of {c} px per forward pass{parallel}: lower the windows per pass (batch_size, "
            f"--batch-size; e.g. {max(1, batch_size // 2)}: the same windows, fewer at a time){canvas}") from exc


# --------------------------------------------------------------------------------------------------------------
# non-overlapping tiles (validation during training)

def tile_index(name: str) -> int:
    """Numeric tile index of a validation sample name ``<stem>_<k:03d>`` (sort by this, not by the string)."""
    m = re.search(r"_(\d+)$", name)
    if m is None:
        raise ValueError(f"tile name {name!r} does not end in _<index>")
    return int(m.group(1))


def non_overlapping_grid(image_shape: tuple[int, int], tile_size: int = 256) -> tuple[int, int]:
    """Number of tiles ``(rows, cols) = (H // T + 1, W // T + 1)`` of the validation grid (§3.4)."""
    return image_shape[0] // tile_size + 1, image_shape[1] // tile_size + 1


def stitch_non_overlapping(tiles: Sequence[np.ndarray] | np.ndarray, image_shape: tuple[int, int],
                           tile_size: int = 256) -> np.ndarray:
    """Place centre tiles on the validation grid and crop back to the image (§7.1 non-overlapping).

    Args:
        tiles: ``N = rows·cols`` arrays ``(T, T)`` (class maps) or ``(K, T, T)`` (scores), in numeric index order
            (tile k sits at grid position ``(k // cols, k % cols)``).
        image_shape: ``(H, W)`` of the original image in pixels.
        tile_size: T.

    Returns:
        ``(H, W)`` or ``(K, H, W)`` array of the tiles' dtype.
    """
    h, w = int(image_shape[0]), int(image_shape[1])
    t = int(tile_size)
    nr, nc = non_overlapping_grid((h, w), t)
    tiles = np.asarray(tiles)
    if tiles.shape[0] != nr * nc or tiles.shape[-2:] != (t, t):
        raise ValueError(f"expected {nr * nc} tiles of {t}×{t} for an image of {h}×{w}, got {tiles.shape}")
    lead = tiles.shape[1:-2]
    canvas = np.zeros((*lead, nr * t, nc * t), dtype=tiles.dtype)
    for k in range(nr * nc):
        r, c = divmod(k, nc)
        canvas[..., r * t:(r + 1) * t, c * t:(c + 1) * t] = tiles[k]
    pad = whole_image_padding((h, w), t)
    top, left = pad.top, pad.left
    # canvas row 0 is padded row T/2, so original row y sits at canvas row y + top − T/2
    oy, ox = top - t // 2, left - t // 2
    return canvas[..., oy:oy + h, ox:ox + w]


def non_overlapping_class_map(model: Model, image: np.ndarray | torch.Tensor,
                              context_size: int = _PAPER.data.context_size,
                              batch_size: int = _PAPER.inference.batch_size, device: str | torch.device | None = None,
                              amp_dtype: torch.dtype | None = None, progress: bool = False) -> np.ndarray:
    """Class map of a scene from non-overlapping centre tiles (validation during training, §3.4 / §7.1).

    The image is padded with :func:`whole_image_padding` (symmetric), windows ``C × C`` start every T = C / 2
    pixels, the argmax of each centre ``T × T`` is placed on the grid by its numeric index, and the canvas is
    cropped back to ``(H, W)``.

    Returns:
        ``(H, W)`` uint8 class ids.
    """
    c = int(context_size)
    if c <= 0 or c % 4:
        raise ValueError(f"context_size must be a positive multiple of 4 pixels, got {context_size}")
    t = c // 2
    p = t // 2
    img, is_uint8 = _as_image(image)
    h, w = img.shape
    dev = _model_device(model, device)
    padded = torch.from_numpy(np.ascontiguousarray(whole_image_padding((h, w), t).apply(img)))
    padded = padded.to(dev)
    nr, nc = non_overlapping_grid((h, w), t)
    origins = [(r * t, col * t) for r in range(nr) for col in range(nc)]
    tiles = np.zeros((len(origins), t, t), dtype=np.uint8)
    n_batches = (len(origins) + batch_size - 1) // batch_size
    k = 0
    with _eval_mode(model), torch.inference_mode(), cudnn_autotuning(dev):
        for batch in _progress(_batches(origins, batch_size), n_batches, progress, "tiles"):
            x = torch.stack([padded[r:r + c, col:col + c] for r, col in batch])[:, None]
            x = x.float() / 255.0 if is_uint8 else x.float()
            with _autocast(dev, amp_dtype):
                logits = _logits(model, x)
            cls = logits[:, :, p:p + t, p:p + t].float().argmax(dim=1).to(torch.uint8).cpu().numpy()
            tiles[k:k + len(batch)] = cls
            k += len(batch)
    return stitch_non_overlapping(tiles, (h, w), t)


# --------------------------------------------------------------------------------------------------------------
# TTA and ensembles

@dataclass(frozen=True)
class EnsemblePrediction:
    """Fused prediction of a scene.

    Attributes:
        mean: ``(K, H, W)`` float32 mean softmax probability over all members × augmentations.
        std: ``(K, H, W)`` float32 per-class population standard deviation over the same maps (uncertainty).
        classes: ``(H, W)`` uint8 argmax of ``mean``.
        n_maps: number of averaged probability maps.
    """

    mean: np.ndarray
    std: np.ndarray
    classes: np.ndarray
    n_maps: int


def ensemble_members(models: Sequence[Model] | Model) -> list[Model]:
    """One model or a sequence of ensemble members as a non-empty list."""
    members = list(models) if isinstance(models, (list, tuple)) else [models]
    if not members:
        raise ValueError("no models given")
    return members


class RunningMoments:
    """Streaming per-pixel mean and population standard deviation of ``(K, H, W)`` maps (float32 Welford updates,
    in the order the maps are added: no list of maps is kept).

    Args:
        mean, m2: float32 arrays of the maps' shape to accumulate the mean and the sum of squared deviations in
            (e.g. slices of the output arrays or memory maps), so that no array of the map's size is allocated
            (each fresh one costs its page faults: about 0.25 s per 160 MB, a 10-MP 4-class map, on the build
            machine). Default: allocated on the first :meth:`add`. ``std(out=m2)`` then finishes in place.
    """

    #: rows per block of :meth:`add`: its temporaries stay in the CPU caches instead of four arrays of the map's
    #: size; the arithmetic, element by element, is unchanged
    _ROWS_PER_BLOCK = 16

    def __init__(self, mean: np.ndarray | None = None, m2: np.ndarray | None = None) -> None:
        if (mean is None) != (m2 is None):
            raise ValueError("pass both mean and m2 buffers, or neither")
        self.n = 0
        self.mean = mean
        self._m2 = m2
        self._finished = False

    def add(self, prob: np.ndarray) -> None:
        if self._finished:
            raise RuntimeError("std(out=m2) has turned the sums into the standard deviation: no more maps")
        self.n += 1
        if self.mean is None or self._m2 is None:
            self.mean = np.array(prob, dtype=np.float32)
            self._m2 = np.zeros_like(self.mean)
            return
        if self.n == 1:
            if self.mean.shape != prob.shape:
                raise ValueError(f"map of shape {prob.shape} for buffers of shape {self.mean.shape}")
            self.mean[...] = prob
            self._m2[...] = 0.0
            return
        step = self._ROWS_PER_BLOCK
        for r0 in range(0, self.mean.shape[-2], step):
            p = prob[..., r0:r0 + step, :]
            mean, m2 = self.mean[..., r0:r0 + step, :], self._m2[..., r0:r0 + step, :]
            delta = p - mean
            mean += delta / self.n
            m2 += delta * (p - mean)

    def std(self, out: np.ndarray | None = None) -> np.ndarray:
        """Per-class population standard deviation over the maps added so far, float32, written into ``out`` (a
        float32 array or memory-map slice of the maps' shape) when given, without temporaries. ``out`` may be
        the ``m2`` buffer itself; the sums are then gone and no map can be added."""
        if self._m2 is None or self.n == 0:
            raise RuntimeError("no map added")
        if self._finished:
            raise RuntimeError("std(out=m2) has already turned the sums into the standard deviation")
        if out is None:
            out = np.empty(self._m2.shape, dtype=np.float32)
        self._finished = np.shares_memory(out, self._m2)
        np.divide(self._m2, self.n, out=out)
        np.maximum(out, 0.0, out=out)
        return np.sqrt(out, out=out)


def _forward_transform(image: np.ndarray, k: int, flip: bool) -> np.ndarray:
    out = np.rot90(image, k=-k)  # k × 90° clockwise
    return np.ascontiguousarray(out[:, ::-1] if flip else out)


def _inverse_transform(prob: np.ndarray, k: int, flip: bool) -> np.ndarray:
    if flip:
        prob = prob[:, :, ::-1]
    return np.rot90(prob, k=k, axes=(1, 2))


def _mirrorings(flips: bool) -> tuple[bool, ...]:
    return (False, True) if flips else (False,)


def _member_maps(members: Sequence[Model], img: np.ndarray, rotations: Sequence[int], flips: bool,
                 window_kwargs: Mapping[str, Any]) -> Iterator[tuple[int, int, bool, np.ndarray]]:
    """``(member index, k, flip, probabilities rotated back)`` for every member × rotation × flip, in that
    order."""
    for mi, model in enumerate(members):
        for k in rotations:
            for flip in _mirrorings(flips):
                prob = sliding_window_probabilities(model, _forward_transform(img, k, flip), **window_kwargs)
                logger.debug("member %d rotation %d flip %s done", mi, k, flip)
                yield mi, k, flip, _inverse_transform(prob, k, flip)


def _rotations(rotations: Sequence[int]) -> list[int]:
    rots = [int(k) % 4 for k in rotations]
    if not rots:
        raise ValueError("rotations must not be empty")
    return rots


def _fused(moments: RunningMoments) -> EnsemblePrediction:
    mean, std = moments.mean, moments.std()
    return EnsemblePrediction(mean=mean, std=std, classes=class_map(mean), n_maps=moments.n)


def predict_probabilities(models: Sequence[Model] | Model, image: np.ndarray | torch.Tensor,
                          rotations: Sequence[int] = (0,), flips: bool = False, **window_kwargs: Any
                          ) -> EnsemblePrediction:
    """Test-time augmentation × ensemble with unweighted soft voting (§9).

    For every model and every rotation ``k`` (image rotated k × 90° clockwise) — and, with ``flips``, also its
    horizontal mirror — :func:`sliding_window_probabilities` is run and the probabilities are transformed back.
    The maps are averaged (streaming, float32 Welford updates: no list of maps is kept).

    Args:
        models: one model or a sequence of ensemble members (see :func:`sliding_window_probabilities`).
        image: ``(H, W)`` SAR image (uint8 or float in [0, 1]).
        rotations: quarter turns to use; the paper uses ``(0, 1, 2, 3)`` with five members.
        flips: also use the horizontally flipped version of every rotation (not in the paper).
        **window_kwargs: passed to :func:`sliding_window_probabilities` (context_size, stride, sigma,
            batch_size, device, amp_dtype, canvas_device, progress).
    """
    members = ensemble_members(models)
    rots = _rotations(rotations)
    img, _ = _as_image(image)
    moments = RunningMoments()
    for _member, _k, _flip, prob in _member_maps(members, img, rots, flips, window_kwargs):
        moments.add(prob)
    return _fused(moments)


def predict_with_and_without_tta(models: Sequence[Model] | Model, image: np.ndarray | torch.Tensor,
                                 rotations: Sequence[int] = PAPER_TTA_ROTATIONS, flips: bool = False,
                                 **window_kwargs: Any) -> tuple[EnsemblePrediction, EnsemblePrediction]:
    """The ensemble's prediction without and with test-time augmentation, from one set of forward passes.

    Returns ``(without, with_tta)``, equal to ``predict_probabilities(models, image)`` and
    ``predict_probabilities(models, image, rotations, flips)``: each member's untransformed map (rotation 0,
    not mirrored) enters both, so it is computed once. Both averages take their maps in the same order as those
    calls, so the results are the same to the bit. With the paper's four rotations that is 4 maps per member
    instead of 5.

    Raises:
        ValueError: ``rotations`` does not contain 0 (there is no untransformed map to share).
    """
    members = ensemble_members(models)
    rots = _rotations(rotations)
    if 0 not in rots:
        raise ValueError(f"rotations {rots} lack the untransformed view 0: predict the two separately")
    img, _ = _as_image(image)
    without, with_tta = RunningMoments(), RunningMoments()
    for member, k, flip, prob in _member_maps(members, img, rots, flips, window_kwargs):
        with_tta.add(prob)
        if k == 0 and not flip and without.n == member:  # the member's first such map (0 may be listed twice)
            without.add(prob)
    return _fused(without), _fused(with_tta)


# --------------------------------------------------------------------------------------------------------------
# tiled TTA × ensemble on large scenes (ssl4sar.predict): dihedral frames of rectangles, core tiles with a halo

Rect = tuple[int, int, int, int]  # row0, row1, col0, col1 (half-open)


def _frame_shape(shape: tuple[int, int], k: int) -> tuple[int, int]:
    return (shape[1], shape[0]) if k % 2 else shape


def _rect_forward(rect: Rect, shape: tuple[int, int], k: int, flip: bool) -> Rect:
    """Where a rectangle of the original frame lies in the rotated (k × 90° cw) and flipped frame."""
    r0, r1, c0, c1 = rect
    h, w = shape
    for _ in range(k % 4):  # (r, c) → (c, h − 1 − r); the new shape is (w, h)
        r0, r1, c0, c1 = c0, c1, h - r1, h - r0
        h, w = w, h
    if flip:
        c0, c1 = w - c1, w - c0
    return r0, r1, c0, c1


def _rect_inverse(rect: Rect, shape: tuple[int, int], k: int, flip: bool) -> Rect:
    """Inverse of :func:`_rect_forward` (``shape`` is the original frame's shape)."""
    r0, r1, c0, c1 = rect
    h, w = _frame_shape(shape, k)
    if flip:
        c0, c1 = w - c1, w - c0
    for _ in range(k % 4):  # new (i, j) ← old (H − 1 − j, i), old shape (H, W) = (w, h) of the new frame
        old_h = w
        r0, r1, c0, c1 = old_h - c1, old_h - c0, r0, r1
        h, w = w, h
    return r0, r1, c0, c1



def tile_rects(shape: tuple[int, int], tile: int | None) -> list[Rect]:
    h, w = shape
    if tile is None or (tile >= h and tile >= w):
        return [(0, h, 0, w)]
    return [(r, min(h, r + tile), c, min(w, c + tile)) for r in range(0, h, tile) for c in range(0, w, tile)]



def tiled_ensemble_probabilities(maps: Sequence[tuple[Model, int, bool]],
                                 read: Callable[[int, int, int, int], np.ndarray],
                                 shape: tuple[int, int], tiles: Sequence[Rect], halo: int, stride: int,
                                 window_kwargs: dict[str, Any], mean_out: np.ndarray, std_out: np.ndarray,
                                 member_out: np.ndarray | None, progress: bool) -> None:
    """Mean and std of every ``(model, k, flip)`` map of an ``shape`` image, computed core tile by core tile.

    For each map the tile is read (``read(r0, r1, c0, c1)`` → 8-bit image) with a halo of ``halo`` px that, in the
    rotated/flipped frame, starts on the window grid (a multiple of ``stride``), so every window covering a core
    pixel is the window of the whole-image run: tiled results equal :func:`predict_probabilities`. Fills
    ``mean_out`` / ``std_out`` ``(K, H, W)`` (arrays or memory maps) and, when given, ``member_out`` ``(maps, H, W)``
    with each map's class ids. ``window_kwargs`` go to :func:`sliding_window_probabilities`.
    """
    it: Any = tiles
    if progress and len(tiles) > 1:
        from tqdm.auto import tqdm

        it = tqdm(tiles, desc="tiles", unit="tile")
    for rect in it:
        y0, y1, x0, x1 = rect
        # accumulated in the outputs themselves: no map-sized array is allocated per tile
        moments = RunningMoments(mean=mean_out[:, y0:y1, x0:x1], m2=std_out[:, y0:y1, x0:x1])
        for mi, (model, k, flip) in enumerate(maps):
            ht, wt = _frame_shape(shape, k)
            a0, a1, b0, b1 = _rect_forward(rect, shape, k, flip)
            s0, s1 = max(0, ((a0 - halo) // stride) * stride), min(ht, a1 + halo)
            t0, t1 = max(0, ((b0 - halo) // stride) * stride), min(wt, b1 + halo)
            image = _forward_transform(read(*_rect_inverse((s0, s1, t0, t1), shape, k, flip)), k, flip)
            prob_t = sliding_window_probabilities(model, image, **window_kwargs)
            prob = _inverse_transform(prob_t[:, a0 - s0:a1 - s0, b0 - t0:b1 - t0], k, flip)
            moments.add(prob)
            if member_out is not None:
                member_out[mi, y0:y1, x0:x1] = class_map(prob)
        moments.std(out=std_out[:, y0:y1, x0:x1])
