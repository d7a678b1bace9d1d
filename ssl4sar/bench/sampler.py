"""Data-sampler benchmarks: samples per second of one data-loader worker.

- :func:`benchmark_data_sampler`: the fine-tuning sampler (random context crop with re-zoom and the §3.3
  augmentations).
- :func:`benchmark_pretrain_sampler`: the pretraining sampler (§2.3), with every glacier's optical image read once
  up front (the data module's default) against reading them on demand.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ssl4sar.bench.measure import PeakMemory, alternate
from ssl4sar.config import paper_preset

__all__ = ["benchmark_data_sampler", "benchmark_pretrain_sampler"]


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




def benchmark_pretrain_sampler(
    pretrain_cfg: Mapping[str, Any],
    *,
    n_samples: int = 24,
    rounds: int = 3,
    data_dir: str | Path | None = None,
    n_glaciers: int = 8,
    scene_size: Sequence[int] = (1200, 1600),
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Samples per second of the pretraining sampler (:class:`ssl4sar.data.datasets.UnlabeledTrainDataset`) on one
    worker, with its optical images read on demand and preloaded, in alternating rounds.

    A pool has one optical image per glacier and many SAR images, drawn in random order, so a worker that reads
    optical images on demand (keeping the 4 most recently used, ``PretrainDataModule(preload=False)``) reads one
    for most samples once the pool has more than 4 glaciers; preloaded (the default), each is read once, before the
    workers start. Each round draws the same ``n_samples`` training keys (the next epoch's first keys) in both modes.

    Args:
        pretrain_cfg: a preset's ``pretrain`` section (``context_size``, ``min_scale``, ``prob_flip``).
        data_dir: an SSL4SAR-layout root (its ``sar/train`` pairs); ``None``: a synthetic pool of ``n_glaciers``
            glaciers (at most 8), two SAR images each, with sides drawn from ``scene_size`` px (the paper's pool: 14
            glaciers, 2.05 MP per SAR image on average; ``(1200, 1600)`` gives about 2 MP), generated in a temporary
            folder (not timed).

    Returns two raw results, ``variant`` ``"on-demand"`` and ``"preloaded"``: ``throughput`` (samples/s, best
    round), ``round_s``, ``optical_reads_per_sample`` (over the timed rounds), ``n_pairs``, ``n_glaciers``,
    ``mean_image_mp``, ``context_size``, ``data``; the preloaded one adds ``preload_s``, ``optical_mb`` and
    ``speedup_over_on_demand`` (best rounds) with the paired ``ratio_rounds``.
    """
    from ssl4sar.data.datasets import EpochSampler, OpticalImages, UnlabeledTrainDataset
    from ssl4sar.data.unlabeled import discover_unlabeled

    paper = paper_preset().pretrain
    c = int(pretrain_cfg.get("context_size", paper.context_size))
    crop = {"min_scale": float(pretrain_cfg.get("min_scale", paper.min_scale)),
            "prob_flip": float(pretrain_cfg.get("prob_flip", paper.prob_flip))}
    with contextlib.ExitStack() as stack:
        if data_dir is None:
            from ssl4sar.data.synthetic import generate_ssl4sar

            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ssl4sar-bench-")))
            generate_ssl4sar(root / "ssl4sar", n_sar=2 * n_glaciers, n_glaciers=n_glaciers,
                             scene_size=tuple(scene_size), val_fraction=0.0, seed=seed)
            data_dir, source = root / "ssl4sar", "synthetic"
        else:
            source = str(data_dir)
        pairs = discover_unlabeled(data_dir, "train")
        total = n_samples * max(1, int(rounds)) * 4
        on_demand = UnlabeledTrainDataset(pairs, c, total, seed=seed, optical_cache_size=4, **crop)
        preloaded = UnlabeledTrainDataset(pairs, c, total, seed=seed, optical_images=OpticalImages(), **crop)
        t0 = time.perf_counter()
        preloaded.preload(progress=False)
        preload_s = time.perf_counter() - t0
        reads_before = {"on-demand": on_demand.optical_images.reads, "preloaded": preloaded.optical_images.reads}

        def draw(ds: UnlabeledTrainDataset) -> Any:
            sampler = EpochSampler(ds)
            epoch = iter(range(1, 10**6))

            def run() -> None:
                sampler.set_epoch(next(epoch))
                for k in list(sampler)[:n_samples]:
                    ds[k]
            return run

        datasets = {"on-demand": on_demand, "preloaded": preloaded}
        times = alternate({name: draw(ds) for name, ds in datasets.items()}, rounds, "cpu")
        reads = {name: ds.optical_images.reads - reads_before[name] for name, ds in datasets.items()}
        shapes = sorted({(p.optical_path, tuple(preloaded.optical_images.get(p.optical_path)[0].shape[-2:]))
                         for p in pairs})
        mean_mp = float(np.mean([h * w for _, (h, w) in shapes])) / 1e6
        optical_mb = preloaded.optical_images.nbytes / 1e6
    common = {"benchmark": "pretrain_sampler", "throughput_unit": "samples/s", "n_samples": int(n_samples),
              "n_pairs": len(pairs), "n_glaciers": len(shapes), "mean_image_mp": mean_mp, "context_size": c,
              "data": source}
    out = []
    for name in ("on-demand", "preloaded"):
        best = min(times[name])
        out.append({**common, "variant": name, "throughput": n_samples / best, "time_per_item_s": best / n_samples,
                    "round_s": times[name], "optical_reads_per_sample": reads[name] / (n_samples * len(times[name]))})
    slow, fast = out
    fast.update(preload_s=preload_s, optical_mb=optical_mb,
                speedup_over_on_demand=fast["throughput"] / slow["throughput"],
                ratio_rounds=[a / b for a, b in zip(slow["round_s"], fast["round_s"])])
    return out
