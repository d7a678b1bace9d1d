# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python (ssl4sar)
#     language: python
#     name: ssl4sar
# ---

# %% tags=["remove-cell"]
# Colab / JupyterHub setup (written by `make sync` from book/_config.yml): installs ssl4sar with its book
# extra when it is not importable (Colab, a fresh JupyterHub kernel). Where ssl4sar is installed (`make book`,
# papermill, a clone with `pip install -e ".[book]"`) it does nothing. `device = "auto"` then uses the GPU.
import importlib.util
import subprocess
import sys

if importlib.util.find_spec("ssl4sar") is None:
    pip = [sys.executable, "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "ssl4sar[book] @ git+https://github.com/ssl4sar/ssl4sar"], check=True)
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    print("GPU:", gpu or "none (on Colab: Runtime > Change runtime type > GPU)")

# %% [markdown]
# # Appendix: throughput and memory
#
# How long does it take to train and apply TYRION, and where does the time go? This appendix measures the heavy
# steps of the pipeline on the machine that builds the book, with `python -m ssl4sar.bench` (`make bench`):
#
# - **fine-tuning steps** of the network (forward, the centre + context cross-entropy/Dice loss, backward, SGD);
# - **pretraining steps** of OptSimMIM and OptTranslator;
# - **sliding-window inference** (overlapping windows with Gaussian stitching), in windows per second and in
#   minutes per 10-megapixel scene;
# - **post-processing + mean distance error** of a 5000 × 5000 px scene;
# - the **data sampler** (random context crop with re-zoom and the augmentations) on one worker;
# - the **pretraining sampler** on one worker, with every glacier's optical image read once before the workers
#   start (the library's default) against reading them on demand, on 8 synthetic glaciers of 2 megapixels.
#
# The network benchmarks run two *execution paths* in the same process, in alternating rounds: the **reference
# path** — what the official code does: float32, timm's window attention, the full decoder output of every window,
# one window per forward pass — and the library's **fast path**: bf16 autocast where the processor computes bf16
# natively (recent GPUs, CPUs with AVX512-BF16 or AMX; float32 elsewhere) with the patch embedding and the 1 × 1
# head kept in float32, the fused attention kernel, and at inference a decoder that computes only the centre of each
# window that is kept, with its ×2 upsampling convolutions in polyphase form (four 2 × 2 kernels on the
# un-upsampled map instead of a 3 × 3 kernel on the upsampled one: 16/36 of the multiply-adds, the same function)
# — on CPUs with two single-threaded forward passes side by side, which use two cores better than one pass with two
# threads. The benchmark reports the
# **ratio** of the two, which a busy machine disturbs much less than the absolute numbers. Every row also reports
# its peak memory, the network FLOPs per item (counted with `torch.utils.flop_counter`; a training step counts
# 3 × the forward) and the fraction of the device's *measured* dense-matmul peak that the step achieves.
#
# This chapter needs nothing from earlier chapters. If `work_dir/bench/bench.json` exists (or `bench_json` names a
# report), it is shown instead of measuring again. Reports committed with the book (`book/bench/*.json`: the paper
# model on a 2-core CPU with `make bench`, and GPU runs when a GPU was available) are shown at the end.

# %% tags=["parameters"]
preset = "demo"            # "paper" | "demo" | "smoke" | path to a YAML preset
data_dir = None            # CaFFe root for the data-sampler benchmark; None: the synthetic data in work_dir/data/caffe
ssl4sar_dir = None         # unused here
work_dir = "../book/_work/demo"   # artefacts shared between chapters
device = "auto"            # "auto" | "cpu" | "cuda" | "cuda:N"
seed = 0
bench_json = None          # an existing bench.json to show; None: work_dir/bench/bench.json (measured if missing)
rerun = False              # measure again even if the report exists
committed_reports = "../book/bench"   # folder of bench.json reports committed with the book (shown at the end)

# %% tags=["hide-input"]
import logging
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from IPython.display import Markdown, display

from ssl4sar import bench
from ssl4sar.bench import roofline
from ssl4sar.book import WorkLayout
from ssl4sar.config import load_preset

warnings.filterwarnings("ignore", message="IProgress not found")   # tqdm in a kernel without ipywidgets
logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
logging.getLogger("ssl4sar.bench").setLevel(logging.INFO)
layout = WorkLayout(Path(work_dir))   # threads are not pinned: the benchmark measures the machine as it is

# %% [markdown]
# ## Measuring
#
# The mode follows the preset: `smoke` runs one benchmark of each kind with the tiny smoke network (seconds —
# **not** the paper model), `demo` runs the quick mode with the demo network (a few minutes on a laptop CPU), and
# `paper` runs the paper network: on a GPU the full set (the fast path with one switch off at a time, and
# `torch.compile`), on a CPU the quick mode (reference and fast path, three alternating rounds).

# %%
report, report_path, measured = bench.book_report(
    layout.root / "bench", preset=preset, device=device, seed=seed,
    caffe_root=data_dir if data_dir is not None else layout.caffe, bench_json=bench_json, rerun=rerun)
print(f"wrote {layout.relative(report_path)} and bench.md beside it" if measured else
      f"showing the existing report {layout.relative(report_path)} (set rerun = True to measure again)")
display(Markdown(bench.environment_line(report)))

# %% [markdown]
# ## The table
#
# Throughput is the batch size over the median step time after warm-up steps; on GPUs the steps are timed with
# CUDA events. The FLOPs count matrix products, convolutions and attention (two FLOPs per multiply-add) and leave
# out normalisation and element-wise work, so the "% of peak" is a lower bound of how busy the device is. The
# 10-megapixel scene time is **extrapolated** from the measured windows per second and the number of windows such
# a scene (3162 × 3162 px) needs at the preset's stride. To fit the page, the table leaves out the device, the
# time per item (the inverse of the throughput) and the FLOPs per item; `bench.md`, written beside `bench.json`,
# has every column.

# %%
display(Markdown(bench.render_markdown(report, heading=False, compact=True)))

# %%
fig = bench.bar_chart(report)
plt.show()

# %% [markdown]
# ## What the fast path buys
#
# Each ratio divides a path's throughput by the reference path's, both from their best round. The rounds
# alternate, so every round also gives a paired ratio of two runs made back to back; `ratio_low` and `ratio_high`
# are the lowest and highest of them. A range that straddles a target says that one run cannot decide it: on a
# shared machine, measure more rounds (as `book/bench/cpu-2core-inference-2026-12-05/` does). `fast-fp32` is the
# fast path without bf16: the fused attention kernel (`scaled_dot_product_attention` with SwinV2's
# cosine-attention temperature folded into the queries and the position bias plus shifted-window mask passed as
# one additive mask; it reproduces the official network's logits to 7 · 10⁻⁶ of the largest logit) and the
# centre-only decoder (the last decoder convolutions run on the kept centre plus a one-pixel halo — exact, since
# no normalisation follows them). Both keep the weights and checkpoints unchanged; only bf16 changes numbers,
# and `python -m ssl4sar.bench --accuracy CKPT DATA` measures by how much on a trained model.
#
# PyTorch picks the attention kernel for each call, and it falls back to its slow math kernel without a warning.
# So the report records its choice for every attention block (the "Attention kernels" line above the table). On a
# CPU, inference runs the flash kernel. Training runs the math kernel, because the CPU's flash kernel cannot return
# the gradient of the position-bias mask, which the position-bias network learns through. On a GPU every block
# should run a fused kernel (memory-efficient or cuDNN).

# %%
ratios = bench.styled_ratios(report)
display(ratios if ratios is not None else Markdown("*no reference/fast pair in this report*"))

# %% [markdown]
# ## What it means for a training run
#
# With the measured fine-tuning throughput, one epoch of the paper's recipe (40 000 samples) and the 150 epochs of
# a fine-tuning run take the times below on *one* such device (the paper trained on four A100 GPUs); inference of
# a test scene of 10 megapixels takes the sliding-window time of the table.

# %%
paper = load_preset("paper")
times = bench.training_time_table(report, int(paper["data"]["samples_per_epoch"]), int(paper["finetune"]["max_epochs"]))
if not times.empty:
    display(times.style.format(precision=3).hide(axis="index"))
    if not report.get("paper_model"):
        print(f"(the {report['preset']} network is smaller than the paper's: these are not paper-model times)")

# %% [markdown]
# ## Using the fast paths
#
# `ssl4sar evaluate` and `ssl4sar predict` use the fast path by default (`--precision auto`, the presets'
# `inference.precision`; `--precision fp32` gives the reference arithmetic); `ssl4sar finetune --precision
# bf16-mixed` trains in bf16 where the hardware computes it natively: GPUs of compute capability 8.0 or later (A100,
# L4, H100) and CPUs with AVX512-BF16 or AMX. A T4 (Colab's free tier) or a V100 only emulates bf16, more slowly
# than float32, so there both commands run in float32 and training says so in a warning. In code:
#
# ```python
# from ssl4sar.models import Tyrion
# from ssl4sar.models.fast import amp_dtype_for, autocast, optimize_for_device
#
# model = Tyrion.from_config(cfg["model"])
# optimize_for_device(model, "cuda", compile=True)   # fused attention + channels-last (+ torch.compile)
# with autocast("cuda", amp_dtype_for("cuda")):      # bf16 where the device computes it natively
#     logits = model(x)                              # or model.centre_logits(x, 256): the kept centre only
# ```
#
# `optimize_for_device` switches the attention to the fused kernel (`Tyrion(..., fused_attention=True)` or
# `model.set_fused_attention(True)` do the same), converts the decoder's convolutions to channels-last on GPUs,
# and optionally compiles the model; if compilation fails, the model falls back to eager execution with a
# warning. None of it changes a weight or a checkpoint key.

# %% [markdown]
# ## Reports committed with the book
#
# The table above is this build's machine with the preset's network. The reports below were measured with
# `make bench` (`python -m ssl4sar.bench`) and committed to `book/bench/`, so that the book also shows the **paper
# model** (SwinV2-T TYRION at 512 px) on the machines it was measured on. To add one: run
# `python -m ssl4sar.bench --out bench_results` (full mode on a GPU, `--quick` on a CPU) and copy
# `bench_results/bench.json` to `book/bench/<machine>.json` (or the whole folder to `book/bench/<machine>/`, with a
# README that says how it was measured).

# %%
committed = bench.find_reports(committed_reports)
for label, path in committed:
    other = bench.load_report(path)
    display(Markdown(bench.report_header(label, other)))
    display(Markdown(bench.render_markdown(other, heading=False, compact=True)))
    if (oratios := bench.styled_ratios(other)) is not None:
        display(oratios)
if not committed:
    print(f"no committed reports in {committed_reports}")

# %% [markdown]
# ## How close to the peak can a training step get?
#
# The GPU reports above run the paper network's training step at 12–15 % of the measured bf16 matmul peak. How much
# of that gap comes from the network's own shapes? `python -m ssl4sar.bench.roofline` answers with a roofline. It
# records every operator of one step on PyTorch's `meta` device (shapes only, seconds on any machine), with its FLOPs
# and the bytes it reads and writes. An operator takes at least max(FLOPs / peak, bytes / bandwidth), which gives
# two bounds on the step:
#
# - *unfused*: every operator goes through memory, as in eager PyTorch;
# - *fused*: all element-wise work is folded into the matrix products, convolutions and attention, which no
#   implementation can beat.
#
# With `--measure`, it also times each compute kernel of the step alone on the device. The figures below are read
# in `book/bench/roofline-2026-12-05/README.md`. On the H200 the shapes allow over 40 % even unfused. In the
# compiled step at batch 16, though, the compute kernels alone ran at 2.7× their roofline: about 28 ms, as long as
# a whole step at 35 % of the peak may take. The other 50 ms of that 80 ms step went to the glue between them.
# Part of those 28 ms was PyTorch's float32 math attention in 7 of the 12 attention blocks: their position-bias mask
# had a layout that CUDA's fused kernels refuse. Since commit 014915f those blocks run the fused kernel too; the
# next GPU report will show how much that gains.

# %%
for label, path in roofline.find_reports(committed_reports):
    report = roofline.load_report(path)
    display(Markdown(f"**{label}**"))
    display(Markdown(roofline.render_markdown(report, top=5)))   # with measured kernels: the 5 slowest

# %%
print(f"GPU available in this kernel: {torch.cuda.is_available()}")
