"""Outputs and gradients of the fused path on this CPU, saved on one commit and compared bit for bit on another.

    PYTHONPATH=<a checkout of 2dbac9f> python bit_identity.py save before.pt   # the permuted mask
    python bit_identity.py cmp before.pt                  # this checkout, the contiguous mask: "identical" per case

Run the same copy of this script both times: float32 reductions on this CPU can round differently when the
allocations around them differ, and an earlier variant of this script (same model code) differed from this one by up
to 3e-8 in the paper network's float32 gradients.

Demo (128 px) and paper (512 px) networks with randomly perturbed weights, batch 2: training forward and every
parameter gradient of a squared-logit loss, and the eval forward, in float32 and under bf16 autocast; and the
inference form (:func:`ssl4sar.models.fast.for_inference`) under bf16. The output of the run of record is in
``bit_identity.txt``.
"""
import sys

import torch

from ssl4sar.config import load_preset
from ssl4sar.models.fast import enable_fused_attention, for_inference
from ssl4sar.models.tyrion import Tyrion

torch.set_num_threads(2)
res = {}
for preset, side in (("demo", 128), ("paper", 512)):
    mc = load_preset(preset)["model"]
    torch.manual_seed(0)
    m = Tyrion.from_config(mc)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    enable_fused_attention(m)
    x = torch.rand(2, 1, side, side, generator=torch.Generator().manual_seed(2))
    for amp in (None, torch.bfloat16):
        m.zero_grad()
        with torch.autocast("cpu", dtype=amp or torch.float32, enabled=amp is not None):
            out = m.train()(x)
        out.float().square().mean().backward()
        res[(preset, str(amp), "train_out")] = out.detach().float()
        res[(preset, str(amp), "grads")] = torch.cat([p.grad.flatten() for p in m.parameters() if p.grad is not None])
        with torch.no_grad(), torch.autocast("cpu", dtype=amp or torch.float32, enabled=amp is not None):
            res[(preset, str(amp), "eval_out")] = m.eval()(x).float()
    inf = for_inference(m)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        res[(preset, "inference_bf16")] = inf(x).float()
if sys.argv[1] == "save":
    torch.save(res, sys.argv[2])
else:
    old = torch.load(sys.argv[2])
    for k, v in res.items():
        d = (v - old[k]).abs().max().item()
        print(k, "identical" if torch.equal(v, old[k]) else f"max diff {d:.3g}")
