"""Synthetic-vs-real SAR statistics: is the synthetic data close enough to real CaFFe imagery?

All functions take an 8-bit SAR image ``image`` (H, W) uint8 (0 = no data, as in CaFFe) and a class map
``mask`` (H, W) with the CaFFe class ids (0 NA, 1 rock, 2 glacier, 3 ocean and ice mélange). Pixels with
value 0 are treated as no data and ignored everywhere.

* :func:`class_histograms` — per-class intensity histograms (densities over the 256 grey levels);
* :func:`equivalent_number_of_looks` — ENL = mean² / variance of the grey values in small windows that
  lie inside one class, hold no no-data or saturated (255) pixel, and have a low local gradient (the
  most homogeneous windows); the median over those windows. Computed on the 8-bit amplitude values as
  they are, so it is comparable between datasets scaled the same way (a single-look Rayleigh amplitude
  gives ≈ 3.7, texture lowers it, multi-looking raises it);
* :func:`gradient_magnitude` / :func:`class_gradients` — Sobel gradient magnitudes (grey levels per
  pixel) inside each class, away from class and no-data borders;
* :func:`summary_table` — per-source, per-class mean / std / ENL / median gradient / saturation (pandas);
* :func:`compare` — per class the 1-D Wasserstein distance between synthetic and real intensity
  distributions (grey levels) and between their gradient distributions, plus the differences of the
  summary statistics;
* :func:`load_real_patches` reads real CaFFe patches (``*_img.tif`` + ``*_mask.tif``), by default the seven
  shipped with the package (:mod:`ssl4sar.data.samples`); :func:`synthetic_patches` draws synthetic scenes
  imitating them (TerraSAR-X-like, 6 m, single look);
* :func:`book_synthetic_patches`, :func:`patch_table`, :func:`most_varied`, :func:`comparison_frames` — what the
  data chapter shows of them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from scipy.stats import wasserstein_distance

from ssl4sar.domain import CLASS_NAMES
from ssl4sar.errors import DataError

log = logging.getLogger(__name__)

CLASSES = (1, 2, 3)


@dataclass
class Patch:
    """One SAR image with its class map. ``image`` (H, W) uint8, ``mask`` (H, W) uint8 class ids 0–3."""

    image: np.ndarray
    mask: np.ndarray
    name: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


def _check(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    image = np.asarray(image)
    mask = np.asarray(mask)
    if image.ndim != 2 or image.shape != mask.shape:
        raise ValueError(f"image {image.shape} and mask {mask.shape} must be 2-D arrays of the same shape")
    return image, mask


def class_values(image: np.ndarray, mask: np.ndarray, cls: int) -> np.ndarray:
    """Grey values (1-D uint8) of the valid (non-zero) pixels of class ``cls``."""
    image, mask = _check(image, mask)
    return image[(mask == cls) & (image > 0)]


def class_histograms(image: np.ndarray, mask: np.ndarray, classes: Iterable[int] = CLASSES,
                     bins: int = 64) -> dict[int, np.ndarray]:
    """Per-class intensity histograms: ``{class: density}`` over ``bins`` equal bins of the range [0, 256).

    Densities sum to 1 (all zeros for a class without valid pixels).
    """
    out = {}
    for c in classes:
        v = class_values(image, mask, c)
        h, _ = np.histogram(v, bins=bins, range=(0, 256))
        out[int(c)] = h / h.sum() if h.sum() else h.astype(float)
    return out


def histogram_frame(patches: Sequence[Patch], source: str, bins: int = 64) -> pd.DataFrame:
    """Long-form pooled histograms for plotting: columns source, class, class_name, bin_left, bin_right, density."""
    rows = []
    edges = np.linspace(0, 256, bins + 1)
    for c in CLASSES:
        vals = [class_values(p.image, p.mask, c) for p in patches]
        values = np.concatenate(vals) if vals else np.empty(0, np.uint8)
        h, _ = np.histogram(values, bins=edges)
        dens = h / h.sum() if h.sum() else h.astype(float)
        for i in range(bins):
            rows.append({"source": source, "class": c, "class_name": CLASS_NAMES[c], "bin_left": edges[i],
                         "bin_right": edges[i + 1], "density": float(dens[i])})
    return pd.DataFrame(rows)


def gradient_magnitude(image: np.ndarray) -> np.ndarray:
    """Sobel gradient magnitude (H, W) float32, in grey levels per pixel (Sobel kernels divided by 8)."""
    x = np.asarray(image, dtype=np.float32)
    return (np.hypot(ndi.sobel(x, 0), ndi.sobel(x, 1)) / 8.0).astype(np.float32)


def _interior(mask: np.ndarray, image: np.ndarray, cls: int, margin: int) -> np.ndarray:
    """Pixels of ``cls`` at least ``margin`` px away from other classes and from no-data pixels."""
    inside = (mask == cls) & (image > 0)
    if margin <= 0:
        return inside
    return ndi.binary_erosion(inside, structure=np.ones((2 * margin + 1,) * 2, bool), border_value=1)


def class_gradients(image: np.ndarray, mask: np.ndarray, cls: int, margin: int = 2) -> np.ndarray:
    """Sobel gradient magnitudes (1-D float32) inside class ``cls``, ``margin`` px from its borders."""
    image, mask = _check(image, mask)
    return gradient_magnitude(image)[_interior(mask, image, cls, margin)]


@dataclass
class _WindowFields:
    """Class-independent window statistics of one image (all (H, W) float64, at window centres)."""

    mean: np.ndarray
    var: np.ndarray
    grad: np.ndarray
    centres: np.ndarray   # bool: centres of the non-overlapping window grid
    window: int


def _window_fields(image: np.ndarray, window: int, smooth_sigma: float = 2.0) -> _WindowFields:
    if window < 3 or window % 2 == 0:
        raise ValueError(f"window must be odd and >= 3, got {window}")
    x = image.astype(np.float64)
    n = window * window
    mean = ndi.uniform_filter(x, window, mode="constant")
    var = (ndi.uniform_filter(x * x, window, mode="constant") - mean * mean) * n / (n - 1)
    grad = ndi.uniform_filter(gradient_magnitude(ndi.gaussian_filter(x, smooth_sigma)).astype(np.float64),
                              window, mode="constant")
    half = window // 2
    centres = np.zeros(image.shape, dtype=bool)
    centres[half:image.shape[0] - half:window, half:image.shape[1] - half:window] = True
    return _WindowFields(mean, var, grad, centres, window)


def _enl_from_fields(f: _WindowFields, image: np.ndarray, mask: np.ndarray, cls: int,
                     homogeneous_quantile: float) -> np.ndarray:
    ok = (mask == cls) & (image > 0) & (image < 255)
    n = f.window * f.window
    full = ndi.uniform_filter(ok.astype(np.float64), f.window, mode="constant") > 1 - 0.5 / n
    sel = f.centres & full & (f.var > 0)
    if sel.sum() < 3:
        return np.empty(0)
    sel &= f.grad <= np.quantile(f.grad[sel], homogeneous_quantile)
    return (f.mean[sel] ** 2 / f.var[sel]).astype(np.float64)


def enl_windows(image: np.ndarray, mask: np.ndarray, cls: int, window: int = 7,
                homogeneous_quantile: float = 0.25, smooth_sigma: float = 2.0) -> np.ndarray:
    """ENL (mean² / variance) of the most homogeneous windows of class ``cls``; 1-D float64.

    Windows of ``window`` × ``window`` px on a non-overlapping grid; a window counts when all its pixels
    are of class ``cls``, none is 0 (no data) or 255 (saturated: clipping biases the variance), and
    its mean gradient magnitude of the Gaussian-smoothed (``smooth_sigma`` px) image is at most the
    ``homogeneous_quantile`` quantile of that class's windows (low local gradient = homogeneous area;
    1.0 keeps every window). The variance uses ddof = 1.
    """
    image, mask = _check(image, mask)
    return _enl_from_fields(_window_fields(image, window, smooth_sigma), image, mask, cls, homogeneous_quantile)


def equivalent_number_of_looks(image: np.ndarray, mask: np.ndarray, cls: int, window: int = 7,
                               homogeneous_quantile: float = 0.25, min_windows: int = 5) -> float:
    """Median ENL over the homogeneous windows of class ``cls`` (see :func:`enl_windows`); NaN when
    fewer than ``min_windows`` windows qualify."""
    e = enl_windows(image, mask, cls, window, homogeneous_quantile)
    return float(np.median(e)) if e.size >= min_windows else float("nan")


@dataclass
class _ClassSample:
    values: np.ndarray      # grey levels of valid pixels (uint8)
    gradients: np.ndarray   # Sobel magnitudes inside the class (float32)
    enl: np.ndarray         # ENL of the homogeneous windows (float64)


def _patch_samples(patch: Patch, window: int) -> dict[int, _ClassSample]:
    """Per-class values, interior gradients and window ENLs of one patch (gradient computed once)."""
    image, mask = _check(patch.image, patch.mask)
    grad = gradient_magnitude(image)
    fields = _window_fields(image, window)
    return {c: _ClassSample(values=image[(mask == c) & (image > 0)],
                            gradients=grad[_interior(mask, image, c, 2)],
                            enl=_enl_from_fields(fields, image, mask, c, 0.25))
            for c in CLASSES}


def _samples(patches: Sequence[Patch], window: int) -> list[dict[int, _ClassSample]]:
    return [_patch_samples(p, window) for p in patches]


def _summary(samples: list[dict[int, _ClassSample]], source: str, min_pixels: int) -> pd.DataFrame:
    rows = []
    for c in CLASSES:
        use = [s[c] for s in samples if s[c].values.size >= min_pixels]
        v = np.concatenate([u.values for u in use]).astype(np.float64) if use else np.empty(0)
        g = np.concatenate([u.gradients for u in use]) if use else np.empty(0)
        e = np.concatenate([u.enl for u in use]) if use else np.empty(0)
        rows.append({
            "source": source, "class": c, "class_name": CLASS_NAMES[c], "n_images": len(use),
            "n_pixels": int(v.size),
            "mean": float(v.mean()) if v.size else np.nan, "std": float(v.std()) if v.size else np.nan,
            "p05": float(np.percentile(v, 5)) if v.size else np.nan,
            "median": float(np.median(v)) if v.size else np.nan,
            "p95": float(np.percentile(v, 95)) if v.size else np.nan,
            "saturated": float((v == 255).mean()) if v.size else np.nan,
            "enl": float(np.median(e)) if e.size >= 5 else np.nan, "n_windows": int(e.size),
            "median_gradient": float(np.median(g)) if g.size else np.nan,
        })
    return pd.DataFrame(rows)


def summary_table(patches: Sequence[Patch], source: str, window: int = 7, min_pixels: int = 500) -> pd.DataFrame:
    """Per-class statistics pooled over ``patches`` (images with ≥ ``min_pixels`` valid pixels of a class).

    Columns: source, class, class_name, n_images, n_pixels, mean, std, p05, median, p95 (grey levels),
    saturated (fraction of 255), enl (median over the homogeneous windows of all those images, NaN with
    fewer than 5 windows), n_windows, median_gradient (Sobel, grey levels/px, class interiors).
    """
    return _summary(_samples(patches, window), source, min_pixels)


def histogram_distance(a: np.ndarray, b: np.ndarray) -> float:
    """1-D Wasserstein (earth mover's) distance between two samples of values (their units); NaN if empty."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.size == 0 or b.size == 0:
        return float("nan")
    return float(wasserstein_distance(a, b))


def compare(synthetic: Sequence[Patch], real: Sequence[Patch], window: int = 7, min_pixels: int = 500,
            max_samples: int = 200_000, seed: int = 0) -> pd.DataFrame:
    """Per-class comparison of synthetic and real patches.

    Columns: class, class_name, wasserstein_intensity (grey levels), wasserstein_gradient (grey
    levels/px), then for mean, std, enl and median_gradient the synthetic value, the real value and
    their ratio synthetic/real. Pooled samples larger than ``max_samples`` are subsampled (seeded).
    """
    rng = np.random.default_rng(seed)

    def sub(x: np.ndarray) -> np.ndarray:
        return rng.choice(x, max_samples, replace=False) if x.size > max_samples else x

    def pool(samples: list[dict[int, _ClassSample]], c: int, attr: str) -> np.ndarray:
        use = [getattr(s[c], attr) for s in samples if s[c].values.size >= min_pixels]
        return np.concatenate(use) if use else np.empty(0)

    s_smp, r_smp = _samples(synthetic, window), _samples(real, window)
    s_tab = _summary(s_smp, "synthetic", min_pixels).set_index("class")
    r_tab = _summary(r_smp, "real", min_pixels).set_index("class")
    rows = []
    for c in CLASSES:
        row: dict[str, Any] = {
            "class": c, "class_name": CLASS_NAMES[c],
            "wasserstein_intensity": histogram_distance(sub(pool(s_smp, c, "values")), sub(pool(r_smp, c, "values"))),
            "wasserstein_gradient": histogram_distance(sub(pool(s_smp, c, "gradients")),
                                                       sub(pool(r_smp, c, "gradients")))}
        for stat in ("mean", "std", "enl", "median_gradient"):
            sv, rv = float(s_tab.loc[c, stat]), float(r_tab.loc[c, stat])
            row[f"{stat}_synthetic"], row[f"{stat}_real"] = sv, rv
            row[f"{stat}_ratio"] = sv / rv if np.isfinite(sv) and np.isfinite(rv) and rv != 0 else np.nan
        rows.append(row)
    return pd.DataFrame(rows)



def comparison_table(comparison: pd.DataFrame, decimals: int = 3) -> pd.DataFrame:
    """:func:`compare`'s table for a page: one row per statistic, one column per class (named), rounded; 16
    statistic columns side by side would run off the page."""
    table = comparison.set_index("class_name").drop(columns=["class"])
    table.index.name = None
    return table.T.astype(float).round(decimals)

def load_real_patches(folder: str | Path | None = None) -> list[Patch]:
    """Read real CaFFe patches: every ``*_img.tif`` with its ``*_mask.tif`` (class ids 0–3), via rasterio.

    ``folder`` defaults to the seven patches shipped with the package (:func:`ssl4sar.data.samples.patches_dir`).
    ``meta`` holds the row of ``metadata.csv`` when present plus the CRS and pixel size (m).
    """
    from ssl4sar.data.samples import patches_dir, read_patch_pair

    if folder is None:
        folder = patches_dir()
    folder = Path(folder)
    imgs = sorted(folder.glob("*_img.tif"))
    if not imgs:
        raise DataError(folder, "no *_img.tif patches found",
                        "a folder of CaFFe patches like ssl4sar/data/samples/caffe_patches")
    meta_rows: dict[str, dict[str, Any]] = {}
    if (folder / "metadata.csv").is_file():
        meta_rows = {str(r["id"]): r for r in pd.read_csv(folder / "metadata.csv").to_dict("records")}
    out = []
    for img_path in imgs:
        pid = img_path.name[: -len("_img.tif")]
        mask_path = folder / f"{pid}_mask.tif"
        if not mask_path.is_file():
            raise DataError(mask_path, "mask missing for patch " + img_path.name, "each *_img.tif needs a *_mask.tif")
        image, mask, crs, res = read_patch_pair(img_path, mask_path)
        meta = dict(meta_rows.get(pid, {}))
        meta.update(crs=str(crs), pixel_size_m=float(res))
        out.append(Patch(image=image, mask=mask, name=pid, meta=meta))
    return out


def synthetic_patches(n: int = 8, seed: int = 0, shape: tuple[int, int] = (512, 512), sensor: str = "TSX",
                      resolution_m: float = 6.0, looks: float | None = None, **scene_kwargs: Any) -> list[Patch]:
    """Draw ``n`` synthetic scenes (default TerraSAR-X-like: 6 m, single look) as :class:`Patch` es.

    Seasons alternate winter/summer; ``scene_kwargs`` go to :func:`ssl4sar.data.synthetic.make_scene`.
    """
    from ssl4sar.data.synthetic import make_scene

    out = []
    for i in range(n):
        rng = np.random.default_rng([int(seed), 77, i])
        sc = make_scene(rng, shape, resolution_m, "winter" if i % 2 == 0 else "summer", sensor, looks,
                        **scene_kwargs)
        out.append(Patch(image=sc.sar, mask=sc.zones, name=f"synthetic_{i}",
                         meta={"season": sc.season, "sensor": sensor, "pixel_size_m": resolution_m,
                               **sc.params}))
    return out


def book_synthetic_patches(preset_name: str, n: int | None = None, seed: int = 0) -> list[Patch]:
    """The synthetic patches the data chapter compares with the real ones: ``n`` (default 2 for the ``smoke`` preset,
    7 otherwise, as many as the shipped real patches) of 256 × 256 px (smoke) or 512 × 512 px
    (:func:`synthetic_patches`)."""
    smoke = preset_name == "smoke"
    side = 256 if smoke else 512
    return synthetic_patches(n if n is not None else (2 if smoke else 7), seed=seed, shape=(side, side))


#: metadata of a real patch shown in the data chapter
PATCH_COLUMNS = ("glacier", "sensor", "date", "crs", "pixel_size_m")


def patch_table(patches: Sequence[Patch], columns: Sequence[str] = PATCH_COLUMNS) -> pd.DataFrame:
    """One row per patch: its name and the ``columns`` of its metadata (missing ones empty)."""
    return pd.DataFrame([{"patch": p.name, **{k: p.meta.get(k) for k in columns}} for p in patches],
                        columns=["patch", *columns])


def most_varied(patches: Sequence[Patch], n: int = 3) -> list[Patch]:
    """The ``n`` patches with the most classes (1–3) present, most first; ties keep the given order (some real
    patches are almost all glacier or no data and show little)."""
    return sorted(patches, key=lambda p: -len(np.unique(p.mask[p.mask > 0])))[:n]


def comparison_frames(synthetic: Sequence[Patch], real: Sequence[Patch]
                      ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Intensity histograms, gradient histograms and summary statistics of both sets, ``source`` telling them apart
    (``synthetic`` first): the inputs of :func:`ssl4sar.viz.plot_realism`."""

    intensity = pd.concat([histogram_frame(synthetic, "synthetic"), histogram_frame(real, "real")])
    gradients = pd.concat([gradient_histogram_frame(synthetic, "synthetic"), gradient_histogram_frame(real, "real")])
    stats = pd.concat([summary_table(synthetic, "synthetic"), summary_table(real, "real")])
    return intensity, gradients, stats


def gradient_histogram_frame(patches: Sequence[Patch], source: str, bins: int = 64,
                             max_gradient: float = 96.0, margin: int = 2) -> pd.DataFrame:
    """Pooled per-class histograms of Sobel gradient magnitudes (grey levels / px) inside each class.

    Uses :func:`class_gradients` (pixels ``margin`` px away from other classes and no data).
    ``bins`` equal bins over ``[0, max_gradient]``; larger values go to the last bin. Long form like
    :func:`histogram_frame`: columns source, class, class_name, bin_left, bin_right, density
    (densities of a class sum to 1, or are all 0 when the class is absent).
    """
    if max_gradient <= 0 or bins < 1:
        raise ValueError(f"need bins >= 1 and max_gradient > 0, got {bins}, {max_gradient}")
    edges = np.linspace(0.0, float(max_gradient), bins + 1)
    rows = []
    for c in CLASSES:
        parts = [class_gradients(p.image, p.mask, c, margin) for p in patches]
        g = np.concatenate(parts) if parts else np.empty(0, np.float32)
        h, _ = np.histogram(np.minimum(g, max_gradient), bins=edges)
        dens = h / h.sum() if h.sum() else h.astype(float)
        rows += [{"source": source, "class": c, "class_name": CLASS_NAMES[c], "bin_left": float(edges[i]),
                  "bin_right": float(edges[i + 1]), "density": float(dens[i])} for i in range(bins)]
    return pd.DataFrame(rows)
