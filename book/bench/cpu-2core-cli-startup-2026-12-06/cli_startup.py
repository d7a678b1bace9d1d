"""Wall seconds until `ssl4sar COMMAND --help` (or an argument error) returns, for two checkouts (2026-12-06).

Before, the command modules of `ssl4sar.commands` imported their library (torch, timm, Lightning, pandas, scipy) at
their top, so parsing the command line loaded it. Now they import it in `run`.

    python cli_startup.py BEFORE_CHECKOUT AFTER_CHECKOUT ROUNDS > cli_startup.jsonl

Each round runs every case once per checkout, alternating which checkout goes first, as a fresh process
(`python -m ssl4sar.cli ARGS` with `PYTHONPATH` set to the checkout, one torch thread). One JSON line per run.
"""

import json
import os
import subprocess
import sys
import time

CASES = [
    ["--help"],
    ["data", "--help"],
    ["pretrain", "--help"],
    ["finetune", "--help"],
    ["evaluate", "--help"],
    ["predict", "--help"],
    ["timeseries", "--help"],
    ["protocol", "--help"],
    ["bench", "--help"],
    ["predict", "scene.tif", "--out", "o"],  # argument error: --checkpoint missing
]


def run_once(checkout: str, args: list[str]) -> tuple[float, int, str]:
    env = dict(os.environ, PYTHONPATH=checkout, OMP_NUM_THREADS="1")
    code = ("import sys, ssl4sar.cli; sys.stderr.write('FILE=' + ssl4sar.cli.__file__ + '\\n'); "
            "sys.argv[0] = 'ssl4sar'; sys.exit(ssl4sar.cli.main())")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    where = next(ln[5:] for ln in done.stderr.splitlines() if ln.startswith("FILE="))
    return wall, done.returncode, where


if __name__ == "__main__":
    trees = {"before": sys.argv[1], "after": sys.argv[2]}
    for r in range(int(sys.argv[3])):
        order = ["before", "after"] if r % 2 == 0 else ["after", "before"]
        for args in CASES:
            for name in order:
                wall, rc, where = run_once(trees[name], args)
                if not where.startswith(trees[name]):
                    raise SystemExit(f"{name}: ssl4sar.cli came from {where}, not {trees[name]}")
                print(json.dumps({"round": r, "tree": name, "args": " ".join(args), "wall_s": round(wall, 3),
                                  "rc": rc}), flush=True)
