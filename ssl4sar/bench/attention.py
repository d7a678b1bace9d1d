"""Which attention kernel PyTorch picks for each window-attention block of the fast path on this device.

``scaled_dot_product_attention`` chooses among its kernels (flash, memory-efficient, cuDNN, math) per call, from the
arguments' device, dtype, shapes, strides and whether they need gradients, and falls back to the math kernel without
a warning. The math kernel materialises every window's attention matrix, in float32 for bf16 inputs. A fast path
that silently lands there is slow, so the benchmark records the choice (``attention_backends`` in ``bench.json``):
until 014915f, seven of the paper network's twelve blocks ran the math kernel on a GPU because of one mask's strides.

:func:`attention_backends` runs one forward pass of the preset's network on the fast path, records the arguments of
every attention call and asks PyTorch's selector (``torch._fused_sdp_choice``, what SDPA itself calls) for each:
once as in training (gradients on, the position-bias mask needs one) and once as in inference (no gradients, cached
bias). It reports what PyTorch *would* run; it times nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["attention_backends", "backends_line"]


def _backend_name(choice: int) -> str:
    from torch.nn.attention import SDPBackend

    return SDPBackend(choice).name.lower()


@contextmanager
def _recording(device_type: str, out: list[str]) -> Iterator[None]:
    """Inside: every ``F.scaled_dot_product_attention`` call appends the backend PyTorch selects for its arguments
    (cast to the autocast dtype first, as autocast does at the call) and then runs as usual."""
    real = F.scaled_dot_product_attention

    def spy(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor | None = None,
            dropout_p: float = 0.0, is_causal: bool = False, scale: float | None = None, **kwargs: Any) -> torch.Tensor:
        args = [q, k, v, attn_mask]
        if torch.is_autocast_enabled(device_type):
            dtype = torch.get_autocast_dtype(device_type)
            args = [t.to(dtype) if t is not None and t.is_floating_point() else t for t in args]
        out.append(_backend_name(torch._fused_sdp_choice(*args, dropout_p, is_causal, scale=scale)))
        return real(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal, scale=scale, **kwargs)

    F.scaled_dot_product_attention = spy
    try:
        yield
    finally:
        F.scaled_dot_product_attention = real


def attention_backends(model_config: Mapping[str, Any], device: str | torch.device, *, batch_size: int = 1,
                       seed: int = 0) -> dict[str, Any]:
    """The SDPA kernel of every window-attention block of ``model_config``'s network on the fast path of ``device``.

    Training: the fast training path (:func:`ssl4sar.bench.paths.fast_training_path`), train mode, gradients on.
    Inference: the fast inference path (:func:`ssl4sar.bench.paths.fast_path`), eval mode, no gradients. Both with
    the path's autocast dtype and ``batch_size`` random images (the choice does not depend on the values).

    Returns ``device``, ``blocks`` (one dict per block: ``stage``, ``block``, ``shifted``, ``heads``, ``training``,
    ``inference``: a backend name such as ``efficient_attention``, ``flash_attention``, ``cudnn_attention`` or
    ``math``) and ``counts`` (``{"training": {backend: blocks}, "inference": {...}}``).
    """
    from ssl4sar.bench.paths import fast_path, fast_training_path
    from ssl4sar.models.fast import autocast
    from ssl4sar.models.tyrion import Tyrion

    dev = torch.device(device)
    torch.manual_seed(seed)
    model = Tyrion.from_config(dict(model_config))
    size = int(model.img_size)
    x = torch.rand(int(batch_size), int(model.in_chans), size, size, generator=torch.Generator().manual_seed(seed))
    x = x.to(dev)
    choices: dict[str, list[str]] = {"training": [], "inference": []}
    for mode, path in (("training", fast_training_path(dev)), ("inference", fast_path(dev))):
        prepared = path.prepare(model, dev)
        prepared.train(mode == "training")
        with _recording(dev.type, choices[mode]), torch.set_grad_enabled(mode == "training"), \
                autocast(dev.type, path.amp_dtype(dev)):
            prepared(x)
    info = [{"stage": s, "block": b, "shifted": bool(any(blk.shift_size)), "heads": int(blk.attn.num_heads)}
            for s, stage in enumerate(model.encoder.layers) for b, blk in enumerate(stage.blocks)]
    if any(len(c) != len(info) for c in choices.values()):
        raise RuntimeError(f"{len(info)} attention blocks but {[len(c) for c in choices.values()]} attention calls: "
                           "the model no longer runs one scaled_dot_product_attention per block")
    blocks = [{**b, "training": t, "inference": i} for b, t, i in zip(info, choices["training"], choices["inference"])]
    return {"device": str(dev), "blocks": blocks,
            "counts": {mode: dict(Counter(c)) for mode, c in choices.items()}}


def backends_line(result: Mapping[str, Any]) -> str:
    """One line for the report: ``training: efficient_attention ×12; inference: cudnn_attention ×12``."""
    parts = []
    for mode in ("training", "inference"):
        counts = result.get("counts", {}).get(mode, {})
        parts.append(f"{mode}: " + ", ".join(f"{name} ×{n}" for name, n in sorted(counts.items())))
    return "; ".join(parts)
