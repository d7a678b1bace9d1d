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
# # The data: CaFFe and SSL4SAR
#
# This chapter introduces the two data sets of the paper and the code that reads them: the labelled **CaFFe**
# benchmark (SAR images with zone maps and calving fronts) used for fine-tuning and evaluation, and the unlabeled
# **SSL4SAR** archive (Sentinel-1 SAR paired with Sentinel-2 optical images) used for self-supervised pretraining.
# It then builds a pretraining data set from raw, georeferenced satellite scenes, and compares the synthetic SAR
# that the book's default build trains on with real CaFFe imagery.
#
# The chapter needs nothing from earlier chapters. Every table below is computed from the files the run actually
# read; where the run uses synthetic data, the published numbers are shown next to it. It writes only
# `work_dir/constructed/` (construction section), which no later chapter reads.

# %% tags=["parameters"]
preset = "demo"            # "paper" | "demo" | "smoke" | path to a YAML preset
data_dir = None            # CaFFe root (sar_images/, zones/, fronts/, bounding_boxes/); None: synthetic data
ssl4sar_dir = None         # SSL4SAR unlabeled root (sar/{train,val}/, optical/); None: synthetic data
work_dir = "../book/_work/demo"   # artefacts shared between chapters
device = "auto"            # unused here (no network is run in this chapter)
seed = 0
real_samples_dir = None    # folder of real CaFFe patches; None: the seven shipped with ssl4sar (ssl4sar.data.samples)
n_examples = 3             # CaFFe example scenes shown
n_realism_patches = None   # synthetic patches compared with the real ones; None: 2 for smoke, 7 otherwise

# %% tags=["hide-input"]
import logging
import shutil
from pathlib import Path

import numpy as np
from IPython.display import Markdown, display

from ssl4sar import viz
from ssl4sar.book import setup_chapter
from ssl4sar.data import construct, realism, samples, summary, synthetic, unlabeled

# synthetic data only for the layouts not given (the build makes them first; a by-hand run makes them here)
setup = setup_chapter(preset, work_dir, seed=seed,
                      layouts=[name for name, given in (("caffe", data_dir), ("ssl4sar", ssl4sar_dir))
                               if given is None])
layout, cfg = setup.layout, setup.cfg
caffe_root = Path(data_dir) if data_dir is not None else layout.caffe
ssl4sar_root = Path(ssl4sar_dir) if ssl4sar_dir is not None else layout.ssl4sar_data
rng = np.random.default_rng(seed)
display(Markdown("\n\n".join(
    summary.source_note(name, layout.relative(root), synthetic=given is None, preset=setup.preset_name, seed=seed)
    for name, root, given in (("CaFFe", caffe_root, data_dir), ("SSL4SAR", ssl4sar_root, ssl4sar_dir)))))

# %% [markdown]
# ## The CaFFe benchmark
#
# CaFFe ("CAlving Fronts and where to Find thEm", {cite}`gourmelon2022caffe`, data {cite}`gourmelon2022caffedata`)
# holds **681 SAR images of 7 glaciers** with two labels each: a *zone map* and the *calving front*. The **test
# set (122 images)** consists of the glaciers **Mapple** (Antarctic Peninsula) and **COL** (Columbia, Alaska); the
# **train folder (559 images)** holds **Crane, DBE** (Dinsmoor–Bombardier–Edgeworth), **JAC** (Jakobshavn Isbræ,
# Greenland), **Jorum** and **SI** (Sjögren Inlet). Test glaciers are never seen in training, so the test score
# measures how well a model transfers to new glaciers. The images come from seven SAR missions — ERS-1/2,
# ENVISAT, RADARSAT-1, ALOS PALSAR, TerraSAR-X, TanDEM-X and Sentinel-1 — at pixel spacings of **6 to 20 m**,
# between 1995 and 2020.
#
# The layout, as distributed on PANGAEA and read by `ssl4sar.data.caffe`:
#
# ```text
# <root>/sar_images/{train,test}/<stem>.png            8-bit SAR amplitude, 0 = no data
# <root>/zones/{train,test}/<stem>_zones.png           zone map: 0 NA, 64 rock, 127 glacier, 254 ocean
# <root>/fronts/{train,test}/<stem>_front.png          front line: 0 background, 255 front (1 px wide)
# <root>/bounding_boxes/<stem>_front_extent_coord.txt  front search box (pixel coordinates)
# ```
#
# A stem such as `Mapple_2018-06-11_S1_20_2_009` reads *glacier, acquisition date, sensor, pixel spacing in
# m/px, quality factor, orbit*. In memory the zone values become class ids:
#
# | zone value | class id | meaning |
# |---|---|---|
# | 0 | 0 | NA: no data or not annotated |
# | 64 (63) | 1 | rock |
# | 127 | 2 | glacier |
# | 254 | 3 | ocean and ice mélange |
#
# The bounding box limits where a *predicted* front may lie when it is scored (spec §1.4); the season of an
# image follows from its month and hemisphere (winter: October–March in the north, April–August in the south).

# %%
inventory = summary.caffe_inventory(caffe_root)
display(inventory[["stem", "split", "sensor", "resolution_m", "season", "height_px", "width_px", "has_bbox"]].head(12))
print(f"{len(inventory)} scenes read: "
      + ", ".join(f"{n} {s}" for s, n in inventory["split"].value_counts(sort=False).items()))

# %% [markdown]
# The scenes of this run by glacier, sensor, pixel spacing and season, split into train, validation and test:

# %%
for column, title in (("glacier", "glacier"), ("sensor", "sensor"), ("resolution_m", "pixel spacing (m/px)"),
                      ("season", "season")):
    display(Markdown(f"**Scenes by {title}**"))
    display(summary.count_table(inventory, column, "split"))

# %% [markdown]
# For comparison, the published facts about the real data set and where they come from (the per-glacier and
# per-sensor counts of the real data are printed by this notebook when it runs on the real data, `data_dir=...`):

# %%
display(summary.paper_facts("CaFFe"))

# %% [markdown]
# ### The validation split
#
# The paper does not tune on the test glaciers: **56 of the 559 training images** are held out for validation.
# The official split is a random, image-level one, `sklearn.train_test_split(np.arange(559), test_size=0.1,
# random_state=1)` over the *sorted* file names, which is the same as taking the first 56 entries of
# `np.random.RandomState(1).permutation(559)`. `ssl4sar.data.caffe.validation_indices` reproduces it (the index
# list does not depend on the data, only on the number of training images):

# %%
print(summary.validation_split_note(inventory))

# %% [markdown]
# When were the images taken? Each dot is one scene, coloured by sensor; the marker shows its split.

# %%
fig = viz.plot_acquisition_timeline(inventory)

# %% [markdown]
# A few scenes with their labels: the zone map (transparent colours), the annotated calving front (red) and the
# front search box (dashed yellow). Note the no-data areas (black) at the image borders and the variety of
# sensors and seasons.

# %%
examples = summary.caffe_examples(inventory, caffe_root, n=n_examples, seed=seed, max_side_px=1024)
fig = viz.plot_scene_gallery(examples, ncols=min(3, max(1, len(examples))))

# %% [markdown]
# ## Where the glaciers are
#
# Five of the seven glaciers drain the Antarctic Peninsula into the embayments left by the collapsed Larsen A
# and B ice shelves and the Prince Gustav Channel; Columbia Glacier ends in Prince William Sound, Alaska, and
# Jakobshavn Isbræ in the Ilulissat Icefjord, West Greenland. The coordinates are kept in the library
# (`ssl4sar.data.summary.GLACIER_LOCATIONS`) with their sources; they are gazetteer positions of the named
# glaciers, within roughly 10–20 km of the fronts.

# %%
display(summary.glacier_table())
fig = viz.glacier_map()
display(Markdown(viz.glacier_map_caption()))

# %% [markdown]
# ## The SSL4SAR pretraining archive
#
# SSL4SAR {cite}`gourmelon2025ssl4sardata` holds **9,563 Sentinel-1 SAR images** of Arctic marine-terminating
# glaciers and **14 Sentinel-2 images, one per glacier**. It has no labels: during pretraining the Sentinel-2 image
# is the target the network learns to predict from the SAR image (OptSimMIM, chapter 2; OptTranslator,
# chapter 3). For this every SAR image of a glacier must lie on exactly the pixel grid of the glacier's optical
# image, so that the same window can be cut from both. The layout read by `ssl4sar.data.unlabeled`:
#
# ```text
# <root>/sar/{train,val}/<Sensor>_<Glacier>_<YYYY-MM-DD>[_k].tif   8-bit SAR, one band, 0 = no data
# <root>/optical/<Glacier>_<anything>.tif                          Sentinel-2 L2A, Earth Engine COPERNICUS/S2_SR order
# ```
#
# A SAR image is paired with its glacier's optical image by the second field of its name. Of the optical bands
# the network predicts **14**: B1, B2, B3, B4, B5, B6, B7, B8, B8A, B9, B11, B12, WVP and SCL (the scene
# classification; AOT is skipped, as in the official code). Each band is divided by its maximum over the image and
# stored as 8 bits.

# %%
unl = summary.unlabeled_inventory(ssl4sar_root)
opt = summary.optical_inventory(ssl4sar_root)
display(Markdown("**SAR images per glacier and split, and the optical image each is paired with**"))
display(summary.unlabeled_counts(unl, opt))
display(opt)
display(summary.paper_facts("SSL4SAR"))

# %% [markdown]
# One pair as the reader returns it (SAR and the normalised optical bands on one grid), and one pretraining sample
# drawn from it by the training sampler: a random window, a random zoom (scale 0.7–1) resized back with bicubic
# interpolation, and a random horizontal flip, applied identically to SAR and optical (spec §2.3).

# %%
ex = unlabeled.pretrain_example(ssl4sar_root, cfg["pretrain"], rng)   # large real scenes are subsampled for display
fig = viz.plot_sar_optical(ex.sar, ex.optical, title=ex.title)
fig = viz.plot_sar_optical(ex.crop_sar, ex.crop_optical, title=f"a pretraining sample: {ex.context} × {ex.context} px")

# %% [markdown]
# ## Building the pretraining data set from raw scenes
#
# Satellite scenes do not arrive on a common grid: Sentinel-1 GRD scenes come in the UTM zone of their footprint,
# as σ⁰ in dB or in linear units, with sub-pixel offsets between acquisitions and slanted no-data borders;
# Sentinel-2 L2A tiles come in their own projection, with bands at 10, 20 and 60 m in separate files.
# `ssl4sar.data.construct.construct_ssl4sar` turns such scenes into the layout above: for each glacier (an area
# of interest in a GeoJSON file) it fixes one grid — the CRS and pixel lattice of the glacier's first SAR scene,
# over the area of interest — reprojects every overlapping SAR scene onto it (bilinear, in dB), converts σ⁰ to
# 8 bits (−30 … +5 dB → 1 … 255, 0 = no data), mosaics the Sentinel-2 scenes onto the same grid (bilinear for
# reflectances, nearest for the SCL classes), and writes a manifest. Unusable inputs are skipped with a reason.
#
# Here it runs on synthetic raw scenes of two Greenland glaciers (`ssl4sar.data.synthetic.generate_raw_scenes`):
# Sentinel-1 in UTM 22N (EPSG:32622) as σ⁰ in dB with NaN or −9999 no-data and as linear σ⁰, one at 10 m,
# partly overlapping; Sentinel-2 in polar stereographic EPSG:3413 at 10/20/60 m, as resolution-group files,
# single-band files and one 15-band file; and six deliberately broken scenes. Their values follow a known pattern
# in map coordinates, so the result can be checked pixel by pixel.

# %%
raw = synthetic.generate_raw_scenes(layout.data / "raw_scenes", seed=seed)
constructed = layout.root / "constructed"
if constructed.exists():
    shutil.rmtree(constructed)   # this chapter's own output: start afresh so that the run below is complete
logging.getLogger("ssl4sar.data.construct").setLevel(logging.ERROR)   # the skips are tabulated below
manifest = construct.construct_ssl4sar(raw.sar_dir, raw.optical_dir, raw.aoi_path, constructed, progress=False)
print(f"{len(manifest.written)} files written to {layout.relative(constructed)}, "
      f"{len(manifest.skipped)} inputs skipped")
display(summary.construction_table(manifest.rows))

# %% [markdown]
# The skipped inputs, with the reason the construction gives and the defect the generator built into them:

# %%
skipped, undetected = summary.construction_skips(manifest.skipped, raw.bad)
display(skipped)
print("every broken scene was skipped" if not undetected else f"NOT skipped: {undetected}")

# %% [markdown]
# Before and after: on top, the footprints of the raw scenes (faint: not used for this glacier), one raw SAR scene
# and the raw Sentinel-2 classification band, each in its own grid and CRS; below, the same data on the glacier
# grid. The true pattern's σ⁰ = −14 dB lines (orange) fall between the bright and dark SAR blobs, and its class
# boundaries (black) on the edges of the resampled SCL cells: the layers are co-registered.

# %%
example = summary.coregistration_example(raw.sar_dir, raw.optical_dir, raw.aoi_path, constructed,
                                         glacier=raw.glaciers[0], pattern=raw.pattern)
fig = viz.plot_coregistration(example)

# %% [markdown]
# The same check in numbers, for every output file: the median and 95th-percentile absolute difference to the true
# pattern (dB for SAR, reflectance for band B4), next to the error a misregistration by a single grid pixel would
# cause, and the share of pixels with the true SCL class.

# %%
display(summary.coregistration_residuals(constructed, raw.pattern).drop(columns=["glacier", "sensor"]))

# %% [markdown]
# The construction can be interrupted and repeated: outputs that exist and are listed in the manifest are kept.
# A second run over the same inputs writes nothing; the result is readable by the pretraining reader:

# %%
again = construct.construct_ssl4sar(raw.sar_dir, raw.optical_dir, raw.aoi_path, constructed, progress=False)
print(f"second run: {len(again.written)} written, {len(again.reused)} reused")
display(summary.unlabeled_counts(summary.unlabeled_inventory(constructed), summary.optical_inventory(constructed)))

# %% [markdown]
# ## How realistic is the synthetic SAR?
#
# The book's default build trains and evaluates on synthetic scenes so that it runs anywhere. Their statistics
# are compared here with seven real CaFFe patches (TerraSAR-X, 512 × 512 px, Jakobshavn, DBE and Jorum) drawn
# with synthetic scenes of the same kind (TerraSAR-X-like, 6 m, single look), per class: the grey-level
# distribution, the equivalent number of looks (ENL = mean² / variance in the most homogeneous windows; a
# single-look amplitude image gives about 3.7, texture lowers it) and the Sobel gradient magnitude inside each
# class (texture and speckle). The statistics come from `ssl4sar.data.realism`.

# %%
real = realism.load_real_patches(real_samples_dir or samples.patches_dir())   # missing or empty folder: DataError
synth = realism.book_synthetic_patches(setup.preset_name, n_realism_patches, seed=seed)
display(realism.patch_table(real))
fig = viz.plot_scene_gallery(realism.most_varied(real, 3) + synth[:3], ncols=3, panel_size=3.4)

# %% [markdown]
# In the figure above, the top row shows real patches and the bottom row synthetic ones, with their zone maps.

# %%
fig = viz.plot_realism(*realism.comparison_frames(synth, real))
display(realism.comparison_table(realism.compare(synth, real, seed=seed)))

# %% [markdown]
# In the table (one column per class), `wasserstein_*` is the earth mover's distance between the synthetic and
# real distributions (grey levels, or grey levels per pixel) and `*_ratio` is synthetic / real. Seven patches of
# one sensor are not a benchmark: the comparison says whether the synthetic scenes are in the right range, not
# that they are interchangeable with real data.
#
# **Source and licence of the real patches.** They ship with ssl4sar (`ssl4sar.data.samples.real_patches()`;
# attribution in `ssl4sar/data/samples/caffe_patches/README.md`). They were sampled from the CaFFe benchmark by
# the GEO-Bench-2 project for its unit tests (file `tests/data/caffe/caffe.tortilla`, CC-BY-4.0). CaFFe: Gourmelon,
# N., Seehaus, T., Braun, M., Maier, A., Christlein, V.: *Calving fronts and where to find them: a benchmark
# dataset and methodology for automatic glacier calving front extraction from synthetic aperture radar imagery*,
# Earth Syst. Sci. Data 14, 4287–4313, 2022, doi 10.5194/essd-14-4287-2022; data doi 10.1594/PANGAEA.940950,
# licensed CC-BY-4.0.
#
# ## What the next chapters use
#
# Chapters 2 and 3 pretrain on the SSL4SAR layout shown above (`ssl4sar_dir`, or the synthetic one), chapter 4
# fine-tunes on the CaFFe layout with the validation split shown above. The folder `work_dir/constructed/`
# only illustrates the construction; point `ssl4sar_dir` at such a folder to
# pretrain on data you built yourself (`ssl4sar data construct`).
