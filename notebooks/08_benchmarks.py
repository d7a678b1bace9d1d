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
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet",
                    "ssl4sar[book] @ git+https://github.com/ssl4sar/ssl4sar"], check=True)
    import torch

    print("GPU:", torch.cuda.get_device_name(0) if torch.cuda.is_available()
          else "none (on Colab: Runtime > Change runtime type > GPU)")

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
# - the **data sampler** (random context crop with re-zoom and the augmentations) on one worker.
#
# The network benchmarks run two *execution paths* in the same process, in alternating rounds: the **reference
# path** — what the official code does: float32, timm's window attention, the full decoder output of every window,
# one window per forward pass — and the library's **fast path**: bf16 autocast where the processor computes bf16
# natively (recent GPUs, CPUs with AVX512-BF16 or AMX; float32 elsewhere), the fused attention kernel, and at
# inference a decoder that computes only the centre of each window that is kept. The benchmark reports the
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

# %%
import logging
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import torch
from IPython.display import Markdown, display

warnings.filterwarnings("ignore", message="IProgress not found")   # tqdm in a kernel without ipywidgets
from ssl4sar import bench
from ssl4sar.config import load_preset
from ssl4sar.models.fast import resolve_device

logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
logging.getLogger("ssl4sar.bench").setLevel(logging.INFO)
pd.set_option("display.max_colwidth", 90)
cfg = load_preset(preset)
preset_name = cfg.get("name", str(preset))
work = Path(work_dir)
out_dir = work / "bench"
dev = resolve_device(device)
caffe_root = Path(data_dir) if data_dir is not None else work / "data" / "caffe"

# %% [markdown]
# ## Measuring
#
# The mode follows the preset: `smoke` runs one benchmark of each kind with the tiny smoke network (seconds —
# **not** the paper model), `demo` runs the quick mode with the demo network (a few minutes on a laptop CPU), and
# `paper` runs the paper network: on a GPU the full set (the fast path with one switch off at a time, and
# `torch.compile`), on a CPU the quick mode (reference and fast path, three alternating rounds).

# %%
report_path = Path(bench_json) if bench_json is not None else out_dir / "bench.json"
if report_path.is_file() and not rerun:
    report = bench.load_report(report_path)
    print(f"showing the existing report {report_path} (set rerun = True to measure again)")
else:
    if bench_json is not None and not rerun:
        raise FileNotFoundError(f"bench_json = {bench_json!r} does not exist; produce it with "
                                f"`python -m ssl4sar.bench --out {Path(bench_json).parent}` or set bench_json = None")
    quick = not (preset_name == "paper" and dev.type == "cuda")
    only = None
    if preset_name == "smoke":
        only = ["matmul_peak", "finetune_step", "pretrain_step/opttranslator", "sliding_window", "postprocess_mde",
                "data_sampler/*preset*"]
    sampler_data = caffe_root if (caffe_root / "sar_images" / "train").is_dir() else None
    report = bench.run_benchmarks(out_dir, quick=quick, device=dev, only=only, preset=str(preset), seed=seed,
                                  data_dir=sampler_data)
    report_path = out_dir / "bench.json"
    print(f"wrote {report_path} and {out_dir / 'bench.md'}")

env = report["environment"]
display(Markdown(f"**Device:** {env.get('device_name')} · torch {env.get('torch')} · timm {env.get('timm')} · "
                 f"{env.get('cpu_usable')} usable CPU cores, {env.get('torch_threads')} torch threads · "
                 f"mode **{report['mode']}** · preset **{report['preset']}**"
                 + ("" if report.get("paper_model") else " — *not the paper model: reduced sizes everywhere*")))

# %% [markdown]
# ## The table
#
# Throughput is the batch size over the median step time after warm-up steps; on GPUs the steps are timed with
# CUDA events. The FLOPs count matrix products, convolutions and attention (two FLOPs per multiply-add) and leave
# out normalisation and element-wise work, so the "% of peak" is a lower bound of how busy the device is. The
# 10-megapixel scene time is **extrapolated** from the measured windows per second and the number of windows such
# a scene (3162 × 3162 px) needs at the preset's stride.

# %%
display(Markdown(bench.render_markdown(report).split("\n", 2)[2]))

# %%
fig = bench.bar_chart(report, title=f"{env.get('device_name')} — preset {report['preset']}, {report['mode']} mode")
plt.show()

# %% [markdown]
# ## What the fast path buys
#
# Each ratio divides a path's throughput by the reference path's, both from their best round. `fast-fp32` is the
# fast path without bf16: the fused attention kernel (`scaled_dot_product_attention` with SwinV2's
# cosine-attention temperature folded into the queries and the position bias plus shifted-window mask passed as
# one additive mask; it reproduces the official network's logits to 7 · 10⁻⁶ of the largest logit) and the
# centre-only decoder (the last decoder convolutions run on the kept centre plus a one-pixel halo — exact, since
# no normalisation follows them). Both keep the weights and checkpoints unchanged; only bf16 changes numbers,
# and `python -m ssl4sar.bench --accuracy CKPT DATA` measures by how much on a trained model.

# %%
ratios = bench.ratios_frame(report)
if ratios.empty:
    print("no reference/fast pair in this report")
else:
    display(ratios.style.format({"reference": "{:.3g}", "value": "{:.3g}", "ratio": "{:.2f}×",
                                 "reference_minutes_10mp": "{:.3g}", "minutes_10mp": "{:.3g}"},
                                na_rep="–").hide(axis="index"))

# %% [markdown]
# ## What it means for a training run
#
# With the measured fine-tuning throughput, one epoch of the paper's recipe (40 000 samples) and the 150 epochs of
# a fine-tuning run take the times below on *one* such device (the paper trained on four A100 GPUs); inference of
# a test scene of 10 megapixels takes the sliding-window time of the table.

# %%
epoch_samples = int(load_preset("paper")["data"]["samples_per_epoch"])
epochs = int(load_preset("paper")["finetune"]["max_epochs"])
rows = []
for r in report["results"]:
    if r["name"] == "finetune_step" and r.get("throughput"):
        hours = epoch_samples / r["throughput"] / 3600
        rows.append({"variant": r["variant"], "samples/s": r["throughput"], "hours / epoch": hours,
                     f"days / {epochs} epochs": hours * epochs / 24})
if rows:
    display(pd.DataFrame(rows).style.format(precision=3).hide(axis="index"))
    if not report.get("paper_model"):
        print(f"(the {report['preset']} network is smaller than the paper's: these are not paper-model times)")

# %% [markdown]
# ## Using the fast paths
#
# `ssl4sar evaluate` and `ssl4sar predict` use the fast path by default (`--precision auto`, the presets'
# `inference.precision`; `--precision fp32` gives the reference arithmetic); `ssl4sar finetune --precision
# bf16-mixed` trains in bf16 on GPUs and on CPUs with native bf16. In code:
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
# `bench_results/bench.json` to `book/bench/<machine>.json`.

# %%
report_dir = Path(committed_reports) if committed_reports else None
committed = sorted(report_dir.glob("*.json")) if report_dir is not None and report_dir.is_dir() else []
for path in committed:
    other = bench.load_report(path)
    oenv = other["environment"]
    peak = other.get("peak") or {}
    display(Markdown(
        f"### {path.stem}\n\nMeasured on **{oenv.get('device_name')}**, torch {oenv.get('torch')}"
        + (f", CUDA {oenv.get('cuda')}" if oenv.get("cuda") else f", {oenv.get('cpu_usable')} usable CPU cores")
        + f", {other['mode']} mode, preset **{other['preset']}**, {other.get('created', '')[:10]}."
        + (f" % of peak is relative to the measured {peak.get('dtype', '')} matmul peak of "
           f"{peak['tflops']:.2f} TFLOP/s." if peak.get("tflops") else "")))
    display(Markdown(bench.render_markdown(other).split("\n", 2)[2]))
    oratios = bench.ratios_frame(other)
    if not oratios.empty:
        display(oratios.style.format({"reference": "{:.3g}", "value": "{:.3g}", "ratio": "{:.2f}×",
                                      "reference_minutes_10mp": "{:.3g}", "minutes_10mp": "{:.3g}"},
                                     na_rep="–").hide(axis="index"))
if not committed:
    print(f"no committed reports in {report_dir}")

# %%
print(f"GPU available in this kernel: {torch.cuda.is_available()}")
