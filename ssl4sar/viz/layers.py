"""Layers of a scene figure (SAR, zones, fronts, search box) and the prediction / uncertainty figures."""

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

from ssl4sar.domain import CLASS_LABELS, ZONE_COLORS
from ssl4sar.io import atomic_path

#: legend names of class ids 0..3 (:data:`ssl4sar.domain.CLASS_LABELS`)
CLASS_NAMES: tuple[str, ...] = CLASS_LABELS
PRED_FRONT_COLOR = "#ffd400"
GT_FRONT_COLOR = "#ff3b30"
AGREE_COLOR = "#ff00ff"


#: colours of the CaFFe splits in data figures
SPLIT_COLORS: dict[str, str] = {"train": "#1f77b4", "val": "#ff7f0e", "test": "#d62728"}
BBOX_COLOR = "#ffd400"


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


def scene_axes(sar: np.ndarray, ax: Axes | None = None, width_in: float = 6.0,
               title_in: float = 0.4) -> tuple[Figure, Axes]:
    """Draw ``sar`` into ``ax`` (default: a new figure ``width_in`` inches wide with the scene's aspect ratio plus
    ``title_in`` inches for a title); returns the figure and axes for the layers drawn on top."""
    if ax is None:
        h, w = np.asarray(sar).shape[:2]
        fig, ax = plt.subplots(figsize=(width_in, width_in * h / max(w, 1) + title_in))
    else:
        fig = ax.figure
    show_sar(ax, sar)
    return fig, ax


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
    fig, ax = scene_axes(sar, ax)
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


def save_figure(fig: Figure, path: str | Path, dpi: int = 150, close: bool = True,
                metadata: dict[str, str] | None = None) -> Path:
    """Save ``fig`` atomically (format from the suffix) and close it unless ``close`` is False; ``metadata``: text
    items stored in the file (PNG text chunks; see matplotlib's ``savefig``)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", metadata=metadata)
    if close:
        plt.close(fig)
    return path


def show_bounding_box(ax: Axes, bbox: Any, color: str = BBOX_COLOR, label: str | None = "front search box",
                      stride: int = 1) -> Axes:
    """Draw a :class:`ssl4sar.data.caffe.BoundingBox` as a dashed rectangle: the rows ``y_rl ≤ r < y_lu`` and
    columns ``x_lu ≤ c < x_rl`` that the evaluation keeps (§1.4). ``stride``: the image was subsampled by it."""
    from matplotlib.patches import Rectangle

    width, height = bbox.x_rl - bbox.x_lu, bbox.y_lu - bbox.y_rl
    if width <= 0 or height <= 0:
        return ax
    rect = Rectangle(((bbox.x_lu - 0.5) / stride, (bbox.y_rl - 0.5) / stride), width / stride, height / stride,
                     fill=False, edgecolor=color, linewidth=1.6, linestyle="--", label=label)
    ax.add_patch(rect)
    return ax
