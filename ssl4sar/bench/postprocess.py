"""Post-processing (§7.2) + mean distance error (§8.1) benchmark on a large synthetic scene.

:func:`synthetic_front_scene` draws a ``size × size`` zone map (a wavy glacier/ocean boundary of about ``2 × size``
front pixels, a rock band, a no-data strip, icebergs, lakes and salt noise, so that every post-processing step has
work to do) and a slightly different ground-truth front; :func:`benchmark_postprocess_mde` times
:func:`ssl4sar.postprocess.extract_front` with a bounding box and :func:`ssl4sar.metrics.front_distances` (best of
``repeats``) and measures their peak memory (:class:`~ssl4sar.bench.measure.PeakMemory`) in an extra untimed run.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ssl4sar.bench.measure import PeakMemory
from ssl4sar.metrics import front_distances
from ssl4sar.postprocess import GLACIER_ID, NA_ID, OCEAN_ID, ROCK_ID, extract_front, front_from_zones

__all__ = ["benchmark_postprocess_mde", "synthetic_front_scene"]

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


def benchmark_postprocess_mde(size: int = 5000, seed: int = 0, repeats: int = 3, memory: bool = True) -> dict[str, Any]:
    """Time the §7.2 post-processing and the §8.1 distances on one synthetic ``size × size`` scene.

    Args:
        size: scene side in pixels. seed: scene seed.
        repeats: timed runs; the best (minimum) and the median are reported.
        memory: also measure the peak memory (:class:`PeakMemory`, CPU) of one extra untimed run.

    Returns:
        ``size_px``, ``n_pred`` / ``n_gt`` (front pixels), ``mde_m`` (mean symmetric distance, metres),
        ``postprocess_s``, ``mde_s``, ``total_s`` (best of ``repeats``), ``*_median_s``, ``scene_build_s``,
        ``repeats`` and, with ``memory``, the :class:`PeakMemory` fields.
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
        with PeakMemory("cpu") as mem:
            front_distances(extract_front(zones, res, box), gt, res)
        out.update(mem.as_dict())
    return out
