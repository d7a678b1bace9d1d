"""Prediction on new scenes (ssl4sar.predict): georeferenced outputs, tiles, resampling, bad scenes, CLI.

A stand-in network classifies each pixel by its 3 × 3 median brightness (bright → glacier, dark → ocean, very
bright → rock), so fronts are predictable; an optional window-position-dependent bias makes the stitched result
depend on the exact window grid, so any misalignment of tiles or TTA frames changes the numbers.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
import torch
import torch.nn.functional as F
from PIL import Image
from rasterio.transform import from_origin

from ssl4sar import geo
from ssl4sar.errors import DataError
from ssl4sar.inference import predict_probabilities
from ssl4sar.predict import (
    open_scene,
    predict_scene,
    predict_scenes,
    scene_metadata,
    to_model_input,
)

UTM22 = "EPSG:32622"
X0, Y0, RES = 547_000.0, 7_675_000.0, 20.0
T20 = from_origin(X0, Y0, RES, RES)
LEVELS = (0, 240, 170, 40)  # 8-bit brightness of NA, rock, glacier, ocean in the test scenes


class BrightnessRule(torch.nn.Module):
    """logits_k = −((median3x3(x) − level_k) / width)², NA strongly penalised.

    Optional: a bias of the glacier logit growing with the pixel's position in the window (``position_bias``) and
    one proportional to the window's mean brightness (``context_weight``: every output depends on all input
    pixels of its window, like a real network's context).
    """

    def __init__(self, context_size: int = 32, position_bias: float = 0.0, width: float = 0.12,
                 context_weight: float = 0.0) -> None:
        super().__init__()
        self.img_size = context_size
        self.num_classes = 4
        self.position_bias = position_bias
        self.context_weight = context_weight
        self.width = width
        self.register_buffer("levels", torch.tensor(LEVELS, dtype=torch.float32).view(1, 4, 1, 1) / 255.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        x = F.unfold(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3).median(dim=1).values.view(b, 1, h, w)
        logits = -((x - self.levels) / self.width) ** 2
        logits[:, 0] -= 50.0
        if self.context_weight:
            logits[:, 2] += self.context_weight * x.mean(dim=(1, 2, 3)).view(b, 1, 1)
        if self.position_bias:
            rows = torch.linspace(0, 1, h).view(1, h, 1)
            cols = torch.linspace(0, 1, w).view(1, 1, w)
            logits[:, 2] += self.position_bias * (rows + 0.5 * cols)
        return logits


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def scene_image(zones: np.ndarray, noise: float = 15.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.asarray(LEVELS, dtype=np.float64)[zones] + rng.normal(0.0, noise, zones.shape)
    img = np.clip(np.rint(img), 1, 255).astype(np.uint8)
    img[zones == 0] = 0
    return img


def straight_front_zones(h: int = 70, w: int = 90, front_col: int = 40) -> np.ndarray:
    z = np.full((h, w), 3, dtype=np.uint8)
    z[:, :front_col] = 2
    return z


def write_tif(path: Path, arr: np.ndarray, crs=UTM22, transform=T20, nodata=None, tags=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {"driver": "GTiff", "height": arr.shape[0], "width": arr.shape[1], "count": 1,
               "dtype": arr.dtype.name, "crs": crs, "transform": transform}
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(arr, 1)
        if tags:
            ds.update_tags(**tags)
    return path


def wavy_zones(h: int, w: int) -> np.ndarray:
    rr, cc = np.mgrid[:h, :w]
    z = np.full((h, w), 3, dtype=np.uint8)
    z[cc < 0.45 * w + 8 * np.sin(rr / 9.0)] = 2
    z[rr < 12] = 1
    return z


# --------------------------------------------------------------------------------------------------------------

def test_front_of_a_utm_scene_lies_on_the_true_front(tmp_path):
    front_col = 40
    img = scene_image(straight_front_zones(front_col=front_col))
    path = write_tif(tmp_path / "JAC_2019-01-05_S1_20_1_025.tif", img)
    res = predict_scene(BrightnessRule(), path, tmp_path / "out", stride=8, min_front_length_m=200, to_wgs84=True)
    # the glacier/ocean boundary is the pixel edge x = X0 + 40 · 20 m; front pixels (ocean) have centres 10 m east
    x_true = X0 + front_col * RES
    fc = geo.read_geojson(res.outputs["front"])
    assert fc.crs == geo.as_crs(UTM22)
    xy = shapely.get_coordinates(fc.features[0].geometry)
    assert np.all(np.abs(xy[:, 0] - x_true) <= RES)
    assert xy[:, 1].max() == pytest.approx(Y0 - 0.5 * RES) and xy[:, 1].min() == pytest.approx(Y0 - 69.5 * RES)
    props = fc.features[0].properties
    assert props["scene"] == "JAC_2019-01-05_S1_20_1_025" and props["date"] == "2019-01-05"
    assert props["sensor"] == "S1" and props["glacier"] == "JAC"
    assert props["n_pixels"] == 70 and props["n_maps"] == 1 and props["mean_uncertainty"] == 0.0
    assert props["length_m"] == pytest.approx(69 * RES, rel=0.02)
    # the EPSG:4326 copy: lon/lat, no crs member, back to UTM within a millimetre
    wgs = res.outputs["front_wgs84"]
    assert "crs" not in json.loads(wgs.read_text())
    ll = geo.read_geojson(wgs).features[0].geometry
    lon, lat = shapely.get_coordinates(ll).T
    assert np.all((-51 < lon) & (lon < -49)) and np.all((69 < lat) & (lat < 69.3))
    back = geo.reproject_geometry(ll, 4326, UTM22)
    assert back.hausdorff_distance(fc.features[0].geometry) < 1e-3
    # raster outputs: the scene's CRS and transform, documented encodings
    for key, count, dtype in (("zones", 1, "uint8"), ("probabilities", 4, "float32"), ("uncertainty", 4, "float32"),
                              ("front_mask", 1, "uint8")):
        with rasterio.open(res.outputs[key]) as ds:
            assert ds.crs.to_epsg() == 32622 and ds.transform == T20, key
            assert ds.count == count and ds.dtypes[0] == dtype, key
    with rasterio.open(res.outputs["probabilities"]) as ds:
        prob = ds.read()
    np.testing.assert_allclose(prob.sum(axis=0), 1.0, atol=1e-5)
    with rasterio.open(res.outputs["zones"]) as ds:
        zones = ds.read(1)
    np.testing.assert_array_equal(zones, straight_front_zones(front_col=front_col))
    with rasterio.open(res.outputs["uncertainty"]) as ds:
        assert ds.read().max() == 0.0  # a single map has no spread
    with rasterio.open(res.outputs["front_mask"]) as ds:
        fm = ds.read(1)
    assert set(np.unique(fm)) == {0, 255} and np.all(fm[:, front_col] == 255) and fm.sum() == 70 * 255
    assert res.outputs["overlay"].is_file() and res.outputs["overlay"].stat().st_size > 1000


def _read(path):
    with rasterio.open(path) as ds:
        return ds.read()


def test_whole_scene_equals_the_library_ensemble_with_tta(tmp_path):
    img = scene_image(wavy_zones(61, 75), seed=3)
    path = write_tif(tmp_path / "scene.tif", img)
    models = [BrightnessRule(32, position_bias=1.5), BrightnessRule(32, position_bias=-0.8, width=0.15)]
    whole = predict_scene(models, path, tmp_path / "whole", rotations=(0, 1, 2, 3), flips=True, stride=16,
                          min_front_length_m=100, overlay=False)
    assert whole.n_maps == 16
    ref = predict_probabilities(models, img, rotations=(0, 1, 2, 3), flips=True, context_size=32, stride=16)
    np.testing.assert_array_equal(_read(whole.outputs["probabilities"]), ref.mean)
    np.testing.assert_array_equal(_read(whole.outputs["uncertainty"]), ref.std)
    np.testing.assert_array_equal(_read(whole.outputs["zones"])[0], ref.classes)
    assert ref.std.max() > 0.01  # the members and augmentations really disagree somewhere


def test_tiles_give_the_whole_scene_result(tmp_path):
    # not multiples of the stride; the position and context terms make every window position and pixel matter
    h, w = 83, 101
    path = write_tif(tmp_path / "scene.tif", scene_image(wavy_zones(h, w), seed=4))
    model = BrightnessRule(32, position_bias=1.5, context_weight=4.0)
    kw = dict(rotations=(0, 1, 3), flips=True, stride=16, min_front_length_m=100, overlay=False)
    t0 = time.perf_counter()
    whole = predict_scene(model, path, tmp_path / "whole", **kw)
    t1 = time.perf_counter()
    tiled = predict_scene(model, path, tmp_path / "tiled", tile_size=40, **kw)  # → 48 px tiles, 2 × 3 of them
    t2 = time.perf_counter()
    for key in ("probabilities", "uncertainty", "zones", "front_mask"):
        np.testing.assert_array_equal(_read(tiled.outputs[key]), _read(whole.outputs[key]), err_msg=key)
    assert _read(whole.outputs["uncertainty"]).max() > 0.01
    assert whole.n_front_pixels > 50
    assert tiled.geometry.equals_exact(whole.geometry, 0.0)
    assert tiled.mean_uncertainty == whole.mean_uncertainty and whole.mean_uncertainty > 0
    assert not list((tmp_path / "tiled").glob(".*"))  # the temporary memory maps are gone
    print(f"whole {t1 - t0:.2f} s, tiled {t2 - t1:.2f} s")


def test_resampling_to_a_target_spacing_returns_to_the_scene_grid(tmp_path):
    img = scene_image(straight_front_zones(h=90, w=90, front_col=45), noise=8.0)
    path = write_tif(tmp_path / "s.tif", img)
    res = predict_scene(BrightnessRule(), path, tmp_path / "out", resolution_m=30.0, stride=8,
                        min_front_length_m=200, overlay=False)
    assert res.model_shape == (60, 60) and res.shape == (90, 90)
    with rasterio.open(res.outputs["zones"]) as ds:
        assert ds.transform == T20 and ds.shape == (90, 90)
        zones = ds.read(1)
    assert np.mean(zones == straight_front_zones(h=90, w=90, front_col=45)) > 0.99
    xy = shapely.get_coordinates(res.geometry)
    assert np.all(np.abs(xy[:, 0] - (X0 + 45 * RES)) <= 1.5 * RES)  # within 1 px of a 30 m model grid
    # tiled resampled run = whole resampled run
    tiled = predict_scene(BrightnessRule(), path, tmp_path / "tiled", resolution_m=30.0, stride=8, tile_size=16,
                          min_front_length_m=200, overlay=False)
    for key in ("probabilities", "zones"):
        np.testing.assert_array_equal(_read(res.outputs[key]), _read(tiled.outputs[key]))


def test_a_spacing_far_from_the_training_data_is_warned_about(tmp_path, caplog):
    """The model saw 6–20 m/px; a scene run at 1 m/px (or resampled to 100 m/px) gave no front, or a wrong one,
    without a word. Within a factor of 2 of that range nothing is said."""
    img = scene_image(straight_front_zones(h=48, w=48))
    fine = write_tif(tmp_path / "fine.tif", img, transform=from_origin(X0, Y0, 1.0, 1.0))
    normal = write_tif(tmp_path / "normal.tif", img)   # 20 m/px
    kwargs = {"stride": 8, "min_front_length_m": 0, "overlay": False}
    with caplog.at_level(logging.WARNING, logger="ssl4sar"):
        predict_scenes(BrightnessRule(), [fine, normal], tmp_path / "out", **kwargs)
        predict_scene(BrightnessRule(), normal, tmp_path / "coarse", resolution_m=100.0, **kwargs)
        predict_scene(BrightnessRule(), fine, tmp_path / "resampled", resolution_m=30.0, **kwargs)
    warned = [r.getMessage() for r in caplog.records if "training data" in r.getMessage()]
    assert len(warned) == 2, warned
    assert warned[0].startswith(f"{fine}: the model runs at 1 m/px, far from the 6–20 m/px") and "--resolution-m" \
        in warned[0]
    assert warned[1].startswith(f"{normal}: the model runs at 100 m/px")


def test_to_model_input_scaling_and_nodata():
    v = np.array([[-25.0, 0.0, -12.5, -9999.0, np.nan, 10.0, -40.0]])
    out = to_model_input(v, -9999.0, (-25.0, 0.0))
    np.testing.assert_array_equal(out, [[1, 255, 128, 0, 0, 255, 1]])
    u = np.array([[0, 7, 255, 200]], dtype=np.uint8)
    np.testing.assert_array_equal(to_model_input(u, None, None), u)            # 0 = no data already
    np.testing.assert_array_equal(to_model_input(u, 255.0, None), [[1, 7, 0, 200]])  # another no-data value


def test_float_scene_with_value_range_matches_the_uint8_scene(tmp_path):
    zones = straight_front_zones()
    img = scene_image(zones)
    db = (img.astype(np.float32) - 1.0) / 254.0 * 25.0 - 25.0  # exact inverse of the 1..255 stretch of [-25, 0]
    db[:3, :5] = -9999.0
    img[:3, :5] = 0
    a = predict_scene(BrightnessRule(), write_tif(tmp_path / "u8.tif", img), tmp_path / "a", stride=8,
                      min_front_length_m=200, overlay=False)
    b = predict_scene(BrightnessRule(), write_tif(tmp_path / "f32.tif", db, nodata=-9999.0), tmp_path / "b",
                      stride=8, min_front_length_m=200, overlay=False, value_range=(-25.0, 0.0))
    with rasterio.open(a.outputs["probabilities"]) as pa, rasterio.open(b.outputs["probabilities"]) as pb:
        np.testing.assert_array_equal(pa.read(), pb.read())
    with rasterio.open(b.outputs["zones"]) as ds:
        assert np.all(ds.read(1)[:3, :5] == 0)  # no data → class 0 (NA)
    # without a range the percentiles of the valid pixels are used
    src = open_scene(tmp_path / "f32.tif")
    try:
        lo, hi = src.scaling
        valid = db[db != -9999.0]
        assert lo == pytest.approx(np.percentile(valid, 1)) and hi == pytest.approx(np.percentile(valid, 99))
    finally:
        src.close()


def test_uint8_probabilities_and_member_fronts(tmp_path):
    img = scene_image(wavy_zones(64, 64), seed=5)
    path = write_tif(tmp_path / "S1A_IW_GRDH_1SDH_20190105T101010_x.tif", img)
    res = predict_scene([BrightnessRule(position_bias=2.0), BrightnessRule(width=0.2)], path, tmp_path / "o",
                        rotations=(0, 2), stride=8, min_front_length_m=100, overlay=False,
                        probability_dtype="uint8", member_fronts=True)
    assert res.date.isoformat() == "2019-01-05" and res.sensor == "S1"
    with rasterio.open(res.outputs["probabilities"]) as ds:
        assert ds.dtypes[0] == "uint8" and ds.scales == (1 / 255,) * 4
        p = ds.read().astype(np.float64) / 255.0
    np.testing.assert_allclose(p.sum(axis=0), 1.0, atol=4 / 255)
    members = geo.read_geojson(res.outputs["front_members"])
    assert [f.properties["member"] for f in members.features] == [0, 1, 2, 3]
    assert [(f.properties["model"], f.properties["rotation"]) for f in members.features] == \
        [(0, 0), (0, 2), (1, 0), (1, 2)]
    assert all(f.properties["n_pixels"] > 0 for f in members.features)


@pytest.mark.parametrize("dtype", ["float32", "uint8"])
def test_mean_uncertainty_is_that_of_the_stored_rasters_without_reading_them_back(tmp_path, monkeypatch, dtype):
    # resampled to another spacing and tiled, so the stored values are bilinear resamples of the model frame
    h, w = 83, 101
    path = write_tif(tmp_path / "scene.tif", scene_image(wavy_zones(h, w), seed=6))
    opened = []
    real_open = rasterio.open

    def spy(fp, mode="r", *args, **kwargs):
        opened.append((Path(str(fp)).name, mode))
        return real_open(fp, mode, *args, **kwargs)

    monkeypatch.setattr(rasterio, "open", spy)
    res = predict_scene([BrightnessRule(32, position_bias=1.5), BrightnessRule(32, width=0.2)], path,
                        tmp_path / "o", rotations=(0, 1), resolution_m=27.0, tile_size=40, stride=16,
                        min_front_length_m=100, overlay=False, probability_dtype=dtype)
    monkeypatch.setattr(rasterio, "open", real_open)
    assert not [name for name, mode in opened if mode == "r" and name.startswith(("scene_", ".scene_"))], opened
    with rasterio.open(res.outputs["uncertainty"]) as ds:
        stored = ds.read().astype(np.float64) / (255.0 if dtype == "uint8" else 1.0)
    with rasterio.open(res.outputs["front_mask"]) as ds:
        front = ds.read(1) > 0
    assert res.model_shape != res.shape and front.sum() > 30
    expected = float(stored.max(axis=0)[front].sum()) / int(front.sum())
    assert res.mean_uncertainty == pytest.approx(expected, rel=1e-12, abs=1e-15) and expected > 0.001


@pytest.mark.parametrize("scene_shape, model_shape", [((83, 101), (62, 75)), ((50, 40), (91, 77)),
                                                      ((64, 64), (64, 64))])
def test_bilinear_at_pixels_equals_the_tile_resampling(scene_shape, model_shape):
    from ssl4sar.predict import _SceneFrame

    rng = np.random.default_rng(11)
    arr = rng.random((4, *model_shape), dtype=np.float32)
    frame = _SceneFrame(scene_shape, model_shape)
    rect = (3, scene_shape[0], 0, scene_shape[1] - 2)
    tile = frame.bilinear(arr, rect)
    mask = rng.random(tile.shape[1:]) < 0.2
    mask[0, 0] = mask[-1, -1] = True  # the edges, where the source indices are clipped
    rows, cols = np.nonzero(mask)
    at = frame.bilinear_at(arr, rows + rect[0], cols + rect[2])
    assert at.dtype == np.float32
    np.testing.assert_array_equal(at, tile[:, rows, cols])


def test_gdal_writes_the_probability_rasters_with_torch_threads_and_the_same_bytes(tmp_path):
    from ssl4sar.prediction_writers import raster_profile

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        assert raster_profile((300, 300), 4, "float32", UTM22, T20)["num_threads"] == 3
        assert raster_profile((300, 300), 4, "float32", UTM22, T20, threads=1)["num_threads"] == 1
        path = write_tif(tmp_path / "scene.tif", scene_image(wavy_zones(300, 300), seed=8))
        kw = dict(rotations=(0, 1), stride=16, min_front_length_m=100, overlay=False)
        digests = {}
        for threads in (1, 2):
            torch.set_num_threads(threads)
            res = predict_scene(BrightnessRule(32, position_bias=1.5), path, tmp_path / f"t{threads}", **kw)
            digests[threads] = [res.outputs[k].read_bytes() for k in ("probabilities", "uncertainty", "zones")]
    finally:
        torch.set_num_threads(before)
    assert digests[1] == digests[2]


def test_scene_metadata_from_tags_and_names():
    m = scene_metadata("scene_01", {"TIFFTAG_DATETIME": "2020:07:14 10:11:12", "MISSION_ID": "S1B"})
    assert m["date"].isoformat() == "2020-07-14" and m["sensor"] == "S1"
    m = scene_metadata("Mapple_2018-06-11_TSX_7_2_009")
    assert (m["glacier"], m["sensor"], m["resolution_m"]) == ("Mapple", "TSX", 7.0)
    assert scene_metadata("whatever")["date"] is None


def test_bad_scenes_are_skipped_and_reported(tmp_path):
    good = write_tif(tmp_path / "in" / "good.tif", scene_image(straight_front_zones()))
    nocrs = write_tif(tmp_path / "in" / "nocrs.tif", scene_image(straight_front_zones()), crs=None)
    empty = write_tif(tmp_path / "in" / "empty.tif", np.zeros((40, 40), dtype=np.uint8))
    corrupt = tmp_path / "in" / "corrupt.tif"
    corrupt.write_bytes(b"II*\x00 this is not a tiff")
    missing = tmp_path / "in" / "missing.tif"
    run = predict_scenes(BrightnessRule(), [good, nocrs, empty, corrupt, missing], tmp_path / "out", stride=8,
                         min_front_length_m=200, overlay=False)
    assert [r.stem for r in run.results] == ["good"]
    reasons = {p.name: r for p, r in run.skipped}
    assert set(reasons) == {"nocrs.tif", "empty.tif", "corrupt.tif", "missing.tif"}
    assert "no coordinate reference system" in reasons["nocrs.tif"]
    assert "no valid pixel" in reasons["empty.tif"]
    assert "cannot read" in reasons["corrupt.tif"] and "not found" in reasons["missing.tif"]
    with open(tmp_path / "out" / "skipped.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {Path(r["scene"]).name for r in rows} == set(reasons)
    with open(tmp_path / "out" / "predictions.csv") as fh:
        pred = list(csv.DictReader(fh))
    assert len(pred) == 1 and pred[0]["scene"] == "good" and pred[0]["crs"] == "EPSG:32622"
    assert not (tmp_path / "out" / "nocrs_zones.tif").exists()
    # the same scene without CRS is accepted on request: pixel coordinates
    with pytest.raises(DataError, match="pixel spacing unknown"):
        predict_scene(BrightnessRule(), nocrs, tmp_path / "px", allow_no_crs=True)
    res = predict_scene(BrightnessRule(), nocrs, tmp_path / "px", allow_no_crs=True, pixel_size_m=20.0, stride=8,
                        min_front_length_m=200, overlay=False)
    obj = json.loads(res.outputs["front"].read_text())
    assert obj["coordinate_system"] == "pixel" and "crs" not in obj
    xy = shapely.get_coordinates(geo.read_geojson(res.outputs["front"]).features[0].geometry)
    np.testing.assert_allclose(xy[:, 0], 40.5)
    assert res.length_m == pytest.approx(69 * 20.0)


def test_caffe_png_is_accepted_with_the_stem_resolution(tmp_path):
    path = tmp_path / "Mapple_2018-06-11_S1_20_2_009.png"
    Image.fromarray(scene_image(straight_front_zones(h=50, w=60, front_col=25)), mode="L").save(path)
    res = predict_scene(BrightnessRule(), path, tmp_path / "out", stride=8, min_front_length_m=200, overlay=False)
    assert res.crs is None and res.resolution_m == 20.0 and res.glacier == "Mapple"
    xy = shapely.get_coordinates(res.geometry)
    np.testing.assert_allclose(xy[:, 0], 25.5)
    assert res.length_m == pytest.approx(49 * 20.0)


# --------------------------------------------------------------------------------------------------------------
# real patches and the command line (smoke-preset TYRION with random weights)

@pytest.fixture(scope="module")
def smoke_checkpoint(tmp_path_factory):
    from ssl4sar.config import load_preset
    from ssl4sar.models.convert import save_checkpoint
    from ssl4sar.models.tyrion import Tyrion

    torch.manual_seed(0)
    model = Tyrion.from_config(load_preset("smoke")["model"])
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "smoke.pt", model)


@pytest.fixture(scope="module")
def smoke_checkpoint_96px(tmp_path_factory):
    """The smoke network for 96-px windows (an ensemble member that does not fit the 64-px one)."""
    from ssl4sar.config import load_preset
    from ssl4sar.models.convert import save_checkpoint
    from ssl4sar.models.tyrion import Tyrion

    torch.manual_seed(1)
    model = Tyrion.from_config({**load_preset("smoke")["model"], "img_size": 96, "window_size": 3})
    return save_checkpoint(tmp_path_factory.mktemp("ckpt96") / "smoke96.pt", model)


def test_cli_names_an_ensemble_member_of_another_input_size(smoke_checkpoint, smoke_checkpoint_96px, tmp_path,
                                                            caplog):
    # evaluate refused such an ensemble by name; predict ended in Tyrion's "expects input of shape" traceback
    from ssl4sar.cli import main

    scene = write_tif(tmp_path / "s.tif", scene_image(straight_front_zones(h=48, w=48)))
    out = tmp_path / "out"
    rc = main(["predict", str(scene), "--checkpoint", str(smoke_checkpoint), "--ensemble", str(smoke_checkpoint_96px),
               "--out", str(out), "--no-progress"])
    assert rc == 1
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and errors[0].startswith(f"{smoke_checkpoint_96px}: model input size 96 px differs "
                                                     f"from 64 px of {smoke_checkpoint}"), errors
    assert not any(out.glob("s*"))


def test_the_library_refuses_an_ensemble_of_two_input_sizes(smoke_checkpoint, smoke_checkpoint_96px, tmp_path):
    from ssl4sar.errors import DataError
    from ssl4sar.models.convert import load_model
    from ssl4sar.predict import predict_scene

    models = [load_model(smoke_checkpoint), load_model(smoke_checkpoint_96px)]
    scene = write_tif(tmp_path / "s.tif", scene_image(straight_front_zones(h=48, w=48)))
    with pytest.raises(DataError, match="ensemble member 2: model input size 96 px differs from 64 px of member 1"):
        predict_scene(models, scene, tmp_path / "out")
    with pytest.raises(DataError, match="ensemble member 1: model input size 64 px differs from 96 px"):
        predict_scene(models[:1], scene, tmp_path / "out", context_size=96)


@pytest.mark.parametrize("sample, epsg", [("sample_1948", 32622), ("sample_3325", 3031)])
def test_real_patch_through_the_cli(real_samples_dir, smoke_checkpoint, tmp_path, sample, epsg):
    from ssl4sar.cli import main

    img = real_samples_dir / f"{sample}_img.tif"
    with rasterio.open(img) as ds:
        crs, transform, shape = ds.crs, ds.transform, ds.shape
    out = tmp_path / "out"
    # 512 px at 6-6.7 m read at 48 m → a 64-70 px model grid (one smoke window), back on the 512 px grid
    rc = main(["predict", "--checkpoint", str(smoke_checkpoint), str(img), "--out", str(out),
               "--resolution-m", "48", "--to-wgs84", "--device", "cpu", "--min-front-length-m", "300"])
    assert rc == 0
    for key in ("zones", "probabilities", "uncertainty", "front"):
        with rasterio.open(out / f"{img.stem}_{key}.tif") as ds:
            assert ds.crs.to_epsg() == epsg == crs.to_epsg()
            assert ds.transform.almost_equals(transform) and ds.shape == shape
    fc = geo.read_geojson(out / f"{img.stem}_front.geojson")
    assert fc.crs.to_epsg() == epsg
    geom = fc.features[0].geometry
    if geom is not None:  # a random network may or may not produce a front; when it does it lies in the patch
        x, y = shapely.get_coordinates(geom).T
        left, top = transform.c, transform.f
        assert np.all((x >= left) & (x <= left + 512 * transform.a) & (y <= top) & (y >= top + 512 * transform.e))
    assert (out / "skipped.csv").read_text().strip() == "scene,reason"


def test_cli_exit_code_counts_failed_scenes(smoke_checkpoint, tmp_path):
    from ssl4sar.cli import main

    good = write_tif(tmp_path / "good.tif", scene_image(straight_front_zones(h=48, w=48, front_col=20)))
    nocrs = write_tif(tmp_path / "nocrs.tif", scene_image(straight_front_zones(h=48, w=48)), crs=None)
    rc = main(["predict", "--checkpoint", str(smoke_checkpoint), str(good), str(nocrs), str(tmp_path / "nope.tif"),
               "--out", str(tmp_path / "out"), "--no-overlay", "--stride", "32"])
    assert rc == 2
    assert (tmp_path / "out" / "good_zones.tif").is_file()


# (arguments, the phrase the one error line must hold): each used to end in a traceback at the first scene
# (ZeroDivisionError, "range() arg 3 must not be zero", ValueError) or to run silently wrong (a negative pixel
# spacing or minimum front length, a tile size of 0 or less read as tiles of one stride)
BAD_PREDICT_ARGUMENTS = {
    "stride 0": (["--stride", "0"], "stride must be in 1..32 px"),
    "stride too large": (["--stride", "1000"], "stride must be in 1..32 px"),
    "batch size 0": (["--batch-size", "0"], "batch size must be at least 1, got 0"),
    "resolution 0": (["--resolution-m", "0"], "resolution_m must be a positive number of m/px, got 0"),
    "resolution nan": (["--resolution-m", "nan"], "resolution_m must be a positive number of m/px, got nan"),
    "pixel size negative": (["--allow-no-crs", "--pixel-size-m", "-3"],
                            "pixel_size_m must be a positive number of m/px, got -3"),
    "tile size 0": (["--tile-size", "0"], "tile_size must be a positive number of px, got 0"),
    # infinity passed `> 0`: the model ran at an infinite spacing and wrote outputs with exit status 0
    "resolution infinite": (["--resolution-m", "inf"], "resolution_m must be a positive number of m/px, got inf"),
    "min front length infinite": (["--min-front-length-m", "inf"],
                                  "min_front_length_m must be 0 or more metres, got inf"),
    "min front length negative": (["--min-front-length-m", "-5"],
                                  "min_front_length_m must be 0 or more metres, got -5"),
    "empty value range": (["--value-range", "5", "5"], "value_range needs finite LO < HI, got (5, 5)"),
    # predict took only auto, cpu or cuda (no GPU index, unlike evaluate), through a check of its own
    "device not a device": (["--device", "foo"], "device 'foo': expected auto, cpu, cuda or cuda:N"),
    "gpu not there": (["--device", "cuda:99"], "device 'cuda:99'"),
}


@pytest.mark.parametrize("case", sorted(BAD_PREDICT_ARGUMENTS))
def test_cli_refuses_bad_settings_before_any_scene(smoke_checkpoint, tmp_path, caplog, case):
    from ssl4sar.cli import main

    args, phrase = BAD_PREDICT_ARGUMENTS[case]
    scenes = [write_tif(tmp_path / f"s{i}.tif", scene_image(straight_front_zones(h=48, w=48))) for i in range(2)]
    out = tmp_path / "out"
    rc = main(["predict", "--checkpoint", str(smoke_checkpoint), *map(str, scenes), "--out", str(out),
               "--no-progress", *args])
    assert rc == 2  # every scene counts as failed
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and phrase in errors[0], errors
    assert not any(out.glob("s*")), sorted(p.name for p in out.iterdir())  # no scene was read or written


def test_the_library_refuses_bad_settings_before_any_scene(tmp_path):
    """predict_scenes checks every setting before the first scene: a bad one is a SettingError (a ValueError)
    naming the argument, not a skipped scene or a failure halfway through a folder."""
    from ssl4sar.config import load_preset
    from ssl4sar.errors import SettingError
    from ssl4sar.models.tyrion import Tyrion

    torch.manual_seed(0)
    model = Tyrion.from_config(load_preset("smoke")["model"]).eval()
    scene = write_tif(tmp_path / "s.tif", scene_image(straight_front_zones(h=48, w=48)))
    for kwargs, phrase in [({"stride": 0}, "stride must be in 1..32 px"), ({"sigma": 0.0}, "sigma must be"),
                           ({"tile_size": -1}, "tile_size must be"), ({"resolution_m": -2.0}, "resolution_m must"),
                           ({"value_range": (3.0, 1.0)}, "value_range"), ({"min_front_length_m": math.nan},
                                                                          "min_front_length_m must")]:
        with pytest.raises(SettingError, match=phrase):
            predict_scenes(model, [scene], tmp_path / "out", **kwargs)
        with pytest.raises(SettingError, match=phrase):
            predict_scene(model, scene, tmp_path / "one", **kwargs)
    assert not any((tmp_path / "out").glob("s*")) and not (tmp_path / "one").exists()


# --------------------------------------------------------------------------------------------------------------
# many scenes into one folder: names that collide, and resuming an interrupted run

def test_scenes_with_the_same_name_are_refused_before_any_work(tmp_path):
    # a/scene.tif and b/scene.tif would both write scene_zones.tif …: the second silently replaced the first
    a = write_tif(tmp_path / "a" / "scene.tif", scene_image(straight_front_zones(front_col=30)))
    b = write_tif(tmp_path / "b" / "scene.tif", scene_image(straight_front_zones(front_col=60)))
    out = tmp_path / "out"
    with pytest.raises(DataError, match="same output name") as info:
        predict_scenes(BrightnessRule(), [a, b], out, stride=8, overlay=False)
    assert str(a) in str(info.value) and str(b) in str(info.value)
    assert not out.exists() or not any(out.iterdir())
    # the stem decides, not the suffix or (for case-insensitive file systems) the case
    c = write_tif(tmp_path / "c" / "Scene.tif", scene_image(straight_front_zones()))
    with pytest.raises(DataError, match="same output name"):
        predict_scenes(BrightnessRule(), [a, c], out, stride=8, overlay=False)
    # the same file named twice is predicted once
    run = predict_scenes(BrightnessRule(), [a, tmp_path / "a" / ".." / "a" / "scene.tif"], out, stride=8,
                         min_front_length_m=200, overlay=False)
    assert [r.stem for r in run.results] == ["scene"] and not run.skipped


class CountingRule(BrightnessRule):
    """BrightnessRule that counts its forward passes, and raises KeyboardInterrupt (a Ctrl-C, a kill) at pass
    ``interrupt_at``."""

    def __init__(self, interrupt_at: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.calls = 0
        self.interrupt_at = interrupt_at

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.interrupt_at is not None and self.calls >= self.interrupt_at:
            raise KeyboardInterrupt
        return super().forward(x)


def three_scenes(folder: Path) -> list[Path]:
    return [write_tif(folder / f"s{i}.tif", scene_image(straight_front_zones(front_col=col), seed=i))
            for i, col in enumerate((30, 45, 60))]


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path) as fh:
        return list(csv.DictReader(fh))


RESUME_KW = {"stride": 8, "min_front_length_m": 200, "overlay": False}


def test_an_interrupted_run_resumes_where_it_stopped(tmp_path):
    scenes = three_scenes(tmp_path / "in")
    full = predict_scenes(CountingRule(), scenes, tmp_path / "full", **RESUME_KW)

    # stopped during the second scene: the first is finished, recorded and listed; the second left no record
    out = tmp_path / "out"
    model = CountingRule()
    predict_scene(model, scenes[0], tmp_path / "probe", **RESUME_KW)
    passes_per_scene = model.calls
    with pytest.raises(KeyboardInterrupt):
        predict_scenes(CountingRule(interrupt_at=passes_per_scene + 2), scenes, out, **RESUME_KW)
    assert (out / "s0.prediction.json").is_file() and not (out / "s1.prediction.json").exists()
    assert [r["scene"] for r in _csv_rows(out / "predictions.csv")] == ["s0"]
    s0_zones_mtime = (out / "s0_zones.tif").stat().st_mtime_ns

    resumed_model = CountingRule()
    run = predict_scenes(resumed_model, scenes, out, resume=True, **RESUME_KW)
    assert run.reused == [scenes[0]] and not run.skipped
    assert resumed_model.calls == 2 * passes_per_scene  # s1 and s2 only
    assert (out / "s0_zones.tif").stat().st_mtime_ns == s0_zones_mtime
    # the same results as the uninterrupted run, the kept scene included (its front read back from its GeoJSON)
    assert [r.stem for r in run.results] == ["s0", "s1", "s2"]
    for a, b in zip(full.results, run.results):
        assert (a.length_m, a.n_front_pixels, a.mean_uncertainty, a.shape, a.crs) == \
               (b.length_m, b.n_front_pixels, b.mean_uncertainty, b.shape, b.crs)
        assert shapely.equals_exact(a.geometry, b.geometry, tolerance=0.0)
    assert [r["scene"] for r in _csv_rows(out / "predictions.csv")] == ["s0", "s1", "s2"]
    for i in range(3):
        with rasterio.open(tmp_path / "full" / f"s{i}_zones.tif") as x, rasterio.open(out / f"s{i}_zones.tif") as y:
            np.testing.assert_array_equal(x.read(), y.read())

    # a second resume predicts nothing
    again = CountingRule()
    assert predict_scenes(again, scenes, out, resume=True, **RESUME_KW).reused == scenes and again.calls == 0


class SlowRule(BrightnessRule):
    """BrightnessRule whose every forward pass takes at least ``seconds`` (a slow network)."""

    def __init__(self, seconds: float, **kwargs) -> None:
        super().__init__(**kwargs)
        self.seconds = seconds

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(self.seconds)
        return super().forward(x)


def test_each_scene_reports_its_seconds_in_the_windows_and_on_the_outputs(tmp_path):
    scenes = three_scenes(tmp_path / "in")
    out = tmp_path / "out"
    model = SlowRule(0.02)
    run = predict_scenes(model, scenes[:2], out, **RESUME_KW)
    rows = _csv_rows(out / "predictions.csv")
    for res, row in zip(run.results, rows, strict=True):
        assert res.windows_s >= 0.02 and res.outputs_s > 0  # each forward pass sleeps 20 ms
        assert float(row["windows_s"]) == pytest.approx(res.windows_s, abs=1e-3)
        assert float(row["outputs_s"]) == pytest.approx(res.outputs_s, abs=1e-3)
    # a scene kept by --resume keeps the seconds it took when it was predicted
    again = predict_scenes(SlowRule(0.02), scenes, out, resume=True, **RESUME_KW)
    assert again.reused == scenes[:2]
    for before, kept in zip(run.results, again.results[:2]):
        assert (kept.windows_s, kept.outputs_s) == (before.windows_s, before.outputs_s)
    assert [float(r["windows_s"]) > 0 for r in _csv_rows(out / "predictions.csv")] == [True] * 3


def test_resume_predicts_again_what_is_not_the_same(tmp_path):
    scenes = three_scenes(tmp_path / "in")
    out = tmp_path / "out"
    predict_scenes(CountingRule(), scenes, out, **RESUME_KW)

    def redone(model=None, **kw) -> list[str]:
        run = predict_scenes(model or CountingRule(), scenes, out, resume=True, **{**RESUME_KW, **kw})
        return [p.name for p in scenes if p not in run.reused]

    assert redone() == []
    # settings that change no output do not count; a default given explicitly neither
    assert redone(tile_size=16, batch_size=3, rotations=(0,)) == []
    # other settings: everything again (and the records now describe the new settings)
    assert redone(min_front_length_m=100) == ["s0.tif", "s1.tif", "s2.tif"]
    assert redone(min_front_length_m=100) == []
    # other weights (a buffer of the stand-in network)
    other = CountingRule()
    other.levels.mul_(1.01)
    assert redone(other, min_front_length_m=100) == ["s0.tif", "s1.tif", "s2.tif"]
    assert redone(min_front_length_m=100) == ["s0.tif", "s1.tif", "s2.tif"]
    # a changed input file; a touched but identical one is kept (its sha256 decides)
    write_tif(scenes[1], scene_image(straight_front_zones(front_col=20), seed=9))
    touched = scenes[2].stat()
    os.utime(scenes[2], ns=(touched.st_atime_ns, touched.st_mtime_ns + 5_000_000_000))
    assert redone(min_front_length_m=100) == ["s1.tif"]
    # a missing output, and a record damaged (a truncated write by some other tool) or of another format
    (out / "s0_probabilities.tif").unlink()
    text = (out / "s1.prediction.json").read_text()
    (out / "s1.prediction.json").write_text(text[: len(text) // 2])
    (out / "s2.prediction.json").write_text(json.dumps({"format": "something-else"}))
    assert redone(min_front_length_m=100) == ["s0.tif", "s1.tif", "s2.tif"]
    assert redone(min_front_length_m=100) == []
    # an output damaged after it was written (an interrupted copy of the folder): it was kept
    with (out / "s1_zones.tif").open("r+b") as f:
        f.truncate(100)
    assert redone(min_front_length_m=100) == ["s1.tif"]
    assert redone(min_front_length_m=100) == []
    # a scene skipped as bad earlier is tried again, and still reported
    bad = tmp_path / "in" / "bad.tif"
    bad.write_bytes(b"II*\x00 not a tiff")
    run = predict_scenes(CountingRule(), [*scenes, bad], out, resume=True, **{**RESUME_KW, "min_front_length_m": 100})
    assert run.reused == scenes and [p for p, _ in run.skipped] == [bad]
    assert [r["scene"] for r in _csv_rows(out / "skipped.csv")] == [str(bad)]


def test_a_scene_predicted_again_loses_its_record_first(tmp_path):
    # settings B stopped inside s0: s0's outputs may be half A, half B; a resume with A must not keep them
    scenes = three_scenes(tmp_path / "in")
    out = tmp_path / "out"
    predict_scenes(CountingRule(), scenes, out, **RESUME_KW)
    with pytest.raises(KeyboardInterrupt):
        predict_scenes(CountingRule(interrupt_at=1), scenes, out, **{**RESUME_KW, "stride": 16})
    assert not (out / "s0.prediction.json").exists()
    run = predict_scenes(CountingRule(), scenes, out, resume=True, **RESUME_KW)
    assert run.reused == scenes[1:]


def test_resume_arguments_are_checked(tmp_path):
    scenes = three_scenes(tmp_path / "in")
    with pytest.raises(ValueError, match="choose one"):
        predict_scenes(CountingRule(), scenes, tmp_path / "o", replace=True, resume=True)
    with pytest.raises(ValueError, match="torch.nn.Module"):
        predict_scenes(lambda x: x, scenes, tmp_path / "o", resume=True)
    with pytest.raises(TypeError, match="strid"):
        predict_scenes(CountingRule(), scenes, tmp_path / "o", strid=8)
    assert not (tmp_path / "o").exists()


def test_models_digest_ignores_the_memory_layout_and_sees_every_weight():
    import copy

    from ssl4sar.prediction_records import models_sha256

    torch.manual_seed(0)
    a, b = torch.nn.Conv2d(3, 8, 3), torch.nn.Conv2d(3, 8, 3)
    digest = models_sha256([a, b])
    assert models_sha256([copy.deepcopy(a).to(memory_format=torch.channels_last), b]) == digest
    assert models_sha256([b, a]) != digest  # members in order
    nudged = copy.deepcopy(a)
    with torch.no_grad():
        nudged.weight[7, 2, 2, 2] = torch.nextafter(nudged.weight[7, 2, 2, 2], torch.tensor(1.0))
    assert models_sha256([nudged, b]) != digest
    assert models_sha256([a.to(torch.bfloat16), b]) != digest
    assert models_sha256([a, lambda x: x]) is None


def test_cli_resume_keeps_finished_scenes_and_refuses_clashing_names(smoke_checkpoint, tmp_path, caplog):
    from ssl4sar.cli import main

    scenes = [write_tif(tmp_path / "in" / f"s{i}.tif", scene_image(straight_front_zones(h=48, w=48, front_col=20),
                                                                    seed=i)) for i in range(2)]
    out = tmp_path / "out"
    args = ["predict", *map(str, scenes), "--checkpoint", str(smoke_checkpoint), "--out", str(out),
            "--no-overlay", "--stride", "32", "--no-progress"]
    assert main(args) == 0
    mtimes = [(out / f"s{i}_zones.tif").stat().st_mtime_ns for i in range(2)]
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert main([*args, "--resume"]) == 0
    assert "kept 2 scene(s)" in caplog.text and "predicted 0 scene(s)" in caplog.text
    assert [(out / f"s{i}_zones.tif").stat().st_mtime_ns for i in range(2)] == mtimes
    # another stride is another prediction
    with caplog.at_level(logging.INFO):
        assert main([*args[:-3], "--stride", "16", "--no-progress", "--resume"]) == 0
    assert "the settings differ from the earlier run's (stride)" in caplog.text

    clash = write_tif(tmp_path / "other" / "s0.tif", scene_image(straight_front_zones(h=48, w=48)))
    caplog.clear()
    assert main([*args[:3], str(clash), *args[3:]]) == 3  # nothing predicted: every scene counts as failed
    assert "same output name" in caplog.text and str(clash) in caplog.text


def test_a_scene_that_vanishes_during_its_prediction_gets_no_record(tmp_path, caplog):
    # its outputs are written from the open file; no identity can be recorded, so a resume predicts it again
    scenes = three_scenes(tmp_path / "in")

    class DeletesTheFirstScene(CountingRule):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            scenes[0].unlink(missing_ok=True)
            return super().forward(x)

    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING):
        run = predict_scenes(DeletesTheFirstScene(), scenes, out, **RESUME_KW)
    assert [r.stem for r in run.results] == ["s0", "s1", "s2"]
    assert not (out / "s0.prediction.json").exists() and (out / "s1.prediction.json").is_file()
    assert f"{scenes[0]}: no record written" in caplog.text


_KILLED_RUN = """
import os, signal, sys
from pathlib import Path
import torch
from ssl4sar.predict import predict_scenes

class Level(torch.nn.Module):  # glacier where bright, ocean where dark; SIGKILL at forward pass n
    img_size, num_classes, calls = 32, 4, 0
    def __init__(self):
        super().__init__()
        self.register_buffer("levels", torch.tensor([0.0, 240.0, 170.0, 40.0]).view(1, 4, 1, 1) / 255.0)
    def forward(self, x):
        Level.calls += 1
        if Level.calls == int(sys.argv[3]):
            os.kill(os.getpid(), signal.SIGKILL)
        return -((x - self.levels) / 0.12) ** 2

predict_scenes(Level(), sys.argv[4:], sys.argv[1], tile_size=int(sys.argv[2]), stride=8, overlay=False,
               min_front_length_m=200)
"""


def test_a_killed_tiled_run_leaves_nothing_behind_once_resumed(tmp_path):
    import subprocess
    import sys

    scenes = three_scenes(tmp_path / "in")
    out = tmp_path / "out"
    # tiles of 32 px: the scene's mean and std live in memory-mapped files in a hidden folder of out/ until it is done
    proc = subprocess.run([sys.executable, "-c", _KILLED_RUN, str(out), "32", "40", *map(str, scenes)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    leftovers = [p.name for p in out.iterdir() if p.name.startswith(".")]
    assert leftovers, "the kill should have left the scene's temporary folder"
    run = predict_scenes(CountingRule(), scenes, out, resume=True, tile_size=32, **RESUME_KW)
    assert len(run.results) == 3 and not run.skipped
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []


def test_only_the_scenes_own_leftovers_are_removed(tmp_path):
    scene = write_tif(tmp_path / "in" / "s0.tif", scene_image(straight_front_zones()))
    out = tmp_path / "out"
    (out / ".s0.ab_d1234").mkdir(parents=True)                    # tiles' memory maps of a killed run
    (out / ".s0.ab_d1234" / "mean.npy").write_bytes(b"\0" * 64)
    leftovers = [".s0_zones.abcdefgh.part.tif", ".s0_front_wgs84.0123abcd.part.geojson",
                 ".s0.prediction.x1y2z3w4.part.json"]
    kept = [".s0_notes.txt", ".s0.abc", ".s01.abcdefgh", ".s1_zones.abcdefgh.part.tif", "s0.abcdefgh"]
    for name in leftovers + kept:
        (out / name).write_text("x")
    predict_scene(BrightnessRule(), scene, out, stride=8, min_front_length_m=200, overlay=False)
    hidden = sorted(p.name for p in out.iterdir() if p.name.startswith(".") or p.name.startswith("s0."))
    assert hidden == sorted(kept)


# --------------------------------------------------------------------------------------------------------------
# what a record must hold: the network's configuration, the window settings used, the input as it was read

def test_resume_predicts_again_with_a_network_built_otherwise_from_the_same_weights(tmp_path):
    # Tyrion's img_size and window_size change its output but not its state dict (the relative-position tables are
    # non-persistent buffers): kept outputs would be another network's
    from ssl4sar.config import load_preset
    from ssl4sar.models.tyrion import Tyrion
    from ssl4sar.prediction_records import models_sha256

    cfg = load_preset("smoke")["model"]
    torch.manual_seed(0)
    model = Tyrion.from_config(cfg).eval()
    scene = write_tif(tmp_path / "in" / "s0.tif", scene_image(straight_front_zones(h=48, w=48, front_col=20)))
    out = tmp_path / "out"
    kw = {"stride": 32, "overlay": False}
    predict_scenes(model, [scene], out, **kw)
    twin = Tyrion.from_config(cfg).eval()
    twin.load_state_dict(model.state_dict())
    assert predict_scenes(twin, [scene], out, resume=True, **kw).reused == [scene]
    for key, value in (("window_size", 8), ("img_size", 128)):
        other = Tyrion.from_config({**cfg, key: value}).eval()
        other.load_state_dict(model.state_dict())
        assert predict_scenes(other, [scene], out, resume=True, **kw).reused == [], key
        assert models_sha256([other]) != models_sha256([model]), key
        assert predict_scenes(model, [scene], out, resume=True, **kw).reused == [], key  # the first one's again


def _state_only_digest(model: torch.nn.Module) -> str:
    """The models' digest of records written before the configuration was part of it: class and state only."""
    import hashlib

    h = hashlib.sha256()
    h.update(f"member 0: {type(model).__module__}.{type(model).__qualname__}\n".encode())
    for name, t in model.state_dict().items():
        h.update(f"{name} {t.dtype} {tuple(t.shape)}\n".encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def test_records_of_the_older_models_digest_are_predicted_again(tmp_path):
    # such a record cannot say which configuration made its outputs
    scenes = three_scenes(tmp_path / "in")[:2]
    out = tmp_path / "out"
    predict_scenes(CountingRule(), scenes, out, **RESUME_KW)
    record = out / "s0.prediction.json"
    old = json.loads(record.read_text())
    old["models_sha256"] = _state_only_digest(CountingRule())
    record.write_text(json.dumps(old))
    assert predict_scenes(CountingRule(), scenes, out, resume=True, **RESUME_KW).reused == scenes[1:]


def test_a_record_holds_the_window_settings_used(tmp_path):
    # context_size, stride and σ default to values of the network (C = img_size, C / 4, C / 16): the record holds
    # those, so that a network of another img_size is another prediction and explicit defaults are the same one
    scenes = three_scenes(tmp_path / "in")[:1]
    kw = {"min_front_length_m": 200, "overlay": False}
    out = tmp_path / "out"
    predict_scenes(CountingRule(), scenes, out, **kw)
    settings = json.loads((out / "s0.prediction.json").read_text())["settings"]
    assert (settings["context_size"], settings["stride"], settings["sigma"]) == (32, 8, 2.0)
    explicit = {**kw, "context_size": 32, "stride": 8, "sigma": 2.0}
    assert predict_scenes(CountingRule(), scenes, out, resume=True, **explicit).reused == scenes
    predict_scenes(CountingRule(), scenes, tmp_path / "explicit", **explicit)
    assert _read(out / "s0_probabilities.tif").tobytes() == _read(tmp_path / "explicit" / "s0_probabilities.tif"
                                                                   ).tobytes()
    assert predict_scenes(CountingRule(context_size=48), scenes, out, resume=True, **kw).reused == []


def test_a_scene_replaced_while_it_is_predicted_is_predicted_again(tmp_path, monkeypatch):
    # the record must describe the file as it was read, not as it is when the record is written
    import functools

    import ssl4sar.predict as predict_module

    scenes = three_scenes(tmp_path / "in")
    real = predict_module.predict_scene

    @functools.wraps(real)
    def replacing(models, path, out_dir, **kwargs):
        result = real(models, path, out_dir, **kwargs)
        if Path(path) == scenes[1]:  # its outputs are made: a new version arrives (written aside, moved over it)
            new = write_tif(tmp_path / "new.tif", scene_image(straight_front_zones(front_col=20), seed=9))
            os.replace(new, scenes[1])
        return result

    monkeypatch.setattr(predict_module, "predict_scene", replacing)
    out = tmp_path / "out"
    predict_scenes(CountingRule(), scenes, out, **RESUME_KW)
    monkeypatch.undo()
    run = predict_scenes(CountingRule(), scenes, out, resume=True, **RESUME_KW)
    assert run.reused == [scenes[0], scenes[2]]
    predict_scenes(CountingRule(), scenes[1:2], tmp_path / "fresh", **RESUME_KW)
    np.testing.assert_array_equal(_read(out / "s1_zones.tif"), _read(tmp_path / "fresh" / "s1_zones.tif"))


# --------------------------------------------------------------------------------------------------------------
# the outputs of a prediction given back as scenes (`predict scenes/*.tif --out scenes`, run a second time)

def test_outputs_of_a_prediction_are_left_out_when_given_as_scenes(tmp_path):
    """Before: each output raster (zones, probabilities, uncertainty, front mask) and the overlay PNG was predicted
    as if it were a SAR scene (band 1 as the amplitude), writing ``scene_zones_zones.tif`` and so on, and listed in
    predictions.csv as a scene."""
    folder = tmp_path / "scenes"
    scene = write_tif(folder / "good.tif", scene_image(straight_front_zones()))
    first = predict_scenes(BrightnessRule(), [scene], folder, stride=8, min_front_length_m=200)
    outputs = sorted(p for p in folder.iterdir() if p.suffix in (".tif", ".png") and p != scene)
    assert [p.name for p in outputs] == ["good_front.tif", "good_overlay.png", "good_probabilities.tif",
                                         "good_uncertainty.tif", "good_zones.tif"]
    before = sorted(p.name for p in folder.iterdir())
    run = predict_scenes(BrightnessRule(), sorted(folder.glob("*.tif")) + sorted(folder.glob("*.png")), folder,
                         stride=8, min_front_length_m=200, pixel_size_m=20.0)
    assert [r.stem for r in run.results] == ["good"] and run.skipped == []
    assert sorted(p.name for p in run.left_out) == [p.name for p in outputs]
    assert sorted(p.name for p in folder.iterdir()) == before          # no good_zones_zones.tif & co.
    assert [r["scene"] for r in _csv_rows(folder / "predictions.csv")] == ["good"]
    assert _csv_rows(folder / "skipped.csv") == []
    assert run.results[0].length_m == first.results[0].length_m
    # one such file named on its own is refused, naming it and what it is
    with pytest.raises(DataError, match=r"good_zones\.tif.*output of ssl4sar predict \(zones\)"):
        predict_scene(BrightnessRule(), folder / "good_zones.tif", tmp_path / "again", stride=8)


def test_outputs_written_before_they_were_marked_are_recognised_by_their_tags(tmp_path):
    from ssl4sar.data.scenes import predict_output_kind

    zones = write_tif(tmp_path / "old_zones.tif", straight_front_zones(),
                      tags={"scene": "old", "classes": "0 NA, 1 rock, 2 glacier, 3 ocean + ice melange"})
    front = write_tif(tmp_path / "old_front.tif", np.zeros((70, 90), np.uint8),
                      tags={"scene": "old", "front": "255 = calving front"})
    probs = write_tif(tmp_path / "old_probabilities.tif", scene_image(straight_front_zones()),
                      tags={"scene": "old", "n_maps": "1", "rotations": "0", "flips": "False"})
    plain = write_tif(tmp_path / "plain.tif", scene_image(straight_front_zones()), tags={"scene": "x"})
    assert [predict_output_kind(p) for p in (zones, front, probs, plain, tmp_path / "missing.tif")] == \
        ["zones", "front_mask", "probabilities or uncertainty", None, None]


def test_cli_leaves_out_outputs_and_exits_0(smoke_checkpoint, tmp_path, caplog):
    from ssl4sar.cli import main

    folder = tmp_path / "scenes"
    good = write_tif(folder / "good.tif", scene_image(straight_front_zones(h=48, w=48, front_col=20)))
    args = ["predict", "--checkpoint", str(smoke_checkpoint), "--out", str(folder), "--no-overlay", "--stride", "32"]
    assert main([*args, str(good)]) == 0
    with caplog.at_level(logging.INFO):
        assert main([*args, *map(str, sorted(folder.glob("*.tif")))]) == 0
    assert "left out 4 file(s) that ssl4sar predict wrote" in caplog.text and "good_zones.tif" in caplog.text
    assert not list(folder.glob("good_*_zones.tif"))


def test_a_scene_that_an_output_would_overwrite_is_refused_before_any_work(tmp_path):
    """A scene named like another scene's output (``a_zones.tif`` beside ``a.tif``), predicted into its own folder:
    before, ``a``'s zones raster replaced the scene ``a_zones.tif``; the data was lost."""
    folder = tmp_path / "scenes"
    a = write_tif(folder / "a.tif", scene_image(straight_front_zones()))
    a_zones = write_tif(folder / "a_zones.tif", scene_image(straight_front_zones(front_col=50), seed=1))
    data = a_zones.read_bytes()
    with pytest.raises(DataError, match=r"a_zones\.tif.*would be overwritten by the zones output of .*a\.tif"):
        predict_scenes(BrightnessRule(), [a, a_zones], folder, stride=8, min_front_length_m=200, overlay=False)
    assert a_zones.read_bytes() == data and sorted(p.name for p in folder.iterdir()) == ["a.tif", "a_zones.tif"]
    run = predict_scenes(BrightnessRule(), [a, a_zones], tmp_path / "out", stride=8, min_front_length_m=200,
                         overlay=False)
    assert [r.stem for r in run.results] == ["a", "a_zones"] and run.left_out == []
    # a file that cannot be a scene (GeoJSON) is not protected so: it is skipped as unreadable, as any such file
    geojson = folder / "a_front.geojson"
    geojson.write_text('{"type": "FeatureCollection", "features": []}')
    run = predict_scenes(BrightnessRule(), [a, geojson], folder, stride=8, min_front_length_m=200, overlay=False)
    assert [r.stem for r in run.results] == ["a"] and [p.name for p, _ in run.skipped] == ["a_front.geojson"]


def test_a_scene_georeferenced_by_control_points_only_is_told_to_be_warped(tmp_path, caplog):
    """A Sentinel-1 GRD measurement file locates its pixels by ground control points, with no map grid. Before, it
    was refused as a raster without CRS, and the advice (assign a CRS) would have given it a 1 m grid in pixel
    units; the advice was not even shown when several scenes were predicted."""
    from rasterio.control import GroundControlPoint

    path = tmp_path / "s1_grd.tif"
    gcps = [GroundControlPoint(r, c, -50.0 + c / 3000, 69.2 - r / 4000) for r in (0, 70) for c in (0, 90)]
    with rasterio.open(path, "w", driver="GTiff", height=70, width=90, count=1, dtype="uint8", gcps=gcps,
                       crs="EPSG:4326") as ds:
        ds.write(scene_image(straight_front_zones()), 1)
    with pytest.raises(DataError, match="4 ground control points") as err:
        predict_scene(BrightnessRule(), path, tmp_path / "out", stride=8)
    assert "gdalwarp -t_srs" in str(err.value.hint)
    with caplog.at_level(logging.ERROR):
        run = predict_scenes(BrightnessRule(), [path], tmp_path / "out", stride=8, overlay=False)
    assert [p for p, _ in run.skipped] == [path]
    assert "gdalwarp -t_srs" in caplog.text          # the way out reaches the log of a many-scene run
    # pixel coordinates remain possible on request
    res = predict_scene(BrightnessRule(), path, tmp_path / "px", allow_no_crs=True, pixel_size_m=20.0, stride=8,
                        min_front_length_m=200, overlay=False)
    assert res.crs is None


# --------------------------------------------------------------------------------------------------------------
# a full disk

def test_a_full_disk_stops_the_run_before_a_scene_is_written(tmp_path, monkeypatch):
    """Before: GDAL's failed writes were not noticed, so the scene's rasters were renamed into place truncated or
    empty (0 bytes), and the GeoJSON's OSError ended the command in a traceback. Now each scene checks that the
    space its outputs can take at most (their uncompressed size) is free before it writes one, and a full disk
    stops the run (every later scene would fail alike), keeping the scenes finished before."""
    import ssl4sar.predict as predict_module
    from ssl4sar.errors import DiskFull

    scenes = three_scenes(tmp_path / "in")
    out = tmp_path / "out"
    free = iter([10**12, 1000, 10**12])                 # the second scene finds the disk full
    monkeypatch.setattr(predict_module, "free_disk_bytes", lambda folder: next(free))
    full = r"no space for the outputs of s1\.tif: they can take up to [\d.]+ MB.*1 kB are free"
    with pytest.raises(DiskFull, match=full) as err:
        predict_scenes(BrightnessRule(), scenes, out, stride=8, min_front_length_m=200, overlay=False)
    assert err.value.path == out and "--resume" in err.value.hint
    written = sorted(p.name for p in out.iterdir())
    assert [n for n in written if n.startswith("s1")] == []                 # nothing of the scene that did not fit
    assert {"s0_zones.tif", "s0.prediction.json"} <= set(written)            # the scene before it is kept
    assert [r["scene"] for r in _csv_rows(out / "predictions.csv")] == ["s0"]


def test_no_space_while_writing_is_a_full_disk_too(tmp_path, monkeypatch):
    import errno

    import ssl4sar.predict as predict_module
    from ssl4sar.errors import DiskFull

    scene = three_scenes(tmp_path / "in")[0]

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(predict_module.geo, "write_geojson", full)
    with pytest.raises(DiskFull, match="no space left on the device"):
        predict_scenes(BrightnessRule(), [scene], tmp_path / "out", stride=8, min_front_length_m=200, overlay=False)
    assert not (tmp_path / "out" / "s0.prediction.json").exists()           # a resumed run predicts it again


def test_the_tiles_memory_maps_reserve_their_disk_space(tmp_path, monkeypatch):
    """Before: the memory maps of a tiled run were sparse files; a disk that filled up while they were written
    killed the process with SIGBUS ("Bus error", exit status 135), without a word."""
    import errno

    import ssl4sar.io as io_module
    from ssl4sar.errors import DiskFull

    scene = three_scenes(tmp_path / "in")[0]
    reserved = []

    def fallocate(fd, offset, length):
        reserved.append(length)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(io_module.os, "posix_fallocate", fallocate)
    with pytest.raises(DiskFull, match=r"memory map"):
        predict_scene(BrightnessRule(), scene, tmp_path / "out", stride=8, min_front_length_m=200, overlay=False,
                      tile_size=32)
    assert reserved and reserved[0] >= 4 * 70 * 90 * 4        # the whole (K, H, W) float32 array, at once
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == []       # the memory-map folder is gone


def test_cli_reports_a_full_disk_in_one_line(smoke_checkpoint, tmp_path, monkeypatch, caplog):
    import ssl4sar.predict as predict_module
    from ssl4sar.cli import main

    good = write_tif(tmp_path / "good.tif", scene_image(straight_front_zones(h=48, w=48, front_col=20)))
    monkeypatch.setattr(predict_module, "free_disk_bytes", lambda folder: 0)
    with caplog.at_level(logging.ERROR):
        rc = main(["predict", "--checkpoint", str(smoke_checkpoint), str(good), "--out", str(tmp_path / "out"),
                   "--no-overlay", "--stride", "32"])
    assert rc == 1
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "no space" in errors[0].getMessage() and errors[0].exc_info is None
