"""What the validation's per-window losses cost per batch, before and after (2026-12-06).

The official validation runs with batch size 1, so every window's loss is that of a batch of one. Before, the
library looped over the windows of a validation batch (`tyrion_loss(logits[i:i + 1], ...)`, with two host syncs per
part for the target check). `tyrion_loss(..., per_sample=True)` computes them in one call; the library now makes one
call per batch on a GPU and, on a CPU, one call per 2**20 logits (`SegmentationModule._window_losses`). The three
are timed in alternating rounds in this process, next to the batch's forward pass on the fast path (bf16 autocast on
this CPU, as `validation_step` runs it), and the values are compared.

Usage: python validation_loss_cost.py PRESET BATCH THREADS [ROUNDS]   (prints one JSON line)
"""

import json
import sys
import time

import torch

from ssl4sar.config import load_preset
from ssl4sar.finetune import SegmentationModule
from ssl4sar.losses import LOSS_PARTS, tyrion_loss


def before(logits: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The loop of `SegmentationModule.validation_step` until 2026-12-06."""
    totals, parts_sum = [], {name: 0.0 for name in LOSS_PARTS}
    for i in range(logits.shape[0]):
        total, parts = tyrion_loss(logits[i:i + 1], y[i:i + 1])
        totals.append(total)
        for name in LOSS_PARTS:
            parts_sum[name] = parts_sum[name] + parts[name]
    return torch.stack(totals).mean(), {n: v / logits.shape[0] for n, v in parts_sum.items()}


def whole_batch(logits: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """All windows in one call (what the library does on a GPU)."""
    totals, parts = tyrion_loss(logits, y, per_sample=True)
    return totals.mean(), {n: v.mean() for n, v in parts.items()}


def timed(fn, *args) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t, out


if __name__ == "__main__":
    preset, batch, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 5
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = load_preset(preset)
    module = SegmentationModule.from_config(cfg).eval()
    c = cfg["model"]["img_size"]
    x, y = torch.rand(batch, 1, c, c), torch.randint(0, 4, (batch, c, c))

    def forward() -> torch.Tensor:
        with torch.no_grad(), torch.autocast("cpu", torch.bfloat16):
            return module(x).float()

    def now(logits: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        totals, parts = module._window_losses(logits, y)
        return totals.mean(), {n: v.mean() for n, v in parts.items()}

    logits = forward()
    rows: dict[str, list[float]] = {"forward_s": [], "before_s": [], "now_s": [], "whole_batch_s": []}
    with torch.no_grad():
        before(logits, y), now(logits, y), whole_batch(logits, y)  # warm-up
        for _ in range(rounds):
            rows["forward_s"].append(timed(forward)[0])
            t_before, (loss_before, parts_before) = timed(before, logits, y)
            t_now, (loss_now, parts_now) = timed(now, logits, y)
            rows["whole_batch_s"].append(timed(whole_batch, logits, y)[0])
            rows["before_s"].append(t_before)
            rows["now_s"].append(t_now)
    f, b, n = (min(rows[k]) for k in ("forward_s", "before_s", "now_s"))
    diff = max(abs(float(loss_before - loss_now)), *(abs(float(parts_before[k] - parts_now[k])) for k in LOSS_PARTS))
    print(json.dumps({"preset": preset, "batch": batch, "threads": threads,
                      **{k: [round(v, 5) for v in vs] for k, vs in rows.items()}, "ratio": round(b / n, 2),
                      "whole_batch_ratio": round(b / min(rows["whole_batch_s"]), 2),
                      "batch_before_s": round(f + b, 5), "batch_now_s": round(f + n, 5),
                      "batch_ratio": round((f + b) / (f + n), 3), "val_loss": float(loss_now),
                      "max_abs_difference": diff}))
