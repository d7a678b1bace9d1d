"""Time `ssl4sar.predict.predict_scene` on a 10-MP scene with a network that costs almost nothing, so what is
timed is the work around the network: stitching, the ensemble mean/std, the GeoTIFF, GeoJSON and overlay
outputs. On a GPU that work is what a scene waits for besides the network (an H200 ran the paper network over a
10-MP scene in 3.35 s, book/bench/h200-2026-12-04).

    python predict_outputs.py OUT_JSON [SIDE]

Run it under two checkouts (PYTHONPATH=<checkout>) in alternating processes; compare.sh does that.
"""

import json
import sys
import time
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.transform import from_origin


class NearlyFree(torch.nn.Module):
    """Soft, non-saturated class probabilities from the brightness, with a bias that depends on the pixel's place
    in its window, so that the stitched maps of the four TTA rotations differ (non-zero uncertainty)."""

    img_size = 512
    num_classes = 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, _, h, w = x.shape
        levels = torch.tensor([0.0, 0.2, 0.55, 0.9]).view(1, 4, 1, 1)
        logits = -((x - levels) ** 2) * 20.0
        rows = torch.linspace(0, 1, h).view(1, h, 1)
        cols = torch.linspace(0, 1, w).view(1, 1, w)
        logits[:, 2] += 0.5 * (rows + 0.5 * cols)
        return logits


def scene(side: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side]
    b1 = side * 0.3 + 0.03 * side * np.sin(yy / 97.0)
    b2 = side * 0.6 + 0.05 * side * np.sin(yy / 53.0) + 0.02 * side * np.cos(yy / 17.0)
    img = np.where(xx < b1, 50, np.where(xx < b2, 140, 230)).astype(np.float32) + rng.normal(0, 8, (side, side))
    return np.clip(img, 1, 255).astype(np.uint8)


def main() -> None:
    out_json = Path(sys.argv[1])
    side = int(sys.argv[2]) if len(sys.argv) > 2 else 3162
    import ssl4sar
    import ssl4sar.inference as inference
    import ssl4sar.viz  # noqa: F401  (imported once per process, outside the timing)
    from ssl4sar.predict import predict_scene

    # time spent in the windows (network + Gaussian stitching: on a GPU, the GPU's part), apart from the rest
    in_windows = [0.0]
    windows = inference.sliding_window_probabilities

    def timed_windows(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return windows(*args, **kwargs)
        finally:
            in_windows[0] += time.perf_counter() - t0

    inference.sliding_window_probabilities = timed_windows

    work = out_json.parent / "work"
    src = work / f"scene_{side}.tif"
    if not src.exists():
        src.parent.mkdir(parents=True, exist_ok=True)
        with rasterio.open(src, "w", driver="GTiff", height=side, width=side, count=1, dtype="uint8",
                           crs="EPSG:32622", transform=from_origin(547000, 7675000, 20, 20)) as ds:
            ds.write(scene(side), 1)
    model = NearlyFree().eval()
    rows = {}
    for name, rotations in (("one_map", (0,)), ("tta4", (0, 1, 2, 3))):
        in_windows[0] = 0.0
        t = time.perf_counter()
        res = predict_scene(model, src, work / f"out_{name}", rotations=rotations, batch_size=8, device="cpu")
        total = time.perf_counter() - t
        rows[name] = {"seconds": round(total, 3), "windows_s": round(in_windows[0], 3),
                      "outside_windows_s": round(total - in_windows[0], 3), "n_front_pixels": res.n_front_pixels,
                      "mean_uncertainty": res.mean_uncertainty,
                      "probabilities_mb": round(res.outputs["probabilities"].stat().st_size / 1e6, 2)}
    rows["library"] = str(Path(ssl4sar.__file__).parent)
    rows["torch_threads"] = torch.get_num_threads()
    out_json.write_text(json.dumps(rows, indent=1))
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
