"""Evaluation of trained models on a CaFFe split (spec §7–§9); the command ``ssl4sar evaluate`` is
:mod:`ssl4sar.commands.evaluate`.

Why one module of ~800 lines: about 65 of them are this docstring and its output table, and the rest is one
pipeline, its entry points and the one scorer (:class:`_Scorer`) whose outputs they share; the metrics,
post-processing and inference it calls already live in their own modules.

Three entry points share one scoring path (:class:`_Scorer`):

* :func:`evaluate` — checkpoints (or models in memory) → for every scene of the split: sliding-window inference
  with Gaussian stitching over all ensemble members × TTA rotations (:func:`ssl4sar.inference.predict_probabilities`,
  soft voting), class map = argmax of the mean softmax; then the scoring below.
* :func:`evaluate_with_and_without_tta` — the same models without and with TTA into two folders, in one pass over
  the scenes: each member's unrotated map serves both (:func:`ssl4sar.inference.predict_with_and_without_tta`);
  the results equal two :func:`evaluate` calls.
* :func:`evaluate_predictions` — class maps given by the caller (``stem → (H, W)`` class ids), e.g. from another
  program or the ground truth itself; the same scoring.

On a CPU the first two can share a split's scenes among ``processes`` spawned processes (``ssl4sar evaluate
--processes N``); the parent pools their records into the files and tables one process would write.

Scoring of one scene (the order of the official ``Evaluation.py``):

1. zone metrics (precision, recall, F1, IoU per class and macro, §8.2) of the class map **before**
   post-processing against the ground-truth zones;
2. post-processing (§7.2, :func:`ssl4sar.postprocess.extract_front`) with the scene's pixel spacing (stem field 3,
   m/px) and its bounding box (§1.4) when ``bounding_boxes/<stem>_front_extent_coord.txt`` exists — otherwise the
   front is not masked and this is logged and recorded (column ``bounding_box``);
3. distances to the raw ground-truth front (§8.1): per-image sums, later pooled into the MDE.

Inference settings (window, stride, Gaussian σ, TTA, device) are resolved by
:func:`ssl4sar.inference_settings.inference_settings` (re-exported here with :class:`InferenceSettings` and
:func:`resolve_device`).

Outputs in ``out_dir`` (one evaluation per folder; re-running overwrites every file atomically and removes this
module's per-scene files of stems / options that the new run does not write, so that nothing stale remains;
``summary.json`` is deleted when a run starts and written last, so a folder without it holds an unfinished run):

=====================================  ===========================================================================
``class_maps/<stem>_zones.png``        predicted zones before post-processing, CaFFe values 0 / 64 / 127 / 254
``fronts/<stem>_front.png``            post-processed predicted front, 0 / 255
``uncertainty/<stem>_uncertainty.png`` (models only) population std over members × augmentations of the softmax
                                       of the **predicted class** at each pixel, × 255, rounded, uint8 (the
                                       reference stores the per-class std × 255; the std of a probability is at
                                       most 0.5, so values are ≤ 128; all 0 for a single map)
``probabilities/<stem>_probabilities.npz``  (``save_probabilities``) ``probabilities`` = mean softmax and ``std``,
                                       both ``(K, H, W)`` float16
``figures/<stem>_overlay.png``         first ``figures`` scenes: SAR with predicted (yellow) and true (red) front,
                                       predicted zone map, uncertainty
``per_image.csv/.json``                one row per scene: metadata, front pixel counts, distance sums, mean
                                       distance (m), missing flag, zone metrics, bounding-box flag, timing
``breakdown.csv/.json``                MDE per season, glacier, sensor, resolution and crosses (§8.3)
``zone_metrics.csv/.json``             precision / recall / F1 / IoU per class + macro, averaged over images
``summary.json``                       headline numbers and the settings (checkpoints, TTA, stride, σ, versions)
``records/<stem>.evaluation.json``     (models) what made the scene's row and files, written last: the models'
                                       digest, the settings, the input files' identities, the row itself
=====================================  ===========================================================================

**Stopped runs.** Evaluating the 122 CaFFe test scenes with TTA takes hours on a CPU. ``resume=True``
(``ssl4sar evaluate --resume``) keeps every scene whose record matches (same weights, settings and input files;
batch size and device may differ; :mod:`ssl4sar.prediction_records`), evaluates the others, and pools both into
tables identical to those of an uninterrupted run (only ``inference_s`` of a kept scene is its earlier timing).
A scene's record is deleted before its files are written again, and half-written files that a killed run left are
removed, so nothing half-done is ever kept.

Missing fronts (no predicted front after post-processing, or no ground-truth front) are excluded from every
distance statistic and counted (§8.1). ``absent="nan"`` (default) leaves a class absent from both prediction and
ground truth out of that image's macro zone scores; ``"zero"`` scores it 0 like the reference (§8.2, bug 9).
"""

from __future__ import annotations

import json
import logging
import math
import platform
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

from ssl4sar import __version__, prediction_records
from ssl4sar.data.caffe import (
    CLASS_NAMES,
    NUM_CLASSES,
    SPLITS,
    CaffeScene,
    classes_to_zones,
    discover,
    load_scene,
    zones_to_classes,
)
from ssl4sar.domain import display_step, downsample_for_display
from ssl4sar.errors import DataError, SettingError
from ssl4sar.inference import (
    PAPER_TTA_ROTATIONS,
    EnsemblePrediction,
    predict_probabilities,
    predict_with_and_without_tta,
)
from ssl4sar.inference_settings import InferenceSettings, ensemble_context_size, inference_settings, resolve_device
from ssl4sar.io import atomic_leftovers, atomic_path, disk_full_raises, ensure_writable_dir
from ssl4sar.metrics import (
    PER_IMAGE_COLUMNS,
    ZoneMetrics,
    average_zone_metrics,
    breakdown,
    evaluate_fronts,
    mde_summary,
    write_tables,
    zone_metrics,
)
from ssl4sar.postprocess import DEFAULT_MIN_FRONT_LENGTH_M, KeepRule, check_min_front_length_m, extract_front

__all__ = [
    "DEFAULT_FIGURES", "PAPER_TTA_ROTATIONS", "ZONE_COLUMNS", "EXTRA_COLUMNS", "InferenceSettings",
    "EvaluationResult", "inference_settings", "resolve_device", "evaluate", "evaluate_predictions",
    "evaluate_with_and_without_tta", "format_summary",
]

logger = logging.getLogger(__name__)

#: what to do when the disk of the output folder is full (:class:`~ssl4sar.errors.DiskFull`)
_DISK_FULL_HINT = "free some space, then run the same command with --resume: the scenes scored before are kept"
#: overlay figures an evaluation draws by default (``ssl4sar evaluate --figures``)
DEFAULT_FIGURES = 8
#: per-image zone-metric columns: ``<metric>_<macro|NA|rock|glacier|ocean>`` (the reference's 4 × 5 numbers)
ZONE_COLUMNS: tuple[str, ...] = tuple(f"{m}_{c}" for m in ("precision", "recall", "f1", "iou")
                                      for c in ("macro", *CLASS_NAMES))
#: further per-image columns after :data:`ssl4sar.metrics.PER_IMAGE_COLUMNS` and :data:`ZONE_COLUMNS`
EXTRA_COLUMNS: tuple[str, ...] = ("height_px", "width_px", "bounding_box", "n_maps", "mean_uncertainty",
                                  "inference_s")

# per-scene outputs: (sub-folder, file-name suffix)
_OUT_ZONES = ("class_maps", "_zones.png")
_OUT_FRONT = ("fronts", "_front.png")
_OUT_UNCERTAINTY = ("uncertainty", "_uncertainty.png")
_OUT_PROBABILITIES = ("probabilities", "_probabilities.npz")
_OUT_FIGURE = ("figures", "_overlay.png")
_OUT_RECORD = ("records", ".evaluation.json")  # written last: what made the scene's row and files (resume)
_SCENE_OUTPUTS = (_OUT_ZONES, _OUT_FRONT, _OUT_UNCERTAINTY, _OUT_PROBABILITIES, _OUT_FIGURE, _OUT_RECORD)
_FIGURE_MAX_SIDE_PX = 2000


# --------------------------------------------------------------------------------------------------------------
# result

@dataclass
class EvaluationResult:
    """Everything an evaluation produced.

    Attributes:
        per_image: one row per scene (:data:`ssl4sar.metrics.PER_IMAGE_COLUMNS` + :data:`ZONE_COLUMNS` +
            :data:`EXTRA_COLUMNS`); distances in metres.
        breakdown: MDE per group (:data:`ssl4sar.metrics.BREAKDOWN_COLUMNS`).
        summary: the headline (as written to ``summary.json``): ``pooled_mde_m``, ``std_m``,
            ``picture_normalised_mde_m``, ``front_length_normalised_mde_m``, ``missing_fronts``, ``images``,
            ``mean_iou`` … and ``settings`` / ``versions``.
        zone_metrics: rows = classes + ``macro``, columns = precision, recall, f1, iou (averaged over images).
        out_dir: the output folder.
        files: name → path of every file written.
    """

    per_image: pd.DataFrame
    breakdown: pd.DataFrame
    summary: dict[str, Any]
    zone_metrics: pd.DataFrame
    out_dir: Path
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def pooled_mde_m(self) -> float:
        """The reported number: MDE pooled over all front pixels of all non-missing images (metres)."""
        v = self.summary.get("pooled_mde_m")
        return float("nan") if v is None else float(v)


# --------------------------------------------------------------------------------------------------------------
# the shared scoring path

def _write_png(path: Path, arr: np.ndarray) -> Path:
    """Write an ``(H, W)`` uint8 array as an 8-bit grayscale PNG, atomically."""
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(np.ascontiguousarray(arr, dtype=np.uint8)).save(tmp, format="PNG")
    return path


def _write_npz(path: Path, **arrays: np.ndarray) -> Path:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    return path


def _sanitize(obj: Any) -> Any:
    """JSON-safe copy: NaN / inf → None, numpy scalars → Python, Paths → str, recursively."""
    if isinstance(obj, Mapping):
        return {str(k): _sanitize(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_sanitize(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _overlay_figure(path: Path, sar: np.ndarray, classes: np.ndarray, pred_front: np.ndarray,
                    gt_front: np.ndarray, uncertainty: np.ndarray | None, title: str, resolution_m: float) -> Path:
    """SAR + predicted / true front, SAR + predicted zones, and (when given) the uncertainty map.

    Scenes larger than 2000 px are shown subsampled (SAR and zones by striding, fronts by block maximum).
    Front lines are drawn 9 px thick below 10 m/px and 3 px otherwise (the reference's rule), at most 1/40 of
    the shorter displayed side.
    """
    import matplotlib.pyplot as plt

    from ssl4sar.viz import plot_prediction, save_figure

    f = display_step(sar.shape, _FIGURE_MAX_SIDE_PX)
    if f > 1:
        sar, classes = sar[::f, ::f], classes[::f, ::f]
        pred_front = downsample_for_display(pred_front, f, keep_lines=True)
        gt_front = downsample_for_display(gt_front, f, keep_lines=True)
        uncertainty = None if uncertainty is None else uncertainty[::f, ::f]
    h, w = sar.shape
    thickness = min(9 if resolution_m < 10 else 3, max(1, min(h, w) // 40))
    n = 3 if uncertainty is not None else 2
    fig, axes = plt.subplots(1, n, figsize=(4.8 * n, 4.8 * h / max(w, 1) + 0.8), squeeze=False)
    plot_prediction(sar, None, pred_front, gt_front, title=title, ax=axes[0, 0], thickness_px=thickness)
    plot_prediction(sar, classes, None, None, title="predicted zones (before post-processing)", ax=axes[0, 1])
    if uncertainty is not None:
        ax = axes[0, 2]
        im = ax.imshow(uncertainty, cmap="magma", vmin=0.0, vmax=0.5, interpolation="nearest")
        ax.set_title("uncertainty (std, predicted class)")
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(im, ax=ax, shrink=0.8)
    return save_figure(fig, path)


@dataclass(frozen=True)
class _ScoreOptions:
    absent: Literal["nan", "zero"]
    keep_rule: KeepRule
    min_front_length_m: float
    figures: int
    save_probabilities: bool


@dataclass(frozen=True)
class _RecordKey:
    """What a scene's record must match for its row and files to be reused: the models' digest and the settings
    that change a row or a file (:mod:`ssl4sar.prediction_records`)."""

    models_sha256: str
    settings: dict[str, Any]


class _Scorer:
    """Scores scenes one by one and writes their files (and, with a ``record_key``, a record per scene, written
    last); :meth:`reuse` takes a scene from an earlier run instead; :meth:`finish` writes the tables."""

    def __init__(self, out_dir: Path, options: _ScoreOptions, record_key: _RecordKey | None = None) -> None:
        if options.absent not in ("nan", "zero"):
            raise ValueError(f"absent must be 'nan' or 'zero', got {options.absent!r}")
        if options.keep_rule not in (">=", ">"):
            raise ValueError(f"keep_rule must be '>=' or '>', got {options.keep_rule!r}")
        check_min_front_length_m(options.min_front_length_m)
        if options.figures < 0:
            raise SettingError(f"figures must be 0 or more (overlays of the first N scenes), got {options.figures}")
        self.out = out_dir
        self.opts = options
        self.record_key = record_key
        self.rows: list[dict[str, Any]] = []
        self.zones: list[ZoneMetrics] = []
        self.written: set[Path] = set()
        self.scene_files: list[Path] = []  # the files of the scene being scored, in the order written
        self.kept = 0
        # summary.json is written last: a folder without it holds an unfinished (or failed) evaluation
        (out_dir / "summary.json").unlink(missing_ok=True)

    def _record_path(self, stem: str) -> Path:
        return self.out / _OUT_RECORD[0] / f"{stem}{_OUT_RECORD[1]}"

    def _path(self, kind: tuple[str, str], stem: str) -> Path:
        p = self.out / kind[0] / f"{stem}{kind[1]}"
        self.written.add(p)
        self.scene_files.append(p)
        return p

    def add(self, scene: CaffeScene, data: Mapping[str, Any], classes: np.ndarray,
            prediction: EnsemblePrediction | None = None, inference_s: float = float("nan"),
            index: int | None = None, inputs: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
        """Score one scene: zone metrics, post-processing, distances; write its files. Returns its table row.

        ``index``: the scene's place in the split, which decides whether it gets a figure (default: the number of
        scenes scored or kept before it). ``inputs``: the identities of its input files taken before ``data`` was
        read (:func:`_input_identities`), for its record; without them (or a ``record_key``) no record is
        written."""
        stem = scene.stem
        image, gt_zones, gt_front = data["image"], data["zones"], data["front"]
        if classes.shape != image.shape:
            raise DataError(scene.sar_path, f"predicted class map is {classes.shape[0]}x{classes.shape[1]} (HxW) but "
                            f"the scene is {image.shape[0]}x{image.shape[1]}", "predict on the full scene")
        # an earlier record must never describe the files about to be replaced (a stop half-way through them)
        self.scene_files = []
        self._record_path(stem).unlink(missing_ok=True)
        self._remove_leftovers(stem)
        res = float(scene.meta.resolution_m)
        zm = zone_metrics(classes, gt_zones, num_classes=NUM_CLASSES, absent=self.opts.absent)
        bbox = data.get("bbox")
        if bbox is None:
            logger.info("%s: no bounding-box file; the predicted front is not masked", stem)
        front = extract_front(classes, res, bbox, min_front_length_m=self.opts.min_front_length_m,
                              keep_rule=self.opts.keep_rule)
        row = evaluate_fronts([{"stem": stem, "pred_front": front, "gt_front": gt_front, "resolution_m": res,
                                "glacier": scene.meta.glacier, "date": scene.meta.date.isoformat(),
                                "season": scene.meta.season, "sensor": scene.meta.sensor,
                                "sensor_group": scene.meta.sensor_group}]).iloc[0].to_dict()
        macro = zm.macro()
        for metric in ("precision", "recall", "f1", "iou"):
            row[f"{metric}_macro"] = macro[metric]
            values = getattr(zm, metric)
            for i, name in enumerate(CLASS_NAMES):
                row[f"{metric}_{name}"] = float(values[i])
        uncertainty = None
        if prediction is not None:
            idx = classes.astype(np.intp)[None]
            uncertainty = np.take_along_axis(prediction.std, idx, axis=0)[0]
        row["height_px"], row["width_px"] = int(image.shape[0]), int(image.shape[1])
        row["bounding_box"] = bbox is not None
        row["n_maps"] = prediction.n_maps if prediction is not None else 0
        row["mean_uncertainty"] = float(uncertainty.mean()) if uncertainty is not None else float("nan")
        row["inference_s"] = float(inference_s)
        self.rows.append(row)
        self.zones.append(zm)

        _write_png(self._path(_OUT_ZONES, stem), classes_to_zones(classes))
        _write_png(self._path(_OUT_FRONT, stem), front * np.uint8(255))
        if uncertainty is not None:
            _write_png(self._path(_OUT_UNCERTAINTY, stem),
                       np.clip(np.rint(uncertainty * 255.0), 0, 255).astype(np.uint8))
            if self.opts.save_probabilities:
                _write_npz(self._path(_OUT_PROBABILITIES, stem), probabilities=prediction.mean.astype(np.float16),
                           std=prediction.std.astype(np.float16))
        if (len(self.rows) - 1 if index is None else index) < self.opts.figures:
            mde = "missing front" if row["missing"] else f"mean distance {row['mean_m']:.0f} m"
            _overlay_figure(self._path(_OUT_FIGURE, stem), image, classes, front, gt_front, uncertainty,
                            f"{stem}\n{mde}", res)
        if self.record_key is not None and inputs is not None:
            files = list(self.scene_files)
            prediction_records.write_evaluation_record(
                self._path(_OUT_RECORD, stem), self.out, inputs, _sanitize(row), files,
                self.record_key.models_sha256, self.record_key.settings)
        return row

    def reuse(self, scene: CaffeScene) -> bool:
        """Take the scene's row and files from an earlier run when its record matches (see
        :func:`ssl4sar.prediction_records.read_matching_evaluation_record`); ``False`` (logged why) otherwise."""
        if self.record_key is None:
            return False
        path = self._record_path(scene.stem)
        record, why_not = prediction_records.read_matching_evaluation_record(
            path, self.out, _scene_inputs(scene), self.record_key.models_sha256, self.record_key.settings)
        if record is None:
            logger.info("%s: evaluated again: %s", scene.stem, why_not)
            return False
        # JSON has no NaN: null stands for it (a missing front's mean, a class absent from both maps)
        row = {k: float("nan") if v is None else v for k, v in record["row"].items()}
        self.rows.append(row)
        self.zones.append(ZoneMetrics(*(np.array([row[f"{m}_{c}"] for c in CLASS_NAMES], dtype=np.float64)
                                        for m in ("precision", "recall", "f1", "iou")), absent=self.opts.absent))
        self.written.update(record["outputs"].values())
        self.written.add(path)
        self.kept += 1
        return True

    def _remove_leftovers(self, stem: str) -> None:
        """Delete the half-written files of ``stem`` that a killed earlier run left (``atomic_path``'s
        ``.<name>.XXXXXXXX.part.<ext>``; a scene's probabilities alone can be hundreds of MB)."""
        for folder, suffix in _SCENE_OUTPUTS:
            for p in atomic_leftovers(self.out / folder, Path(f"{stem}{suffix}").stem):
                logger.info("removing %s, left by an evaluation that was stopped", p)
                p.unlink(missing_ok=True)

    def _remove_stale(self) -> None:
        for folder, suffix in _SCENE_OUTPUTS:
            d = self.out / folder
            if not d.is_dir():
                continue
            for p in d.iterdir():
                if p.is_file() and p.name.endswith(suffix) and p not in self.written:
                    logger.info("removing stale output %s", p)
                    p.unlink()

    def finish(self, split: str, settings: Mapping[str, Any], elapsed_s: float) -> EvaluationResult:
        """Pool the scenes: tables, breakdowns, summary; write them; remove stale per-scene files."""
        if not self.rows:
            raise ValueError("no scenes were scored")
        per_image = pd.DataFrame(self.rows, columns=list(PER_IMAGE_COLUMNS) + list(ZONE_COLUMNS)
                                 + list(EXTRA_COLUMNS))
        bd = breakdown(per_image)
        zones = average_zone_metrics(self.zones)
        s = mde_summary(per_image)
        summary: dict[str, Any] = {
            "split": split,
            "images": int(len(per_image)),
            "missing_fronts": s.missing_fronts,
            "pooled_mde_m": s.pooled_mde_m,
            "std_m": s.std_m,
            "picture_normalised_mde_m": s.picture_normalised_mde_m,
            "picture_std_m": s.picture_std_m,
            "front_length_normalised_mde_m": s.front_length_normalised_mde_m,
            "n_distances": s.n_distances,
            "mean_iou": float(zones.loc["macro", "iou"]),
            "mean_f1": float(zones.loc["macro", "f1"]),
            "mean_precision": float(zones.loc["macro", "precision"]),
            "mean_recall": float(zones.loc["macro", "recall"]),
            "iou_per_class": {name: float(zones.loc[name, "iou"]) for name in CLASS_NAMES},
            "images_without_bounding_box": int((~per_image["bounding_box"].astype(bool)).sum()),
            "elapsed_s": round(float(elapsed_s), 3),
            "scenes_kept_from_earlier_run": self.kept,
            "settings": dict(settings),
            "versions": _versions(),
        }
        summary = _sanitize(summary)
        self._remove_stale()
        files = write_tables(self.out, per_image=per_image, breakdown_df=bd, summary=summary, zones=zones)
        mde = summary["pooled_mde_m"]
        logger.info("%s: %d images, %d missing fronts, MDE %s, mean IoU %s", split, summary["images"],
                    summary["missing_fronts"], "undefined (no front found)" if mde is None else f"{mde:.2f} m",
                    _fmt(summary["mean_iou"], digits=3))
        return EvaluationResult(per_image=per_image, breakdown=bd, summary=summary, zone_metrics=zones,
                                out_dir=self.out, files={**files, **{str(p.relative_to(self.out)): p
                                                                     for p in sorted(self.written)}})


def _scene_inputs(scene: CaffeScene) -> dict[str, Path]:
    """The files a scene's score is computed from, by name."""
    inputs = {"sar": scene.sar_path, "zones": scene.zones_path, "front": scene.front_path}
    if scene.bbox_path is not None and scene.bbox_path.is_file():
        inputs["bbox"] = scene.bbox_path
    return inputs


def _input_identities(scene: CaffeScene) -> dict[str, dict[str, Any]] | None:
    """:func:`~ssl4sar.prediction_records.file_identity` of each of :func:`_scene_inputs`, taken before the scene is
    read: a file replaced while the scene is predicted is then not the one its record describes. ``None`` when one
    cannot be read (:func:`~ssl4sar.data.caffe.load_scene` says why, or the scene gets no record)."""
    try:
        return {k: prediction_records.file_identity(p) for k, p in _scene_inputs(scene).items()}
    except OSError as exc:
        logger.warning("%s: its input files cannot be identified (%s): no record is written for it", scene.stem, exc)
        return None


def _versions() -> dict[str, str]:
    out = {"ssl4sar": __version__, "python": platform.python_version(), "numpy": np.__version__,
           "torch": torch.__version__}
    try:
        import timm

        out["timm"] = timm.__version__
    except ImportError:  # pragma: no cover - timm is a dependency
        pass
    return out


def _caffe_root(data_dir: str | Path) -> Path:
    """The CaFFe root: ``data_dir`` itself, or ``data_dir/caffe`` (the folder ``ssl4sar data synth`` writes)."""
    root = Path(data_dir)
    if not root.exists():
        raise DataError(root, "data folder not found", "pass the CaFFe root holding sar_images/, zones/, fronts/")
    if not (root / "sar_images").is_dir() and (root / "caffe" / "sar_images").is_dir():
        logger.info("using the CaFFe layout under %s", root / "caffe")
        return root / "caffe"
    return root


def _scenes(data_dir: str | Path, split: str) -> tuple[Path, list[CaffeScene]]:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    root = _caffe_root(data_dir)
    scenes = discover(root, split)
    if not scenes:
        raise DataError(root, f"the {split} split is empty", "check the data folder and the split name")
    return root, scenes


def _iterate(items: Sequence[Any], progress: bool, desc: str) -> Any:
    if not progress:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit="scene")


def _options(absent: str, keep_rule: str, min_front_length_m: float, figures: int,
             save_probabilities: bool) -> _ScoreOptions:
    return _ScoreOptions(absent=absent, keep_rule=keep_rule,  # type: ignore[arg-type]
                         min_front_length_m=float(min_front_length_m), figures=int(figures),
                         save_probabilities=bool(save_probabilities))


# --------------------------------------------------------------------------------------------------------------
# public pipelines

def evaluate_predictions(class_maps: Mapping[str, np.ndarray], data_dir: str | Path, split: str = "test",
                         out_dir: str | Path = "evaluation", *, absent: Literal["nan", "zero"] = "nan",
                         keep_rule: KeepRule = ">=", min_front_length_m: float = DEFAULT_MIN_FRONT_LENGTH_M,
                         figures: int = DEFAULT_FIGURES, require_all: bool = True, progress: bool = True,
                         settings: Mapping[str, Any] | None = None) -> EvaluationResult:
    """Score given class maps on a CaFFe split: zone metrics, post-processing, MDE, tables and files.

    Args:
        class_maps: ``stem → (H, W)`` predicted zones of the full scene, as class ids 0..3 (0 NA, 1 rock,
            2 glacier, 3 ocean) or as CaFFe pixel values 0 / 64 / 127 / 254.
        data_dir: CaFFe root (``sar_images/``, ``zones/``, ``fronts/``, ``bounding_boxes/``) or a folder with
            such a root in ``caffe/``.
        split: ``test``, ``val``, ``train`` or ``trainval``.
        out_dir: output folder (created; reused and overwritten atomically).
        absent: zone score of a class absent from prediction and ground truth (``"nan"`` or ``"zero"``).
        keep_rule: short-front rule, ``">="`` (TYRION) or ``">"`` (CaFFe).
        min_front_length_m: fronts shorter than this (metres) are dropped (750 m in the reference).
        figures: overlay figures for the first this many scenes (sorted by stem).
        require_all: every scene of the split must have a class map (else :class:`DataError`); ``False``
            scores only the given stems.
        progress: tqdm bar over scenes.
        settings: extra entries for ``summary.json["settings"]``.

    Raises:
        DataError: a stem that is not in the split, a missing scene (with ``require_all``), a class map of the
            wrong size or with values that are neither class ids nor CaFFe zone values.
    """
    t0 = time.perf_counter()
    root, scenes = _scenes(data_dir, split)
    by_stem = {s.stem: s for s in scenes}
    unknown = sorted(set(class_maps) - set(by_stem))
    if unknown:
        raise DataError(root, f"class maps for {len(unknown)} stem(s) not in the {split} split: "
                        + ", ".join(unknown[:5]) + (" …" if len(unknown) > 5 else ""),
                        "pass class maps of this split only")
    missing = [s.stem for s in scenes if s.stem not in class_maps]
    if missing and require_all:
        raise DataError(root, f"no class map for {len(missing)} of the {len(scenes)} scenes of the {split} split: "
                        + ", ".join(missing[:5]) + (" …" if len(missing) > 5 else ""),
                        "predict every scene or pass require_all=False")
    selected = [s for s in scenes if s.stem in class_maps]
    if not selected:
        raise DataError(root, f"no class maps given for the {split} split")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    scorer = _Scorer(out, _options(absent, keep_rule, min_front_length_m, figures, False))
    for scene in _iterate(selected, progress, f"scoring {split}"):
        data = load_scene(scene)
        cm = np.asarray(class_maps[scene.stem])
        if cm.ndim != 2:
            raise DataError(scene.sar_path, f"class map for {scene.stem} must be 2-D (H, W), got shape {cm.shape}")
        if cm.size and (cm.min() < 0 or cm.max() >= NUM_CLASSES):
            cm = zones_to_classes(cm, path=f"class map of {scene.stem}")
        scorer.add(scene, data, cm.astype(np.uint8, copy=False))
    info = {"source": "class maps", "data_dir": str(root), "split": split, "absent": absent, "keep_rule": keep_rule,
            "min_front_length_m": float(min_front_length_m)}
    info.update(dict(settings or {}))
    return scorer.finish(split, info, time.perf_counter() - t0)


def _load_members(checkpoints: Sequence[str | Path | torch.nn.Module], device: str, trusted: bool = False
                  ) -> tuple[list[torch.nn.Module], list[str]]:
    from ssl4sar.models.convert import load_model
    from ssl4sar.models.fast import for_inference

    models: list[torch.nn.Module] = []
    names: list[str] = []
    for c in checkpoints:
        if isinstance(c, torch.nn.Module):
            models.append(c.to(device).eval())
            names.append(f"<in-memory {type(c).__name__}>")
        else:
            models.append(for_inference(load_model(Path(c), map_location=device, trusted=trusted)))
            names.append(str(Path(c)))
            logger.info("loaded %s", c)
    return models, names


@dataclass(frozen=True)
class _View:
    """One evaluation folder that a pass over the scenes writes: its augmentations and its figures."""

    out_dir: Path
    tta: bool
    flips: bool
    figures: int


def evaluate(checkpoints: Sequence[str | Path | torch.nn.Module], data_dir: str | Path, split: str = "test",
             out_dir: str | Path = "evaluation", *, tta: bool = False, flips: bool = False,
             preset: str | Mapping[str, Any] | None = None, stride: int | None = None, sigma: float | None = None,
             context_size: int | None = None, device: str = "auto", batch_size: int | None = None,
             amp_dtype: str | None = None, precision: str | None = None, absent: Literal["nan", "zero"] = "nan",
             keep_rule: KeepRule = ">=",
             min_front_length_m: float = DEFAULT_MIN_FRONT_LENGTH_M, figures: int = DEFAULT_FIGURES,
             save_probabilities: bool = False, progress: bool = True, trust_checkpoint: bool = False,
             resume: bool = False, processes: int = 1) -> EvaluationResult:
    """Evaluate one model or an ensemble (optionally with TTA) on a CaFFe split.

    Every checkpoint is loaded once (:func:`ssl4sar.models.convert.load_model`: our format, our Lightning
    checkpoints, official TYRION checkpoints); models already in memory may be passed instead of paths (they
    are moved to ``device`` and set to eval mode). For each scene of the split the SAR image (uint8, /255 in the
    network) is predicted by every member × TTA rotation (× flip) with overlapping windows and Gaussian
    stitching; the mean softmax gives the class map, which is scored like :func:`evaluate_predictions`.

    Args:
        checkpoints: checkpoint paths (the first is the model, the rest ensemble members) or ``nn.Module`` s.
        data_dir, split, out_dir: see :func:`evaluate_predictions`.
        tta: 4 rotations (k × 90° clockwise, rotated back), as the paper.
        flips: also the horizontal mirror of every rotation (8 maps per member with ``tta``).
        preset: scale the preset's inference section to the model (see :func:`inference_settings`).
        stride, sigma: window stride and Gaussian σ in pixels (default C/4 and C/16).
        context_size: window side in pixels for models without ``img_size`` (Tyrion has it).
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``.
        batch_size: windows per forward pass (default 8, or the preset's).
        amp_dtype: ``"bfloat16"`` / ``"float16"`` for autocast on the device; ``None``: from ``precision``.
        precision: ``"auto"`` (bf16 where the device computes it natively), ``"fp32"`` or ``"bf16"``; ``None``: the
            preset's ``inference.precision``, else ``"auto"`` (see :func:`inference_settings`).
        absent, keep_rule, min_front_length_m, figures, progress: see :func:`evaluate_predictions`.
        save_probabilities: also write the mean softmax and its std as float16 ``.npz`` per scene.
        trust_checkpoint: load checkpoints with the full unpickler, which runs code from the file (default:
            tensors and plain values only; see :func:`ssl4sar.models.convert.read_checkpoint_file`).
        resume: keep the row and files of every scene that an earlier evaluation into ``out_dir`` finished with
            the same models (weights), settings and input files (its ``records/<stem>.evaluation.json``), and
            evaluate only the others; the tables and MDE pool both. Batch size and device may differ. Every run
            writes these records, so a stopped run (a kill, a closed notebook) can be resumed.
        processes: on a CPU, spawned processes that share the scenes (every ``processes``-th scene each, on an
            equal share of this process's torch threads) and write their files and records; this process then
            pools them into the tables, as a resumed run would. Checkpoint files only, not models in memory.
            For a network as small as the book's demo one, two single-thread processes evaluated 1.4× as fast as
            two forward passes side by side in one process (``book/bench/cpu-2core-ensemble-evaluation-2026-12-06``):
            its passes take milliseconds, and the Python work between them shares one interpreter. The paper's
            network spends seconds per pass, so one process is the default. On a GPU: ignored.

    Raises:
        DataError: missing or unreadable checkpoint (named), ensemble members with different input sizes,
            a data folder without the CaFFe layout, an empty split.
    """
    view = _View(Path(out_dir), tta=bool(tta), flips=bool(flips), figures=figures)
    with disk_full_raises(out_dir, "the evaluation", _DISK_FULL_HINT):
        return _evaluate_models(
            checkpoints, data_dir, split, [view], preset=preset, stride=stride, sigma=sigma,
            context_size=context_size, device=device, batch_size=batch_size, amp_dtype=amp_dtype,
            precision=precision, absent=absent, keep_rule=keep_rule, min_front_length_m=min_front_length_m,
            save_probabilities=save_probabilities, progress=progress, trust_checkpoint=trust_checkpoint,
            resume=resume, processes=processes)[0]


def evaluate_with_and_without_tta(checkpoints: Sequence[str | Path | torch.nn.Module], data_dir: str | Path,
                                  split: str = "test", out_dir: str | Path = "evaluation",
                                  tta_out_dir: str | Path = "evaluation_tta", *, flips: bool = False,
                                  figures: int = DEFAULT_FIGURES, tta_figures: int = DEFAULT_FIGURES,
                                  **options: Any) -> tuple[EvaluationResult, EvaluationResult]:
    """:func:`evaluate` without TTA into ``out_dir`` and with TTA into ``tta_out_dir``, in one pass over the scenes.

    Each member's untransformed map enters both averages and is computed once
    (:func:`ssl4sar.inference.predict_with_and_without_tta`): with the paper's four rotations the pair costs
    4 maps per member and scene instead of 5. Files, tables and records are those of the two :func:`evaluate`
    calls, to the bit, and either folder can be resumed by either path. Two columns differ: ``inference_s`` of
    a scene predicted for both is the time of the shared passes in both tables, and each ``elapsed_s`` is that of
    the whole pass.

    Args:
        flips: the TTA also uses the horizontal mirror of every rotation (the evaluation without TTA never does).
        figures, tta_figures: overlay figures of each folder.
        **options: the other keyword arguments of :func:`evaluate` (``preset``, ``device``, ``resume``,
            ``processes`` …).

    Returns:
        ``(without TTA, with TTA)``.
    """
    if Path(out_dir).resolve() == Path(tta_out_dir).resolve():
        raise ValueError(f"the two evaluations need two folders, got {out_dir} for both")
    views = [_View(Path(out_dir), tta=False, flips=False, figures=figures),
             _View(Path(tta_out_dir), tta=True, flips=bool(flips), figures=tta_figures)]
    with disk_full_raises(out_dir, f"the evaluations into {out_dir} and {tta_out_dir}", _DISK_FULL_HINT):
        without, with_tta = _evaluate_models(checkpoints, data_dir, split, views, **options)
    return without, with_tta


def _predict_views(models: Sequence[torch.nn.Module], image: np.ndarray, views: Sequence[InferenceSettings],
                   window_kwargs: Mapping[str, Any]) -> list[EnsemblePrediction]:
    """Each view's prediction of the scene; a view without TTA and one with it share the untransformed passes."""
    if (len(views) == 2 and views[0].rotations == (0,) and not views[0].flips and 0 in views[1].rotations):
        return list(predict_with_and_without_tta(models, image, rotations=views[1].rotations, flips=views[1].flips,
                                                 **window_kwargs))
    return [predict_probabilities(models, image, rotations=v.rotations, flips=v.flips, **window_kwargs)
            for v in views]


def _evaluate_models(checkpoints: Sequence[str | Path | torch.nn.Module], data_dir: str | Path, split: str,
                     views: Sequence[_View], *, preset: str | Mapping[str, Any] | None = None,
                     stride: int | None = None, sigma: float | None = None, context_size: int | None = None,
                     device: str = "auto", batch_size: int | None = None, amp_dtype: str | None = None,
                     precision: str | None = None, absent: Literal["nan", "zero"] = "nan", keep_rule: KeepRule = ">=",
                     min_front_length_m: float = DEFAULT_MIN_FRONT_LENGTH_M, save_probabilities: bool = False,
                     progress: bool = True, trust_checkpoint: bool = False, resume: bool = False,
                     processes: int = 1, shard: tuple[int, int] | None = None) -> list[EvaluationResult]:
    """The model pipeline of :func:`evaluate` for one or more views of the same models and scenes.

    ``shard=(k, n)``: score only the scenes ``k, k + n, k + 2n, …`` of the split, write their files and records,
    and return no tables (a process of ``processes``): the process that started the shards pools them. A shard's
    results are empty except for ``summary["scenes_kept_from_earlier_run"]``."""
    t0 = time.perf_counter()
    dev = resolve_device(device)
    ckpt_list = list(checkpoints)
    if not ckpt_list:
        raise ValueError("no checkpoints given")
    if int(processes) < 1:
        raise ValueError(f"processes must be at least 1, got {processes}")
    for c in ckpt_list:  # fail before any loading or data access
        if not isinstance(c, torch.nn.Module) and not Path(c).is_file():
            raise DataError(c, "checkpoint file not found", "check the --checkpoint / --ensemble paths")
    root, scenes = _scenes(data_dir, split)
    for view in views:
        ensure_writable_dir(view.out_dir)
    options = {"preset": preset, "stride": stride, "sigma": sigma, "context_size": context_size, "device": dev,
               "batch_size": batch_size, "amp_dtype": amp_dtype, "precision": precision, "absent": absent,
               "keep_rule": keep_rule, "min_front_length_m": min_front_length_m,
               "save_probabilities": save_probabilities, "trust_checkpoint": trust_checkpoint}
    kept_by_shards = None
    if shard is None and int(processes) > 1 and dev == "cpu" and len(scenes) > 1:
        kept_by_shards = _run_shards(ckpt_list, root, split, views, options, resume, min(int(processes), len(scenes)))
        resume = True  # pool the shards' scenes from their records (and predict any they did not record)
    models, names = _load_members(ckpt_list, dev, trust_checkpoint)
    c = ensemble_context_size(models, names, context_size)
    settings = [inference_settings(int(c), tta=v.tta, flips=v.flips, preset=preset, stride=stride, sigma=sigma,
                                   batch_size=batch_size, device=dev, amp_dtype=amp_dtype, precision=precision)
                for v in views]
    digest = prediction_records.models_sha256(models)
    scorers = []
    for view, setting in zip(views, settings):
        logger.info("evaluating %d model(s) on %d %s scenes into %s: %s", len(models), len(scenes), split,
                    view.out_dir, setting)
        view.out_dir.mkdir(parents=True, exist_ok=True)
        opts = _options(absent, keep_rule, min_front_length_m, view.figures, save_probabilities)
        scorers.append(_Scorer(view.out_dir, opts, _RecordKey(digest, _record_settings(setting, opts))))
    window_kwargs = settings[0].window_kwargs()  # the same for every view: only the augmentations differ
    mine = range(len(scenes)) if shard is None else range(shard[0], len(scenes), shard[1])
    for index in _iterate(mine, progress and shard is None, f"evaluating {split}"):
        scene = scenes[index]
        todo = [i for i, scorer in enumerate(scorers) if not (resume and scorer.reuse(scene))]
        if not todo:
            continue
        inputs = _input_identities(scene)  # before reading: the record describes what was read
        data = load_scene(scene)
        t = time.perf_counter()
        predictions = _predict_views(models, data["image"], [settings[i] for i in todo], window_kwargs)
        if dev.startswith("cuda"):
            torch.cuda.synchronize()
        inference_s = time.perf_counter() - t
        for i, pred in zip(todo, predictions):
            if not np.isfinite(pred.mean).all():  # NaN softmax argmax-es to class 0 (NA): never score it silently
                raise DataError(scene.sar_path, "the network output is not finite (NaN or inf) for this scene",
                                f"check the checkpoint(s) {', '.join(names)} and the image")
            scorers[i].add(scene, data, pred.classes, pred, inference_s=inference_s, index=index, inputs=inputs)
    if shard is not None:
        return [EvaluationResult(per_image=pd.DataFrame(), breakdown=pd.DataFrame(), zone_metrics=pd.DataFrame(),
                                 summary={"scenes_kept_from_earlier_run": scorer.kept}, out_dir=scorer.out)
                for scorer in scorers]
    results = []
    for i, (view, setting, scorer) in enumerate(zip(views, settings, scorers)):
        if kept_by_shards is not None:  # this process took every scene from the shards' records
            scorer.kept = kept_by_shards[i]
        info = {"source": "models", "checkpoints": names, "n_models": len(models), "tta": view.tta,
                "n_maps_per_scene": len(models) * len(setting.rotations) * (2 if setting.flips else 1),
                **setting.as_dict(), "data_dir": str(root), "split": split, "absent": absent,
                "keep_rule": keep_rule, "min_front_length_m": float(min_front_length_m),
                "preset": preset if isinstance(preset, (str, type(None))) else dict(preset).get("name")}
        if scorer.kept:
            logger.info("kept %d of %d scene(s) from an earlier run in %s", scorer.kept, len(scenes), view.out_dir)
        results.append(scorer.finish(split, info, time.perf_counter() - t0))
    return results


def _run_shards(checkpoints: Sequence[str | Path | torch.nn.Module], root: Path, split: str, views: Sequence[_View],
                options: Mapping[str, Any], resume: bool, n: int) -> list[int]:
    """Predict and score the scenes in ``n`` spawned processes, each every ``n``-th scene (:func:`_evaluate_shard`)
    on an equal share of this process's torch threads; their files and records land in the views' folders.
    Returns the scenes per view that the shards kept from an earlier run."""
    from ssl4sar.parallel import parallel_map

    if any(isinstance(c, torch.nn.Module) for c in checkpoints):
        raise ValueError("processes > 1 needs checkpoint files: models in memory are not sent to other processes")
    jobs = [([str(c) for c in checkpoints], root, split, list(views), dict(options), resume, (k, n)) for k in range(n)]
    logger.info("evaluating the %s split in %d processes", split, n)
    threads = torch.get_num_threads()
    if n > threads:
        logger.warning("%d processes share %d CPU thread(s): each runs on one and they oversubscribe the CPU; "
                       "--processes %d is usually faster", n, threads, threads)
    kept = parallel_map(_evaluate_shard, jobs, n, threads=max(1, threads // n))
    return [sum(per_shard[i] for per_shard in kept) for i in range(len(views))]


def _evaluate_shard(job: tuple[list[str], Path, str, list[_View], dict[str, Any], bool, tuple[int, int]],
                    threads: int) -> list[int]:
    checkpoints, root, split, views, options, resume, shard = job
    torch.set_num_threads(threads)
    results = _evaluate_models(checkpoints, root, split, views, **options, progress=False, resume=resume,
                               shard=shard)
    return [int(r.summary["scenes_kept_from_earlier_run"]) for r in results]


def _record_settings(settings: InferenceSettings, opts: _ScoreOptions) -> dict[str, Any]:
    """The settings that change a scene's row or files, as plain JSON values (batch size and device change
    neither, beyond floating-point rounding)."""
    values = {k: v for k, v in settings.as_dict().items() if k not in ("batch_size", "device")}
    values.update(asdict(opts))
    values["ssl4sar_version"] = __version__
    return json.loads(json.dumps(values, sort_keys=True, default=str))


# --------------------------------------------------------------------------------------------------------------
# report

def _fmt(v: Any, unit: str = "", digits: int = 1) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return f"{v:.{digits}f}{unit}"


def format_summary(result: EvaluationResult) -> str:
    """A short plain-text table of the headline numbers and the per-glacier MDE."""
    s = result.summary
    lines = [
        f"{s['split']} split: {s['images']} image(s), {s['missing_fronts']} missing front(s)",
        f"  MDE (pooled)                  {_fmt(s['pooled_mde_m'], ' m')} ± {_fmt(s['std_m'], ' m')}",
        f"  MDE (picture-normalised)      {_fmt(s['picture_normalised_mde_m'], ' m')}",
        f"  MDE (front-length-normalised) {_fmt(s['front_length_normalised_mde_m'], ' m')}",
        f"  mean IoU / F1 (zones)         {_fmt(s['mean_iou'], digits=3)} / {_fmt(s['mean_f1'], digits=3)}",
    ]
    groups = result.breakdown[result.breakdown["group_type"].isin(["glacier", "season"])]
    if len(groups):
        lines.append(f"  {'group':<22}{'images':>7}{'missing':>9}{'MDE (m)':>10}")
        for _, r in groups.iterrows():
            lines.append(f"  {r['group_value']:<22}{r['images']:>7}{r['missing_fronts']:>9}"
                         f"{_fmt(r['mde_m']):>10}")
    kept = s.get("scenes_kept_from_earlier_run") or 0
    if kept:
        lines.append(f"kept {kept} of {s['images']} scene(s) from an earlier run (--resume)")
    lines.append(f"results in {result.out_dir}")
    return "\n".join(lines)

