"""The synthetic dataset generator: scene model, the CaFFe / SSL4SAR / time-series layouts, determinism."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ssl4sar.data import synthetic as syn
from ssl4sar.errors import DataError

SMALL = (96, 128)


@pytest.fixture(scope="module")
def scenes() -> list[syn.Scene]:
    out = []
    for i in range(8):
        sensor = ("S1", "TSX", "ERS", "PALSAR")[i % 4]
        out.append(syn.make_scene(np.random.default_rng([5, i]), (100 + 4 * i, 120), syn.SENSORS[sensor].resolution_m,
                                  ("winter", "summer")[i % 2], sensor, na_probability=0.5))
    return out


@pytest.fixture(scope="module")
def caffe_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return syn.generate_caffe(tmp_path_factory.mktemp("caffe"), n_train=7, n_test=3, scene_size=SMALL, seed=11)


@pytest.fixture(scope="module")
def ssl_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return syn.generate_ssl4sar(tmp_path_factory.mktemp("ssl"), n_sar=7, seed=4, n_glaciers=2, scene_size=SMALL)


@pytest.fixture(scope="module")
def ts_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return syn.generate_time_series(tmp_path_factory.mktemp("ts"), n_dates=6, seed=2, shape=(160, 176))


# --- scene model -------------------------------------------------------------------------------------------

def test_scene_arrays_and_label_consistency(scenes):
    from ssl4sar import postprocess

    for sc in scenes:
        assert sc.sar.dtype == np.uint8 and sc.zones.dtype == np.uint8 and sc.front.dtype == np.uint8
        assert sc.sar.shape == sc.zones.shape == sc.front.shape == sc.sigma0_db.shape
        assert set(np.unique(sc.zones)) <= {0, 1, 2, 3}
        assert {1, 2, 3} <= set(np.unique(sc.zones)), "every scene shows rock, glacier and ocean"
        # no data <=> class NA <=> SAR 0 (valid pixels are 1..255)
        np.testing.assert_array_equal(sc.sar == 0, sc.zones == syn.NA)
        assert np.isnan(sc.sigma0_db[sc.zones == syn.NA]).all() and np.isfinite(sc.sigma0_db[sc.zones != 0]).all()
        # the front is exactly the §7.2 rule of the project's post-processing, and non-empty
        np.testing.assert_array_equal(sc.front, postprocess.front_from_zones(sc.zones))
        assert sc.front.sum() >= 0.15 * min(sc.sar.shape)
        # the zones are a fixed point of §7.2 steps 1-2, so post-processing the truth returns the truth
        np.testing.assert_array_equal(postprocess.keep_largest_ocean(postprocess.fill_ocean_gaps(sc.zones)), sc.zones)


def test_front_is_glacier_ocean_four_neighbour_boundary():
    zones = np.array([[1, 2, 2, 3],
                      [1, 2, 3, 3],
                      [0, 3, 3, 3],
                      [1, 1, 3, 3]], dtype=np.uint8)
    want = np.array([[0, 0, 0, 1],
                     [0, 0, 1, 0],
                     [0, 1, 0, 0],
                     [0, 0, 0, 0]], dtype=np.uint8)
    np.testing.assert_array_equal(syn.front_from_zones(zones), want)


def test_scenes_vary_in_orientation_season_and_no_data(scenes):
    angles = np.array([sc.geometry.flow_angle for sc in scenes])
    # flow directions spread over the circle: not all fronts horizontal / vertical
    assert np.ptp(np.cos(angles)) > 1.0 and np.ptp(np.sin(angles)) > 1.0
    assert {sc.season for sc in scenes} == {"winter", "summer"}
    assert any((sc.zones == 0).any() for sc in scenes) and any(not (sc.zones == 0).any() for sc in scenes)


def test_wet_snow_darkens_the_glacier():
    geom = syn.random_geometry(np.random.default_rng(3), (128, 128), 20.0)
    dry, wet = [], []
    for i in range(6):
        a = syn.make_scene(np.random.default_rng([9, i]), (128, 128), 20.0, "winter", "S1", geometry=geom,
                           na_probability=0)
        b = syn.make_scene(np.random.default_rng([9, i]), (128, 128), 20.0, "summer", "S1", geometry=geom,
                           na_probability=0)
        assert not a.params["wet_snow"]
        if b.params["wet_snow"]:    # most, not all, summer scenes have wet snow
            dry.append(np.median(a.sigma0_db[a.zones == syn.GLACIER]))
            wet.append(np.median(b.sigma0_db[b.zones == syn.GLACIER]))
    assert len(wet) >= 3
    assert min(d - w for d, w in zip(dry, wet)) > 3.0   # dB, same scene drawn dry and wet


def test_speckle_has_the_requested_looks():
    from scipy.special import gammaln

    sig = np.full((192, 192), -8.0, dtype=np.float32)
    for looks in (1.0, 4.4):
        img = syn.speckle_and_quantise(np.random.default_rng(0), sig, looks)
        a = img.astype(float)
        m = np.exp(gammaln(looks + 0.5) - gammaln(looks)) / np.sqrt(looks)   # E[A] for unit-mean intensity
        enl_theory = m * m / (1 - m * m)
        assert a.mean() ** 2 / a.var() == pytest.approx(enl_theory, rel=0.06)


def test_front_shift_moves_the_front_along_the_flow():
    rng = np.random.default_rng(8)
    geom = syn.random_geometry(rng, (150, 150), 20.0)
    a = syn.make_scene(np.random.default_rng(1), (150, 150), 20.0, "winter", geometry=geom, na_probability=0)
    b = syn.make_scene(np.random.default_rng(1), (150, 150), 20.0, "winter", geometry=geom, front_shift_m=200.0,
                       na_probability=0)
    assert b.front_position_m - a.front_position_m == pytest.approx(200.0)
    # centroid of the front moves ~10 px (200 m / 20 m) downstream
    dr, dc = geom.flow_direction
    ca = np.argwhere(a.front).mean(axis=0)
    cb = np.argwhere(b.front).mean(axis=0)
    assert (cb - ca) @ np.array([dr, dc]) == pytest.approx(10.0, abs=3.0)
    assert (b.zones == syn.GLACIER).sum() > (a.zones == syn.GLACIER).sum()


def test_season_rule_matches_the_caffe_reader():
    from ssl4sar.data import caffe

    for glacier in syn.CAFFE_GLACIERS:
        for month in range(1, 13):
            assert syn.season_of(glacier, month) == caffe.season_of(glacier, month)


def test_bad_arguments():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="season"):
        syn.make_scene(rng, (64, 64), season="spring")
    with pytest.raises(ValueError, match="looks"):
        syn.make_scene(rng, (64, 64), looks=0)
    with pytest.raises(ValueError, match="too small"):
        syn.make_scene(rng, (8, 64))
    with pytest.raises(ValueError, match="scene_size"):
        syn.generate_caffe("/nonexistent-never-written", 1, 1, scene_size=(100, 50))


# --- CaFFe layout ------------------------------------------------------------------------------------------

def test_caffe_layout_stems_and_mask_values(caffe_root):
    from ssl4sar.data import caffe

    stems = {}
    for split, n in (("train", 7), ("test", 3)):
        files = sorted((caffe_root / "sar_images" / split).glob("*.png"))
        assert len(files) == n
        for f in files:
            stem = f.stem
            meta = caffe.parse_stem(stem)
            assert meta.glacier in (syn.TEST_GLACIERS if split == "test" else syn.TRAIN_GLACIERS)
            spec = syn.SENSORS[meta.sensor]
            assert meta.sensor in syn.CAFFE_GLACIERS[meta.glacier]["sensors"]
            assert meta.resolution_m == syn.SENSOR_RESOLUTION_OVERRIDES.get((meta.glacier, meta.sensor),
                                                                             spec.resolution_m)
            assert spec.first_year <= meta.date.year <= spec.last_year
            assert len(stem.split("_")[5]) == 3
            sar = np.asarray(Image.open(f))
            zones = np.asarray(Image.open(caffe_root / "zones" / split / f"{stem}_zones.png"))
            front = np.asarray(Image.open(caffe_root / "fronts" / split / f"{stem}_front.png"))
            assert Image.open(f).mode == "L" and sar.dtype == np.uint8
            assert sar.shape == zones.shape == front.shape
            assert SMALL[0] <= min(sar.shape) and max(sar.shape) <= SMALL[1]
            assert set(np.unique(zones)) <= {0, 64, 127, 254}
            assert set(np.unique(front)) == {0, 255}
            np.testing.assert_array_equal(sar == 0, zones == 0)
            assert (caffe_root / "bounding_boxes" / f"{stem}_front_extent_coord.txt").is_file()
            stems[stem] = split
    assert len(stems) == 10   # unique
    assert {caffe.parse_stem(s).glacier for s, sp in stems.items() if sp == "train"} == set(syn.TRAIN_GLACIERS)


def test_caffe_round_trip_through_the_reader(caffe_root):
    from ssl4sar.data import caffe
    from ssl4sar.postprocess import extract_front

    scenes = caffe.discover(caffe_root, "trainval") + caffe.discover(caffe_root, "test")
    assert len(scenes) == 10
    for scene in scenes:
        d = caffe.load_scene(scene)
        # the raw front is the glacier/ocean 4-neighbour boundary of the zones
        np.testing.assert_array_equal(d["front"], syn.front_from_zones(d["zones"]))
        # the bounding box (§1.4 rounding and clamping) keeps every ground-truth front pixel, and is tight
        box = d["bbox"]
        assert box is not None
        np.testing.assert_array_equal(box.mask(d["front"]), d["front"])
        assert box.keep_mask().sum() < d["front"].size
        # post-processing the true zones (without the length filter) gives back the true front
        np.testing.assert_array_equal(extract_front(d["zones"], scene.meta.resolution_m, min_front_length_m=0.0),
                                      d["front"])


def test_bounding_box_file_format(caffe_root):
    text = next((caffe_root / "bounding_boxes").glob("*.txt")).read_text().splitlines()
    assert text[0] == "x,y" and len(text) == 5
    (x_lu, y_lu), (x_ll, y_ll), (x_rl, y_rl), (x_ru, y_ru) = [tuple(map(float, t.split(","))) for t in text[1:]]
    assert x_lu == x_ll < x_rl == x_ru
    assert y_lu == y_ru > y_ll == y_rl   # "upper" y is the larger row index


def test_caffe_scenes_csv(caffe_root):
    rows = list(csv.DictReader((caffe_root / "scenes.csv").open()))
    assert len(rows) == 10
    for r in rows:
        img = Image.open(caffe_root / "sar_images" / r["split"] / f"{r['stem']}.png")
        assert img.size == (int(r["width"]), int(r["height"]))
        front = np.asarray(Image.open(caffe_root / "fronts" / r["split"] / f"{r['stem']}_front.png"))
        assert int(r["front_px"]) == int((front > 0).sum())


# --- SSL4SAR layout ----------------------------------------------------------------------------------------

def test_ssl4sar_layout_pairs_on_identical_grids(ssl_root):
    import rasterio

    from ssl4sar.data import unlabeled

    train = unlabeled.discover_unlabeled(ssl_root, "train")
    val = unlabeled.discover_unlabeled(ssl_root, "val")
    assert len(train) + len(val) == 7 and len(val) >= 2
    assert len({p.glacier for p in train + val}) == 2
    for pair in train + val:
        assert pair.sar_path.name.startswith(f"S1_{pair.glacier}_")
        assert pair.optical_path.name.startswith(f"{pair.glacier}_S2_")
        with rasterio.open(pair.sar_path) as s, rasterio.open(pair.optical_path) as o:
            assert s.crs.to_epsg() == 3413 and o.crs == s.crs
            assert s.transform == o.transform and s.shape == o.shape
            assert s.count == 1 and s.dtypes[0] == "uint8"
            assert o.count == 15 and o.dtypes[0] == "uint16"
            assert tuple(o.descriptions) == syn.S2_SR_BAND_ORDER
            assert s.transform.a == 20.0 and s.transform.e == -20.0
    for pair in (train[0], val[0]):      # the reader's own grid check and 14-band normalisation pass
        sar, optical = unlabeled.load_pair(pair)
        assert sar.shape == optical.shape[1:] and optical.shape[0] == 14 and optical.dtype == np.uint8
    # several dates per glacier
    dates = {}
    for p in train + val:
        dates.setdefault(p.glacier, set()).add(p.sar_path.name.split("_")[2])
    assert all(len(d) >= 3 for d in dates.values())


def test_optical_spectra_follow_the_surface(ssl_root):
    import rasterio

    path = sorted((ssl_root / "optical").glob("*.tif"))[0]
    with rasterio.open(path) as ds:
        img = ds.read().astype(float)
    scl = img[14]
    assert set(np.unique(scl)) <= set(syn.SCL_CODES.values())
    snow, water, soil = scl == 11, scl == 6, scl == 5
    assert snow.any() and water.any() and soil.any()
    b3, b11 = img[2], img[10]       # green, SWIR 1.6 µm
    assert b3[snow].mean() > 2 * b3[water].mean()          # snow/ice bright in the visible
    assert b11[snow].mean() < b3[snow].mean() / 3           # and dark in the SWIR
    assert b11[soil].mean() > b11[snow].mean()              # rock brighter than snow in the SWIR
    assert np.median(b3[water]) < 2000                      # water dark (some floating ice)


def test_optical_clouds_are_bright_in_swir():
    rng = np.random.default_rng(0)
    geom = syn.random_geometry(rng, (128, 128), 20.0)
    zones, _ = syn.rasterise_zones(geom)
    opt = syn.make_optical(rng, zones, geom, cloud_cover=0.3).astype(float)
    cloud = opt[14] == 9
    snow = opt[14] == 11
    assert cloud.mean() > 0.05 and snow.any()
    assert opt[10][cloud].mean() > 2 * opt[10][snow].mean()


# --- time series -------------------------------------------------------------------------------------------

def _box_positions(ts_root: Path) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    import rasterio
    from shapely import contains_xy
    from shapely.geometry import Polygon

    rows = list(csv.DictReader((ts_root / "truth.csv").open()))
    r0 = rows[0]
    corners = [(float(r0[f"box_x{j}"]), float(r0[f"box_y{j}"])) for j in range(1, 5)]
    box = Polygon(corners)
    width = np.hypot(corners[1][0] - corners[0][0], corners[1][1] - corners[0][1])
    est = []
    for r in rows:
        with rasterio.open(ts_root / "zones" / f"{r['stem']}_zones.tif") as ds:
            zones, t = ds.read(1), ds.transform
        h, w = zones.shape
        cols, rws = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
        xs, ys = t @ (cols, rws)
        est.append(((zones == syn.GLACIER) & contains_xy(box, xs, ys)).sum() * abs(t.a * t.e) / width)
    est = np.array(est) - est[0]
    return est, np.array([float(r["position_m"]) for r in rows]), rows


def test_time_series_truth_matches_the_masks(ts_root):
    est, truth, rows = _box_positions(ts_root)
    assert truth[0] == 0.0 and np.ptp(truth) > 200      # the front really moves
    # box method on the true masks recovers the stated along-flow positions within half a 20 m pixel
    np.testing.assert_allclose(est, truth, atol=10.0)
    dates = [dt.date.fromisoformat(r["date"]) for r in rows]
    assert dates == sorted(dates) and len(set(dates)) == len(dates)
    fx, fy = float(rows[0]["flow_x"]), float(rows[0]["flow_y"])
    assert fx * fx + fy * fy == pytest.approx(1.0, abs=1e-6)


def test_time_series_georeferencing_and_masks(ts_root):
    import rasterio

    rows = list(csv.DictReader((ts_root / "truth.csv").open()))
    ref = None
    for r in rows:
        stem = r["stem"]
        grids = []
        for rel in (f"sar/{stem}.tif", f"zones/{stem}_zones.tif", f"fronts/{stem}_front.tif"):
            with rasterio.open(ts_root / rel) as ds:
                assert ds.crs.to_epsg() == 32622 and ds.transform.a == 20.0 and ds.transform.e == -20.0
                grids.append((ds.transform, ds.shape))
                if rel.startswith("zones"):
                    zones = ds.read(1)
                elif rel.startswith("fronts"):
                    front = ds.read(1)
        assert grids[0] == grids[1] == grids[2]
        ref = ref or grids[0]
        assert grids[0] == ref                        # one grid for every date
        assert set(np.unique(front)) == {0, 255}
        np.testing.assert_array_equal(front // 255, syn.front_from_zones(zones))
        # the analytic front line of the GeoJSON lies on the raster front (pixel units)
        gj = json.loads((ts_root / "fronts" / f"{stem}_front.geojson").read_text())
        assert gj["crs"]["properties"]["name"] == "EPSG:32622"
        line = np.array(gj["features"][0]["geometry"]["coordinates"])
        inv = ~grids[0][0]
        cols, rws = inv @ (line[:, 0], line[:, 1])
        fr = np.argwhere(front > 0) + 0.5
        d = np.sqrt((fr[:, None, 0] - rws[None]) ** 2 + (fr[:, None, 1] - cols[None]) ** 2).min(axis=0)
        assert np.median(d) < 1.5
    box = json.loads((ts_root / "reference_box.geojson").read_text())
    assert box["features"][0]["geometry"]["type"] == "Polygon"
    centre = json.loads((ts_root / "centreline.geojson").read_text())
    (x0, y0), (x1, y1) = centre["features"][0]["geometry"]["coordinates"]
    fx, fy = float(rows[0]["flow_x"]), float(rows[0]["flow_y"])
    # the centreline points along the flow
    assert ((x1 - x0) * fx + (y1 - y0) * fy) / np.hypot(x1 - x0, y1 - y0) == pytest.approx(1.0, abs=1e-3)


# --- generate(): presets, determinism ----------------------------------------------------------------------

def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_generate_smoke_is_deterministic(tmp_path):
    layouts = ("caffe", "ssl4sar", "timeseries")
    a = syn.generate(tmp_path / "a", preset="smoke", seed=3, layouts=layouts)
    syn.generate(tmp_path / "b", preset="smoke", seed=3, layouts=layouts)
    syn.generate(tmp_path / "c", preset="smoke", seed=4, layouts=("caffe",))
    assert set(a) == set(layouts)
    ta, tb = _tree(tmp_path / "a"), _tree(tmp_path / "b")
    assert ta.keys() == tb.keys() and len(ta) > 40
    assert all(ta[k] == tb[k] for k in ta), [k for k in ta if ta[k] != tb[k]]
    tc = _tree(tmp_path / "c")
    assert [k for k in tc if k.startswith("caffe/sar_images")] != [k for k in ta if k.startswith("caffe/sar_images")]
    record = json.loads((tmp_path / "a" / "synthetic.json").read_text())
    assert record["seed"] == 3 and record["preset"] == "smoke" and record["version"] == syn.GENERATOR_VERSION
    from ssl4sar.config import load_preset

    cfg = load_preset("smoke")["synthetic"]
    assert len(list((tmp_path / "a" / "caffe" / "sar_images" / "train").glob("*.png"))) == cfg["n_train"]
    assert len(list((tmp_path / "a" / "caffe" / "sar_images" / "test").glob("*.png"))) == cfg["n_test"]
    assert len(list((tmp_path / "a" / "ssl4sar" / "sar").rglob("*.tif"))) == cfg["n_unlabeled"]


def test_generate_refuses_stale_output(tmp_path):
    syn.generate(tmp_path, preset="smoke", seed=0, layouts=("caffe",))
    with pytest.raises(DataError, match="not empty"):
        syn.generate(tmp_path, preset="smoke", seed=0, layouts=("caffe",))
    before = sorted(p.name for p in (tmp_path / "caffe" / "sar_images" / "train").iterdir())
    syn.generate(tmp_path, preset="smoke", seed=1, layouts=("caffe",), overwrite=True)
    after = sorted(p.name for p in (tmp_path / "caffe" / "sar_images" / "train").iterdir())
    assert before != after and len(after) == len(before)
    # a later call for another layout keeps the record of the first one
    syn.generate(tmp_path, preset="smoke", seed=5, layouts=("timeseries",))
    record = json.loads((tmp_path / "synthetic.json").read_text())
    assert set(record["layouts"]) == {"caffe", "timeseries"}
    assert record["layouts"]["caffe"]["seed"] == 1 and record["layouts"]["timeseries"]["seed"] == 5
    # an interrupted run (marker written, no scenes.csv yet) is recognised as ours and replaced
    (tmp_path / "caffe" / "scenes.csv").unlink()
    (tmp_path / "caffe" / "sar_images" / "train" / "leftover.png").write_bytes(b"x")
    syn.generate(tmp_path, preset="smoke", seed=1, layouts=("caffe",), overwrite=True)
    assert not (tmp_path / "caffe" / "sar_images" / "train" / "leftover.png").exists()
    (tmp_path / "ssl4sar").mkdir()
    (tmp_path / "ssl4sar" / "precious.txt").write_text("not ours")
    with pytest.raises(DataError, match="did not write"):
        syn.generate(tmp_path, preset="smoke", seed=0, layouts=("ssl4sar",), overwrite=True)
    assert (tmp_path / "ssl4sar" / "precious.txt").is_file()


def test_generate_bad_preset_and_layout(tmp_path):
    bad = tmp_path / "nosynth.yaml"
    bad.write_text("name: x\nmodel: {}\n")
    with pytest.raises(DataError, match="synthetic"):
        syn.generate(tmp_path / "out", preset=str(bad))
    with pytest.raises(ValueError, match="layout"):
        syn.generate(tmp_path / "out", preset="smoke", layouts=("caffe", "nope"))


def test_far_ocean_raises_no_overflow_warning():
    """Tens of kilometres downstream of the front the mélange density's exponential overflows to inf (a density of
    exactly 0, as meant); it must not print numpy's RuntimeWarning into every large generated scene."""
    import warnings

    from ssl4sar.data.synthetic.radiometry import make_scene

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        for seed in range(4):  # 96 px at 1 km: up to ~100 km of ocean below the front
            make_scene(np.random.default_rng(seed), shape=(96, 96), resolution_m=1000.0)
