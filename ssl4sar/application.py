"""A trained model applied to new scenes (chapter 7): the chosen model, a front-position time series compared with
its truth, and real patches predicted to show the georeferencing.

:mod:`ssl4sar.timeseries` measures front positions (box and centreline methods) and :mod:`ssl4sar.predict` predicts
scenes; this module holds what the chapter does with them:

* :func:`load_chosen_model` — the model of :func:`ssl4sar.experiments.choose_checkpoint` with its inference settings;
* :func:`read_series` — the scenes, first scene, truth and true front masks of a series folder;
* :func:`plot_predicted_fronts`, :func:`measure_series` (both methods, written and scored),
  :func:`masks_upper_bound` (the true masks through the same path), :func:`plot_positions`;
* :func:`time_series_accuracy` against the truth re-referenced to a series' first date (:func:`truth_on_reference`);
* :func:`predict_real_patches` — the real CaFFe patches predicted, their fronts read back in EPSG:4326.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ssl4sar import timeseries
from ssl4sar.book import WorkLayout
from ssl4sar.experiments import choose_checkpoint, model_note
from ssl4sar.io import write_text_atomic

__all__ = [
    "ChosenModel",
    "RealPatchFronts",
    "SeriesFolder",
    "load_chosen_model",
    "masks_upper_bound",
    "measure_series",
    "plot_positions",
    "plot_predicted_fronts",
    "predict_real_patches",
    "read_series",
    "time_series_accuracy",
    "truth_by_method",
    "truth_on_reference",
]


@dataclass
class SeriesFolder:
    """A time-series folder read for the study: its ``scenes`` (``sar/*.tif``), the first scene's image and
    :class:`~ssl4sar.data.raster.RasterInfo`, the ``truth`` (``truth.csv``, or ``None`` for real scenes) and the true
    front masks (``fronts/*_front.tif``, empty when there are none)."""

    root: Path
    scenes: list[Path]
    first_image: np.ndarray
    first_info: Any
    truth: pd.DataFrame | None
    true_masks: list[Path]

    @property
    def description(self) -> str:
        """One line: number of scenes, size of the first (px), its CRS and pixel spacing (m/px)."""
        h, w = self.first_image.shape[-2:]
        return (f"{len(self.scenes)} scenes, {h} × {w} px, CRS {self.first_info.crs}, "
                f"{abs(self.first_info.transform.a):g} m/px")

    def truth_table(self) -> pd.DataFrame | None:
        """The truth for display: date, scene stem and the true position (m) relative to the first date."""
        if self.truth is None:
            return None
        return self.truth[["date", "stem", "position_m"]].rename(columns={"position_m": "true position (m)"})


def read_series(root: str | Path) -> SeriesFolder:
    """Read a time-series folder (:func:`ssl4sar.timeseries.series_scenes` checks it first)."""
    from ssl4sar.data.raster import read_raster

    folder = Path(root)
    scenes = timeseries.series_scenes(folder)
    image, info = read_raster(scenes[0], 1, require_crs=True)
    return SeriesFolder(folder, scenes, image, info, timeseries.read_truth(folder),
                        sorted((folder / "fronts").glob("*_front.tif")))


def plot_predicted_fronts(series: SeriesFolder, results: Sequence[Any]) -> tuple[Any, str | None]:
    """The predicted fronts of all dates (``SceneResult`` s of :func:`ssl4sar.predict.predict_scenes`) over the first
    scene in map coordinates, beside the true fronts, with the reference box and the centreline
    (:func:`ssl4sar.viz.plot_predicted_and_true_fronts`). Returns the figure and, when some scenes have no front,
    a Markdown sentence saying how many."""
    from ssl4sar import viz

    fronts = [r.geometry for r in results]
    dates = [r.date.isoformat() if r.date else r.stem for r in results]
    crs = series.first_info.crs
    true_obs = timeseries.load_fronts(series.true_masks) if series.true_masks else []
    fig = viz.plot_predicted_and_true_fronts(series.first_image, series.first_info.transform, str(crs), fronts, dates,
                                             timeseries.references_in(series.root, crs),
                                             timeseries.fronts_in(true_obs, crs))
    n_empty = sum(1 for g in fronts if g is None)
    return fig, (f"*The model found no front in {n_empty} of {len(fronts)} scenes.*" if n_empty else None)


def measure_series(fronts: Sequence[str | Path], series: SeriesFolder, source: str, out_dir: str | Path,
                   prefix: str) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Positions of ``fronts`` by both methods (:func:`ssl4sar.timeseries.series_by_method`), written to
    ``<out_dir>/<prefix>_<method>.csv``, and their accuracy (:func:`time_series_accuracy`, rows named ``source``)."""
    by_method = timeseries.series_by_method(fronts, series.root)
    timeseries.write_series(by_method, out_dir, prefix)
    return by_method, time_series_accuracy(by_method, series.truth, source)


def masks_upper_bound(series: SeriesFolder, model_accuracy: pd.DataFrame, out_dir: str | Path
                      ) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """The true front masks through the same path as the model's fronts (:func:`measure_series`, files
    ``truth_masks_positions_<method>.csv``): their positions and the accuracy table of both (masks first, then
    ``model_accuracy``), written to ``<out_dir>/accuracy.csv``."""
    by_method, masks = measure_series(series.true_masks, series, "true front masks", out_dir, "truth_masks_positions")
    table = pd.concat([masks, model_accuracy], ignore_index=True)
    write_text_atomic(Path(out_dir) / "accuracy.csv", table.to_csv(index=False, float_format="%.3f"))
    return by_method, table


def plot_positions(by_method: Mapping[str, pd.DataFrame], truth: pd.DataFrame | None, label: str) -> Any:
    """:func:`ssl4sar.viz.plot_positions_by_method` of a series against the truth on each method's first date."""
    from ssl4sar import viz

    return viz.plot_positions_by_method(by_method, truth_by_method(by_method, truth), label)


def truth_on_reference(series: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """The truth (``date``, ``position_m``) relative to the first date on which ``series`` has a position.

    A series whose first date has no front starts from a later date; the truth is re-referenced to that date so
    that both describe the same displacement. Unchanged when the series has no position at all.
    """
    ok = series["position_m"].notna()
    if not ok.any():
        return truth
    ref = truth.loc[pd.to_datetime(truth["date"]) == pd.to_datetime(series.loc[ok, "date"].iloc[0]), "position_m"]
    return truth.assign(position_m=truth["position_m"] - (float(ref.iloc[0]) if len(ref) else 0.0))


def time_series_accuracy(series_by_method: Mapping[str, pd.DataFrame], truth: pd.DataFrame | None,
                         source: str) -> pd.DataFrame:
    """One row per method: dates, dates with a position, mean member spread and, with a truth, RMSE, bias and the
    largest error (metres, :func:`ssl4sar.timeseries.compare_to_truth` on the re-referenced truth)."""
    rows = []
    for method, s in series_by_method.items():
        spread = s["position_std_m"].astype(float)
        row: dict[str, Any] = {"fronts from": source, "method": method, "dates": len(s),
                               "dates with a position": int(s["position_m"].notna().sum()),
                               "member spread (m)": float(spread.mean()) if spread.notna().any() else math.nan}
        if truth is not None:
            row |= timeseries.compare_to_truth(s, truth_on_reference(s, truth))
        rows.append(row)
    return pd.DataFrame(rows).rename(columns={"rmse_m": "RMSE (m)", "bias_m": "bias (m)",
                                              "max_abs_m": "max |error| (m)", "n": "compared"})


def truth_by_method(series: Mapping[str, pd.DataFrame], truth: pd.DataFrame | None) -> dict[str, pd.DataFrame | None]:
    """:func:`truth_on_reference` for each method's series (all ``None`` without a truth)."""
    return {m: truth_on_reference(s, truth) if truth is not None else None for m, s in series.items()}


@dataclass
class ChosenModel:
    """The model a chapter applies (:func:`load_chosen_model`): the network as a one-member list (what
    :func:`ssl4sar.predict.predict_scenes` takes), its file, the inference settings, the runs table of the choice
    (``None`` when a checkpoint was given), the Markdown note of :func:`model_note` and the preset's minimum front
    length (m)."""

    members: list[Any]
    path: Path
    settings: Any
    choice: pd.DataFrame | None
    note: str
    min_front_length_m: float

    def predict_kwargs(self, tta: bool = True) -> dict[str, Any]:
        """Keyword arguments of :func:`ssl4sar.predict.predict_scenes`: the inference settings
        (:meth:`~ssl4sar.inference_settings.InferenceSettings.predict_kwargs`) and the minimum front length."""
        return {**self.settings.predict_kwargs(tta=tta), "min_front_length_m": self.min_front_length_m}


def load_chosen_model(layout: WorkLayout, cfg: Mapping[str, Any], preset_name: str,
                      checkpoint: str | Path | None = None, device: str = "auto", tta: bool | None = None
                      ) -> ChosenModel:
    """Load the model :func:`choose_checkpoint` picks on ``device`` (``"auto"``: CUDA when available) with the
    inference settings of the preset ``cfg``; ``tta`` ``None``: test-time augmentation except with the smoke preset."""
    from ssl4sar.inference_settings import inference_settings, resolve_device
    from ssl4sar.models.convert import load_model
    from ssl4sar.models.fast import for_inference

    path, choice = choose_checkpoint(layout, checkpoint)
    dev = resolve_device(device)
    model = for_inference(load_model(path, map_location=dev))
    settings = inference_settings(model.img_size, tta=(preset_name != "smoke") if tta is None else bool(tta),
                                  preset=cfg, device=dev)
    note = model_note(layout, [path], model.img_size, settings, preset_name)
    return ChosenModel([model], path, settings, choice, note, float(cfg["postprocess"]["min_front_length_m"]))


@dataclass
class RealPatchFronts:
    """What :func:`predict_real_patches` found: the prediction run, the table and figure panels of
    :func:`ssl4sar.prediction_writers.geographic_fronts`, the skipped patches (file name, reason; ``None`` when none)
    and the start of one EPSG:4326 front file (:func:`ssl4sar.prediction_writers.text_excerpt`)."""

    run: Any
    table: pd.DataFrame
    panels: list[dict[str, Any]]
    skipped: pd.DataFrame | None
    excerpt: str


def predict_real_patches(model: ChosenModel, out_dir: str | Path, folder: str | Path | None = None,
                         resolution_m: float | None = 20.0) -> RealPatchFronts:
    """Predict real CaFFe patches (``folder``: ``*_img.tif`` and ``metadata.csv``; default the seven shipped with the
    package) afresh into ``out_dir`` at ``resolution_m`` (m/px; ``None``: their own) without test-time augmentation,
    the fronts also in EPSG:4326. :class:`FileNotFoundError` when the folder holds no patch."""
    from ssl4sar.data import samples
    from ssl4sar.predict import predict_scenes
    from ssl4sar.prediction_writers import geographic_fronts, text_excerpt

    real_dir = Path(folder) if folder is not None else samples.patches_dir()
    images = sorted(real_dir.glob("*_img.tif"))
    if not images:   # never skipped silently: the patches ship with the package
        raise FileNotFoundError(f"{real_dir}: no real CaFFe patches (*_img.tif); check the parameter real_samples_dir")
    run = predict_scenes(model.members, images, out_dir, replace=True, resolution_m=resolution_m, to_wgs84=True,
                         overlay=False, **model.predict_kwargs(tta=False))
    table, panels = geographic_fronts(run.results, real_dir / "metadata.csv")
    skipped = (pd.DataFrame([(Path(p).name, r) for p, r in run.skipped], columns=["patch", "reason"])
               if run.skipped else None)
    example = next((r for r in run.results if r.n_front_pixels), run.results[0])
    return RealPatchFronts(run, table, panels, skipped, text_excerpt(example.outputs["front_wgs84"], 700,
                                                                      with_length=False))
