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
# # Fine-tuning TYRION: does pretraining help?
#
# The paper's central comparison: the same network, trained on CaFFe with the same recipe, from different
# starting points — random weights, ImageNet weights in the encoder (the usual choice, and the paper's baseline
# "TYRION"), or the encoder *and* decoder of one of the two self-supervised pretrainings of chapters 2 and 3. In the
# paper, pretraining lowers the test mean distance error (MDE) of the calving front from 342.3 m (ImageNet) to
# 300.4 m (OptSimMIM) and 293.2 m (OptTranslator), means of five training runs each.
#
# The chapter reads `work_dir/pretrain/optsimmim/model.pt` (chapter 2) and `work_dir/pretrain/opttranslator/model.pt`
# (chapter 3); an initialisation whose file is missing is skipped with a note. It writes, for every initialisation
# `<init>` it trains, `work_dir/finetune/<init>/best_mde.pt` (the network of the epoch with the lowest validation MDE,
# project checkpoint format — **chapters 5 and 7 read it**), `work_dir/finetune/<init>/metrics.csv` (one row per
# epoch) and the run folder (`checkpoints/`, `logs/`, `config.yaml`).

# %% tags=["parameters"]
preset = "demo"            # "paper" | "demo" | "smoke" | path to a YAML preset
data_dir = None            # CaFFe root (sar_images/, zones/, fronts/, bounding_boxes/); None: synthetic data
ssl4sar_dir = None         # unused here (pretraining: chapters 2 and 3)
work_dir = "../book/_work/demo"   # artefacts shared between chapters
device = "auto"            # "auto" | "cpu" | "cuda" | "cuda:N" (one device; multi-GPU runs: `ssl4sar finetune`)
seed = 0
max_epochs = None          # None: the preset's finetune.max_epochs (the same for every initialisation)
imagenet_weights = None    # path of swinv2_tiny_patch4_window16_256.pth; None: the ImageNet run is skipped
inits = ["scratch", "imagenet", "optsimmim", "opttranslator"]   # initialisations to train, in this order
resume = False             # True: continue runs found in work_dir/finetune/<init> instead of starting afresh

# %%
import logging
import shutil
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from IPython.display import Markdown, display

warnings.filterwarnings("ignore", message="IProgress not found")   # tqdm in a kernel without ipywidgets
warnings.filterwarnings("ignore", module=r"lightning(\.|$)")       # Lightning's advice on workers, logging intervals
from ssl4sar import viz
from ssl4sar.config import load_preset
from ssl4sar.data import synthetic
from ssl4sar.finetune import MDE_UNDEFINED_M, finetune
from ssl4sar.io import write_text_atomic
from ssl4sar.stats import PAPER_RUN_MDES_M
from ssl4sar.training import single_device_hardware

logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
    logging.getLogger(name).setLevel(logging.ERROR)
logging.getLogger("ssl4sar.data.caffe").setLevel(logging.ERROR)   # the split rule on a small set is explained below
pd.set_option("display.max_colwidth", 90)

cfg = load_preset(preset)
paper = load_preset("paper")
work = Path(work_dir)
if data_dir is None and not (work / "data" / "caffe").is_dir():   # run by hand, not through tools/book.py
    synthetic.generate(work / "data", preset=preset, seed=seed, layouts=("caffe",))
caffe_root = Path(data_dir) if data_dir is not None else work / "data" / "caffe"
hardware = single_device_hardware(device)   # accelerator/devices keywords of the trainer
display(Markdown(
    f"**This run fine-tunes on synthetic CaFFe-layout scenes** (`{caffe_root}`, preset `{cfg['name']}`) with a "
     "small network and a budget of minutes on a CPU. Its numbers show that the pipeline trains and how the "
     "initialisations behave on this toy problem; they are **not** an estimate of the paper's results, which "
     "come from 559 real SAR images, the full SwinV2-T network and 150 epochs on four GPUs."
     if data_dir is None else f"This run fine-tunes on the CaFFe data in `{caffe_root}` (preset `{cfg['name']}`)."))

# %% [markdown]
# ## The recipe (spec §6)
#
# Every training sample is a random **context crop** (512 × 512 px in the paper) of a training image, randomly
# re-zoomed, flipped, rotated, mixed with ocean, speckled, brightened and gamma-corrected (spec §3.3); the network
# predicts the four zones (NA, rock, glacier, ocean and ice mélange) for the whole crop. The loss is
# `0.5·CE + 0.5·Dice` on the crop **plus** the same on its central 256 × 256 px *target* crop, with label-smoothed
# cross-entropy (ε = 0.1, spread as ε/3 over the other classes). SGD at a constant learning rate of 0.01.
# Each epoch ends with a validation on the held-out training images: the per-window IoU, and the full pipeline —
# tiles stitched into whole images, zones turned into a calving front (spec §7.2), the front compared with the
# annotated one (MDE in metres, spec §8.1). The checkpoint with the **lowest validation MDE** is the one evaluated
# in chapter 5, as in the paper.

# %%
def finetune_rows(c: dict) -> dict[str, object]:
    ft, data, model = c["finetune"], c["data"], c["model"]
    return {
        "context / target crop (px)": f"{data['context_size']} / {data['target_size']}",
        "network: embedding dim / depths / heads / window": (f"{model['embed_dim']} / {model['depths']} / "
                                                             f"{model['num_heads']} / {model['window_size']}"),
        "optimiser": f"SGD lr {ft['lr']} (constant), momentum {ft['momentum']}, weight decay {ft['weight_decay']}",
        "loss weights (CE / Dice; target / context)": ", ".join(f"{v:g}" for v in ft["loss_weights"].values()),
        "label smoothing ε": ft["label_smoothing"],
        "global batch (per device)": f"{ft['global_batch_size']} ({ft['batch_size_per_device']})",
        "samples per epoch": data["samples_per_epoch"],
        "optimiser steps per epoch": int(data["samples_per_epoch"]) // int(ft["global_batch_size"]),
        "epochs": ft["max_epochs"],
        "precision": ft["precision"],
    }


budget = pd.DataFrame({"paper (spec §6)": finetune_rows(paper), f"this run ({cfg['name']})": finetune_rows(cfg)})
if max_epochs is not None:
    budget.loc["epochs", f"this run ({cfg['name']})"] = f"{max_epochs} (parameter max_epochs)"
display(budget)

# %% [markdown]
# ## The starting points
#
# | init | encoder | decoder | source |
# |---|---|---|---|
# | `scratch` | random | random | — (not in the paper's tables; the floor every pretraining must beat) |
# | `imagenet` | SwinV2-T trained on ImageNet | random | Microsoft's `swinv2_tiny_patch4_window16_256.pth` (the paper's "TYRION") |
# | `optsimmim` | pretrained | pretrained | chapter 2 |
# | `opttranslator` | pretrained | pretrained | chapter 3 |
#
# Every initialisation gets **the same budget and the same seed**. The training samples are a pure function of
# (seed, epoch, index), so all runs see the same crops with the same augmentations in the same order; they differ
# only in their initial weights. The ImageNet weights are a local file (`imagenet_weights`; `ssl4sar data fetch
# swinv2-tiny-imagenet`) — the book never downloads anything while it builds — and they fit only the SwinV2-T
# network of the `paper` preset.

# %%
swinv2_t = all(cfg["model"][k] == paper["model"][k] for k in ("patch_size", "embed_dim", "depths", "num_heads"))
plan, notes = {}, []
for init in inits:
    if init == "scratch":
        plan[init] = "scratch"
    elif init == "imagenet":
        if imagenet_weights is None:
            notes.append("`imagenet` skipped: no ImageNet weights file given (parameter `imagenet_weights`).")
        elif not Path(imagenet_weights).is_file():
            notes.append(f"`imagenet` skipped: `{imagenet_weights}` does not exist.")
        elif not swinv2_t:
            notes.append(f"`imagenet` skipped: the ImageNet SwinV2-T weights do not fit the preset's network "
                         f"(embedding dim {cfg['model']['embed_dim']}, depths {cfg['model']['depths']}); "
                         "use the `paper` preset.")
        else:
            plan[init] = "imagenet"
    elif init in ("optsimmim", "opttranslator"):
        checkpoint = work / "pretrain" / init / "model.pt"
        chapter = {"optsimmim": "chapter 2 (`02_optsimmim`)", "opttranslator": "chapter 3 (`03_opttranslator`)"}
        if checkpoint.is_file():
            plan[init] = str(checkpoint)
        else:
            notes.append(f"`{init}` skipped: `{checkpoint}` is missing; {chapter[init]} writes it.")
    else:
        plan[init] = init   # any other checkpoint path
display(pd.DataFrame({"initial weights": plan}).rename_axis("init"))
if notes:
    display(Markdown("\n".join(f"- {n}" for n in notes)))
if not plan:
    raise RuntimeError("no initialisation left to train: see the notes above")

# %% [markdown]
# ## Training
#
# One `ssl4sar.finetune.finetune` call per initialisation. Each writes its run folder and exports the best-MDE
# network to `best_mde.pt`.

# %%
results, seconds = {}, {}
for init, source in plan.items():
    out = work / "finetune" / init
    if out.exists() and not resume:
        shutil.rmtree(out)   # this chapter's own output: start afresh
    t0 = time.perf_counter()
    results[init] = finetune(cfg, caffe_root, out, init=source, seed=seed, max_epochs=max_epochs,
                             imagenet_weights=imagenet_weights if init == "imagenet" else None, resume=resume,
                             progress=False, **hardware)
    seconds[init] = time.perf_counter() - t0
    r = results[init]
    best = f"{r.best_mde_m:.0f} m" if r.best_mde_m is not None and r.best_mde_m < MDE_UNDEFINED_M else "undefined"
    print(f"{init:>14}: {r.epochs} epochs, {r.global_step} steps in {seconds[init]:.0f} s; best validation MDE {best}")

tables = {init: viz.epoch_table(r.metrics_csv) for init, r in results.items()}
for init, table in tables.items():
    write_text_atomic(work / "finetune" / init / "metrics.csv", table.to_csv())

# %% [markdown]
# ## Learning curves
#
# Training and validation loss, validation IoU (per 256-px window as the reference's `val/IoU_img`, and per stitched
# image), and validation MDE in metres per epoch; a star marks each run's best MDE, the epoch whose weights are kept.
# Epochs in which no front could be extracted from any validation image have no MDE and leave a gap.

# %%
fig = viz.plot_learning_curves(tables)

# %% [markdown]
# ## Results next to the paper's
#
# The best validation MDE of each run, the epoch it was reached, and the other validation numbers of that epoch,
# next to the paper's **test** MDE (mean of five runs, `ssl4sar.stats.PAPER_RUN_MDES_M`). The MDE leaves out the
# images without a predicted front, so the kept epoch may be one that misses some fronts (the official code selects
# its checkpoint the same way); the missing fronts are listed beside it. The columns measure
# different things on different data — validation images of this run vs the real test glaciers Mapple and Columbia —
# and are side by side only to show what the paper found.

# %%
PAPER_NAME = {"imagenet": "TYRION", "optsimmim": "OptSimMIM", "opttranslator": "OptTranslator"}
paper_mean = {name: float(np.mean(values)) for name, values in PAPER_RUN_MDES_M.items()}
rows = []
for init, table in tables.items():
    r = results[init]
    mde = table["val/mde"].where(table["val/mde"] < MDE_UNDEFINED_M) if "val/mde" in table else pd.Series(dtype=float)
    best_epoch = int(mde.idxmin()) if mde.notna().any() else None
    at_best = table.loc[best_epoch] if best_epoch is not None else None
    rows.append({
        "init": init,
        "best val MDE (m)": mde.min() if best_epoch is not None else np.nan,
        "at epoch": best_epoch + 1 if best_epoch is not None else None,
        "missing fronts / val images": (f"{at_best['val/missing_fronts']:.0f} / {at_best['val/images']:.0f}"
                                        if at_best is not None else "—"),
        "val IoU, images (at best MDE)": at_best["val/iou_image"] if at_best is not None else np.nan,
        "best val IoU, windows": r.best_iou_patch,
        "final val MDE (m)": mde.iloc[-1] if len(mde) else np.nan,
        "final training loss": table["train/loss"].iloc[-1] if "train/loss" in table else np.nan,
        "training time (s)": round(seconds[init]),
        "paper test MDE, mean of 5 runs (m)": paper_mean.get(PAPER_NAME.get(init, ""), np.nan),
    })
summary = pd.DataFrame(rows).set_index("init")
display(summary.round(3))
display(pd.DataFrame({"paper test MDE, mean of 5 runs (m)": paper_mean,
                      "std over runs (m)": {k: float(np.std(v)) for k, v in PAPER_RUN_MDES_M.items()}})
        .rename_axis("method (paper)").round(1))
display(Markdown(
    "HookFormer, the previous state of the art, is the paper's reference point and is not trained in this book. "
    "Scratch initialisation is not in the paper's tables. "
    + ("**This run is synthetic and tiny** — a handful of validation images, a few epochs, a small network — so "
       "differences between the rows above are dominated by chance; chapter 5 tests the paper's five-run "
       "differences for significance." if data_dir is None else
       "One run per initialisation cannot separate the methods; the paper used five (chapter 5 tests them).")))
