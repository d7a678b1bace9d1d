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
# # Pretraining II: OptTranslator
#
# The second self-supervised task of the paper, and the one whose fine-tuned models scored best (mean test MDE
# 293.2 m over five runs, against 300.4 m for OptSimMIM and 342.3 m for ImageNet initialisation). Nothing is masked:
# TYRION translates the whole Sentinel-1 SAR crop into the co-registered **14-band Sentinel-2 image**. To do so the
# network has to recognise, from radar backscatter and texture alone, what an optical sensor would see — water,
# ice mélange, glacier, rock, snow, clouds — everywhere in the crop.
#
# Like chapter 2, this chapter needs the SSL4SAR-layout data (`ssl4sar_dir`, or the synthetic set in
# `work_dir/data/ssl4sar`). It writes `work_dir/pretrain/opttranslator/`: `model.pt` (the network with the best
# validation loss, project checkpoint format — **chapter 4 reads it**), `metrics.csv` (one row per epoch) and the
# run folder of the training (`checkpoints/`, `logs/`, `config.yaml`).

# %% tags=["parameters"]
preset = "demo"            # "paper" | "demo" | "smoke" | path to a YAML preset
data_dir = None            # CaFFe root; unused here
ssl4sar_dir = None         # SSL4SAR unlabeled root (sar/{train,val}/, optical/); None: synthetic data
work_dir = "../book/_work/demo"   # artefacts shared between chapters
device = "auto"            # "auto" | "cpu" | "cuda" | "cuda:N" (one device; multi-GPU runs: `ssl4sar pretrain`)
seed = 0
max_epochs = None          # None: the preset's pretrain.max_epochs
init = None                # None: library default (scratch; imagenet with the paper preset) | "scratch" | "imagenet"
                           # | a checkpoint path
imagenet_weights = None    # path of swinv2_tiny_patch4_window16_256.pth, needed for the imagenet init
                           # (paper-size network only)
resume = False             # True: continue the run in work_dir/pretrain/opttranslator instead of starting afresh
n_examples = 2             # validation windows shown with their translation

# %% tags=["hide-input"]
from pathlib import Path

import torch
from IPython.display import Markdown, display

from ssl4sar import book, pretrain_report, viz
from ssl4sar.config import load_preset
from ssl4sar.pretrain.common import default_init

METHOD = "opttranslator"
setup = book.setup_chapter(preset, work_dir, ssl4sar_dir, seed, layouts=("ssl4sar",))
cfg, layout, paper = setup.cfg, setup.layout, load_preset("paper")
ssl4sar_root = Path(ssl4sar_dir) if ssl4sar_dir is not None else layout.ssl4sar_data
display(Markdown(
    f"**This run pretrains on synthetic SAR/optical pairs** (preset `{cfg['name']}`), with a "
     "network and a budget that fit a laptop CPU: its numbers show that the code path works and learns, not what "
     "the paper's model learns from 9,563 real Sentinel-1 scenes." if ssl4sar_dir is None else
     f"This run pretrains on the SSL4SAR data in `{ssl4sar_root}` (preset `{cfg['name']}`)."))

# %% [markdown]
# ## The task
#
# The official code (spec §5.3) runs the TYRION encoder and the decoder up to its full-resolution, 96-channel
# features on the SAR crop (C × C pixels, C = 512 in the paper), adds a **1 × 1 convolution to 14 channels**, and
# minimises the mean absolute error (**L1**) against the optical crop, over all pixels and all 14 bands (B1 … B12,
# WVP, SCL, each scaled to [0, 1]). There is no masking and no output activation. Compared with OptSimMIM
# (chapter 2) the task is *dense*: every pixel is a target, and the network never sees a hole in its input — the
# same situation as in fine-tuning, where it labels every pixel of a complete SAR crop.
#
# In the paper the learning rate is higher than OptSimMIM's (0.005 vs 0.001), and the run stops early when the
# validation loss has not improved for 100 epochs. Encoder and decoder transfer to fine-tuning; the
# 1 × 1 convolution does not (spec §5.4). The implementation is `ssl4sar.pretrain.opttranslator.OptTranslator`.
#
# ## Paper and this run

# %%
epochs = int(max_epochs if max_epochs is not None else cfg["pretrain"]["max_epochs"])
display(pretrain_report.recipe_table(METHOD, cfg, paper, epochs, init or default_init(cfg)))

# %% [markdown]
# ## Training
#
# The same entry point as chapter 2, `ssl4sar.pretrain.pretrain`, with the method `opttranslator`: the same data
# (random crops with zoom and flip; a fixed grid of validation windows), the same optimiser and checkpointing.

# %%
run = pretrain_report.run_pretraining(METHOD, cfg, ssl4sar_root, layout, init=init, seed=seed, max_epochs=max_epochs,
                                      imagenet_weights=imagenet_weights, resume=resume, device=device)
result = run.result
print(f"{result.epochs} epochs, {result.global_step} optimiser steps in {run.seconds:.0f} s "
      f"(initial weights: {result.init}); best validation L1 {result.best_val_loss:.4f}")

# %% [markdown]
# ## Is it learning? Loss curves and a trivial baseline
#
# The baseline predicts, at every pixel, the **mean of each optical band** over training crops — the best output
# that ignores the SAR image — and is scored on the same validation windows
# (`ssl4sar.pretrain.common.mean_predictor_val_loss`). Getting below it means the network reads something about the
# optical scene from the radar image.

# %%
module, datamodule, band_means, baseline = pretrain_report.baseline(METHOD, run, ssl4sar_root, cfg, seed)
fig = viz.plot_pretrain_curves(run.epochs, baseline=baseline, title="OptTranslator: dense L1 over 14 bands",
                               loss_label="L1 (all pixels, 14 bands)")
display(run.epochs)
display(Markdown(pretrain_report.learning_findings(run.epochs, float(result.best_val_loss), baseline)))

# %% [markdown]
# ## Translations
#
# Validation windows with the network of the best epoch: the SAR input, the predicted true-colour composite
# (B4/B3/B2) and the true one with the same contrast stretch; below, single bands predicted next to the truth:
# B8 (near infrared), B11 (short-wave infrared, where snow and ice are dark) and SCL (the scene classification).

# %%
batch = next(iter(datamodule.val_dataloader()))
with torch.no_grad():
    recon = module.reconstruct(batch["sar"])
for i in range(min(n_examples, batch["sar"].shape[0])):
    fig = viz.plot_pretrain_batch(batch["sar"], batch["optical"], recon["prediction"], None, index=i,
                                  title=f"validation window {batch['name'][i]}")

# %% [markdown]
# Which bands does the radar image predict best? The mean absolute error per band over these windows, for the
# network and for the per-band mean predictor:

# %%
display(pretrain_report.per_band_errors(recon["prediction"], batch["optical"], band_means))

# %% [markdown]
# ## Export for fine-tuning
#
# The network of the best validation epoch, in the project's checkpoint format; chapter 4 initialises TYRION from
# it (encoder and decoder; the 1 × 1 translation head is not part of the file).

# %%
display(pretrain_report.export_pretrained(METHOD, run, layout))
