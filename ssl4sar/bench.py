"""Throughput and memory benchmarks of this machine: ``python -m ssl4sar.bench`` (``make bench``).

Measures, on the machine it runs on, and writes ``bench.json`` and ``bench.md`` (a markdown table) into ``--out``:

===================  ==========================================================================================
``matmul_peak``      dense matmul FLOP/s: bf16 8192² on CUDA (CUDA events) — the reference for "% of peak" of the
                     GPU rows; float32 on CPU (the reference of the CPU rows)
``finetune_step``    TYRION fine-tuning steps (forward, centre + context CE/Dice loss, backward, SGD), the preset's
                     model (paper: SwinV2-T TYRION at 512 px); fp32, on GPU also bf16-mixed, with/without fused
                     attention, with/without ``torch.compile``
``pretrain_step``    OptSimMIM and OptTranslator steps (:mod:`ssl4sar.pretrain`; skipped with a note when missing)
``sliding_window``   overlapping-window inference with Gaussian stitching (windows/s) and the time of a
                     10-megapixel (3162 × 3162) scene at the preset's stride — **extrapolated** from windows/s and
                     that scene's window count
``postprocess_mde``  post-processing (§7.2) + mean distance error (§8.1) of one 5000 × 5000 px scene (CPU, numpy)
``data_sampler``     fine-tuning sampler (random context crop with re-zoom + augmentations, §3.3), one worker
===================  ==========================================================================================

Each row has: name, variant, device, precision, batch, throughput (samples/s, windows/s, scenes/s), time per item,
peak memory (CUDA: ``torch.cuda.max_memory_allocated``; CPU: peak RSS of the process over the timed part, from the
kernel's ``VmHWM`` reset before it, or ``tracemalloc`` for the numpy-only rows), FLOPs per item
(``FlopCounterMode``, forward; training = 3 × forward) and the achieved fraction of the measured matmul peak.

Modes: ``--quick`` (few iterations; a few minutes on a 2-core CPU; still the paper model for the training rows, with
batch 1 and 2 timed steps) and the default full mode (for GPUs: batch 16, 10 timed steps, all variants).
``--preset smoke`` / ``demo`` use those presets' model and sizes everywhere (tests, the book's CPU build); they are
**not** the paper model and the table says so.

The measurement functions live in :mod:`ssl4sar.benchmarks.training` (training steps) and
:mod:`ssl4sar.benchmarks.evaluation` (inference, post-processing).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fnmatch
import gc
import json
import logging
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ssl4sar.config import paper_preset
from ssl4sar.errors import DataError
from ssl4sar.io import write_json_atomic, write_text_atomic

__all__ = [
    "BENCHMARKS",
    "SCHEMA",
    "BenchSpec",
    "bar_chart",
    "benchmark_data_sampler",
    "configure",
    "environment",
    "load_report",
    "main",
    "measure_matmul_peak",
    "plan_benchmarks",
    "render_markdown",
    "results_frame",
    "variant_speedups",
    "run",
    "run_benchmarks",
    "windows_in_scene",
]

log = logging.getLogger(__name__)

SCHEMA = "ssl4sar-bench/1"
BENCHMARKS = (
    "matmul_peak",
    "finetune_step",
    "pretrain_step",
    "sliding_window",
    "postprocess_mde",
    "data_sampler",
)
#: side of the square "10-megapixel" scene of the sliding-window extrapolation (3162² ≈ 10.0 MP)
TEN_MP_SIDE = 3162
_MB = 1024.0 * 1024.0


# ------------------------------------------------------------------------------------------------ environment


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit() -> str | None:
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def environment(device: str | torch.device) -> dict[str, Any]:
    """Versions and hardware of this run: Python, torch, timm, numpy, CUDA / cuDNN, device name and memory, CPU model,
    CPU count (total and usable), torch intra-/inter-op threads, CPU SIMD capability, git commit."""
    import timm

    from ssl4sar import __version__

    dev = torch.device(device)
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        usable = os.cpu_count() or 1
    env: dict[str, Any] = {
        "ssl4sar": __version__,
        "git_commit": _git_commit(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "numpy": np.__version__,
        "device": str(dev),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_usable": usable,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }
    with contextlib.suppress(OSError):
        env["load_average"] = list(os.getloadavg())
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        env.update(
            {
                "device_name": props.name,
                "device_memory_gb": props.total_memory / 1024**3,
                "device_capability": f"{props.major}.{props.minor}",
                "device_sm_count": props.multi_processor_count,
                "cuda": torch.version.cuda,
                "cudnn": torch.backends.cudnn.version(),
                "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
            }
        )
    else:
        env["device_name"] = f"CPU ({env['cpu_model']}, {usable} usable cores)"
    return env


# ------------------------------------------------------------------------------------------------ matmul peak


def measure_matmul_peak(
    device: str | torch.device,
    dtype: torch.dtype = torch.bfloat16,
    n: int = 8192,
    iters: int = 20,
    warmup: int = 3,
) -> dict[str, Any]:
    """Dense ``n × n`` by ``n × n`` matmul throughput (2 n³ FLOPs each) — the achievable compute peak.

    On CUDA the ``iters`` matmuls are timed together with CUDA events after ``warmup`` untimed ones; on CPU with
    ``time.perf_counter`` (best of ``iters`` single matmuls). Returns ``tflops`` (TFLOP/s), ``n``, ``dtype``,
    ``seconds_per_matmul``.
    """
    dev = torch.device(device)
    gen = torch.Generator(device=dev).manual_seed(0)
    a = torch.randn(n, n, device=dev, dtype=torch.float32, generator=gen).to(dtype)
    b = torch.randn(n, n, device=dev, dtype=torch.float32, generator=gen).to(dtype)
    flops = 2.0 * n**3
    for _ in range(max(0, warmup)):
        torch.mm(a, b)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iters):
            torch.mm(a, b)
        end.record()
        torch.cuda.synchronize(dev)
        per = start.elapsed_time(end) / 1000.0 / iters
    else:
        times = []
        for _ in range(max(1, iters)):
            t0 = time.perf_counter()
            torch.mm(a, b)
            times.append(time.perf_counter() - t0)
        per = min(times)
    return {
        "tflops": flops / per / 1e12,
        "n": n,
        "dtype": str(dtype).replace("torch.", ""),
        "seconds_per_matmul": per,
        "iters": iters,
    }


# ------------------------------------------------------------------------------------------------ helpers


def windows_in_scene(shape: tuple[int, int], context_size: int, stride: int) -> int:
    """Number of overlapping windows (§7.1) of a ``shape`` (H, W) px scene: the padding of
    :func:`ssl4sar.data.sampling.overlapping_padding_stages`, then one window every ``stride`` px."""
    from ssl4sar.data.sampling import overlapping_padding_stages

    a, b = overlapping_padding_stages(shape, context_size, stride)
    h = shape[0] + a.top + a.bottom + b.top + b.bottom
    w = shape[1] + a.left + a.right + b.left + b.right
    return ((h - context_size) // stride + 1) * ((w - context_size) // stride + 1)


def _scene_side_for(windows_per_axis: int, context_size: int, stride: int) -> int:
    """A square scene side (px) giving ``windows_per_axis`` windows per axis (≥ 2: the reference padding adds
    1 … stride px, so even a C/2 scene gets two)."""
    n = max(2, int(windows_per_axis))
    return context_size // 2 + (n - 2) * stride + stride // 2


_FLOPS_CACHE: dict[str, int] = {}


def _forward_flops(model_cfg: Mapping[str, Any]) -> int:
    from ssl4sar.benchmarks.training import count_flops
    from ssl4sar.models.tyrion import MODEL_CONFIG_DEFAULTS, Tyrion

    key = json.dumps(dict(model_cfg), sort_keys=True)
    if key not in _FLOPS_CACHE:
        full = {**MODEL_CONFIG_DEFAULTS, **dict(model_cfg)}
        size = int(full["img_size"])
        _FLOPS_CACHE[key] = count_flops(
            lambda: Tyrion.from_config(model_cfg),
            lambda m: m(torch.empty(1, int(full["in_chans"]), size, size)),
        )
    return _FLOPS_CACHE[key]


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


# ------------------------------------------------------------------------------------------------ data sampler


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
    ``context_size``, ``data`` (``"synthetic"`` or the folder) and :class:`~ssl4sar.benchmarks.training.PeakMemory`
    fields (over the timed samples).
    """
    from ssl4sar.benchmarks.training import PeakMemory
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


# ------------------------------------------------------------------------------------------------ plan


@dataclass
class BenchSpec:
    """One benchmark row to run: ``name`` (one of :data:`BENCHMARKS`), ``variant`` label, and the function."""

    name: str
    variant: str
    fn: Callable[[], dict[str, Any]]
    device: str
    precision: str
    batch: int | None
    notes: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.name}/{self.variant}"


def _selected(spec_key: str, only: Sequence[str] | None) -> bool:
    if not only:
        return True
    name = spec_key.split("/", 1)[0]
    for token in only:
        token = token.strip()
        if token in (name, spec_key) or (
            any(ch in token for ch in "*?[") and fnmatch.fnmatchcase(spec_key, token)
        ):
            return True
    return False


def _settings(preset: str, quick: bool, device: torch.device, batch: int | None) -> dict[str, Any]:
    """Sizes and counts of one run."""
    gpu = device.type == "cuda"
    small = preset in ("smoke", "demo")
    s: dict[str, Any] = {}
    if gpu:
        s["train_batch"] = batch or {"smoke": 8, "demo": 32}.get(preset, 16)
        s["infer_batch"] = batch or {"smoke": 32, "demo": 32}.get(preset, 16)
        s["train_warmup"], s["train_steps"] = (2, 3) if quick else (3, 10)
        s["pre_warmup"], s["pre_steps"] = (2, 3) if quick else (3, 10)
        s["windows_per_axis"] = 7 if quick else 15
        s["sw_repeats"] = 1 if quick else 2
        s["matmul"] = {"dtype": torch.bfloat16, "n": 8192, "iters": 10 if quick else 30}
    else:
        s["train_batch"] = batch or (2 if small or not quick else 1)
        s["infer_batch"] = batch or 2
        s["train_warmup"], s["train_steps"] = (1, 2) if quick else (2, 5)
        s["pre_warmup"], s["pre_steps"] = (1, 1) if quick else (2, 5)
        s["windows_per_axis"] = 2 if quick else 5
        s["sw_repeats"] = 1
        s["matmul"] = {
            "dtype": torch.float32,
            "n": 512 if preset == "smoke" else 2048,
            "iters": 3 if quick else 10,
        }
    s["postprocess_size"] = 512 if preset == "smoke" else 5000
    s["postprocess_repeats"] = 1 if quick else 3
    s["sampler_samples"] = (8 if preset == "smoke" else 16) if quick else 200
    s["sampler_warmup"] = 1 if quick else 5
    return s


def plan_benchmarks(
    cfg: Mapping[str, Any],
    *,
    device: torch.device,
    quick: bool,
    compile: bool,
    batch: int | None = None,
    data_dir: str | Path | None = None,
    seed: int = 0,
    preset_name: str = "paper",
) -> list[BenchSpec]:
    """The benchmark rows for this device and mode (see the module docstring), in run order."""
    from ssl4sar.benchmarks import training as tb

    s = _settings(preset_name, quick, device, batch)
    gpu = device.type == "cuda"
    dev = str(device)
    model_cfg = dict(cfg["model"])
    specs: list[BenchSpec] = []
    mm = s["matmul"]
    specs.append(
        BenchSpec(
            "matmul_peak",
            f"{str(mm['dtype']).replace('torch.', '')}-{mm['n']}",
            lambda: measure_matmul_peak(device, mm["dtype"], mm["n"], mm["iters"]),
            dev,
            str(mm["dtype"]).replace("torch.", ""),
            None,
        )
    )

    # (precision, fused, compile, tf32)
    from ssl4sar.models.fast import cpu_has_native_bf16

    if gpu:
        ft_variants = [("fp32", True, False, False), ("bf16", True, False, False)]
        if not quick:
            ft_variants = [
                ("fp32", False, False, False),
                ("fp32", True, False, False),
                ("fp32", True, False, True),
                ("bf16", False, False, False),
                ("bf16", True, False, False),
            ]
            if compile:
                ft_variants += [("bf16", False, True, False), ("bf16", True, True, False)]
    else:
        ft_variants = (
            [("fp32", True, False, False)]
            if quick
            else [("fp32", False, False, False), ("fp32", True, False, False)]
        )
        if not quick and cpu_has_native_bf16():
            ft_variants.append(("bf16", True, False, False))
        if compile:
            ft_variants.append(("fp32", True, True, False))

    def label(prec: str, fused: bool, comp: bool, tf32: bool) -> str:
        parts = ["tf32" if tf32 else prec, "fused" if fused else "default-attn"]
        if comp:
            parts.append("compile")
        return "+".join(parts)

    for prec, fused, comp, tf32 in ft_variants:

        def ft(prec: str = prec, fused: bool = fused, comp: bool = comp, tf32: bool = tf32) -> dict[str, Any]:
            return tb.benchmark_finetune_step(
                model_cfg,
                device=device,
                batch_size=s["train_batch"],
                precision=prec,
                fused=fused,
                compile=comp,
                tf32=tf32,
                steps=s["train_steps"],
                warmup=s["train_warmup"],
                seed=seed,
            )

        specs.append(
            BenchSpec(
                "finetune_step",
                label(prec, fused, comp, tf32),
                ft,
                dev,
                "bf16-mixed" if prec == "bf16" else ("tf32" if tf32 else "fp32"),
                s["train_batch"],
            )
        )

    pre_variants = [("bf16" if gpu else "fp32", True, False)]
    if gpu and not quick:
        pre_variants = [("fp32", True, False), ("bf16", True, False)] + (
            [("bf16", True, True)] if compile else []
        )
    for method in ("optsimmim", "opttranslator"):
        for prec, fused, comp in pre_variants:

            def pt(
                method: str = method, prec: str = prec, fused: bool = fused, comp: bool = comp
            ) -> dict[str, Any]:
                from ssl4sar.pretrain.common import method_settings

                settings = method_settings(cfg, method) if "pretrain" in cfg else None
                return tb.benchmark_pretrain_step(
                    method,
                    model_cfg,
                    device=device,
                    batch_size=s["train_batch"],
                    precision=prec,
                    fused=fused,
                    compile=comp,
                    steps=s["pre_steps"],
                    warmup=s["pre_warmup"],
                    seed=seed,
                    method_settings=settings,
                )

            specs.append(
                BenchSpec(
                    "pretrain_step",
                    f"{method}+{label(prec, fused, comp, False)}",
                    pt,
                    dev,
                    "bf16-mixed" if prec == "bf16" else "fp32",
                    s["train_batch"],
                )
            )

    c = int(model_cfg.get("img_size", paper_preset().model.img_size))
    stride = int(cfg.get("inference", {}).get("stride", c // 4))
    sigma = cfg.get("inference", {}).get("gaussian_sigma")
    side = _scene_side_for(s["windows_per_axis"], c, stride)
    sw_variants = [("fp32", True, False), ("fp32", False, False)]
    if gpu:
        sw_variants = [("fp32", True, False), ("bf16", True, False), ("bf16", False, False)]
        if compile and not quick:
            sw_variants.append(("bf16", True, True))
    for prec, fused, comp in sw_variants:

        def sw(prec: str = prec, fused: bool = fused, comp: bool = comp) -> dict[str, Any]:
            return _sliding_window(
                model_cfg,
                device,
                prec,
                fused,
                comp,
                side,
                stride,
                sigma,
                s["infer_batch"],
                s["sw_repeats"] + (1 if comp else 0),
                seed,
            )

        specs.append(
            BenchSpec(
                "sliding_window",
                label(prec, fused, comp, False),
                sw,
                dev,
                "bf16-mixed" if prec == "bf16" else "fp32",
                s["infer_batch"],
            )
        )

    specs.append(
        BenchSpec(
            "postprocess_mde",
            f"{s['postprocess_size']}px",
            lambda: _postprocess(s["postprocess_size"], s["postprocess_repeats"], seed),
            "cpu",
            "-",
            1,
        )
    )

    data_cfg = dict(cfg.get("data", {}))
    syn = cfg.get("synthetic", {})
    scene_size = tuple(syn.get("scene_size", paper_preset().synthetic.scene_size))
    for all_aug in (False, True):

        def ds(all_aug: bool = all_aug) -> dict[str, Any]:
            return benchmark_data_sampler(
                data_cfg,
                n_samples=s["sampler_samples"],
                warmup=s["sampler_warmup"],
                data_dir=data_dir,
                scene_size=scene_size,
                all_augmentations=all_aug,
                seed=seed,
            )

        specs.append(
            BenchSpec(
                "data_sampler",
                f"{data_cfg.get('context_size', c)}px-"
                + ("all-augmentations" if all_aug else "preset-probabilities"),
                ds,
                "cpu",
                "-",
                1,
            )
        )
    return specs


def _sliding_window(
    model_cfg: Mapping[str, Any],
    device: torch.device,
    prec: str,
    fused: bool,
    comp: bool,
    side: int,
    stride: int,
    sigma: float | None,
    batch: int,
    repeats: int,
    seed: int,
) -> dict[str, Any]:
    from ssl4sar.benchmarks.evaluation import benchmark_sliding_window
    from ssl4sar.models.fast import amp_dtype_for, optimize_for_device
    from ssl4sar.models.tyrion import Tyrion

    torch.manual_seed(seed)
    model = Tyrion.from_config(model_cfg).eval()
    optimize_for_device(model, device, fused=fused, compile=comp)
    c = model.img_size
    out = benchmark_sliding_window(
        model,
        side,
        batch_size=batch,
        stride=stride,
        sigma=sigma,
        device=device,
        amp_dtype=amp_dtype_for(device, prec),
        repeats=repeats,
        warmup=True,
        seed=seed,
    )
    out["benchmark"] = "sliding_window"
    out["throughput"] = out["windows_per_s"]
    out["throughput_unit"] = "windows/s"
    out["time_per_item_s"] = 1.0 / out["windows_per_s"] if out["windows_per_s"] > 0 else math.inf
    n10 = windows_in_scene((TEN_MP_SIDE, TEN_MP_SIDE), c, stride)
    out["windows_10mp_scene"] = n10
    out["seconds_10mp_scene_extrapolated"] = (
        n10 / out["windows_per_s"] if out["windows_per_s"] > 0 else math.inf
    )
    out["forward_flops_per_item"] = out["flops_per_item"] = _forward_flops(model_cfg)
    out["flops_note"] = "FlopCounterMode forward of one window on meta (matmul/conv/attention)"
    out["fused_attention"], out["compile"] = bool(fused), bool(comp)
    if "peak_cuda_allocated_mb" in out:
        out.update(peak_memory_mb=out["peak_cuda_allocated_mb"], memory_kind="cuda_max_allocated")
    elif "peak_rss_mb" in out:
        out.update(
            peak_memory_mb=out["peak_rss_mb"],
            memory_increase_mb=out.get("peak_rss_increase_mb"),
            memory_kind="rss_sampled",
        )
    return out


def _postprocess(size: int, repeats: int, seed: int) -> dict[str, Any]:
    from ssl4sar.benchmarks.evaluation import benchmark_postprocess_mde

    out = benchmark_postprocess_mde(size=size, seed=seed, repeats=repeats, memory=True)
    out["benchmark"] = "postprocess_mde"
    out["throughput"] = 1.0 / out["total_s"] if out["total_s"] > 0 else math.inf
    out["throughput_unit"] = "scenes/s"
    out["time_per_item_s"] = out["total_s"]
    if "peak_traced_mb" in out:
        out.update(peak_memory_mb=out["peak_traced_mb"], memory_kind="tracemalloc")
    return out


# ------------------------------------------------------------------------------------------------ running


def _row(spec: BenchSpec, raw: Mapping[str, Any], peak: Mapping[str, Any] | None) -> dict[str, Any]:
    """A table row from a benchmark's raw dict (all raw fields kept under ``details``)."""
    row: dict[str, Any] = {
        "name": spec.name,
        "variant": spec.variant,
        "device": raw.get("device", spec.device),
        "device_name": raw.get("device_name"),
        "precision": raw.get("precision", spec.precision),
        "batch": raw.get("batch_size", spec.batch),
        "throughput": raw.get("throughput"),
        "throughput_unit": raw.get("throughput_unit"),
        "time_per_item_s": raw.get("time_per_item_s"),
        "peak_memory_mb": raw.get("peak_memory_mb"),
        "memory_kind": raw.get("memory_kind"),
        "flops_per_item": raw.get("flops_per_item"),
        "flops_note": raw.get("flops_note"),
        "achieved_tflops": None,
        "fraction_of_peak": None,
        "peak_reference": None,
        "notes": list(spec.notes),
        "details": dict(raw),
    }
    if spec.name == "matmul_peak":
        row.update(
            throughput=raw["tflops"],
            throughput_unit="TFLOP/s",
            time_per_item_s=raw["seconds_per_matmul"],
            achieved_tflops=raw["tflops"],
            flops_per_item=2.0 * raw["n"] ** 3,
        )
    flops = row["flops_per_item"]
    if flops and row["throughput"] and row["throughput_unit"] in ("samples/s", "windows/s"):
        row["achieved_tflops"] = flops * row["throughput"] / 1e12
        if peak and peak.get("tflops"):
            row["fraction_of_peak"] = row["achieved_tflops"] / peak["tflops"]
            row["peak_reference"] = (
                f"measured {peak['dtype']} {peak['n']}² matmul, {peak['tflops']:.3g} TFLOP/s"
            )
    notes = row["notes"]
    if spec.name == "sliding_window":
        notes.append(
            f"10-MP scene ({TEN_MP_SIDE}² px, {raw['windows_10mp_scene']} windows at stride "
            f"{raw['stride']} px): {_fmt_duration(raw['seconds_10mp_scene_extrapolated'])} extrapolated "
            f"from {raw['n_windows']} windows of a {raw['scene_h']}² px scene"
        )
    if spec.name in ("finetune_step", "pretrain_step"):
        if raw.get("first_step_s") is not None and raw.get("compile"):
            notes.append(f"first step incl. compilation {raw['first_step_s']:.3g} s")
        if raw.get("compile_failed"):
            notes.append(f"torch.compile failed, eager: {raw['compile_failed'][:80]}")
        notes.append(f"{raw['steps']} timed steps")
    if spec.name == "postprocess_mde":
        notes.append(
            f"post-processing {raw['postprocess_s']:.3g} s + MDE {raw['mde_s']:.3g} s; "
            f"{raw['n_pred']} / {raw['n_gt']} front px"
        )
    if spec.name == "data_sampler":
        notes.append(
            f"one worker (in-process), {raw['n_samples']} samples, {raw['data']} scenes {raw['scene_shapes']}"
        )
    return row


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        return _json_safe(obj.item())
    if isinstance(obj, (torch.dtype, torch.device, Path)):
        return str(obj)
    return obj


def run_benchmarks(
    out_dir: str | Path | None = "bench_results",
    *,
    quick: bool = True,
    device: str | torch.device = "auto",
    only: Sequence[str] | None = None,
    preset: str = "paper",
    compile: str | bool = "auto",
    batch: int | None = None,
    data_dir: str | Path | None = None,
    seed: int = 0,
    append: bool = False,
) -> dict[str, Any]:
    """Run the benchmarks and (when ``out_dir`` is given) write ``bench.json`` and ``bench.md`` there.

    Args:
        out_dir: output folder (created); files are rewritten after every benchmark, so an interrupted run keeps
            the finished rows.
        quick: few iterations and small inputs (minutes on a laptop CPU); ``False``: the full GPU set.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        only: benchmark names (``finetune_step``), exact rows (``finetune_step/bf16+fused``) or shell-style patterns
            of rows (``finetune_step/bf16*``, ``*/*compile``); ``None`` runs everything.
        preset: ``paper`` (default), ``demo``, ``smoke`` or a YAML preset path: the model and sizes.
        compile: ``"auto"`` (``torch.compile`` variants on CUDA in full mode), ``True``/``"on"``, ``False``/``"off"``.
        batch: override the training and inference batch size.
        data_dir: CaFFe root for the data-sampler benchmark (default: synthetic scenes).
        seed: seed of weights, inputs and scenes.
        append: merge into the ``bench.json`` already in ``out_dir`` (rows with the same name and variant are
            replaced, the others kept) — to measure a long GPU set in several runs. The existing report must come
            from the same device, preset and mode (:class:`DataError` otherwise).

    Returns the report: ``schema``, ``created``, ``mode``, ``preset``, ``model``, ``environment``, ``peak``,
    ``results`` (rows, see :func:`_row`), ``failed`` and ``skipped`` (name, variant, reason), ``notes``.
    """
    from ssl4sar.config import load_preset
    from ssl4sar.models.fast import resolve_device

    dev = resolve_device(device)
    cfg = load_preset(preset)
    preset_name = str(cfg.get("name", preset))
    if isinstance(compile, str):
        if compile not in ("auto", "on", "off"):
            raise ValueError(f"compile must be 'auto', 'on' or 'off', got {compile!r}")
        use_compile = (dev.type == "cuda" and not quick) if compile == "auto" else compile == "on"
    else:
        use_compile = bool(compile)
    if only:
        unknown = [t for t in only if not any(fnmatch.fnmatchcase(b, t.split("/", 1)[0]) for b in BENCHMARKS)]
        if unknown:
            raise ValueError(
                f"--only {unknown}: unknown benchmark; choose from {', '.join(BENCHMARKS)} "
                "(optionally /variant)"
            )
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = (
            True  # fixed shapes: let cuDNN pick the fastest convolution algorithms
        )
    specs = plan_benchmarks(
        cfg,
        device=dev,
        quick=quick,
        compile=use_compile,
        batch=batch,
        data_dir=data_dir,
        seed=seed,
        preset_name=preset_name,
    )
    selected = [sp for sp in specs if _selected(sp.key, only)]
    model_cfg = dict(cfg["model"])
    is_paper = preset_name == "paper"
    notes = [
        "Throughput = batch / median step time after warm-up; time per item = its inverse.",
        "FLOPs: torch.utils.flop_counter.FlopCounterMode on the meta device, forward of one item (matmul, "
        "convolution, attention; 2 FLOPs per multiply-add; norms and element-wise ops not counted); "
        "training rows use 3 x forward.",
        "% of peak: achieved FLOP/s over the measured dense matmul peak of this device (bf16 on GPU, fp32 on CPU).",
        "Peak memory: GPU rows torch.cuda.max_memory_allocated; CPU rows the peak resident set size of the whole "
        "process (runtime included) with its increase during the benchmark in brackets; post-processing the "
        "peak of numpy allocations (tracemalloc).",
        "Sliding-window seconds per 10-MP scene are extrapolated from windows/s and the window count of a "
        f"{TEN_MP_SIDE}x{TEN_MP_SIDE} px scene at the preset's stride.",
        "Training/inference inputs are random tensors of the right shapes (no data-dependent control flow).",
    ]
    if not is_paper:
        notes.insert(
            0,
            f"Preset '{preset_name}': the {model_cfg.get('img_size')} px {preset_name} model "
            f"(embed_dim {model_cfg.get('embed_dim')}, depths {model_cfg.get('depths')}) — NOT the "
            "paper model; sizes are reduced everywhere.",
        )
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "mode": "quick" if quick else "full",
        "preset": preset_name,
        "paper_model": is_paper,
        "model": model_cfg,
        "compile": use_compile,
        "environment": environment(dev),
        "peak": None,
        "results": [],
        "failed": [],
        "skipped": [],
        "notes": notes,
    }
    out = Path(out_dir) if out_dir is not None else None
    if append and out is not None and (out / "bench.json").is_file():
        old = load_report(out / "bench.json")
        same = (
            old["environment"].get("device_name") == report["environment"].get("device_name")
            and old.get("preset") == report["preset"]
            and old.get("mode") == report["mode"]
        )
        if not same:
            raise DataError(
                out / "bench.json",
                f"--append: the report is from {old['environment'].get('device_name')}"
                f", preset {old.get('preset')}, {old.get('mode')} mode; this run is "
                f"{report['environment'].get('device_name')}, preset {preset_name}, {report['mode']} "
                "mode",
                "use another --out folder",
            )
        new_keys = {sp.key for sp in selected}
        report["results"] = [r for r in old["results"] if f"{r['name']}/{r['variant']}" not in new_keys]
        report["failed"] = [f for f in old.get("failed", []) if f"{f['name']}/{f['variant']}" not in new_keys]
        report["skipped"] = [
            f for f in old.get("skipped", []) if f"{f['name']}/{f['variant']}" not in new_keys
        ]
        report["peak"] = old.get("peak")
        report["compile"] = bool(old.get("compile")) or use_compile

    def save() -> None:
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            write_json_atomic(out / "bench.json", _json_safe(report))
            write_text_atomic(out / "bench.md", render_markdown(report))

    # the peak is the reference of every "% of peak": measure it whenever a model benchmark runs
    needs_peak = any(sp.name in ("finetune_step", "pretrain_step", "sliding_window") for sp in selected)
    if needs_peak and not any(sp.name == "matmul_peak" for sp in selected):
        selected.insert(0, specs[0])
    t_start = time.perf_counter()
    for i, spec in enumerate(selected):
        log.info("[%d/%d] %s on %s …", i + 1, len(selected), spec.key, spec.device)
        t0 = time.perf_counter()
        try:
            raw = spec.fn()
        except ImportError as exc:
            report["skipped"].append(
                {"name": spec.name, "variant": spec.variant, "reason": f"{type(exc).__name__}: {exc}"}
            )
            log.warning("%s skipped: %s", spec.key, exc)
            continue
        except Exception as exc:  # keep going: one failing row (e.g. out of memory) must not lose the others
            report["failed"].append(
                {
                    "name": spec.name,
                    "variant": spec.variant,
                    "error": f"{type(exc).__name__}: {exc}",
                    "traceback": traceback.format_exc(limit=6),
                }
            )
            log.error("%s failed: %s: %s", spec.key, type(exc).__name__, exc)
            _free(dev)
            save()
            continue
        finally:
            _free(dev)
        if spec.name == "matmul_peak":
            report["peak"] = raw
        row = _row(spec, raw, report["peak"])
        report["results"] = [
            r for r in report["results"] if (r["name"], r["variant"]) != (spec.name, spec.variant)
        ]
        row["wall_s"] = time.perf_counter() - t0
        report["results"].append(row)
        log.info(
            "    %s: %.4g %s (%.1f s)",
            spec.key,
            row["throughput"] or float("nan"),
            row["throughput_unit"],
            row["wall_s"],
        )
        save()
    report["total_wall_s"] = time.perf_counter() - t_start
    save()
    return report


# ------------------------------------------------------------------------------------------------ rendering


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def _fmt_time(s: float | None) -> str:
    if s is None or not math.isfinite(s):
        return "–"
    if s < 1e-3:
        return f"{s * 1e6:.3g} µs"
    if s < 1:
        return f"{s * 1e3:.3g} ms"
    return f"{s:.3g} s"


def _fmt_duration(s: float) -> str:
    if not math.isfinite(s):
        return "–"
    if s >= 2 * 3600:
        return f"{s / 3600:.3g} h"
    if s >= 120:
        return f"{s / 60:.3g} min"
    return f"{s:.3g} s"


def _fmt_memory(r: Mapping[str, Any]) -> str:
    """Peak memory cell: CUDA peak allocated; CPU peak RSS of the process with the increase during the
    benchmark in brackets; numpy-traced peak for the tracemalloc rows."""
    mem = r.get("peak_memory_mb")
    if mem is None:
        return "–"
    kind = r.get("memory_kind")
    if kind == "tracemalloc":
        return f"{mem:,.0f} MB (traced)"
    inc = (r.get("details") or {}).get("memory_increase_mb")
    if kind in ("rss_hwm", "rss_sampled", "ru_maxrss") and inc is not None and math.isfinite(inc):
        return f"{mem:,.0f} MB (+{max(inc, 0.0):,.0f})"
    return f"{mem:,.0f} MB"


def render_markdown(report: Mapping[str, Any]) -> str:
    """The report as markdown: a heading with the device and mode, the environment, the table, notes, failures."""
    env = report.get("environment", {})
    lines = [f"# ssl4sar benchmarks — {env.get('device_name', env.get('device', '?'))}", ""]
    lines.append(
        f"Mode **{report.get('mode')}**, preset **{report.get('preset')}**"
        + ("" if report.get("paper_model") else " (not the paper model)")
        + f", {report.get('created', '')}."
    )
    lines.append("")
    keys = (
        "torch",
        "timm",
        "python",
        "cuda",
        "cudnn",
        "device_name",
        "device_memory_gb",
        "cpu_model",
        "cpu_count",
        "cpu_usable",
        "torch_threads",
        "cpu_capability",
        "git_commit",
        "load_average",
    )
    env_items = [
        f"{k} {_fmt(env[k]) if not isinstance(env[k], list) else ', '.join(f'{x:.2f}' for x in env[k])}"
        for k in keys
        if env.get(k) is not None
    ]
    lines += ["Environment: " + "; ".join(env_items) + ".", ""]
    header = [
        "benchmark",
        "variant",
        "device",
        "precision",
        "batch",
        "throughput",
        "time / item",
        "peak memory",
        "GFLOP / item",
        "TFLOP/s",
        "% of peak",
        "notes",
    ]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in report.get("results", []):
        mem_s = _fmt_memory(r)
        flops = r.get("flops_per_item")
        frac = r.get("fraction_of_peak")
        dev_label = "GPU" if str(r.get("device", "")).startswith("cuda") else "CPU"
        cells = [
            r["name"],
            r["variant"],
            dev_label,
            _fmt(r.get("precision")),
            _fmt(r.get("batch")),
            f"{_fmt(r.get('throughput'))} {r.get('throughput_unit') or ''}".strip(),
            _fmt_time(r.get("time_per_item_s")),
            mem_s,
            "–" if not flops else f"{flops / 1e9:,.1f}",
            _fmt(r.get("achieved_tflops")),
            "–" if frac is None else f"{100 * frac:.1f} %",
            "; ".join(r.get("notes", [])),
        ]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    lines.append("")
    for n in report.get("notes", []):
        lines.append(f"- {n}")
    for f in report.get("failed", []):
        lines.append(f"- **failed** {f['name']}/{f['variant']}: {f['error']}")
    for sk in report.get("skipped", []):
        lines.append(f"- skipped {sk['name']}/{sk['variant']}: {sk['reason']}")
    if report.get("total_wall_s") is not None:
        lines.append(f"- total wall time {report['total_wall_s']:.0f} s")
    return "\n".join(lines) + "\n"


def load_report(path: str | Path) -> dict[str, Any]:
    """Read a ``bench.json`` written by :func:`run_benchmarks`; :class:`DataError` if it is not one."""
    p = Path(path)
    if not p.is_file():
        raise DataError(p, "benchmark report not found", "run  python -m ssl4sar.bench --out <folder>  first")
    try:
        report = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(p, f"not a JSON file: {exc}", "re-run the benchmark") from exc
    if not isinstance(report, dict) or report.get("schema") != SCHEMA:
        raise DataError(
            p,
            f"not an ssl4sar benchmark report (schema {report.get('schema') if isinstance(report, dict) else None!r}, "
            f"expected {SCHEMA!r})",
            "re-run  python -m ssl4sar.bench",
        )
    for key in ("results", "environment"):
        if key not in report:
            raise DataError(p, f"benchmark report without {key!r}", "re-run  python -m ssl4sar.bench")
    bad = [
        i
        for i, r in enumerate(report["results"])
        if not isinstance(r, dict) or not {"name", "variant", "throughput"} <= set(r)
    ]
    if bad:
        raise DataError(p, f"result rows {bad[:5]} lack name / variant / throughput")
    return report


def results_frame(report: Mapping[str, Any]) -> Any:
    """The result rows as a ``pandas.DataFrame`` (one row per benchmark; ``details`` and ``notes`` dropped)."""
    import pandas as pd

    rows = [{k: v for k, v in r.items() if k not in ("details",)} for r in report.get("results", [])]
    df = pd.DataFrame(rows)
    if "notes" in df:
        df["notes"] = df["notes"].map(lambda n: "; ".join(n) if isinstance(n, list) else n)
    return df


def variant_speedups(report: Mapping[str, Any]) -> Any:
    """Speed-ups of the fast paths, as a ``pandas.DataFrame``.

    For every row whose variant differs from another row of the same benchmark only in one switch — fused vs
    default attention, bf16 vs fp32, compiled vs eager — the throughput ratio (fast / slow). Columns: ``benchmark``,
    ``switch``, ``from``, ``to``, ``speedup``.
    """
    import pandas as pd

    rows = [r for r in report.get("results", []) if r.get("throughput")]

    def parts(variant: str) -> tuple[str, frozenset[str]]:
        tokens = variant.split("+")
        head = tokens[0] if tokens[0] in ("optsimmim", "opttranslator") else ""
        return head, frozenset(t for t in tokens if t != head)

    switches = [
        ("attention", "default-attn", "fused"),
        ("precision", "fp32", "bf16"),
        ("compile", None, "compile"),
    ]
    out = []
    for r in rows:
        head, toks = parts(r["variant"])
        for switch, slow, fast in switches:
            if fast not in toks:
                continue
            base_toks = (toks - {fast}) | ({slow} if slow else set())
            for b in rows:
                if b["name"] == r["name"] and parts(b["variant"]) == (head, frozenset(base_toks)):
                    out.append(
                        {
                            "benchmark": r["name"],
                            "switch": switch,
                            "from": b["variant"],
                            "to": r["variant"],
                            "speedup": r["throughput"] / b["throughput"],
                        }
                    )
    return pd.DataFrame(out, columns=["benchmark", "switch", "from", "to", "speedup"])


def bar_chart(report: Mapping[str, Any], title: str | None = None) -> Any:
    """Horizontal throughput bars, one panel per benchmark (its variants as bars, GPU orange, CPU blue).

    Returns the matplotlib figure.
    """
    import matplotlib.pyplot as plt

    rows = [r for r in report.get("results", []) if r.get("throughput") and r.get("name") != "matmul_peak"]
    names = list(dict.fromkeys(r["name"] for r in rows))
    if not names:
        fig, ax = plt.subplots(figsize=(6, 1.5))
        ax.text(0.5, 0.5, "no results", ha="center", va="center")
        ax.set_axis_off()
        return fig
    heights = [0.45 * sum(r["name"] == n for r in rows) + 0.7 for n in names]
    fig, axes = plt.subplots(
        len(names), 1, figsize=(8, sum(heights) + 0.6), squeeze=False, gridspec_kw={"height_ratios": heights}
    )
    for a, name in zip(axes[:, 0], names):
        sub = [r for r in rows if r["name"] == name]
        vals = [r["throughput"] for r in sub]
        colors = ["tab:orange" if str(r.get("device", "")).startswith("cuda") else "tab:blue" for r in sub]
        a.barh(range(len(sub)), vals, color=colors)
        a.set_yticks(range(len(sub)), [r["variant"] for r in sub], fontsize=8)
        a.invert_yaxis()
        a.set_title(name, fontsize=9, loc="left")
        a.set_xlabel(sub[0]["throughput_unit"], fontsize=8)
        for y, v in enumerate(vals):
            a.text(v, y, f" {v:.3g}", va="center", fontsize=8)
        a.margins(x=0.25)
    env = report.get("environment", {})
    fig.suptitle(
        title or f"{env.get('device_name', '')} — preset {report.get('preset')}, {report.get('mode')} mode",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------------------ CLI


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``python -m ssl4sar.bench`` (and of an ``ssl4sar bench`` sub-command)."""
    parser.add_argument(
        "--quick",
        action="store_true",
        help="few iterations and small inputs (minutes on a laptop CPU); default: the full GPU set",
    )
    parser.add_argument("--out", default="bench_results", help="output folder for bench.json and bench.md")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        default=None,
        help=f"run only these benchmarks ({', '.join(BENCHMARKS)}), rows 'name/variant' or "
        "patterns such as 'finetune_step/bf16*'",
    )
    parser.add_argument(
        "--preset",
        default="paper",
        help="paper (default) | demo | smoke | preset YAML: model and sizes (smoke/demo are not "
        "the paper model)",
    )
    parser.add_argument(
        "--compile",
        choices=("auto", "on", "off"),
        default="auto",
        help="torch.compile variants (auto: on CUDA in full mode)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=None, help="override the training / inference batch size"
    )
    parser.add_argument(
        "--data", default=None, help="CaFFe root for the data-sampler benchmark (default synthetic)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--append",
        action="store_true",
        help="merge into the bench.json already in --out (same device / preset / mode): measure a long "
        "set in several runs",
    )
    parser.add_argument("--list", action="store_true", help="list the rows that would run, then exit")


def run(args: argparse.Namespace) -> int:
    """Run the benchmarks of ``args``; write the files; show the markdown table on stdout. Returns 0, or 2 on bad
    arguments."""
    from ssl4sar.config import load_preset
    from ssl4sar.io import ensure_writable_dir
    from ssl4sar.models.fast import resolve_device

    try:
        if args.list:
            dev = resolve_device(args.device)
            cfg = load_preset(args.preset)
            specs = plan_benchmarks(
                cfg,
                device=dev,
                quick=args.quick,
                compile=(dev.type == "cuda" and not args.quick)
                if args.compile == "auto"
                else args.compile == "on",
                batch=args.batch_size,
                preset_name=str(cfg.get("name")),
            )
            sys.stdout.write("\n".join(sp.key for sp in specs if _selected(sp.key, args.only)) + "\n")
            return 0
        ensure_writable_dir(args.out)  # before minutes of measurements
        report = run_benchmarks(
            args.out,
            quick=args.quick,
            device=args.device,
            only=args.only,
            preset=args.preset,
            compile=args.compile,
            batch=args.batch_size,
            data_dir=args.data,
            seed=args.seed,
            append=args.append,
        )
    except (ValueError, DataError) as exc:
        log.error("%s", exc)
        return 2
    sys.stdout.write(render_markdown(report))
    sys.stdout.write(f"\nwrote {Path(args.out) / 'bench.json'} and {Path(args.out) / 'bench.md'}\n")
    return 1 if report["failed"] else 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ssl4sar.bench``."""
    parser = argparse.ArgumentParser(prog="python -m ssl4sar.bench", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    configure(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose == 0 else logging.DEBUG,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
