"""Where a step's time goes: :func:`profile_step` runs a step under ``torch.profiler`` (CPU activity, plus CUDA
kernels on a GPU) and returns the operators sorted by their own time, and the wall time per step;
``python -m ssl4sar.bench --profile`` writes that table for a fast-path fine-tuning step of the preset's network
(``profile.txt`` next to ``bench.json``) and, when the run measured sliding-window inference, for the fast path's
inference of the same scene (``profile-sliding-window.txt``). On a GPU, kernel time over wall time says whether a
step keeps the device busy or waits on the host."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import torch

__all__ = ["profile_fast_finetune", "profile_fast_sliding_window", "profile_step", "self_time_us"]


def self_time_us(events: Iterable[Any], cuda: bool) -> float:
    """Summed self time (µs) of profiler ``events`` (``key_averages()`` entries). On a GPU only the device-side
    entries (kernels, copies), as torch's own table footer sums them: a kernel is an entry of its own *and* the self
    device time of the CPU-side operator that launched it, so summing every entry counts it twice. On a CPU the
    operators' self CPU time."""
    from torch.autograd import DeviceType

    if not cuda:
        return sum(float(e.self_cpu_time_total) for e in events)
    return sum(float(e.self_device_time_total) for e in events
               if e.device_type != DeviceType.CPU and not getattr(e, "is_user_annotation", False))


def profile_step(step: Callable[[], Any], device: str | torch.device, *, steps: int = 2, warmup: int = 1,
                 row_limit: int = 25) -> dict[str, Any]:
    """Profile ``steps`` calls of ``step`` after ``warmup`` unprofiled ones.

    Returns ``table`` (text: operators by self time — self CUDA time on a GPU, self CPU time otherwise), ``top``
    (the ``row_limit`` operators as dicts: ``name``, ``calls``, ``self_s``, ``total_s``, ``fraction``: share of the
    summed self time), ``profiled_s`` (summed self time per step, :func:`self_time_us`: on a GPU the device time of
    the kernels, each once), ``wall_s`` (wall-clock seconds
    per step under the profiler, which adds its own overhead) and ``device``.
    """
    from torch.profiler import ProfilerActivity, profile

    dev = torch.device(device)
    cuda = dev.type == "cuda"
    for _ in range(max(0, int(warmup))):
        step()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        if cuda:
            torch.cuda.synchronize(dev)
        t0 = time.perf_counter()
        for _ in range(max(1, int(steps))):
            step()
        if cuda:
            torch.cuda.synchronize(dev)
        wall = time.perf_counter() - t0
    events = prof.key_averages()
    sort = "self_cuda_time_total" if cuda else "self_cpu_time_total"

    def self_us(e: Any) -> float:
        return float(e.self_device_time_total) if cuda else float(e.self_cpu_time_total)

    total = self_time_us(events, cuda) or 1.0
    ranked = sorted(events, key=self_us, reverse=True)[: int(row_limit)]
    n = max(1, int(steps))
    top = [{"name": e.key, "calls": int(e.count) // n, "self_s": self_us(e) / 1e6 / n,
            "total_s": float(e.cpu_time_total) / 1e6 / n, "fraction": self_us(e) / total} for e in ranked]
    return {"device": str(dev), "steps": n, "profiled_s": total / 1e6 / n, "wall_s": wall / n, "top": top,
            "table": events.table(sort_by=sort, row_limit=int(row_limit))}


def profile_fast_finetune(model_config: dict[str, Any], device: str | torch.device, batch: int,
                          steps: int = 2, compile: bool = False) -> dict[str, Any]:
    """:func:`profile_step` of a fine-tuning step of ``model_config`` on the fast path of ``device`` (with
    ``compile``: its ``torch.compile`` variant, profiled after the benchmark's
    :data:`~ssl4sar.bench.measure.COMPILE_WARMUP_STEPS` unprofiled steps, which compile)."""
    from ssl4sar.bench import training
    from ssl4sar.bench.measure import COMPILE_WARMUP_STEPS
    from ssl4sar.bench.paths import fast_training_path

    p = fast_training_path(device)
    if compile:
        p = p.with_(name="fast-compile", compile=True)
    case = training.finetune_case(model_config, training.StepSettings.on_path(p, device, batch))
    warmup = COMPILE_WARMUP_STEPS if compile else 1
    return {**profile_step(case.step, device, steps=steps, warmup=warmup), "path": p.describe(device),
            "batch_size": batch, "compile": bool(compile)}


def profile_fast_sliding_window(model_config: dict[str, Any], device: str | torch.device, *, scene_side: int,
                                stride: int, batch: int, calls: int = 1, seed: int = 0) -> dict[str, Any]:
    """:func:`profile_step` of sliding-window inference (:func:`ssl4sar.inference.sliding_window_probabilities`) of
    one random ``scene_side``² px uint8 scene at ``stride`` px, ``batch`` windows per forward pass, on the fast path
    of ``device``, with randomly initialised weights of ``model_config``. One step is the whole scene; the unprofiled
    warm-up runs it too, so every batch shape has been seen (and autotuned on CUDA) before the profiled calls.
    The forward passes run in the calling thread (``workers=1``): the profiler does not see the worker threads of
    the CPU fast path's parallel passes (on a GPU the fast path runs one pass at a time anyway)."""
    from ssl4sar.bench.paths import fast_path
    from ssl4sar.bench.windows import random_scene, windows_in_scene
    from ssl4sar.inference import sliding_window_probabilities
    from ssl4sar.models.tyrion import Tyrion

    dev = torch.device(device)
    p = fast_path(dev)
    torch.manual_seed(seed)
    model = p.prepare(Tyrion.from_config(model_config).eval(), dev)
    image = random_scene(int(scene_side), seed)
    c = int(model.img_size)
    kwargs = {"context_size": c, "stride": int(stride), **p.window_settings(dev, batch), "workers": 1}
    prof = profile_step(lambda: sliding_window_probabilities(model, image, **kwargs), dev, steps=calls)
    return {**prof, "path": p.describe(dev), "batch_size": kwargs["batch_size"], "scene_side": int(scene_side),
            "stride": int(stride), "n_windows": windows_in_scene((int(scene_side),) * 2, c, int(stride))}
