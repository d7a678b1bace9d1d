"""torch.compile (inductor, optionally with freezing = weight prepacking) of the bf16 centre-only forward of the
paper network on the CPU, one thread, 2 windows: compile time, agreement with eager, seconds per call (issue 15).

Usage: python compile_freezing.py freeze|nofreeze"""
import time, json, sys, torch
torch.set_num_threads(1)
import torch._inductor.config as icfg
freeze = sys.argv[1] == "freeze"
icfg.freezing = freeze
from ssl4sar.config import load_preset
from ssl4sar.models.tyrion import Tyrion
torch.manual_seed(0)
m = Tyrion.from_config(load_preset("paper")["model"]).eval().set_fused_attention(True)
x = torch.rand(2, 1, 512, 512)
def f(x):
    return m.centre_logits(x, 256)
cf = torch.compile(f)
def run(fn):
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        return fn(x)
t0 = time.perf_counter(); yc = run(cf); tc = time.perf_counter() - t0
print("compile s", tc, flush=True)
ye = run(f)
print("max diff", float((yc.float() - ye.float()).abs().max()), "argmax agree", float((yc.argmax(1) == ye.argmax(1)).float().mean()), flush=True)
res = {"eager": [], "compiled": []}
for _ in range(4):
    for k, fn in (("eager", f), ("compiled", cf)):
        t0 = time.perf_counter(); run(fn); res[k].append(round(time.perf_counter() - t0, 3))
print(json.dumps({"freeze": freeze, "compile_s": tc, **res}), flush=True)
