"""Compiled fine-tuning step of the paper network on this CPU: the decoder's nearest x2 upsampling as F.interpolate
(the form before `upsample_nearest_2x`) against the broadcast that `upsample_nearest_2x` uses under torch.compile.

Both layouts: contiguous (the CPU's fast training path) and channels-last (the fast path's layout on CUDA, where the
H200 profile of the compiled step showed interpolate's backward as an atomic scatter-add). bf16 autocast, batch 2,
SGD, fused attention; the eager fast path for context. Every case is compiled once, then all cases are timed in
alternating rounds, best round of each. Usage: python compiled_upsampling.py OUT.json [ROUNDS] [STEPS] [PRESET (paper)]
"""
from __future__ import annotations

import json
import platform
import sys
import time
import types

import torch
import torch.nn.functional as F

import ssl4sar
from ssl4sar.bench.training import StepSettings, finetune_case
from ssl4sar.config import load_preset
from ssl4sar.models.tyrion import Upsample


def interpolate_forward(self: Upsample, x: torch.Tensor) -> torch.Tensor:
    """Upsample.forward before this change: F.interpolate, compiled or not."""
    return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def main() -> None:
    out = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    steps = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    preset = sys.argv[4] if len(sys.argv) > 4 else "paper"
    cfg = load_preset(preset)["model"]
    cases = {}
    for name, compile_, channels_last, form in [
        ("eager", False, False, "interpolate"),
        ("compiled-contiguous-interpolate", True, False, "interpolate"),
        ("compiled-contiguous-broadcast", True, False, "broadcast"),
        ("compiled-channels-last-interpolate", True, True, "interpolate"),
        ("compiled-channels-last-broadcast", True, True, "broadcast"),
    ]:
        settings = StepSettings("cpu", 2, "bf16", True, channels_last, compile_, seed=0)
        case = finetune_case(cfg, settings)
        if form == "interpolate":
            for m in case.module.modules():
                if isinstance(m, Upsample):
                    m.forward = types.MethodType(interpolate_forward, m)
        t0 = time.perf_counter()
        for _ in range(3 if compile_ else 1):  # compilation at the first call; warm-up
            case.step()
        cases[name] = {"case": case, "warmup_s": time.perf_counter() - t0, "round_s": [],
                       "loss_after_warmup": case.last.get("loss")}
        print(name, f"warm-up {cases[name]['warmup_s']:.1f} s", flush=True)
    for r in range(rounds):
        for name, c in cases.items():
            t0 = time.perf_counter()
            for _ in range(steps):
                c["case"].step()
            c["round_s"].append((time.perf_counter() - t0) / steps)
            print(f"round {r} {name}: {c['round_s'][-1]:.3f} s/step", flush=True)
    res = {
        "what": __doc__.split("\n\n")[0],
        "torch": torch.__version__, "ssl4sar": ssl4sar.__version__, "python": platform.python_version(),
        "preset": preset, "torch_threads": torch.get_num_threads(), "batch_size": 2, "precision": "bf16-mixed",
        "rounds": rounds, "steps_per_round": steps,
        "cases": {n: {"best_s_per_step": min(c["round_s"]), "round_s_per_step": c["round_s"],
                      "warmup_s_incl_compile": c["warmup_s"], "loss_after_warmup": c["loss_after_warmup"]}
                  for n, c in cases.items()},
    }
    best = {n: v["best_s_per_step"] for n, v in res["cases"].items()}
    res["ratios"] = {
        "contiguous: broadcast vs interpolate":
            best["compiled-contiguous-interpolate"] / best["compiled-contiguous-broadcast"],
        "channels-last: broadcast vs interpolate":
            best["compiled-channels-last-interpolate"] / best["compiled-channels-last-broadcast"],
        "compiled contiguous broadcast vs eager": best["eager"] / best["compiled-contiguous-broadcast"],
    }
    print(json.dumps(res["ratios"], indent=1))
    with open(out, "w") as f:
        json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
