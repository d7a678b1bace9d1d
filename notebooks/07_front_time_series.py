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
# # From new scenes to a front-position time series
#
# What a glaciologist does with a trained model: run it on new, georeferenced SAR scenes of a glacier, get the
# calving front of every scene as a line in map coordinates, and turn the lines into a **time series of the
# front position** — the advance and retreat of the glacier. This chapter does that with `ssl4sar.predict`
# (zones, probabilities, uncertainty and fronts as GeoTIFF and GeoJSON) and `ssl4sar.timeseries` (front position
# by the rectilinear-box method and along a centreline), on a synthetic glacier whose true front positions are
# known, so that the recovered series can be checked. It then applies the same prediction to seven real
# TerraSAR-X patches to show the georeferencing on real data.
#
# It applies the best fine-tuned run of chapter 4 (chosen on validation data from `work_dir/finetune/runs.csv`) and
# needs the synthetic time
# series (`work_dir/data/timeseries`, made by the build). It writes `work_dir/timeseries/`, which no later
# chapter reads.

# %% tags=["parameters"]
preset = "demo"            # "paper" | "demo" | "smoke" | path to a YAML preset
data_dir = None            # unused here (the scenes are the time series below)
ssl4sar_dir = None         # unused here
work_dir = "../book/_work/demo"   # artefacts shared between chapters
device = "auto"            # "auto" | "cpu" | "cuda" | "cuda:N"
seed = 0
checkpoint = None          # model to apply; None: the best run of chapter 4 on validation data (runs.csv)
timeseries_dir = None      # georeferenced scenes sar/*.tif + reference_box.geojson, centreline.geojson (+ truth.csv);
                           # None: the synthetic series in work_dir/data/timeseries
tta = None                 # test-time augmentation (4 rotations); None: on, except with the smoke preset
real_samples_dir = None    # folder of real CaFFe patches; None: the seven shipped with ssl4sar (ssl4sar.data.samples)
real_resolution_m = 20.0   # pixel spacing (m/px) the real patches are predicted at; None: their own (6-6.7 m)

# %% tags=["hide-input"]
import logging

import pandas as pd
from IPython.display import Image, Markdown, display

from ssl4sar import application, timeseries, viz
from ssl4sar.book import setup_chapter
from ssl4sar.predict import predict_scenes
from ssl4sar.prediction_writers import describe_outputs, describe_rasters, text_excerpt

# threads pinned, library advice quietened; the synthetic series made when run by hand without timeseries_dir
setup = setup_chapter(preset, work_dir, seed=seed, layouts=("timeseries",) if timeseries_dir is None else ())
layout, cfg, preset_name, out_root = setup.layout, setup.cfg, setup.preset_name, setup.layout.timeseries
logging.getLogger("ssl4sar.timeseries").setLevel(logging.ERROR)   # dates without a position are tabulated below
pd.set_option("display.max_colwidth", 60)
# the scenes, the first scene, truth.csv and the true front masks; checks sar/, reference_box and centreline.geojson
ts = application.read_series(timeseries_dir if timeseries_dir is not None else layout.timeseries_data)

# %% [markdown]
# ## The model
#
# The best fine-tuned run of chapter 4, chosen on validation data only (most validation fronts found, then the
# lowest validation MDE; `ssl4sar.experiments.best_single_run`). With test-time augmentation each rotation gives
# its own front, and the spread of their positions is the error bar of the time series. A `checkpoint` parameter
# replaces it by any model.

# %%
model = application.load_chosen_model(layout, cfg, preset_name, checkpoint, device, tta)
if model.choice is not None:
    display(model.choice)
display(Markdown(model.note))

# %% [markdown]
# ## The scenes
#
# The synthetic series (`ssl4sar.data.synthetic.generate_time_series`) is one fjord of a Greenland-like glacier
# in UTM zone 22N (EPSG:32622) at 20 m/px, seen on 12 dates 24 days apart, like a Sentinel-1 series. Its front
# moves by a known amount, `p(t) = A·sin(2πt / 1 yr) + trend·t + noise`, relative to the first date
# (`truth.csv`); the front's shape also changes a little from date to date (zero-mean across the fjord). Next to
# the scenes lie the reference box (a rectangle across the fjord whose first edge is upstream) and a centreline
# along the flow.

# %%
print(ts.description)
if ts.truth is not None:
    display(ts.truth_table())

# %% [markdown]
# ## Prediction: georeferenced fronts
#
# `ssl4sar.predict.predict_scenes` runs the model over every scene with overlapping windows and Gaussian
# stitching (the evaluation's inference), turns the class map into a front (§7.2 post-processing) and writes,
# per scene, GeoTIFFs on the scene's grid (same CRS and transform) and the front as GeoJSON — in the scene CRS
# and in EPSG:4326 — plus one front per augmented map (`_front_members.geojson`) whose spread becomes the
# uncertainty of the time series. Scenes that cannot be read are listed in `skipped.csv`, not fatal. Run again (a
# restarted kernel, a new date added), this cell keeps every scene predicted earlier from the same file, model and
# settings (`resume=True`, see the end of the chapter) and predicts the rest. The last two columns say where each
# scene's time went: `windows_s` in the network's sliding windows (on the GPU when there is one), `outputs_s` for
# reading the scene and writing its files (on the CPU).

# %%
pred_dir = out_root / "predictions"
run = predict_scenes(model.members, ts.scenes, pred_dir, resume=True, to_wgs84=True, member_fronts=True,
                     overlay=True, **model.predict_kwargs())
print(f"{len(run.results)} scenes: {len(run.results) - len(run.reused)} predicted in {run.seconds:.1f} s, "
      f"{len(run.reused)} kept from an earlier run; skipped {len(run.skipped)}")
display(pd.read_csv(pred_dir / "predictions.csv")[["scene", "date", "n_maps", "n_front_pixels", "length_m",
                                                   "mean_uncertainty", "windows_s", "outputs_s"]])

# %% [markdown]
# What was written for one scene, and what the files say about themselves:

# %%
example = run.results[0]
display(describe_outputs(example.outputs))
display(describe_rasters([example.outputs[k] for k in ("zones", "probabilities", "uncertainty", "front_mask")]))
print(text_excerpt(example.outputs["front"], 900))
if "overlay" in example.outputs:   # the quick-look PNG predict writes next to the rasters
    display(Image(filename=str(example.outputs["overlay"]), width=420))

# %% [markdown]
# The predicted fronts of all dates over the first scene, in map coordinates, next to the true fronts (the
# front masks of the synthetic data); the reference box (red) and the centreline (orange, dashed) are the two
# measuring devices of the next section.

# %%
fig, no_front = application.plot_predicted_fronts(ts, run.results)
if no_front:
    display(Markdown(no_front))

# %% [markdown]
# ## Front positions
#
# `ssl4sar.timeseries.front_time_series` measures each front in two ways. The **box method** (Moon & Joughin
# 2008; Lea et al. 2014) divides the glacier area inside the reference box upstream of the front by the box
# width: the mean position of the front across the fjord, robust to the front's shape; it integrates 200
# flow-parallel transects, and a date whose front crosses fewer than half of them gets no position. The
# **centreline method** takes the distance along the centreline to its first crossing with the front: simple, but
# it sees the front at one point only. Positions are relative to the first date with a position (+ = advance);
# with member fronts, the error bar is the standard deviation of the positions of the augmented maps' fronts.
#
# The truth in `truth.csv` is the box-mean position relative to the first date. When the model found no usable
# front on the first date, the series starts from a later date; the truth is then re-referenced to that date
# before the errors are computed, so that both describe the same displacement.

# %%
series, model_acc = application.measure_series(sorted(r.outputs["front"] for r in run.results), ts,
                                                f"model ({preset_name})", out_root, "front_positions")
display(model_acc.round(1))
display(timeseries.positions_table(series))

# %%
fig = application.plot_positions(series, ts.truth, "model fronts")

# %% [markdown]
# ## The upper bound: the true front masks through the same path
#
# How much of the error is the model's, and how much the measurement's? The true front masks
# (`fronts/<stem>_front.tif`, the glacier–ocean boundary of the true zones) go through the same path — mask →
# line (`ssl4sar.geo`) → position — so their error is what the time-series step alone contributes: a perfect
# segmentation would get this far and no further.

# %%
if ts.true_masks:   # accuracy.csv: both rows
    truth_series, table = application.masks_upper_bound(ts, model_acc, out_root)
    display(table.round(1))
    fig = application.plot_positions(truth_series, ts.truth, "true front masks")
else:
    display(Markdown(f"*No front masks in `{layout.relative(ts.root / 'fronts')}`: the upper bound is skipped.*"))

# %% [markdown]
# With the true masks the box method recovers the positions to within the rasterisation of the front (a few
# metres at 20 m pixels): it averages over the whole fjord width, exactly as the truth is defined. The
# centreline sees the front at a single point, so the date-to-date change of the front's *shape* enters its
# positions in full; its error is therefore larger and is not an error of the segmentation. The model's error
# above this floor is the model's. With the `smoke` and `demo` presets the model is a small network trained
# briefly on synthetic data: missing dates and errors of hundreds of metres are what such a model gives, and say
# nothing about a TYRION model trained with the paper preset.
#
# ## Real scenes: georeferencing only
#
# The same prediction on seven real TerraSAR-X patches from CaFFe (512 × 512 px; Jakobshavn Isbræ in UTM 22N,
# EPSG:32622, 6 m pixels; Dinsmoor–Bombardier–Edgeworth and Jorum on the Antarctic Peninsula in Antarctic polar
# stereographic, EPSG:3031, 6.67 m pixels). **This is a demonstration of the georeferencing, not of accuracy**:
# the model of this build was not trained on these glaciers (with the smoke and demo presets it never saw real
# SAR), and seven patches are not a test set; no accuracy is claimed or computed. What the outputs show is that
# every file keeps the patch's CRS and transform and that the front comes out in EPSG:4326 on the right spot of
# the Earth. The patches are predicted at `real_resolution_m` (20 m/px by default, the spacing of the scenes
# above; the outputs are on the patch's own grid either way) without test-time augmentation.

# %%
real = application.predict_real_patches(model, out_root / "real_patches", real_samples_dir, real_resolution_m)
display(real.table)
if real.skipped is not None:
    display(real.skipped)
fig = viz.plot_geographic_fronts(real.panels, ncols=4)
print(real.excerpt)

# %% [markdown]
# Each panel is a patch drawn on its pixel corners reprojected to longitude/latitude: the tilt of the UTM and
# polar-stereographic grids against the meridians is visible, and the predicted front (yellow, read back from
# the `_front_wgs84.geojson` file) lies on the image where the model put it.
#
# **Source and licence of the real patches.** The seven patches were sampled from the CaFFe benchmark by the
# GEO-Bench-2 project for its unit tests (file `tests/data/caffe/caffe.tortilla`, CC-BY-4.0). CaFFe: Gourmelon,
# N., Seehaus, T., Braun, M., Maier, A., Christlein, V.: *Calving fronts and where to find them: a benchmark
# dataset and methodology for automatic glacier calving front extraction from synthetic aperture radar imagery*,
# Earth Syst. Sci. Data 14, 4287–4313, 2022, doi 10.5194/essd-14-4287-2022; data doi 10.1594/PANGAEA.940950,
# licensed CC-BY-4.0.
#
# ## On your own scenes
#
# The same steps from the command line, for any single-band GeoTIFFs (uint8 amplitude, or σ⁰ with a fixed
# `--value-range` so that all dates share one scaling):
#
# ```bash
# ssl4sar predict scenes/*.tif --checkpoint best_mde.pt --tta --to-wgs84 --member-fronts --out fronts/ --resume
# ssl4sar timeseries fronts/*_front.geojson --box box.geojson --out series/           # or --centreline line.geojson
# ```
#
# A season of scenes takes hours on a CPU. With `--resume`, a scene already in `fronts/` from the same file,
# checkpoint and settings is kept (its `.prediction.json` record says what made it), so a stopped run goes on where
# it stopped and new dates cost only themselves.
#
# **References of the box method.** Moon, T., Joughin, I.: Changes in ice front position on Greenland's outlet
# glaciers from 1992 to 2007, J. Geophys. Res. 113, F02022, 2008, doi 10.1029/2007JF000927. Lea, J. M.,
# Mair, D. W. F., Rea, B. R.: Evaluation of existing and new methods of tracking glacier terminus change,
# J. Glaciol. 60 (220), 323–332, 2014, doi 10.3189/2014JoG13J061.
#
# Files of this chapter: `work_dir/timeseries/predictions/` (per scene: `_zones.tif`, `_probabilities.tif`,
# `_uncertainty.tif`, `_front.tif`, `_front.geojson`, `_front_wgs84.geojson`, `_front_members.geojson`,
# `_overlay.png`, and `.prediction.json`: what made them; `predictions.csv`, `skipped.csv`),
# `front_positions_{box,centreline}.csv`,
# `truth_masks_positions_{box,centreline}.csv`, `accuracy.csv` and `real_patches/`.
