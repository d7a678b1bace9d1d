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
# # Evaluation: single models, ensemble, test-time augmentation
#
# The fine-tuned networks of chapter 4 predict the **test** scenes — glaciers never seen in training — and the
# predictions are scored as in the paper: zones → calving front → mean distance error (MDE) to the annotated front.
# The chapter scores each model alone, the ensemble of all of them (mean of their softmax outputs), and the
# ensemble with test-time augmentation (each scene also predicted rotated by 90°, 180° and 270°). It then shows
# where the fronts land, where the ensemble is unsure, and whether the paper's five-run differences between methods
# are statistically significant.
#
# It reads `work_dir/finetune/<init>/best_mde.pt` (chapter 4) and writes, for every evaluation `<name>` —
# `single_<init>`, `ensemble`, `ensemble_tta` — the folder `work_dir/evaluate/<name>/` with the predicted zone maps
# (`class_maps/`), fronts (`fronts/`), uncertainty maps (`uncertainty/`; overlay figures in `figures/` for
# `ensemble_tta`) and tables
# (`per_image.csv`, `breakdown.csv`, `zone_metrics.csv`, `summary.json`); **chapter 6 reads them**.

# %% tags=["parameters"]
preset = "demo"            # "paper" | "demo" | "smoke" | path to a YAML preset
data_dir = None            # CaFFe root (sar_images/, zones/, fronts/, bounding_boxes/); None: synthetic data
ssl4sar_dir = None         # unused here
work_dir = "../book/_work/demo"   # artefacts shared between chapters
device = "auto"            # "auto" | "cpu" | "cuda" | "cuda:N"
seed = 0
inits = ["scratch", "imagenet", "optsimmim", "opttranslator"]   # fine-tuned models to look for (chapter 4)
split = "test"             # "test" (the paper's numbers) | "val"
n_examples = 3             # scenes shown with their fronts and uncertainty maps

# %%
import logging
import math
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from IPython.display import Markdown, display
from PIL import Image

warnings.filterwarnings("ignore", message="IProgress not found")   # tqdm in a kernel without ipywidgets
from ssl4sar import viz
from ssl4sar.config import load_preset
from ssl4sar.data import caffe, synthetic
from ssl4sar.evaluate import evaluate
from ssl4sar.stats import PAPER_RUN_MDES_M, compare_methods

logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
logging.getLogger("ssl4sar.data.caffe").setLevel(logging.ERROR)
pd.set_option("display.max_colwidth", 90)

cfg = load_preset(preset)
work = Path(work_dir)
if data_dir is None and not (work / "data" / "caffe").is_dir():   # run by hand, not through tools/book.py
    synthetic.generate(work / "data", preset=preset, seed=seed, layouts=("caffe",))
caffe_root = Path(data_dir) if data_dir is not None else work / "data" / "caffe"
checkpoints = {init: work / "finetune" / init / "best_mde.pt" for init in inits}
missing = [f"`{p}`" for p in checkpoints.values() if not p.is_file()]
checkpoints = {init: p for init, p in checkpoints.items() if p.is_file()}
if not checkpoints:
    raise FileNotFoundError(f"no fine-tuned model in {work / 'finetune'} (looked for "
                            f"{', '.join(str(work / 'finetune' / i / 'best_mde.pt') for i in inits)}): "
                            "run chapter 4 (04_finetuning) first")
display(Markdown(
    ("**The scenes scored here are synthetic** and the models were trained for minutes on a CPU: the numbers show "
     "the evaluation pipeline at work, not the paper's accuracy. " if data_dir is None else "")
    + f"Models found: {', '.join(f'`{i}`' for i in checkpoints)}."
    + (f" Not found (not trained in chapter 4): {', '.join(missing)}." if missing else "")))

# %% [markdown]
# ## How a scene is predicted and scored
#
# `ssl4sar.evaluate.evaluate` runs the official evaluation (spec §7–§9):
#
# 1. **Sliding windows.** Windows of the network's input size (512 px in the paper) move over the padded scene with
#    a stride of a quarter window (128 px); of each window only the softmax of the central half is used, weighted
#    by a Gaussian importance map (σ = 1/16 window) so that window centres count most, and the weighted average gives
#    a probability map per class.
# 2. **Ensemble and TTA.** With several models and/or rotations the probability maps of all members × rotations are
#    averaged (each rotated back first) and the **standard deviation** across them is kept as an uncertainty map.
#    The class map is the argmax of the mean.
# 3. **Zones → front.** Small ocean and non-ocean islands are removed, the front is the ocean–glacier boundary,
#    pieces shorter than 750 m are dropped, and only the part inside the scene's front search box is kept.
# 4. **MDE.** For every predicted front pixel the distance to the nearest true front pixel, and vice versa, in
#    metres. The **MDE** pools all these distances over all images; the *picture-normalised* MDE averages the
#    per-image means (each image counts once); the *front-length-normalised* one weights each image by its true
#    front's length. Images where no front is predicted (or none is annotated) are **missing fronts**: they are
#    counted, and left out of the distances.
#
# The paper's ensemble has five members trained with the *same* recipe (five seeds, spec §9); here the members are
# the models fine-tuned from the different initialisations of chapter 4.

# %%
runs = {f"single_{init}": ([path], False) for init, path in checkpoints.items()}
runs["ensemble"] = (list(checkpoints.values()), False)
runs["ensemble_tta"] = (list(checkpoints.values()), True)
results, seconds = {}, {}
for name, (members, tta) in runs.items():
    t0 = time.perf_counter()
    results[name] = evaluate(members, caffe_root, split, work / "evaluate" / name, tta=tta, preset=cfg, device=device,
                             figures=n_examples if name == "ensemble_tta" else 0, progress=False)
    seconds[name] = time.perf_counter() - t0
    print(f"{name:>22}: {len(members)} model(s) × {4 if tta else 1} rotation(s), "
          f"{results[name].summary['images']} scenes in {seconds[name]:.0f} s")

# %% [markdown]
# ## Front delineation: the MDE
#
# The headline numbers of every evaluation (metres; ± the standard deviation of the pooled distances), the zone
# segmentation quality (mean IoU over the four classes, before post-processing) and the number of probability maps
# averaged per scene:

# %%
def fmt_m(value: float | None) -> float:
    return float("nan") if value is None else float(value)


headline = pd.DataFrame({
    name: {
        "models": r.summary["settings"]["n_models"],
        "maps per scene": r.summary["settings"]["n_maps_per_scene"],
        "MDE (m)": fmt_m(r.summary["pooled_mde_m"]),
        "± std (m)": fmt_m(r.summary["std_m"]),
        "picture-normalised MDE (m)": fmt_m(r.summary["picture_normalised_mde_m"]),
        "front-length-normalised MDE (m)": fmt_m(r.summary["front_length_normalised_mde_m"]),
        "missing fronts": f"{r.summary['missing_fronts']} / {r.summary['images']}",
        "mean IoU (zones)": fmt_m(r.summary["mean_iou"]),
        "time (s)": round(seconds[name]),
    } for name, r in results.items()}).T
display(headline.style.format(precision=1, subset=[c for c in headline.columns if "MDE" in c or "std" in c])
        .format(precision=3, subset=["mean IoU (zones)"]))
used = results["ensemble_tta"].summary["settings"]
print(f"windows of {used['context_size']} px, stride {used['stride']} px, Gaussian σ {used['sigma']:g} px, "
      f"TTA rotations {used['rotations']} (× 90° clockwise); paper: 512 px, 128 px, 32 px, [0, 1, 2, 3]")
def rank(name: str) -> tuple[int, float]:
    """Fewest missing fronts first, then the lowest MDE (the MDE alone ignores the scenes without a front)."""
    r = results[name]
    return int(r.summary["missing_fronts"]), r.pooled_mde_m if math.isfinite(r.pooled_mde_m) else math.inf


best_name = min(results, key=rank)
display(Markdown(
    "The MDE leaves out the scenes without a predicted front, so an evaluation that misses the hard scenes can show a "
    f"low MDE; read it together with the missing fronts. Fewest missing fronts and, among those, the lowest MDE: "
    f"**{best_name}** ({results[best_name].summary['missing_fronts']} missing, "
    + (f"{results[best_name].pooled_mde_m:.1f} m" if math.isfinite(results[best_name].pooled_mde_m) else "no front")
    + "). In the paper the final model is the ensemble of five "
    "OptTranslator-pretrained models with TTA; its single models average 293.2 m on the real test set."))

# %% [markdown]
# ### Breakdowns
#
# The same pooled MDE per season, glacier, sensor and pixel spacing (spec §8.3), for every evaluation. A cell reads
# *MDE (number of missing fronts)*; "—" where every image of the group misses its front.

# %%
def breakdown_table(group_type: str) -> pd.DataFrame:
    cols = {}
    for name, r in results.items():
        b = r.breakdown[r.breakdown["group_type"] == group_type].set_index("group_value")
        cols[name] = [("—" if not math.isfinite(m) else f"{m:.1f}") + (f" ({k})" if k else "")
                      for m, k in zip(b["mde_m"].astype(float), b["missing_fronts"].astype(int))]
        index = b.index
        images = b["images"]
    table = pd.DataFrame(cols, index=index)
    table.insert(0, "images", images.to_numpy())
    return table.rename_axis(group_type)


for group_type, title in (("season", "season"), ("glacier", "glacier"), ("sensor", "sensor"),
                          ("resolution", "pixel spacing (m/px)")):
    display(Markdown(f"**MDE (m) by {title}**"))
    display(breakdown_table(group_type))

# %% [markdown]
# ## Where the fronts land
#
# Test scenes with the predicted front (yellow), the annotated front (red) and where they coincide (magenta), over the
# predicted zones, for scenes spread from the one the ensemble with TTA gets best to the worst (missing fronts count as
# worst). Columns: the best single model (fewest missing fronts, then lowest MDE), the ensemble, the ensemble with TTA.

# %%
scenes = {s.stem: s for s in caffe.discover(caffe_root, split)}
per_image = results["ensemble_tta"].per_image.copy()
per_image["rank_m"] = per_image["mean_m"].fillna(np.inf)
order = per_image.sort_values("rank_m")["stem"].tolist()
picks = [order[i] for i in np.unique(np.linspace(0, len(order) - 1, min(n_examples, len(order))).round().astype(int))]
best_single = min((n for n in results if n.startswith("single_")), key=rank)
shown = [best_single, "ensemble", "ensemble_tta"]


def prediction(name: str, stem: str) -> dict:
    out = work / "evaluate" / name
    row = results[name].per_image.set_index("stem").loc[stem]
    return {"front": caffe.read_front(out / "fronts" / f"{stem}_front.png"),
            "zones": caffe.read_zones(out / "class_maps" / f"{stem}_zones.png"),
            "mean_m": float(row["mean_m"])}


examples = []
for stem in picks:
    data = caffe.load_scene(scenes[stem])
    examples.append({"stem": stem, "sar": data["image"], "gt_front": data["front"], "gt_zones": data["zones"],
                     "resolution_m": scenes[stem].meta.resolution_m,
                     "predictions": {name: prediction(name, stem) for name in shown}})
fig = viz.plot_front_overlays(examples)

# %% [markdown]
# ## Uncertainty
#
# The spread of the averaged probability maps says where the members (and rotations) disagree. Shown: the standard
# deviation of the softmax of the predicted class, over the models of the ensemble and over models × rotations
# with TTA (0 = all agree; 0.5 is the largest possible spread), next to the pixels the ensemble with TTA
# classifies wrongly. For well-trained models the disagreement concentrates on class boundaries, above all the
# calving front, and on the pixels that end up wrong.

# %%
def uncertainty(name: str, stem: str) -> np.ndarray:
    png = work / "evaluate" / name / "uncertainty" / f"{stem}_uncertainty.png"
    return np.asarray(Image.open(png), dtype=np.float32) / 255.0


unc_examples = [{"stem": e["stem"], "sar": e["sar"], "gt_zones": e["gt_zones"],
                 "zones": e["predictions"]["ensemble_tta"]["zones"],
                 "uncertainty": {"ensemble": uncertainty("ensemble", e["stem"]),
                                 "ensemble + TTA": uncertainty("ensemble_tta", e["stem"])}}
                for e in examples]
fig = viz.plot_uncertainty_examples(unc_examples)
display(Markdown("Per test scene: mean uncertainty of the ensemble with TTA, its mean front distance and the zone "
                 "IoU — are the uncertain scenes the bad ones?"))
display(results["ensemble_tta"].per_image[["stem", "mean_uncertainty", "mean_m", "missing", "iou_macro"]]
        .sort_values("mean_uncertainty", ascending=False).round(3).set_index("stem"))

# %% [markdown]
# ## Are the paper's differences significant?
#
# One run per method proves nothing: training is random (initial weights of new layers, sample order, augmentation),
# and the paper's five runs per method scatter by up to 180 m. The official code (spec §10) therefore compares the
# test MDEs of the **five training runs** of each method — HookFormer (the previous state of the art), TYRION with
# ImageNet weights, and TYRION pretrained with OptSimMIM or OptTranslator:

# %%
runs_table = pd.DataFrame(PAPER_RUN_MDES_M, index=pd.Index(range(1, 6), name="run")).T
runs_table["mean"] = runs_table.mean(axis=1)
runs_table["std (population)"] = runs_table.iloc[:, :5].std(axis=1, ddof=0)
display(runs_table.round(1))
fig = viz.plot_run_mdes(PAPER_RUN_MDES_M)

# %% [markdown]
# For each pair (baseline, opponent) the reference runs Levene's test for equal variances (and a permutation test of
# its statistic), then the **one-sided Mann–Whitney U test** — H1: the baseline's MDEs tend to be larger — and reports
# **Cohen's d** as the effect size. Its d divides by the *baseline's* population standard deviation for the first five
# pairs and uses an inconsistently pooled standard deviation (population variances weighted by n − 1) for OptSimMIM vs
# OptTranslator; the table shows both and the textbook pooled d (`ssl4sar.stats.compare_methods`).

# %%
tests = compare_methods(PAPER_RUN_MDES_M, seed=seed)
tests["Cohen's d (reference)"] = np.where(
    (tests["baseline"] == "OptSimMIM") & (tests["opponent"] == "OptTranslator"),
    tests["cohens_d_pooled_ddof0"], tests["cohens_d_baseline_sd"])
shown_tests = tests.rename(columns={
    "mean_baseline_m": "mean baseline (m)", "mean_opponent_m": "mean opponent (m)", "levene_p": "Levene p",
    "levene_permutation_p": "Levene permutation p", "mwu_u": "U", "mwu_p": "Mann–Whitney p (one-sided)",
    "significant": "p < 0.05", "cohens_d_baseline_sd": "d (baseline SD)", "cohens_d_pooled": "d (pooled, textbook)",
})[["baseline", "opponent", "mean baseline (m)", "mean opponent (m)", "Levene p", "Levene permutation p", "U",
    "Mann–Whitney p (one-sided)", "p < 0.05", "Cohen's d (reference)", "d (baseline SD)", "d (pooled, textbook)"]]
display(shown_tests.round(4))
n_sig = int(tests["significant"].sum())
smallest_p = 1 / math.comb(10, 5)
best = tests.loc[tests["mwu_p"].idxmin()]
n_pairs = len(PAPER_RUN_MDES_M[best["baseline"]]) * len(PAPER_RUN_MDES_M[best["opponent"]])
pretrained = tests[tests["opponent"].isin(["OptSimMIM", "OptTranslator"]) & (tests["baseline"] != "OptSimMIM")]
d_ref = pretrained["Cohen's d (reference)"]
worst_runs = ", ".join(f"{max(PAPER_RUN_MDES_M[m]):.1f} m for {m}" for m in ("OptSimMIM", "OptTranslator"))
display(Markdown(
    f"**{n_sig} of {len(tests)}** comparisons reach p < 0.05. With five runs against five, the exact one-sided "
    f"Mann–Whitney test cannot go below p = 1/C(10, 5) = {smallest_p:.4f} (every opponent run better than every "
    f"baseline run). The smallest p-value here, {best['mwu_p']:.4f} ({best['baseline']} vs {best['opponent']}), "
    f"comes with U = {best['mwu_u']:.0f}: in {n_pairs - best['mwu_u']:.0f} of the {n_pairs} (baseline run, opponent "
    f"run) pairs the baseline run is the better one. The reference's effect sizes of the pretrained methods against "
    f"the baselines range from d = {d_ref.min():.2f} to {d_ref.max():.2f}; the largest test MDE of each pretrained method ({worst_runs}) "
    "shows how much a single run can move a five-run mean."))
