"""Fast-path accuracy over every fine-tuned demo model of one book build (3 methods x 3 seeds), not only the one the
book chose: how much the test-MDE change varies from model to model, with its uncertainty.

Usage: python all_nine_models.py WORK_DIR [OUT_JSON]
WORK_DIR is a demo build's work folder (``book/_work/demo``: ``finetune/<method>/seed<k>/best_mde.pt`` and
``data/caffe``). Each model's result is written as soon as it is measured, so an interrupted run keeps what it has and
a rerun skips the models already in OUT_JSON (default ``all_nine_models.json`` beside this script).
"""
import json
import math
import sys
from pathlib import Path

import numpy as np
from scipy import stats

from ssl4sar.bench.accuracy import fast_path_accuracy
from ssl4sar.io import write_text_atomic

KEYS = ("agreement", "disagreeing_px", "pixels", "reference_mde_m", "fast_mde_m", "mde_change_m", "paired_images",
        "paired_mde_change_m", "reference_missing_fronts", "fast_missing_fronts", "mde_change_all_pieces_m",
        "reference_s", "fast_s")


def summary(values: list[float]) -> dict:
    """Mean, SD, 95 % t interval of the mean, and the largest magnitude of ``values`` (NaN dropped)."""
    v = np.asarray([x for x in values if not math.isnan(x)], float)
    half = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)) if len(v) > 1 else float("nan")
    return {"n": int(len(v)), "mean": float(v.mean()), "sd": float(v.std(ddof=1)) if len(v) > 1 else float("nan"),
            "ci95": [float(v.mean() - half), float(v.mean() + half)], "max_abs": float(np.abs(v).max())}


def main() -> None:
    work = Path(sys.argv[1])
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(__file__).with_suffix(".json")
    data = work / "data" / "caffe"
    done = json.loads(out.read_text())["models"] if out.exists() else {}
    for ckpt in sorted(work.glob("finetune/*/seed*/best_mde.pt")):
        name = f"{ckpt.parent.parent.name}/{ckpt.parent.name}"
        if name in done:
            continue
        acc = fast_path_accuracy(ckpt, data, split="test", preset="demo")
        done[name] = {k: acc[k] for k in KEYS}
        print(name, {k: done[name][k] for k in ("agreement", "mde_change_m", "paired_mde_change_m",
                                                "reference_missing_fronts", "fast_missing_fronts")}, flush=True)
        write_text_atomic(out, json.dumps({"models": done}, indent=1) + "\n")
    rows = list(done.values())
    report = {
        "models": done,
        "agreement": summary([r["agreement"] for r in rows]),
        "mde_change_m": summary([r["mde_change_m"] for r in rows]),
        "paired_mde_change_m": summary([r["paired_mde_change_m"] for r in rows]),
        "mde_change_all_pieces_m": summary([r["mde_change_all_pieces_m"] for r in rows]),
        "agreement_at_least_99_9": sum(r["agreement"] >= 0.999 for r in rows),
        "within_1m": sum(abs(r["mde_change_m"]) <= 1.0 for r in rows),
        "same_missing_fronts": sum(r["reference_missing_fronts"] == r["fast_missing_fronts"] for r in rows),
        "agreement_pooled_px": 1 - sum(r["disagreeing_px"] for r in rows) / sum(r["pixels"] for r in rows),
        "speedup": sum(r["reference_s"] for r in rows) / sum(r["fast_s"] for r in rows),
    }
    write_text_atomic(out, json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "models"}, indent=1))


if __name__ == "__main__":
    main()
