"""What the training guard's weight check costs per step, before and after (2026-12-06).

`DivergenceGuard` checks after every optimiser step that the weights are finite. Before: one max-norm per tensor
(`torch._foreach_norm(ord=inf)`); now: `ssl4sar.models.convert.non_finite_tensors` (one 2-norm per tensor,
non-finite norms confirmed element by element). Both are timed in alternating rounds in this process, next to a
fine-tuning step of the same network on the fast path (bf16 autocast on this CPU), which gives the share of a step.

Usage: python guard_cost.py PRESET BATCH THREADS [ROUNDS]   (prints one JSON line)
"""

import json
import math
import sys
import time

import torch

from ssl4sar.bench.paths import fast_training_path
from ssl4sar.bench.training import StepSettings, finetune_case
from ssl4sar.config import load_preset
from ssl4sar.models.convert import non_finite_tensors


def before(params: list[torch.Tensor]) -> bool:
    """The guard's check until 2026-12-06 (ssl4sar/training.py `_weights_finite`)."""
    return bool(torch.isfinite(torch.stack(torch._foreach_norm(params, ord=math.inf))).all())


def now(params: list[torch.Tensor]) -> bool:
    return not non_finite_tensors(params)


def best_of(fn, n: int) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


if __name__ == "__main__":
    preset, batch, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    torch.set_num_threads(threads)
    cfg = load_preset(preset)["model"]
    case = finetune_case(cfg, StepSettings.on_path(fast_training_path("cpu"), "cpu", batch))
    params = [p.detach() for p in case.module.parameters() if p.is_floating_point()]
    case.step()  # warm-up
    rows = {"before_s": [], "now_s": [], "step_s": []}
    for _ in range(rounds):
        rows["before_s"].append(best_of(lambda: before(params), 5))
        rows["now_s"].append(best_of(lambda: now(params), 5))
        rows["step_s"].append(best_of(case.step, 1))
    b, n, s = (min(rows[k]) for k in ("before_s", "now_s", "step_s"))
    print(json.dumps({"preset": preset, "batch": batch, "threads": threads, "tensors": len(params),
                      "elements": sum(p.numel() for p in params),
                      **{k: [round(v, 5) for v in vs] for k, vs in rows.items()},
                      "ratio": round(b / n, 1), "before_share_of_step": round(b / (s + b), 4),
                      "now_share_of_step": round(n / (s + n), 4)}))
