"""Sliding-window windows/s of the paper network's bf16 fast path for (batch size, parallel forward passes):
alternating rounds in one process, 16 windows of 512 px (a 576² px scene), random weights (issue 15).

Usage: python workers_and_batch.py ROUNDS BxW [BxW ...]   e.g. 6 2x1 2x2 1x2 4x2 8x2
W = 1 runs one forward pass with torch's default threads (2 here); W = 2 runs two single-threaded passes."""
import time, json, sys, torch, numpy as np
from ssl4sar.config import load_preset
from ssl4sar.models.tyrion import Tyrion
from ssl4sar.inference import sliding_window_probabilities
torch.manual_seed(0)
m = Tyrion.from_config(load_preset("paper")["model"]).eval().set_fused_attention(True)
img = np.random.default_rng(0).integers(0, 256, (576, 576), dtype=np.uint8)  # 16 windows
kw = dict(context_size=512, stride=128, amp_dtype=torch.bfloat16)
sliding_window_probabilities(m, img[:256, :256], batch_size=2, **kw)
cfgs = [tuple(map(int, c.split("x"))) for c in sys.argv[2:]]
res = {}
for r in range(int(sys.argv[1])):
    for b, w in cfgs:
        t0 = time.perf_counter(); sliding_window_probabilities(m, img, batch_size=b, workers=w, **kw)
        res.setdefault(f"b{b}w{w}", []).append(round(16 / (time.perf_counter() - t0), 3))
print(json.dumps({k: {"best": max(v), "median": float(np.median(v)), "all": v} for k, v in res.items()}, indent=1))
