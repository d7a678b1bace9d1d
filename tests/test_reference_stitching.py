"""Overlapping-window Gaussian stitching against the official TYRION code (fixture ``stitching.json/.npz``).

The fixture's stand-in network is given as a formula in ``stitching.json`` (features, weights W and bias b); it is
parsed from that text, never copied into this file.
"""

from __future__ import annotations

import ast
import json
import re

import numpy as np
import pytest
import torch

from ssl4sar.inference import sliding_window_probabilities

pytestmark = pytest.mark.reference


def _stand_in(description: str):
    """Build ``logits[k] = Σ_f W[k, f]·feat_f(x) + b[k]`` from the fixture's formula text."""
    w_text = re.search(r"W\s*=\s*(\[\[.*?\]\])", description)
    b_text = re.search(r"b\s*=\s*(\[[^\[\]]*\])", description)
    f_text = re.search(r"feat\s*=\s*\[(.*?)\]", description)
    assert w_text and b_text and f_text, f"cannot parse the stand-in network: {description}"
    weights = torch.tensor(ast.literal_eval(w_text.group(1)), dtype=torch.float64)
    bias = torch.tensor(ast.literal_eval(b_text.group(1)), dtype=torch.float64)
    exprs = []
    for term in f_text.group(1).split(","):
        expr = re.sub(r"(\d)\s*x", r"\1*x", term.strip())  # "6x" → "6*x"
        expr = re.sub(r"\b(sin|cos|exp|tanh)\(", r"torch.\1(", expr)
        exprs.append(compile(expr, "<feature>", "eval"))
    assert weights.shape == (bias.numel(), len(exprs))

    def model(x: torch.Tensor) -> torch.Tensor:
        xd = x[:, 0].double()
        feats = torch.stack([eval(e, {"torch": torch}, {"x": xd}) for e in exprs], dim=1)
        logits = torch.einsum("kf,bfhw->bkhw", weights, feats) + bias[None, :, None, None]
        return logits.float()

    return model


def test_stitched_probabilities_match_reference(reference_dir):
    meta = json.loads((reference_dir / "stitching.json").read_text())
    data = np.load(reference_dir / "stitching.npz")
    img, ref_prob, ref_argmax = data["image"], data["probabilities"], data["argmax"]
    model = _stand_in(meta["stand_in_network"])
    calls = []

    def counting(x):
        calls.append(x.shape[0])
        return model(x)

    prob = sliding_window_probabilities(counting, img, context_size=512, stride=128, batch_size=8)
    assert sum(calls) == meta["window_count"]
    assert prob.shape == ref_prob.shape
    assert np.abs(prob - ref_prob).max() < 1e-5
    ours = prob.argmax(axis=0)
    top2 = np.sort(ref_prob, axis=0)[-2:]
    decided = (top2[1] - top2[0]) >= 1e-6
    assert np.array_equal(ours[decided], ref_argmax[decided])
