"""Human-vs-model comparison of calving fronts (multi-annotator study).

The paper evaluates its ensemble on a multi-annotator study: the ensemble's MDE is 75 m, the mean MDE among ten
human annotators 38 m (:data:`PAPER_ENSEMBLE_MDE_M`, :data:`PAPER_HUMAN_MDE_M`). This module computes the same
kind of comparison for any set of annotators:

* :func:`load_annotator_fronts` reads one folder per annotator, each in the CaFFe front layout
  ``<stem>_front.png`` (0 background, 255 front);
* :func:`compare_annotators` computes the pooled MDE (§8.1, metres) of every annotator pair ("human-human") and of
  the model against every annotator ("model-human"), and a percentile bootstrap confidence interval of the mean
  pair MDE of each kind by resampling images (seeded);
* :func:`simulate_annotators` makes synthetic annotators by displacing a ground-truth front with smooth random
  fields, for demos on synthetic data.
"""

from __future__ import annotations

import itertools
import logging
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from skimage.morphology import skeletonize

from ssl4sar.data.raster import open_image
from ssl4sar.errors import DataError
from ssl4sar.metrics import front_distances, stem_metadata

logger = logging.getLogger(__name__)

#: Ensemble MDE on the multi-annotator study, metres (Gourmelon et al., "SSL4SAR", IEEE TGRS 63, 2025;
#: abstract of arXiv:2507.01747).
PAPER_ENSEMBLE_MDE_M = 75.0
#: Mean MDE between the human annotators of the same study, metres (same source).
PAPER_HUMAN_MDE_M = 38.0
#: Number of human annotators in that study (same source).
PAPER_N_ANNOTATORS = 10
#: The two published numbers as reference lines of :func:`ssl4sar.viz.plot_annotator_comparison`.
PAPER_LINES = {"paper, human vs human": PAPER_HUMAN_MDE_M, "paper, ensemble vs human": PAPER_ENSEMBLE_MDE_M}

FRONT_SUFFIX = "_front.png"


def read_front_png(path: str | Path) -> np.ndarray:
    """Read a CaFFe front PNG (0 background, 255 front; 0/1 is accepted too) as ``(H, W)`` uint8 0/1."""
    path = Path(path)
    try:
        with open_image(path, "front image") as im:
            arr = np.asarray(im.convert("L") if im.mode not in ("L", "1", "P", "I", "I;16") else im)
    except (OSError, ValueError) as exc:
        raise DataError(path, f"cannot read the front image: {exc}") from exc
    if arr.ndim != 2:
        raise DataError(path, f"front image must be single-band, got shape {arr.shape}")
    values = np.unique(arr)
    if not (set(values.tolist()) <= {0, 255} or set(values.tolist()) <= {0, 1}):
        raise DataError(path, f"front image must hold only 0 and 255, found values {values[:8].tolist()}",
                        "a front mask is a thin line: 0 background, 255 front")
    return (arr > 0).astype(np.uint8)


def load_annotator_fronts(root: str | Path, annotators: Sequence[str] | None = None,
                          suffix: str = FRONT_SUFFIX) -> dict[str, dict[str, np.ndarray]]:
    """Fronts of several annotators: ``root/<annotator>/<stem>_front.png``.

    Args:
        root: folder with one sub-folder per annotator.
        annotators: sub-folder names to read (default: all sub-folders, sorted).
        suffix: file-name suffix after the stem.

    Returns:
        annotator → stem → ``(H, W)`` uint8 0/1 front.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "annotator folder does not exist", "expected one sub-folder per annotator")
    names = list(annotators) if annotators is not None else sorted(p.name for p in root.iterdir() if p.is_dir())
    if len(names) < 2:
        raise DataError(root, f"need at least two annotator folders, found {len(names)}")
    out: dict[str, dict[str, np.ndarray]] = {}
    for name in names:
        folder = root / name
        if not folder.is_dir():
            raise DataError(folder, "annotator folder does not exist")
        files = sorted(folder.glob(f"*{suffix}"))
        if not files:
            raise DataError(folder, f"no '*{suffix}' files", "CaFFe front layout: <stem>_front.png")
        out[name] = {f.name[: -len(suffix)]: read_front_png(f) for f in files}
    return out


@dataclass(frozen=True)
class AnnotatorComparison:
    """Result of :func:`compare_annotators` (all distances in metres).

    Attributes:
        pairs: one row per compared pair: ``kind`` ("human-human" / "model-human"), ``a``, ``b``, ``mde_m``
            (pooled over the images), ``images``, ``missing_fronts``.
        summary: one row per kind: ``pairs``, ``mean_mde_m`` (mean over pairs), ``median_mde_m``, ``ci_low_m``,
            ``ci_high_m`` (percentile bootstrap over images), ``confidence``, ``n_bootstrap``.
        per_image: one row per (pair, image): ``n_distances``, ``sum_m``, ``mean_m``, ``missing``.
        bootstrap: kind → ``(n_bootstrap,)`` replicates of the mean pair MDE.
    """

    pairs: pd.DataFrame
    summary: pd.DataFrame
    per_image: pd.DataFrame
    bootstrap: dict[str, np.ndarray]


def _resolution(stem: str, resolution_m: float | Mapping[str, float] | None) -> float:
    if resolution_m is None:
        return float(stem_metadata(stem)["resolution_m"])
    if isinstance(resolution_m, Mapping):
        if stem not in resolution_m:
            raise DataError(stem, "no resolution given for this image")
        return float(resolution_m[stem])
    return float(resolution_m)


def compare_annotators(annotations: Mapping[str, Mapping[str, np.ndarray]],
                       model_fronts: Mapping[str, np.ndarray] | None = None,
                       resolution_m: float | Mapping[str, float] | None = None, n_bootstrap: int = 2000,
                       confidence: float = 0.95, seed: int = 0, model_name: str = "model") -> AnnotatorComparison:
    """Annotator-vs-annotator and model-vs-annotator MDE with bootstrap confidence intervals.

    Only images that every annotator (and the model, if given) delineated are used. The MDE of a pair is the pooled
    symmetric MDE of §8.1 over those images (images where either front is empty are missing and excluded). The
    bootstrap resamples images with replacement (``n_bootstrap`` times, ``numpy.random.default_rng(seed)``),
    recomputes every pair's pooled MDE and averages over the pairs of each kind; the interval is the central
    ``confidence`` percentile range of these replicates.

    Args:
        annotations: annotator → stem → ``(H, W)`` front (non-zero = front).
        model_fronts: stem → predicted (post-processed) front, optional.
        resolution_m: metres per pixel: one number, per-stem mapping, or ``None`` to parse CaFFe stems.
        n_bootstrap: bootstrap replicates (0 disables the intervals).
        confidence: interval coverage in (0, 1).
        seed: bootstrap seed.
        model_name: label of the model in ``pairs``.
    """
    if len(annotations) < 2:
        raise ValueError(f"need at least two annotators, got {len(annotations)}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    stems = set.intersection(*(set(v) for v in annotations.values()))
    if model_fronts is not None:
        stems &= set(model_fronts)
    stems_sorted = sorted(stems)
    if not stems_sorted:
        raise ValueError("no image was delineated by every annotator" + (" and the model" if model_fronts else ""))
    dropped = set.union(*(set(v) for v in annotations.values())) - stems
    if dropped:
        logger.warning("%d images are not delineated by every annotator and are skipped", len(dropped))

    names = list(annotations)
    pair_list: list[tuple[str, str, str, Mapping[str, np.ndarray], Mapping[str, np.ndarray]]] = [
        ("human-human", a, b, annotations[a], annotations[b]) for a, b in itertools.combinations(names, 2)]
    if model_fronts is not None:
        pair_list += [("model-human", model_name, a, model_fronts, annotations[a]) for a in names]

    n_img = len(stems_sorted)
    sums = np.zeros((len(pair_list), n_img))
    counts = np.zeros((len(pair_list), n_img))
    rows = []
    for pi, (kind, a, b, fa, fb) in enumerate(pair_list):
        for ii, stem in enumerate(stems_sorted):
            d = front_distances(fa[stem], fb[stem], _resolution(stem, resolution_m))
            if d is not None:
                sums[pi, ii] = d.sum()
                counts[pi, ii] = d.size
            rows.append({"kind": kind, "a": a, "b": b, "stem": stem, "n_distances": 0 if d is None else d.size,
                         "sum_m": float(sums[pi, ii]), "mean_m": float("nan") if d is None else float(d.mean()),
                         "missing": d is None})
    per_image = pd.DataFrame(rows)
    with np.errstate(invalid="ignore", divide="ignore"):
        pair_mde = sums.sum(axis=1) / counts.sum(axis=1)
    pairs = pd.DataFrame({"kind": [p[0] for p in pair_list], "a": [p[1] for p in pair_list],
                          "b": [p[2] for p in pair_list], "mde_m": pair_mde, "images": n_img,
                          "missing_fronts": (counts == 0).sum(axis=1)})

    rng = np.random.default_rng(seed)
    boot: dict[str, np.ndarray] = {}
    kinds = list(dict.fromkeys(p[0] for p in pair_list))
    if n_bootstrap > 0:
        weights = rng.multinomial(n_img, np.full(n_img, 1.0 / n_img), size=n_bootstrap).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            rep = (weights @ sums.T) / (weights @ counts.T)  # (n_bootstrap, pairs)
        for kind in kinds:
            sel = pairs["kind"].to_numpy() == kind
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a replicate where every image is missing
                boot[kind] = np.nanmean(rep[:, sel], axis=1)
    lo_q, hi_q = (1 - confidence) / 2, 1 - (1 - confidence) / 2
    summary_rows = []
    for kind in kinds:
        v = pairs.loc[pairs["kind"] == kind, "mde_m"].to_numpy(float)
        b = boot.get(kind)
        finite = b[np.isfinite(b)] if b is not None else np.array([])
        summary_rows.append({
            "kind": kind, "pairs": int(v.size),
            "mean_mde_m": float(np.nanmean(v)) if np.any(np.isfinite(v)) else np.nan,
            "median_mde_m": float(np.nanmedian(v)) if np.any(np.isfinite(v)) else np.nan,
            "ci_low_m": float(np.quantile(finite, lo_q)) if finite.size else np.nan,
            "ci_high_m": float(np.quantile(finite, hi_q)) if finite.size else np.nan,
            "confidence": confidence, "n_bootstrap": int(n_bootstrap)})
    return AnnotatorComparison(pairs=pairs, summary=pd.DataFrame(summary_rows), per_image=per_image, bootstrap=boot)


# --------------------------------------------------------------------------------------------------------------
# synthetic annotators

def _smooth_field(points: np.ndarray, sigma_px: float, length_px: float, rng: np.random.Generator,
                  n_features: int = 256) -> np.ndarray:
    """A smooth stationary random 2-D displacement field evaluated at ``points`` ``(N, 2)`` (row, col), pixels.

    Random Fourier features of a squared-exponential covariance with correlation length ``length_px``; each
    component has standard deviation ``sigma_px``. Returns ``(N, 2)`` displacements in pixels.
    """
    out = np.empty((points.shape[0], 2))
    for comp in range(2):
        freqs = rng.normal(0.0, 1.0 / length_px, size=(n_features, 2))
        phase = rng.uniform(0.0, 2 * np.pi, size=n_features)
        out[:, comp] = np.sqrt(2.0 / n_features) * sigma_px * np.cos(points @ freqs.T + phase).sum(axis=1)
    return out


def _rasterise(p0: np.ndarray, p1: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Draw straight segments p0 → p1 (``(E, 2)`` float pixel coordinates) into a ``(H, W)`` uint8 0/1 mask."""
    out = np.zeros(shape, dtype=np.uint8)
    if len(p0) == 0:
        return out
    steps = int(np.ceil(np.abs(p1 - p0).max())) + 2
    t = np.linspace(0.0, 1.0, steps)[None, :, None]
    pts = np.rint(p0[:, None, :] + t * (p1 - p0)[:, None, :]).reshape(-1, 2).astype(np.int64)
    ok = (pts[:, 0] >= 0) & (pts[:, 0] < shape[0]) & (pts[:, 1] >= 0) & (pts[:, 1] < shape[1])
    out[pts[ok, 0], pts[ok, 1]] = 1
    return skeletonize(out.astype(bool)).astype(np.uint8)


def simulate_annotators(gt_front: np.ndarray, n: int, displacement_m: float, resolution_m: float, seed: int = 0,
                        correlation_length_m: float = 1000.0) -> list[np.ndarray]:
    """Synthetic annotators: the ground-truth front moved by smooth random displacement fields.

    Each annotator gets an independent smooth field (random Fourier features, squared-exponential correlation over
    ``correlation_length_m``) whose displacement vectors have a root-mean-square length of ``displacement_m``. The
    front pixels and the segments between 8-neighbouring front pixels are moved, redrawn and thinned to one pixel
    (``skimage.morphology.skeletonize``), so a connected line stays a connected thin line.

    Args:
        gt_front: ``(H, W)`` front mask (non-zero = front).
        n: number of annotators.
        displacement_m: RMS displacement in metres.
        resolution_m: metres per pixel.
        seed: same seed → same annotators.
        correlation_length_m: length scale of the displacement field in metres.

    Returns:
        ``n`` arrays ``(H, W)`` uint8 0/1.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if resolution_m <= 0 or displacement_m < 0 or correlation_length_m <= 0:
        raise ValueError("resolution_m and correlation_length_m must be positive and displacement_m >= 0")
    front = np.asarray(gt_front) > 0
    shape = front.shape
    rows, cols = np.nonzero(front)
    pts = np.column_stack((rows, cols)).astype(np.float64)
    # segments between 8-neighbours (each pair once) plus every pixel as a degenerate segment
    index = -np.ones(shape, dtype=np.int64)
    index[rows, cols] = np.arange(rows.size)
    src, dst = [np.arange(rows.size)], [np.arange(rows.size)]
    for dr, dc in ((0, 1), (1, -1), (1, 0), (1, 1)):
        nr, nc = rows + dr, cols + dc
        ok = (nr < shape[0]) & (nc >= 0) & (nc < shape[1])
        j = np.full(rows.size, -1, dtype=np.int64)
        j[ok] = index[nr[ok], nc[ok]]
        hit = j >= 0
        src.append(np.flatnonzero(hit))
        dst.append(j[hit])
    s, d = np.concatenate(src), np.concatenate(dst)
    rng = np.random.default_rng(seed)
    sigma_px = displacement_m / resolution_m / np.sqrt(2.0)
    length_px = correlation_length_m / resolution_m
    out = []
    for _ in range(n):
        moved = pts + _smooth_field(pts, sigma_px, length_px, rng) if len(pts) else pts
        out.append(_rasterise(moved[s], moved[d], shape))
    return out


# --------------------------------------------------------------------------------------------------------------
# the book's study: simulated annotator folders, several models against the annotators

#: Label of the human–human group in :class:`HumanVsModel` tables.
HUMAN_GROUP = "human vs human"


def write_simulated_annotators(caffe_root: str | Path, out_root: str | Path, n: int, displacement_m: float,
                               correlation_length_m: float = 1000.0, seed: int = 0, split: str = "test") -> Path:
    """Simulate ``n`` annotators on every scene of a CaFFe split; write them in the annotator folder layout.

    ``out_root/annotator_NN/<stem>_front.png`` (0 / 255), readable by :func:`load_annotator_fronts`. An existing
    ``out_root`` is replaced. Scene seeds come from ``numpy.random.default_rng(seed)`` in scene order.
    """
    import shutil

    from ssl4sar.data import caffe
    from ssl4sar.io import atomic_path

    out = Path(out_root)
    if out.exists():
        shutil.rmtree(out)
    rng = np.random.default_rng(seed)
    names = [f"annotator_{i + 1:02d}" for i in range(n)]
    for scene in caffe.discover(caffe_root, split):
        gt = caffe.load_scene(scene, with_bbox=False)["front"]
        res = float(stem_metadata(scene.stem)["resolution_m"])
        fronts = simulate_annotators(gt, n, displacement_m, res, seed=int(rng.integers(2**31)),
                                     correlation_length_m=correlation_length_m)
        for name, front in zip(names, fronts):
            path = out / name / f"{scene.stem}{FRONT_SUFFIX}"
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                Image.fromarray(front * np.uint8(255)).save(tmp, format="PNG")
    return out


@dataclass
class HumanVsModel:
    """Human–human and model–human tables of several models against the same annotators.

    Attributes:
        summary: one row per group (``human vs human``, ``<model> vs human``): pairs, images, images without
            model front, mean / median pair MDE and bootstrap CI (m), ratio to human–human, paper value.
        pairs: one row per pair with its ``group`` and pooled MDE (m).
        bootstrap: group → bootstrap replicates of the mean pair MDE (m).
        per_image: stem × group, mean front distance (m).
    """

    summary: pd.DataFrame
    pairs: pd.DataFrame
    bootstrap: dict[str, np.ndarray]
    per_image: pd.DataFrame


def human_vs_model(annotations: Mapping[str, Mapping[str, np.ndarray]],
                   model_fronts: Mapping[str, Mapping[str, np.ndarray]], n_bootstrap: int = 2000,
                   confidence: float = 0.95, seed: int = 0) -> HumanVsModel:
    """:func:`compare_annotators` for each model of ``model_fronts`` (name → stem → front); tables side by side.

    The human–human group is taken from the first model's comparison (it does not depend on the model). A model
    without any front gives NaN means and intervals, and counts its images without a front.
    """
    if not model_fronts:
        raise ValueError("no model fronts to compare")
    comparisons = {name: compare_annotators(annotations, fronts, n_bootstrap=n_bootstrap, confidence=confidence,
                                            seed=seed, model_name=name) for name, fronts in model_fronts.items()}
    first = next(iter(comparisons.values()))
    hh = first.summary[first.summary["kind"] == "human-human"].iloc[0]
    rows = [{"group": HUMAN_GROUP, **hh.drop("kind").to_dict(), "images": int(first.pairs["images"].iloc[0]),
             "images without model front": None, "paper (m)": PAPER_HUMAN_MDE_M}]
    pairs = [first.pairs[first.pairs["kind"] == "human-human"].assign(group=HUMAN_GROUP)]
    boot = {HUMAN_GROUP: first.bootstrap.get("human-human", np.array([]))}
    per_image = [first.per_image[first.per_image["kind"] == "human-human"].groupby("stem")["mean_m"].mean()
                 .rename(HUMAN_GROUP)]
    for name, comp in comparisons.items():
        group = f"{name} vs human"
        mh = comp.summary[comp.summary["kind"] == "model-human"].iloc[0]
        rows.append({"group": group, **mh.drop("kind").to_dict(), "images": int(comp.pairs["images"].iloc[0]),
                     "images without model front": sum(1 for f in model_fronts[name].values() if not np.any(f)),
                     "paper (m)": PAPER_ENSEMBLE_MDE_M if name.startswith("ensemble") else None})
        pairs.append(comp.pairs[comp.pairs["kind"] == "model-human"].assign(group=group))
        boot[group] = comp.bootstrap.get("model-human", np.array([]))
        per_image.append(comp.per_image[comp.per_image["kind"] == "model-human"].groupby("stem")["mean_m"].mean()
                         .rename(group))
    summary = pd.DataFrame(rows)
    summary["ratio to human–human"] = summary["mean_mde_m"] / float(hh["mean_mde_m"])
    return HumanVsModel(summary=summary, pairs=pd.concat(pairs, ignore_index=True), bootstrap=boot,
                        per_image=pd.concat(per_image, axis=1))


def summary_for_display(summary: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """The columns of :attr:`HumanVsModel.summary` a reader needs, the interval as one ``lo – hi`` column."""
    ci = f"{confidence:.0%} CI (m)"
    shown = summary.assign(**{ci: [f"{lo:.1f} – {hi:.1f}" if np.isfinite(lo) and np.isfinite(hi) else "n/a"
                                   for lo, hi in zip(summary["ci_low_m"], summary["ci_high_m"])]})
    return (shown[["group", "pairs", "images", "images without model front", "mean_mde_m", ci,
                   "ratio to human–human", "paper (m)"]]
            .rename(columns={"mean_mde_m": "mean MDE (m)", "images without model front": "no model front"})
            .set_index("group").round(2))


@dataclass
class Annotators:
    """The annotators of a study (:func:`prepare_annotators`): annotator → stem → front (0/1), the stems every
    annotator delineated (sorted), their folder, whether they are simulated, and a Markdown sentence saying so."""

    fronts: dict[str, dict[str, np.ndarray]]
    stems: list[str]
    root: Path
    simulated: bool
    note: str


def prepare_annotators(caffe_root: str | Path, out_dir: str | Path, annotators_dir: str | Path | None = None,
                       n: int | None = None, displacement_m: float = 58.0, correlation_length_m: float = 1000.0,
                       seed: int = 0, shown: Callable[[Path], str] = str) -> Annotators:
    """Real annotators from ``annotators_dir`` (:func:`load_annotator_fronts`) or, when it is ``None``, ``n``
    (default :data:`PAPER_N_ANNOTATORS`) simulated ones on the test split of ``caffe_root``
    (:func:`write_simulated_annotators` into ``<out_dir>/simulated_annotators``, then read back the same way).
    ``shown`` turns the folder into the text of the note (e.g. :meth:`ssl4sar.book.WorkLayout.relative`)."""
    simulated = annotators_dir is None
    if simulated:
        root = write_simulated_annotators(caffe_root, Path(out_dir) / "simulated_annotators",
                                          int(n) if n is not None else PAPER_N_ANNOTATORS, displacement_m,
                                          correlation_length_m, seed)
    else:
        root = Path(annotators_dir)
    fronts = load_annotator_fronts(root)
    stems = sorted(set.intersection(*(set(v) for v in fronts.values())))
    if simulated:
        note = (f"**These annotators are a simulation**, not human delineations: {len(fronts)} annotators, each the "
                f"ground-truth front of the {len(stems)} test images displaced by a smooth random field with an RMS "
                f"displacement of **{displacement_m:g} m** (correlation length {correlation_length_m:g} m), seed "
                f"{seed}. Their agreement is set by that number, not measured.")
    else:
        note = (f"Annotator fronts from `{shown(root)}`: {len(fronts)} annotators, {len(stems)} images delineated "
                "by all.")
    return Annotators(fronts, stems, root, simulated, note)


def write_study(study: HumanVsModel, out_dir: str | Path) -> list[Path]:
    """Write ``summary.csv``, ``pairs.csv`` and ``per_image.csv`` (indexed by stem) of a study to ``out_dir``."""
    from ssl4sar.io import write_text_atomic

    return [write_text_atomic(Path(out_dir) / f"{name}.csv",
                              table.to_csv(index=name == "per_image", float_format="%.3f"))
            for name, table in (("summary", study.summary), ("pairs", study.pairs), ("per_image", study.per_image))]


def study_note(study: HumanVsModel, model: str, n_images: int) -> str:
    """Markdown: the paper's two numbers and their ratio and, when ``model`` found no front on some of the
    ``n_images`` images, on how many images its pairs rest."""
    summary = study.summary
    no_front = int(summary.loc[summary["group"] == f"{model} vs human", "images without model front"].iloc[0])
    text = (f"The paper: ensemble vs annotators **{PAPER_ENSEMBLE_MDE_M:g} m**, annotators among themselves "
            f"**{PAPER_HUMAN_MDE_M:g} m**, a ratio of {PAPER_ENSEMBLE_MDE_M / PAPER_HUMAN_MDE_M:.2f}.")
    if no_front:
        rest = n_images - no_front
        text += (f" **{model} found no front on {no_front} of the {n_images} images**: its pairs rest on the "
                 f"{rest} others" + (" — with one image the bootstrap has nothing to resample and its interval "
                                     "collapses to a point." if rest == 1 else "."))
    return text


def example_image(caffe_root: str | Path, annotators: Annotators, model_fronts: Mapping[str, np.ndarray]
                  ) -> tuple[str, np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """One annotated test image to draw: the first stem on which the model found a front (else the first stem),
    its SAR image, every annotator's front on it and the model's front (all zeros when it has none)."""
    from ssl4sar.data import caffe

    stem = next((s for s in annotators.stems if np.any(model_fronts.get(s, 0))), annotators.stems[0])
    scene = next(s for s in caffe.discover(caffe_root, "test") if s.stem == stem)
    fronts = {a: annotators.fronts[a][stem] for a in annotators.fronts}
    model = model_fronts.get(stem)
    return stem, caffe.read_sar(scene.sar_path), fronts, (model if model is not None
                                                          else np.zeros_like(next(iter(fronts.values()))))
