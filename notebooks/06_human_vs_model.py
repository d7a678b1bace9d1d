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
# # Human vs model: the multi-annotator study
#
# How good is a mean distance error (MDE) of some tens of metres? Calving fronts are not sharp lines: ice
# mélange, shadows and speckle make experts disagree about where a front lies. The paper therefore compares its
# best model with **ten human annotators** who delineated the same images: the ensemble of TYRION models reached
# an MDE of **75 m** against the annotators, while the annotators among themselves differed by **38 m** on
# average {cite}`gourmelon2025ssl4sar`. The gap between the two is what remains to be closed.
#
# This chapter makes the same comparison with `ssl4sar.annotators`: the MDE (§8.1, pooled over the images, in
# metres) of every pair of annotators ("human–human") and of the model against every annotator
# ("model–human"), each summarised by the mean over pairs with a **percentile bootstrap confidence interval**
# that resamples images. It reads the model fronts that chapter 5 wrote (`work_dir/evaluate/<run>/fronts/`);
# annotator fronts come from `annotators_dir` (one folder per annotator, CaFFe front layout) or, when none is
# given, are **simulated** on the test images. It writes `work_dir/human_vs_model/` (tables; the simulated
# annotators), which no later chapter reads.

# %% tags=["parameters"]
preset = "demo"            # "paper" | "demo" | "smoke" | path to a YAML preset
data_dir = None            # CaFFe root; None: synthetic data in work_dir/data/caffe
ssl4sar_dir = None         # unused here
work_dir = "../book/_work/demo"   # artefacts shared between chapters
device = "auto"            # unused here (no network is run in this chapter)
seed = 0
annotators_dir = None      # folder with one sub-folder of <stem>_front.png per annotator; None: simulate annotators
model_runs = None          # evaluation runs of chapter 5 to compare (names in work_dir/evaluate); None: all there
n_annotators = None        # simulated annotators; None: as many as in the paper's study (10)
annotator_displacement_m = 58.0   # RMS displacement of a simulated annotator's front from the true one (m)
annotator_correlation_m = 1000.0  # correlation length of the simulated displacement field along the front (m)
n_bootstrap = 2000         # bootstrap replicates (resampling images)
confidence = 0.95          # coverage of the confidence intervals

# %%
import json
import logging
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from IPython.display import Markdown, display
from PIL import Image

warnings.filterwarnings("ignore", message="IProgress not found")   # tqdm in a kernel without ipywidgets
from ssl4sar import annotators, viz
from ssl4sar.config import load_preset
from ssl4sar.data import caffe, synthetic
from ssl4sar.io import atomic_path, write_text_atomic
from ssl4sar.metrics import stem_metadata

logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
pd.set_option("display.max_colwidth", 70)
cfg = load_preset(preset)
work = Path(work_dir)
out_dir = work / "human_vs_model"
out_dir.mkdir(parents=True, exist_ok=True)

if data_dir is None and not (work / "data" / "caffe").is_dir():   # run by hand, not through tools/book.py
    synthetic.generate(work / "data", preset=preset, seed=seed, layouts=("caffe",))
caffe_root = Path(data_dir) if data_dir is not None else work / "data" / "caffe"

# %% [markdown]
# ## The model fronts of chapter 5
#
# Chapter 5 evaluated single models (`single_<init>`), the ensemble (`ensemble`) and the ensemble with test-time
# augmentation (`ensemble_tta`) on the test split, and wrote each run's post-processed fronts as
# `work_dir/evaluate/<run>/fronts/<stem>_front.png`. A run counts as complete when its `summary.json` exists
# (chapter 5 writes it last). The paper's comparison uses the ensemble; the first run in the list below is the
# one this chapter treats as *the* model, the others are shown next to it.

# %%
evaluate_root = work / "evaluate"
PREFERENCE = ["ensemble_tta", "ensemble", "single_opttranslator", "single_optsimmim", "single_imagenet",
              "single_scratch"]


def complete_runs(root: Path) -> list[str]:
    """Names of complete evaluation runs under ``root`` (summary.json and fronts/ present), preferred first."""
    if not root.is_dir():
        return []
    names = [p.name for p in root.iterdir() if (p / "summary.json").is_file() and (p / "fronts").is_dir()]
    return sorted(names, key=lambda n: (PREFERENCE.index(n) if n in PREFERENCE else len(PREFERENCE), n))


available = complete_runs(evaluate_root)
if model_runs is not None:
    missing_runs = [r for r in model_runs if r not in available]
    if missing_runs:
        raise FileNotFoundError(
            f"evaluation run(s) {missing_runs} not found (or incomplete: no summary.json) in {evaluate_root}; "
            f"available: {available or 'none'}. Run chapter 5 (05_evaluation) with the same work_dir first.")
    runs = list(model_runs)
else:
    runs = available
if not runs:
    raise FileNotFoundError(
        f"no model fronts: {evaluate_root}/<run>/fronts/ and summary.json are written by chapter 5 "
        "(05_evaluation). Run chapters 4 and 5 with the same work_dir and preset first, e.g. "
        f"`python tools/book.py build --preset {preset} --only 04 05`.")

run_rows = []
for name in runs:
    s = json.loads((evaluate_root / name / "summary.json").read_text())
    st = s.get("settings", {})
    run_rows.append({"run": name, "models": st.get("n_models"), "tta": st.get("tta"), "split": s.get("split"),
                     "images": s.get("images"), "missing_fronts": s.get("missing_fronts"),
                     "MDE vs ground truth (m)": s.get("pooled_mde_m")})
display(pd.DataFrame(run_rows))
primary = runs[0]
print(f"the model of this chapter: {primary}")

# %% [markdown]
# ## The annotators
#
# With real annotations (`annotators_dir`), each annotator is a folder of CaFFe front masks
# `<stem>_front.png` (0 background, 255 front) read by `ssl4sar.annotators.load_annotator_fronts`; only images
# that every annotator delineated are compared.
#
# Without them the annotators are **simulated** (`ssl4sar.annotators.simulate_annotators`): each one is the
# ground-truth front of a test image moved by its own smooth random displacement field (random Fourier features
# of a squared-exponential covariance, correlation length `annotator_correlation_m` along the front) and redrawn
# as a thin connected line. The root-mean-square length of the displacement vectors is
# `annotator_displacement_m` = d. The default, 58 m, makes the simulated annotators disagree about as much as
# the paper's: on the synthetic test images the mean human–human MDE comes out at about 0.6–0.65 d, i.e.
# 35–38 m (found by trying values of d over several seeds). It is less than the d·√(2/π) ≈ 0.8 d that two straight lines offset
# by independent normal displacements would give, because fronts are rough and the MDE measures the distance to
# the *nearest* point of the other line, which is often not the displaced copy of the same point. With few,
# small images the realised value scatters by several metres. The simulated annotators are written
# in the same layout as real ones and read back by the same function.

# %%
if annotators_dir is not None:
    ann_root = Path(annotators_dir)
    simulated = False
else:
    simulated = True
    n_ann = int(n_annotators) if n_annotators is not None else annotators.PAPER_N_ANNOTATORS
    ann_root = out_dir / "simulated_annotators"
    if ann_root.exists():
        shutil.rmtree(ann_root)   # this chapter's own output: simulate afresh
    scenes = caffe.discover(caffe_root, "test")
    rng = np.random.default_rng(seed)
    names = [f"annotator_{i + 1:02d}" for i in range(n_ann)]
    for scene in scenes:
        gt = caffe.load_scene(scene, with_bbox=False)["front"]
        res = float(stem_metadata(scene.stem)["resolution_m"])
        fronts = annotators.simulate_annotators(gt, n_ann, annotator_displacement_m, res,
                                                seed=int(rng.integers(2**31)),
                                                correlation_length_m=annotator_correlation_m)
        for name, front in zip(names, fronts):
            path = ann_root / name / f"{scene.stem}{annotators.FRONT_SUFFIX}"
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                Image.fromarray(front * np.uint8(255)).save(tmp, format="PNG")

annotations = annotators.load_annotator_fronts(ann_root)
ann_stems = sorted(set.intersection(*(set(v) for v in annotations.values())))
if simulated:
    display(Markdown(
        f"**These annotators are a simulation**, not human delineations: {len(annotations)} annotators, each the "
        f"ground-truth front of the {len(ann_stems)} test images of `{caffe_root}` displaced by a smooth random "
        f"field with an RMS displacement of **{annotator_displacement_m:g} m** (correlation length "
        f"{annotator_correlation_m:g} m), seed {seed}. Their agreement is set by that number, not measured; "
        "what the simulation shows is how the comparison works and how the model's distance to the annotators "
        "relates to theirs."))
else:
    display(Markdown(f"Annotator fronts from `{ann_root}`: {len(annotations)} annotators, {len(ann_stems)} "
                     "images delineated by all of them."))

# %% [markdown]
# ## Human–human and model–human distances
#
# For every pair the MDE is pooled over the images (sum of all front-pixel distances / their number, both
# directions, §8.1); images where one of the two fronts is empty count as missing for that pair and are left out.
# The bootstrap draws the images with replacement `n_bootstrap` times (seeded), recomputes every pair's pooled MDE
# and averages over the pairs of each kind; the interval is the central `confidence` range of these means.

# %%
model_fronts = {}
for name in runs:
    folder = evaluate_root / name / "fronts"
    lacking = [s for s in ann_stems if not (folder / f"{s}{annotators.FRONT_SUFFIX}").is_file()]
    if len(lacking) == len(ann_stems):
        raise FileNotFoundError(f"{folder}: no front for any annotated image (e.g. {lacking[0]}"
                                f"{annotators.FRONT_SUFFIX}); were the annotations made on the evaluated split?")
    model_fronts[name] = {s: annotators.read_front_png(folder / f"{s}{annotators.FRONT_SUFFIX}")
                          for s in ann_stems if s not in lacking}

comparisons = {name: annotators.compare_annotators(annotations, model_fronts[name], n_bootstrap=n_bootstrap,
                                                   confidence=confidence, seed=seed, model_name=name)
               for name in runs}

HUMAN = "human vs human"
first = comparisons[primary]
hh = first.summary[first.summary["kind"] == "human-human"].iloc[0]
summary_rows = [{"group": HUMAN, **hh.drop("kind").to_dict(),
                 "images": int(first.pairs["images"].iloc[0]), "images without model front": None,
                 "paper (m)": annotators.PAPER_HUMAN_MDE_M}]
pair_frames = [first.pairs[first.pairs["kind"] == "human-human"].assign(group=HUMAN)]
boot = {HUMAN: first.bootstrap.get("human-human")}
for name, comp in comparisons.items():
    group = f"{name} vs human"
    mh = comp.summary[comp.summary["kind"] == "model-human"].iloc[0]
    no_front = sum(1 for f in model_fronts[name].values() if not f.any())
    summary_rows.append({"group": group, **mh.drop("kind").to_dict(), "images": int(comp.pairs["images"].iloc[0]),
                         "images without model front": no_front,
                         "paper (m)": annotators.PAPER_ENSEMBLE_MDE_M if name.startswith("ensemble") else None})
    pair_frames.append(comp.pairs[comp.pairs["kind"] == "model-human"].assign(group=group))
    boot[group] = comp.bootstrap.get("model-human")
summary_table = pd.DataFrame(summary_rows)
pairs_table = pd.concat(pair_frames, ignore_index=True)
summary_table["ratio to human–human"] = summary_table["mean_mde_m"] / float(hh["mean_mde_m"])
write_text_atomic(out_dir / "summary.csv", summary_table.to_csv(index=False, float_format="%.3f"))
write_text_atomic(out_dir / "pairs.csv", pairs_table.to_csv(index=False, float_format="%.3f"))

ci = f"{confidence:.0%} CI (m)"
shown = summary_table.assign(**{ci: [f"{lo:.1f} – {hi:.1f}" if np.isfinite(lo) and np.isfinite(hi) else "n/a"
                                     for lo, hi in zip(summary_table["ci_low_m"], summary_table["ci_high_m"])]})
display(shown[["group", "pairs", "images", "images without model front", "mean_mde_m", ci, "median_mde_m",
               "ratio to human–human", "paper (m)"]].rename(columns={"mean_mde_m": "mean MDE (m)",
                                                                    "median_mde_m": "median MDE (m)"}).round(2))
display(Markdown(
    f"The paper: ensemble vs annotators **{annotators.PAPER_ENSEMBLE_MDE_M:g} m**, annotators among themselves "
    f"**{annotators.PAPER_HUMAN_MDE_M:g} m** ({annotators.PAPER_N_ANNOTATORS} annotators), a ratio of "
    f"{annotators.PAPER_ENSEMBLE_MDE_M / annotators.PAPER_HUMAN_MDE_M:.2f}."))

# %%
fig = viz.plot_annotator_comparison(
    pairs_table, summary_table, boot, human_groups=[HUMAN],
    paper={"paper, human vs human": annotators.PAPER_HUMAN_MDE_M,
           "paper, ensemble vs human": annotators.PAPER_ENSEMBLE_MDE_M},
    title=("simulated annotators" if simulated else "annotators") + f" on {len(ann_stems)} test images")

# %% [markdown]
# The dots are the pairs (45 human–human pairs for ten annotators; one model–human pair per annotator), the black
# diamonds the means with their bootstrap intervals, the dashed lines the published numbers. On the right, the
# spread of the bootstrap means: how much the result could change with another set of images of the same kind.
#
# Per image, the mean front distance of the annotator pairs and of the model against the annotators (metres);
# this is where a model that is far from the annotators on average shows *where* it is far:

# %%
per_image = []
for name, comp in comparisons.items():
    pi = comp.per_image
    kinds = ["human-human", "model-human"] if name == primary else ["model-human"]
    for kind in kinds:
        g = pi[pi["kind"] == kind].groupby("stem")
        label = HUMAN if kind == "human-human" else f"{name} vs human"
        per_image.append(pd.DataFrame({"group": label, "mean distance (m)": g["mean_m"].mean()}))
per_image_table = pd.concat(per_image).reset_index().pivot(index="stem", columns="group",
                                                           values="mean distance (m)")
per_image_table = per_image_table[[g for g in summary_table["group"] if g in per_image_table.columns]]
write_text_atomic(out_dir / "per_image.csv", per_image_table.to_csv(float_format="%.3f"))
display(per_image_table.round(1))

# %% [markdown]
# One test image with every annotator's front (colours) and the model's front (yellow):

# %%
stem = next((s for s in ann_stems if model_fronts[primary][s].any()), ann_stems[0])   # one with a model front
scene = next((s for s in caffe.discover(caffe_root, "test") if s.stem == stem), None)
sar_img = caffe.read_sar(scene.sar_path) if scene is not None else np.zeros_like(model_fronts[primary][stem])
fig = viz.plot_annotator_fronts(sar_img, {a: annotations[a][stem] for a in annotations},
                                model_fronts[primary][stem], model_label=primary,
                                title=f"{stem}: {len(annotations)} " + ("simulated " if simulated else "")
                                + f"annotators and {primary}")

# %% [markdown]
# ## What the numbers say
#
# * The **human–human** mean is the floor any method can be held to: two careful annotators disagree by this
#   much. With simulated annotators it is set by `annotator_displacement_m` (above), so only the real study's
#   38 m is evidence about humans.
# * The **model–human** mean over the ten annotators compares the model with the *consensus spread* rather than
#   with one arbitrary label. In the paper it is about twice the human–human value (75 m vs 38 m); a ratio near 1
#   would mean the model is as consistent with the annotators as they are with each other. A ratio *below* 1 is
#   possible: an annotator compared with a model that sits at the centre of the annotators' spread (the
#   ground truth, for simulated annotators) differs by one annotator's error, whereas two annotators differ by
#   two. A perfect model scores about 1/√2 of the human–human value against simulated annotators.
# * Intervals come from resampling images, the unit of variation between test sets; with few images (the smoke
#   and demo builds have 3 and 8) they are wide, and with a model that finds no front in some images the
#   model–human pairs rest on fewer images still (column *images without model front*).
# * **This run's model** is the one chapters 4 and 5 trained and evaluated with the chosen preset. With the
#   `smoke` and `demo` presets that is a small network trained for minutes on synthetic scenes; its distances
#   describe that model and the synthetic data, not TYRION on CaFFe. Simulated annotators are also unbiased,
#   independent perturbations of the ground truth, whereas real annotators share systematic difficulties (ice
#   mélange, low contrast), so real human–human distances are correlated with the image, not only random.
#
# Files: `work_dir/human_vs_model/summary.csv` (table above), `pairs.csv` (one row per pair), `per_image.csv`,
# and, when simulated, the annotators' fronts in `simulated_annotators/<annotator>/<stem>_front.png` (the layout
# `annotators_dir` expects).
