"""Which test scene gets a front on the fast path but not on the reference path (the pooled MDE change of the
final fast path, README). Usage: python which_scene_gets_a_front.py CKPT CAFFE_ROOT. Output: which_scene_gets_a_front.txt"""
import sys, torch
from pathlib import Path
from ssl4sar.models.convert import load_model
from ssl4sar.data.caffe import discover
from ssl4sar.bench.paths import REFERENCE, fast_path
from ssl4sar.bench.accuracy import predict_split, _score
ckpt, data = sys.argv[1], sys.argv[2]
model = load_model(ckpt, map_location="cpu", trusted=True).float().eval()
scenes = discover(data, "test")
c = int(model.img_size); kw = dict(device=torch.device("cpu"), stride=c // 4, sigma=c / 16, batch_size=8)
ref, _ = predict_split(model, scenes, REFERENCE, **kw)
fast, _ = predict_split(model, scenes, fast_path("cpu"), **kw)
a, b = _score(ref, data, "test"), _score(fast, data, "test")
only = sorted(set(b["fronts"]) - set(a["fronts"])), sorted(set(a["fronts"]) - set(b["fronts"]))
print("fronts only in fast:", only[0], "only in reference:", only[1])
for k in only[0]:
    s, n = b["fronts"][k]
    print(k, "fast front: mean distance", s / n, "m over", n, "distances; differing px", int((ref[k] != fast[k]).sum()), "of", ref[k].size)
print("pooled", a["mde_m"], b["mde_m"])
