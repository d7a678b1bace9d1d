"""The pretraining chapters' tables: recipe next to the paper's, findings against the baseline, per-band errors."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from ssl4sar import pretrain_report
from ssl4sar.config import load_preset


def test_recipe_table_per_method() -> None:
    paper, demo = load_preset("paper"), load_preset("demo")
    sim = pretrain_report.recipe_table("optsimmim", demo, paper, 12, "scratch")
    assert sim.loc["tokens per crop (masked)", "paper"] == "16384 (4916, 30 %)"  # 512 px, 4 px tokens, 30 %
    assert sim.loc["values predicted per masked token", "paper"] == 224
    assert sim.loc["epochs", "this run (demo)"] == 12 and sim.loc["initial weights", "this run (demo)"] == "scratch"
    tr = pretrain_report.recipe_table("opttranslator", demo, paper, 12, "scratch")
    assert tr.loc["targets per crop (pixels × bands)", "paper"] == "262144 × 14"
    assert "tokens per crop (masked)" not in tr.index


def test_learning_findings_and_per_band_errors() -> None:
    epochs = pd.DataFrame({"val/loss": [0.30, 0.25, 0.21]})
    text = pretrain_report.learning_findings(epochs, 0.21, 0.25)
    assert "**0.2100** against **0.2500**" in text and "(-16.0 %)" in text and "**below**" in text
    assert "has not learned more" in pretrain_report.learning_findings(epochs, 0.26, 0.25)
    optical = torch.full((2, 14, 4, 4), 0.5)
    prediction = optical + 0.1
    means = torch.full((14,), 0.3)
    bands = pretrain_report.per_band_errors(prediction, optical, means)
    assert len(bands) == 14 and bands.index.name == "band"   # one row per band: the table fits the page
    assert bands["network L1"].tolist() == pytest.approx([0.1] * 14)
    assert bands["band-mean L1"].tolist() == pytest.approx([0.2] * 14)
    assert bands["network better by (%)"].tolist() == pytest.approx([50.0] * 14)
