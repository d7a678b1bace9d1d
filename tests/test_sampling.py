"""Padding, crops with re-zoom and window geometry (spec §3.2–3.5)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.transforms import functional as TF

from ssl4sar.data import sampling as S

SHAPES = [(70, 90), (101, 64), (64, 64), (33, 150), (129, 97), (20, 17)]


def _ramp(shape: tuple[int, int]) -> np.ndarray:
    """A coordinate ramp: value = row·W + col (unique per pixel)."""
    h, w = shape
    return (np.arange(h)[:, None] * w + np.arange(w)[None, :]).astype(np.int64)


@pytest.mark.parametrize("t", [16, 32, 64])
@pytest.mark.parametrize("shape", SHAPES)
def test_whole_image_padding_reference_rounding(shape, t) -> None:
    h, w = shape
    pad = S.whole_image_padding(shape, t)
    ht, wt = (h // t + 2) * t, (w // t + 2) * t
    assert (pad.top, pad.bottom) == (round((ht - h) / 2), round((ht - h + 1) / 2))
    assert (pad.left, pad.right) == (round((wt - w) / 2), round((wt - w + 1) / 2))
    padded = S.pad_whole_image(_ramp(shape), t)
    assert padded.shape[0] in (ht, ht + 1) and padded.shape[1] in (wt, wt + 1)
    np.testing.assert_array_equal(padded[pad.top:pad.top + h, pad.left:pad.left + w], _ramp(shape))


def test_whole_image_padding_plus_one_quirk() -> None:
    pad = S.whole_image_padding((101, 100), 64)
    assert (pad.top, pad.bottom) == (46, 46)  # round(45.5) = 46 (even), round(46.0) = 46 → 101 + 92 = 193 = Ht + 1
    assert pad.padded_shape((101, 100)) == (193, 192)


def test_padding_is_symmetric_including_edge_pixel() -> None:
    arr = np.arange(12).reshape(3, 4)
    padded = S.Padding(2, 1, 3, 0).apply(arr)
    np.testing.assert_array_equal(padded, np.pad(arr, ((2, 1), (3, 0)), mode="symmetric"))
    assert padded[1, 3] == arr[0, 0] and padded[0, 3] == arr[1, 0]


def test_crop_padded_matches_materialised_padding() -> None:
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 255, (2, 5, 7))
    pad = S.Padding(23, 17, 30, 11)  # wider than the image: repeated mirroring
    full = pad.apply(arr)
    for _ in range(50):
        h, w = rng.integers(1, 20, 2)
        top = rng.integers(0, full.shape[1] - h + 1)
        left = rng.integers(0, full.shape[2] - w + 1)
        np.testing.assert_array_equal(S.crop_padded(arr, pad, top, left, h, w), full[:, top:top + h, left:left + w])
    with pytest.raises(ValueError):
        S.crop_padded(arr, pad, full.shape[1] - 3, 0, 5, 5)


@pytest.mark.parametrize("t", [16, 32])
@pytest.mark.parametrize("shape", SHAPES)
def test_validation_windows_cover_each_pixel_once_and_align(shape, t) -> None:
    h, w = shape
    ramp = _ramp(shape)
    grid = S.validation_windows(shape, t)
    assert len(grid) == (h // t + 1) * (w // t + 1)
    assert grid.context_size == 2 * t
    ph, pw = grid.padded_shape
    assert np.all(grid.origins >= 0)
    assert np.all(grid.origins[:, 0] + 2 * t <= ph) and np.all(grid.origins[:, 1] + 2 * t <= pw)
    # row-major k → (r, c)
    nc = w // t + 1
    k = np.arange(len(grid))
    np.testing.assert_array_equal(grid.origins, np.stack([(k // nc) * t, (k % nc) * t], axis=1))
    coverage = np.zeros(shape, dtype=np.int64)
    padded = grid.padding.apply(ramp)
    for k, (r0, c0) in enumerate(grid.centre_origins()):
        centre = S.centre_crop(grid.context(ramp, k), t)
        np.testing.assert_array_equal(centre, S.centre_crop(grid.context(padded, k, padded=True), t))
        rs, cs = slice(max(r0, 0), min(r0 + t, h)), slice(max(c0, 0), min(c0 + t, w))
        coverage[rs, cs] += 1
        # centre pixels that fall inside the image carry the original coordinates
        inner = centre[rs.start - r0: rs.stop - r0, cs.start - c0: cs.stop - c0]
        np.testing.assert_array_equal(inner, ramp[rs, cs])
    np.testing.assert_array_equal(coverage, 1)


@pytest.mark.parametrize("shape", [(70, 90), (300, 257), (129, 97)])
def test_validation_canvas_matches_reference_centre_crop(shape) -> None:
    """The official non-overlapping stitching crops a (H//T+1)·T canvas with torchvision CenterCrop (§7.1)."""
    t = 32
    grid = S.validation_windows(shape, t)
    canvas_h = (shape[0] // t + 1) * t
    canvas_w = (shape[1] // t + 1) * t
    # canvas pixel 0 is padded pixel T/2; original pixel 0 is padded pixel pad.top
    assert grid.padding.top - t // 2 == int(round((canvas_h - shape[0]) / 2.0))
    assert grid.padding.left - t // 2 == int(round((canvas_w - shape[1]) / 2.0))


@pytest.mark.parametrize(("context", "stride"), [(64, 16), (32, 8), (64, 32), (32, 16)])
@pytest.mark.parametrize("shape", SHAPES + [(10, 12)])
def test_test_windows_geometry(shape, context, stride) -> None:
    h, w = shape
    t = context // 2
    ramp = _ramp(shape)
    grid = S.test_windows(shape, context, stride)
    pad = grid.padding
    assert (pad.top, pad.left) == (context // 4, context // 4)
    ph, pw = grid.padded_shape
    assert ph >= context and pw >= context
    if h + context // 2 >= context:  # reference formula (1..stride extra pixels)
        assert pad.bottom - context // 4 == stride - ((h + context // 2 - context) % stride)
    rows, cols = np.unique(grid.origins[:, 0]), np.unique(grid.origins[:, 1])
    np.testing.assert_array_equal(rows, np.arange(0, ph - context + 1, stride))
    np.testing.assert_array_equal(cols, np.arange(0, pw - context + 1, stride))
    assert len(grid) == len(rows) * len(cols)
    assert (ph - context) % stride == 0 and (pw - context) % stride == 0
    # the centre of a window at padded origin (r, c) covers original pixels [r, r+T) x [c, c+T)
    np.testing.assert_array_equal(grid.centre_origins(), grid.origins)
    coverage = np.zeros(shape, dtype=np.int64)
    for k, (r0, c0) in enumerate(grid.origins):
        centre = S.centre_crop(grid.context(ramp, k), t)
        rs, cs = slice(r0, min(r0 + t, h)), slice(c0, min(c0 + t, w))
        if rs.stop > rs.start and cs.stop > cs.start:
            np.testing.assert_array_equal(centre[: rs.stop - r0, : cs.stop - c0], ramp[rs, cs])
            coverage[rs, cs] += 1
    assert coverage.min() >= 1
    assert coverage.max() <= (t // stride) ** 2
    if h > 2 * t and w > 2 * t:
        assert coverage[t:h - t, t:w - t].min() == (t // stride) ** 2


def test_test_windows_reference_order() -> None:
    grid = S.test_windows((100, 130), 64, 16)
    # official order: meshgrid(rows, cols) raveled → columns outer, rows inner
    assert grid.origins[0].tolist() == [0, 0]
    assert grid.origins[1].tolist() == [16, 0]
    n_rows = len(np.unique(grid.origins[:, 0]))
    assert grid.origins[n_rows].tolist() == [0, 16]


def test_resize_bilinear_matches_torchvision_resize() -> None:
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (37, 53), dtype=np.uint8)
    for size in [(64, 64), (20, 31), (37, 53)]:
        mine = S.resize_bilinear(img, size)
        ref = TF.resize(torch.from_numpy(img)[None], list(size), antialias=False)[0].numpy()
        assert mine.dtype == np.uint8
        np.testing.assert_array_equal(mine, ref)


def test_resize_nearest_is_pixel_centre_aligned() -> None:
    """Nearest mask and bilinear image of a column ramp stay aligned to within one pixel."""
    w = 64
    img = (np.tile(np.arange(w), (8, 1)) * 4).astype(np.uint8)
    idx = np.tile(np.arange(w), (8, 1)).astype(np.int64)
    for out_w in (23, 64, 100, 181):
        a = S.resize_bilinear(img, (8, out_w)).astype(np.float64) / 4
        b = S.resize_nearest(idx, (8, out_w))
        assert np.abs(a - b).max() <= 1.0
        np.testing.assert_array_equal(
            b[0], torch.nn.functional.interpolate(torch.from_numpy(idx[None, None].astype(np.float32)),
                                                  size=(8, out_w), mode="nearest-exact")[0, 0, 0].numpy())


def test_random_context_crop_without_rezoom_is_a_window_of_the_padded_image() -> None:
    shape = (70, 90)
    c = 64
    ramp = _ramp(shape)
    image = (ramp % 251).astype(np.uint8)
    pad = S.whole_image_padding(shape, c)
    padded_ramp = pad.apply(ramp)
    rng = np.random.default_rng(3)
    for _ in range(20):
        img, msk = S.random_context_crop(image, ramp, c, rng, prob_rezoom=0.0, padding=pad)
        assert img.shape == (c, c) and msk.shape == (c, c)
        hits = np.argwhere(padded_ramp == msk[0, 0])
        found = any(np.array_equal(padded_ramp[r:r + c, q:q + c], msk) for r, q in hits
                    if r + c <= padded_ramp.shape[0] and q + c <= padded_ramp.shape[1])
        assert found
        np.testing.assert_array_equal(img, (msk % 251).astype(np.uint8))


def test_random_context_crop_rezoom_masks_keep_valid_ids_and_align() -> None:
    rng = np.random.default_rng(7)
    shape = (90, 120)
    mask = np.zeros(shape, dtype=np.uint8)
    mask[:, 30:] = 2
    mask[:, 70:] = 3
    mask[:20] = 1
    image = (np.array([10, 60, 120, 200], dtype=np.uint8))[mask]
    pad = S.whole_image_padding(shape, 64)
    for _ in range(40):
        img, msk = S.random_context_crop(image, mask, 64, rng, prob_rezoom=1.0, padding=pad)
        assert img.shape == (64, 64) and msk.dtype == np.uint8
        assert set(np.unique(msk)) <= {0, 1, 2, 3}
        # wherever the bilinear image is "pure" (far from a class border) it matches the nearest mask
        lut = np.array([10, 60, 120, 200])
        pure = np.isin(img, lut)
        assert pure.mean() > 0.5
        np.testing.assert_array_equal(lut[msk][pure], img[pure])
    # the reference bilinear mask would create class 1 at 0|2 borders; nearest does not:
    m = np.zeros((10, 10), dtype=np.uint8)
    m[:, 5:] = 2
    assert set(np.unique(S.resize_nearest(m, (37, 37)))) == {0, 2}


def test_random_context_crop_zoom_range() -> None:
    """With re-zoom, crop sides int(z·C) span [0.33, 2.83)·C: a 1-px ramp shows the zoom factor."""
    shape = (400, 400)
    c = 32
    col = np.tile(np.arange(shape[1]), (shape[0], 1)).astype(np.int64)
    pad = S.whole_image_padding(shape, c)
    rng = np.random.default_rng(11)
    spans = []
    for _ in range(300):
        _, msk = S.random_context_crop(np.zeros(shape, np.uint8), col, c, rng, prob_rezoom=1.0, padding=pad)
        if np.all(np.diff(msk[0]) >= 0):  # skip crops that reach into the mirrored padding
            spans.append(int(msk[0, -1] - msk[0, 0]) + 1)
    spans = np.array(spans)
    assert len(spans) > 150
    assert spans.min() >= int(0.33 * c) - 2
    assert spans.max() <= int(2.83 * c) + 1
    assert np.mean(spans < c - 2) > 0.1 and np.mean(spans > c + 2) > 0.4
