"""Which scenes carry a model's fast-path MDE change, and is it the 750 m minimum front length?

For each test scene where the two paths' fronts differ: the number of front distances and their mean on the
reference and the fast path, with the 750 m minimum piece length of the official post-processing and with every
piece kept, and how many pixels of the class map differ. Usage: python why_the_mde_moves.py CKPT CAFFE_ROOT
(prints a table; the committed output is why_the_mde_moves.txt).
"""
import sys

import numpy as np

from demo_test_split import load
from ssl4sar.bench.accuracy import mde_change_by_scene
from ssl4sar.bench.paths import REFERENCE, fast_path

ckpt, data = sys.argv[1], sys.argv[2]
split = load(ckpt, data)
scenes = split.scenes
ref_maps, fast_maps = split.maps(REFERENCE), split.maps(fast_path("cpu"))
ref, fast = split.score(ref_maps), split.score(fast_maps)
ref_all, fast_all = split.score(ref_maps, every_piece=True), split.score(fast_maps, every_piece=True)
total_n = {name: sum(n for _, n in s["fronts"].values()) for name, s in (("ref", ref), ("fast", fast))}
print(f"{ckpt}\npooled MDE {ref['mde_m']:.2f} -> {fast['mde_m']:.2f} m ({fast['mde_m'] - ref['mde_m']:+.2f}); "
      f"every piece kept {ref_all['mde_m']:.2f} -> {fast_all['mde_m']:.2f} m ({fast_all['mde_m'] - ref_all['mde_m']:+.2f}); "
      f"distances {total_n['ref']} -> {total_n['fast']}")
print("scene | px differing | share of the pooled change (m) | 750 m filter: n, mean (m) reference -> fast | "
      "every piece: n, mean (m) reference -> fast")


def cell(score: dict, stem: str) -> str:
    s, n = score["fronts"].get(stem, (0.0, 0))
    return f"{n}, {s / n:.0f}" if n else "no front"


shares = {r["image"]: r["share_m"] for r in mde_change_by_scene(ref, fast)}  # exact; they sum to the change
rows = [sc.stem for sc in scenes if ref_maps[sc.stem].tobytes() != fast_maps[sc.stem].tobytes()]
for k in sorted(rows, key=lambda k: -abs(shares.get(k, 0.0))):
    differ = int(np.count_nonzero(ref_maps[k] != fast_maps[k]))
    print(f"{k} | {differ} of {ref_maps[k].size} | {shares.get(k, 0.0):+.2f} | {cell(ref, k)} -> {cell(fast, k)} | "
          f"{cell(ref_all, k)} -> {cell(fast_all, k)}")
print(f"sum of the shares {sum(shares.values()):+.2f} m")
