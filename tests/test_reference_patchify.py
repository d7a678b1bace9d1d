"""OptSimMIM target layout and masking rule against the official code (fixture ``patchify.json``).

Every input and expected value is read from the fixture file (see its ``how_to_check``): the token layout of the
14-band optical target must equal lightly's ``patchify`` output that the reference uses, and the masking must keep
``int(N·(1 − ratio))`` tokens and never mask token 0. The fixture's own random draw is reproduced too when torch's
generator gives the same numbers (same seed, CPU).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch

from ssl4sar.pretrain.optsimmim import OptSimMIM, patchify, random_token_mask, token_mask, unpatchify

pytestmark = pytest.mark.reference


@pytest.fixture(scope="module")
def fixture(reference_dir: Path) -> dict:
    return json.loads((reference_dir / "patchify.json").read_text())


def _fixture_input(fx: dict) -> torch.Tensor:
    """Build the input the fixture describes: ``x = arange(C*H*W) reshaped to (B, C, H, W) …``."""
    m = re.search(r"arange\((\d+)\s*\*\s*(\d+)\s*\*\s*(\d+)\)\s*reshaped to \((\d+),\s*(\d+),\s*(\d+),\s*(\d+)\)",
                  fx["input"])
    assert m, f"unexpected input description: {fx['input']}"
    c, h, w, *shape = (int(v) for v in m.groups())
    assert math.prod(shape) == c * h * w
    return torch.arange(c * h * w, dtype=torch.float64).reshape(*shape)


def test_patchify_layout_matches_reference(fixture: dict) -> None:
    x = _fixture_input(fixture)
    tokens = patchify(x, int(fixture["patchify_patch_size"]))
    expected = torch.tensor(fixture["tokens"], dtype=torch.float64).reshape(fixture["tokens_shape"])
    assert tuple(tokens.shape) == tuple(fixture["tokens_shape"])
    assert torch.equal(tokens, expected)
    # and the inverse restores the image
    p = int(fixture["patchify_patch_size"])
    grid = (x.shape[-2] // p, x.shape[-1] // p)
    assert torch.equal(unpatchify(tokens, p, x.shape[1], grid), x)


def test_module_target_uses_reference_layout(fixture: dict) -> None:
    """The target OptSimMIM gathers is the reference layout at the masked indices."""
    x = _fixture_input(fixture).float()
    p = int(fixture["patchify_patch_size"])
    side = x.shape[-1]
    cfg = {"img_size": side, "patch_size": p, "embed_dim": 32, "depths": [1], "num_heads": [1],
           "window_size": side // p}
    module = OptSimMIM(cfg, n_optical=x.shape[1])
    expected = torch.tensor(fixture["tokens"], dtype=torch.float32).reshape(fixture["tokens_shape"])
    idx = torch.tensor([[3, 1]])
    assert torch.equal(module.target(x, idx), expected[:, [3, 1]])


def test_random_token_mask_counts_and_token_zero(fixture: dict) -> None:
    spec = fixture["random_token_mask"]
    batch, n = spec["size"]
    ratio = spec["mask_ratio"]
    expected_keep = len(spec["idx_keep"][0])
    expected_mask = len(spec["idx_mask"][0])
    for seed in range(20):
        g = torch.Generator().manual_seed(seed)
        keep, masked = random_token_mask((batch, n), ratio, generator=g)
        assert keep.shape == (batch, expected_keep) and masked.shape == (batch, expected_mask)
        assert keep.shape[1] == int(n * (1 - ratio))
        assert (keep[:, 0] == 0).all() and not (masked == 0).any()
        for b in range(batch):
            assert sorted(keep[b].tolist() + masked[b].tolist()) == list(range(n))
        assert token_mask(masked, n).sum(dim=1).tolist() == [expected_mask] * batch
    # the reference's own indices obey the same rule
    for keep_row, mask_row in zip(spec["idx_keep"], spec["idx_mask"]):
        assert 0 in keep_row and 0 not in mask_row
        assert sorted(keep_row + mask_row) == list(range(n))


def test_random_token_mask_reproduces_reference_draw(fixture: dict) -> None:
    spec = fixture["random_token_mask"]
    torch.manual_seed(int(spec["torch_manual_seed"]))
    keep, masked = random_token_mask(tuple(spec["size"]), spec["mask_ratio"])
    assert keep.tolist() == spec["idx_keep"]
    assert masked.tolist() == spec["idx_mask"]
