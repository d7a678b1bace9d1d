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
# # Pretraining I: OptSimMIM
#
# The first of the two self-supervised tasks of the paper. TYRION sees a Sentinel-1 SAR crop in which some of its
# tokens are hidden and has to predict what the **Sentinel-2 optical image** shows under the hidden tokens. The
# optical image is never an input: it is only the target, so the network must learn from the SAR texture alone
# what the surface is (open water, ice mélange, crevassed glacier, rock, snow). The weights it learns initialise
# the fine-tuning in chapter 4.
#
# The chapter needs the SSL4SAR-layout data of chapter 1 (`ssl4sar_dir`, or the synthetic set in
# `work_dir/data/ssl4sar`). It writes `work_dir/pretrain/optsimmim/`: `model.pt` (the network with the best
# validation loss, in the project's checkpoint format — **chapter 4 reads it**), `metrics.csv` (one row per epoch)
# and the run folder of the training (`checkpoints/`, `logs/`, `config.yaml`).

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
resume = False             # True: continue the run in work_dir/pretrain/optsimmim instead of starting afresh
n_examples = 2             # validation windows shown with their reconstruction

# %% tags=["hide-input"]
from pathlib import Path

import torch
from IPython.display import Markdown, display

from ssl4sar import book, pretrain_report, viz
from ssl4sar.config import load_preset
from ssl4sar.pretrain.common import default_init

METHOD = "optsimmim"
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
# OptSimMIM ("optical SimMIM") follows the masked-image-modelling recipe of SimMIM, except that the target is a
# *different sensor*. For a SAR context crop of C × C pixels (C = 512 in the paper) and the co-registered optical
# crop with its 14 bands (B1 … B12, WVP, SCL; spec §2.2), the official code (spec §5.2) does:
#
# 1. **Tokens.** TYRION's patch embedding cuts the SAR crop into **4 × 4-pixel tokens** — (512/4)² = 16,384 of them
#    in the paper — each a 96-value vector after its LayerNorm.
# 2. **Masking.** Per sample, `int(16384 · 0.7) = 11,468` tokens are kept and **4,916 (30 %) are masked**, drawn
#    uniformly without replacement; token 0 (top left) is never masked (the masking helper of the `lightly` library
#    treats it as a class token).
# 3. **Mask token.** The masked tokens are replaced by a **vector of zeros that is not trained** (the reference
#    sets `requires_grad=False`), unlike SimMIM's learned mask token.
# 4. **Network and head.** The whole TYRION encoder *and* decoder run on the tokens; the decoder's 96-channel
#    full-resolution features pass a 1 × 1 convolution to 3 channels, a new 4 × 4 patch embedding, and a linear
#    layer that maps each masked token to **4 · 4 · 14 = 224 values**: the 14 optical bands of its 16 pixels.
# 5. **Loss.** The mean absolute error (**L1**) between these values and the optical crop's pixels under the masked
#    tokens (ordered row in patch, column in patch, band). Nothing is predicted for visible tokens, and there is no
#    output activation: the optical bands are in [0, 1].
#
# Because encoder and decoder are both trained, **both transfer to fine-tuning** (spec §5.4); the head is dropped.
# The implementation is `ssl4sar.pretrain.optsimmim.OptSimMIM`; its token order and masking rule are checked
# against numbers from the official code in the test suite.
#
# ## Paper and this run
#
# The optimiser is the same for both: SGD with momentum, weight decay on all parameters, the learning rate halved
# when the validation loss has not improved for 5 epochs, the checkpoint with the lowest validation loss kept. The
# sizes differ:

# %%
epochs = int(max_epochs if max_epochs is not None else cfg["pretrain"]["max_epochs"])
display(pretrain_report.recipe_table(METHOD, cfg, paper, epochs, init or default_init(cfg)))

# %% [markdown]
# The `demo` preset raises OptSimMIM's learning rate tenfold (0.01 instead of 0.001). Its budget is a few hundred
# optimiser steps where the paper ran hundreds of thousands; at the paper's rate the validation loss was still
# falling almost linearly after 12 epochs and ended only 2.4 % below the mean-image baseline below (lr 0.005:
# 7 %, lr 0.01: 15 %, measured on the synthetic demo data). The `paper` preset keeps 0.001.

# %% [markdown]
# ## Training
#
# `ssl4sar.pretrain.pretrain` builds the data module (random SAR/optical crops with a random zoom of 0.7–1 and a
# horizontal flip applied to both, spec §2.3; validation on a fixed grid of windows of the `val` SAR images), the
# LightningModule and the trainer, trains, and exports the network with the best validation loss. Validation masks
# are drawn from a fixed seed, so the validation loss of different epochs is measured on the same masked tokens.

# %%
run = pretrain_report.run_pretraining(METHOD, cfg, ssl4sar_root, layout, init=init, seed=seed, max_epochs=max_epochs,
                                      imagenet_weights=imagenet_weights, resume=resume, device=device)
result = run.result
print(f"{result.epochs} epochs, {result.global_step} optimiser steps in {run.seconds:.0f} s "
      f"(initial weights: {result.init}); best validation L1 {result.best_val_loss:.4f}")

# %% [markdown]
# ## Is it learning? Loss curves and a trivial baseline
#
# An L1 loss says little on its own. The baseline is the loss of a predictor that ignores the SAR image and outputs,
# at every pixel, the **mean of each optical band** over training crops: the best constant guess. It is computed on
# the same validation windows and the same masked tokens as the validation loss
# (`ssl4sar.pretrain.common.mean_predictor_val_loss`). A network that does not get below it has learned nothing
# about the optical image from the SAR.

# %%
module, datamodule, band_means, baseline = pretrain_report.baseline(METHOD, run, ssl4sar_root, cfg, seed)
fig = viz.plot_pretrain_curves(run.epochs, baseline=baseline,
                               title="OptSimMIM: L1 on the masked tokens", loss_label="L1 (masked tokens)")
display(run.epochs)
display(Markdown(pretrain_report.learning_findings(run.epochs, float(result.best_val_loss), baseline)))

# %% [markdown]
# ## Reconstructions
#
# Validation windows with the network of the best epoch. From the left: the SAR input, the input with the masked
# tokens set to zero (what the mask token stands for), the predicted true-colour composite (bands B4/B3/B2) **on
# the masked tokens only**, and the true one with the same contrast stretch. Below, single bands predicted next to
# the truth: B8 (near infrared), B11 (short-wave infrared; snow and ice are dark there) and SCL (the scene
# classification). Only the masked tokens carry a prediction; the rest is left blank.

# %%
batch = next(iter(datamodule.val_dataloader()))
generator = torch.Generator().manual_seed(seed)
with torch.no_grad():
    recon = module.reconstruct(batch["sar"], generator=generator)
for i in range(min(n_examples, batch["sar"].shape[0])):
    fig = viz.plot_pretrain_batch(batch["sar"], batch["optical"], recon["prediction"], recon["mask"], index=i,
                                  title=f"validation window {batch['name'][i]}")

# %% [markdown]
# ## Export for fine-tuning
#
# The network of the best validation epoch is written in the project's checkpoint format
# (`ssl4sar.models.convert.save_checkpoint`: network configuration, weights, provenance). Chapter 4 initialises
# TYRION from it — encoder and decoder; the OptSimMIM head is not part of the file.

# %%
display(pretrain_report.export_pretrained(METHOD, run, layout))
