"""Which image carries the two -15 m jumps among the float32 dither draws of OptSimMIM seed 0 (draws 1 and 14 of
mde_under_weight_dither-optsimmim-seed0-scale0.0015.json)? Usage: python which_image_in_the_dither_jumps.py WORK_DIR
(run from this folder); output: which_image_in_the_dither_jumps.txt."""
import sys

from demo_test_split import load
from mde_under_weight_dither import dithered
from ssl4sar.bench.accuracy import mde_change_by_scene
from ssl4sar.bench.paths import REFERENCE, fast_path

split = load(f"{sys.argv[1]}/finetune/optsimmim/seed0/best_mde.pt", f"{sys.argv[1]}/data/caffe")
ref = split.score(split.maps(REFERENCE))
for seed in (1, 14):
    m = split.maps(fast_path("cpu").with_(precision="fp32"), dithered(split.model, 0.0015, seed))
    print(seed, mde_change_by_scene(ref, split.score(m))[:2], flush=True)
