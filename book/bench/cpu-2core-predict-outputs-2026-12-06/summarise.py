"""summarise.py RESULTS_DIR: the before/after table of compare.sh's JSONs (rounds paired in run order)."""

import json
import statistics
import sys
from pathlib import Path

res = Path(sys.argv[1])

def _round(path: Path) -> int:
    return int(path.stem.split("-")[1])


runs = {tag: [json.loads(p.read_text()) for p in sorted(res.glob(f"{tag}-*.json"), key=_round)]
        for tag in ("before", "after")}
print("| case | seconds | before | after | ratio per round | ratio of medians |")
print("|---|---|---|---|---|---|")
for case in ("one_map", "tta4"):
    for key in ("outside_windows_s", "windows_s", "seconds"):
        b = [r[case][key] for r in runs["before"]]
        a = [r[case][key] for r in runs["after"]]
        ratios = [x / y for x, y in zip(b, a)]
        print(f"| {case} | {key} | {', '.join(f'{x:.2f}' for x in b)} | {', '.join(f'{x:.2f}' for x in a)} | "
              f"{min(ratios):.2f}–{max(ratios):.2f}× | {statistics.median(b) / statistics.median(a):.2f}× |")
same = all(r[c]["mean_uncertainty"] == runs["before"][0][c]["mean_uncertainty"] and
           r[c]["n_front_pixels"] == runs["before"][0][c]["n_front_pixels"]
           for r in runs["before"] + runs["after"] for c in ("one_map", "tta4"))
print(f"\nsame fronts and mean uncertainty in every run: {same}")
