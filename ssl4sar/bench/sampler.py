"""Data-sampler benchmark: samples per second of the fine-tuning sampler (random context crop with re-zoom and the
§3.3 augmentations) on one worker."""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ssl4sar.bench.measure import PeakMemory
from ssl4sar.config import paper_preset

__all__ = ["benchmark_data_sampler"]


def benchmark_data_sampler(
    data_cfg: Mapping[str, Any],
    *,
    n_samples: int = 32,
    warmup: int = 2,
    data_dir: str | Path | None = None,
    n_scenes: int | None = None,
    scene_size: Sequence[int] = (900, 1200),
    all_augmentations: bool = False,
    seed: int = 0,
) -> dict[str, Any]:
    """Samples per second of the fine-tuning sampler (:class:`ssl4sar.data.datasets.CaffeTrainDataset`).

    One worker: the samples are drawn in this process (what one DataLoader worker computes; no inter-process
    transfer). Each sample is a random ``context_size`` crop with re-zoom, ocean mix-up, speckle, brightness,
    gamma, flips and rotations at the preset's probabilities (``all_augmentations``: every probability 1), plus
    its centre crop, as tensors.

    Args:
        data_cfg: a preset's ``data`` section (``context_size``, ``target_size``, augmentation settings).
        n_samples, warmup: timed and untimed samples.
        n_scenes: scenes to sample from (default 2 synthetic, 8 of a real data set).
        data_dir: a CaFFe root: ``n_scenes`` scenes of its ``train`` split, evenly spread over the sorted stems;
            ``None``: ``n_scenes`` synthetic scenes with sides drawn from ``scene_size`` px, generated in a temporary
            folder (generation not timed).
        seed: sampler and generator seed.

    Returns ``throughput`` (samples/s), ``time_per_item_s``, ``n_samples``, ``n_scenes``, ``scene_shapes``,
    ``context_size``, ``data`` (``"synthetic"`` or the folder) and :class:`~ssl4sar.bench.measure.PeakMemory`
    fields (over the timed samples).
    """
    from ssl4sar.data.augment import AugmentParams
    from ssl4sar.data.caffe import discover, read_sar
    from ssl4sar.data.datasets import CaffeTrainDataset

    c = int(data_cfg.get("context_size", paper_preset().data.context_size))
    t = int(data_cfg.get("target_size", c // 2))
    if n_scenes is None:
        n_scenes = 2 if data_dir is None else 8
    params = AugmentParams.from_config(data_cfg)
    if all_augmentations:
        params = AugmentParams(
            **{
                **{f: getattr(params, f) for f in params.__dataclass_fields__},
                **{f: 1.0 for f in params.__dataclass_fields__ if f.startswith("prob_")},
            }
        )
    with contextlib.ExitStack() as stack:
        if data_dir is None:
            from ssl4sar.data.synthetic import generate_caffe

            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ssl4sar-bench-")))
            generate_caffe(
                root / "caffe", n_train=max(1, n_scenes), n_test=0, scene_size=tuple(scene_size), seed=seed
            )
            scenes = discover(root / "caffe", "trainval")
            source = "synthetic"
        else:
            found = discover(data_dir, "train")
            pick = np.unique(np.linspace(0, len(found) - 1, max(1, n_scenes)).round().astype(int))
            scenes = [found[i] for i in pick]  # spread over the sorted stems (several glaciers)
            source = str(data_dir)
        ds = CaffeTrainDataset(scenes, c, t, samples_per_epoch=n_samples + warmup, augment=params, seed=seed)
        ds.preload(progress=False)
        for i in range(warmup):
            ds[i]
        with PeakMemory("cpu") as mem:
            t0 = time.perf_counter()
            for i in range(warmup, warmup + n_samples):
                ds[i]
            seconds = time.perf_counter() - t0
        shapes = [list(read_sar(sc.sar_path).shape) for sc in scenes[:4]]
    return {
        "benchmark": "data_sampler",
        "throughput": n_samples / seconds,
        "throughput_unit": "samples/s",
        "time_per_item_s": seconds / n_samples,
        "n_samples": int(n_samples),
        "n_scenes": len(scenes),
        "scene_shapes": shapes,
        "context_size": c,
        "data": source,
        "all_augmentations": bool(all_augmentations),
        **mem.as_dict(),
    }


