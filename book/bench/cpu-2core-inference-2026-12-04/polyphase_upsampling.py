"""Polyphase x2 upsampling convolutions against nearest upsampling + 3x3 convolution: float32 difference, bf16
argmax agreement (random weights) and seconds per centre-only forward of 2 windows, one thread, alternating (issue 15).

Usage: python polyphase_upsampling.py"""
import torch, time, copy
torch.set_num_threads(1)
from ssl4sar.config import load_preset
from ssl4sar.models.tyrion import Tyrion
torch.manual_seed(0)
m = Tyrion.from_config(load_preset("paper")["model"]).eval().set_fused_attention(True)
mp = copy.deepcopy(m).set_polyphase_upsampling(True)
x = torch.rand(2, 1, 512, 512)
def f(model, amp=True):
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
        return model.centre_logits(x, 256)
a = f(m, False); b = f(mp, False)
print("fp32 max diff", float((a-b).abs().max()), float(a.abs().max()))
a = f(m); b = f(mp)
print("bf16 argmax agree", float((a.argmax(1)==b.argmax(1)).float().mean()))
res = {"nearest": [], "polyphase": []}
for _ in range(4):
    for k, mod in (("nearest", m), ("polyphase", mp)):
        t0 = time.perf_counter(); f(mod); res[k].append(round(time.perf_counter() - t0, 3))
print(res)
