"""What identifies a network's weights: a SHA-256 over its state, shared by the prediction records (which models
made a scene's outputs, :func:`ssl4sar.prediction_records.models_sha256`) and the record of a run's initial weights
(:func:`ssl4sar.models.initialise.weights_fingerprint`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

__all__ = ["update_with_state"]


def update_with_state(digest: Any, state: Mapping[str, torch.Tensor]) -> None:
    """Feed every entry of ``state`` to ``digest`` (a :mod:`hashlib` object), in the mapping's order: its name,
    dtype and shape, then its values in row-major order, read from the CPU. So the digest does not depend on the
    device or the memory format (channels-last) of the tensors, and changes with any value, dtype or shape."""
    for name, tensor in state.items():
        tensor = tensor.detach()
        digest.update(f"{name} {tensor.dtype} {tuple(tensor.shape)}\n".encode())
        digest.update(tensor.to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
