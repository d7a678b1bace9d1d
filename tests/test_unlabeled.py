"""SSL4SAR unlabeled layout (spec §2) and the raster reader."""

from __future__ import annotations

import csv
import logging

import numpy as np
import pytest
from fakes import optical_stack, write_geotiff, write_png, write_unlabeled
from memory import traced_peak
from rasterio.transform import Affine

from ssl4sar.data import raster
from ssl4sar.data import unlabeled as U
from ssl4sar.data.sampling import validation_windows, whole_image_padding
from ssl4sar.errors import DataError

# ------------------------------------------------------------------------------------------------ raster


def test_real_caffe_patches_load(real_samples_dir) -> None:
    with (real_samples_dir / "metadata.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 7
    for row in rows:
        img, info = raster.read_raster(real_samples_dir / f"{row['id']}_img.tif", 1, require_crs=True)
        mask, mask_info = raster.read_raster(real_samples_dir / f"{row['id']}_mask.tif", 1)
        assert img.dtype == np.uint8 and img.shape == (512, 512) and info.shape == (512, 512)
        assert info.crs.to_string() == row["crs"]
        assert info.resolution_m == pytest.approx(float(row["pixel_size_m"]), rel=1e-5)
        assert mask_info.same_grid(info)
        assert set(np.unique(mask)) <= {0, 1, 2, 3}
        assert img.std() > 1.0  # real texture, not a constant


def test_raster_round_trip_and_metadata(tmp_path) -> None:
    arr = np.arange(3 * 20 * 30, dtype=np.uint16).reshape(3, 20, 30)
    t = Affine(12.5, 0.0, 500000.0, 0.0, -12.5, 7000000.0)
    path = raster.write_geotiff(tmp_path / "a.tif", arr, 32622, t, nodata=0)
    out, info = raster.read_raster(path)
    np.testing.assert_array_equal(out, arr)
    assert info.count == 3 and info.shape == (20, 30) and info.nodata == 0.0 and info.resolution_m == 12.5
    sub, _ = raster.read_raster(path, [3, 1])
    np.testing.assert_array_equal(sub, arr[[2, 0]])
    assert raster.read_raster(path, 2)[0].shape == (20, 30)
    with pytest.raises(DataError, match="band"):
        raster.read_raster(path, [4])
    assert not list(tmp_path.glob(".*part*"))  # atomic write left no temporary file
    geo = raster.write_geotiff(tmp_path / "g.tif", arr[0], "EPSG:4326", Affine(0.001, 0.0, 10.0, 0.0, -0.001, 50.0))
    assert raster.read_raster_info(geo).resolution_m is None  # degrees, not metres


def test_raster_without_crs(tmp_path) -> None:
    path = write_geotiff(tmp_path / "nocrs.tif", np.zeros((8, 8), np.uint8), crs=None)
    arr, info = raster.read_raster(path)
    assert info.crs is None and not info.georeferenced and arr.shape == (1, 8, 8)
    with pytest.raises(DataError, match="coordinate reference system") as err:
        raster.read_raster(path, require_crs=True)
    assert str(path) in str(err.value)


def test_corrupt_raster(tmp_path) -> None:
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"II*\x00 definitely not a tiff")
    with pytest.raises(DataError) as err:
        raster.read_raster(bad)
    assert str(bad) in str(err.value)
    with pytest.raises(DataError, match="not found"):
        raster.read_raster(tmp_path / "missing.tif")


# ------------------------------------------------------------------------------------------------ layout


def test_optical_band_list() -> None:
    assert U.OPTICAL_BAND_NUMBERS == (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 15)
    assert U.OPTICAL_BAND_NAMES == ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B11", "B12",
                                    "WVP", "SCL")
    assert "AOT" not in U.OPTICAL_BAND_NAMES


def test_discover_pairs_by_second_field(tmp_path) -> None:
    write_unlabeled(tmp_path, glaciers=("Helheim", "Kanger"), n_train=2, n_val=1)
    # a second optical file of the same glacier sorts later and is ignored
    write_geotiff(tmp_path / "optical" / "Helheim_z_later.tif", optical_stack(50, 70))
    train = U.discover_unlabeled(tmp_path, "train")
    val = U.discover_unlabeled(tmp_path, "val")
    assert len(train) == 4 and len(val) == 2
    assert [p.name for p in train] == sorted(p.name for p in train)
    for p in train + val:
        assert p.glacier == p.name.split("_")[1]
        assert p.optical_path.name == f"{p.glacier}_S2_2020-07-01.tif"
        assert p.georeferenced
    with pytest.raises(ValueError):
        U.discover_unlabeled(tmp_path, "test")


def test_discover_missing_optical_and_bad_names(tmp_path) -> None:
    write_unlabeled(tmp_path, glaciers=("Helheim",), n_train=1, n_val=0)
    orphan = write_geotiff(tmp_path / "sar" / "train" / "S1_Petermann_2020-01-01.tif",
                           np.ones((50, 70), np.uint8))
    with pytest.raises(DataError) as err:
        U.discover_unlabeled(tmp_path, "train")
    assert str(orphan) in str(err.value) and "Petermann" in str(err.value) and "Helheim" in str(err.value)
    orphan.unlink()
    aliases_root = tmp_path
    pairs = U.discover_unlabeled(aliases_root, "train", glacier_aliases={"Helheim": "Helheim"})
    assert len(pairs) == 1
    write_geotiff(tmp_path / "sar" / "train" / "nounderscore.tif", np.ones((50, 70), np.uint8))
    with pytest.raises(DataError, match="glacier field"):
        U.discover_unlabeled(tmp_path, "train")


def test_read_optical_normalisation(tmp_path, caplog) -> None:
    bands = optical_stack(20, 30, seed=4)
    bands[12] = 1e9       # AOT (band 13) is skipped: huge values must not show up anywhere
    bands[0, 3, 4] = np.nan
    bands[13] = 0.0       # WVP (band 14) all zero → zeros, logged
    path = write_geotiff(tmp_path / "Helheim_S2.tif", bands.astype(np.float32))
    with caplog.at_level(logging.WARNING, logger="ssl4sar.data.unlabeled"):
        out, info = U.read_optical(path)
    assert out.shape == (14, 20, 30) and out.dtype == np.uint8 and info.count == 15
    assert "WVP" in caplog.text
    np.testing.assert_array_equal(out[12], 0)
    for c, band in enumerate(U.OPTICAL_BAND_NUMBERS):
        if band == 14:
            continue
        b = np.nan_to_num(bands[band - 1].astype(np.float64))
        expected = np.round((b / b.max()).astype(np.float32) * np.float32(255)).astype(np.uint8)
        np.testing.assert_array_equal(out[c], expected)
        assert out[c].max() == 255
    assert out[0, 3, 4] == 0  # NaN → 0


def test_optical_normalisation_works_band_by_band() -> None:
    """A glacier's optical image is normalised one band at a time: a float64 copy of the whole stack (8 bytes per
    band and pixel, 8x the output) would make a 100-MP glacier need 11 GB while it is read."""
    bands = (np.random.default_rng(0).random((14, 300, 400)) * 10000).astype(np.uint16)
    one_band_f64 = 300 * 400 * 8
    out, peak = traced_peak(lambda: U.normalise_optical(bands))
    assert out.shape == (14, 300, 400) and out.dtype == np.uint8
    assert peak < out.nbytes + 3 * one_band_f64, peak  # the output and one band's temporaries, not 14 bands'
    for c in (0, 13):
        b = bands[c].astype(np.float64)
        np.testing.assert_array_equal(out[c], np.round((b / b.max()).astype(np.float32) * np.float32(255)))


def test_read_optical_needs_15_bands(tmp_path) -> None:
    path = write_geotiff(tmp_path / "X_S2.tif", optical_stack(10, 10, n_bands=12))
    with pytest.raises(DataError, match="12 band"):
        U.read_optical(path)


def test_grid_mismatch_names_both_files(tmp_path) -> None:
    write_unlabeled(tmp_path, glaciers=("Helheim",), n_train=1, n_val=0, shape=(40, 60))
    pair = U.discover_unlabeled(tmp_path, "train")[0]
    sar, optical = U.load_pair(pair)
    assert sar.shape == (40, 60) and optical.shape == (14, 40, 60)
    # shifted transform
    write_geotiff(pair.sar_path, sar, transform=Affine(20.0, 0.0, -100000.0, 0.0, -20.0, -2000000.0))
    with pytest.raises(DataError) as err:
        U.load_pair(pair)
    assert str(pair.sar_path) in str(err.value) and str(pair.optical_path) in str(err.value)
    # other CRS
    info = raster.read_raster_info(pair.optical_path)
    write_geotiff(pair.sar_path, sar, crs="EPSG:32624", transform=info.transform)
    with pytest.raises(DataError, match="CRS"):
        U.load_pair(pair)
    # other shape
    write_geotiff(pair.sar_path, sar[:, :-1], transform=info.transform)
    with pytest.raises(DataError, match="pixel grid"):
        U.load_pair(pair)
    # a non-uint8 SAR GeoTIFF
    write_geotiff(pair.sar_path, sar.astype(np.float32), transform=info.transform)
    with pytest.raises(DataError, match="uint8"):
        U.load_pair(pair)


def test_png_sar_checks_shape_only(tmp_path) -> None:
    write_unlabeled(tmp_path, glaciers=("Helheim",), n_train=1, n_val=0, shape=(40, 60), sar_format="png")
    pair = U.discover_unlabeled(tmp_path, "train")[0]
    assert not pair.georeferenced
    sar, optical = U.load_pair(pair)
    assert sar.shape == optical.shape[1:]
    write_png(pair.sar_path, np.ones((41, 60), np.uint8))
    with pytest.raises(DataError, match="41x60") as err:
        U.load_pair(pair)
    assert str(pair.optical_path) in str(err.value)


# ------------------------------------------------------------------------------------------------ samplers


def test_pretrain_crop_is_identical_for_sar_and_optical() -> None:
    rng = np.random.default_rng(0)
    sar = rng.integers(0, 256, (70, 90), dtype=np.uint8)
    optical = np.repeat(sar[None], 14, axis=0)
    for _ in range(10):
        s, o = U.random_pretrain_crop(sar, optical, 32, rng)
        assert s.shape == (32, 32) and o.shape == (14, 32, 32) and s.dtype == np.uint8
        for band in o:
            np.testing.assert_array_equal(band, s)


def test_pretrain_flip_is_horizontal() -> None:
    """With min_scale = 1 the crop is not resized; prob_flip = 1 must mirror the columns (not the rows)."""
    h, w = 70, 90
    cols = np.tile(np.arange(w, dtype=np.uint8), (h, 1))
    rows = np.tile(np.arange(h, dtype=np.uint8)[:, None], (1, w))
    optical = np.stack([rows] * 14)
    pad = whole_image_padding((h, w), 32)
    ref_cols, ref_rows = pad.apply(cols), pad.apply(rows)
    flipped_seen = 0
    for seed in range(10):
        s, o = U.random_pretrain_crop(cols, optical, 32, np.random.default_rng(seed), min_scale=1.0, prob_flip=1.0)
        unflipped = s[:, ::-1]
        # the un-flipped SAR crop and the optical crop are windows at the same place of the padded images
        rs = [r for r in range(ref_rows.shape[0] - 31) if np.array_equal(ref_rows[r:r + 32, 0], o[0][:, 0])]
        cs = [c for c in range(ref_cols.shape[1] - 31) if np.array_equal(ref_cols[0, c:c + 32], unflipped[0])]
        hits = [(r, c) for r in rs for c in cs if np.array_equal(ref_cols[r:r + 32, c:c + 32], unflipped)
                and np.array_equal(ref_rows[r:r + 32, c:c + 32], o[0])]
        assert hits, seed
        assert np.array_equal(o[0], o[0][:, ::-1])  # rows image: a horizontal flip leaves it unchanged
        flipped_seen += 1
    assert flipped_seen == 10


def test_pretrain_validation_windows() -> None:
    g = U.pretrain_validation_windows((300, 200), 64)
    ref = validation_windows((300, 200), 32)
    np.testing.assert_array_equal(g.origins, ref.origins)
    assert g.context_size == 64


def test_pretrain_example_draws_a_sample_from_the_first_pair(tmp_path) -> None:
    from ssl4sar.data import synthetic

    root = synthetic.generate_ssl4sar(tmp_path / "ssl", n_sar=3, seed=2, n_glaciers=1, scene_size=(40, 48))
    cfg = {"context_size": 16, "min_scale": 0.7, "prob_flip": 0.5}
    ex = U.pretrain_example(root, cfg, np.random.default_rng(0), max_side_px=20)
    first = U.discover_unlabeled(root, "train")[0]
    sar, optical = U.load_pair(first)
    assert ex.pair.name == first.name and ex.step == 3   # ceil(48 / 20)
    assert np.array_equal(ex.sar, sar[::3, ::3]) and np.array_equal(ex.optical, optical[:, ::3, ::3])
    assert ex.crop_sar.shape == (16, 16) and ex.crop_optical.shape == (14, 16, 16) and ex.context == 16
    assert ex.title.endswith("(whole image, every 3th pixel)") and first.optical_path.name in ex.title
    # the same generator state draws the same sample as the sampler itself
    crop_sar, _ = U.random_pretrain_crop(sar, optical, 16, np.random.default_rng(0), min_scale=0.7, prob_flip=0.5)
    assert np.array_equal(ex.crop_sar, crop_sar)
    assert U.pretrain_example(root, cfg, np.random.default_rng(0)).step == 1
