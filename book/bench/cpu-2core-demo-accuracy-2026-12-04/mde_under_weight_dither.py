"""How far does the test MDE move under rounding noise alone? A null distribution for the fast path's MDE change.

The reference path (fp32) is compared with itself after every weight is multiplied by (1 + d), d uniform in
[-SCALE, SCALE] and drawn afresh for each of K seeds: a perturbation of the size of bf16's rounding (its relative
rounding error is at most 2**-9 ~ 0.002), with no systematic direction. The perturbed models run on the fast path in
float32 (same function as the reference, tested to 1 differing pixel in 1.47 M). If the bf16 fast path's MDE change
lies inside the spread of these draws, it is what rounding does to this model's MDE, not a bias of the fast path.

Usage: python mde_under_weight_dither.py CKPT CAFFE_ROOT OUT_JSON [K=8] [SCALE=0.004]
Each draw is written to OUT_JSON when done; a rerun skips the draws already there.
"""
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

from demo_test_split import load
from ssl4sar.bench.paths import REFERENCE, fast_path
from ssl4sar.io import write_text_atomic

def dithered(model: torch.nn.Module, scale: float, seed: int) -> torch.nn.Module:
    """A copy of ``model`` with every floating-point parameter and buffer times (1 + U(-scale, scale))."""
    import copy

    m = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in [*m.parameters(), *m.buffers()]:
            if t.is_floating_point():
                t.mul_(1 + (torch.rand(t.shape, generator=gen, dtype=t.dtype) * 2 - 1) * scale)
    return m


def main() -> None:
    ckpt, data, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    k = int(sys.argv[4]) if len(sys.argv) > 4 else 8
    scale = float(sys.argv[5]) if len(sys.argv) > 5 else 0.004
    split = load(ckpt, data)
    model, scenes = split.model, split.scenes
    ref_maps = split.maps(REFERENCE)
    ref, ref_all = split.score(ref_maps), split.score(ref_maps, every_piece=True)
    fast = fast_path("cpu")
    result = json.loads(out.read_text()) if out.exists() else {}
    result.update({"checkpoint": ckpt, "scenes": len(scenes), "scale": scale, "reference_mde_m": ref["mde_m"],
                   "reference_mde_all_pieces_m": ref_all["mde_m"]})
    result.setdefault("draws", {})

    def record(name: str, maps: dict) -> None:
        score, every = split.score(maps), split.score(maps, every_piece=True)
        differ = sum(int(np.count_nonzero(maps[s] != ref_maps[s])) for s in ref_maps)
        result["draws"][name] = {"disagreeing_px": differ, "mde_change_m": score["mde_m"] - ref["mde_m"],
                                 "mde_change_all_pieces_m": every["mde_m"] - ref_all["mde_m"],
                                 "missing_fronts": score["missing_fronts"]}
        print(name, result["draws"][name], flush=True)
        write_text_atomic(out, json.dumps(result, indent=1) + "\n")

    if "fast-bf16" not in result["draws"]:
        record("fast-bf16", split.maps(fast))
    for seed in range(k):
        if f"dither-{seed}" not in result["draws"]:
            record(f"dither-{seed}", split.maps(fast.with_(precision="fp32"), dithered(model, scale, seed)))
    draws = [v for n, v in result["draws"].items() if n.startswith("dither-")]
    changes = np.array([d["mde_change_m"] for d in draws])
    bf16 = result["draws"]["fast-bf16"]["mde_change_m"]
    result["null"] = {"n": len(draws), "mde_change_sd_m": float(changes.std(ddof=1)),
                      "mde_change_mean_m": float(changes.mean()),
                      "mean_abs_change_m": float(np.abs(changes).mean()),
                      "share_at_least_as_large_as_bf16": float(np.mean(np.abs(changes) >= abs(bf16) - 1e-9)),
                      "disagreeing_px_median": float(np.median([d["disagreeing_px"] for d in draws])),
                      "within_1m": int(np.sum(np.abs(changes) <= 1.0))}
    write_text_atomic(out, json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["null"], indent=1), "bf16 change", bf16, "sd", result["null"]["mde_change_sd_m"],
          "z", bf16 / result["null"]["mde_change_sd_m"] if result["null"]["mde_change_sd_m"] else math.nan)


if __name__ == "__main__":
    main()
