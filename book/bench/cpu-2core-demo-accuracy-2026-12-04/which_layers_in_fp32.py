"""Which layers, kept in float32 under bf16 autocast, bring the class maps within 99.9 % of the reference path?
(issue 15; the result made float32 patch embedding and head the default, Tyrion.fp32_embed_and_head)

Usage: OMP_NUM_THREADS=1 python which_layers_in_fp32.py CKPT CAFFE_ROOT N_TEST_SCENES
Each variant starts from bf16 everywhere (fp32_embed_and_head switched off) and wraps the listed modules in float32.
Results: which_layers_in_fp32.json (first 8 test scenes of the c45cb26 build's OptSimMIM seed 2)."""
import sys, time, json
import numpy as np, torch
torch.set_num_threads(1)
from ssl4sar.models.convert import load_model
from ssl4sar.data.caffe import discover, load_scene
from ssl4sar.bench.paths import REFERENCE, fast_path
from ssl4sar.bench.accuracy import _on_path
from ssl4sar.inference import sliding_window_probabilities

ckpt, data, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
dev = torch.device("cpu")
model = load_model(ckpt, map_location="cpu", trusted=True).float().eval()
scenes = discover(data, "test")[:n]
c = int(model.img_size); stride = c // 4; sigma = c / 16
fast = fast_path(dev)
imgs = {s.stem: load_scene(s)["image"] for s in scenes}

def run(m, amp, centre_only=True):
    maps, probs, secs = {}, {}, 0.0
    for k, img in imgs.items():
        t0 = time.perf_counter()
        p = sliding_window_probabilities(m, img, context_size=c, stride=stride, sigma=sigma, batch_size=8,
                                         device=dev, amp_dtype=amp, centre_only=centre_only)
        secs += time.perf_counter() - t0
        maps[k] = p.argmax(0).astype(np.uint8); probs[k] = p
    return maps, probs, secs

ref, ref_p, t_ref = run(_on_path(model, REFERENCE, dev), None, centre_only=False)
def agree(maps):
    d = sum(int((maps[k] != ref[k]).sum()) for k in ref); tot = sum(v.size for v in ref.values())
    return 1 - d / tot, d

def fp32_modules(m, modules):
    for mod in modules:
        f = mod.forward
        def w(*a, f=f):
            with torch.autocast("cpu", enabled=False):
                return f(*[x.float() if torch.is_tensor(x) else x for x in a])
        mod.forward = w
    return m

variants = {
    "bf16_all": lambda m: [],
    "embed_fp32": lambda m: [m.encoder.patch_embed],
    "embed_head_fp32": lambda m: [m.encoder.patch_embed, m.head],
    "embed_stage0_fp32": lambda m: [m.encoder.patch_embed, m.encoder.layers[0]],
    "decoder_head_fp32": lambda m: [*m.decoder, m.head],
    "decoder_last2_head_fp32": lambda m: [m.decoder[-2], m.decoder[-1], m.head],
    "embed_decoder_last2_head_fp32": lambda m: [m.encoder.patch_embed, m.decoder[-2], m.decoder[-1], m.head],
}
out = {"scenes": len(scenes), "pixels": int(sum(v.size for v in ref.values())), "t_ref_s": t_ref}
for name, pick in variants.items():
    m = _on_path(model, fast, dev)
    m.fp32_embed_and_head = False  # the variants below start from bf16 everywhere
    fp32_modules(m, pick(m))
    maps, _, secs = run(m, torch.bfloat16)
    a, d = agree(maps)
    out[name] = {"agreement": a, "differing_px": d, "seconds": secs}
    print(name, out[name], flush=True)
print(json.dumps(out, indent=1))
