"""Sliding-window inference benchmarks (spec §7.1): windows per second of
:func:`ssl4sar.inference.sliding_window_probabilities` on a random uint8 scene, and what that means for a
10-megapixel scene.

:func:`benchmark_sliding_window` times one model on one path; :func:`compare_sliding_window` times several
:class:`~ssl4sar.bench.paths.ExecPath` s of the same weights in alternating rounds (best round of each) and reports each
path's windows/s, its extrapolated minutes per 10-MP scene and its speed relative to the first path.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ssl4sar.bench.measure import (
    PeakMemory,
    allocated_mb,
    alternate,
    count_flops,
    discount_other_paths,
    time_steps,
)
from ssl4sar.bench.paths import ExecPath, path_threads, runner_for
from ssl4sar.data.sampling import overlapping_padding_stages
from ssl4sar.inference import default_inference_workers, sliding_window_probabilities
from ssl4sar.models.fast import compile_failed

__all__ = [
    "TEN_MP_SIDE",
    "benchmark_sliding_window",
    "build_model",
    "compare_sliding_window",
    "random_scene",
    "scene_side_for",
    "windows_in_scene",
]

log = logging.getLogger(__name__)

#: side of the square "10-megapixel" scene of the sliding-window extrapolation (3162² ≈ 10.0 MP)
TEN_MP_SIDE = 3162


def windows_in_scene(shape: tuple[int, int], context_size: int, stride: int) -> int:
    """Number of overlapping windows (§7.1) of a ``shape`` (H, W) px scene: the padding of
    :func:`ssl4sar.data.sampling.overlapping_padding_stages`, then one window every ``stride`` px."""
    a, b = overlapping_padding_stages(shape, context_size, stride)
    h = shape[0] + a.top + a.bottom + b.top + b.bottom
    w = shape[1] + a.left + a.right + b.left + b.right
    return ((h - context_size) // stride + 1) * ((w - context_size) // stride + 1)


def scene_side_for(windows_per_axis: int, context_size: int, stride: int) -> int:
    """A square scene side (px) giving ``windows_per_axis`` windows per axis (≥ 2: the reference padding adds
    1 … stride px, so even a C/2 scene gets two)."""
    n = max(2, int(windows_per_axis))
    return context_size // 2 + (n - 2) * stride + stride // 2


def build_model(preset: str | Mapping[str, Any] = "demo", seed: int = 0) -> torch.nn.Module:
    """A randomly initialised :class:`~ssl4sar.models.tyrion.Tyrion` of a preset (name or dict) in eval mode."""
    from ssl4sar.config import load_preset
    from ssl4sar.models.tyrion import Tyrion

    cfg = load_preset(preset) if isinstance(preset, str) else dict(preset)
    torch.manual_seed(seed)
    return Tyrion.from_config(cfg["model"]).eval()


def random_scene(scene_size: int | tuple[int, int], seed: int) -> np.ndarray:
    """A uniformly random uint8 scene of ``scene_size`` px (an int for a square, or ``(H, W)``)."""
    h, w = (int(scene_size), int(scene_size)) if np.isscalar(scene_size) else (int(scene_size[0]),
                                                                                int(scene_size[1]))
    return np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)


def benchmark_sliding_window(model: torch.nn.Module, scene_size: int | tuple[int, int] = 2048, *,
                             batch_size: int = 4, stride: int | None = None, sigma: float | None = None,
                             context_size: int | None = None, device: str | torch.device | None = None,
                             amp_dtype: torch.dtype | None = None, centre_only: bool = True, repeats: int = 1,
                             warmup: bool = True, seed: int = 0, workers: int | None = None) -> dict[str, Any]:
    """Windows per second and peak memory of overlapping-window inference of one random ``scene_size`` scene.

    Args:
        model: maps ``(B, 1, C, C)`` to logits ``(B, K, C, C)``; moved to ``device`` (default: where it is).
        batch_size: windows per forward pass. stride: px (default C / 4). sigma: Gaussian σ px (default C / 16).
        amp_dtype: autocast dtype or ``None``. centre_only: see :func:`ssl4sar.inference.sliding_window_probabilities`.
        repeats: timed runs of the whole scene (best and median reported). warmup: one untimed run first.
        workers: parallel forward passes (default: :func:`ssl4sar.inference.default_inference_workers`).

    Returns ``scene_h``, ``scene_w``, ``context_size``, ``stride``, ``batch_size``, ``n_windows``, ``seconds``
    (best), ``median_s``, ``windows_per_s``, ``megapixels_per_s``, ``params_m`` and :class:`PeakMemory` fields of
    the first timed run.
    """
    if context_size is None and getattr(model, "img_size", None) is None:
        raise ValueError("the model has no img_size attribute: pass context_size")
    c = int(context_size if context_size is not None else model.img_size)
    s = int(stride) if stride is not None else c // 4
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    model = model.to(dev).eval()
    image = random_scene(scene_size, seed)
    kwargs = {"context_size": c, "stride": s, "sigma": sigma, "batch_size": batch_size, "device": dev,
              "amp_dtype": amp_dtype, "centre_only": centre_only, "workers": workers}
    if warmup:
        sliding_window_probabilities(model, image[: c // 2, : c // 2], **kwargs)
    times: list[float] = []
    mem = PeakMemory(dev)
    for i in range(max(1, int(repeats))):
        with mem if i == 0 else PeakMemory(dev):
            times += time_steps(lambda: sliding_window_probabilities(model, image, **kwargs), 1, dev)
    return _result(model, image, c, s, batch_size, times, dev, mem, workers)


def _result(model: torch.nn.Module, image: np.ndarray, c: int, s: int, batch: int, times: list[float],
            dev: torch.device, mem: PeakMemory, workers: int | None = None) -> dict[str, Any]:
    h, w = image.shape
    n_windows = windows_in_scene((h, w), c, s)
    best = min(times)
    n10 = windows_in_scene((TEN_MP_SIDE, TEN_MP_SIDE), c, s)
    wps = n_windows / best if best > 0 else math.inf
    return {
        "device": str(dev), "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "torch_threads": torch.get_num_threads(),
        "workers": default_inference_workers(dev) if workers is None else int(workers),
        "scene_h": h, "scene_w": w, "context_size": c, "stride": s,
        "batch_size": int(batch), "n_windows": n_windows, "seconds": best, "median_s": float(np.median(times)),
        "repeats": len(times), "windows_per_s": wps, "megapixels_per_s": h * w / 1e6 / best if best > 0 else math.inf,
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "windows_10mp_scene": n10, "seconds_10mp_scene_extrapolated": n10 / wps if wps > 0 else math.inf,
        **mem.as_dict(),
    }


def compare_sliding_window(model_config: Mapping[str, Any], paths: Sequence[ExecPath], *, device: str | torch.device,
                           windows_per_axis: int = 2, stride: int | None = None, sigma: float | None = None,
                           batch_size: int = 2, rounds: int = 3, seed: int = 0) -> list[dict[str, Any]]:
    """Sliding-window inference of one random scene on every path, alternating rounds (same weights everywhere).

    Args:
        model_config: a preset's ``model`` section. paths: the first is the baseline of ``speedup``.
        windows_per_axis: the scene gets this many windows per axis (:func:`scene_side_for`).
        stride, sigma: px (default C / 4, C / 16). batch_size: windows per forward pass of paths without ``batch``.
        rounds: timed rounds (each runs every path once on the whole scene); one untimed warm-up run per path.

    Returns one dict per path (:func:`benchmark_sliding_window` fields plus ``path``, the path's settings,
    ``round_s`` and ``speedup`` = this path's windows/s over the first path's, from the best rounds). On a GPU a
    path's peak memory leaves out the model copies of the paths before it (``memory_other_paths_mb``).
    """
    from ssl4sar.models.tyrion import Tyrion

    dev = torch.device(device)
    torch.manual_seed(seed)
    base = Tyrion.from_config(model_config).eval()
    c = base.img_size
    s = int(stride) if stride is not None else c // 4
    image = random_scene(scene_side_for(windows_per_axis, c, s), seed)
    runs, models, mems, before = {}, {}, {}, {}
    with contextlib.ExitStack() as stack:
        for p in paths:
            before[p.name] = allocated_mb(dev)  # the model copies of the paths before this one, kept for the rounds
            m = copy.deepcopy(base)
            p.prepare(m, dev)
            models[p.name] = m
            kwargs = {"context_size": c, "stride": s, "sigma": sigma, **p.window_settings(dev, batch_size)}

            def scene_pass(scene: np.ndarray, m: torch.nn.Module = m, kwargs: dict[str, Any] = kwargs,
                           p: ExecPath = p) -> None:
                with path_threads(p.threads):
                    sliding_window_probabilities(m, scene, **kwargs)

            runner = runner_for(p, dev, stack)  # the path's thread: warm-up, memory and timed passes alike
            runner(functools.partial(scene_pass, image[: c // 2, : c // 2]))()  # warm-up (lazy init, compilation)
            run = runner(functools.partial(scene_pass, image))
            mems[p.name] = PeakMemory(dev)
            with mems[p.name]:
                run()
            runs[p.name] = run
        times = alternate(runs, rounds, dev)
    flops = count_flops(lambda: Tyrion.from_config(model_config), lambda m: m(torch.empty(1, 1, c, c)))
    out = []
    for p in paths:
        with path_threads(p.threads):  # the threads (and the default workers, which follow them) the path ran with
            r = _result(models[p.name], image, c, s, p.batch or batch_size, times[p.name], dev, mems[p.name],
                        p.workers)
        r.update(path=p.name, round_s=times[p.name], **{f"path_{k}": v for k, v in p.describe(dev).items()},
                 flops_per_item=flops, flops_note="FlopCounterMode, full forward of one window on meta")
        failed = compile_failed(models[p.name]) if p.compile else None
        if failed:  # the row ran eagerly: the report says so next to the compile label
            r["compile_failed"] = failed
        out.append(discount_other_paths(r, before[p.name]))
    for r in out:
        r["speedup"] = r["windows_per_s"] / out[0]["windows_per_s"]
    return out
