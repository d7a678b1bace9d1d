"""The time-series study of chapter 7: a model's fronts over a georeferenced series, measured and compared with the
truth of a synthetic series, next to the true front masks sent through the same path.

:mod:`ssl4sar.timeseries` measures front positions (box and centreline methods); this module holds what the chapter
does with them: :func:`read_series` (the scenes, the first scene, the truth, the true front masks of a series folder),
:func:`plot_predicted_fronts`, :func:`measure_series` (both methods, written and scored), :func:`masks_upper_bound`,
:func:`time_series_accuracy` and the truth re-referenced to a series' first date (:func:`truth_on_reference`).
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
from ssl4sar.io import write_text_atomic

__all__ = [
    "SeriesFolder",
    "masks_upper_bound",
    "measure_series",
    "plot_positions",
    "plot_predicted_fronts",
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
