"""Figures: SAR scenes with zone maps and fronts, uncertainty maps.

Building blocks take a matplotlib ``Axes`` and draw one layer (:func:`show_sar`, :func:`show_zones`,
:func:`show_front`); the figure functions (:func:`plot_prediction`, :func:`plot_uncertainty`) combine them and
return the ``Figure``. :func:`save_figure` writes atomically. Arrays are ``(H, W)`` (``(K, H, W)`` for per-class
maps); zones are class ids (0 NA, 1 rock, 2 glacier, 3 ocean); fronts are non-zero on the front. Other modules
may add figure functions here; keep them free of computation (call the library for numbers).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap, to_rgba
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from scipy import ndimage

from ssl4sar.io import atomic_path

CLASS_NAMES: tuple[str, ...] = ("NA", "rock", "glacier", "ocean / mélange")
#: colours of class ids 0..3 (NA, rock, glacier, ocean + ice mélange)
ZONE_COLORS: tuple[str, ...] = ("#000000", "#8c6d46", "#d9f0ff", "#1f4e99")
PRED_FRONT_COLOR = "#ffd400"
GT_FRONT_COLOR = "#ff3b30"
AGREE_COLOR = "#ff00ff"


def zone_cmap() -> ListedColormap:
    """Categorical colour map for class ids 0..3."""
    return ListedColormap(list(ZONE_COLORS), name="caffe_zones")


def show_sar(ax: Axes, sar: np.ndarray, vmin: float | None = None, vmax: float | None = None) -> Axes:
    """Draw a SAR image in grey (uint8 0..255 or float [0, 1]), without axis ticks."""
    sar = np.asarray(sar)
    if vmin is None and vmax is None:
        vmin, vmax = (0, 255) if sar.dtype == np.uint8 else (0.0, 1.0)
    ax.imshow(sar, cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    return ax


def show_zones(ax: Axes, zones: np.ndarray, alpha: float = 0.4, legend: bool = True,
               class_names: Sequence[str] = CLASS_NAMES) -> Axes:
    """Overlay a class map (ids 0..3) with :data:`ZONE_COLORS` at transparency ``alpha``."""
    zones = np.asarray(zones)
    ax.imshow(zones, cmap=zone_cmap(), vmin=-0.5, vmax=len(ZONE_COLORS) - 0.5, alpha=alpha,
              interpolation="nearest")
    if legend:
        handles = [Patch(facecolor=c, edgecolor="0.5", label=n) for c, n in zip(ZONE_COLORS, class_names)]
        _add_legend(ax, handles)
    return ax


def _thicken(front: np.ndarray, thickness_px: int) -> np.ndarray:
    mask = np.asarray(front) > 0
    if thickness_px > 1:
        mask = ndimage.binary_dilation(mask, structure=np.ones((thickness_px, thickness_px), dtype=bool))
    return mask


def show_front(ax: Axes, front: np.ndarray, color: str = PRED_FRONT_COLOR, label: str | None = None,
               thickness_px: int = 3) -> Axes:
    """Overlay a front mask in ``color``, dilated to a ``thickness_px`` square for visibility."""
    mask = _thicken(front, thickness_px)
    rgba = np.zeros((*mask.shape, 4), dtype=np.float32)
    rgba[mask] = to_rgba(color)
    ax.imshow(rgba, interpolation="nearest")
    if label:
        _add_legend(ax, [Patch(facecolor=color, label=label)])
    return ax


def _add_legend(ax: Axes, handles: list[Any]) -> None:
    old = ax.get_legend()
    if old is not None:
        handles = list(old.legend_handles) + handles
    ax.legend(handles=handles, loc="lower right", fontsize="small", framealpha=0.8)


def plot_prediction(sar: np.ndarray, zones: np.ndarray | None = None, pred_front: np.ndarray | None = None,
                    gt_front: np.ndarray | None = None, title: str | None = None, ax: Axes | None = None,
                    thickness_px: int = 3, zone_alpha: float = 0.4) -> Figure:
    """SAR image with an optional zone map, predicted front (yellow), true front (red), overlap (magenta).

    Args:
        sar: ``(H, W)`` image.
        zones: ``(H, W)`` class ids to overlay, or ``None``.
        pred_front, gt_front: ``(H, W)`` fronts, or ``None``.
        title: axes title.
        ax: draw into this axes (default: a new figure).
        thickness_px: front line thickness in pixels (the reference uses 9 px below 10 m/px, else 3 px).
        zone_alpha: transparency of the zone overlay.
    """
    if ax is None:
        h, w = np.asarray(sar).shape[:2]
        fig, ax = plt.subplots(figsize=(6.0, 6.0 * h / max(w, 1) + 0.4))
    else:
        fig = ax.figure
    show_sar(ax, sar)
    if zones is not None:
        show_zones(ax, zones, alpha=zone_alpha)
    if pred_front is not None:
        show_front(ax, pred_front, PRED_FRONT_COLOR, "predicted front", thickness_px)
    if gt_front is not None:
        show_front(ax, gt_front, GT_FRONT_COLOR, "true front", thickness_px)
    if pred_front is not None and gt_front is not None:
        both = _thicken(pred_front, thickness_px) & _thicken(gt_front, thickness_px)
        show_front(ax, both, AGREE_COLOR, "overlap", 1)
    if title:
        ax.set_title(title)
    return fig


def plot_uncertainty(std: np.ndarray, class_names: Sequence[str] = CLASS_NAMES, classes: Sequence[int] | None = None,
                     vmax: float | None = None, axes: Sequence[Axes] | None = None) -> Figure:
    """Per-class uncertainty maps (e.g. the ensemble / TTA standard deviation of the softmax, §9).

    Args:
        std: ``(K, H, W)`` per-class standard deviation, or ``(H, W)`` for a single map.
        class_names: panel titles.
        classes: which classes to show (default all).
        vmax: upper colour limit (default: the maximum shown value).
        axes: draw into these axes (one per panel).
    """
    std = np.asarray(std, dtype=np.float32)
    if std.ndim == 2:
        std = std[None]
        names = ["uncertainty"]
        idx = [0]
    else:
        idx = list(range(std.shape[0])) if classes is None else [int(c) for c in classes]
        names = [class_names[i] if i < len(class_names) else f"class {i}" for i in idx]
    if axes is None:
        h, w = std.shape[1:]
        fig, ax_arr = plt.subplots(1, len(idx), figsize=(3.6 * len(idx), 3.6 * h / max(w, 1) + 0.6), squeeze=False)
        axes = list(ax_arr[0])
    else:
        axes = list(axes)
        fig = axes[0].figure
    top = float(np.max(std[idx])) if vmax is None else vmax
    im = None
    for a, i, name in zip(axes, idx, names):
        im = a.imshow(std[i], cmap="magma", vmin=0.0, vmax=top if top > 0 else 1.0, interpolation="nearest")
        a.set_title(name)
        a.set_xticks([])
        a.set_yticks([])
    if im is not None:
        fig.colorbar(im, ax=axes, shrink=0.8, label="std of softmax")
    return fig


def save_figure(fig: Figure, path: str | Path, dpi: int = 150, close: bool = True) -> Path:
    """Save ``fig`` atomically (format from the suffix) and close it unless ``close`` is False."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    if close:
        plt.close(fig)
    return path
