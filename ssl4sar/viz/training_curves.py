"""Per-epoch curves of pretraining and fine-tuning runs from their metrics tables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ssl4sar.domain import MDE_UNDEFINED_M


def _curve(ax: Axes, table: Any, column: str, undefined: float | None = None, **kwargs: Any) -> bool:
    """Draw ``table[column]`` over the epochs (1-based); values ≥ ``undefined`` are left out. True if drawn."""
    from matplotlib.ticker import MaxNLocator

    if column not in table.columns:
        return False
    y = table[column].astype(float)
    if undefined is not None:
        y = y.where(y < undefined)
    y = y.dropna()
    if y.empty:
        return False
    ax.plot(y.index.to_numpy() + 1, y.to_numpy(), marker="o", markersize=3, **kwargs)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return True


def plot_pretrain_curves(table: Any, baseline: float | None = None, title: str | None = None,
                         loss_label: str = "L1 loss") -> Figure:
    """Training and validation loss per epoch of one pretraining run, and its learning rate.

    Args:
        table: :func:`epoch_table` of the run (``train/loss``, ``val/loss``, ``lr-…``).
        baseline: validation loss of a trivial predictor (e.g. the per-band mean,
            :func:`ssl4sar.pretrain.common.mean_predictor_val_loss`), drawn as a horizontal line.
        title: figure title.
        loss_label: y-axis label of the loss panel.

    Epochs are numbered from 1; the learning rate is drawn on a log axis.
    """
    lr_cols = [c for c in table.columns if str(c).startswith("lr-")]
    fig, axes = plt.subplots(1, 2 if lr_cols else 1, figsize=(11.0 if lr_cols else 6.0, 3.6), squeeze=False,
                             gridspec_kw={"width_ratios": [2, 1]} if lr_cols else None)
    ax = axes[0, 0]
    _curve(ax, table, "train/loss", label="training (epoch mean)")
    _curve(ax, table, "val/loss", label="validation")
    if baseline is not None and np.isfinite(baseline):
        ax.axhline(float(baseline), color="0.4", linestyle="--", linewidth=1.2,
                   label=f"per-band mean predictor ({baseline:.3f})")
    ax.set_xlabel("epoch")
    ax.set_ylabel(loss_label)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if lr_cols:
        ax = axes[0, 1]
        for c in lr_cols:
            _curve(ax, table, c, label=c.removeprefix("lr-"))
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("learning rate")
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


#: panels of :func:`plot_learning_curves`: (title, y label, [(column, line style, suffix of the legend label)])
LEARNING_CURVE_PANELS: tuple[tuple[str, str, tuple[tuple[str, str, str], ...]], ...] = (
    ("training loss", "CE + Dice (epoch mean)", (("train/loss", "-", ""),)),
    ("validation loss", "CE + Dice", (("val/loss", "-", ""),)),
    ("validation IoU", "IoU", (("val/iou_patch", "-", " (windows)"), ("val/iou_image", ":", " (images)"))),
    ("validation MDE", "MDE (m)", (("val/mde", "-", ""),)),
)


def plot_learning_curves(tables: Mapping[str, Any], panels: Sequence[tuple[str, str, Sequence[tuple[str, str, str]]]]
                         = LEARNING_CURVE_PANELS, undefined_mde_m: float = MDE_UNDEFINED_M,
                         best_marker: str | None = "val/mde") -> Figure:
    """Learning curves of several fine-tuning runs in one figure, one colour per run.

    Args:
        tables: run name → :func:`epoch_table` of its ``metrics.csv``.
        panels: ``(title, y label, [(column, line style, legend suffix), …])`` per panel
            (default :data:`LEARNING_CURVE_PANELS`: training loss, validation loss, validation IoU of the windows
            and of the stitched images, validation MDE in metres).
        undefined_mde_m: MDE values at or above this (the placeholder logged when no front could be evaluated)
            are not drawn.
        best_marker: mark each run's minimum of this column with a star (``None``: no marker).
    """
    n = len(panels)
    ncols = 2 if n > 1 else 1
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.0 * ncols, 3.4 * nrows), squeeze=False)
    colours = plt.get_cmap("tab10")
    for k, (title, ylabel, columns) in enumerate(panels):
        ax = axes[k // ncols, k % ncols]
        for i, (name, table) in enumerate(tables.items()):
            for column, style, suffix in columns:
                undefined = undefined_mde_m if "mde" in column else None
                _curve(ax, table, column, undefined=undefined, color=colours(i % 10), linestyle=style,
                       label=f"{name}{suffix}")
                if best_marker == column and column in table.columns:
                    y = table[column].astype(float)
                    y = y.where(y < undefined_mde_m).dropna()
                    if not y.empty:
                        ax.plot(int(y.idxmin()) + 1, float(y.min()), marker="*", markersize=12,
                                color=colours(i % 10), markeredgecolor="black", linestyle="none")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "no defined value in any epoch" + (
                "\n(no front extracted from any validation image)" if any("mde" in c for c, _, _ in columns) else ""),
                ha="center", va="center", transform=ax.transAxes, fontsize=9, color="0.4")
    for k in range(n, nrows * ncols):
        axes[k // ncols, k % ncols].set_axis_off()
    fig.tight_layout()
    return fig
