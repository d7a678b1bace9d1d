"""Zone map → front post-processing (§7.2) and the front overlay figure."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from ssl4sar.errors import DataError
from ssl4sar.postprocess import (
    GLACIER_ID,
    NA_ID,
    OCEAN_ID,
    ROCK_ID,
    bounding_box_keep_region,
    extract_front,
    fill_ocean_gaps,
    front_components,
    front_from_zones,
    keep_largest_ocean,
    mask_with_bounding_box,
    min_front_length_px,
    remove_short_fronts,
)


def fjord(h: int = 40, w: int = 60, front_row: int = 20) -> np.ndarray:
    """Glacier above ``front_row``, ocean below, a rock band on the left."""
    z = np.full((h, w), GLACIER_ID, dtype=np.uint8)
    z[front_row:, :] = OCEAN_ID
    z[:, :5] = ROCK_ID
    return z


def test_fill_ocean_gaps_turns_small_non_ocean_islands_into_ocean():
    z = fjord()
    z[30:33, 30:33] = GLACIER_ID  # iceberg: non-ocean island in the ocean
    z[35:37, 50:52] = NA_ID  # NA patch in the ocean
    out = fill_ocean_gaps(z)
    assert np.all(out[30:33, 30:33] == OCEAN_ID)
    assert np.all(out[35:37, 50:52] == OCEAN_ID)
    # the large non-ocean component (glacier + rock) is untouched
    assert np.array_equal(out[:20], z[:20])
    assert out.dtype == z.dtype and z[30, 30] == GLACIER_ID  # input not modified


def test_fill_ocean_gaps_uses_8_connectivity():
    z = fjord()
    # a glacier pixel touching the glacier body only diagonally stays (same 8-connected component)
    z[20, 30] = OCEAN_ID
    z[20, 31] = GLACIER_ID  # directly below row 19 → 4-connected anyway
    z[21, 32] = GLACIER_ID  # diagonal to (20, 31)
    out = fill_ocean_gaps(z)
    assert out[21, 32] == GLACIER_ID


def test_keep_largest_ocean_turns_lakes_into_glacier():
    z = fjord()
    z[5:8, 20:24] = OCEAN_ID  # a lake inside the glacier
    out = keep_largest_ocean(z)
    assert np.all(out[5:8, 20:24] == GLACIER_ID)
    assert np.all(out[20:, 5:] == OCEAN_ID)


def test_keep_largest_ocean_all_ocean_and_no_ocean_unchanged():
    all_ocean = np.full((10, 12), OCEAN_ID, np.uint8)
    assert np.array_equal(keep_largest_ocean(all_ocean), all_ocean)
    no_ocean = np.full((10, 12), GLACIER_ID, np.uint8)
    assert np.array_equal(keep_largest_ocean(no_ocean), no_ocean)


def _reference_relabel(zones: np.ndarray, mask: np.ndarray, value: int) -> np.ndarray:
    """The reference's pixel-labelling formulation: skimage-style raster-order labels, first largest wins."""
    labels, n = ndimage.label(mask, structure=np.ones((3, 3)))
    out = zones.copy()
    if n > 1:
        counts = np.bincount(labels.ravel())[1:]
        largest = int(np.argmax(counts)) + 1
        out[(labels > 0) & (labels != largest)] = value
    return out


def test_run_based_components_equal_pixel_labelling_on_random_maps():
    rng = np.random.default_rng(11)
    for trial in range(60):
        h, w = int(rng.integers(1, 40)), int(rng.integers(1, 40))
        if trial % 2:
            z = rng.integers(0, 4, (h, w)).astype(np.uint8)  # salt and pepper: many tiny components
        else:
            coarse = rng.integers(0, 4, (max(h // 6, 1), max(w // 6, 1)))
            z = np.kron(coarse, np.ones((6, 6), int))[:h, :w].astype(np.uint8)
            z = np.pad(z, ((0, h - z.shape[0]), (0, w - z.shape[1])), mode="edge")
        step1 = fill_ocean_gaps(z)
        assert np.array_equal(step1, _reference_relabel(z, z != OCEAN_ID, OCEAN_ID)), trial
        step2 = keep_largest_ocean(step1)
        assert np.array_equal(step2, _reference_relabel(step1, step1 == OCEAN_ID, GLACIER_ID)), trial


def test_equal_sized_largest_components_first_in_raster_order_wins():
    z = np.full((9, 9), GLACIER_ID, np.uint8)
    z[1:3, 5:7] = OCEAN_ID  # 4 px, first pixel (1, 5)
    z[5:7, 1:3] = OCEAN_ID  # 4 px, first pixel (5, 1)
    out = keep_largest_ocean(z)
    assert np.all(out[1:3, 5:7] == OCEAN_ID) and np.all(out[5:7, 1:3] == GLACIER_ID)
    # the diagonal touch (8-connectivity) merges two blocks into one component
    z2 = np.full((6, 6), GLACIER_ID, np.uint8)
    z2[0:2, 0:2] = OCEAN_ID
    z2[2:4, 2:4] = OCEAN_ID
    z2[5, 5] = OCEAN_ID
    out2 = keep_largest_ocean(z2)
    assert (out2 == OCEAN_ID).sum() == 8 and out2[5, 5] == GLACIER_ID


def test_front_is_ocean_pixels_with_a_4_neighbour_glacier():
    z = fjord()
    f = front_from_zones(z)
    # exactly the first ocean row, minus the columns next to rock (rock/ocean is no front)
    expected = np.zeros_like(f)
    expected[20, 5:] = True
    assert np.array_equal(f, expected)


def test_front_ignores_diagonal_contacts_and_image_border():
    z = np.full((5, 5), OCEAN_ID, np.uint8)
    z[0, 0] = GLACIER_ID
    f = front_from_zones(z)
    assert f[0, 1] and f[1, 0] and not f[1, 1]  # (1,1) only touches diagonally
    assert f.sum() == 2
    z2 = np.full((4, 4), OCEAN_ID, np.uint8)  # outside the image does not count as glacier
    assert not front_from_zones(z2).any()


def test_min_front_length_px():
    assert min_front_length_px(20.0) == pytest.approx(37.5)
    assert min_front_length_px(6.0) == pytest.approx(125.0)
    assert min_front_length_px(7.0, 700.0) == pytest.approx(100.0)
    with pytest.raises(ValueError):
        min_front_length_px(0.0)


def test_remove_short_fronts_threshold_and_keep_rule():
    f = np.zeros((20, 200), bool)
    f[2, 0:125] = True  # exactly 125 px
    f[10, 0:124] = True  # 124 px
    ge = remove_short_fronts(f, 125.0, ">=")
    gt = remove_short_fronts(f, 125.0, ">")
    assert ge.dtype == np.uint8 and set(np.unique(ge)) <= {0, 1}
    assert ge[2].sum() == 125 and ge[10].sum() == 0
    assert gt.sum() == 0
    with pytest.raises(ValueError):
        remove_short_fronts(f, 10, "=>")  # type: ignore[arg-type]


def test_remove_short_fronts_uses_8_connectivity():
    f = np.zeros((50, 50), bool)
    idx = np.arange(40)
    f[idx, idx] = True  # a diagonal line: one 8-connected piece of 40 px
    assert remove_short_fronts(f, 40.0).sum() == 40
    assert remove_short_fronts(f, 41.0).sum() == 0


def test_front_components_match_scipy_labelling():
    rng = np.random.default_rng(3)
    for _ in range(5):
        m = rng.random((37, 53)) < 0.15
        rows, cols, comp = front_components(m)
        labels, n = ndimage.label(m, structure=np.ones((3, 3)))
        assert comp.max() + 1 == n
        # same partition: a bijection between our component ids and scipy's labels
        pairs = set(zip(comp.tolist(), labels[rows, cols].tolist()))
        assert len(pairs) == n
    r, c, comp = front_components(np.zeros((4, 4), bool))
    assert r.size == c.size == comp.size == 0


def test_bounding_box_keep_region_reference_rounding_and_clamping():
    # half-to-even rounding: 310.5 → 310 > H=300 → clamped to H-1 = 299 (the reference drops the last row)
    corners = [(-2.0, 310.5), (-2.0, -3.5), (404.5, -3.5), (404.5, 310.5)]
    assert bounding_box_keep_region(corners, (300, 400)) == (0, 299, 0, 399)
    # a coordinate equal to the size is not clamped (> W is the rule): last column kept
    corners = [(0.0, 300.0), (0.0, 0.0), (400.0, 0.0), (400.0, 300.0)]
    assert bounding_box_keep_region(corners, (300, 400)) == (0, 300, 0, 400)
    # tight box; 30.5 → 30 and 41.5 → 42 (half to even)
    corners = [(30.5, 260.4), (30.2, 40.5), (250.7, 41.5), (250.7, 260.4)]
    assert bounding_box_keep_region(corners, (300, 300)) == (42, 260, 30, 251)
    with pytest.raises(DataError):
        bounding_box_keep_region([(0, 0), (1, 1)], (10, 10))


def test_mask_with_bounding_box_zeroes_outside_only():
    f = np.ones((30, 40), np.uint8)
    corners = [(5.0, 20.0), (5.0, 10.0), (30.0, 10.0), (30.0, 20.0)]
    out = mask_with_bounding_box(f, corners)
    assert out[10:20, 5:30].all() and out.sum() == 10 * 25

    class Box:  # objects with a ``corners`` attribute work too
        def __init__(self, c):
            self.corners = c

    assert np.array_equal(mask_with_bounding_box(f, Box(corners)), out)
    keep = np.zeros((30, 40), bool)
    keep[:3] = True
    assert mask_with_bounding_box(f, keep).sum() == 3 * 40
    # an inverted box keeps nothing
    inverted = [(30.0, 10.0), (30.0, 20.0), (5.0, 20.0), (5.0, 10.0)]
    assert mask_with_bounding_box(f, inverted).sum() == 0


def test_negative_box_bounds_count_from_the_end_like_the_reference():
    f = np.ones((30, 40), np.uint8)
    corners = [(5.0, -4.0), (5.0, 10.0), (-6.0, 10.0), (-6.0, -4.0)]  # y_LU = -4, x_RL = -6 escape the clamps
    assert bounding_box_keep_region(corners, (30, 40)) == (10, 26, 5, 34)
    assert mask_with_bounding_box(f, corners).sum() == 16 * 29


def test_corner_boxes_agree_with_caffe_bounding_box():
    caffe = pytest.importorskip("ssl4sar.data.caffe")
    rng = np.random.default_rng(7)
    shape = (50, 70)
    front = (rng.random(shape) < 0.3).astype(np.uint8)
    for _ in range(200):
        xs = rng.uniform(-80, 150, 2).round(1)
        ys = rng.uniform(-60, 110, 2).round(1)
        corners = [(xs[0], ys[1]), (xs[0], ys[0]), (xs[1], ys[0]), (xs[1], ys[1])]
        box = caffe.BoundingBox.from_corners(corners, shape)
        assert np.array_equal(mask_with_bounding_box(front, corners), box.mask(front)), corners
        assert np.array_equal(mask_with_bounding_box(front, box), box.mask(front))


def test_extract_front_full_pipeline_on_a_fjord():
    z = fjord(60, 80, 30)
    z[45:48, 40:43] = GLACIER_ID  # iceberg → ocean
    z[10:12, 30:33] = OCEAN_ID  # lake → glacier
    front = extract_front(z, resolution_m=20.0)
    expected = np.zeros_like(front)
    expected[30, 5:] = 1
    assert np.array_equal(front, expected)
    # a front shorter than 750 m disappears: 75 px at 20 m = 1500 m stays, at 6 m/px (125 px needed) it goes
    assert extract_front(z, resolution_m=6.0).sum() == 0
    assert extract_front(z, resolution_m=6.0, min_front_length_m=400.0).sum() == 75


@pytest.mark.parametrize("value", [OCEAN_ID, GLACIER_ID, ROCK_ID, NA_ID])
def test_extract_front_single_class_maps_give_empty_fronts(value):
    z = np.full((32, 48), value, np.uint8)
    front = extract_front(z, 20.0, [(-2, 40.5), (-2, -3), (50.5, -3), (50.5, 40.5)])
    assert front.shape == z.shape and front.dtype == np.uint8 and front.sum() == 0


def test_extract_front_random_maps_invariants():
    rng = np.random.default_rng(0)
    for _ in range(4):
        z = ndimage.zoom(rng.integers(0, 4, (8, 10)), 8, order=0).astype(np.uint8)
        f = extract_front(z, 7.0)
        zz = keep_largest_ocean(fill_ocean_gaps(z))
        assert set(np.unique(f)) <= {0, 1}
        assert np.all(zz[f == 1] == OCEAN_ID)  # front pixels are ocean after post-processing
        labels, n = ndimage.label(zz == OCEAN_ID, structure=np.ones((3, 3)))
        assert n <= 1


def test_extract_front_rejects_pixel_value_maps():
    z = np.full((8, 8), 254, np.uint8)
    with pytest.raises(DataError, match="class ids"):
        extract_front(z, 20.0)
    with pytest.raises(DataError):
        extract_front(np.zeros((2, 3, 4), np.uint8), 20.0)


def test_prediction_overlay_and_uncertainty_figures(tmp_path):
    from ssl4sar import viz

    z = fjord()
    sar = (np.random.default_rng(0).random(z.shape) * 255).astype(np.uint8)
    front = extract_front(z, 20.0)
    gt = np.roll(front, 2, axis=0)
    fig = viz.plot_prediction(sar, z, front, gt, title="demo")
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert {"glacier", "predicted front", "true front", "overlap"} <= set(labels)
    path = viz.save_figure(fig, tmp_path / "overlay.png")
    assert path.stat().st_size > 1000
    std = np.random.default_rng(1).random((4, *z.shape)).astype(np.float32)
    fig2 = viz.plot_uncertainty(std)
    assert len(fig2.axes) == 5  # four panels + colour bar
    viz.save_figure(fig2, tmp_path / "unc.png")
    assert not list(tmp_path.glob(".*part*"))
