"""The seven real CaFFe patches shipped as package data (ssl4sar.data.samples)."""

from __future__ import annotations

import datetime as dt
import shutil
import tomllib
from pathlib import Path

import numpy as np
import pytest

from ssl4sar.data import realism, samples
from ssl4sar.errors import DataError

REPO = Path(__file__).resolve().parent.parent


def test_real_patches_are_the_seven_documented_ones() -> None:
    patches = samples.real_patches()
    assert [p.name for p in patches] == ["sample_1632", "sample_1948", "sample_2349", "sample_3325",
                                         "sample_3386", "sample_4521", "sample_4737"]
    for p in patches:
        assert p.image.shape == p.mask.shape == (512, 512) and p.image.dtype == p.mask.dtype == np.uint8
        assert set(np.unique(p.mask)) <= {0, 1, 2, 3}
        assert p.metadata.sensor == "TerraSAR-X" and p.metadata.split in {"train", "validation"}
        assert p.image_path.is_file() and p.mask_path.is_file()
    by_name = {p.name: p for p in patches}
    # only three patches hold both glacier and ocean, hence a front (the README says which)
    assert [p.name for p in patches if p.has_front] == ["sample_1948", "sample_3325", "sample_3386"]
    m = by_name["sample_3325"].metadata
    assert (m.glacier, m.crs, m.date) == ("Jorum Glacier", "EPSG:3031", dt.date(2011, 8, 13))
    assert m.pixel_size_m == pytest.approx(20 / 3, abs=1e-5) and m.lat == pytest.approx(-65.190845)


def test_metadata_agrees_with_the_georeferencing_of_each_file() -> None:
    import rasterio

    for p in samples.real_patches():
        with rasterio.open(p.image_path) as ds:
            assert ds.crs.to_string() == p.metadata.crs
            assert abs(ds.transform.a) == pytest.approx(p.metadata.pixel_size_m, rel=1e-6)


def test_realism_loader_defaults_to_the_packaged_patches() -> None:
    real = realism.load_real_patches()
    typed = samples.real_patches()
    assert [p.name for p in real] == [p.name for p in typed]
    assert all(np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask) for a, b in zip(real, typed))


def test_bad_copies_raise_naming_the_file(tmp_path: Path) -> None:
    src = samples.patches_dir()
    shutil.copy(src / "metadata.csv", tmp_path / "metadata.csv")
    with pytest.raises(DataError, match="sample_1632_img.tif.*missing"):
        samples.real_patches(tmp_path)
    (tmp_path / "metadata.csv").write_text("id,split\nsample_1632,train\n")
    with pytest.raises(DataError, match="missing columns"):
        samples.real_patches(tmp_path)


def test_patches_and_their_licence_are_package_data() -> None:
    """pyproject.toml must ship every file of the folder, or a wheel install loses them."""
    package_data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    patterns = package_data["ssl4sar.data.samples"]
    folder = samples.patches_dir()
    assert folder == REPO / "ssl4sar" / "data" / "samples" / "caffe_patches"
    files = sorted(f for f in folder.iterdir() if f.is_file())
    assert len(files) == 2 * samples.N_PATCHES + 2   # images, masks, metadata.csv, README.md
    shipped = {f for pattern in patterns for f in (folder.parent).glob(pattern)}
    assert set(files) == shipped
    readme = (folder / "README.md").read_text()
    for fact in ("CC-BY-4.0", "10.5194/essd-14-4287-2022", "10.1594/PANGAEA.940950", "GEO-Bench-2"):
        assert fact in readme.replace("Creative Commons Attribution 4.0", "CC-BY-4.0")


def test_read_patch_pair_returns_the_checked_pair_with_its_georeferencing(tmp_path: Path) -> None:
    import rasterio

    src = samples.patches_dir()
    image, mask, crs, res = samples.read_patch_pair(src / "sample_3325_img.tif", src / "sample_3325_mask.tif")
    assert image.shape == mask.shape == (512, 512) and image.dtype == mask.dtype == np.uint8
    assert crs.to_string() == "EPSG:3031" and res == pytest.approx(20 / 3, abs=1e-5)
    ids, counts = np.unique(mask, return_counts=True)   # Jorum: NA, rock, glacier and ocean
    assert ids.tolist() == [0, 1, 2, 3] and counts.tolist() == [2050, 54451, 175654, 29989]
    # a mask with a class id outside 0..3 is refused, naming the mask file
    with rasterio.open(src / "sample_3325_mask.tif") as ds:
        profile, bad = ds.profile, ds.read(1)
    bad[0, 0] = 7
    with rasterio.open(tmp_path / "bad_mask.tif", "w", **profile) as ds:
        ds.write(bad, 1)
    with pytest.raises(DataError, match=r"bad_mask.tif.*unexpected class ids \[7\]"):
        samples.read_patch_pair(src / "sample_3325_img.tif", tmp_path / "bad_mask.tif")
