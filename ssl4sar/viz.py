"""Figures: SAR scenes with zone maps and fronts, uncertainty maps.

Building blocks take a matplotlib ``Axes`` and draw one layer (:func:`show_sar`, :func:`show_zones`,
:func:`show_front`); the figure functions (:func:`plot_prediction`, :func:`plot_uncertainty`) combine them and
return the ``Figure``. :func:`save_figure` writes atomically. Arrays are ``(H, W)`` (``(K, H, W)`` for per-class
maps); zones are class ids (0 NA, 1 rock, 2 glacier, 3 ocean); fronts are non-zero on the front. Other modules
may add figure functions here; keep them free of computation (call the library for numbers).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap, to_rgba
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from scipy import ndimage

from ssl4sar.domain import CLASS_LABELS, MDE_UNDEFINED_M, ZONE_COLORS, display_step, downsample_for_display
from ssl4sar.io import atomic_path

#: legend names of class ids 0..3 (:data:`ssl4sar.domain.CLASS_LABELS`)
CLASS_NAMES: tuple[str, ...] = CLASS_LABELS
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


# ---------------------------------------------------------------------------------------------------------------------
# Pretraining (OptSimMIM / OptTranslator) figures
# ---------------------------------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------------------
# front-position time series (ssl4sar.timeseries)

def plot_front_positions(series: Any, truth: Any | None = None, ax: Axes | None = None,
                         title: str | None = None) -> Figure:
    """Front position (m, relative to the first date) over time, with ±1 std error bars when available.

    Args:
        series: DataFrame from :func:`ssl4sar.timeseries.front_time_series` (``date``, ``position_m``,
            optional ``position_std_m``, ``method``); several methods are drawn as separate series.
        truth: optional DataFrame with ``date`` and ``position_m`` (e.g. the synthetic ``truth.csv``), drawn in grey.
        ax: draw into this axes (default: a new figure).
        title: axes title.
    """
    import pandas as pd

    if ax is None:
        fig, ax = plt.subplots(figsize=(7.0, 3.6))
    else:
        fig = ax.figure
    if truth is not None:
        t = truth.copy()
        t["date"] = pd.to_datetime(t["date"])
        ax.plot(t["date"], t["position_m"], "-", color="0.55", lw=2.5, alpha=0.7, label="truth")
    df = series.copy()
    df["date"] = pd.to_datetime(df["date"])
    groups = df.groupby("method", sort=False) if "method" in df else [("front", df)]
    for name, g in groups:
        yerr = g["position_std_m"] if "position_std_m" in g and g["position_std_m"].notna().any() else None
        ax.errorbar(g["date"], g["position_m"], yerr=yerr, fmt="o-", ms=4, capsize=3, label=str(name))
    ax.axhline(0.0, color="0.8", lw=0.8, zorder=0)
    ax.set_ylabel("front position (m, + = advance)")
    ax.set_xlabel("date")
    ax.legend(fontsize="small")
    fig.autofmt_xdate()
    if title:
        ax.set_title(title)
    return fig


def plot_front_map(fronts: Sequence[Any], labels: Sequence[str] | None = None, reference: Any | None = None,
                   ax: Axes | None = None, title: str | None = None, cmap: str = "viridis") -> Figure:
    """Front lines (shapely LineString / MultiLineString, one CRS) in map coordinates, coloured by order.

    Args:
        fronts: geometries in time order (``None`` entries are skipped).
        labels: one label per front (e.g. dates) for the first and last entries of the legend.
        reference: an optional box (Polygon) or centreline (LineString) in the same CRS, drawn in red.
        ax, title, cmap: as usual.
    """
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.0, 6.0))
    else:
        fig = ax.figure
    colours = plt.get_cmap(cmap)(np.linspace(0.0, 1.0, max(len(fronts), 2)))
    for i, g in enumerate(fronts):
        if g is None or g.is_empty:
            continue
        label = labels[i] if labels is not None and i in (0, len(fronts) - 1) else None
        for part in getattr(g, "geoms", [g]):
            xy = np.asarray(part.coords)
            ax.plot(xy[:, 0], xy[:, 1], color=colours[i], lw=1.2, label=label)
            label = None
    if reference is not None:
        ring = reference.exterior if hasattr(reference, "exterior") else reference
        xy = np.asarray(ring.coords)
        ax.plot(xy[:, 0], xy[:, 1], color="#d62728", lw=1.5, label="reference")
    ax.set_aspect("equal")
    ax.set_xlabel("x (map units)")
    ax.set_ylabel("y (map units)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")
    if title:
        ax.set_title(title)
    return fig


# =====================================================================================================================
# Data chapter (notebooks/01_dataset.py): glacier map, scene galleries, acquisition timeline, SAR + optical pairs,
# dataset construction before / after, synthetic-vs-real realism. Numbers come from ssl4sar.data.summary and
# ssl4sar.data.realism; these functions only draw.
# =====================================================================================================================

#: colours of the CaFFe splits in data figures
SPLIT_COLORS: dict[str, str] = {"train": "#1f77b4", "val": "#ff7f0e", "test": "#d62728"}
BBOX_COLOR = "#ffd400"
#: Natural Earth resolutions from fine to coarse
_NE_RESOLUTIONS: tuple[str, ...] = ("10m", "50m", "110m")


def natural_earth_path(name: str = "coastline", resolution: str = "110m", category: str = "physical") -> Path | None:
    """Path of a Natural Earth shapefile that cartopy already has on disk, or ``None``; never downloads.

    Looks where cartopy's own downloader would (``cartopy.config['pre_existing_data_dir']`` and
    ``cartopy.config['data_dir']``, sub-folder ``shapefiles/natural_earth/<category>/ne_<resolution>_<name>.shp``)
    and requires the ``.shp``, ``.shx`` and ``.dbf`` parts. ``resolution="auto"`` returns the finest one present.
    """
    import cartopy

    resolutions = _NE_RESOLUTIONS if resolution == "auto" else (resolution,)
    for res in resolutions:
        for key in ("pre_existing_data_dir", "data_dir"):
            base = cartopy.config.get(key)
            if not base:
                continue
            shp = Path(base) / "shapefiles" / "natural_earth" / category / f"ne_{res}_{name}.shp"
            if all(shp.with_suffix(s).is_file() for s in (".shp", ".shx", ".dbf")):
                return shp
    return None


def _stock_image_path() -> Path | None:
    """cartopy's bundled low-resolution Natural Earth raster (shipped with the package, no download), if present."""
    import cartopy

    base = cartopy.config.get("repo_data_dir")
    p = Path(base) / "raster" / "natural_earth" / "50-natural-earth-1-downsampled.png" if base else None
    return p if p is not None and p.is_file() else None


def glacier_map(locations: Any | None = None, *, coastlines: bool | None = None, resolution: str = "auto",
                background: bool = True, figsize: tuple[float, float] = (13.0, 6.0)) -> Figure:
    """Map of the CaFFe glaciers: Alaska and Greenland (north-polar stereographic) and the Antarctic Peninsula
    (south-polar stereographic, with an inset locating it on Antarctica).

    Args:
        locations: ``{code: GlacierLocation}`` (default :data:`ssl4sar.data.summary.GLACIER_LOCATIONS`); each
            needs ``code``, ``lat``, ``lon`` (degrees) and ``caffe_split``.
        coastlines: draw Natural Earth coastlines. ``None`` (default): when the shapefile is already on disk
            (:func:`natural_earth_path`); ``True`` with no file on disk raises ``FileNotFoundError``. Nothing is
            ever downloaded: the shapefile is read directly, not through cartopy's feature interface.
        resolution: Natural Earth resolution (``10m``, ``50m``, ``110m`` or ``auto`` = finest present).
        background: draw cartopy's bundled low-resolution shaded-relief image (part of the cartopy package) under
            the northern map and the inset.
        figsize: figure size in inches.

    Without coastlines the map still shows graticule, labelled gridlines, the glacier points and labels, and says
    so in a note at the bottom of the figure.
    """
    import math

    import cartopy.crs as ccrs
    from matplotlib.lines import Line2D

    if locations is None:
        from ssl4sar.data.summary import GLACIER_LOCATIONS as locations
    locs = list(locations.values()) if isinstance(locations, dict) else list(locations)
    shp = natural_earth_path("coastline", resolution)
    if coastlines is None:
        coastlines = shp is not None
    elif coastlines and shp is None:
        raise FileNotFoundError(f"Natural Earth coastlines ({resolution}) are not on disk; pass coastlines=None to "
                                "draw the map without them (nothing is downloaded)")
    geometries: list[Any] = []
    if coastlines and shp is not None:
        from cartopy.io.shapereader import Reader

        geometries = list(Reader(str(shp)).geometries())
    stock = _stock_image_path() if background else None
    pc = ccrs.PlateCarree()

    fig = plt.figure(figsize=figsize)
    north = fig.add_axes((0.03, 0.12, 0.44, 0.78), projection=ccrs.NorthPolarStereo(central_longitude=-95.0))
    south = fig.add_axes((0.53, 0.12, 0.44, 0.78), projection=ccrs.SouthPolarStereo(central_longitude=-61.0))
    north.set_extent((-165.0, -25.0, 52.0, 80.0), crs=pc)
    south.set_extent((-64.0, -57.5, -66.0, -63.7), crs=pc)
    north.set_title("Northern glaciers (north-polar stereographic)")
    south.set_title("Antarctic Peninsula (south-polar stereographic)")

    stock_img = plt.imread(stock) if stock is not None else None

    def decorate(ax: Any, lat_band: tuple[float, float] | None) -> None:
        if lat_band is not None and stock_img is not None:
            # the bundled image is a plate carrée raster of the globe (rows: 90°N → 90°S); reproject only the
            # latitude band in view, on a coarse regrid: full-globe regridding takes seconds per panel
            rows = stock_img.shape[0] / 180.0
            r0, r1 = int((90.0 - lat_band[1]) * rows), int(math.ceil((90.0 - lat_band[0]) * rows))
            ax.imshow(stock_img[r0:r1], origin="upper", transform=pc,
                      extent=(-180, 180, 90.0 - r1 / rows, 90.0 - r0 / rows), interpolation="bilinear",
                      alpha=0.6, regrid_shape=200)
        if geometries:
            from cartopy.feature import ShapelyFeature

            ax.add_feature(ShapelyFeature(geometries, pc, facecolor="none", edgecolor="0.2", linewidth=0.6))

    decorate(north, (35.0, 90.0))
    decorate(south, None)
    for ax in (north, south):
        gl = ax.gridlines(crs=pc, draw_labels=True, linewidth=0.5, color="0.5", alpha=0.6, linestyle="--")
        gl.top_labels = False
        gl.right_labels = False
        gl.xlabel_style = {"size": 8}
        gl.ylabel_style = {"size": 8}

    for loc in locs:
        ax = north if loc.lat > 0 else south
        split = getattr(loc, "caffe_split", "train")
        ax.plot(loc.lon, loc.lat, marker="o" if split == "train" else "^", markersize=9,
                color=SPLIT_COLORS.get(split, "k"), markeredgecolor="white", transform=pc, zorder=5)
    # labels: southern glaciers lie within ~150 km of each other, so alternate the sides
    south_locs = sorted((g for g in locs if g.lat < 0), key=lambda g: (g.lat, g.lon))
    offsets = {g.code: ((12, -4) if i % 2 == 0 else (-12, 4)) for i, g in enumerate(south_locs)}
    for loc in locs:
        ax = north if loc.lat > 0 else south
        dx, dy = offsets.get(loc.code, (10, 6))
        ax.annotate(f"{loc.code}", xy=ax.projection.transform_point(loc.lon, loc.lat, pc), xytext=(dx, dy),
                    textcoords="offset points", ha="left" if dx > 0 else "right", va="center", fontsize=10,
                    fontweight="bold", zorder=6,
                    bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "alpha": 0.8, "edgecolor": "none"})

    inset = south.inset_axes((0.0, 0.66, 0.34, 0.34), projection=ccrs.SouthPolarStereo())
    inset.set_extent((-180.0, 180.0, -90.0, -60.0), crs=pc)
    decorate(inset, (-90.0, -55.0))
    inset.gridlines(crs=pc, linewidth=0.3, color="0.5", alpha=0.6)
    x0, x1, y0, y1 = -64.0, -57.5, -66.0, -63.7
    inset.plot([x0, x1, x1, x0, x0], [y0, y0, y1, y1, y0], color="#d62728", linewidth=1.2, transform=pc)
    inset.text(0.5, 0.02, "Antarctica", transform=inset.transAxes, ha="center", va="bottom", fontsize=7)

    handles = [Line2D([], [], marker="o", linestyle="none", color=SPLIT_COLORS["train"], markersize=8,
                      label="CaFFe train glacier"),
               Line2D([], [], marker="^", linestyle="none", color=SPLIT_COLORS["test"], markersize=8,
                      label="CaFFe test glacier")]
    north.legend(handles=handles, loc="lower left", fontsize=8, framealpha=0.85)
    if geometries:
        note = f"Coastlines: Natural Earth {shp.stem.split('_')[1] if shp is not None else ''} (local copy)."
    else:
        note = ("Coastlines not drawn: the Natural Earth shapefiles are not installed locally and are never "
                "downloaded here." + (" Background: cartopy's bundled low-resolution shaded relief."
                                       if stock is not None else ""))
    fig.text(0.5, 0.005, note, ha="center", va="bottom", fontsize=8, style="italic")
    return fig


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
            (:func:`ssl4sar.data.summary.gradient_histogram_frame`, concatenated).
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


# =====================================================================================================================
# Human vs model (notebooks/06_human_vs_model.py) and front time series (notebooks/07_front_time_series.py):
# annotator-comparison distributions, annotator fronts on a scene, fronts on a georeferenced scene in map
# coordinates, fronts in longitude / latitude. Numbers come from ssl4sar.annotators, ssl4sar.predict and
# ssl4sar.timeseries; these functions only draw (and convert pixel corners to map / geographic coordinates for it).
# =====================================================================================================================

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
    if ax is None:
        h, w = np.asarray(sar).shape[:2]
        fig, ax = plt.subplots(figsize=(6.4, 6.4 * h / max(w, 1) + 0.3))
    else:
        fig = ax.figure
    show_sar(ax, sar)
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


def _pixel_corner_grid(shape: tuple[int, int], transform: Any, max_cells: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Map coordinates ``(X, Y)`` of pixel corners on a grid subsampled to at most ``max_cells`` cells a side."""
    from ssl4sar.geo import pixels_to_map

    h, w = shape
    step = display_step((h, w), max_cells)
    r = np.r_[np.arange(0, h, step), h].astype(np.float64) - 0.5  # pixels_to_map maps centres (+0.5)
    c = np.r_[np.arange(0, w, step), w].astype(np.float64) - 0.5
    cc, rr = np.meshgrid(c, r)
    x, y = pixels_to_map(rr, cc, transform)
    return x, y, step


def _grey_limits(img: np.ndarray) -> tuple[float, float]:
    """Display range: 0..255 for uint8, else the 2nd-98th percentile of the finite values."""
    if img.dtype == np.uint8:
        return 0.0, 255.0
    finite = img[np.isfinite(img)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(finite, [2.0, 98.0])
    return float(lo), float(hi if hi > lo else lo + 1.0)


def _block_mean(img: np.ndarray, step: int) -> np.ndarray:
    """``(H, W)`` image → mean over ``step × step`` blocks (edge blocks partial): a display-only downsampling."""
    import warnings

    img = np.asarray(img, dtype=np.float64)
    if step <= 1:
        return img
    h, w = img.shape
    hp, wp = -(-h // step) * step, -(-w // step) * step
    pad = np.full((hp, wp), np.nan)
    pad[:h, :w] = img
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # blocks of no-data (NaN) only stay NaN
        return np.nanmean(pad.reshape(hp // step, step, wp // step, step), axis=(1, 3))


def _draw_geometry(ax: Axes, geom: Any, **kwargs: Any) -> None:
    """Plot a shapely (Multi)LineString / (Multi)Polygon's lines on ``ax`` (the label on the first part only)."""
    if geom is None or geom.is_empty:
        return
    parts = list(getattr(geom, "geoms", [geom]))
    for k, part in enumerate(parts):
        ring = part.exterior if hasattr(part, "exterior") else part
        xy = np.asarray(ring.coords)
        ax.plot(xy[:, 0], xy[:, 1], **(kwargs if k == 0 else {**kwargs, "label": None}))


def plot_scene_fronts_map(sar: np.ndarray, transform: Any, fronts: Sequence[Any],
                          labels: Sequence[str] | None = None, references: Mapping[str, Any] | None = None,
                          crs_name: str | None = None, title: str | None = None, ax: Axes | None = None,
                          cmap: str = "viridis", max_cells: int = 800, colorbar_label: str = "date") -> Figure:
    """Fronts (shapely lines in the scene CRS) over a georeferenced SAR scene, in map coordinates (km).

    Args:
        sar: ``(H, W)`` image of the scene (uint8 drawn 0..255, other types between their 2nd and 98th percentile).
        transform: its affine pixel → map transform (rasterio ``Affine``; rotation allowed).
        fronts: geometries in time order, in the scene CRS (``None`` entries are skipped), coloured by order.
        labels: one label per front (e.g. ISO dates): the first and last label the colour bar.
        references: label → geometry in the scene CRS (reference box Polygon, centreline LineString …).
        crs_name: CRS shown in the axis labels (e.g. ``"EPSG:32622"``).
        title, ax: as usual.
        cmap: colour map of the fronts (first = dark).
        max_cells: the image is drawn on at most this many cells a side (display only).
        colorbar_label: label of the colour bar.
    """
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.6, 6.0))
    else:
        fig = ax.figure
    img = np.asarray(sar)
    x, y, step = _pixel_corner_grid(img.shape, transform, max_cells)
    vmin, vmax = _grey_limits(img)
    ax.pcolormesh(x / 1000.0, y / 1000.0, _block_mean(img, step), cmap="gray", vmin=vmin, vmax=vmax,
                  shading="flat", rasterized=True)
    colours = plt.get_cmap(cmap)(np.linspace(0.0, 1.0, max(len(fronts), 2)))
    for i, g in enumerate(fronts):
        if g is None or g.is_empty:
            continue
        for part in getattr(g, "geoms", [g]):
            xy = np.asarray(part.coords) / 1000.0
            ax.plot(xy[:, 0], xy[:, 1], color=colours[i], lw=1.3)
    ref_colours = ("#d62728", "#ff7f0e", "#e377c2", "#17becf")
    for j, (label, geom) in enumerate((references or {}).items()):
        if geom is None:
            continue
        from shapely import affinity

        _draw_geometry(ax, affinity.scale(geom, 1e-3, 1e-3, origin=(0, 0)), color=ref_colours[j % len(ref_colours)],
                       lw=1.6, ls="--" if j else "-", label=label)
    if len(fronts) > 1:
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import Normalize

        sm = ScalarMappable(norm=Normalize(0, len(fronts) - 1), cmap=cmap)
        cb = fig.colorbar(sm, ax=ax, shrink=0.75, pad=0.02)
        cb.set_label(colorbar_label)
        if labels is not None and len(labels) == len(fronts):
            cb.set_ticks([0, len(fronts) - 1])
            cb.set_ticklabels([str(labels[0]), str(labels[-1])])
    unit = f" ({crs_name}, km)" if crs_name else " (km)"
    ax.set_xlabel("x" + unit)
    ax.set_ylabel("y" + unit)
    ax.set_aspect("equal")
    ax.ticklabel_format(useOffset=False, style="plain")
    if references:
        ax.legend(fontsize="small", loc="lower right")
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def plot_geographic_fronts(panels: Sequence[Mapping[str, Any]], ncols: int = 4, panel_size: float = 3.4,
                           max_cells: int = 200) -> Figure:
    """Small maps in longitude / latitude (EPSG:4326): each scene's footprint and image with its front.

    Each panel is a mapping with ``sar`` (``(H, W)`` image), ``transform`` (affine, scene CRS), ``crs`` (the
    scene CRS, anything :func:`ssl4sar.geo.as_crs` reads), ``front`` (shapely line in **lon/lat**, e.g. read from
    ``<stem>_front_wgs84.geojson``; ``None`` when no front) and ``title``. The image is drawn on its pixel
    corners reprojected to lon/lat (block means, at most ``max_cells`` cells a side), so the grid's rotation to the
    meridians is visible; the axes are plate carrée with the aspect 1 / cos(latitude).
    """
    from matplotlib.ticker import MaxNLocator
    from pyproj import Transformer

    from ssl4sar.geo import WGS84, as_crs

    n = max(1, len(panels))
    ncols = max(1, min(ncols, n))
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel_size * ncols, panel_size * nrows + 0.3), squeeze=False)
    for ax in axes.ravel()[len(panels):]:
        ax.set_visible(False)
    for ax, p in zip(axes.ravel(), panels):
        img = np.asarray(p["sar"])
        x, y, step = _pixel_corner_grid(img.shape, p["transform"], max_cells)
        tr = Transformer.from_crs(as_crs(p["crs"]), WGS84, always_xy=True)
        lon, lat = tr.transform(x, y)
        vmin, vmax = _grey_limits(img)
        ax.pcolormesh(lon, lat, _block_mean(img, step), cmap="gray", vmin=vmin, vmax=vmax, shading="flat",
                      rasterized=True)
        outline = np.concatenate([np.column_stack([lon[0], lat[0]]), np.column_stack([lon[:, -1], lat[:, -1]]),
                                  np.column_stack([lon[-1, ::-1], lat[-1, ::-1]]),
                                  np.column_stack([lon[::-1, 0], lat[::-1, 0]])])
        ax.plot(outline[:, 0], outline[:, 1], color="0.3", lw=0.8)
        front = p.get("front")
        if front is not None and not front.is_empty:
            _draw_geometry(ax, front, color=PRED_FRONT_COLOR, lw=1.6, label="front (EPSG:4326)")
            ax.legend(fontsize="x-small", loc="lower right")
        else:
            ax.text(0.5, 0.04, "no front predicted", transform=ax.transAxes, ha="center", fontsize=8,
                    color="w", bbox={"facecolor": "0.2", "alpha": 0.6, "lw": 0})
        mid_lat = float(np.mean(lat))
        ax.set_aspect(1.0 / max(np.cos(np.deg2rad(mid_lat)), 1e-3))
        ax.set_xlabel("longitude (°)", fontsize=8)
        ax.set_ylabel("latitude (°)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.ticklabel_format(useOffset=False, style="plain")
        ax.xaxis.set_major_locator(MaxNLocator(4))
        ax.yaxis.set_major_locator(MaxNLocator(5))
        ax.grid(True, lw=0.4, color="0.7")
        ax.set_title(str(p.get("title", "")), fontsize=8)
    fig.tight_layout()
    return fig


# =====================================================================================================================
# Pretraining, fine-tuning and evaluation chapters (notebooks/02_optsimmim.py, 03_opttranslator.py, 04_finetuning.py,
# 05_evaluation.py): per-epoch curves from Lightning's metrics.csv, learning curves of several runs, predicted vs true
# fronts of several evaluations, uncertainty maps, the five-run MDEs of the paper. Numbers come from ssl4sar.training,
# ssl4sar.pretrain, ssl4sar.finetune, ssl4sar.evaluate and ssl4sar.stats; these functions only arrange and draw.
# =====================================================================================================================


def epoch_table(metrics: Any) -> Any:
    """One row per epoch from a Lightning ``metrics.csv`` (path or DataFrame) as the CSV logger writes it.

    Lightning writes one row per logging call: step-wise values (``…_step``), epoch means (``…_epoch``, or plain
    names for metrics logged per epoch only) and learning rates (``lr-…``, logged at the first step of an epoch
    with an empty ``epoch``). Returns a DataFrame indexed by ``epoch`` (0-based) with ``step`` (the last optimiser
    step of the epoch), every per-epoch metric under its logged name with the ``_epoch`` suffix removed
    (``train/loss``, ``val/loss``, ``val/mde`` …) and the learning rates; step-wise columns are dropped. The
    values are those of the last row of the epoch that has them (a resumed run logs the final ones last).
    """
    import pandas as pd

    df = pd.read_csv(metrics) if not isinstance(metrics, pd.DataFrame) else metrics.copy()
    if "epoch" not in df.columns or "step" not in df.columns:
        raise ValueError("a Lightning metrics table needs the columns 'epoch' and 'step'")
    df = df.sort_values("step", kind="stable")
    df["epoch"] = df["epoch"].bfill()   # learning-rate rows carry no epoch: they belong to the next epoch logged
    df = df.dropna(subset=["epoch"])
    df = df.drop(columns=[c for c in df.columns if c.endswith("_step")])
    df = df.rename(columns={c: c[: -len("_epoch")] for c in df.columns if c.endswith("_epoch")})
    df["epoch"] = df["epoch"].astype(int)
    table = df.groupby("epoch", sort=True).last()
    table["step"] = df.groupby("epoch")["step"].max().astype(int)
    return table


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
