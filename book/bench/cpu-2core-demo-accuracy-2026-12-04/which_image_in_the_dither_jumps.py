"""Which image carries the two -15 m jumps among the float32 dither draws of OptSimMIM seed 0 (draws 1 and 14 of
mde_under_weight_dither-optsimmim-seed0-scale0.0015.json)? Usage: python which_image_in_the_dither_jumps.py WORK_DIR
(run from this folder); output: which_image_in_the_dither_jumps.txt."""
import sys

import torch

from mde_under_weight_dither import dithered
from ssl4sar.bench.accuracy import _score, predict_split, mde_change_by_scene
from ssl4sar.bench.paths import REFERENCE, fast_path
from ssl4sar.data.caffe import discover
from ssl4sar.evaluate import inference_settings
from ssl4sar.models.convert import load_model
B = sys.argv[1]
data = f"{B}/data/caffe"
model = load_model(f"{B}/finetune/optsimmim/seed0/best_mde.pt", map_location="cpu", trusted=True).float().eval()
scenes = discover(data, "test")
st = inference_settings(int(model.img_size), preset="demo")
kw = {"device": torch.device("cpu"), "stride": st.stride, "sigma": st.sigma, "batch_size": 8}
ref = _score(predict_split(model, scenes, REFERENCE, **kw)[0], data, "test")
for seed in (1, 14):
    m = predict_split(dithered(model, 0.0015, seed), scenes, fast_path("cpu").with_(precision="fp32"), **kw)[0]
    print(seed, mde_change_by_scene(ref, _score(m, data, "test"))[:2], flush=True)
