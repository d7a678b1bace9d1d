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
# # Fine-tuning TYRION: does pretraining help?
#
# The paper's central comparison: the same network, trained on CaFFe with the same recipe, from different
# starting points — random weights, ImageNet weights in the encoder (the usual choice, and the paper's baseline
# "TYRION"), or the encoder *and* decoder of one of the two self-supervised pretrainings of chapters 2 and 3. In the
# paper, pretraining lowers the test mean distance error (MDE) of the calving front from 342.3 m (ImageNet) to
# 300.4 m (OptSimMIM) and 293.2 m (OptTranslator), means of five training runs each.
#
# As in the paper, every initialisation is trained with **several seeds** (five in the paper, three here), and the
# comparison is made on the mean ± sd over seeds with the paper's significance tests: one run per method cannot tell
# a difference from noise. The chapter reads `work_dir/pretrain/optsimmim/model.pt` (chapter 2) and
# `work_dir/pretrain/opttranslator/model.pt` (chapter 3); an initialisation whose file is missing is skipped with a
# note. It writes one run folder per (initialisation, seed), `work_dir/finetune/<init>/seed<k>/` (`best_mde.pt`, the
# network of the epoch with the lowest validation MDE; `metrics.csv`; `test/`, its scores on the test split), and the
# tables `work_dir/finetune/runs.csv` (one row per run — **chapters 5 and 7 read it**) and
# `work_dir/finetune/significance.csv`.

# %% tags=["parameters"]
preset = "demo"            # "paper" | "demo" | "smoke" | path to a YAML preset
data_dir = None            # CaFFe root (sar_images/, zones/, fronts/, bounding_boxes/); None: synthetic data
ssl4sar_dir = None         # unused here (pretraining: chapters 2 and 3)
work_dir = "../book/_work/demo"   # artefacts shared between chapters
device = "auto"            # "auto": the GPU when there is one (runs one after the other), else CPU processes
seed = 0
seeds = None               # fine-tuning seeds; None: seed, seed + 1, … (the preset's finetune.seeds of them)
parallel_runs = 2          # runs trained at the same time, one single-thread process each
max_epochs = None          # None: the preset's finetune.max_epochs (the same for every initialisation)
imagenet_weights = None    # path of swinv2_tiny_patch4_window16_256.pth; None: the ImageNet run is skipped
inits = ["scratch", "imagenet", "optsimmim", "opttranslator"]   # initialisations to train, in this order

# %% tags=["hide-input"]
from IPython.display import Markdown, display

from ssl4sar import book, experiments, viz
from ssl4sar.config import load_preset
from ssl4sar.io import write_text_atomic
from ssl4sar.stats import PAPER_RUN_MDES_M

setup = book.setup_chapter(preset, work_dir, data_dir, seed)
cfg, layout, paper = setup.cfg, setup.layout, load_preset("paper")
run_seeds = list(seeds) if seeds is not None else [seed + k for k in range(int(cfg["finetune"].get("seeds", 3)))]
if setup.synthetic:
    display(Markdown(
        f"**This run fine-tunes on synthetic CaFFe-layout scenes** (preset `{setup.preset_name}`) with a small network "
        "and a budget of minutes on a CPU. Its numbers show how the initialisations behave on this toy problem; they "
        "are **not** an estimate of the paper's results (559 real SAR images, the full SwinV2-T, 150 epochs on GPUs)."))

# %% [markdown]
# ## The recipe (spec §6)
#
# Every training sample is a random **context crop** (512 × 512 px in the paper) of a training image, randomly
# re-zoomed, flipped, rotated, mixed with ocean, speckled, brightened and gamma-corrected (spec §3.3); the network
# predicts the four zones (NA, rock, glacier, ocean and ice mélange) for the whole crop. The loss is
# `0.5·CE + 0.5·Dice` on the crop **plus** the same on its central *target* crop, with label-smoothed
# cross-entropy (ε = 0.1). SGD at a constant learning rate. Each epoch ends with a validation on held-out training
# images: tiles stitched into whole images, zones turned into a calving front (spec §7.2), the front compared with
# the annotated one (MDE in metres, spec §8.1). The checkpoint with the **lowest validation MDE** is kept, as in the
# paper, and scored once on the test split.

# %%
display(experiments.recipe_table(cfg, paper, len(run_seeds)))

# %% [markdown]
# ## The starting points
#
# | init | encoder | decoder | source |
# |---|---|---|---|
# | `scratch` | random | random | — (not in the paper's tables; the floor every pretraining must beat) |
# | `imagenet` | SwinV2-T (ImageNet) | random | `swinv2_tiny_patch4_window16_256.pth` (the paper's "TYRION") |
# | `optsimmim` | pretrained | pretrained | chapter 2 |
# | `opttranslator` | pretrained | pretrained | chapter 3 |
#
# Runs with the same seed see the same crops with the same augmentations in the same order (the samples are a
# pure function of seed, epoch and index); they differ only in their initial weights. Each run is a separate
# single-thread process, so its numbers depend on its seed only — not on how many runs train beside it.

# %%
plan, notes = experiments.plan_initialisations(inits, layout, cfg, paper, imagenet_weights)
display(Markdown("\n".join([f"Training {', '.join(f'`{i}`' for i in plan)} with seeds {run_seeds}.",
                             *(f"- {n}" for n in notes)])))

# %% [markdown]
# ## Training and test scores
#
# One row per run: its best validation MDE and the fronts found on the validation images at that epoch, then the
# exported network's scores on the **test** split (MDE pooled over the scenes with a front; fronts found; mean
# zone IoU). The MDE leaves out scenes without a predicted front, so read it with the fronts found.

# %%
run_device, workers = experiments.protocol_device(device, parallel_runs)
runs = experiments.finetune_seeds(cfg, setup.caffe_root, layout, plan, run_seeds, workers=workers, device=run_device,
                                  max_epochs=max_epochs, imagenet_weights=imagenet_weights)
display(runs.drop(columns=["checkpoint", "test_images", "val_images"]).round(3))

# %% [markdown]
# ## Learning curves
#
# Training and validation loss, validation IoU and validation MDE per epoch of the first seed of each
# initialisation; a star marks the kept epoch. Epochs in which no validation front was found leave a gap.

# %%
fig = viz.plot_learning_curves(experiments.first_seed_curves(layout, runs))

# %% [markdown]
# ## Mean ± sd over seeds, and the paper's tests
#
# The paper reports the test MDE as the mean of five runs; here the mean ± sd (ddof 1) over this build's seeds.
# The tests are those of the paper (spec §10; `ssl4sar.stats.compare_methods`): the one-sided Mann–Whitney U test
# (H1: the baseline's MDEs are larger) and Cohen's d, on the test MDEs of the runs that found a front.

# %%
display(experiments.seed_summary(runs))
tests = experiments.compare_initialisations(runs, seed=seed)
write_text_atomic(layout.finetune_tests_csv, tests.to_csv(index=False, float_format="%.4f"))
display(tests[["baseline", "opponent", "mean_baseline_m", "mean_opponent_m", "mwu_u", "mwu_p", "significant",
               "cohens_d_pooled"]].round(3) if len(tests) else Markdown(
    "*No pair of initialisations has two runs with a test front each: nothing to test.*"))
paper_mean = {k: sum(v) / len(v) for k, v in PAPER_RUN_MDES_M.items()}
display(Markdown(
    f"The paper's test MDE, mean of five runs: TYRION (ImageNet) {paper_mean['TYRION']:.1f} m, OptSimMIM "
    f"{paper_mean['OptSimMIM']:.1f} m, OptTranslator {paper_mean['OptTranslator']:.1f} m. With three seeds per "
    "initialisation the smallest possible one-sided Mann–Whitney p is 1/C(6, 3) = 0.05: even a perfect separation "
    "of two initialisations is only just significant, so read the p-values as the paper's test applied, not as a "
    "verdict."))

# %% [markdown]
# ## This build
#
# Two builds give the same tables only on the same software with the same thread settings: a training run is
# bit-identical across repeats with the same number of torch threads, but not between one and two threads. The
# build pins every process to one thread (parallelism comes from running seeds in separate processes) and records
# what it ran on in `work_dir/build_info.json`:

# %% tags=["hide-input"]
display(book.build_info_table(layout))
