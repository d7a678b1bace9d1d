"""Fast path with fused SDPA attention vs timm's attention, on this CPU, bf16 autocast: training step (batch 2) and
no-grad forward (batch 2), paper network, alternating rounds in one process; plus logits agreement."""
import json
import sys

import numpy as np
import torch

from ssl4sar.bench.measure import alternate
from ssl4sar.bench.paths import prepare_on_path
from ssl4sar.bench.training import StepSettings, finetune_case
from ssl4sar.config import load_preset
from ssl4sar.models.tyrion import Tyrion

# usage (repository root): HF_HUB_OFFLINE=1 python book/bench/roofline-2026-12-05/fused_vs_timm_attention_cpu.py ROUNDS OUT.json
cfg = load_preset("paper")["model"]
rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 4
out = {"torch": torch.__version__, "threads": torch.get_num_threads()}
# training step
cases = {n: finetune_case(cfg, StepSettings("cpu", 2, "bf16", fused=f)) for n, f in (("fused", True), ("timm", False))}
for c in cases.values():
    c.step()
    c.step()   # warm-up
t = alternate({n: c.step for n, c in cases.items()}, rounds, "cpu")
out["train_step_s"] = t
# inference forward
torch.manual_seed(0)
m1 = Tyrion.from_config(cfg).eval()
m2 = Tyrion.from_config(cfg).eval()
m2.load_state_dict(m1.state_dict())
prepare_on_path(m1, "cpu", fused=True, channels_last=False)
prepare_on_path(m2, "cpu", fused=False, channels_last=False)
x = torch.rand(2, 1, 512, 512, generator=torch.Generator().manual_seed(1))
def fwd(m):
    def f():
        with torch.no_grad(), torch.autocast("cpu", torch.bfloat16):
            return m(x)
    return f
fwd(m1)()
fwd(m2)()
t = alternate({"fused": fwd(m1), "timm": fwd(m2)}, rounds, "cpu")
out["forward_s"] = t
a, b = fwd(m1)().float(), fwd(m2)().float()
with torch.no_grad(), torch.autocast("cpu", enabled=False):
    prepare_on_path(m2, "cpu", fused=False, channels_last=False)
    ref = m2(x).float()
out["argmax_agreement_fused_vs_fp32"] = float((a.argmax(1) == ref.argmax(1)).float().mean())
out["argmax_agreement_timm_vs_fp32"] = float((b.argmax(1) == ref.argmax(1)).float().mean())
for k in ("train_step_s", "forward_s"):
    f, tm = np.array(out[k]["fused"]), np.array(out[k]["timm"])
    print(k, "fused median %.3f s, timm median %.3f s, fused/timm time per round:" % (np.median(f), np.median(tm)), np.round(f / tm, 3))
print({k: v for k, v in out.items() if "agreement" in k})
json.dump(out, open(sys.argv[2] if len(sys.argv) > 2 else "fused_vs_timm_attention_cpu.json", "w"), indent=1)
