"""Where `ssl4sar predict`'s time goes on this machine: the paper network (random weights: timing does not depend
on them) over a synthetic scene of SIDE x SIDE px, one map and the paper's TTA (4 rotations), each scene's
``windows_s`` (sliding-window passes: the accelerator's part) against ``outputs_s`` (the GeoTIFFs, the front and
the overlay: the CPU's part), from ``predictions.csv``. A small scene is predicted first so that start-up costs
(cuDNN autotuning, lazy imports) are not counted.

    python tools/predict_timing.py --out DIR [--device cuda] [--preset paper] [--side 3162]

Writes ``DIR/predict_timing.json`` (after each of the two modes) and prints it; run by ``tools/gpu_run.sh``
(PREDICT_S > 0).
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import time
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.transform import from_origin


def synthetic_scene(path: Path, side: int, seed: int = 0) -> Path:
    """A uint8 GeoTIFF (UTM 22N, 20 m) with rock, glacier and ocean separated by wavy boundaries, plus noise."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:side, 0:side]
    rock_edge = side * 0.3 + 0.03 * side * np.sin(rows / 97.0)
    front = side * 0.6 + 0.05 * side * np.sin(rows / 53.0) + 0.02 * side * np.cos(rows / 17.0)
    img = np.where(cols < rock_edge, 50, np.where(cols < front, 140, 230)).astype(np.float32)
    img = np.clip(img + rng.normal(0, 8, (side, side)), 1, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", height=side, width=side, count=1, dtype="uint8",
                       crs="EPSG:32622", transform=from_origin(547_000, 7_675_000, 20, 20), tiled=True,
                       compress="deflate") as ds:
        ds.write(img, 1)
    return path


def main(argv: list[str] | None = None) -> dict:
    from ssl4sar.bench.windows import build_model
    from ssl4sar.inference import PAPER_TTA_ROTATIONS
    from ssl4sar.io import write_json_atomic
    from ssl4sar.models.fast import amp_dtype_for, for_inference
    from ssl4sar.predict import predict_scenes

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--preset", default="paper")
    ap.add_argument("--side", type=int, default=3162, help="scene side in px (3162: 10 megapixels)")
    ap.add_argument("--batch-size", type=int, default=None, help="windows per forward pass (default: the preset's)")
    args = ap.parse_args(argv)

    from ssl4sar.config import load_preset

    cfg = load_preset(args.preset)
    device = torch.device(args.device)
    model = for_inference(build_model(cfg).to(device))
    context = int(cfg["model"]["img_size"])
    kw = {"batch_size": int(args.batch_size or cfg["inference"]["batch_size"]), "device": device,
          "amp_dtype": amp_dtype_for(device), "progress": False}
    scenes = args.out / "scenes"
    warm = synthetic_scene(scenes / "warmup.tif", max(context * 2, 256), seed=1)
    big = synthetic_scene(scenes / f"scene_{args.side}px.tif", args.side)
    report: dict = {"device": str(device), "device_name": torch.cuda.get_device_name(device)
                    if device.type == "cuda" else "cpu", "torch_threads": torch.get_num_threads(),
                    "preset": args.preset, "side_px": args.side, **{k: str(v) for k, v in kw.items()}}
    for name, rotations in (("one_map", (0,)), ("tta4", PAPER_TTA_ROTATIONS)):
        out = args.out / name
        shutil.rmtree(out, ignore_errors=True)
        t0 = time.perf_counter()
        predict_scenes(model, [warm, big], out, rotations=rotations, **kw)
        with open(out / "predictions.csv") as fh:
            row = {r["scene"]: r for r in csv.DictReader(fh)}[big.stem]
        report[name] = {"windows_s": float(row["windows_s"]), "outputs_s": float(row["outputs_s"]),
                        "n_maps": int(row["n_maps"]), "wall_s_with_warmup": round(time.perf_counter() - t0, 2)}
        report[name]["outputs_share"] = round(report[name]["outputs_s"] /
                                              (report[name]["outputs_s"] + report[name]["windows_s"]), 3)
        for f in out.glob("*_probabilities.tif"):  # large, and not a result
            f.unlink()
        # after each mode: a run cut off by its time limit keeps the modes it finished
        write_json_atomic(args.out / "predict_timing.json", report, indent=1)
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
