"""Readers of Lightning's ``metrics.csv`` (written by :func:`ssl4sar.training.build_loggers`): per step, per epoch."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def read_metrics_csv(path: str | Path) -> Any:
    """Read a Lightning ``metrics.csv`` and merge its rows per ``(epoch, step)`` → ``pandas.DataFrame``."""
    import pandas as pd

    df = pd.read_csv(path)
    keys = [k for k in ("epoch", "step") if k in df.columns]
    if not keys:
        return df
    return df.groupby(keys, as_index=False, sort=True).first()


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
