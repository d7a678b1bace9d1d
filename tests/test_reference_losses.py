"""The losses reproduce the official ClassWiseSmoothCE / OGDiceLoss / TyrionWrapper combination (losses.json)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ssl4sar.losses import LOSS_PARTS, dice_loss, label_smoothed_cross_entropy, tyrion_loss

pytestmark = pytest.mark.reference

RTOL = {torch.float64: 1e-9, torch.float32: 1e-5}  # the fixture's how_to_check


@pytest.fixture(scope="module")
def case(reference_dir: Path) -> tuple[dict, dict[str, np.ndarray]]:
    meta = json.loads((reference_dir / "losses.json").read_text())
    arrays = np.load(reference_dir / "losses.npz")
    return meta, {k: arrays[k] for k in arrays.files}


def _rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_losses_match_official(case: tuple[dict, dict[str, np.ndarray]], dtype: torch.dtype) -> None:
    meta, arrays = case
    logits = torch.from_numpy(arrays["logits"]).to(dtype)
    target = torch.from_numpy(arrays["target"])
    ce = label_smoothed_cross_entropy(logits, target, eps=0.1)
    dice = dice_loss(logits, target)
    assert ce.dtype == dtype and dice.dtype == dtype
    assert _rel(ce.item(), meta["cross_entropy_label_smoothed"]) <= RTOL[dtype]
    assert _rel(dice.item(), meta["dice"]) <= RTOL[dtype]

    ctx_logits = torch.from_numpy(arrays["context_logits"]).to(dtype)
    ctx_target = torch.from_numpy(arrays["context_target"])
    total, parts = tyrion_loss(ctx_logits, ctx_target)
    assert set(parts) == set(LOSS_PARTS)
    assert _rel(total.item(), meta["combined_centre_and_context"]) <= RTOL[dtype]


def test_fixture_has_an_absent_class(case: tuple[dict, dict[str, np.ndarray]]) -> None:
    """The fixture exercises the Dice term of a class that is absent from the target (class 3)."""
    _, arrays = case
    k = arrays["logits"].shape[1]
    present = set(np.unique(arrays["target"]).tolist())
    assert present < set(range(k))
