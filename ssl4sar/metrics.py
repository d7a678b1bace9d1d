"""Metrics of the CaFFe evaluation (spec §8): mean distance error (MDE), zone metrics, breakdowns.

Front delineation (§8.1). Per image, P = the post-processed predicted front pixels and G = the raw ground-truth
front pixels. If either is empty the image is a *missing front*: it is counted and excluded from every distance
statistic. Otherwise the distances are ``[min_g |p − g| for p in P] ++ [min_p |g − p| for g in G]`` (Euclidean,
pixel units, |P| + |G| values) multiplied by the image's metres per pixel. From those:

* **MDE** (the reported number) — mean of all distances pooled over all non-missing images;
* **picture-normalised MDE** — mean over images of the per-image mean distance;
* **front-length-normalised MDE** — ``Σ_i mean_i·|G_i| / Σ_i |G_i|``.

Nearest distances come from a k-d tree (``scipy.spatial.cKDTree``), not from all pairs: a 5000 × 5000 scene
with fronts of ~10 000 pixels evaluates in milliseconds. The values equal the reference's ``cdist(...).min()``.

Zone metrics (§8.2): per-class precision, recall, F1 and IoU of a class map against the ground truth, from one
confusion matrix. A class absent from both prediction and ground truth has undefined scores: ``absent="zero"``
gives 0 like the reference (torchmetrics ≥ 1.2 ``average='none'``), which pulls the macro mean down;
``absent="nan"`` (default) gives NaN and leaves the class out of the macro mean. A class present in only one of
the two gets its honest scores (e.g. precision 0/0 := 0 when it is never predicted but present).

Breakdowns (§8.3/§8.4): MDE per season, glacier, sensor group (TSX and TDX pooled), resolution and the crosses
glacier × season / sensor / resolution, each with its number of missing fronts (the reference never wrote that
count [FIX]). Season: northern glaciers (COL, JAC) have winter in months ≤ 3 or ≥ 9; all others in 4..8
(:func:`ssl4sar.data.caffe.season_of`, re-exported here as :func:`season_of`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from ssl4sar.data.caffe import parse_stem
from ssl4sar.domain import CLASS_NAMES, GLACIERS, SEASONS, season_of
from ssl4sar.errors import DataError
from ssl4sar.io import atomic_path, write_json_atomic

__all__ = [
    "CLASS_NAMES", "CAFFE_GLACIERS", "CAFFE_SENSOR_GROUPS", "CAFFE_RESOLUTIONS", "SEASONS", "PER_IMAGE_COLUMNS",
    "BREAKDOWN_COLUMNS", "season_of", "sensor_group", "format_resolution", "stem_metadata", "front_distances",
    "FrontResult", "front_result", "MDESummary", "mde_summary", "evaluate_fronts", "breakdown", "ZoneMetrics",
    "confusion_matrix", "zone_metrics", "average_zone_metrics", "write_tables",
]

logger = logging.getLogger(__name__)

#: CaFFe categories in the reference's order (T:Evaluation.py:506-552), for ``breakdown(all_categories=True)``.
CAFFE_GLACIERS: tuple[str, ...] = GLACIERS
CAFFE_SENSOR_GROUPS: tuple[str, ...] = ("RSAT", "S1", "ENVISAT", "ERS", "PALSAR", "TSX/TDX")
CAFFE_RESOLUTIONS: tuple[str, ...] = ("20", "17", "12", "7", "6")


# --------------------------------------------------------------------------------------------------------------
# scene metadata (parsing lives in ssl4sar.data.caffe, the season rule in ssl4sar.domain)

def sensor_group(sensor: str) -> str:
    """The reference's sensor grouping: TSX and TDX pooled as ``"TSX/TDX"``, others unchanged."""
    return "TSX/TDX" if sensor in ("TSX", "TDX") else sensor


def format_resolution(resolution_m: float) -> str:
    """Resolution group label: ``20.0`` → ``"20"``, ``6.5`` → ``"6.5"``."""
    return f"{float(resolution_m):g}"


def stem_metadata(stem: str) -> dict[str, Any]:
    """Fields of a CaFFe stem ``<Glacier>_<YYYY-MM-DD>_<Sensor>_<Res>_<Q>_<Orbit>`` (§1.2) used by the breakdowns.

    Returns a dict with ``glacier``, ``date`` (ISO str), ``sensor``, ``sensor_group``, ``resolution_m`` (float,
    metres per pixel) and ``season`` (§8.4), from :func:`ssl4sar.data.caffe.parse_stem`, which raises
    :class:`DataError` naming the stem on a malformed name.
    """
    meta = parse_stem(stem)
    return {"glacier": meta.glacier, "date": meta.date.isoformat(), "sensor": meta.sensor,
            "sensor_group": meta.sensor_group, "resolution_m": float(meta.resolution_m), "season": meta.season}


# --------------------------------------------------------------------------------------------------------------
# distances

def _coords(mask: np.ndarray) -> np.ndarray:
    """``(N, 2)`` float64 (row, col) of the non-zero pixels in row-major order (flatnonzero: fast on big scenes)."""
    mask = np.asarray(mask)
    flat = mask.ravel()
    if flat.dtype != bool:
        flat = flat != 0  # flatnonzero is several times faster on bool than on uint8
    rows, cols = np.divmod(np.flatnonzero(flat), mask.shape[1])
    return np.column_stack((rows, cols)).astype(np.float64)


def front_distances(pred_front: np.ndarray, gt_front: np.ndarray, resolution_m: float) -> np.ndarray | None:
    """Symmetric nearest-pixel distances between two fronts, in metres.

    Args:
        pred_front: ``(H, W)`` predicted front (non-zero = front pixel), already post-processed.
        gt_front: ``(H, W)`` ground-truth front (non-zero = front pixel), never masked or thinned.
        resolution_m: metres per pixel.

    Returns:
        float64 array of ``|P| + |G|`` distances in metres (first P→G in row-major order of P, then G→P), or
        ``None`` when either front is empty (a missing front).
    """
    pred_front = np.asarray(pred_front)
    gt_front = np.asarray(gt_front)
    if pred_front.shape != gt_front.shape:
        raise DataError(None, f"predicted front shape {pred_front.shape} != ground-truth front shape {gt_front.shape}")
    p = _coords(pred_front)
    g = _coords(gt_front)
    if len(p) == 0 or len(g) == 0:
        return None
    d_pg, _ = cKDTree(g).query(p, k=1)
    d_gp, _ = cKDTree(p).query(g, k=1)
    return np.concatenate((d_pg, d_gp)) * float(resolution_m)


@dataclass(frozen=True)
class MDESummary:
    """MDE statistics over a set of images (all distances in metres)."""

    pooled_mde_m: float  #: mean of all pooled distances (the reported MDE)
    std_m: float  #: population std of the pooled distances
    picture_normalised_mde_m: float  #: mean of per-image means
    picture_std_m: float  #: population std of per-image means
    front_length_normalised_mde_m: float  #: per-image means weighted by |G_i|
    missing_fronts: int  #: images with an empty predicted or ground-truth front
    images_evaluated: int  #: all images, missing ones included
    n_distances: int  #: number of pooled distances

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def _summary(sum_m: np.ndarray, sum_sq: np.ndarray, n_dist: np.ndarray, n_gt: np.ndarray,
             missing: np.ndarray) -> MDESummary:
    ok = ~missing
    total = int(n_dist[ok].sum())
    nan = float("nan")
    if total == 0:
        return MDESummary(nan, nan, nan, nan, nan, int(missing.sum()), int(missing.size), 0)
    pooled = float(sum_m[ok].sum() / total)
    var = max(float(sum_sq[ok].sum() / total) - pooled * pooled, 0.0)
    means = sum_m[ok] / n_dist[ok]
    lengths = n_gt[ok].astype(np.float64)
    flen = float(np.sum(means * lengths / lengths.sum())) if lengths.sum() > 0 else nan
    return MDESummary(pooled_mde_m=pooled, std_m=math.sqrt(var), picture_normalised_mde_m=float(means.mean()),
                      picture_std_m=float(means.std()), front_length_normalised_mde_m=flen,
                      missing_fronts=int(missing.sum()), images_evaluated=int(missing.size), n_distances=total)


@dataclass(frozen=True)
class FrontResult:
    """Distances of one image. ``distances_m`` is ``None`` for a missing front."""

    stem: str
    distances_m: np.ndarray | None
    n_pred: int  #: predicted front pixels
    n_gt: int  #: ground-truth front pixels

    @property
    def missing(self) -> bool:
        return self.distances_m is None


def front_result(stem: str, pred_front: np.ndarray, gt_front: np.ndarray, resolution_m: float) -> FrontResult:
    """Distances and pixel counts of one image (see :func:`front_distances`)."""
    return FrontResult(stem, front_distances(pred_front, gt_front, resolution_m),
                       int(np.count_nonzero(np.asarray(pred_front))), int(np.count_nonzero(np.asarray(gt_front))))


def mde_summary(per_image: pd.DataFrame | Iterable[FrontResult]) -> MDESummary:
    """Pooled, picture-normalised and front-length-normalised MDE over images.

    Args:
        per_image: the table of :func:`evaluate_fronts` (columns ``sum_m``, ``sum_sq_m2``, ``n_distances``,
            ``n_gt``, ``missing``) or an iterable of :class:`FrontResult`.
    """
    if isinstance(per_image, pd.DataFrame):
        df = per_image
        return _summary(df["sum_m"].to_numpy(float), df["sum_sq_m2"].to_numpy(float),
                        df["n_distances"].to_numpy(np.int64), df["n_gt"].to_numpy(np.int64),
                        df["missing"].to_numpy(bool))
    results = list(per_image)
    missing = np.array([r.missing for r in results], dtype=bool)
    sums = np.array([0.0 if r.missing else float(r.distances_m.sum()) for r in results])
    sqs = np.array([0.0 if r.missing else float(np.square(r.distances_m).sum()) for r in results])
    ns = np.array([0 if r.missing else r.distances_m.size for r in results], dtype=np.int64)
    ngt = np.array([r.n_gt for r in results], dtype=np.int64)
    summ = _summary(sums, sqs, ns, ngt, missing)
    if summ.n_distances:  # exact population std from the pooled values themselves
        pooled = np.concatenate([r.distances_m for r in results if not r.missing])
        summ = MDESummary(**{**summ.as_dict(), "std_m": float(pooled.std())})
    return summ


# --------------------------------------------------------------------------------------------------------------
# per-image table and breakdowns

PER_IMAGE_COLUMNS = ("stem", "glacier", "date", "season", "sensor", "sensor_group", "resolution_m", "n_pred",
                     "n_gt", "n_distances", "sum_m", "sum_sq_m2", "mean_m", "missing")


def _field(record: Any, name: str, default: Any = None) -> Any:
    if isinstance(record, Mapping):
        return record.get(name, default)
    return getattr(record, name, default)


def evaluate_fronts(records: Iterable[Any]) -> pd.DataFrame:
    """Per-image front-delineation table.

    Args:
        records: mappings or objects with ``stem``, ``pred_front`` (post-processed, ``(H, W)``) and ``gt_front``
            (``(H, W)``); optionally ``resolution_m`` (m/px), ``glacier``, ``date``, ``season``, ``sensor``,
            ``sensor_group``. Missing metadata is parsed from a CaFFe stem (:func:`stem_metadata`).

    Returns:
        DataFrame with one row per image and the columns :data:`PER_IMAGE_COLUMNS`: pixel counts, the number,
        sum, sum of squares and mean of the distances (metres, NaN mean for a missing front), ``missing``.
    """
    rows = []
    for rec in records:
        stem = str(_field(rec, "stem"))
        meta: dict[str, Any] = {}
        keys = ("glacier", "date", "season", "sensor", "sensor_group", "resolution_m")
        given = {k: _field(rec, k) for k in keys}
        if any(v is None for v in given.values()):
            try:
                meta = stem_metadata(stem)
            except DataError:
                if given["resolution_m"] is None:
                    raise
        meta.update({k: v for k, v in given.items() if v is not None})
        if meta.get("sensor_group") is None and meta.get("sensor") is not None:
            meta["sensor_group"] = sensor_group(meta["sensor"])
        res = float(meta["resolution_m"])
        fr = front_result(stem, _field(rec, "pred_front"), _field(rec, "gt_front"), res)
        d = fr.distances_m
        rows.append({
            "stem": stem, "glacier": meta.get("glacier"), "date": meta.get("date"), "season": meta.get("season"),
            "sensor": meta.get("sensor"), "sensor_group": meta.get("sensor_group"), "resolution_m": res,
            "n_pred": fr.n_pred, "n_gt": fr.n_gt, "n_distances": 0 if d is None else int(d.size),
            "sum_m": 0.0 if d is None else float(d.sum()),
            "sum_sq_m2": 0.0 if d is None else float(np.square(d).sum()),
            "mean_m": float("nan") if d is None else float(d.mean()), "missing": d is None,
        })
    return pd.DataFrame(rows, columns=list(PER_IMAGE_COLUMNS))


BREAKDOWN_COLUMNS = ("group_type", "group_value", "images", "missing_fronts", "mde_m", "std_m",
                     "picture_normalised_mde_m", "front_length_normalised_mde_m", "n_distances", "stems")


def _group_row(group_type: str, value: str, sub: pd.DataFrame) -> dict[str, Any]:
    s = mde_summary(sub)
    return {"group_type": group_type, "group_value": value, "images": int(len(sub)),
            "missing_fronts": s.missing_fronts, "mde_m": s.pooled_mde_m, "std_m": s.std_m,
            "picture_normalised_mde_m": s.picture_normalised_mde_m,
            "front_length_normalised_mde_m": s.front_length_normalised_mde_m, "n_distances": s.n_distances,
            "stems": ";".join(sorted(sub["stem"].astype(str)))}


def breakdown(df: pd.DataFrame, crosses: bool = True, all_categories: bool = False) -> pd.DataFrame:
    """MDE per group (§8.3), tidy: one row per (group type, group value).

    Group types: ``all``, ``season``, ``glacier``, ``sensor`` (sensor group, TSX/TDX pooled), ``resolution``
    (m/px, formatted with :func:`format_resolution`) and, with ``crosses``, ``glacier×season``,
    ``glacier×sensor``, ``glacier×resolution`` whose values read ``"COL|winter"``.

    Args:
        df: the table of :func:`evaluate_fronts`.
        crosses: include the glacier crosses.
        all_categories: also list the CaFFe categories with no image (0 images, NaN MDE), in the reference's
            order; otherwise only groups with images, sorted.

    Returns:
        DataFrame with columns :data:`BREAKDOWN_COLUMNS` (``stems`` is the ``;``-joined sorted image list;
        ``mde_m`` is NaN when every image of the group misses its front).
    """
    df = df.copy()
    df["resolution"] = df["resolution_m"].map(format_resolution)
    singles = {"season": "season", "glacier": "glacier", "sensor": "sensor_group", "resolution": "resolution"}
    known = {"season": SEASONS, "glacier": CAFFE_GLACIERS, "sensor": CAFFE_SENSOR_GROUPS,
             "resolution": CAFFE_RESOLUTIONS}

    def values(kind: str) -> list[str]:
        present = sorted({str(v) for v in df[singles[kind]].dropna()})
        if not all_categories:
            return present
        return list(known[kind]) + [v for v in present if v not in known[kind]]

    rows = [_group_row("all", "all", df)]
    for kind, col in singles.items():
        for v in values(kind):
            rows.append(_group_row(kind, v, df[df[col].astype(str) == v]))
    if crosses:
        for kind in ("season", "sensor", "resolution"):
            col = singles[kind]
            for g in values("glacier"):
                for v in values(kind):
                    sub = df[(df["glacier"].astype(str) == g) & (df[col].astype(str) == v)]
                    if len(sub) or all_categories:
                        rows.append(_group_row(f"glacier×{kind}", f"{g}|{v}", sub))
    return pd.DataFrame(rows, columns=list(BREAKDOWN_COLUMNS))


# --------------------------------------------------------------------------------------------------------------
# zone metrics

@dataclass(frozen=True)
class ZoneMetrics:
    """Per-class scores of one class map, arrays of length K in class-id order (fractions in [0, 1])."""

    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    iou: np.ndarray
    absent: str

    def macro(self) -> dict[str, float]:
        """Mean over classes: NaN classes skipped (``absent="nan"``) or counted as 0 (``absent="zero"``)."""
        out = {}
        for name in ("precision", "recall", "f1", "iou"):
            v = getattr(self, name)
            out[name] = float(np.nanmean(v)) if np.any(~np.isnan(v)) else float("nan")
        return out

    def to_frame(self, class_names: Sequence[str] = CLASS_NAMES) -> pd.DataFrame:
        """Rows = classes + ``macro``; columns = precision, recall, f1, iou."""
        k = len(self.iou)
        names = list(class_names)[:k] + [f"class{i}" for i in range(len(class_names), k)]
        df = pd.DataFrame({n: getattr(self, n) for n in ("precision", "recall", "f1", "iou")}, index=names)
        df.loc["macro"] = pd.Series(self.macro())
        return df


def confusion_matrix(pred: np.ndarray, gt: np.ndarray, num_classes: int = 4) -> np.ndarray:
    """``(K, K)`` int64 confusion matrix, rows = ground truth, columns = prediction."""
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    if pred.shape != gt.shape:
        raise DataError(None, f"prediction shape {pred.shape} != ground-truth shape {gt.shape}")
    for name, a in (("prediction", pred), ("ground truth", gt)):
        if a.size and (a.min() < 0 or a.max() >= num_classes):
            raise DataError(None, f"{name} holds values outside 0..{num_classes - 1}",
                            "pass class ids, not CaFFe pixel values")
    idx = gt.astype(np.int64).ravel() * num_classes + pred.astype(np.int64).ravel()
    return np.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def zone_metrics(pred: np.ndarray, gt: np.ndarray, num_classes: int = 4,
                 absent: Literal["nan", "zero"] = "nan") -> ZoneMetrics:
    """Per-class precision, recall, F1 and IoU of a class map (§8.2).

    Args:
        pred: ``(H, W)`` predicted class ids (the stitched argmax, before post-processing).
        gt: ``(H, W)`` ground-truth class ids.
        num_classes: K.
        absent: score of a class absent from both ``pred`` and ``gt``: ``"nan"`` (default, excluded from the
            macro mean) or ``"zero"`` (the reference / torchmetrics behaviour).
    """
    if absent not in ("nan", "zero"):
        raise ValueError(f"absent must be 'nan' or 'zero', got {absent!r}")
    cm = confusion_matrix(pred, gt, num_classes).astype(np.float64)
    tp = np.diag(cm)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp

    def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)

    precision = ratio(tp, tp + fp)
    recall = ratio(tp, tp + fn)
    f1 = ratio(2 * tp, 2 * tp + fp + fn)
    iou = ratio(tp, tp + fp + fn)
    if absent == "nan":
        gone = (tp + fp + fn) == 0
        for a in (precision, recall, f1, iou):
            a[gone] = np.nan
    return ZoneMetrics(precision, recall, f1, iou, absent)


def average_zone_metrics(per_image: Iterable[ZoneMetrics], class_names: Sequence[str] = CLASS_NAMES) -> pd.DataFrame:
    """Average per-image zone metrics over images like the reference: NaNs filtered, then the mean.

    Returns a DataFrame with rows = classes + ``macro`` (the mean over images of each image's macro mean) and
    columns precision, recall, f1, iou.
    """
    frames = [m.to_frame(class_names) for m in per_image]
    if not frames:
        raise ValueError("no images to average")
    stacked = np.stack([f.to_numpy(float) for f in frames])
    with np.errstate(invalid="ignore"):
        counts = np.sum(~np.isnan(stacked), axis=0)
        mean = np.where(counts > 0, np.nansum(stacked, axis=0) / np.maximum(counts, 1), np.nan)
    return pd.DataFrame(mean, index=frames[0].index, columns=frames[0].columns)


# --------------------------------------------------------------------------------------------------------------
# tables

def write_tables(out_dir: str | Path, per_image: pd.DataFrame | None = None, breakdown_df: pd.DataFrame | None = None,
                 summary: MDESummary | Mapping[str, Any] | None = None, zones: pd.DataFrame | None = None,
                 prefix: str = "") -> dict[str, Path]:
    """Write the evaluation tables atomically (CSV for tables, JSON for everything).

    Files (each only when its table is given): ``<prefix>per_image.csv/.json``, ``<prefix>breakdown.csv/.json``,
    ``<prefix>zone_metrics.csv/.json``, ``<prefix>summary.json``. Returns name → path.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}

    def table(name: str, df: pd.DataFrame, index: bool) -> None:
        csv_path = out / f"{prefix}{name}.csv"
        with atomic_path(csv_path) as tmp:
            df.to_csv(tmp, index=index)
        json_path = out / f"{prefix}{name}.json"
        frame = df.reset_index(names="class") if index else df
        records = frame.astype(object).where(pd.notna(frame), None).to_dict(orient="records")
        write_json_atomic(json_path, records)
        written[f"{name}.csv"] = csv_path
        written[f"{name}.json"] = json_path

    if per_image is not None:
        table("per_image", per_image, index=False)
    if breakdown_df is not None:
        table("breakdown", breakdown_df, index=False)
    if zones is not None:
        table("zone_metrics", zones, index=True)
    if summary is not None:
        data = summary.as_dict() if isinstance(summary, MDESummary) else dict(summary)
        data = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in data.items()}
        path = out / f"{prefix}summary.json"
        write_json_atomic(path, data)
        written["summary.json"] = path
    logger.info("wrote %d evaluation files to %s", len(written), out)
    return written
