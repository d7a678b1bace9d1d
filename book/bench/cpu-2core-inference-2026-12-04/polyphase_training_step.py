"""Polyphase x2 upsampling convolutions in a training step (forward + backward + SGD step) of the paper network on
the CPU: batch 2 of 512 px, bf16 autocast, fused attention, torch's default threads, alternating rounds (issue 15;
training keeps the nearest form for now). Usage: python polyphase_training_step.py ROUNDS"""
import copy, json, sys, time
import torch
from ssl4sar.config import load_preset
from ssl4sar.models.tyrion import Tyrion
torch.manual_seed(0)
base = Tyrion.from_config(load_preset("paper")["model"]).train().set_fused_attention(True)
models = {"nearest": base, "polyphase": copy.deepcopy(base).set_polyphase_upsampling(True)}
opts = {k: torch.optim.SGD(m.parameters(), lr=1e-4) for k, m in models.items()}
x = torch.rand(2, 1, 512, 512)
y = torch.randint(0, 4, (2, 512, 512))
def step(k):
    m, o = models[k], opts[k]
    o.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = torch.nn.functional.cross_entropy(m(x).float(), y)
    loss.backward(); o.step()
for k in models: step(k)
res = {k: [] for k in models}
for _ in range(int(sys.argv[1])):
    for k in models:
        t0 = time.perf_counter(); step(k); res[k].append(round(time.perf_counter() - t0, 3))
print(json.dumps({**res, "best_ratio": min(res["nearest"]) / min(res["polyphase"])}))
