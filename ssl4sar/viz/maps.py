"""Maps: the glacier overview, fronts in map and geographic coordinates, front positions over time."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ssl4sar.domain import display_step
from ssl4sar.viz.layers import PRED_FRONT_COLOR, SPLIT_COLORS

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


def glacier_map_caption() -> str:
    """Markdown caption of :func:`glacier_map`: which local Natural Earth coastlines it drew (the shapefile's name,
    not the machine's path), or why it drew none (no local copy; the book never downloads)."""
    coast = natural_earth_path("coastline", "auto")
    if coast is not None:
        return f"*The CaFFe glaciers. Coastlines from the local Natural Earth copy `{coast.name}`.*"
    return ("*The CaFFe glaciers. Coastlines are not drawn: the Natural Earth shapefiles are not installed on the "
            "machine that built this page, and the book never downloads anything. The background of the northern map "
            "and of the inset is cartopy's bundled low-resolution shaded relief.*")


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


def plot_positions_by_method(series: Mapping[str, Any], truths: Mapping[str, Any | None], label: str) -> Figure:
    """One :func:`plot_front_positions` panel per method (``series``: method → series, ``truths``: method → truth on
    that series' reference date or ``None``), titled ``"<method> method: <label> vs truth"``, shared y axis."""
    fig, axes = plt.subplots(1, len(series), figsize=(6.5 * len(series), 3.8), sharey=True, squeeze=False)
    for ax, (method, s) in zip(axes[0], series.items()):
        plot_front_positions(s, truth=truths.get(method), ax=ax, title=f"{method} method: {label} vs truth")
    fig.tight_layout()
    return fig


def plot_predicted_and_true_fronts(sar: np.ndarray, transform: Any, crs_name: str, predicted: Sequence[Any],
                                   dates: Sequence[str], references: Mapping[str, Any],
                                   true: tuple[Sequence[Any], Sequence[str]] | None = None) -> Figure:
    """Predicted fronts of all dates over one scene (:func:`plot_scene_fronts_map`, map coordinates) and, when
    ``true`` = ``(fronts, dates)`` is given and not empty, the true fronts beside them; ``references`` (the reference
    box, the centreline) drawn on both."""
    both = bool(true and len(true[0]))
    fig, axes = plt.subplots(1, 2 if both else 1, figsize=(13.0 if both else 6.6, 5.6), squeeze=False)
    plot_scene_fronts_map(sar, transform, predicted, dates, references, crs_name=crs_name,
                          title=f"predicted fronts, {dates[0]} … {dates[-1]}" if dates else "predicted fronts",
                          ax=axes[0, 0])
    if both and true is not None:
        plot_scene_fronts_map(sar, transform, true[0], true[1], references, crs_name=crs_name,
                              title="true fronts (synthetic front masks)", ax=axes[0, 1])
    fig.tight_layout()
    return fig
