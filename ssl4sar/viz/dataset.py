"""Data-chapter figures: scene gallery, acquisition timeline, SAR + optical, co-registration, realism."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ssl4sar.domain import ZONE_COLORS
from ssl4sar.viz.layers import (
    BBOX_COLOR,
    CLASS_NAMES,
    GT_FRONT_COLOR,
    show_bounding_box,
    show_front,
    show_sar,
    show_zones,
)
from ssl4sar.viz.pretraining import OPTICAL_TARGET_BANDS, _as_numpy, optical_rgb


def plot_scene_gallery(scenes: Sequence[Any], ncols: int = 3, panel_size: float = 4.2, zone_alpha: float = 0.35,
                       front_thickness_px: int = 3, legend: bool = True) -> Figure:
    """SAR scenes with their zone maps, fronts and front search boxes, one panel each.

    ``scenes``: mappings with ``image`` (``(H, W)`` uint8) and optionally ``zones`` (class ids), ``front``
    (non-zero on the front), ``bbox`` (:class:`ssl4sar.data.caffe.BoundingBox`), ``stride`` and ``title`` —
    what :func:`ssl4sar.data.summary.caffe_examples` returns — or objects with ``image``, ``mask`` and ``name``
    attributes (:class:`ssl4sar.data.realism.Patch`). One legend for the figure.
    """
    import math

    from matplotlib.lines import Line2D

    items = []
    for s in scenes:
        if isinstance(s, dict):
            items.append(s)
        else:
            items.append({"image": s.image, "zones": getattr(s, "mask", None), "title": getattr(s, "name", "")})
    n = len(items)
    if n == 0:
        raise ValueError("no scenes to show")
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel_size * ncols, panel_size * nrows + 0.8), squeeze=False)
    has = {"zones": False, "front": False, "bbox": False}
    for ax, item in zip(axes.ravel(), items):
        show_sar(ax, item["image"])
        if item.get("zones") is not None:
            show_zones(ax, item["zones"], alpha=zone_alpha, legend=False)
            has["zones"] = True
        if item.get("front") is not None:
            show_front(ax, item["front"], GT_FRONT_COLOR, None, front_thickness_px)
            has["front"] = True
        if item.get("bbox") is not None:
            show_bounding_box(ax, item["bbox"], label=None, stride=int(item.get("stride", 1)))
            has["bbox"] = True
        ax.set_title(item.get("title", ""), fontsize=9)
    for ax in axes.ravel()[n:]:
        ax.set_axis_off()
    if legend:
        handles: list[Any] = []
        if has["zones"]:
            handles += [Patch(facecolor=c, edgecolor="0.5", label=name) for c, name in zip(ZONE_COLORS, CLASS_NAMES)]
        if has["front"]:
            handles.append(Line2D([], [], color=GT_FRONT_COLOR, linewidth=3, label="calving front"))
        if has["bbox"]:
            handles.append(Line2D([], [], color=BBOX_COLOR, linewidth=1.6, linestyle="--",
                                  label="front search box"))
        if handles:
            fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False, fontsize=9)
    fig.tight_layout(rect=(0, 0.05 if legend else 0, 1, 1))
    return fig


def plot_acquisition_timeline(inventory: Any, glaciers: Sequence[str] | None = None) -> Figure:
    """Acquisition dates per glacier (rows), coloured by sensor, marker by split (train ○, val ◇, test △).

    ``inventory``: a DataFrame with ``glacier``, ``date``, ``sensor`` and ``split`` columns
    (:func:`ssl4sar.data.summary.caffe_inventory`).
    """
    from matplotlib.lines import Line2D

    if len(inventory) == 0:
        raise ValueError("empty inventory")
    order = list(glaciers) if glaciers is not None else list(dict.fromkeys(
        [g for g in ("Mapple", "COL", "Crane", "DBE", "JAC", "Jorum", "SI") if g in set(inventory["glacier"])]
        + sorted(set(inventory["glacier"]))))
    sensors = list(dict.fromkeys(inventory["sensor"].tolist()))
    cmap = plt.get_cmap("tab10")
    colors = {s: cmap(i % 10) for i, s in enumerate(sensors)}
    markers = {"train": "o", "val": "D", "test": "^"}
    fig, ax = plt.subplots(figsize=(11.0, 0.45 * len(order) + 1.8))
    rng = np.random.default_rng(0)
    for (sensor, split), grp in inventory.groupby(["sensor", "split"], observed=True):
        y = np.array([order.index(g) for g in grp["glacier"]], dtype=float)
        y += rng.uniform(-0.18, 0.18, size=y.size)   # jitter so that close dates stay visible
        ax.scatter(grp["date"], y, color=colors[sensor], marker=markers.get(str(split), "o"), s=28,
                   edgecolors="white", linewidths=0.4, alpha=0.9)
    ax.set_yticks(range(len(order)))
    ax.set_yticklabels(order)
    ax.invert_yaxis()
    ax.set_xlabel("acquisition date")
    ax.grid(axis="x", alpha=0.3)
    handles = [Line2D([], [], marker="s", linestyle="none", color=colors[s], label=s) for s in sensors]
    handles += [Line2D([], [], marker=m, linestyle="none", color="0.3", label=k) for k, m in markers.items()
                if k in set(inventory["split"].astype(str))]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def plot_sar_optical(sar: np.ndarray, optical: np.ndarray, band_names: Sequence[str] = OPTICAL_TARGET_BANDS,
                     single_bands: Sequence[str] = ("B8", "B11", "SCL"), title: str | None = None,
                     panel_size: float = 3.3) -> Figure:
    """A SAR image next to its co-registered optical image: true colour (B4/B3/B2) and single bands.

    ``sar``: ``(H, W)`` (uint8 or float in [0, 1]); ``optical``: ``(C, H, W)`` with channels ``band_names``
    (the 14 pretraining targets by default, uint8 after the per-band normalisation or float in [0, 1]).
    Single bands use their own value range (SCL is the scene-classification code, scaled like the other bands).
    """
    sar = _as_numpy(sar)
    sar = sar[0] if sar.ndim == 3 else sar
    opt = _as_numpy(optical).astype(np.float32)
    if opt.shape[-2:] != sar.shape:
        raise ValueError(f"SAR {sar.shape} and optical {opt.shape} are not on the same pixel grid")
    n = 2 + len(single_bands)
    fig, axes = plt.subplots(1, n, figsize=(panel_size * n, panel_size + 0.7), squeeze=False)
    axes = axes[0]
    show_sar(axes[0], sar)
    axes[0].set_title("Sentinel-1 SAR")
    rgb, _ = optical_rgb(opt, band_names=band_names)
    axes[1].imshow(rgb, interpolation="nearest")
    axes[1].set_title("Sentinel-2 RGB (B4/B3/B2)")
    for ax, band in zip(axes[2:], single_bands):
        img = opt[list(band_names).index(band)]
        ax.imshow(img, cmap="tab20" if band == "SCL" else "viridis", interpolation="nearest")
        ax.set_title(f"Sentinel-2 {band}" + (" (scene class)" if band == "SCL" else ""))
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 1, 0.9) if title else (0, 0, 1, 1))
    return fig


def plot_coregistration(example: Any, panel_size: float = 4.0) -> Figure:
    """Before / after figure of the dataset construction for one glacier
    (:class:`ssl4sar.data.summary.CoregistrationExample`).

    Top row (before): the footprints of all raw scenes, the area of interest and the glacier grid in the grid's
    CRS (km); one raw Sentinel-1 scene in its own grid (σ⁰ in dB); the raw Sentinel-2 SCL band in its own grid and
    CRS. Bottom row (after, all on the glacier grid): the 8-bit SAR image, the optical true colour, the SCL band.
    When the example carries the true pattern, its σ⁰ = −14 dB contour is drawn on the SAR image and the
    true SCL cell boundaries on the SCL band: co-registered data follow them.
    """
    from matplotlib.lines import Line2D

    ex = example
    fig, axes = plt.subplots(2, 3, figsize=(panel_size * 3.3, panel_size * 2 + 0.6))
    km = 1000.0

    def ext_km(e: Sequence[float]) -> tuple[float, float, float, float]:
        return e[0] / km, e[1] / km, e[2] / km, e[3] / km

    # (a) footprints
    ax = axes[0, 0]
    styles = {"sar": ("#1f77b4", "-"), "optical": ("#2ca02c", "-"), "aoi": ("k", "--"), "grid": ("#d62728", "-")}
    for fp in ex.footprints:
        color, ls = styles.get(fp.kind, ("0.5", "-"))
        geoms = getattr(fp.geometry, "geoms", [fp.geometry])
        for g in geoms:
            if g.is_empty or not hasattr(g, "exterior"):
                continue
            x, y = g.exterior.xy
            ax.plot(np.asarray(x) / km, np.asarray(y) / km, color=color, linestyle=ls,
                    linewidth=2.0 if fp.kind in ("grid", "aoi") else 1.0, alpha=1.0 if fp.used else 0.45)
    gx0, gx1, gy0, gy1 = ext_km(ex.grid_extent)
    pad = 0.5 * max(gx1 - gx0, gy1 - gy0)
    ax.set_xlim(gx0 - pad, gx1 + pad)
    ax.set_ylim(gy0 - pad, gy1 + pad)
    ax.set_aspect("equal")
    ax.set_xlabel(f"x (km, {ex.grid_crs})")
    ax.set_ylabel("y (km)")
    ax.set_title("before: scene footprints")
    ax.legend(handles=[Line2D([], [], color=c, linestyle=ls, label=k) for k, (c, ls) in
                       zip(("S1 scenes", "S2 scenes", "area of interest", "glacier grid"), styles.values())],
              fontsize=6.5, loc="lower center", ncol=2, framealpha=0.85)
    ax.set_ylim(gy0 - 1.6 * pad, gy1 + pad)   # room for the legend below the footprints

    # (b) raw SAR in its own grid
    ax = axes[0, 1]
    finite = ex.raw_sar_db[np.isfinite(ex.raw_sar_db)]
    lo, hi = (np.percentile(finite, (1, 99)) if finite.size else (-30.0, 5.0))
    im = ax.imshow(ex.raw_sar_db, cmap="gray", vmin=lo, vmax=hi, extent=ext_km(ex.raw_sar_extent),
                   interpolation="nearest")
    fig.colorbar(im, ax=ax, shrink=0.75, label="σ⁰ (dB)")
    ax.set_title(f"before: Sentinel-1 as delivered\n{ex.raw_sar_name}\n{ex.raw_sar_crs}, "
                 f"{ex.raw_sar_resolution_m:g} m", fontsize=8)
    ax.set_xlabel("x (km)")

    # (c) raw SCL in its own grid
    ax = axes[0, 2]
    scl_raw = np.ma.masked_equal(ex.raw_scl, 0)
    ax.imshow(scl_raw, cmap="tab20", vmin=0, vmax=19, extent=ext_km(ex.raw_optical_extent), interpolation="nearest")
    ax.set_title(f"before: Sentinel-2 SCL as delivered\n{ex.raw_optical_name}\n{ex.raw_optical_crs}, "
                 f"{ex.raw_optical_resolution_m:g} m", fontsize=8)
    ax.set_xlabel("x (km)")

    grid_ext = ext_km(ex.grid_extent)
    # (d) constructed SAR
    ax = axes[1, 0]
    ax.imshow(np.ma.masked_equal(ex.sar, 0), cmap="gray", vmin=0, vmax=255, extent=grid_ext, interpolation="nearest")
    if ex.truth_db is not None:
        ax.contour(ex.truth_db, levels=[-14.0], colors=["#ff7f0e"], linewidths=0.9, linestyles="solid",
                   extent=grid_ext, origin="upper")
    ax.set_title(f"after: {ex.sar_file}\n8-bit, glacier grid {ex.grid_crs}, {ex.resolution_m:g} m"
                 + ("\n(orange: true σ⁰ = −14 dB lines)" if ex.truth_db is not None else ""), fontsize=8)
    ax.set_xlabel("x (km)")
    # (e) constructed RGB
    ax = axes[1, 1]
    rgb = np.asarray(ex.rgb, dtype=np.float32)
    valid = rgb.sum(axis=-1) > 0
    top = float(np.percentile(rgb[valid], 98)) if valid.any() else 1.0
    ax.imshow(np.clip(rgb / max(top, 1e-6), 0, 1), extent=grid_ext, interpolation="nearest")
    ax.set_title(f"after: {ex.optical_file}\ntrue colour (B4/B3/B2) on the same grid", fontsize=8)
    ax.set_xlabel("x (km)")
    # (f) constructed SCL
    ax = axes[1, 2]
    ax.imshow(np.ma.masked_equal(ex.scl, 0), cmap="tab20", vmin=0, vmax=19, extent=grid_ext,
              interpolation="nearest")
    if ex.truth_scl is not None:
        ax.contour(ex.truth_scl.astype(float), levels=[8.5], colors=["k"], linewidths=0.9, linestyles="solid",
                   extent=grid_ext, origin="upper")
    ax.set_title("after: SCL on the glacier grid" + ("\n(black: true cell boundaries)" if ex.truth_scl is not None
                                                      else ""), fontsize=8)
    ax.set_xlabel("x (km)")
    for a in axes[1]:
        a.set_xlim(grid_ext[0], grid_ext[1])
        a.set_ylim(grid_ext[2], grid_ext[3])
    fig.suptitle(f"Dataset construction, glacier {ex.glacier}: raw scenes (top) → co-registered grid (bottom)")
    fig.tight_layout()
    return fig


def plot_realism(intensity: Any, gradients: Any, summary: Any,
                 colors: dict[str, str] | None = None) -> Figure:
    """Synthetic vs real SAR per class: intensity histograms, gradient histograms, ENL and median gradient.

    Args:
        intensity: long-form histograms of both sources (:func:`ssl4sar.data.realism.histogram_frame`, concatenated).
        gradients: long-form gradient histograms of both sources
            (:func:`ssl4sar.data.realism.gradient_histogram_frame`, concatenated).
        summary: per-source, per-class statistics (:func:`ssl4sar.data.realism.summary_table`, concatenated).
        colors: source → colour.

    Returns a 2 × 4 figure: columns rock, glacier, ocean (top: grey-level density, bottom: gradient density), last
    column: ENL (top) and median gradient (bottom) per class and source.
    """
    sources = list(dict.fromkeys(list(intensity["source"]) + list(summary["source"])))
    palette = dict(colors or {})
    default = plt.get_cmap("tab10")
    for i, s in enumerate(sources):
        palette.setdefault(s, "#444444" if s == "real" else default(i % 10))
    classes = [c for c in (1, 2, 3) if c in set(intensity["class"])]
    fig, axes = plt.subplots(2, len(classes) + 1, figsize=(3.6 * (len(classes) + 1), 6.4), squeeze=False)
    for row, (frame, xlabel) in enumerate(((intensity, "grey level"), (gradients, "Sobel gradient (grey levels/px)"))):
        for col, c in enumerate(classes):
            ax = axes[row, col]
            for s in sources:
                f = frame[(frame["source"] == s) & (frame["class"] == c)]
                if f.empty or float(f["density"].sum()) == 0.0:
                    continue
                width = (f["bin_right"] - f["bin_left"]).to_numpy()
                ax.step(f["bin_left"].to_numpy(), f["density"].to_numpy() / width, where="post", color=palette[s],
                        label=s, linewidth=1.4)
            name = frame.loc[frame["class"] == c, "class_name"].iloc[0] if (frame["class"] == c).any() else str(c)
            ax.set_title(f"{name}: {'intensity' if row == 0 else 'gradient'}", fontsize=10)
            ax.set_xlabel(xlabel, fontsize=8)
            ax.set_ylabel("density", fontsize=8)
            ax.legend(fontsize=7)
    for row, (stat, label) in enumerate((("enl", "ENL (median, homogeneous windows)"),
                                         ("median_gradient", "median gradient (grey levels/px)"))):
        ax = axes[row, -1]
        width = 0.8 / max(len(sources), 1)
        for i, s in enumerate(sources):
            f = summary[summary["source"] == s].set_index("class").reindex(classes)
            ax.bar(np.arange(len(classes)) + (i - (len(sources) - 1) / 2) * width, f[stat].to_numpy(dtype=float),
                   width=width, color=palette[s], label=s)
        names = summary.drop_duplicates("class").set_index("class").reindex(classes)["class_name"]
        ax.set_xticks(np.arange(len(classes)))
        ax.set_xticklabels(list(names))
        ax.set_title(label, fontsize=10)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
