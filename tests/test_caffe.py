"""CaFFe layout: stems, masks, bounding boxes, split, discovery, scene loading (spec §1, §8.4)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import math

import numpy as np
import pytest
from fakes import full_bbox_text, scene_arrays, write_caffe, write_caffe_scene, write_png

from ssl4sar.data import caffe
from ssl4sar.data.caffe import (
    BoundingBox,
    discover,
    load_scene,
    parse_bounding_box,
    parse_stem,
    read_bounding_box,
    read_front,
    read_sar,
    read_zones,
    validation_indices,
    zones_to_classes,
)
from ssl4sar.errors import DataError

# ------------------------------------------------------------------------------------------------ stems


def test_parse_stem_fields() -> None:
    m = parse_stem("Mapple_2018-06-11_S1_20_2_009")
    assert m.glacier == "Mapple"
    assert m.date == dt.date(2018, 6, 11)
    assert m.sensor == "S1"
    assert m.resolution_m == 20.0
    assert m.quality == 2
    assert m.orbit == "009"
    m2 = parse_stem("COL_2011-06-18_TDX_7_1_024")
    assert (m2.glacier, m2.sensor, m2.resolution_m, m2.orbit) == ("COL", "TDX", 7.0, "024")


@pytest.mark.parametrize("stem", [
    "Mapple_2018-06-11_S1_20_2",            # 5 fields
    "Mapple_2018-06-11_S1_20_2_009_zones",  # 7 fields
    "Mapple_2018-13-11_S1_20_2_009",        # month 13
    "Mapple_2018-6-11_S1_20_2_009",         # not zero padded
    "Mapple_20180611_S1_20_2_009",          # no dashes
    "Mapple_2018-06-11_S1_20m_2_009",       # resolution not a number
    "Mapple_2018-06-11_S1_-20_2_009",       # negative resolution
    "Mapple_2018-06-11_S1_20_q_009",        # quality not an integer
    "Mapple_2018-06-11__20_2_009",          # empty sensor
    "Mapple_2018-06-11_S1_20_2_",           # empty orbit
    "",
])
def test_parse_stem_rejects_bad_stems(stem: str) -> None:
    with pytest.raises(DataError, match="stem|field"):
        parse_stem(stem)


def test_parse_stem_error_names_the_file(tmp_path) -> None:
    path = tmp_path / "weird_name.png"
    with pytest.raises(DataError) as err:
        parse_stem("weird_name", path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize(("glacier", "month", "season", "hemisphere"), [
    ("COL", 1, "winter", "north"), ("COL", 3, "winter", "north"), ("COL", 4, "summer", "north"),
    ("COL", 8, "summer", "north"), ("JAC", 9, "winter", "north"), ("JAC", 12, "winter", "north"),
    ("Mapple", 3, "summer", "south"), ("Mapple", 4, "winter", "south"), ("SI", 8, "winter", "south"),
    ("Crane", 9, "summer", "south"), ("DBE", 1, "summer", "south"), ("Jorum", 6, "winter", "south"),
])
def test_season_and_hemisphere(glacier: str, month: int, season: str, hemisphere: str) -> None:
    m = parse_stem(f"{glacier}_2015-{month:02d}-10_S1_20_1_001")
    assert m.season == season
    assert m.hemisphere == hemisphere


def test_sensor_group_pools_tsx_tdx() -> None:
    assert parse_stem("JAC_2009-08-15_TSX_6_1_005").sensor_group == "TSX/TDX"
    assert parse_stem("COL_2011-06-18_TDX_7_1_024").sensor_group == "TSX/TDX"
    assert parse_stem("Mapple_2018-06-11_S1_20_2_009").sensor_group == "S1"


@pytest.mark.reference
def test_breakdown_groups_match_reference(reference_dir) -> None:
    """Season / glacier / sensor / resolution groups of the official evaluation, from the fixture."""
    data = json.loads((reference_dir / "postprocess_mde.json").read_text())
    stems = [c["stem"] for c in data["cases"] if not c["reference_crashes"]]
    metas = {s: parse_stem(s) for s in stems}
    key_of = {
        "season": lambda m: m.season,
        "glacier": lambda m: m.glacier,
        "sensor": lambda m: m.sensor_group,
        "resolution": lambda m: m.resolution_label,
    }
    checked = 0
    for group, entry in data["overall"]["breakdown"].items():
        kind, value = group.split("=", 1)
        if kind not in key_of:
            continue
        mine = sorted(s for s, m in metas.items() if key_of[kind](m) == value)
        assert mine == sorted(entry["images"]), group
        checked += 1
    assert checked >= 4


# ------------------------------------------------------------------------------------------------ masks


def test_zone_values_map_to_class_ids() -> None:
    raw = np.array([[0, 63, 64], [127, 254, 0]], dtype=np.uint8)
    np.testing.assert_array_equal(zones_to_classes(raw), [[0, 1, 1], [2, 3, 0]])
    assert caffe.CLASS_NAMES == ("NA", "rock", "glacier", "ocean")
    np.testing.assert_array_equal(caffe.classes_to_zones(np.array([0, 1, 2, 3])), [0, 64, 127, 254])


def test_unknown_zone_values_are_listed_with_counts(tmp_path) -> None:
    raw = np.zeros((10, 10), dtype=np.uint8)
    raw[0, :3] = 12
    raw[5, :] = 200
    path = write_png(tmp_path / "x_zones.png", raw)
    with pytest.raises(DataError) as err:
        read_zones(path)
    msg = str(err.value)
    assert str(path) in msg
    assert "12 (3 px)" in msg and "200 (10 px)" in msg


def test_front_values(tmp_path) -> None:
    front = np.zeros((6, 7), dtype=np.uint8)
    front[2, 1:5] = 255
    path = write_png(tmp_path / "a_front.png", front)
    out = read_front(path)
    assert out.dtype == np.uint8 and out.sum() == 4 and set(np.unique(out)) == {0, 1}
    front[0, 0] = 128
    bad = write_png(tmp_path / "b_front.png", front)
    with pytest.raises(DataError, match=r"128 \(1 px\)"):
        read_front(bad)


def test_corrupt_and_missing_png(tmp_path) -> None:
    good = write_png(tmp_path / "good.png", np.full((40, 40), 7, dtype=np.uint8))
    assert read_sar(good).shape == (40, 40)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:60])
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"this is not a png at all")
    for bad in (truncated, garbage):
        with pytest.raises(DataError) as err:
            read_sar(bad)
        assert str(bad) in str(err.value)
    with pytest.raises(DataError, match="not found"):
        read_zones(tmp_path / "missing_zones.png")


# ------------------------------------------------------------------------------------------------ bounding boxes


def _bbox(corners: list[tuple[float, float]], shape=(100, 80)) -> BoundingBox:
    text = "header\n" + "".join(f"{x},{y}\n" for x, y in corners)
    return parse_bounding_box(text, shape)


def test_bbox_round_half_to_even() -> None:
    # LU, LL, RL, RU
    b = _bbox([(2.5, 60.5), (3.5, 10.5), (70.5, 11.5), (69.5, 61.5)])
    assert (b.x_lu, b.y_lu) == (2, 60)
    assert (b.x_ll, b.y_ll) == (4, 10)
    assert (b.x_rl, b.y_rl) == (70, 12)
    assert (b.x_ru, b.y_ru) == (70, 62)
    b = _bbox([(-0.5, 1.5), (-1.5, -2.5), (0.5, -0.5), (1.5, 2.5)])
    assert (b.x_lu, b.y_lu, b.x_ll, b.y_ll, b.x_rl, b.y_rl, b.x_ru, b.y_ru) == (0, 2, 0, 0, 0, 0, 2, 2)


def test_bbox_clamping_rules_exactly() -> None:
    h, w = 100, 80
    b = _bbox([(-3, 130), (-4, -5), (95, -6), (96, 140)], (h, w))
    assert (b.x_lu, b.x_ll) == (0, 0)
    assert (b.x_rl, b.x_ru) == (w - 1, w - 1)  # > W → W − 1 (drops the last column, as the reference)
    assert (b.y_lu, b.y_ru) == (h - 1, h - 1)
    assert (b.y_ll, b.y_rl) == (0, 0)
    # values equal to W / H are not clamped; the other directions are never clamped
    b = _bbox([(90, h), (85, 120), (w, 3), (-7, h)], (h, w))
    assert b.x_lu == 90          # x_LU > W is not clamped
    assert b.y_ll == 120         # y_LL > H is not clamped
    assert b.x_rl == w and b.y_lu == h and b.y_ru == h
    assert b.x_ru == -7          # x_RU < 0 is not clamped


def test_bbox_mask_keeps_rows_and_columns() -> None:
    h, w = 30, 40
    b = _bbox([(5, 20), (5, 8), (33, 8), (33, 20)], (h, w))
    keep = b.keep_mask()
    rows, cols = np.nonzero(keep)
    assert rows.min() == 8 and rows.max() == 19
    assert cols.min() == 5 and cols.max() == 32
    assert keep.sum() == (20 - 8) * (33 - 5)
    front = np.ones((h, w), dtype=np.uint8) * 255
    masked = b.mask(front)
    assert front.sum() == 255 * h * w  # input untouched
    np.testing.assert_array_equal(masked > 0, keep)
    with pytest.raises(DataError, match="shape"):
        b.mask(np.zeros((h + 1, w)))


def test_bbox_bad_files(tmp_path) -> None:
    short = tmp_path / "a_front_extent_coord.txt"
    short.write_text("header\n1,2\n3,4\n")
    with pytest.raises(DataError, match="line"):
        read_bounding_box(short, (10, 10))
    bad = tmp_path / "b_front_extent_coord.txt"
    bad.write_text("header\n1,2\n3;4\n5,6\n7,8\n")
    with pytest.raises(DataError) as err:
        read_bounding_box(bad, (10, 10))
    assert str(bad) in str(err.value) and "line 3" in str(err.value)


@pytest.mark.reference
def test_official_fronts_lie_inside_the_bounding_box(reference_dir) -> None:
    """The official post-processed fronts have no pixel outside the box this reader computes."""
    data = json.loads((reference_dir / "postprocess_mde.json").read_text())
    arrays = np.load(reference_dir / "postprocess_mde.npz")
    n_nonempty = 0
    for case in data["cases"]:
        key = f"case{case['index']:02d}_front"
        if case["reference_crashes"] or key not in arrays:
            continue
        front = arrays[key]
        box = parse_bounding_box(case["bounding_box_file"], front.shape)
        assert not np.any(front[~box.keep_mask()]), case["stem"]
        np.testing.assert_array_equal(box.mask(front), front)
        n_nonempty += int(front.any())
    assert n_nonempty > 0


# ------------------------------------------------------------------------------------------------ split


SPEC_VAL_INDICES = [
    0, 9, 29, 41, 47, 49, 65, 67, 85, 90, 119, 132, 135, 146, 157, 162, 165, 192, 213, 225, 237, 244, 245, 261, 274,
    284, 286, 292, 307, 323, 342, 346, 350, 360, 364, 374, 385, 404, 405, 406, 419, 427, 440, 442, 448, 465, 474,
    480, 494, 500, 504, 525, 530, 531, 540, 548]


def test_validation_indices_are_the_caffe_split() -> None:
    val = validation_indices(559)
    assert val.tolist() == SPEC_VAL_INDICES
    assert len(val) == caffe.CAFFE_N_VAL


@pytest.mark.parametrize("n", [2, 6, 20, 101])
def test_validation_indices_other_sizes_warn(n: int, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="ssl4sar.data.caffe"):
        val = validation_indices(n)
    assert len(val) == math.ceil(0.1 * n)
    assert np.all(np.diff(val) > 0) and val.min() >= 0 and val.max() < n
    np.testing.assert_array_equal(val, np.sort(np.random.RandomState(1).permutation(n)[: len(val)]))
    assert "not the CaFFe validation split" in caplog.text


# ------------------------------------------------------------------------------------------------ discovery


def test_discover_splits(tmp_path) -> None:
    stems = write_caffe(tmp_path, n_train=12, n_test=3)
    train = discover(tmp_path, "train")
    val = discover(tmp_path, "val")
    trainval = discover(tmp_path, "trainval")
    test = discover(tmp_path, "test")
    assert [s.stem for s in trainval] == stems
    assert len(val) == 2 and len(train) == 10 and len(test) == 3
    assert sorted(s.stem for s in train + val) == stems
    assert [s.stem for s in val] == [stems[i] for i in validation_indices(12)]
    assert all(s.meta.glacier in ("Mapple", "COL") for s in test)
    scene = train[0]
    assert scene.sar_path.name == f"{scene.stem}.png"
    assert scene.zones_path.name == f"{scene.stem}_zones.png"
    assert scene.front_path.name == f"{scene.stem}_front.png"
    assert scene.bbox_path is not None and scene.bbox_path.name == f"{scene.stem}_front_extent_coord.txt"
    assert scene.split == "train"
    with pytest.raises(ValueError, match="split"):
        discover(tmp_path, "training")


def test_discover_strict_split(tmp_path) -> None:
    write_caffe(tmp_path, n_train=6, n_test=1)
    with pytest.raises(DataError, match="559"):
        discover(tmp_path, "train", strict_split=True)
    assert len(discover(tmp_path, "test", strict_split=True)) == 1


def test_discover_missing_partner(tmp_path) -> None:
    stems = write_caffe(tmp_path, n_train=4, n_test=0)
    (tmp_path / "fronts" / "train" / f"{stems[1]}_front.png").unlink()
    with pytest.raises(DataError) as err:
        discover(tmp_path, "trainval")
    assert f"{stems[1]}_front.png" in str(err.value)


def test_discover_orphan_mask(tmp_path) -> None:
    stems = write_caffe(tmp_path, n_train=4, n_test=0)
    (tmp_path / "sar_images" / "train" / f"{stems[2]}.png").unlink()
    with pytest.raises(DataError, match="without a SAR image"):
        discover(tmp_path, "trainval")


def test_discover_unparsable_stem(tmp_path) -> None:
    write_caffe(tmp_path, n_train=3, n_test=0)
    image, classes, front = scene_arrays(20, 20)
    write_caffe_scene(tmp_path, "not_a_caffe_name", "train", image, classes, front)
    with pytest.raises(DataError) as err:
        discover(tmp_path, "trainval")
    assert "not_a_caffe_name.png" in str(err.value)


def test_load_scene_and_size_mismatch(tmp_path) -> None:
    image, classes, front = scene_arrays(33, 47, seed=3)
    stem = "JAC_2015-06-06_TSX_6_1_125"
    write_caffe_scene(tmp_path, stem, "train", image, classes, front, full_bbox_text(33, 47))
    write_caffe_scene(tmp_path, "SI_2016-07-03_S1_12_1_081", "train", image, classes, front)
    scenes = {s.stem: s for s in discover(tmp_path, "trainval")}
    data = load_scene(scenes[stem])
    np.testing.assert_array_equal(data["image"], image)
    np.testing.assert_array_equal(data["zones"], classes)
    np.testing.assert_array_equal(data["front"], front)
    assert data["bbox"].image_shape == (33, 47)
    assert load_scene(scenes["SI_2016-07-03_S1_12_1_081"])["bbox"] is None
    # zone mask of a different size
    write_png(tmp_path / "zones" / "train" / f"{stem}_zones.png", caffe.classes_to_zones(classes[:, :-1]))
    with pytest.raises(DataError, match="same size") as err:
        load_scene(scenes[stem])
    assert f"{stem}_zones.png" in str(err.value)
