"""Throughput, memory and fast/reference ratios of this machine: ``python -m ssl4sar.bench`` (``make bench``).

Writes ``bench.json`` and ``bench.md`` into ``--out``. The model benchmarks run the official code's *reference path*
(fp32, timm's window attention, the full decoder output of every window, one window per forward pass, eager, no cuDNN
autotuning) and the library's *fast path* (:func:`ssl4sar.bench.paths.fast_path`: bf16 autocast where the device
computes it natively, fused SDPA attention, centre-only decoding at inference) in one process, in alternating rounds,
and report the ratio:

===================  ==========================================================================================
``matmul_peak``      dense matmul FLOP/s (bf16 on CUDA, fp32 on CPU): the reference of "% of peak"
``finetune_step``    TYRION fine-tuning steps (forward, centre + context CE/Dice, backward, SGD), per path
``pretrain_step``    OptSimMIM and OptTranslator steps, per path
``sliding_window``   overlapping-window inference with Gaussian stitching (windows/s) per path, and minutes per
                     10-megapixel scene at the preset's stride (extrapolated from windows/s)
``postprocess_mde``  post-processing (§7.2) + mean distance error (§8.1) of one 5000 × 5000 px scene
``data_sampler``     the fine-tuning sampler (random crop with re-zoom + augmentations, §3.3), one worker
``pretrain_sampler`` the pretraining sampler (§2.3), one worker, optical images preloaded vs read on demand (the
                     ratio of the two in the row's notes: the on-demand mode is not the official code's path)
``accuracy``         with ``--accuracy CKPT DATA``: fast vs reference path class maps and test MDE of a checkpoint
===================  ==========================================================================================

``--quick``: reference and fast path, 3 alternating rounds (``make bench``: the paper network on a CPU in minutes).
Without it: also the fast path's ablations (one switch off each: bf16, fused attention, channels-last, centre-only,
batch, threads; ``torch.compile`` on CUDA) and more rounds. ``--preset smoke`` / ``demo`` use those presets' (not the
paper's) network.

Modules: :mod:`~ssl4sar.bench.measure` (the peak-memory meter, timing, alternating rounds, FLOPs),
:mod:`~ssl4sar.bench.paths` (reference and fast path), :mod:`~ssl4sar.bench.training`,
:mod:`~ssl4sar.bench.windows`, :mod:`~ssl4sar.bench.postprocess`, :mod:`~ssl4sar.bench.sampler`,
:mod:`~ssl4sar.bench.accuracy` (the measurements), :mod:`~ssl4sar.bench.plan` (one dataclass per benchmark),
:mod:`~ssl4sar.bench.runner`, :mod:`~ssl4sar.bench.report`, :mod:`~ssl4sar.bench.environment`,
:mod:`~ssl4sar.bench.attention` (the attention kernel PyTorch picks for each block of the fast path);
:mod:`~ssl4sar.bench.roofline` (``python -m ssl4sar.bench.roofline``) bounds a training step from its shapes, with
the operator records of :mod:`~ssl4sar.bench.traffic`. The
command line (``ssl4sar bench``, ``python -m ssl4sar.bench``) is :mod:`ssl4sar.commands.bench`.
"""

from __future__ import annotations

from ssl4sar.bench.environment import environment, measure_matmul_peak
from ssl4sar.bench.measure import (
    TRAINING_FLOPS_FACTOR,
    PeakMemory,
    alternate,
    count_flops,
    time_steps,
    warmup_steps,
)
from ssl4sar.bench.paths import REFERENCE, ExecPath, fast_path, fast_training_path
from ssl4sar.bench.plan import BENCHMARKS, plan_benchmarks, selected
from ssl4sar.bench.postprocess import benchmark_postprocess_mde, synthetic_front_scene
from ssl4sar.bench.report import (
    SCHEMA,
    bar_chart,
    environment_line,
    find_reports,
    load_report,
    ratios_frame,
    render_markdown,
    report_header,
    results_frame,
    styled_ratios,
    training_time_table,
    variant_speedups,
)
from ssl4sar.bench.runner import SMOKE_SELECTION, book_report, run_benchmarks
from ssl4sar.bench.sampler import benchmark_data_sampler, benchmark_pretrain_sampler
from ssl4sar.bench.training import StepSettings, benchmark_finetune_step, benchmark_pretrain_step
from ssl4sar.bench.windows import (
    TEN_MP_SIDE,
    benchmark_sliding_window,
    build_model,
    scene_side_for,
    windows_in_scene,
)

__all__ = [
    "BENCHMARKS",
    "REFERENCE",
    "SCHEMA",
    "TEN_MP_SIDE",
    "TRAINING_FLOPS_FACTOR",
    "ExecPath",
    "PeakMemory",
    "StepSettings",
    "alternate",
    "SMOKE_SELECTION",
    "bar_chart",
    "book_report",
    "environment_line",
    "report_header",
    "styled_ratios",
    "training_time_table",
    "benchmark_data_sampler",
    "benchmark_pretrain_sampler",
    "benchmark_finetune_step",
    "benchmark_postprocess_mde",
    "benchmark_pretrain_step",
    "benchmark_sliding_window",
    "build_model",
    "count_flops",
    "environment",
    "fast_path",
    "fast_training_path",
    "find_reports",
    "load_report",
    "measure_matmul_peak",
    "plan_benchmarks",
    "ratios_frame",
    "render_markdown",
    "results_frame",
    "run_benchmarks",
    "scene_side_for",
    "selected",
    "synthetic_front_scene",
    "time_steps",
    "variant_speedups",
    "warmup_steps",
    "windows_in_scene",
]
