"""Which part of the bf16 fast path costs class-map agreement on the demo model? (issue 15 diagnosis)

Usage: python where_bf16_disagrees.py CKPT CAFFE_ROOT N_TEST_SCENES (one thread, bf16_diagnosis.setup). The committed results came
from two runs of earlier versions of this script: where_bf16_disagrees.json (all but the head / last-step
variants) and fp32_head_and_last_step.json (those two)."""
import json

import numpy as np
import torch
from bf16_diagnosis import agreement, fp32_modules, setup

diag = setup()
fast = diag.fast
ref, ref_p, t_ref = diag.reference()
out = {"scenes": len(ref)}
def agree(maps):
    return agreement(maps, ref)
fast_m = diag.on(fast)
b, b_p, t_b = diag.run(fast_m, torch.bfloat16)
out["bf16_all"] = (*agree(b), t_b)
# encoder (SwinV2 stages) in bf16, patch embedding, decoder and head in fp32
enc_m = diag.on(fast)
orig = enc_m.encode
def enc(tokens):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        skips = orig(tokens)
    return [s.float() for s in skips]
enc_m.encode = enc
e, _, t_e = diag.run(enc_m, None)
out["bf16_encoder_only"] = (*agree(e), t_e)
f, _, t_f = diag.run(fast_m, None)
out["fp32_fast"] = (*agree(f), t_f)
out["t_ref"] = t_ref

# the 1 x 1 head in fp32; then the last decoder step's convolutions and the head in fp32 (rest bf16)
m1 = diag.on(fast)
fp32_modules(m1, [m1.head])
out["bf16_head_fp32"] = agree(diag.run(m1, torch.bfloat16)[0])[:2]
m2 = diag.on(fast)
fp32_modules(m2, [mod for mod in m2.decoder[-1].modules() if isinstance(mod, torch.nn.Conv2d)] + [m2.head])
out["bf16_last_step_and_head_fp32"] = agree(diag.run(m2, torch.bfloat16)[0])[:2]
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
