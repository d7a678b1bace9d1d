"""Fine-tuning losses of TYRION (spec §6, §15.3): label-smoothed cross-entropy, Dice, and their combination.

All functions take logits (B, K, H, W) (any floating dtype, any device) and integer class maps (B, H, W)
with values in 0 … K−1 (0 = NA is a class like the others, as in the official code). They return 0-d
tensors on the logits' device, differentiable with respect to the logits.

The combined loss reproduces ``TyrionWrapper.calculate_loss``: the network sees the context crop (side C)
and the loss is taken on the full context prediction *and* on its centre crop of side T = C/2
("target", the official "image"); centre pixels therefore count twice::

    L = w_ce_t · CE(centre) + w_ce_c · CE(context) + w_dice_t · Dice(centre) + w_dice_c · Dice(context)

with all four weights 0.5 in the paper (preset key ``finetune.loss_weights``).

``per_sample=True`` gives each sample's loss as if it were a batch of one, shape (B,): what the official
validation computes window by window (its batch size is 1), in one pass.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F

from ssl4sar.config import paper_preset

__all__ = [
    "DEFAULT_LOSS_WEIGHTS",
    "LOSS_PARTS",
    "center_crop",
    "dice_loss",
    "label_smoothed_cross_entropy",
    "tyrion_loss",
]

#: Names of the four parts of :func:`tyrion_loss` (also the keys of ``finetune.loss_weights``).
LOSS_PARTS = ("ce_target", "ce_context", "dice_target", "dice_context")
#: The paper's weights (``weights_classification`` = ``weights_segmentation`` = [0.5, 0.5]).
DEFAULT_LOSS_WEIGHTS: dict[str, float] = paper_preset().finetune.loss_weights.to_dict()  # 0.5 each (§6)


def _check(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Validate shapes / dtypes / class range; return ``target`` as int64."""
    if logits.ndim != 4:
        raise ValueError(f"logits must be (B, K, H, W), got shape {tuple(logits.shape)}")
    if not torch.is_floating_point(logits):
        raise TypeError(f"logits must be floating point, got {logits.dtype}")
    b, k, h, w = logits.shape
    if tuple(target.shape) != (b, h, w):
        raise ValueError(f"target must be (B, H, W) = {(b, h, w)} to match logits {tuple(logits.shape)}, "
                         f"got {tuple(target.shape)}")
    if torch.is_floating_point(target) or target.dtype == torch.bool or torch.is_complex(target):
        raise TypeError(f"target must hold integer class ids, got {target.dtype}")
    if k < 2:
        raise ValueError(f"need at least 2 classes, logits have {k}")
    target = target.long()
    # meta tensors (FLOP and traffic counting) hold no values to check
    if target.numel() and target.device.type != "meta":
        lo, hi = torch.stack(torch.aminmax(target)).tolist()  # one host sync on a GPU
        if lo < 0 or hi >= k:
            raise ValueError(f"target class ids must lie in 0 … {k - 1}, found {lo} … {hi}")
    return target


def _one_hot(target: torch.Tensor, k: int, dtype: torch.dtype) -> torch.Tensor:
    """(B, H, W) int64 → (B, K, H, W) one-hot of ``dtype``."""
    return F.one_hot(target, num_classes=k).permute(0, 3, 1, 2).to(dtype)


def label_smoothed_cross_entropy(logits: torch.Tensor, target: torch.Tensor,
                                 eps: float = paper_preset().finetune.label_smoothing,
                                 per_sample: bool = False) -> torch.Tensor:
    """Cross-entropy with the official label smoothing, mean over all B·H·W pixels.

    The soft target puts ``1 − eps`` on the true class and ``eps / (K − 1)`` on each other class (not
    PyTorch's ``eps / K`` convention); the loss per pixel is ``−Σ_k q_k · log_softmax_k``.

    Args:
        logits: (B, K, H, W) raw scores.
        target: (B, H, W) integer class ids in 0 … K−1.
        eps: smoothing mass moved away from the true class (0.1 in the paper).
        per_sample: the mean over each sample's H·W pixels, shape (B,).
    """
    return _cross_entropy(logits, _check(logits, target), eps, per_sample)


def _cross_entropy(logits: torch.Tensor, target: torch.Tensor, eps: float, per_sample: bool) -> torch.Tensor:
    k = logits.shape[1]
    one_hot = _one_hot(target, k, logits.dtype)
    soft = one_hot * (1.0 - eps) + (1.0 - one_hot) * (eps / (k - 1))
    log_prob = F.log_softmax(logits, dim=1)
    per_pixel = -(soft * log_prob).sum(dim=1)
    return per_pixel.mean(dim=(1, 2)) if per_sample else per_pixel.mean()


def dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1e-5, per_sample: bool = False) -> torch.Tensor:
    """Soft Dice loss with squared denominators and batch-level sums (official ``OGDiceLoss``).

    With p = softmax(logits) and t = one-hot(target), for each class c, summing over the whole batch::

        dice_c = 1 − (2 Σ p_c t_c + eps) / (Σ p_c² + Σ t_c² + eps)

    and the loss is the mean of ``dice_c`` over the K classes. A class absent from the target everywhere
    still contributes ``1 − eps / (Σ p_c² + eps)`` (close to 1 unless the network predicts it nowhere).

    Args:
        logits: (B, K, H, W) raw scores.
        target: (B, H, W) integer class ids in 0 … K−1.
        eps: smoothing constant (1e-5).
        per_sample: each sample's Dice loss with sums over its own pixels only, shape (B,).
    """
    return _dice(logits, _check(logits, target), eps, per_sample)


def _dice(logits: torch.Tensor, target: torch.Tensor, eps: float, per_sample: bool) -> torch.Tensor:
    k = logits.shape[1]
    prob = torch.softmax(logits, dim=1)
    one_hot = _one_hot(target, k, logits.dtype)
    dims = (2, 3) if per_sample else (0, 2, 3)
    intersect = (prob * one_hot).sum(dim=dims)
    denom = (prob * prob).sum(dim=dims) + (one_hot * one_hot).sum(dim=dims)
    per_class = 1.0 - (2.0 * intersect + eps) / (denom + eps)
    return per_class.mean(dim=-1)


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """Centre ``size`` × ``size`` crop of the last two axes (torchvision ``CenterCrop`` offsets)."""
    h, w = x.shape[-2], x.shape[-1]
    if size > h or size > w:
        raise ValueError(f"crop size {size} px larger than the input {h} × {w} px")
    top = int(round((h - size) / 2.0))
    left = int(round((w - size) / 2.0))
    return x[..., top:top + size, left:left + size]


def tyrion_loss(
    logits_context: torch.Tensor,
    mask_context: torch.Tensor,
    weights: Mapping[str, float] | None = None,
    label_smoothing: float = paper_preset().finetune.label_smoothing,
    dice_eps: float = 1e-5,
    per_sample: bool = False,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The fine-tuning loss on a context prediction and its centre crop (spec §6).

    Args:
        logits_context: (B, K, C, C) logits for the context crop (C = 512 px in the paper).
        mask_context: (B, C, C) class ids of the context crop.
        weights: ``{"ce_target", "ce_context", "dice_target", "dice_context"}`` → weight (preset key
            ``finetune.loss_weights``); defaults to 0.5 each. Missing or unknown keys raise ``ValueError``.
        label_smoothing: ``eps`` of :func:`label_smoothed_cross_entropy`.
        dice_eps: ``eps`` of :func:`dice_loss`.
        per_sample: every sample's loss as a batch of one (the official validation's), shape (B,).

    Returns:
        ``(total, parts)``: the weighted sum and the four unweighted parts keyed by :data:`LOSS_PARTS`.
        The centre crop has side T = C / 2 (C must be even). The targets are checked once (one host sync).
    """
    weights = dict(DEFAULT_LOSS_WEIGHTS if weights is None else weights)
    if set(weights) != set(LOSS_PARTS):
        raise ValueError(f"loss weights must have exactly the keys {list(LOSS_PARTS)}, got {sorted(weights)}")
    mask_context = _check(logits_context, mask_context)
    c = logits_context.shape[-1]
    if logits_context.shape[-2] != c or c % 2:
        raise ValueError(f"context logits must be square with an even side, got {tuple(logits_context.shape)}")
    t = c // 2
    logits_target = center_crop(logits_context, t)
    mask_target = center_crop(mask_context, t)
    parts = {
        "ce_target": _cross_entropy(logits_target, mask_target, label_smoothing, per_sample),
        "ce_context": _cross_entropy(logits_context, mask_context, label_smoothing, per_sample),
        "dice_target": _dice(logits_target, mask_target, dice_eps, per_sample),
        "dice_context": _dice(logits_context, mask_context, dice_eps, per_sample),
    }
    total = torch.zeros(parts["ce_context"].shape, dtype=logits_context.dtype, device=logits_context.device)
    for name in LOSS_PARTS:
        total = total + float(weights[name]) * parts[name]
    return total, parts
