"""How far the sliding-window ratio of one ``make bench`` run can be trusted: the reference and the fast path of the
paper network, timed on one 16-window scene in many alternating rounds, one paired ratio per round.

``make bench`` runs 3 rounds and reports the best round of each path; on this shared 2-core machine the reference
path alone varied between 0.76 and 0.99 windows/s from one run to the next. Here the same comparison
(:func:`ssl4sar.bench.windows.compare_sliding_window`, the benchmark's own code) runs ROUNDS rounds, and the paired
ratios give a median and a bootstrap 95 % interval of the median.

    python book/bench/cpu-2core-inference-2026-12-05/sliding_window_rounds.py [ROUNDS=10]

Writes ``sliding_window_rounds.json`` beside this script.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from ssl4sar.bench.environment import environment  # noqa: E402
from ssl4sar.bench.paths import REFERENCE, fast_path  # noqa: E402
from ssl4sar.bench.windows import compare_sliding_window  # noqa: E402
from ssl4sar.config import load_preset  # noqa: E402


def bootstrap_median_interval(x: np.ndarray, draws: int = 20_000, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    meds = np.median(rng.choice(x, size=(draws, x.size), replace=True), axis=1)
    return float(np.quantile(meds, 0.025)), float(np.quantile(meds, 0.975))


def main(rounds: int) -> None:
    t0 = time.perf_counter()
    cfg = load_preset("paper")
    rows = compare_sliding_window(cfg["model"], [REFERENCE, fast_path("cpu")], device="cpu", windows_per_axis=4,
                                  stride=cfg["inference"]["stride"], batch_size=2, rounds=rounds, seed=0)
    ref, fast = rows
    ref_s, fast_s = np.array(ref["round_s"]), np.array(fast["round_s"])
    paired = ref_s / fast_s  # same scene, same windows: the ratio of times is the ratio of windows/s
    lo, hi = bootstrap_median_interval(paired)
    out = {
        "command": f"python book/bench/cpu-2core-inference-2026-12-05/sliding_window_rounds.py {rounds}",
        "environment": environment("cpu"),
        "n_windows": ref["n_windows"], "stride_px": ref["stride"], "rounds": rounds,
        "reference_round_s": ref_s.tolist(), "fast_round_s": fast_s.tolist(),
        "paired_ratios": paired.tolist(),
        "paired_ratio_median": float(np.median(paired)), "paired_ratio_median_ci95": [lo, hi],
        "paired_ratio_min": float(paired.min()), "paired_ratio_max": float(paired.max()),
        "rounds_at_least_2.5": int((paired >= 2.5).sum()),
        "best_against_best": float(ref_s.min() / fast_s.min()),
        "reference_windows_per_s_best": ref["windows_per_s"], "fast_windows_per_s_best": fast["windows_per_s"],
        "fast_minutes_10mp_best": fast["seconds_10mp_scene_extrapolated"] / 60,
        "fast_minutes_10mp_median": fast["windows_10mp_scene"] * float(np.median(fast_s)) / ref["n_windows"] / 60,
        "wall_s": time.perf_counter() - t0,
    }
    path = Path(__file__).with_name("sliding_window_rounds.json")
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps({k: v for k, v in out.items() if k != "environment"}, indent=1))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
