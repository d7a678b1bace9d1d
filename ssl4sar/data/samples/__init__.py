"""Seven real CaFFe SAR patches shipped with the package (CC-BY-4.0, see ``caffe_patches/README.md``).

They give tests and the book real TerraSAR-X texture and real georeferencing without any download:
:func:`real_patches` returns one :class:`RealPatch` per patch (image, zone mask, metadata), read from the
package data through :mod:`importlib.resources`, so it works from a wheel as well as from a clone.
:func:`patches_dir` is the folder itself (for code that wants file paths, e.g. ``ssl4sar predict``);
:func:`read_patch_pair` reads and checks one image / mask pair (also used by :mod:`ssl4sar.data.realism`).

Seven patches are a check of realism and of georeferenced code paths, not a benchmark.
"""

from __future__ import annotations

import csv
import datetime as dt
import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ssl4sar.errors import DataError

log = logging.getLogger(__name__)

PATCHES_FOLDER = "caffe_patches"
METADATA_FILENAME = "metadata.csv"
N_PATCHES = 7
CLASS_IDS = (0, 1, 2, 3)   # 0 NA, 1 rock, 2 glacier, 3 ocean and ice mélange
_COLUMNS = ("id", "split", "glacier", "sensor", "date", "crs", "pixel_size_m", "lat", "lon")


@dataclass(frozen=True)
class PatchMetadata:
    """One row of ``metadata.csv``: where and when a patch was acquired.

    ``pixel_size_m`` is the pixel spacing in metres; ``lat`` / ``lon`` the patch centre in degrees (WGS 84);
    ``crs`` the patch's projected CRS (``"EPSG:32622"`` or ``"EPSG:3031"``); ``split`` the CaFFe split the
    patch was sampled from.
    """

    id: str
    split: str
    glacier: str
    sensor: str
    date: dt.date
    crs: str
    pixel_size_m: float
    lat: float
    lon: float


@dataclass(frozen=True)
class RealPatch:
    """A real CaFFe patch: ``image`` (H, W) uint8 SAR amplitude (0 = no data), ``mask`` (H, W) uint8 class ids
    0–3, its ``metadata`` and the GeoTIFF files they were read from."""

    image: np.ndarray
    mask: np.ndarray
    metadata: PatchMetadata
    image_path: Path
    mask_path: Path

    @property
    def name(self) -> str:
        return self.metadata.id

    @property
    def has_front(self) -> bool:
        """Whether glacier (2) and ocean (3) both occur, so that the zone mask implies a calving front."""
        present = np.unique(self.mask)
        return bool(2 in present and 3 in present)


def patches_dir() -> Path:
    """The folder holding ``sample_NNNN_img.tif`` / ``sample_NNNN_mask.tif`` and ``metadata.csv``.

    Raises :class:`DataError` when the package data is missing (a broken install), so that code using the
    patches fails loudly instead of skipping them.
    """
    folder = Path(str(resources.files("ssl4sar.data.samples").joinpath(PATCHES_FOLDER)))
    if not (folder / METADATA_FILENAME).is_file():
        raise DataError(folder / METADATA_FILENAME, "real CaFFe sample patches missing from the installed package",
                        "reinstall ssl4sar; the wheel must include ssl4sar/data/samples/caffe_patches")
    return folder


def read_metadata(folder: Path | None = None) -> list[PatchMetadata]:
    """Parse ``metadata.csv`` (one row per patch, sorted by id); a missing column or bad value raises DataError."""
    path = (folder or patches_dir()) / METADATA_FILENAME
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in _COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(path, f"missing columns {missing}", f"expected {', '.join(_COLUMNS)}")
        rows = []
        for line, row in enumerate(reader, start=2):
            try:
                rows.append(PatchMetadata(
                    id=row["id"], split=row["split"], glacier=row["glacier"], sensor=row["sensor"],
                    date=dt.date.fromisoformat(row["date"]), crs=row["crs"],
                    pixel_size_m=float(row["pixel_size_m"]), lat=float(row["lat"]), lon=float(row["lon"])))
            except ValueError as exc:
                raise DataError(path, f"line {line}: {exc}") from exc
    return sorted(rows, key=lambda m: m.id)


def read_patch_pair(img_path: Path, mask_path: Path) -> tuple[np.ndarray, np.ndarray, Any, float]:
    """One patch's image and mask, checked: ``(image, mask, crs, pixel size in m)``.

    The image must be uint8 SAR amplitude, the mask hold only the class ids 0–3 and have the image's shape;
    otherwise a :class:`DataError` names the file. The mask comes back as uint8.
    """
    import rasterio

    try:
        with rasterio.open(img_path) as ds:
            image = ds.read(1)
            crs, res = ds.crs, abs(ds.transform.a)
        with rasterio.open(mask_path) as ds:
            mask = ds.read(1)
    except rasterio.errors.RasterioIOError as exc:
        raise DataError(img_path, f"cannot read patch: {exc}") from exc
    if image.dtype != np.uint8:
        raise DataError(img_path, f"expected uint8 SAR amplitude, got {image.dtype}")
    if image.shape != mask.shape:
        raise DataError(mask_path, f"mask shape {mask.shape} differs from image shape {image.shape}")
    bad = np.setdiff1d(np.unique(mask), CLASS_IDS)
    if bad.size:
        raise DataError(mask_path, f"unexpected class ids {bad.tolist()}", "expected 0..3")
    return image, mask.astype(np.uint8), crs, float(res)


def real_patches(folder: Path | None = None) -> list[RealPatch]:
    """Read every patch listed in ``metadata.csv`` (default: the seven shipped with the package), sorted by id.

    Images must be uint8, masks hold only the class ids 0–3 and have the image's shape; otherwise a
    :class:`DataError` names the file.
    """
    folder = folder or patches_dir()
    out = []
    for meta in read_metadata(folder):
        img_path, mask_path = folder / f"{meta.id}_img.tif", folder / f"{meta.id}_mask.tif"
        for p in (img_path, mask_path):
            if not p.is_file():
                raise DataError(p, f"file of patch {meta.id} listed in {METADATA_FILENAME} is missing")
        image, mask, _, _ = read_patch_pair(img_path, mask_path)
        out.append(RealPatch(image=image, mask=mask, metadata=meta,
                             image_path=img_path, mask_path=mask_path))
    log.debug("read %d real CaFFe patches from %s", len(out), folder)
    return out
