"""Evaluation figures: annotator comparison, annotator and predicted fronts, uncertainty, run MDEs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ssl4sar.domain import display_step, downsample_for_display
from ssl4sar.viz.layers import PRED_FRONT_COLOR, _thicken, plot_prediction, scene_axes, show_sar

#: colour of human-vs-human results in the annotator figures
HUMAN_COLOR = "#4c72b0"


def _group_colours(groups: Sequence[str], human_groups: Sequence[str] = ()) -> dict[str, Any]:
    cmap = plt.get_cmap("tab10")
    out: dict[str, Any] = {}
    k = 1
    for g in groups:
        if g in human_groups:
            out[g] = HUMAN_COLOR
        else:
            out[g] = cmap(k % 10)
            k += 1
    return out


def plot_annotator_comparison(pairs: Any, summary: Any, bootstrap: Mapping[str, Any] | None = None,
                              paper: Mapping[str, float] | None = None, human_groups: Sequence[str] = (),
                              title: str | None = None) -> Figure:
    """Distributions of annotator-vs-annotator and model-vs-annotator MDE (metres) with confidence intervals.

    Left: one dot per compared pair (pooled MDE over the images), per group, with the group's mean and its
    bootstrap confidence interval (error bar). Right: the bootstrap distribution of each group's mean pair MDE
    (step histogram scaled to a peak of 1, so that narrow and wide distributions are both visible) with its
    interval shaded. Published values are drawn as dashed reference lines.

    Args:
        pairs: DataFrame with ``group`` and ``mde_m`` (one row per pair, e.g. from
            :attr:`ssl4sar.annotators.AnnotatorComparison.pairs` with a ``group`` column added).
        summary: DataFrame with ``group``, ``mean_mde_m``, ``ci_low_m``, ``ci_high_m`` (one row per group, in
            drawing order).
        bootstrap: group → ``(n_bootstrap,)`` replicates of the mean pair MDE (metres); optional.
        paper: label → published MDE in metres (reference lines).
        human_groups: groups drawn in the human colour (:data:`HUMAN_COLOR`).
        title: figure title.
    """
    groups = [str(g) for g in summary["group"]]
    colours = _group_colours(groups, human_groups)
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(12.0, 4.6), gridspec_kw={"width_ratios": [1.15, 1.0]})
    rng = np.random.default_rng(0)  # jitter of the dots only
    for i, g in enumerate(groups):
        v = pairs.loc[pairs["group"] == g, "mde_m"].to_numpy(dtype=float)
        v = v[np.isfinite(v)]
        if v.size:
            ax0.scatter(i + rng.uniform(-0.18, 0.18, v.size), v, s=14, color=colours[g], alpha=0.55, lw=0)
        row = summary[summary["group"] == g].iloc[0]
        mean, lo, hi = (float(row[k]) for k in ("mean_mde_m", "ci_low_m", "ci_high_m"))
        if np.isfinite(mean):
            # the percentile interval need not contain the full-sample mean (few images): draw both as they are
            if np.isfinite(lo) and np.isfinite(hi):
                ax0.vlines(i + 0.32, lo, hi, color="k", lw=1.2, zorder=3)
                ax0.hlines([lo, hi], i + 0.26, i + 0.38, color="k", lw=1.2, zorder=3)
            ax0.plot(i + 0.32, mean, "D", color="k", ms=5, zorder=4)
        else:
            ax0.text(i, 0.5, "no front\nto compare", transform=ax0.get_xaxis_transform(), ha="center",
                     va="center", fontsize=8, color="0.4")
    ref_styles = ("--", ":", "-.", (0, (5, 1, 1, 1)))
    for j, (label, value) in enumerate((paper or {}).items()):
        style = ref_styles[j % len(ref_styles)]
        ax0.axhline(value, color="0.35", ls=style, lw=1.0, label=f"{label}: {value:g} m")
        ax1.axvline(value, color="0.35", ls=style, lw=1.0, label=f"{label}: {value:g} m")
    ax0.set_xticks(range(len(groups)))
    ax0.set_xticklabels(groups, rotation=20, ha="right", fontsize=8)
    ax0.set_xlim(-0.6, len(groups) - 0.4)
    ax0.set_ylabel("MDE of a pair (m)")
    top = max([ax0.get_ylim()[1], *(1.12 * v for v in (paper or {}).values())])
    ax0.set_ylim(0.0, top)
    ax0.set_title("per pair (dots) and mean with CI (black)", fontsize=10)
    if paper:
        ax0.legend(fontsize=7, loc="upper left")
    drawn = False
    for g in groups:
        b = None if bootstrap is None else bootstrap.get(g)
        b = np.asarray([] if b is None else b, dtype=float)
        b = b[np.isfinite(b)]
        if b.size == 0:
            continue
        spread = float(b.max() - b.min())
        if spread <= 1e-6 * max(1.0, abs(float(b.mean()))):
            # every replicate has the same mean (e.g. the model found a front on one image only): one spike
            ax1.plot([float(b.mean())] * 2, [0.0, 1.0], lw=2.0, color=colours[g], label=f"{g} (constant)")
        else:
            counts, edges = np.histogram(b, bins=40)
            ax1.stairs(counts / counts.max(), edges, lw=1.5, color=colours[g], label=g)
        row = summary[summary["group"] == g].iloc[0]
        if np.isfinite(row["ci_low_m"]) and np.isfinite(row["ci_high_m"]):
            ax1.axvspan(float(row["ci_low_m"]), float(row["ci_high_m"]), color=colours[g], alpha=0.12, lw=0)
        drawn = True
    ax1.set_xlabel("mean MDE over pairs (m), bootstrap over images")
    ax1.set_ylabel("frequency (peak = 1)")
    ax1.set_ylim(0.0, 1.25)
    ax1.set_title("bootstrap distribution of the mean (interval shaded)", fontsize=10)
    if drawn or paper:
        ax1.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_annotator_fronts(sar: np.ndarray, annotator_fronts: Mapping[str, np.ndarray],
                          model_front: np.ndarray | None = None, model_label: str = "model",
                          title: str | None = None, ax: Axes | None = None, thickness_px: int = 1,
                          cmap: str = "cool") -> Figure:
    """A SAR image with the fronts of several annotators (one colour each) and the model's front (yellow).

    Args:
        sar: ``(H, W)`` image (uint8 or [0, 1]).
        annotator_fronts: annotator → ``(H, W)`` front mask (non-zero on the front).
        model_front: ``(H, W)`` predicted front, or ``None``.
        model_label: legend label of the model.
        title, ax: as usual.
        thickness_px: line thickness of the annotators' fronts in pixels (the model's is 2 px thicker).
        cmap: colour map the annotator colours are drawn from.
    """
    fig, ax = scene_axes(sar, ax, width_in=6.4, title_in=0.3)
    colours = plt.get_cmap(cmap)(np.linspace(0.0, 1.0, max(len(annotator_fronts), 2)))
    handles: list[Any] = []
    for i, (name, front) in enumerate(annotator_fronts.items()):
        mask = _thicken(front, thickness_px)
        rgba = np.zeros((*mask.shape, 4), dtype=np.float32)
        rgba[mask] = colours[i]
        ax.imshow(rgba, interpolation="nearest")
        if i < 3 or i == len(annotator_fronts) - 1:
            handles.append(Patch(facecolor=colours[i], label=str(name)))
        elif i == 3:
            handles.append(Patch(facecolor="none", edgecolor="none", label="…"))
    if model_front is not None:
        mask = _thicken(model_front, thickness_px + 2)
        rgba = np.zeros((*mask.shape, 4), dtype=np.float32)
        rgba[mask] = to_rgba(PRED_FRONT_COLOR)
        ax.imshow(rgba, interpolation="nearest")
        handles.append(Patch(facecolor=PRED_FRONT_COLOR, label=model_label if model_front.any()
                             else f"{model_label} (no front)"))
    if handles:
        ax.legend(handles=handles, loc="lower right", fontsize="x-small", framealpha=0.8)
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def plot_front_overlays(scenes: Sequence[Mapping[str, Any]], panel_size: float = 3.6,
                        thickness_px: int | None = None, max_side_px: int | None = 1500) -> Figure:
    """Predicted and true fronts of several evaluations side by side: one row per scene, one column per evaluation.

    Args:
        scenes: per scene a mapping with ``stem``, ``sar`` ``(H, W)``, ``gt_front`` ``(H, W)``, ``resolution_m``
            (m/px) and ``predictions``: evaluation name → mapping with ``front`` ``(H, W)`` (post-processed,
            non-zero on the front) and ``mean_m`` (mean distance in metres, NaN for a missing front); optionally
            ``zones`` ``(H, W)`` class ids drawn under the front.
        panel_size: inches per panel.
        thickness_px: front line thickness; default 3 px, at most 1/60 of the shorter image side.
        max_side_px: larger scenes are drawn subsampled to this size (fronts by block maximum); ``None``: never.

    Predicted fronts are yellow, true fronts red, their overlap magenta (:func:`plot_prediction`).
    """
    if not scenes:
        raise ValueError("no scenes to draw")
    names = list(dict.fromkeys(n for s in scenes for n in s["predictions"]))
    fig, axes = plt.subplots(len(scenes), len(names), figsize=(panel_size * len(names), panel_size * len(scenes)),
                             squeeze=False)
    for r, scene in enumerate(scenes):
        step = display_step(np.shape(scene["sar"]), max_side_px)
        sar = downsample_for_display(scene["sar"], step)
        gt_front = downsample_for_display(scene["gt_front"], step, keep_lines=True)
        t = thickness_px if thickness_px is not None else max(1, min(3, min(sar.shape) // 60))
        for c, name in enumerate(names):
            ax = axes[r, c]
            pred = scene["predictions"].get(name)
            if pred is None:
                ax.set_axis_off()
                continue
            mean_m = float(pred.get("mean_m", float("nan")))
            label = "missing front" if not np.isfinite(mean_m) else f"mean distance {mean_m:.0f} m"
            zones = None if pred.get("zones") is None else downsample_for_display(pred["zones"], step)
            plot_prediction(sar, zones, downsample_for_display(pred["front"], step, keep_lines=True), gt_front, ax=ax,
                            thickness_px=t, zone_alpha=0.25)
            legend = ax.get_legend()
            if legend is not None and (r, c) != (0, 0):
                legend.remove()
            ax.set_title(f"{name}\n{label}", fontsize=9)
            if c == 0:
                ax.set_ylabel(f"{scene['stem']}\n({float(scene['resolution_m']):g} m/px)", fontsize=8)
    fig.tight_layout()
    return fig


def plot_uncertainty_examples(scenes: Sequence[Mapping[str, Any]], panel_size: float = 3.4,
                              vmax: float | None = None, max_side_px: int | None = 1500) -> Figure:
    """Where the fused prediction is wrong, and how uncertain the members were: one row per scene.

    Args:
        scenes: per scene a mapping with ``stem``, ``sar`` ``(H, W)``, ``zones`` (predicted class ids, ``(H, W)``),
            ``gt_zones`` (true class ids, ``(H, W)``) and ``uncertainty``: name → ``(H, W)`` standard deviation of
            the softmax of the predicted class over members × augmentations (0 … 0.5).
        panel_size: inches per panel.
        vmax: upper limit of the uncertainty colour scale (shared by all panels); default: the 99.5th percentile
            of all maps shown, at least 0.02 (the largest possible value is 0.5).
        max_side_px: larger scenes are drawn subsampled to this size; ``None``: never.

    Columns: SAR with the predicted zones; the wrongly classified pixels (red; NA ground truth grey) over the SAR;
    one column per uncertainty map.
    """
    if not scenes:
        raise ValueError("no scenes to draw")
    names = list(dict.fromkeys(n for s in scenes for n in s["uncertainty"]))
    if vmax is None:
        values = [np.asarray(u, dtype=np.float32).ravel() for s in scenes for u in s["uncertainty"].values()]
        vmax = max(0.02, float(np.percentile(np.concatenate(values), 99.5))) if values else 0.5
    ncols = 2 + len(names)
    fig, axes = plt.subplots(len(scenes), ncols, figsize=(panel_size * ncols + 0.8, panel_size * len(scenes)),
                             squeeze=False)
    im = None
    for r, scene in enumerate(scenes):
        step = display_step(np.shape(scene["sar"]), max_side_px)
        sar, zones, gt = (downsample_for_display(scene[k], step) for k in ("sar", "zones", "gt_zones"))
        plot_prediction(sar, zones, ax=axes[r, 0], zone_alpha=0.35)
        legend = axes[r, 0].get_legend()
        if legend is not None and r > 0:
            legend.remove()
        axes[r, 0].set_title("predicted zones", fontsize=9)
        axes[r, 0].set_ylabel(scene["stem"], fontsize=8)
        wrong = np.zeros((*gt.shape, 4), dtype=np.float32)
        wrong[(zones != gt) & (gt > 0)] = to_rgba("#d62728", 0.75)
        wrong[gt == 0] = to_rgba("0.75", 0.75)
        show_sar(axes[r, 1], sar)
        axes[r, 1].imshow(wrong, interpolation="nearest")
        share = float(((zones != gt) & (gt > 0)).sum()) / max(1, int((gt > 0).sum()))
        axes[r, 1].set_title(f"misclassified ({100 * share:.1f} % of labelled px)", fontsize=9)
        for c, name in enumerate(names, start=2):
            ax = axes[r, c]
            u = scene["uncertainty"].get(name)
            if u is None:
                ax.set_axis_off()
                continue
            im = ax.imshow(downsample_for_display(u, step).astype(np.float32), cmap="magma", vmin=0.0, vmax=vmax,
                           interpolation="nearest")
            ax.set_title(f"uncertainty: {name}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    if im is not None:
        fig.colorbar(im, ax=list(axes[:, 2:].ravel()), shrink=0.8, label="std of the softmax (predicted class)")
    return fig


def plot_run_mdes(mdes: Mapping[str, Sequence[float]], this_run: Mapping[str, float] | None = None,
                  ax: Axes | None = None) -> Figure:
    """Test MDE of every training run per method (dots) with the mean (bar), e.g. the paper's five runs
    (:data:`ssl4sar.stats.PAPER_RUN_MDES_M`); metres.

    Args:
        mdes: method → per-run MDEs (m).
        this_run: optional method → one MDE (m) of this book's run, drawn as a hollow diamond (only meaningful
            for runs on the real data).
        ax: draw into this axes (default: a new figure).
    """
    if ax is None:
        fig, ax = plt.subplots(figsize=(1.6 * len(mdes) + 2.0, 3.8))
    else:
        fig = ax.figure
    rng = np.random.default_rng(0)
    for i, (name, values) in enumerate(mdes.items()):
        v = np.asarray(values, dtype=np.float64)
        ax.bar(i, v.mean(), width=0.6, color="#c6dbef", edgecolor="#4a6fa5", zorder=1)
        ax.scatter(i + rng.uniform(-0.15, 0.15, size=v.size), v, color="#08306b", s=22, zorder=3)
        ax.annotate(f"mean {v.mean():.1f}", (i, v.max()), xytext=(0, 6), textcoords="offset points", ha="center",
                    va="bottom", fontsize=8, zorder=4)
        if this_run and name in this_run and np.isfinite(this_run[name]):
            ax.scatter([i], [this_run[name]], marker="D", facecolors="none", edgecolors="#d62728", s=50, zorder=4)
    ax.set_xticks(range(len(mdes)))
    ax.set_xticklabels(list(mdes))
    ax.set_ylabel("test MDE (m)")
    ax.margins(y=0.12)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title("test MDE per training run (dots) and mean (bar)")
    fig.tight_layout()
    return fig
