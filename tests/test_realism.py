"""Synthetic-vs-real SAR statistics (ssl4sar.data.realism) on synthetic speckle and the real CaFFe patches."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import gammaln

from ssl4sar.data import realism
from ssl4sar.data.synthetic import speckle_and_quantise
from ssl4sar.errors import DataError


def _amplitude_enl(looks: float) -> float:
    """Theoretical mean²/var of the amplitude of gamma-distributed intensity with ``looks`` looks."""
    m = np.exp(gammaln(looks + 0.5) - gammaln(looks)) / np.sqrt(looks)
    return float(m * m / (1 - m * m))


@pytest.fixture(scope="module")
def real(real_samples_dir) -> list[realism.Patch]:
    return realism.load_real_patches(real_samples_dir)


@pytest.fixture(scope="module")
def synthetic() -> list[realism.Patch]:
    return realism.synthetic_patches(4, seed=0, shape=(384, 384))


@pytest.fixture(scope="module")
def comparison(synthetic, real):
    return realism.compare(synthetic, real)


@pytest.mark.parametrize("looks", [1.0, 2.0, 4.4])
def test_enl_of_pure_speckle_matches_theory(looks):
    sig = np.full((210, 210), -10.0, dtype=np.float32)
    img = speckle_and_quantise(np.random.default_rng(1), sig, looks)
    mask = np.full(img.shape, 2, dtype=np.uint8)
    assert (img == 255).mean() == 0     # no clipping at this level
    every = realism.equivalent_number_of_looks(img, mask, 2, homogeneous_quantile=1.0)
    assert every == pytest.approx(_amplitude_enl(looks), rel=0.08)


def test_enl_ignores_texture_by_picking_homogeneous_windows():
    rng = np.random.default_rng(2)
    sig = np.full((210, 210), -18.0, dtype=np.float32)
    sig[:, 56:] += 7.0 * (np.arange(154) % 4 < 2)[None, :]      # 3/4 of the image: stripes finer than a window
    img = speckle_and_quantise(rng, sig, 2.0)
    assert (img == 255).mean() < 1e-3
    mask = np.full(img.shape, 2, dtype=np.uint8)
    textured = realism.equivalent_number_of_looks(img, mask, 2, homogeneous_quantile=1.0)
    homogeneous = realism.equivalent_number_of_looks(img, mask, 2, homogeneous_quantile=0.25)
    assert textured < 0.7 * _amplitude_enl(2.0)
    assert homogeneous == pytest.approx(_amplitude_enl(2.0), rel=0.15)
    # windows with saturated or no-data pixels, or outside the class, never count
    mask[:] = 1
    assert realism.enl_windows(img, mask, 3).size == 0
    full = np.full_like(img, 255)
    assert realism.enl_windows(full, mask, 1).size == 0


def test_histograms_and_gradients():
    img = np.array([[0, 10, 10, 200], [10, 10, 200, 200]], dtype=np.uint8)
    mask = np.array([[2, 2, 2, 3], [2, 2, 3, 3]], dtype=np.uint8)
    h = realism.class_histograms(img, mask, classes=(1, 2, 3), bins=256)
    assert h[2][10] == 1.0 and h[3][200] == 1.0 and h[1].sum() == 0      # 0 = no data is ignored
    ramp = np.tile(np.arange(0, 200, 2, dtype=np.uint8), (50, 1))
    g = realism.gradient_magnitude(ramp)
    assert g[10:-10, 10:-10] == pytest.approx(2.0)                    # grey levels per pixel
    assert realism.histogram_distance(np.arange(100.0), np.arange(100.0) + 7) == pytest.approx(7.0)
    assert np.isnan(realism.histogram_distance(np.empty(0), np.arange(3)))
    with pytest.raises(ValueError, match="same shape"):
        realism.class_values(img, mask[:1], 2)


def test_summary_on_real_patches_is_sensible(real):
    assert len(real) == 7
    for p in real:
        assert p.image.dtype == np.uint8 and p.mask.shape == p.image.shape
        assert p.meta["crs"] in ("EPSG:32622", "EPSG:3031") and 5.5 < p.meta["pixel_size_m"] < 7
    tab = realism.summary_table(real, "real").set_index("class_name")
    assert tab.loc["glacier", "n_images"] >= 5 and tab.loc["ocean", "n_images"] >= 3
    for name in ("rock", "glacier", "ocean"):
        row = tab.loc[name]
        assert 1.0 < row["enl"] < 20.0           # speckled, not noise-free, not pure noise
        assert 20 < row["mean"] < 235 and row["std"] > 10
        assert row["median_gradient"] > 0 and 0 <= row["saturated"] < 0.6
    hist = realism.histogram_frame(real, "real", bins=32)
    sums = hist.groupby("class_name")["density"].sum()
    assert np.allclose(sums.to_numpy(), 1.0)


def test_load_real_patches_errors(tmp_path):
    with pytest.raises(DataError, match="no \\*_img.tif"):
        realism.load_real_patches(tmp_path)
    import rasterio
    from rasterio.transform import from_origin

    prof = {"driver": "GTiff", "height": 8, "width": 8, "count": 1, "dtype": "uint8", "crs": "EPSG:32622",
            "transform": from_origin(0, 0, 6, 6)}
    with rasterio.open(tmp_path / "x_img.tif", "w", **prof) as ds:
        ds.write(np.ones((1, 8, 8), np.uint8))
    with pytest.raises(DataError, match="mask missing"):
        realism.load_real_patches(tmp_path)
    with rasterio.open(tmp_path / "x_mask.tif", "w", **prof) as ds:
        ds.write(np.full((1, 8, 8), 7, np.uint8))
    with pytest.raises(DataError, match="class ids"):
        realism.load_real_patches(tmp_path)


def test_synthetic_matches_real_statistics(comparison):
    """The synthetic TerraSAR-X-like radiometry is tuned to the real patches: same range, per class."""
    c = comparison.set_index("class_name")
    assert list(c.index) == ["rock", "glacier", "ocean"]
    assert (c["wasserstein_intensity"] >= 0).all() and (c["wasserstein_gradient"] >= 0).all()
    for name in ("rock", "glacier", "ocean"):
        assert 0.7 < c.loc[name, "mean_ratio"] < 1.4, name
        assert 0.6 < c.loc[name, "std_ratio"] < 1.5, name
        assert 0.6 < c.loc[name, "enl_ratio"] < 1.6, name
        assert c.loc[name, "wasserstein_intensity"] < 40, name      # grey levels


def test_comparison_detects_a_mismatch(synthetic, real, comparison):
    """A visibly wrong synthetic set (dark and smooth) is flagged by the same numbers."""
    bad = [realism.Patch(image=np.clip(p.image // 3, 1, 255).astype(np.uint8) * (p.image > 0),
                         mask=p.mask) for p in synthetic]
    c_bad = realism.compare(bad, real).set_index("class_name")
    c_ok = comparison.set_index("class_name")
    for name in ("rock", "glacier", "ocean"):
        assert c_bad.loc[name, "mean_ratio"] < 0.5
        assert c_bad.loc[name, "wasserstein_intensity"] > 2 * c_ok.loc[name, "wasserstein_intensity"]


def test_book_helpers_pick_tables_and_frames(real, synthetic):
    table = realism.patch_table(real)
    assert list(table.columns) == ["patch", *realism.PATCH_COLUMNS] and len(table) == len(real)
    assert table["patch"].tolist() == [p.name for p in real] and (table["pixel_size_m"] > 0).all()
    varied = realism.most_varied(real, 3)
    n_classes = [len(np.unique(p.mask[p.mask > 0])) for p in real]
    assert [len(np.unique(p.mask[p.mask > 0])) for p in varied] == sorted(n_classes, reverse=True)[:3]
    intensity, gradients, stats = realism.comparison_frames(synthetic[:2], real[:2])
    for frame in (intensity, gradients, stats):
        assert list(dict.fromkeys(frame["source"])) == ["synthetic", "real"]
    smoke = realism.book_synthetic_patches("smoke", seed=1)
    assert len(smoke) == 2 and smoke[0].image.shape == (256, 256)
    assert len(realism.book_synthetic_patches("demo", 1, seed=1)) == 1


def test_comparison_table_is_one_column_per_class(comparison) -> None:
    table = realism.comparison_table(comparison)
    names = comparison["class_name"].tolist()
    assert table.columns.tolist() == names   # the page shows classes side by side, statistics down the rows
    stats = [c for c in comparison.columns if c not in ("class", "class_name")]
    assert table.index.tolist() == stats
    first = comparison.iloc[0]
    assert table.loc["wasserstein_intensity", names[0]] == pytest.approx(first["wasserstein_intensity"], abs=5e-4)
