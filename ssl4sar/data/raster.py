"""Georeferenced raster reading and writing (GeoTIFF, and any other format GDAL reads) through rasterio.

Arrays are band-first: ``(C, H, W)`` with ``H`` rows and ``W`` columns of pixels, exactly as rasterio
returns them; asking for a single band by number returns ``(H, W)``. Band numbers are 1-based (GDAL
convention). Pixel sizes are reported in metres per pixel (``resolution_m``) when the CRS is projected;
geographic (degree) CRSs have no metric pixel size and report ``None``.

Errors (missing file, unreadable or corrupt raster, band out of range, a CRS required but absent) raise
:class:`ssl4sar.errors.DataError` naming the file.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from PIL import Image
from rasterio.crs import CRS
from rasterio.errors import CRSError, NotGeoreferencedWarning, RasterioIOError
from rasterio.transform import Affine

from ssl4sar.errors import DataError
from ssl4sar.io import atomic_path

__all__ = ["RasterInfo", "read_raster", "read_raster_info", "write_geotiff", "check_same_grid"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RasterInfo:
    """Metadata of a raster file.

    Attributes:
        path: the file.
        crs: coordinate reference system, or ``None`` for a raster without georeferencing.
        transform: affine pixel → CRS transform (identity when not georeferenced).
        shape: ``(H, W)`` in pixels.
        count: number of bands.
        dtype: numpy dtype name of the bands (of band 1).
        nodata: the no-data value, or ``None``.
        resolution_m: mean pixel size in metres per pixel for a projected CRS, else ``None``.
    """

    path: Path
    crs: CRS | None
    transform: Affine
    shape: tuple[int, int]
    count: int
    dtype: str
    nodata: float | None
    resolution_m: float | None

    @property
    def georeferenced(self) -> bool:
        """True when the raster has a CRS."""
        return self.crs is not None

    def same_grid(self, other: RasterInfo, atol: float = 1e-6) -> bool:
        """True when ``other`` has the same CRS, shape and transform (coefficients within ``atol``)."""
        if self.shape != other.shape:
            return False
        if (self.crs is None) != (other.crs is None):
            return False
        if self.crs is not None and self.crs != other.crs:
            return False
        return bool(np.allclose(tuple(self.transform)[:6], tuple(other.transform)[:6], rtol=0.0, atol=atol))


def _resolution_m(crs: CRS | None, res: tuple[float, float]) -> float | None:
    if crs is None or not crs.is_projected:
        return None
    try:
        factor = float(crs.linear_units_factor[1])
    except (CRSError, TypeError, IndexError):
        return None
    return float((abs(res[0]) + abs(res[1])) / 2.0 * factor)


def _info_from_dataset(path: Path, src: Any) -> RasterInfo:
    crs = src.crs if src.crs else None
    return RasterInfo(
        path=path,
        crs=crs,
        transform=src.transform,
        shape=(int(src.height), int(src.width)),
        count=int(src.count),
        dtype=str(src.dtypes[0]),
        nodata=None if src.nodata is None else float(src.nodata),
        resolution_m=_resolution_m(crs, src.res),
    )


def _open(path: Path) -> Any:
    if not path.is_file():
        raise DataError(path, "file not found", "check the data root and the file name")
    try:
        return rasterio.open(path)
    except RasterioIOError as exc:
        raise DataError(path, f"cannot read raster: {exc}", "the file is corrupt or not a raster; "
                        "download or regenerate it") from exc


def read_raster_info(path: str | Path, *, require_crs: bool = False) -> RasterInfo:
    """Read only the metadata of ``path`` (cheap: no pixel data is read)."""
    path = Path(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with _open(path) as src:
            info = _info_from_dataset(path, src)
            if require_crs and info.crs is None:
                _check_readable(path, src)  # a cut-off file loses its georeferencing tags: say what is wrong
    if require_crs and info.crs is None:
        raise DataError(path, "raster has no coordinate reference system (CRS)",
                        "a georeferenced GeoTIFF is required here; assign a CRS with gdal_edit.py -a_srs")
    return info


def _check_readable(path: Path, src: Any) -> None:
    """Raise :class:`DataError` when the pixel data of ``src`` cannot be read (truncated or corrupt file)."""
    try:
        src.read(1, window=((src.height - 1, src.height), (src.width - 1, src.width)))
    except RasterioIOError as exc:
        raise DataError(path, f"cannot read pixel data: {exc}", "the file is corrupt or truncated; download or "
                        "regenerate it") from exc


def read_raster(path: str | Path, bands: int | Sequence[int] | None = None, *,
                require_crs: bool = False, window: tuple[tuple[int, int], tuple[int, int]] | None = None,
                ) -> tuple[np.ndarray, RasterInfo]:
    """Read pixel data and metadata of ``path``.

    Args:
        path: raster file (GeoTIFF, PNG, …).
        bands: ``None`` for all bands → ``(C, H, W)``; a sequence of 1-based band numbers → ``(len, H, W)``;
            a single int → ``(H, W)``.
        require_crs: raise :class:`DataError` when the file has no CRS.
        window: ``((row_start, row_stop), (col_start, col_stop))``, inside the raster: read only these pixels
            (from a tiled GeoTIFF only the tiles they touch are decoded). ``info`` still describes the whole file.

    Returns:
        ``(array, info)``; the array keeps the file's dtype.
    """
    path = Path(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with _open(path) as src:
            info = _info_from_dataset(path, src)
            if require_crs and info.crs is None:
                _check_readable(path, src)
                raise DataError(path, "raster has no coordinate reference system (CRS)",
                                "a georeferenced GeoTIFF is required here; assign a CRS with gdal_edit.py -a_srs")
            wanted = [bands] if isinstance(bands, int) else (None if bands is None else [int(b) for b in bands])
            if wanted is not None:
                bad = [b for b in wanted if not 1 <= b <= info.count]
                if bad:
                    raise DataError(path, f"band(s) {bad} requested but the file has {info.count} band(s)",
                                    "band numbers are 1-based")
            if window is not None:
                (r0, r1), (c0, c1) = window
                if not (0 <= r0 < r1 <= info.shape[0] and 0 <= c0 < c1 <= info.shape[1]):
                    raise ValueError(f"window {window} is not inside the {info.shape[0]}x{info.shape[1]} raster {path}")
            try:
                arr = src.read(wanted, window=window)
            except RasterioIOError as exc:
                raise DataError(path, f"cannot read pixel data: {exc}", "the file is corrupt; download or "
                                "regenerate it") from exc
    if isinstance(bands, int):
        arr = arr[0]
    return arr, info


def check_same_grid(a: RasterInfo, b: RasterInfo, *, shape_only: bool = False) -> None:
    """Raise :class:`DataError` naming both files unless ``a`` and ``b`` share CRS, transform and shape.

    With ``shape_only`` (for rasters without georeferencing, e.g. PNG) only the ``(H, W)`` shape is compared.
    """
    if a.shape != b.shape:
        raise DataError(a.path, f"pixel grid {a.shape[0]}x{a.shape[1]} (HxW) differs from {b.path} "
                        f"({b.shape[0]}x{b.shape[1]})",
                        "the SAR image and its optical image must be co-registered on the same pixel grid")
    if shape_only:
        return
    if (a.crs is None) != (b.crs is None) or (a.crs is not None and a.crs != b.crs):
        raise DataError(a.path, f"CRS {a.crs} differs from the CRS {b.crs} of {b.path}",
                        "reproject one of them onto the other's grid")
    if not a.same_grid(b):
        raise DataError(a.path, f"geotransform {tuple(a.transform)[:6]} differs from {tuple(b.transform)[:6]} "
                        f"of {b.path}", "resample one of them onto the other's grid")


def write_geotiff(path: str | Path, array: np.ndarray, crs: CRS | str | int | None, transform: Affine,
                  nodata: float | None = None, compress: str = "deflate") -> Path:
    """Write ``array`` (``(H, W)`` or ``(C, H, W)``) as a tiled, compressed GeoTIFF, atomically.

    ``crs`` may be a rasterio CRS, an EPSG code or any string rasterio understands, or ``None`` (no CRS).
    ``transform`` is the affine pixel → CRS transform (metres per pixel in its coefficients for a metric CRS).
    """
    path = Path(path)
    arr = np.asarray(array)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"write_geotiff expects (H, W) or (C, H, W), got shape {arr.shape}")
    if isinstance(crs, int):
        crs = CRS.from_epsg(crs)
    elif isinstance(crs, str):
        crs = CRS.from_user_input(crs)
    count, height, width = arr.shape
    profile: dict[str, Any] = {
        "driver": "GTiff", "height": height, "width": width, "count": count, "dtype": arr.dtype.name,
        "crs": crs, "transform": transform, "compress": compress,
    }
    if height >= 256 and width >= 256:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    if nodata is not None:
        profile["nodata"] = nodata
    with atomic_path(path) as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(tmp, "w", **profile) as dst:
                dst.write(arr)
    log.debug("wrote %s (%d band(s), %dx%d px)", path, count, height, width)
    return path


_PIL_LIMIT_LOCK = threading.Lock()


@contextlib.contextmanager
def open_image(path: str | Path, what: str = "image") -> Iterator[Image.Image]:
    """``PIL.Image.open`` that refuses an image whose header declares more pixels than PIL decodes safely
    (``2 × Image.MAX_IMAGE_PIXELS``, a decompression bomb or a corrupt header) with a :class:`DataError` naming
    the file and the declared width × height; PIL's ``DecompressionBombError`` never escapes."""
    path = Path(path)
    try:
        im = Image.open(path)
    except Image.DecompressionBombError:
        width, height = _declared_size(path)
        limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)
        raise DataError(path, f"the {what} declares {width} × {height} pixels ({width * height / 1e6:,.0f} "
                        f"megapixels), more than the {limit / 1e6:,.0f} megapixels that are decoded safely",
                        "the header is corrupt or the image is far too large; crop or downsample it") from None
    with im:
        yield im


def _declared_size(path: Path) -> tuple[int, int]:
    """(width, height) from an image header, without the decompression-bomb check (nothing is decoded)."""
    with _PIL_LIMIT_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            with Image.open(path) as im:
                return int(im.width), int(im.height)
        finally:
            Image.MAX_IMAGE_PIXELS = saved
