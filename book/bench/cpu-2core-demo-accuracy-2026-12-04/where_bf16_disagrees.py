"""Which part of the bf16 fast path costs class-map agreement on the demo model? (issue 15 diagnosis)

Usage: OMP_NUM_THREADS=1 python where_bf16_disagrees.py CKPT CAFFE_ROOT N_TEST_SCENES. The committed results came
from two runs of earlier versions of this script: where_bf16_disagrees.json (all but the head / last-step
variants) and fp32_head_and_last_step.json (those two)."""
import sys, time, json
import numpy as np, torch
torch.set_num_threads(1)
from ssl4sar.models.convert import load_model
from ssl4sar.data.caffe import discover
from ssl4sar.bench.paths import REFERENCE, fast_path
from ssl4sar.bench.accuracy import predict_split, _on_path
from ssl4sar.inference import sliding_window_probabilities
from ssl4sar.data.caffe import load_scene

ckpt, data, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
dev = torch.device("cpu")
model = load_model(ckpt, map_location="cpu", trusted=True).float().eval()
scenes = discover(data, "test")[:n]
c = int(model.img_size); stride = c // 4; sigma = c / 16
fast = fast_path(dev)

def run(m, amp, centre_only=True):
    maps, probs, secs = {}, {}, 0.0
    for s in scenes:
        img = load_scene(s)["image"]
        t0 = time.perf_counter()
        p = sliding_window_probabilities(m, img, context_size=c, stride=stride, sigma=sigma, batch_size=8,
                                         device=dev, amp_dtype=amp, centre_only=centre_only)
        secs += time.perf_counter() - t0
        maps[s.stem] = p.argmax(0).astype(np.uint8); probs[s.stem] = p
    return maps, probs, secs

ref_m = _on_path(model, REFERENCE, dev)
ref, ref_p, t_ref = run(ref_m, None, centre_only=False)
fast_m = _on_path(model, fast, dev)
out = {"scenes": len(scenes)}
def agree(maps):
    d = sum(int((maps[k] != ref[k]).sum()) for k in ref); tot = sum(v.size for v in ref.values())
    return 1 - d / tot, d, tot
b, b_p, t_b = run(fast_m, torch.bfloat16)
out["bf16_all"] = (*agree(b), t_b)
# encoder (SwinV2 stages) in bf16, patch embedding, decoder and head in fp32
enc_m = _on_path(model, fast, dev)
inner = enc_m
orig = inner.encode
def enc(tokens):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        skips = orig(tokens)
    return [s.float() for s in skips]
inner.encode = enc
e, _, t_e = run(enc_m, None)
out["bf16_encoder_only"] = (*agree(e), t_e)
f, _, t_f = run(fast_m, None)
out["fp32_fast"] = (*agree(f), t_f)
out["t_ref"] = t_ref

# the 1 x 1 head in fp32; then the last decoder step's convolutions and the head in fp32 (rest bf16)
def fp32_modules(m, modules):
    for mod in modules:
        f = mod.forward
        def w(x, f=f):
            with torch.autocast("cpu", enabled=False):
                return f(x.float())
        mod.forward = w
    return m
m1 = fp32_modules(_on_path(model, fast, dev), [])
fp32_modules(m1, [m1.head])
out["bf16_head_fp32"] = agree(run(m1, torch.bfloat16)[0])[:2]
m2 = _on_path(model, fast, dev)
fp32_modules(m2, [mod for mod in m2.decoder[-1].modules() if isinstance(mod, torch.nn.Conv2d)] + [m2.head])
out["bf16_last_step_and_head_fp32"] = agree(run(m2, torch.bfloat16)[0])[:2]
# margins of the disagreeing pixels of bf16_all in the reference probabilities
margins = []
for k in ref:
    p = np.sort(ref_p[k], axis=0); m = p[-1] - p[-2]
    margins.append(m[b[k] != ref[k]])
m = np.concatenate(margins)
out["bf16_disagree_margin_quantiles"] = np.quantile(m, [0.5, 0.9, 0.99, 1.0]).tolist() if m.size else []
allm = np.concatenate([ (np.sort(ref_p[k],0)[-1]-np.sort(ref_p[k],0)[-2]).ravel() for k in ref])
out["share_of_px_with_margin_below_0.05"] = float((allm < 0.05).mean())
print(json.dumps(out, indent=1))
