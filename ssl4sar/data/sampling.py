"""Padding, random context crops with re-zoom, and the validation / test window grids (spec §3.2–3.5).

All sizes are in pixels and are parameters: the paper uses a 512 px context window whose 256 px centre
("target") is what the loss focuses on and inference keeps; the smoke preset uses 64 / 32. Arrays are
``(H, W)`` or ``(..., H, W)`` (padding and cropping act on the last two axes).

Coordinates: a window *origin* is the ``(row, col)`` of its top-left pixel in the **padded** image; the
centre crop of a window with origin ``o`` covers padded pixels ``o + (C − T)/2 … o + (C + T)/2 − 1``, i.e.
original-image pixels ``o + (C − T)/2 − (pad_top, pad_left) …``. :class:`WindowGrid` carries the padding
and provides these original coordinates so that stitching can invert the geometry exactly.

Padding is always numpy ``symmetric`` (mirror including the edge pixel, = torchvision ``symmetric``), so
padded masks hold real class ids. :func:`crop_padded` cuts a window of the *virtually* padded image
straight from the unpadded array (same numbers as padding first, without the memory).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "Padding", "whole_image_padding", "pad_whole_image", "overlapping_padding", "overlapping_padding_stages",
    "pad_overlapping",
    "symmetric_indices", "crop_padded", "centre_crop", "resize_bilinear", "resize_bicubic", "resize_nearest",
    "random_context_crop", "WindowGrid", "validation_windows", "test_windows",
]


@dataclass(frozen=True)
class Padding:
    """Pixels added on each side of an image (symmetric mode)."""

    top: int
    bottom: int
    left: int
    right: int

    def padded_shape(self, shape: tuple[int, int]) -> tuple[int, int]:
        """``(H, W)`` after padding an image of ``shape`` = ``(H, W)``."""
        return (int(shape[0]) + self.top + self.bottom, int(shape[1]) + self.left + self.right)

    def apply(self, arr: np.ndarray) -> np.ndarray:
        """Pad the last two axes of ``arr`` symmetrically."""
        arr = np.asarray(arr)
        widths = [(0, 0)] * (arr.ndim - 2) + [(self.top, self.bottom), (self.left, self.right)]
        return np.pad(arr, widths, mode="symmetric")


def whole_image_padding(shape: tuple[int, int], target_size: int) -> Padding:
    """Padding of the official ``pad_whole_image(img, T)`` (§3.2) for an image of ``shape`` = ``(H, W)``.

    Target size ``Ht = (H // T + 2)·T`` (likewise ``Wt``); top = ``round((Ht − H)/2)``, bottom =
    ``round((Ht − H + 1)/2)`` with Python's half-to-even ``round``. Quirk (kept on purpose): when ``Ht − H``
    is odd *and* its half rounds up to even, both sides round up and the padded size is ``Ht + 1`` instead
    of ``Ht`` (e.g. H = 101, T = 64: 46 + 46 = 92 = Ht − H + 1). Window grids built on this padding stay
    exactly aligned with the original pixels (:func:`validation_windows`).
    """
    h, w = int(shape[0]), int(shape[1])
    t = int(target_size)
    if t <= 0:
        raise ValueError(f"target_size must be positive, got {target_size}")
    ht, wt = (h // t + 2) * t, (w // t + 2) * t
    return Padding(top=int(round((ht - h) / 2.0)), bottom=int(round((ht - h + 1) / 2.0)),
                   left=int(round((wt - w) / 2.0)), right=int(round((wt - w + 1) / 2.0)))


def pad_whole_image(img: np.ndarray, target_size: int) -> np.ndarray:
    """Symmetric padding of the last two axes to about ``(H // T + 2)·T`` (see :func:`whole_image_padding`)."""
    img = np.asarray(img)
    return whole_image_padding(img.shape[-2:], target_size).apply(img)


def overlapping_padding_stages(shape: tuple[int, int], context_size: int, stride: int) -> tuple[Padding, Padding]:
    """The two paddings of the official ``pad_whole_image_overlapping`` (§3.2), generalised to any context / stride.

    With target ``T = C/2``: (a) ``(C − T)/2`` pixels on all four sides, so that a window's centre crop at
    padded origin ``o`` covers original pixels starting at ``o``; (b) right / bottom by
    ``stride − ((size_a − C) mod stride)`` (1..stride px, never 0, as in the reference). [FIX] if the result
    is still smaller than ``C`` (an image smaller than ``C/2``, which the reference cannot handle), whole
    strides are added until one window fits. The reference applies (b) to the already padded image, so the
    mirrored pixels of (b) come from the (a) margin; :func:`pad_overlapping` does the same.
    """
    c, s = int(context_size), int(stride)
    if c <= 0 or c % 2:
        raise ValueError(f"context_size must be a positive even number, got {context_size}")
    if not 0 < s <= c:
        raise ValueError(f"stride must be in 1..context_size, got {stride}")
    t = c // 2
    first = (c - t) // 2
    first_far = first + (c - t) % 2

    def extra(size_a: int) -> int:
        e = s - ((size_a - c) % s)
        while size_a + e < c:
            e += s
        return e

    h_a = int(shape[0]) + first + first_far
    w_a = int(shape[1]) + first + first_far
    return (Padding(top=first, bottom=first_far, left=first, right=first_far),
            Padding(top=0, bottom=extra(h_a), left=0, right=extra(w_a)))


def overlapping_padding(shape: tuple[int, int], context_size: int, stride: int) -> Padding:
    """Total padding (both stages of :func:`overlapping_padding_stages`): the geometry of the test windows."""
    a, b = overlapping_padding_stages(shape, context_size, stride)
    return Padding(top=a.top + b.top, bottom=a.bottom + b.bottom, left=a.left + b.left, right=a.right + b.right)


def pad_overlapping(img: np.ndarray, context_size: int, stride: int) -> np.ndarray:
    """Symmetric padding for overlapping test windows, in two stages like the reference (two ``Pad`` calls)."""
    img = np.asarray(img)
    a, b = overlapping_padding_stages(img.shape[-2:], context_size, stride)
    return b.apply(a.apply(img))


def symmetric_indices(start: int, length: int, n: int) -> np.ndarray:
    """Original indices of padded positions ``start … start+length−1`` where position 0 is original index 0.

    Mirrors like numpy ``symmetric`` padding of any width: the extension is periodic with period ``2n``
    (``… 1 0 | 0 1 … n−1 | n−1 … 0 | 0 1 …``).
    """
    idx = np.arange(start, start + length, dtype=np.int64) % (2 * n)
    return np.where(idx >= n, 2 * n - 1 - idx, idx)


def _take(arr: np.ndarray, idx: np.ndarray, axis: int) -> np.ndarray:
    """``arr`` indexed by ``idx`` along ``axis``: a view for an ascending contiguous run, else ``np.take``."""
    if idx.size and idx[-1] - idx[0] == idx.size - 1 and (idx.size == 1 or np.all(np.diff(idx) == 1)):
        sl = [slice(None)] * arr.ndim
        sl[axis] = slice(int(idx[0]), int(idx[-1]) + 1)
        return arr[tuple(sl)]
    return np.take(arr, idx, axis=axis)


def crop_padded(arr: np.ndarray, padding: Padding, top: int, left: int, height: int, width: int) -> np.ndarray:
    """Crop ``[top:top+height, left:left+width]`` of ``padding.apply(arr)`` without materialising the padding.

    ``top`` / ``left`` are padded coordinates; the crop must lie inside the padded image. Returns
    ``(..., height, width)``; a read-only use is assumed: when the crop lies inside the original image the
    result may be a view of ``arr``.
    """
    arr = np.asarray(arr)
    h, w = arr.shape[-2:]
    ph, pw = padding.padded_shape((h, w))
    if top < 0 or left < 0 or top + height > ph or left + width > pw:
        raise ValueError(f"crop [{top}:{top + height}, {left}:{left + width}] outside the padded image {ph}x{pw}")
    rows = symmetric_indices(top - padding.top, height, h)
    cols = symmetric_indices(left - padding.left, width, w)
    # narrow the columns to their span first (a view), so that gathering rows copies as little as possible
    c0 = int(cols.min())
    narrowed = arr[..., :, c0:int(cols.max()) + 1]
    out = _take(narrowed, rows, arr.ndim - 2)
    return _take(out, cols - c0, arr.ndim - 1)


def centre_crop(arr: np.ndarray, size: int) -> np.ndarray:
    """Centre ``size × size`` crop of the last two axes (torchvision ``CenterCrop`` offset ``round((H−size)/2)``)."""
    arr = np.asarray(arr)
    h, w = arr.shape[-2:]
    if size > h or size > w:
        raise ValueError(f"centre crop {size} larger than the array {h}x{w}")
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    return arr[..., top:top + size, left:left + size]


def _to_float_tensor(arr: np.ndarray) -> tuple[torch.Tensor, int]:
    nd = arr.ndim
    t = torch.from_numpy(np.ascontiguousarray(arr)).to(torch.float32)
    if nd == 2:
        t = t[None, None]
    elif nd == 3:
        t = t[None]
    else:
        raise ValueError(f"expected (H, W) or (C, H, W), got shape {arr.shape}")
    return t, nd


def _from_float_tensor(t: torch.Tensor, nd: int, dtype: np.dtype) -> np.ndarray:
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        t = t.round_().clamp_(info.min, info.max)
    out = t[0, 0] if nd == 2 else t[0]
    return out.numpy().astype(dtype, copy=False)


def resize_bilinear(arr: np.ndarray, size: tuple[int, int], *, antialias: bool = False) -> np.ndarray:
    """Bilinear resize of ``(H, W)`` or ``(C, H, W)`` to ``size`` = ``(h, w)`` (pixel-centre aligned).

    Same maths as the reference's torchvision tensor ``resize`` (``align_corners=False``, no antialias by
    default); integer inputs are rounded back to their dtype (uint8 stays uint8).
    """
    arr = np.asarray(arr)
    if arr.shape[-2:] == tuple(size):
        return np.array(arr)
    t, nd = _to_float_tensor(arr)
    out = F.interpolate(t, size=tuple(int(s) for s in size), mode="bilinear", align_corners=False,
                        antialias=antialias)
    return _from_float_tensor(out, nd, arr.dtype)


def resize_bicubic(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bicubic (a = −0.75, pixel-centre aligned, like OpenCV ``INTER_CUBIC``) resize of ``(H, W)`` or
    ``(C, H, W)`` to ``size`` = ``(h, w)``; integer inputs are rounded and saturated to their dtype."""
    arr = np.asarray(arr)
    if arr.shape[-2:] == tuple(size):
        return np.array(arr)
    t, nd = _to_float_tensor(arr)
    out = F.interpolate(t, size=tuple(int(s) for s in size), mode="bicubic", align_corners=False)
    return _from_float_tensor(out, nd, arr.dtype)


def resize_nearest(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of the last two axes, pixel-centre aligned (torch ``nearest-exact``).

    Used for masks: it never creates class ids that were not there ([FIX] §11.1 of the reference's
    bilinear mask resize).
    """
    arr = np.asarray(arr)
    h, w = arr.shape[-2:]
    oh, ow = int(size[0]), int(size[1])
    if (h, w) == (oh, ow):
        return np.array(arr)
    rows = np.minimum(((np.arange(oh) + 0.5) * (h / oh)).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(ow) + 0.5) * (w / ow)).astype(np.int64), w - 1)
    return np.take(np.take(arr, rows, axis=-2), cols, axis=-1)


def random_context_crop(image: np.ndarray, mask: np.ndarray | None, context_size: int, rng: np.random.Generator,
                        *, prob_rezoom: float = 0.5, zoom_range: tuple[float, float] = (0.33, 2.83),
                        padding: Padding | None = None, antialias: bool = False,
                        ) -> tuple[np.ndarray, np.ndarray | None]:
    """Random ``C × C`` context crop with random re-zoom (§3.3 step 1).

    With probability ``prob_rezoom`` a zoom ``z ~ U[zoom_range)`` is drawn (else ``z = 1``); a square of side
    ``int(z·C)`` pixels is cut at a uniform top-left in ``[0, max(1, Hp − side))`` (same for columns), truncated
    at the border of the padded image (so it may be non-square), and resized to ``C × C``: the image
    bilinearly (reference maths, ``antialias`` optional), the mask with nearest neighbour ([FIX] §11.1).

    Args:
        image: ``(H, W)`` uint8 — the padded image, or the unpadded one when ``padding`` is given.
        mask: ``(H, W)`` class ids aligned with ``image``, or ``None``.
        context_size: ``C`` in pixels.
        rng: the random generator (3 or 4 draws).
        padding: when given, ``image`` / ``mask`` are unpadded and the crop is taken from their virtual
            symmetric padding (:func:`crop_padded`).

    Returns:
        ``(image_crop, mask_crop)`` of shape ``(C, C)`` (mask ``None`` when not given).
    """
    c = int(context_size)
    zoom = 1.0
    if prob_rezoom > 0 and rng.random() < prob_rezoom:
        lo, hi = zoom_range
        zoom = lo + (hi - lo) * rng.random()
    side = int(zoom * c)
    shape = image.shape[-2:]
    ph, pw = padding.padded_shape(shape) if padding is not None else shape
    top = int(rng.integers(0, max(1, ph - side)))
    left = int(rng.integers(0, max(1, pw - side)))
    h, w = min(ph, top + side) - top, min(pw, left + side) - left
    if padding is not None:
        img = crop_padded(image, padding, top, left, h, w)
        msk = crop_padded(mask, padding, top, left, h, w) if mask is not None else None
    else:
        img = image[..., top:top + h, left:left + w]
        msk = mask[..., top:top + h, left:left + w] if mask is not None else None
    img = resize_bilinear(img, (c, c), antialias=antialias)
    if msk is not None:
        msk = resize_nearest(msk, (c, c))
    return img, msk


@dataclass(frozen=True)
class WindowGrid:
    """A set of ``C × C`` windows over a padded image, with the padding needed to map them back.

    Attributes:
        image_shape: original ``(H, W)`` in pixels.
        padding: the symmetric padding applied before cutting windows.
        context_size: window side ``C`` (px).
        target_size: centre-crop side ``T`` (px); the centre crop starts ``(C − T)/2`` px into the window.
        origins: ``(N, 2)`` int64, ``(row, col)`` of each window's top-left in padded coordinates.
    """

    image_shape: tuple[int, int]
    padding: Padding
    context_size: int
    target_size: int
    origins: np.ndarray

    def __len__(self) -> int:
        return int(self.origins.shape[0])

    @property
    def padded_shape(self) -> tuple[int, int]:
        return self.padding.padded_shape(self.image_shape)

    @property
    def centre_offset(self) -> int:
        """Offset (px) of the centre crop inside a window: ``(C − T) // 2``."""
        return (self.context_size - self.target_size) // 2

    def centre_origins(self) -> np.ndarray:
        """``(N, 2)`` top-left of each centre crop in **original** image coordinates (may be negative)."""
        shift = np.array([self.centre_offset - self.padding.top, self.centre_offset - self.padding.left])
        return self.origins + shift

    def context(self, arr: np.ndarray, k: int, *, padded: bool = False) -> np.ndarray:
        """Window ``k`` (``(..., C, C)``) of ``arr`` — the original array, or the padded one if ``padded``."""
        r, c = (int(v) for v in self.origins[k])
        if padded:
            return np.array(arr[..., r:r + self.context_size, c:c + self.context_size])
        return np.array(crop_padded(arr, self.padding, r, c, self.context_size, self.context_size))

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for r, c in self.origins:
            yield int(r), int(c)


def validation_windows(shape: tuple[int, int], target_size: int) -> WindowGrid:
    """Non-overlapping validation windows of §3.4 (official ``PatchDataSet``).

    The image is padded with :func:`whole_image_padding` (``T``); there are ``(H//T + 1)·(W//T + 1)`` windows of
    side ``C = 2T``; window ``k`` (row-major, ``r = k // (W//T+1)``, ``c = k % (W//T+1)``) has padded origin
    ``(r·T, c·T)``. The centre crops tile the padded image from offset ``T/2`` without overlap and cover every
    original pixel exactly once.
    """
    t = int(target_size)
    if t <= 0 or t % 2:
        raise ValueError(f"target_size must be a positive even number, got {target_size}")
    h, w = int(shape[0]), int(shape[1])
    pad = whole_image_padding((h, w), t)
    nr, nc = h // t + 1, w // t + 1
    rr, cc = np.meshgrid(np.arange(nr) * t, np.arange(nc) * t, indexing="ij")
    origins = np.stack([rr.ravel(), cc.ravel()], axis=1).astype(np.int64)
    return WindowGrid(image_shape=(h, w), padding=pad, context_size=2 * t, target_size=t, origins=origins)


def test_windows(shape: tuple[int, int], context_size: int, stride: int) -> WindowGrid:
    """Overlapping test windows of §3.5 (official ``OverlappingPatchDataSet``).

    The image is padded with :func:`overlapping_padding`; window origins are every ``(row, col)`` on a
    ``stride`` grid with ``0 ≤ row ≤ Hp − C`` (same for columns), in the official order (columns outer, rows
    inner). The centre crop (``T = C/2``) of a window at padded origin ``(r, c)`` covers original pixels
    ``[r, r+T) × [c, c+T)``; with the paper's stride 128 every pixel is covered by about four centres.
    """
    c, s = int(context_size), int(stride)
    pad = overlapping_padding(shape, c, s)
    ph, pw = pad.padded_shape(shape)
    rows = np.arange(0, ph - c + 1, s)
    cols = np.arange(0, pw - c + 1, s)
    cc, rr = np.meshgrid(cols, rows, indexing="ij")  # columns outer, rows inner (reference order)
    origins = np.stack([rr.ravel(), cc.ravel()], axis=1).astype(np.int64)
    return WindowGrid(image_shape=(int(shape[0]), int(shape[1])), padding=pad, context_size=c, target_size=c // 2,
                      origins=origins)


test_windows.__test__ = False  # type: ignore[attr-defined]  # not a pytest test when imported into test modules
