"""Fine-tuning augmentations (spec §3.3 steps 2–4)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageEnhance
from torchvision.transforms import functional as TF

from ssl4sar.config import load_preset
from ssl4sar.data import augment as A

VALUES = np.arange(256, dtype=np.uint8).reshape(16, 16)
LUT = np.array([5, 70, 140, 230], dtype=np.uint8)  # image = LUT[mask] ties image to mask


def _scene(rng: np.random.Generator, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    mask = rng.integers(0, 4, (size // 4, size // 4)).repeat(4, 0).repeat(4, 1).astype(np.uint8)
    mask[0, :3] = [0, 1, 2]  # asymmetric corner so that every flip / rotation is visible
    return LUT[mask], mask


@pytest.mark.parametrize("factor", [0.6, 0.731, 1.0, 1.177, 1.4, 0.999])
def test_brightness_equals_pil(factor: float) -> None:
    ref = np.asarray(ImageEnhance.Brightness(Image.fromarray(VALUES)).enhance(factor))
    np.testing.assert_array_equal(A.brightness(VALUES, factor), ref)


@pytest.mark.parametrize("g", [0.7, 0.85, 1.0, 1.13, 1.3])
def test_gamma_equals_torchvision_pil(g: float) -> None:
    ref = np.asarray(TF.adjust_gamma(Image.fromarray(VALUES), g))
    np.testing.assert_array_equal(A.gamma(VALUES, g), ref)


def test_speckle_normalised_noise() -> None:
    rng = np.random.default_rng(0)
    zero = np.zeros((64, 64), dtype=np.uint8)
    out = A.speckle(zero, rng, peak=2)
    assert out.dtype == np.uint8 and out.shape == zero.shape
    assert out.max() == 255  # noise / max(noise) reaches exactly 1 somewhere
    assert 0.2 < np.mean(out == 0) < 0.9  # negative noise clipped to 0
    bright = np.full((64, 64), 255, dtype=np.uint8)
    out = A.speckle(bright, np.random.default_rng(1))
    assert out.min() < 255 and out.max() == 255
    np.testing.assert_array_equal(A.speckle(zero, np.random.default_rng(5)), A.speckle(zero, np.random.default_rng(5)))


def test_ocean_mixup_only_touches_ocean() -> None:
    rng = np.random.default_rng(2)
    img, mask = _scene(rng)
    other = rng.integers(0, 256, img.shape, dtype=np.uint8)
    w = 0.2
    out = A.ocean_mixup(img, mask, other, w)
    ocean = mask == A.OCEAN_CLASS
    np.testing.assert_array_equal(out[~ocean], img[~ocean])
    expected = ((img.astype(np.float32) + np.float32(w) * other) / np.float32(1 + w)).astype(np.uint8)
    np.testing.assert_array_equal(out[ocean], expected[ocean])


def test_flip_rotate_keeps_image_and_mask_aligned() -> None:
    rng = np.random.default_rng(3)
    img, mask = _scene(rng)
    seen = set()
    for _ in range(200):
        out_img, out_mask = A.flip_rotate(img, mask, rng)
        assert out_img.flags.c_contiguous and out_mask.flags.c_contiguous
        np.testing.assert_array_equal(out_img, LUT[out_mask])
        seen.add(out_mask.tobytes())
    assert len(seen) == 8  # all eight symmetries of the square occur


def test_flip_rotate_order_and_direction() -> None:
    x = np.arange(16).reshape(4, 4)

    class Fixed:
        """Generator stand-in: every probability test passes, rotation k = 1 (90° counter-clockwise)."""

        def random(self) -> float:
            return 0.0

        def integers(self, lo: int, hi: int) -> int:
            return 1

    out, _ = A.flip_rotate(x, None, Fixed())  # type: ignore[arg-type]
    np.testing.assert_array_equal(out, np.rot90(np.flipud(np.fliplr(x)), 1))
    assert np.rot90(np.array([[1, 2], [3, 4]]))[0].tolist() == [2, 4]  # counter-clockwise


def test_augment_context_masks_keep_valid_ids() -> None:
    rng = np.random.default_rng(4)
    params = A.AugmentParams(prob_mixup=1.0, prob_speckle=1.0, prob_brightness=1.0, prob_gamma=1.0)
    for _ in range(30):
        img, mask = _scene(rng)
        shape = img.shape
        out_img, out_mask = A.augment_context(img, mask, rng, params,
                                              lambda r, shape=shape: r.integers(0, 256, shape, dtype=np.uint8))
        assert out_img.dtype == np.uint8 and out_img.shape == img.shape
        assert out_mask.dtype == mask.dtype and set(np.unique(out_mask)) <= {0, 1, 2, 3}
        assert np.bincount(out_mask.ravel(), minlength=4).tolist() == np.bincount(mask.ravel(), minlength=4).tolist()


def test_augment_context_geometry_only_keeps_alignment() -> None:
    rng = np.random.default_rng(5)
    params = A.AugmentParams(prob_mixup=0.0, prob_speckle=0.0, prob_brightness=0.0, prob_gamma=0.0)
    for _ in range(20):
        img, mask = _scene(rng)
        out_img, out_mask = A.augment_context(img, mask, rng, params)
        np.testing.assert_array_equal(out_img, LUT[out_mask])


def test_no_augmentation_is_identity() -> None:
    rng = np.random.default_rng(6)
    img, mask = _scene(rng)
    out_img, out_mask = A.augment_context(img, mask, rng, A.AugmentParams.none(), lambda r: img)
    np.testing.assert_array_equal(out_img, img)
    np.testing.assert_array_equal(out_mask, mask)


def test_probabilities_are_respected() -> None:
    rng = np.random.default_rng(7)
    img = np.full((8, 8), 100, dtype=np.uint8)
    params = A.AugmentParams(prob_speckle=0.0, prob_gamma=0.0, prob_brightness=0.2)
    changed = sum(not np.array_equal(A.photometric(img, rng, params), img) for _ in range(2000))
    assert 0.16 < changed / 2000 < 0.24


def test_params_from_presets_and_validation() -> None:
    paper = A.AugmentParams.from_config(load_preset("paper")["data"])
    assert paper.prob_mixup == 0.3 and paper.zoom_range == (0.33, 2.83) and paper.prob_rotate == 0.5
    smoke = A.AugmentParams.from_config(load_preset("smoke")["data"])
    assert smoke.gamma_range == (0.7, 1.3)
    with pytest.raises(ValueError, match="probability"):
        A.AugmentParams(prob_gamma=1.5)
    with pytest.raises(ValueError, match="lo <= hi"):
        A.AugmentParams(brightness_range=(1.4, 0.6))


@pytest.mark.parametrize("lam", [1.0, 2.0, 3.0])
def test_speckle_poisson_counts_follow_the_distribution(lam: float) -> None:
    counts = A._poisson_counts(np.random.default_rng(int(lam)), lam, (400, 500)).astype(np.int64).ravel()
    assert abs(counts.mean() - lam) < 0.02 and abs(counts.var() - lam) < 0.05
    pmf = np.array([np.exp(-lam) * lam**k / np.prod(np.arange(1, k + 1)) for k in range(8)])
    np.testing.assert_allclose(np.bincount(counts, minlength=8)[:8] / counts.size, pmf, atol=3e-3)
