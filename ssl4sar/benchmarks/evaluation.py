"""Benchmarks of the evaluation chain: post-processing + MDE, and sliding-window inference.

* :func:`benchmark_postprocess_mde` — a synthetic ``size × size`` zone map (a wavy glacier/ocean boundary of about
  ``2 × size`` front pixels, a rock band, a no-data strip, icebergs, lakes and salt noise, so that every
  post-processing step has work to do) → :func:`ssl4sar.postprocess.extract_front` with a bounding box →
  :func:`ssl4sar.metrics.front_distances` against a slightly different ground-truth front. Wall-clock seconds of
  each step (best of ``repeats``) and the peak of Python-tracked memory (``tracemalloc``; numpy reports its
  buffers to it) in a separate, untimed run.
* :func:`benchmark_sliding_window` — :func:`ssl4sar.inference.sliding_window_probabilities` of a random uint8
  scene through a model: windows per second, megapixels per second, and peak memory — on CUDA
  ``torch.cuda.max_memory_allocated`` (reset before the run), on CPU the peak resident set size sampled every
  5 ms during the run (``psutil`` when installed, else ``/proc/self/statm``; torch's CPU allocations are not
  visible to ``tracemalloc``) and its increase over the RSS before the run.

Every function returns a flat dict of plain numbers / strings (JSON-ready); nothing is printed.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import resource
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from ssl4sar.data.sampling import pad_overlapping
from ssl4sar.inference import sliding_window_probabilities, window_origins
from ssl4sar.metrics import front_distances
from ssl4sar.postprocess import GLACIER_ID, NA_ID, OCEAN_ID, ROCK_ID, extract_front, front_from_zones

__all__ = ["synthetic_front_scene", "benchmark_postprocess_mde", "build_model", "benchmark_sliding_window"]

logger = logging.getLogger(__name__)

_MB = 1024.0 * 1024.0


# --------------------------------------------------------------------------------------------------------------
# post-processing + MDE

def _boundary(rng: np.random.Generator, size: int, phase_shift: float = 0.0) -> np.ndarray:
    """Row of the glacier/ocean boundary for every column: two sines plus a smoothed random walk (pixels).

    Amplitudes and periods scale with ``size`` so that the 4-neighbour front has about ``2 × size`` pixels.
    """
    x = np.arange(size, dtype=np.float64)
    p1, p2 = rng.uniform(0, 2 * np.pi, 2)
    walk = np.cumsum(rng.normal(0.0, 1.0, size))
    walk -= np.convolve(walk, np.ones(101) / 101, mode="same")  # keep only the small-scale wiggles
    y = (0.5 * size + 0.08 * size * np.sin(2 * np.pi * x / (0.45 * size) + p1 + phase_shift)
         + 0.015 * size * np.sin(2 * np.pi * x / (0.05 * size) + p2 + phase_shift) + 2.0 * walk)
    return np.clip(y, 0.3 * size, 0.9 * size)


def _zones(rng: np.random.Generator, size: int, boundary: np.ndarray, clutter: bool) -> np.ndarray:
    rows = np.arange(size, dtype=np.float64)[:, None]
    z = np.where(rows < boundary[None, :], GLACIER_ID, OCEAN_ID).astype(np.uint8)
    z[: int(0.06 * size)] = ROCK_ID
    z[: int(0.01 * size)] = NA_ID
    if clutter:
        blob = max(2, size // 600)
        for r, c in zip(rng.integers(0, size, 200), rng.integers(0, size, 200)):
            # icebergs in the ocean, lakes on the glacier
            z[r:r + blob, c:c + blob] = GLACIER_ID if z[r, c] == OCEAN_ID else OCEAN_ID
        n_salt = int(0.0005 * size * size)
        z.reshape(-1)[rng.integers(0, size * size, n_salt)] = ROCK_ID
    return z


def synthetic_front_scene(size: int = 5000, seed: int = 0) -> dict[str, Any]:
    """A predicted zone map with clutter and a ground-truth front for a ``size × size`` px scene.

    Returns a dict: ``zones`` ``(size, size)`` uint8 class ids (prediction), ``gt_front`` ``(size, size)`` uint8
    0/1 (the clean boundary of a slightly different boundary: the prediction is off by a few pixels),
    ``bounding_box`` four ``(x, y)`` corners (LU, LL, RL, RU) that exceed the image so the reference clamping
    runs, and ``resolution_m`` = 20 m/px.
    """
    if size < 64:
        raise ValueError(f"size must be at least 64 px, got {size}")
    rng = np.random.default_rng(seed)
    pred = _zones(rng, size, _boundary(np.random.default_rng(seed), size), clutter=True)
    gt_zones = _zones(rng, size, _boundary(np.random.default_rng(seed), size, phase_shift=0.03), clutter=False)
    gt_front = front_from_zones(gt_zones).astype(np.uint8)
    box = [(-2.0, size + 10.5), (-2.0, -3.5), (size + 4.5, -3.5), (size + 4.5, size + 10.5)]
    return {"zones": pred, "gt_front": gt_front, "bounding_box": box, "resolution_m": 20.0}


def benchmark_postprocess_mde(size: int = 5000, seed: int = 0, repeats: int = 3,
                              memory: bool = True) -> dict[str, Any]:
    """Time the §7.2 post-processing and the §8.1 distances on one synthetic ``size × size`` scene.

    Args:
        size: scene side in pixels.
        seed: scene seed.
        repeats: timed runs; the best (minimum) and the median are reported.
        memory: also measure the peak of ``tracemalloc``-tracked memory in one extra untimed run.

    Returns:
        ``size_px``, ``n_pred`` / ``n_gt`` (front pixels), ``mde_m`` (mean symmetric distance, metres),
        ``postprocess_s``, ``mde_s``, ``total_s`` (best of ``repeats``), ``*_median_s``, ``scene_build_s``,
        ``peak_traced_mb`` (when ``memory``), ``repeats``.
    """
    t0 = time.perf_counter()
    scene = synthetic_front_scene(size, seed)
    build_s = time.perf_counter() - t0
    zones, gt, box, res = scene["zones"], scene["gt_front"], scene["bounding_box"], scene["resolution_m"]
    pp, md = [], []
    front = np.zeros(0)
    dist: np.ndarray | None = None
    for _ in range(max(1, int(repeats))):
        t1 = time.perf_counter()
        front = extract_front(zones, res, box)
        t2 = time.perf_counter()
        dist = front_distances(front, gt, res)
        t3 = time.perf_counter()
        pp.append(t2 - t1)
        md.append(t3 - t2)
    totals = [a + b for a, b in zip(pp, md)]
    out: dict[str, Any] = {
        "size_px": int(size), "n_pred": int(np.count_nonzero(front)), "n_gt": int(np.count_nonzero(gt)),
        "mde_m": float(dist.mean()) if dist is not None else float("nan"),
        "postprocess_s": min(pp), "mde_s": min(md), "total_s": min(totals),
        "postprocess_median_s": float(np.median(pp)), "mde_median_s": float(np.median(md)),
        "total_median_s": float(np.median(totals)), "scene_build_s": build_s, "repeats": len(pp),
    }
    if memory:
        was_tracing = tracemalloc.is_tracing()
        if not was_tracing:
            tracemalloc.start()
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        f = extract_front(zones, res, box)
        front_distances(f, gt, res)
        _, peak = tracemalloc.get_traced_memory()
        if not was_tracing:
            tracemalloc.stop()
        out["peak_traced_mb"] = (peak - base) / _MB
    return out


# --------------------------------------------------------------------------------------------------------------
# sliding-window inference

def build_model(preset: str | Mapping[str, Any] = "demo", seed: int = 0) -> torch.nn.Module:
    """A randomly initialised :class:`ssl4sar.models.tyrion.Tyrion` of a preset's ``model`` section, in eval mode."""
    from ssl4sar.config import load_preset
    from ssl4sar.models.tyrion import Tyrion

    cfg = load_preset(preset) if isinstance(preset, str) else dict(preset)
    torch.manual_seed(seed)
    return Tyrion.from_config(cfg["model"]).eval()


def _rss_reader() -> Callable[[], float] | None:
    """A function returning the current resident set size in bytes, or ``None`` where none is available."""
    try:
        import psutil  # optional

        proc = psutil.Process()
        return lambda: float(proc.memory_info().rss)
    except ImportError:
        pass
    statm = "/proc/self/statm"
    if os.path.exists(statm):
        page = os.sysconf("SC_PAGE_SIZE")

        def read() -> float:
            with open(statm) as fh:
                return float(fh.read().split()[1]) * page

        return read
    return None


class _PeakRSS:
    """Samples the resident set size every ``interval_s`` in a background thread; ``peak`` in bytes."""

    def __init__(self, interval_s: float = 0.005) -> None:
        self.read = _rss_reader()
        self.interval = interval_s
        self.before = self.read() if self.read else float("nan")
        self.peak = self.before
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _loop(self) -> None:
        assert self.read is not None
        while not self._stop.is_set():
            self.peak = max(self.peak, self.read())
            self._stop.wait(self.interval)

    def __enter__(self) -> _PeakRSS:
        if self.read is not None:
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self.peak = max(self.peak, self.read())  # type: ignore[misc]


def _max_rss_mb() -> float:
    """Process-lifetime peak RSS from ``getrusage`` (kB on Linux, bytes on macOS)."""
    v = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return v / _MB if sys.platform == "darwin" else v / 1024.0


def benchmark_sliding_window(model: torch.nn.Module, scene_size: int | tuple[int, int] = 2048, *,
                             batch_size: int = 4, stride: int | None = None, sigma: float | None = None,
                             context_size: int | None = None, device: str | torch.device | None = None,
                             amp_dtype: torch.dtype | None = None, repeats: int = 1, warmup: bool = True,
                             seed: int = 0) -> dict[str, Any]:
    """Throughput and peak memory of overlapping-window inference of one random scene.

    Args:
        model: maps ``(B, 1, C, C)`` to logits ``(B, K, C, C)``; moved to ``device`` (default: where it is).
        scene_size: ``H`` (square) or ``(H, W)`` in pixels.
        batch_size: windows per forward pass.
        stride: window stride in pixels (default ``C / 4``, the paper's 128 px at C = 512).
        sigma: Gaussian importance σ in pixels (default ``C / 16``).
        context_size: window side C (default the model's ``img_size``).
        device: where to run.
        amp_dtype: autocast dtype (e.g. ``torch.bfloat16``) or ``None``.
        repeats: timed runs of the whole scene (best and median reported).
        warmup: one untimed forward pass of a full batch first (lazy initialisation, cuDNN autotuning).
        seed: seed of the random uint8 scene.

    Returns:
        ``device``, ``device_name``, ``torch_threads``, ``scene_h``, ``scene_w``, ``context_size``, ``stride``,
        ``batch_size``, ``n_windows``, ``seconds`` (best), ``median_s``, ``windows_per_s``, ``megapixels_per_s``,
        ``params_m`` (millions), and memory: on CUDA ``peak_cuda_allocated_mb`` / ``peak_cuda_reserved_mb``; on
        CPU ``rss_before_mb``, ``peak_rss_mb``, ``peak_rss_increase_mb`` and the process-lifetime ``max_rss_mb``.
    """
    h, w = (int(scene_size), int(scene_size)) if np.isscalar(scene_size) else (int(scene_size[0]),
                                                                                int(scene_size[1]))
    if context_size is None and getattr(model, "img_size", None) is None:
        raise ValueError("the model has no img_size attribute: pass context_size")
    c = int(context_size if context_size is not None else model.img_size)
    s = int(stride) if stride is not None else c // 4
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    model = model.to(dev).eval()
    image = np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)
    n_windows = len(window_origins(pad_overlapping(image, c, s).shape, c, s))
    cuda = dev.type == "cuda"
    if warmup:
        with torch.inference_mode():
            x = torch.rand(batch_size, 1, c, c, device=dev)
            ctx = (torch.autocast(dev.type, dtype=amp_dtype) if amp_dtype is not None
                   else contextlib.nullcontext())
            with ctx:
                model(x)
        if cuda:
            torch.cuda.synchronize(dev)
    kwargs = {"context_size": c, "stride": s, "sigma": sigma, "batch_size": batch_size, "device": dev,
              "amp_dtype": amp_dtype}
    times = []
    mem: dict[str, float] = {}
    for i in range(max(1, int(repeats))):
        if cuda:
            torch.cuda.synchronize(dev)
            torch.cuda.reset_peak_memory_stats(dev)
            t0 = time.perf_counter()
            sliding_window_probabilities(model, image, **kwargs)
            torch.cuda.synchronize(dev)
            times.append(time.perf_counter() - t0)
            if i == 0:
                mem = {"peak_cuda_allocated_mb": torch.cuda.max_memory_allocated(dev) / _MB,
                       "peak_cuda_reserved_mb": torch.cuda.max_memory_reserved(dev) / _MB}
        else:
            with _PeakRSS() as rss:
                t0 = time.perf_counter()
                sliding_window_probabilities(model, image, **kwargs)
                times.append(time.perf_counter() - t0)
            if i == 0:
                mem = {"rss_before_mb": rss.before / _MB, "peak_rss_mb": rss.peak / _MB,
                       "peak_rss_increase_mb": (rss.peak - rss.before) / _MB}
    best = min(times)
    out: dict[str, Any] = {
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if cuda else "cpu",
        "torch_threads": torch.get_num_threads(),
        "scene_h": h, "scene_w": w, "context_size": c, "stride": s, "batch_size": int(batch_size),
        "amp_dtype": str(amp_dtype).replace("torch.", "") if amp_dtype is not None else None,
        "n_windows": n_windows, "seconds": best, "median_s": float(np.median(times)),
        "windows_per_s": n_windows / best if best > 0 else math.inf,
        "megapixels_per_s": h * w / 1e6 / best if best > 0 else math.inf,
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6, "repeats": len(times),
        **mem,
    }
    if not cuda:
        out["max_rss_mb"] = _max_rss_mb()
    return out
