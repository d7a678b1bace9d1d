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
# # Evaluation: single models, ensemble, test-time augmentation
#
# The fine-tuned networks of chapter 4 predict the **test** scenes — glaciers never seen in training — and the
# predictions are scored as in the paper: zones → calving front → mean distance error (MDE) to the annotated front.
# Chapter 4 already scored every single run. This chapter builds the paper's final model: the **ensemble of the
# seeds of one initialisation** (mean of their softmax outputs), alone and with test-time augmentation (each scene
# also predicted rotated by 90°, 180° and 270°), and puts every model and ensemble in one table with a bootstrap
# 95 % interval over the test scenes. It then shows where the fronts land and where the ensemble is unsure.
#
# It reads `work_dir/finetune/runs.csv` (chapter 4) and writes `work_dir/evaluate/ensemble/` and
# `work_dir/evaluate/ensemble_tta/` (class maps, fronts, uncertainty maps, tables) and `work_dir/evaluate/summary.csv`
# (one row per model or ensemble); **chapter 6 reads the ensemble's fronts**.

# %% tags=["parameters"]
preset = "demo"            # "paper" | "demo" | "smoke" | path to a YAML preset
data_dir = None            # CaFFe root (sar_images/, zones/, fronts/, bounding_boxes/); None: synthetic data
ssl4sar_dir = None         # unused here
work_dir = "../book/_work/demo"   # artefacts shared between chapters
device = "auto"            # "auto": the GPU when there is one, else single-thread CPU processes side by side
seed = 0
ensemble_init = None       # initialisation whose seeds form the ensemble; None: the best on validation data
parallel_runs = 2          # CPU: processes that share the test scenes, one torch thread each
n_examples = 3             # scenes shown with their fronts and uncertainty maps

# %% tags=["hide-input"]
import numpy as np
import pandas as pd
from IPython.display import Markdown, display
from PIL import Image

from ssl4sar import book, experiments, viz
from ssl4sar.data import caffe

setup = book.setup_chapter(preset, work_dir, data_dir, seed)
cfg, layout = setup.cfg, setup.layout
runs = experiments.read_runs(layout)
chosen = ensemble_init or experiments.choose_ensemble_init(runs)
if setup.synthetic:
    display(Markdown("**The scenes scored here are synthetic** and the models were trained for minutes on a CPU: "
                     "the numbers describe this toy problem, not the paper's accuracy."))

# %% [markdown]
# ## How a scene is predicted and scored
#
# `ssl4sar.evaluate.evaluate` runs the official evaluation (spec §7–§9): windows of the network's input size move
# over the scene with a stride of a quarter window; the softmax of each window's centre is weighted by a Gaussian
# and averaged into a probability map per class. With several members and/or rotations the maps of all members ×
# rotations are averaged (each rotated back first) and their **standard deviation** is kept as an uncertainty map.
# Small islands are removed, the front is the ocean–glacier boundary, pieces shorter than
# `postprocess.min_front_length_m` (750 m) are dropped, and only the part inside the front search box is kept. The
# **MDE** pools the distances of every predicted front pixel to the nearest true one and vice versa (metres) over
# the scenes with a front; scenes without a predicted front are counted as missing, not as distances.
#
# The network runs under bfloat16 autocast where the processor computes bf16 natively (`inference.precision: auto`,
# the default of every preset); the patch embedding, the 1 × 1 head, the softmax and everything after it stay
# float32. On a 2-core CPU with native bf16, sliding-window inference of the paper network ran about 2.5× faster
# than the float32 reference path (3.8 minutes per 10-megapixel scene). Over the nine demo models of this chapter,
# 99.93 ± 0.02 % of the test pixels were classified alike. The test MDE moved by −1.5 ± 4.7 m, with no systematic
# shift: mostly by under 2 m, by 14 m once, when a front piece just at the 750 m minimum length was kept on one path
# and dropped on the other. Unbiased float32 perturbations of the same size move it just as much, so a test MDE is
# reproducible to a few metres, not to the metre, whenever anything rounds. Chapter 8 and `book/bench` have the
# measurements. Set `inference.precision: fp32` for the exact float32 numbers.
#
# Both ensembles come from one pass over the test scenes (`ssl4sar.evaluate.evaluate_with_and_without_tta`): each
# member's unrotated map enters the ensemble without TTA and, with its three rotated maps, the one with TTA, so it is
# computed once — 4 maps per member and scene instead of 5, with the same numbers as two separate evaluations.
#
# Evaluating the ensemble with TTA on the 122 CaFFe test scenes takes a while even on a GPU. When this cell runs
# again after a stop (an interrupted cell, a restarted kernel; on Colab, whenever `work_dir` survived, e.g. on
# Google Drive), it keeps every scene that an earlier run finished with the same weights, settings and data — each
# evaluation folder's `records/` says what made each scene's files — and evaluates only the rest; the tables are
# those of an uninterrupted run. The command line does the same with `ssl4sar evaluate --resume`.
#
# The ensemble's initialisation is chosen on **validation** data only (most validation fronts found, then the lowest
# validation MDE, averaged over seeds), as the test split must not choose the model.

# %%
run_device, workers = experiments.protocol_device(device, parallel_runs)
summary = experiments.evaluate_ensembles(cfg, setup.caffe_root, layout, runs, chosen, workers=workers,
                                         device=run_device, figures=n_examples, seed=seed)
display(experiments.summary_table(summary))
display(Markdown(experiments.ensemble_findings(summary)))

# %% [markdown]
# ## Diagnosis: are fronts lost to the short-front filter?
#
# An ensemble averages probabilities; where members disagree the averaged boundary between ocean and glacier can
# become fragmented, and pieces shorter than 750 m are then dropped. The ensemble's saved class maps are scored
# again with the filter off (no network is run): if the fronts come back, the filter removed them; if not, the
# ensemble's zones have no ocean–glacier boundary there. The filter is the paper's (750 m), made for real scenes
# of thousands of pixels; the synthetic scenes are a few hundred pixels across (2–10 km), so a fragmented front
# falls under it more easily than on CaFFe — a difference of this demo from the paper, reported here rather than
# changed, since the MDE is defined with the filter.

# %%
diagnosis = {name: experiments.rescore_without_length_filter(layout.evaluation(name), setup.caffe_root,
                                                              layout.evaluation(name) / "without_length_filter")
             for name in ("ensemble", "ensemble_tta")}
display(pd.DataFrame(diagnosis).T.round(1))
display(Markdown(experiments.filter_findings(diagnosis, float(cfg["postprocess"]["min_front_length_m"]))))

# %% [markdown]
# ### Breakdowns
#
# The pooled MDE per season, glacier, sensor and pixel spacing (spec §8.3) of the best single run (chosen on
# validation) and the ensembles. A cell reads *MDE in m (number of missing fronts)*.

# %%
best = experiments.best_single_run(runs)
folders = {f"{best['init']} seed {best['seed']}":
               experiments.checkpoint_path(layout, best["checkpoint"]).parent / "test",
           "ensemble": layout.evaluation("ensemble"), "ensemble + TTA": layout.evaluation("ensemble_tta")}
tables = {name: experiments.load_evaluation_tables(folder) for name, folder in folders.items()}
for group_type in ("season", "glacier", "sensor", "resolution"):
    display(experiments.breakdown_table({n: t[1] for n, t in tables.items()}, group_type))

# %% [markdown]
# ## Where the fronts land
#
# Test scenes with the predicted front (yellow), the annotated front (red) and where they coincide (magenta), over
# the predicted zones, spread from the scene the ensemble with TTA gets best to the worst (missing fronts last).

# %% tags=["hide-input"]
scenes = {s.stem: s for s in caffe.discover(setup.caffe_root, "test")}
per_image = tables["ensemble + TTA"][0].assign(rank_m=lambda t: t["mean_m"].fillna(np.inf)).sort_values("rank_m")
picks = per_image["stem"].iloc[np.unique(np.linspace(0, len(per_image) - 1, min(n_examples, len(per_image)))
                                         .round().astype(int))].tolist()


def prediction(name: str, stem: str) -> dict:
    row = tables[name][0].set_index("stem").loc[stem]
    return {"front": caffe.read_front(folders[name] / "fronts" / f"{stem}_front.png"),
            "zones": caffe.read_zones(folders[name] / "class_maps" / f"{stem}_zones.png"),
            "mean_m": float(row["mean_m"])}


examples = []
for stem in picks:
    data = caffe.load_scene(scenes[stem])
    examples.append({"stem": stem, "sar": data["image"], "gt_front": data["front"], "gt_zones": data["zones"],
                     "resolution_m": scenes[stem].meta.resolution_m,
                     "predictions": {name: prediction(name, stem) for name in folders}})
fig = viz.plot_front_overlays(examples)

# %% [markdown]
# ## Uncertainty
#
# The standard deviation of the softmax of the predicted class over the members (and, with TTA, members ×
# rotations): 0 where all agree. Disagreement should concentrate on class boundaries and on the wrong pixels.

# %% tags=["hide-input"]
def uncertainty(name: str, stem: str) -> np.ndarray:
    png = folders[name] / "uncertainty" / f"{stem}_uncertainty.png"
    return np.asarray(Image.open(png), dtype=np.float32) / 255.0


fig = viz.plot_uncertainty_examples([
    {"stem": e["stem"], "sar": e["sar"], "gt_zones": e["gt_zones"],
     "zones": e["predictions"]["ensemble + TTA"]["zones"],
     "uncertainty": {n: uncertainty(n, e["stem"]) for n in ("ensemble", "ensemble + TTA")}} for e in examples])
agree = per_image["mean_uncertainty"].max() == 0
display(Markdown("*The members agree on every pixel: the uncertainty maps are empty.*" if agree else
                 "Per test scene: mean uncertainty of the ensemble with TTA, its mean front distance and zone IoU."))
display(per_image[["stem", "mean_uncertainty", "mean_m", "missing", "iou_macro"]].set_index("stem").round(3))
