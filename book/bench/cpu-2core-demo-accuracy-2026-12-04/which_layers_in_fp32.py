"""Which layers, kept in float32 under bf16 autocast, bring the class maps within 99.9 % of the reference path?
(issue 15; the result made float32 patch embedding and head the default, Tyrion.fp32_embed_and_head)

Usage: python which_layers_in_fp32.py CKPT CAFFE_ROOT N_TEST_SCENES (one thread, bf16_diagnosis.setup)
Each variant starts from bf16 everywhere and wraps the listed modules in float32.
Results: which_layers_in_fp32.json (first 8 test scenes of the c45cb26 build's OptSimMIM seed 2)."""
import json

import torch
from bf16_diagnosis import agreement, fp32_modules, setup

diag = setup()
ref, _, t_ref = diag.reference()
variants = {
    "bf16_all": lambda m: [],
    "embed_fp32": lambda m: [m.encoder.patch_embed],
    "embed_head_fp32": lambda m: [m.encoder.patch_embed, m.head],
    "embed_stage0_fp32": lambda m: [m.encoder.patch_embed, m.encoder.layers[0]],
    "decoder_head_fp32": lambda m: [*m.decoder, m.head],
    "decoder_last2_head_fp32": lambda m: [m.decoder[-2], m.decoder[-1], m.head],
    "embed_decoder_last2_head_fp32": lambda m: [m.encoder.patch_embed, m.decoder[-2], m.decoder[-1], m.head],
}
out = {"scenes": len(ref), "pixels": int(sum(v.size for v in ref.values())), "t_ref_s": t_ref}
for name, pick in variants.items():
    m = diag.on(diag.fast)
    fp32_modules(m, pick(m))
    maps, _, secs = diag.run(m, torch.bfloat16)
    a, d, _ = agreement(maps, ref)
    out[name] = {"agreement": a, "differing_px": d, "seconds": secs}
    print(name, out[name], flush=True)
print(json.dumps(out, indent=1))
