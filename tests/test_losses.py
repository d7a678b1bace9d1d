"""Unit tests of the fine-tuning losses (ssl4sar.losses), checked against independent computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ssl4sar.losses import (
    DEFAULT_LOSS_WEIGHTS,
    LOSS_PARTS,
    center_crop,
    dice_loss,
    label_smoothed_cross_entropy,
    tyrion_loss,
)


def _random_case(b: int = 2, k: int = 4, h: int = 8, w: int = 8, seed: int = 0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    logits = 3.0 * torch.randn(b, k, h, w, generator=g, dtype=dtype)
    target = torch.randint(0, k, (b, h, w), generator=g)
    return logits, target


def _numpy_dice(logits: np.ndarray, target: np.ndarray, eps: float) -> float:
    """Loop-by-loop implementation of the official OGDiceLoss for comparison."""
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    k = logits.shape[1]
    total = 0.0
    for c in range(k):
        t = (target == c).astype(np.float64)
        pc = p[:, c]
        total += 1.0 - (2.0 * np.sum(pc * t) + eps) / (np.sum(pc * pc) + np.sum(t * t) + eps)
    return total / k


def test_ce_without_smoothing_is_plain_cross_entropy() -> None:
    logits, target = _random_case()
    torch.testing.assert_close(label_smoothed_cross_entropy(logits, target, eps=0.0),
                               F.cross_entropy(logits, target), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("eps", [0.1, 0.3])
def test_ce_smoothing_puts_eps_over_k_minus_1_on_other_classes(eps: float) -> None:
    """Ours ≙ PyTorch's label_smoothing s with s/K = eps/(K−1), i.e. s = eps·K/(K−1) — not s = eps."""
    logits, target = _random_case(k=4)
    k = logits.shape[1]
    ours = label_smoothed_cross_entropy(logits, target, eps=eps)
    torch.testing.assert_close(ours, F.cross_entropy(logits, target, label_smoothing=eps * k / (k - 1)),
                               rtol=1e-12, atol=1e-12)
    assert not torch.isclose(ours, F.cross_entropy(logits, target, label_smoothing=eps))


def test_ce_of_uniform_logits_is_log_k() -> None:
    logits = torch.zeros(1, 4, 3, 3, dtype=torch.float64)
    target = torch.tensor([[[0, 1, 2], [3, 0, 1], [2, 3, 0]]])
    assert label_smoothed_cross_entropy(logits, target).item() == pytest.approx(math.log(4), rel=1e-14)


def test_ce_hand_computed_pixel() -> None:
    # one pixel, K = 3, logits (0, ln 2, ln 5): softmax = (1/8, 2/8, 5/8); target class 2, eps 0.1
    logits = torch.tensor([0.0, math.log(2), math.log(5)], dtype=torch.float64).reshape(1, 3, 1, 1)
    target = torch.tensor([[[2]]])
    expected = -(0.9 * math.log(5 / 8) + 0.05 * math.log(1 / 8) + 0.05 * math.log(2 / 8))
    assert label_smoothed_cross_entropy(logits, target, 0.1).item() == pytest.approx(expected, rel=1e-14)


@pytest.mark.parametrize("seed", [0, 1])
def test_dice_matches_loop_implementation(seed: int) -> None:
    logits, target = _random_case(b=3, k=4, h=6, w=5, seed=seed)
    target[target == 3] = 1  # make one class absent everywhere
    expected = _numpy_dice(logits.numpy(), target.numpy(), 1e-5)
    assert dice_loss(logits, target).item() == pytest.approx(expected, rel=1e-13)


def test_dice_perfect_prediction_and_absent_class() -> None:
    target = torch.tensor([[[0, 1], [2, 2]]])
    logits = 50.0 * F.one_hot(target, 4).permute(0, 3, 1, 2).double()
    # classes 0-2: ≈ 0; class 3 (absent, predicted nowhere): 1 − eps / (Σp² + eps) with tiny Σp²
    p3 = torch.softmax(logits, dim=1)[:, 3]
    s = float((p3 * p3).sum())
    expected = (1.0 - 1e-5 / (s + 1e-5)) / 4
    assert dice_loss(logits, target).item() == pytest.approx(expected, abs=1e-12)
    # an absent class that the network does predict costs (almost) a full 1/K
    logits2 = logits.clone()
    logits2[0, 3, 0, 0] = 100.0
    assert dice_loss(logits2, target).item() > 0.24


def test_losses_keep_dtype_device_and_gradients() -> None:
    logits, target = _random_case(dtype=torch.float32)
    logits.requires_grad_(True)
    for fn in (label_smoothed_cross_entropy, dice_loss):
        value = fn(logits, target)
        assert value.dtype == torch.float32 and value.device == logits.device and value.ndim == 0
        (grad,) = torch.autograd.grad(value, logits)
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_input_validation() -> None:
    logits, target = _random_case()
    with pytest.raises(ValueError, match="0 … 3"):
        label_smoothed_cross_entropy(logits, torch.full_like(target, 4))
    with pytest.raises(ValueError, match=r"target must be \(B, H, W\)"):
        dice_loss(logits, target[:, :4])
    with pytest.raises(TypeError, match="integer class ids"):
        dice_loss(logits, target.double())
    with pytest.raises(ValueError, match=r"\(B, K, H, W\)"):
        dice_loss(logits[0], target[0])


def test_center_crop_offsets() -> None:
    x = torch.arange(8 * 8).reshape(1, 8, 8)
    crop = center_crop(x, 4)
    assert crop[0, 0, 0].item() == 2 * 8 + 2 and crop.shape == (1, 4, 4)
    with pytest.raises(ValueError, match="larger"):
        center_crop(x, 9)


def test_tyrion_loss_combines_centre_and_context() -> None:
    logits, target = _random_case(b=2, k=4, h=16, w=16, seed=3)
    weights = {"ce_target": 0.1, "ce_context": 0.2, "dice_target": 0.3, "dice_context": 0.4}
    total, parts = tyrion_loss(logits, target, weights=weights)
    assert tuple(parts) == LOSS_PARTS
    c_logits, c_target = logits[:, :, 4:12, 4:12], target[:, 4:12, 4:12]
    expected = {
        "ce_target": label_smoothed_cross_entropy(c_logits, c_target),
        "ce_context": label_smoothed_cross_entropy(logits, target),
        "dice_target": dice_loss(c_logits, c_target),
        "dice_context": dice_loss(logits, target),
    }
    for name in LOSS_PARTS:
        torch.testing.assert_close(parts[name], expected[name], rtol=0, atol=0)
    manual = sum(weights[n] * expected[n].item() for n in LOSS_PARTS)
    assert total.item() == pytest.approx(manual, rel=1e-14)
    default_total, _ = tyrion_loss(logits, target)
    assert default_total.item() == pytest.approx(0.5 * sum(v.item() for v in expected.values()), rel=1e-14)
    assert DEFAULT_LOSS_WEIGHTS == {n: 0.5 for n in LOSS_PARTS}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_per_sample_losses_are_each_sample_as_a_batch_of_one(dtype: torch.dtype) -> None:
    logits, target = _random_case(b=3, h=16, w=16, seed=5, dtype=dtype)
    target[1] = 2                                       # one sample with a single class: Dice of absent classes
    rel = 1e-12 if dtype == torch.float64 else 1e-6
    total, parts = tyrion_loss(logits, target, per_sample=True)
    assert total.shape == (3,) and all(v.shape == (3,) for v in parts.values())
    for i in range(3):
        one_total, one_parts = tyrion_loss(logits[i:i + 1], target[i:i + 1])
        assert total[i].item() == pytest.approx(one_total.item(), rel=rel)
        for name in LOSS_PARTS:
            assert parts[name][i].item() == pytest.approx(one_parts[name].item(), rel=rel), (i, name)
    ce = label_smoothed_cross_entropy(logits, target, per_sample=True)
    dice = dice_loss(logits, target, per_sample=True)
    torch.testing.assert_close(ce, parts["ce_context"], rtol=0, atol=0)
    torch.testing.assert_close(dice, parts["dice_context"], rtol=0, atol=0)
    assert dice[1].item() != pytest.approx(dice_loss(logits, target).item(), rel=1e-3)   # not the batch's sums


def test_out_of_range_targets_name_the_range_found() -> None:
    logits, target = _random_case(h=6, w=6)
    target[0, 0, 0], target[1, 2, 3] = -1, 7
    with pytest.raises(ValueError, match="found -1 … 7"):
        tyrion_loss(logits, target)
    with pytest.raises(ValueError, match="found -1 … 7"):
        tyrion_loss(logits, target, per_sample=True)


def test_tyrion_loss_validation() -> None:
    logits, target = _random_case(h=6, w=6)
    with pytest.raises(ValueError, match="exactly the keys"):
        tyrion_loss(logits, target, weights={"ce_target": 1.0})
    odd_logits, odd_target = _random_case(h=7, w=7)
    with pytest.raises(ValueError, match="even side"):
        tyrion_loss(odd_logits, odd_target)
