"""The SAR stage of data construct, 1 vs 2 workers, alternating: a finished construction is copied, its SAR outputs
deleted, and the construction run again (the optical image is reused). Usage: python time_sar_stage.py RAW_DIR ROUNDS"""
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

from ssl4sar.data.construct import construct_ssl4sar

if __name__ == "__main__":  # the workers are spawned processes that import this file
    raw, rounds = Path(sys.argv[1]), int(sys.argv[2])
    logging.disable(logging.WARNING)
    base = Path(tempfile.mkdtemp(prefix="construct-base-"))
    construct_ssl4sar(raw / "sar", raw / "optical", raw / "aoi.geojson", base, progress=False)
    times = {1: [], 2: []}
    for r in range(rounds):
        for w in ((1, 2) if r % 2 == 0 else (2, 1)):
            out = Path(tempfile.mkdtemp(prefix="construct-")) / "out"
            shutil.copytree(base, out)
            shutil.rmtree(out / "sar")
            t0 = time.perf_counter()
            m = construct_ssl4sar(raw / "sar", raw / "optical", raw / "aoi.geojson", out, workers=w, progress=False)
            times[w].append(time.perf_counter() - t0)
            assert len(m.written) == sum(1 for row in m.rows if row["sensor"] != "S2")
            shutil.rmtree(out.parent)
    shutil.rmtree(base)
    print("SAR scenes:", len(m.written), "seconds:", {w: [round(t, 2) for t in v] for w, v in times.items()})
    print("ratio 1 worker / 2 workers per round:", [round(a / b, 2) for a, b in zip(times[1], times[2])])
