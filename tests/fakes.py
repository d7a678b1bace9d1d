"""Tiny fake-data writers for the data-layer tests (torchgeo style): a few small scenes with simple,
known content, written in the CaFFe and SSL4SAR layouts. Independent of ``ssl4sar.data.synthetic``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import rasterio
from PIL import Image
from rasterio.transform import Affine

ZONE_VALUES = np.array([0, 64, 127, 254], dtype=np.uint8)
TRAIN_GLACIERS = ("Crane", "DBE", "JAC", "Jorum", "SI")
TEST_GLACIERS = ("Mapple", "COL")
SENSOR_RES = (("S1", 20), ("TSX", 6), ("ERS", 20), ("PALSAR", 17), ("TDX", 7))


def write_png(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(arr, dtype=np.uint8), mode="L").save(path)
    return path


def scene_arrays(height: int, width: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A toy scene: rock band on top, glacier on the left, ocean on the right, NA corner.

    Returns ``(image uint8, classes uint8 0..3, front uint8 0/1)``; the image is a function of the class
    (``40 + 50·class``) plus a little noise, and 0 where the class is NA.
    """
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:height, 0:width]
    front_col = width // 2 + int(rng.integers(-width // 8, width // 8 + 1))
    classes = np.where(cols < front_col, 2, 3).astype(np.uint8)
    classes[rows < height // 5] = 1
    classes[(rows > height - height // 6) & (cols < width // 6)] = 0
    image = (40 + 50 * classes.astype(np.int16) + rng.integers(0, 5, classes.shape)).astype(np.uint8)
    image[classes == 0] = 0
    front = np.zeros_like(classes)
    ocean = classes == 3
    glacier_left = np.zeros_like(ocean)
    glacier_left[:, 1:] = classes[:, :-1] == 2
    front[ocean & glacier_left] = 1
    return image, classes, front


def stem_for(i: int, test: bool = False) -> str:
    glaciers = TEST_GLACIERS if test else TRAIN_GLACIERS
    sensor, res = SENSOR_RES[i % len(SENSOR_RES)]
    date = dt.date(2010, 1, 1) + dt.timedelta(days=37 * i)
    return f"{glaciers[i % len(glaciers)]}_{date.isoformat()}_{sensor}_{res}_{1 + i % 3}_{i:03d}"


def write_caffe_scene(root: Path, stem: str, folder: str, image: np.ndarray, classes: np.ndarray,
                      front: np.ndarray, bbox: str | None = None) -> None:
    write_png(root / "sar_images" / folder / f"{stem}.png", image)
    write_png(root / "zones" / folder / f"{stem}_zones.png", ZONE_VALUES[classes])
    write_png(root / "fronts" / folder / f"{stem}_front.png", front.astype(np.uint8) * 255)
    if bbox is not None:
        path = root / "bounding_boxes" / f"{stem}_front_extent_coord.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(bbox)


def full_bbox_text(height: int, width: int) -> str:
    return ("left_upper, left_lower, right_lower, right_upper (x,y)\n"
            f"-2.0,{height + 10.5}\n-2.0,-3.5\n{width + 4.5},-3.5\n{width + 4.5},{height + 10.5}\n")


def write_caffe(root: Path, n_train: int = 6, n_test: int = 2, shape: tuple[int, int] = (70, 90),
                seed: int = 0) -> list[str]:
    """Write a tiny CaFFe-layout dataset; returns the train stems (sorted). Sizes vary by a few pixels."""
    stems = []
    for i in range(n_train + n_test):
        test = i >= n_train
        h, w = shape[0] + 3 * (i % 3), shape[1] + 5 * (i % 2)
        image, classes, front = scene_arrays(h, w, seed + i)
        stem = stem_for(i, test)
        write_caffe_scene(root, stem, "test" if test else "train", image, classes, front, full_bbox_text(h, w))
        if not test:
            stems.append(stem)
    return sorted(stems)


def write_geotiff(path: Path, arr: np.ndarray, crs: str | None = "EPSG:3413",
                  transform=None) -> Path:
    arr = np.asarray(arr)
    if arr.ndim == 2:
        arr = arr[None]
    path.parent.mkdir(parents=True, exist_ok=True)
    transform = transform if transform is not None else Affine(20.0, 0.0, -200000.0, 0.0, -20.0, -2000000.0)
    with rasterio.open(path, "w", driver="GTiff", height=arr.shape[1], width=arr.shape[2], count=arr.shape[0],
                       dtype=arr.dtype.name, crs=crs, transform=transform) as dst:
        dst.write(arr)
    return path


def optical_stack(height: int, width: int, seed: int = 0, n_bands: int = 15) -> np.ndarray:
    """``(n_bands, H, W)`` float32 reflectance-like bands: band b (1-based) = ramp·100·b + noise."""
    rng = np.random.default_rng(seed)
    ramp = (np.arange(height)[:, None] + np.arange(width)[None, :]).astype(np.float32) + 1.0
    bands = [ramp * 100.0 * b + rng.random((height, width), dtype=np.float32) for b in range(1, n_bands + 1)]
    return np.stack(bands).astype(np.float32)


def write_unlabeled(root: Path, glaciers: tuple[str, ...] = ("Helheim", "Kanger"), n_train: int = 2, n_val: int = 1,
                    shape: tuple[int, int] = (50, 70), sar_format: str = "tif", seed: int = 0) -> None:
    """Write a tiny SSL4SAR-layout dataset: per glacier one 15-band optical GeoTIFF and SAR images on its grid."""
    rng = np.random.default_rng(seed)
    for g_i, glacier in enumerate(glaciers):
        transform = Affine(20.0, 0.0, -200000.0 + 10000 * g_i, 0.0, -20.0, -2000000.0)
        write_geotiff(root / "optical" / f"{glacier}_S2_2020-07-01.tif", optical_stack(*shape, seed=g_i),
                      transform=transform)
        for split, n in (("train", n_train), ("val", n_val)):
            for k in range(n):
                sar = rng.integers(1, 256, shape, dtype=np.uint8)
                name = f"S1_{glacier}_2020-0{k + 1}-15_{k}"
                if sar_format == "png":
                    write_png(root / "sar" / split / f"{name}.png", sar)
                else:
                    write_geotiff(root / "sar" / split / f"{name}.tif", sar, transform=transform)
