"""Time chapter 05's ensemble evaluation in whichever ssl4sar checkout is on PYTHONPATH; print one JSON line.

    PYTHONPATH=CHECKOUT python ensemble_evaluation.py LABEL OUT_DIR CHECKPOINT CAFFE_ROOT [MEMBERS]

It calls ``ssl4sar.experiments.evaluate_ensembles`` as the chapter does with the demo preset (``workers=2``, the
chapter's ``parallel_runs``; the kernel's two torch threads) on an ensemble of MEMBERS (default 3) copies of
CHECKPOINT: the cost does not depend on the weights, and identical members make the tables of two checkouts
comparable scene by scene. CHECKPOINT's folder must hold the run's own test evaluation in ``test/`` (chapter 4's
``run_one`` writes it; the summary table reads it). OUT_DIR is deleted first.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import pandas as pd


def main() -> None:
    label, out, checkpoint, caffe_root = sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4]
    members = int(sys.argv[5]) if len(sys.argv) > 5 else 3
    import ssl4sar
    from ssl4sar import experiments
    from ssl4sar.book import WorkLayout, pin_threads
    from ssl4sar.config import load_preset

    pin_threads(2)  # a chapter's kernel (ssl4sar.book.BOOK_THREADS)
    cfg = load_preset("demo")
    cfg = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)
    shutil.rmtree(out, ignore_errors=True)
    layout = WorkLayout(out)
    runs = pd.DataFrame([{"init": "scratch", "seed": s, "checkpoint": checkpoint, "val_fronts_found": 1.0,
                          "val_mde_m": 100.0} for s in range(members)])
    t0 = time.perf_counter()
    summary = experiments.evaluate_ensembles(cfg, caffe_root, layout, runs, "scratch", workers=2, device="cpu",
                                             resume=False)
    wall = time.perf_counter() - t0
    elapsed = {name: json.loads((layout.evaluation(name) / "summary.json").read_text())["elapsed_s"]
               for name in ("ensemble", "ensemble_tta")}
    print(json.dumps({"label": label, "ssl4sar": str(Path(ssl4sar.__file__).parent), "wall_s": round(wall, 1),
                      "elapsed_s": elapsed, "mde_m": summary["test_mde_m"].tolist()[-2:],
                      "fronts_found": summary["fronts_found"].tolist()[-2:]}), flush=True)


if __name__ == "__main__":
    main()
