"""Execution paths the benchmarks compare: the official code's *reference path* and the library's *fast path*.

An :class:`ExecPath` names how a network runs: precision (``fp32`` / ``bf16`` autocast / ``auto``), timm's or the
fused SDPA window attention, channels-last convolutions, ``torch.compile``, whether sliding-window inference computes
only the kept centre of each window (:meth:`ssl4sar.models.tyrion.Tyrion.centre_logits`), windows per forward pass,
torch's thread count and, on CUDA, cuDNN's autotuning. :data:`REFERENCE` is what the official TYRION code does;
:func:`fast_path` is the library's default on a device.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from torch import nn

from ssl4sar.models.fast import (
    amp_dtype_for,
    cache_attention_bias,
    cudnn_autotuning,
    disable_fused_attention,
    optimize_for_device,
    set_channels_last,
)

__all__ = ["REFERENCE", "ExecPath", "fast_path", "fast_training_path", "path_settings", "path_threads", "runner_for",
           "prepare_on_path"]


@dataclass(frozen=True)
class ExecPath:
    """How a network runs in a benchmark.

    Attributes:
        name: label in the report (``reference``, ``fast``, ``fast-fp32`` …).
        precision: ``"fp32"``, ``"bf16"`` (autocast) or ``"auto"`` (bf16 where the device computes it natively,
            :func:`ssl4sar.models.fast.amp_dtype_for`).
        fused: fused SDPA window attention instead of timm's.
        channels_last: channels-last convolution weights and inputs.
        compile: ``torch.compile`` (falls back to eager on failure).
        centre_only: sliding-window inference computes only the kept centre of each window.
        batch: windows (inference) per forward pass; ``None``: the benchmark's batch.
        threads: torch intra-op threads while this path runs; ``None``: unchanged.
        polyphase: the decoder's ×2 upsampling convolutions in polyphase form
            (:meth:`ssl4sar.models.tyrion.Tyrion.set_polyphase_upsampling`), at inference and in training steps.
        workers: sliding-window forward passes running at the same time, sharing those threads
            (:func:`ssl4sar.inference.sliding_window_probabilities`); ``None``: the library's default
            (:func:`ssl4sar.inference.default_inference_workers`).
        cudnn_autotuning: on CUDA, cuDNN times its convolution algorithms per shape, in training steps and in
            sliding-window inference (:func:`ssl4sar.models.fast.cudnn_autotuning`), as the library does in both
            (:func:`ssl4sar.training.build_trainer`, :func:`ssl4sar.inference.sliding_window_probabilities`). No
            effect elsewhere. A path without it runs in a thread of its own (:func:`runner_for`).
    """

    name: str
    precision: str = "fp32"
    fused: bool = False
    channels_last: bool = False
    compile: bool = False
    centre_only: bool = False
    batch: int | None = None
    threads: int | None = None
    polyphase: bool = False
    workers: int | None = None
    cudnn_autotuning: bool = True

    def amp_dtype(self, device: str | torch.device) -> torch.dtype | None:
        """The autocast dtype of this path on ``device`` (``None``: float32)."""
        return amp_dtype_for(device, self.precision)

    def describe(self, device: str | torch.device) -> dict[str, Any]:
        """The settings as realised on ``device`` (JSON-ready)."""
        amp = self.amp_dtype(device)
        return {**asdict(self), "realised_precision": "bf16-mixed" if amp is torch.bfloat16 else "fp32"}

    def window_settings(self, device: str | torch.device, batch_size: int) -> dict[str, Any]:
        """This path's keyword arguments of :func:`ssl4sar.inference.sliding_window_probabilities` on ``device``
        (``batch_size``: windows per forward pass unless the path sets ``batch``); the scene's geometry (window,
        stride, σ) is the caller's."""
        return {"batch_size": self.batch or int(batch_size), "device": torch.device(device),
                "amp_dtype": self.amp_dtype(device), "centre_only": self.centre_only, "workers": self.workers,
                "cudnn_autotune": self.cudnn_autotuning}

    def prepare(self, model: nn.Module, device: str | torch.device) -> nn.Module:
        """``model`` on ``device`` with this path's attention, layout, upsampling and compilation, each switched on or
        off as the path says (:func:`prepare_on_path`); precision, decoding and batching are the caller's."""
        return prepare_on_path(model, device, fused=self.fused, channels_last=self.channels_last,
                               compile=self.compile, polyphase=self.polyphase)

    def with_(self, **changes: Any) -> ExecPath:
        """A copy with ``changes`` (e.g. ``fast.with_(name="fast-fp32", precision="fp32")``)."""
        return replace(self, **changes)


#: the official code: fp32, timm's attention, contiguous tensors, eager, full output of every window, batch 1
#: window per forward pass at inference (the official predict loop), one forward pass at a time, and no cuDNN
#: autotuning: its scripts build ``pl.Trainer`` without ``benchmark=`` and set no cuDNN flag, and Lightning then
#: leaves torch's default (off) alone (it has since version 1.6.4; the official environment pins 2.1.0)
REFERENCE = ExecPath("reference", batch=1, workers=1, cudnn_autotuning=False)


def fast_path(device: str | torch.device) -> ExecPath:
    """The library's fast path on ``device``: bf16 autocast where native (``auto``, with the patch embedding and the
    head in float32, :class:`ssl4sar.models.tyrion.Tyrion`), fused attention; at inference centre-only decoding,
    polyphase upsampling convolutions and the default number of parallel forward passes; channels-last on CUDA (on
    the measured CPUs it did not help, see the benchmark's ablation rows)."""
    cuda = torch.device(device).type == "cuda"
    return ExecPath("fast", precision="auto", fused=True, channels_last=cuda, centre_only=True, polyphase=True)


def fast_training_path(device: str | torch.device) -> ExecPath:
    """The fast path of a training step on ``device``: :func:`fast_path` with the decoder's upsampling in the official
    form, as the library trains (polyphase upsampling gave no gain in a CPU training step, 4.43 vs 4.41 s, because
    its backward costs what its forward saves; the benchmark's ``fast-polyphase`` ablation measures it elsewhere)."""
    return fast_path(device).with_(polyphase=False)


def prepare_on_path(model: nn.Module, device: str | torch.device, *, fused: bool, channels_last: bool | None,
                    compile: bool = False, polyphase: bool = False, compile_mode: str | None = "default") -> nn.Module:
    """Move ``model`` to ``device`` and set each execution switch to exactly the given value; returns ``model``.

    :func:`ssl4sar.models.fast.optimize_for_device` only switches fast paths *on*; a benchmark must also switch
    them *off*, because some models arrive with them on (the pretraining modules build their network with fused
    attention; a model prepared by :func:`ssl4sar.models.fast.for_inference` has polyphase upsampling), and a
    reference path that ran fused attention would not be the official code.
    """
    if not fused:
        disable_fused_attention(model)
    if not polyphase:
        for m in model.modules():
            if hasattr(m, "set_polyphase_upsampling"):
                m.set_polyphase_upsampling(False)
    if channels_last is False:
        set_channels_last(model, False)
    optimize_for_device(model, device, fused=fused, channels_last=channels_last, compile=compile,
                        compile_mode=compile_mode, polyphase=polyphase)
    if fused:  # as in the library's inference form (training steps, with gradients, never use the cache)
        cache_attention_bias(model)
    return model


@contextlib.contextmanager
def path_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op thread count set to ``threads`` inside the block (unchanged for ``None``)."""
    if threads is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def runner_for(path: ExecPath, device: str | torch.device,
               stack: contextlib.ExitStack) -> Callable[[Callable[[], Any]], Callable[[], Any]]:
    """How the benchmarks call ``path``'s work on ``device``: ``runner_for(...)(fn)`` is a callable that runs ``fn``
    and returns its result. On CUDA a path without cuDNN autotuning runs in a thread of its own, which ``stack``
    keeps open: cuDNN keeps the convolution plans it has chosen per thread (the v8 API's ``benchmark_cache`` is
    thread-local) and looks them up before it checks the autotuning flag, so in a thread where other paths had
    autotuned the same shapes it would run their plans. Every other path runs in the caller's thread."""
    if torch.device(device).type != "cuda" or path.cudnn_autotuning:
        return lambda fn: fn
    pool = stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix=f"bench-{path.name}"))
    return lambda fn: lambda: pool.submit(fn).result()


@contextlib.contextmanager
def path_settings(path: ExecPath, device: str | torch.device) -> Iterator[None]:
    """A training step's process-wide settings of ``path`` on ``device`` inside the block: torch's thread count
    (:func:`path_threads`) and, on CUDA, cuDNN's autotuning flag (:func:`ssl4sar.models.fast.cudnn_autotuning`)."""
    with path_threads(path.threads), cudnn_autotuning(device, path.cudnn_autotuning):
        yield
