"""Where a step's time goes: :func:`profile_step` runs a step under ``torch.profiler`` (CPU activity, plus CUDA
kernels on a GPU) and returns the operators sorted by their own time; ``python -m ssl4sar.bench --profile`` writes
that table for a fast-path fine-tuning step of the preset's network (``profile.txt`` next to ``bench.json``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

__all__ = ["profile_fast_finetune", "profile_step"]


def profile_step(step: Callable[[], Any], device: str | torch.device, *, steps: int = 2, warmup: int = 1,
                 row_limit: int = 25) -> dict[str, Any]:
    """Profile ``steps`` calls of ``step`` after ``warmup`` unprofiled ones.

    Returns ``table`` (text: operators by self time — self CUDA time on a GPU, self CPU time otherwise), ``top``
    (the ``row_limit`` operators as dicts: ``name``, ``calls``, ``self_s``, ``total_s``, ``fraction``: share of the
    summed self time), ``profiled_s`` (summed self time of all operators per step) and ``device``.
    """
    from torch.profiler import ProfilerActivity, profile

    dev = torch.device(device)
    cuda = dev.type == "cuda"
    for _ in range(max(0, int(warmup))):
        step()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        for _ in range(max(1, int(steps))):
            step()
        if cuda:
            torch.cuda.synchronize(dev)
    events = prof.key_averages()
    sort = "self_cuda_time_total" if cuda else "self_cpu_time_total"

    def self_us(e: Any) -> float:
        return float(getattr(e, "self_device_time_total", 0.0) or getattr(e, "self_cuda_time_total", 0.0)) \
            if cuda else float(e.self_cpu_time_total)

    total = sum(self_us(e) for e in events) or 1.0
    ranked = sorted(events, key=self_us, reverse=True)[: int(row_limit)]
    n = max(1, int(steps))
    top = [{"name": e.key, "calls": int(e.count) // n, "self_s": self_us(e) / 1e6 / n,
            "total_s": float(e.cpu_time_total) / 1e6 / n, "fraction": self_us(e) / total} for e in ranked]
    return {"device": str(dev), "steps": n, "profiled_s": total / 1e6 / n, "top": top,
            "table": events.table(sort_by=sort, row_limit=int(row_limit))}


def profile_fast_finetune(model_config: dict[str, Any], device: str | torch.device, batch: int,
                          steps: int = 2, compile: bool = False) -> dict[str, Any]:
    """:func:`profile_step` of a fine-tuning step of ``model_config`` on the fast path of ``device`` (with
    ``compile``: its ``torch.compile`` variant; the unprofiled warm-up step compiles)."""
    from ssl4sar.bench.paths import fast_training_path
    from ssl4sar.bench.training import StepSettings, finetune_case

    p = fast_training_path(device)
    if compile:
        p = p.with_(name="fast-compile", compile=True)
    case = finetune_case(model_config, StepSettings.on_path(p, device, batch))
    return {**profile_step(case.step, device, steps=steps), "path": p.describe(device), "batch_size": batch,
            "compile": bool(compile)}
