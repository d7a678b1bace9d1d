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
# that resamples images. It reads the fronts of chapter 5's ensemble (`work_dir/evaluate/ensemble_tta/fronts/`,
# and the ensemble without TTA beside it);
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
model_runs = None          # evaluations of chapter 5 to compare (names in work_dir/evaluate); None: the ensembles
n_annotators = None        # simulated annotators; None: as many as in the paper's study (10)
annotator_displacement_m = 58.0   # RMS displacement of a simulated annotator's front from the true one (m)
annotator_correlation_m = 1000.0  # correlation length of the simulated displacement field along the front (m)
n_bootstrap = 2000         # bootstrap replicates (resampling images)
confidence = 0.95          # coverage of the confidence intervals

# %% tags=["hide-input"]
from IPython.display import Markdown, display

from ssl4sar import annotators, book, experiments, viz

setup = book.setup_chapter(preset, work_dir, data_dir, seed)
layout = setup.layout
out_dir = layout.human_vs_model
out_dir.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## The model fronts of chapter 5
#
# Chapter 5 evaluated the paper's final model — the ensemble of the seeds of one initialisation — without
# (`ensemble`) and with test-time augmentation (`ensemble_tta`) on the test split, and wrote each evaluation's
# post-processed fronts as `work_dir/evaluate/<name>/fronts/<stem>_front.png`. The paper's comparison uses the
# ensemble with TTA; it is *the* model of this chapter, the ensemble without TTA is shown next to it.

# %%
runs = experiments.model_evaluations(layout, model_runs)   # an error names what chapter 5 has not written
primary = runs[0]
ensembles = experiments.ensemble_summary(layout)
display(ensembles if ensembles is not None else runs)
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
# 35–38 m (found by trying values of d over several seeds). It is less than the d·√(2/π) ≈ 0.8 d that two straight
# lines offset by independent normal displacements would give, because fronts are rough and the MDE measures the
# distance to the *nearest* point of the other line, which is often not the displaced copy of the same point. With few,
# small images the realised value scatters by several metres. The simulated annotators are written
# in the same layout as real ones and read back by the same function.

# %%
ann = annotators.prepare_annotators(setup.caffe_root, out_dir, annotators_dir, n_annotators, annotator_displacement_m,
                                    annotator_correlation_m, seed, shown=layout.relative)
display(Markdown(ann.note))

# %% [markdown]
# ## Human–human and model–human distances
#
# For every pair the MDE is pooled over the images (sum of all front-pixel distances / their number, both
# directions, §8.1); images where one of the two fronts is empty count as missing for that pair and are left out.
# The bootstrap draws the images with replacement `n_bootstrap` times (seeded), recomputes every pair's pooled MDE
# and averages over the pairs of each kind; the interval is the central `confidence` range of these means.

# %%
model_fronts = {name: experiments.read_model_fronts(layout.evaluation(name), ann.stems) for name in runs}
study = annotators.human_vs_model(ann.fronts, model_fronts, n_bootstrap=n_bootstrap, confidence=confidence, seed=seed)
annotators.write_study(study, out_dir)   # summary.csv, pairs.csv, per_image.csv
display(annotators.summary_for_display(study.summary, confidence))
display(Markdown(annotators.study_note(study, primary, len(ann.stems))))

# %%
fig = viz.plot_annotator_comparison(
    study.pairs, study.summary, study.bootstrap, human_groups=[annotators.HUMAN_GROUP], paper=annotators.PAPER_LINES,
    title=("simulated annotators" if ann.simulated else "annotators") + f" on {len(ann.stems)} test images")

# %% [markdown]
# The dots are the pairs (45 human–human pairs for ten annotators; one model–human pair per annotator), the black
# diamonds the means with their bootstrap intervals, the dashed lines the published numbers. On the right, the
# spread of the bootstrap means: how much the result could change with another set of images of the same kind.
#
# Per image, the mean front distance of the annotator pairs and of the model against the annotators (metres);
# this is where a model that is far from the annotators on average shows *where* it is far:

# %%
display(study.per_image.round(1))

# %% [markdown]
# One test image with every annotator's front (colours) and the model's front (yellow):

# %%
stem, sar, fronts, model_front = annotators.example_image(setup.caffe_root, ann, model_fronts[primary])
fig = viz.plot_annotator_fronts(sar, fronts, model_front, model_label=primary, title=f"{stem}: {len(fronts)} "
                                + ("simulated " if ann.simulated else "") + f"annotators and {primary}")

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
#   and demo builds have 3 and 32) they are wide, and with a model that finds no front in some images the
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
