"""The book's training path (demo network, float32, fused attention, eager) with the permuted and the contiguous
position-bias mask, in alternating rounds: did 014915f change the time of the book's CPU training?

Usage: python demo_step_ab.py THREADS BATCH ROUNDS STEPS   (the run of record: 1 8 8 5, as a book training run)
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import attention_mask_layout as aml  # noqa: E402

from ssl4sar.bench.training import StepSettings, finetune_case  # noqa: E402
from ssl4sar.config import load_preset  # noqa: E402


def main() -> None:
    threads, batch, rounds, steps = (int(a) for a in sys.argv[1:5])
    torch.set_num_threads(threads)
    cfg = load_preset("demo")["model"]
    cases = {}
    for layout in aml.LAYOUTS:
        aml.use_layout(layout)
        cases[layout] = finetune_case(cfg, StepSettings("cpu", batch, "fp32", True, False, False, seed=0))
        torch.manual_seed(1)
        cases[layout].step()  # warm-up
    times: dict[str, list[float]] = {k: [] for k in cases}
    losses: dict[str, list[float]] = {k: [] for k in cases}
    for r in range(rounds):
        for layout, case in cases.items():
            aml.use_layout(layout)
            t0 = time.perf_counter()
            for s in range(steps):
                torch.manual_seed(100 + r * steps + s)  # the decoder's dropout: the same masks for both layouts
                case.step()
                losses[layout].append(case.last["loss"])
            times[layout].append((time.perf_counter() - t0) / steps)
    best = {k: min(v) for k, v in times.items()}
    print(f"threads {threads}, batch {batch}, best s/step {best}, permuted/contiguous "
          f"{best['permuted'] / best['contiguous']:.3f}, paired "
          f"{[round(a / c, 3) for a, c in zip(times['permuted'], times['contiguous'])]}, "
          f"losses identical {losses['permuted'] == losses['contiguous']}")


if __name__ == "__main__":
    main()
