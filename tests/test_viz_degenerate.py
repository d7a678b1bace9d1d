"""Figures of the book on degenerate but legitimate outcomes: a constant bootstrap, a model without fronts."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ssl4sar import viz


def _summary(groups: list[str], means: list[float], lows: list[float], highs: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"group": groups, "mean_mde_m": means, "ci_low_m": lows, "ci_high_m": highs})


def test_annotator_comparison_with_constant_bootstrap_distribution() -> None:
    # a model that finds a front on one image only: every bootstrap replicate is the same mean up to rounding
    constant = 312.25 + np.arange(2000) % 3 * 1e-13
    pairs = pd.DataFrame({"group": ["human", "human", "model", "model"], "mde_m": [35.0, 41.0, 312.25, 312.25]})
    summary = _summary(["human", "model"], [38.0, 312.25], [34.0, 312.25], [42.0, 312.25])
    boot = {"human": np.random.default_rng(0).normal(38.0, 2.0, 2000), "model": constant}
    fig = viz.plot_annotator_comparison(pairs, summary, boot, human_groups=["human"])
    right = fig.axes[1]
    # the constant distribution is drawn as one spike at its value, not skipped
    assert any(np.allclose(line.get_xdata(), 312.25) for line in right.get_lines())
    plt.close(fig)


def test_annotator_comparison_without_any_model_front() -> None:
    pairs = pd.DataFrame({"group": ["human", "model"], "mde_m": [35.0, np.nan]})
    summary = _summary(["human", "model"], [35.0, np.nan], [33.0, np.nan], [37.0, np.nan])
    boot = {"human": np.full(100, 35.0), "model": np.full(100, np.nan)}
    fig = viz.plot_annotator_comparison(pairs, summary, boot, human_groups=["human"])
    assert len(fig.axes) == 2
    plt.close(fig)
