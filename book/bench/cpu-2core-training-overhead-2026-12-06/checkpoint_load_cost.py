"""Seconds to load a paper-network checkpoint with `ssl4sar.models.convert.load_model` (2026-12-06).

Before, `load_model` read a checkpoint of our format twice (once to recognise it, once to load it) and checked its
weights for NaN / inf with one `isfinite` pass per tensor. Run this script once per checkout, alternating
(`PYTHONPATH=CHECKOUT python checkpoint_load_cost.py CKPT`); it prints one JSON line: the best of 5 loads after one
warm-up load, with one torch thread. The checkpoint (random weights) is written by `--write CKPT` first.
"""

import json
import sys
import time

import torch

import ssl4sar
from ssl4sar.models.convert import load_model

if __name__ == "__main__":
    torch.set_num_threads(1)
    if sys.argv[1] == "--write":
        from ssl4sar.config import load_preset
        from ssl4sar.models.convert import save_checkpoint
        from ssl4sar.models.tyrion import Tyrion

        torch.manual_seed(0)
        save_checkpoint(sys.argv[2], Tyrion.from_config(load_preset("paper")["model"]))
        sys.exit(0)
    load_model(sys.argv[1])
    times = []
    for _ in range(5):
        t = time.perf_counter()
        load_model(sys.argv[1])
        times.append(time.perf_counter() - t)
    print(json.dumps({"ssl4sar": ssl4sar.__file__, "load_model_s": [round(v, 4) for v in times],
                      "best_s": round(min(times), 4)}))
