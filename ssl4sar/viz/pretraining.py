"""Figures of one pretraining sample: SAR input, masked input, predicted and true optical bands."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from ssl4sar.viz.layers import show_sar

#: the 14 optical target channels of pretraining, in order (spec §2.2)
OPTICAL_TARGET_BANDS: tuple[str, ...] = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B11", "B12",
                                         "WVP", "SCL")


def _as_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().float().cpu()
    return np.asarray(x)


def _pick(x: Any, index: int, ndim: int) -> np.ndarray:
    """Sample ``index`` of a batch (or the array itself when it already has ``ndim`` dimensions)."""
    arr = _as_numpy(x)
    return arr[index] if arr.ndim == ndim + 1 else arr


def optical_rgb(optical: np.ndarray, bands: Sequence[str] = ("B4", "B3", "B2"),
                band_names: Sequence[str] = OPTICAL_TARGET_BANDS, limits: tuple[float, float] | None = None,
                percentiles: tuple[float, float] = (2.0, 98.0)) -> tuple[np.ndarray, tuple[float, float]]:
    """A true-colour composite of ``optical`` (C, H, W): channels ``bands`` → (H, W, 3) in [0, 1].

    The values are stretched linearly between ``limits`` (default: the ``percentiles`` of the three channels);
    returns the image and the limits used (pass them on to stretch a prediction like its target).
    """
    optical = np.asarray(optical, dtype=np.float32)
    idx = [list(band_names).index(b) for b in bands]
    rgb = np.moveaxis(optical[idx], 0, -1)
    if limits is None:
        finite = rgb[np.isfinite(rgb)]
        lo, hi = (float(v) for v in np.percentile(finite, percentiles)) if finite.size else (0.0, 1.0)
        limits = (lo, hi if hi > lo else lo + 1e-6)
    lo, hi = limits
    return np.clip((np.nan_to_num(rgb, nan=lo) - lo) / (hi - lo), 0.0, 1.0), (lo, hi)


def plot_pretrain_batch(sar: Any, optical: Any, prediction: Any | None = None, mask: Any | None = None,
                        index: int = 0, single_bands: Sequence[str] = ("B8", "B11", "SCL"),
                        band_names: Sequence[str] = OPTICAL_TARGET_BANDS, title: str | None = None) -> Figure:
    """One pretraining sample: SAR input, masked input, predicted and true optical image.

    Args:
        sar: ``(B, 1, C, C)`` (or ``(1, C, C)`` / ``(C, C)``) SAR in [0, 1].
        optical: ``(B, 14, C, C)`` (or ``(14, C, C)``) true optical bands in [0, 1].
        prediction: predicted bands, same layout (OptSimMIM: values on the masked tokens, 0 elsewhere), or ``None``.
        mask: ``(B, C, C)`` bool, True on the pixels of masked tokens (OptSimMIM), or ``None`` (OptTranslator).
        index: which sample of the batch.
        single_bands: bands also shown one by one (predicted next to true).
        band_names: names of the optical channels.
        title: figure title.

    Row 1: SAR input, masked input (masked tokens black), predicted RGB (B4/B3/B2; only the masked tokens when a
    mask is given, black elsewhere), true RGB (same stretch). Further rows: each of ``single_bands`` predicted and
    true, on the true band's value range. Tensors are accepted (moved to the CPU). Returns the figure.
    """
    s = _pick(sar, index, 3)
    s = s[0] if s.ndim == 3 else s
    true = _pick(optical, index, 3)
    pred = None if prediction is None else _pick(prediction, index, 3)
    m = None if mask is None else _pick(mask, index, 2).astype(bool)
    n_rows = 1 + (len(single_bands) + 1) // 2 if pred is not None else 1 + (len(single_bands) + 3) // 4
    fig, axes = plt.subplots(n_rows, 4, figsize=(13.0, 3.3 * n_rows), squeeze=False)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_axis_off()
    ax = axes[0]
    show_sar(ax[0], s)
    ax[0].set_title("SAR input")
    ax[0].set_axis_on()
    masked = np.where(m, 0.0, s) if m is not None else s
    show_sar(ax[1], masked)
    ax[1].set_title(f"masked input ({100 * m.mean():.0f} % of pixels)" if m is not None else "input (no masking)")
    ax[1].set_axis_on()
    true_rgb, limits = optical_rgb(true, band_names=band_names)
    if pred is not None:
        pred_rgb, _ = optical_rgb(pred, band_names=band_names, limits=limits)
        if m is not None:
            pred_rgb = np.where(m[..., None], pred_rgb, 0.0)
        ax[2].imshow(pred_rgb, interpolation="nearest")
        ax[2].set_title("predicted RGB (B4/B3/B2)" + (", masked tokens" if m is not None else ""))
        ax[2].set_axis_on()
    ax[3].imshow(true_rgb, interpolation="nearest")
    ax[3].set_title("true RGB (B4/B3/B2)")
    ax[3].set_axis_on()
    panels: list[tuple[str, np.ndarray]] = []
    for b in single_bands:
        i = list(band_names).index(b)
        if pred is not None:
            p = np.where(m, pred[i], np.nan) if m is not None else pred[i]
            panels.append((f"{b} predicted", p))
        panels.append((f"{b} true", true[i]))
    for k, (name, img) in enumerate(panels):
        a = axes[1 + k // 4][k % 4]
        band = name.split()[0]
        ref = true[list(band_names).index(band)]
        lo, hi = float(np.nanmin(ref)), float(np.nanmax(ref))
        a.imshow(img, cmap="viridis", vmin=lo, vmax=hi if hi > lo else lo + 1e-6, interpolation="nearest")
        a.set_title(name)
        a.set_axis_on()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
