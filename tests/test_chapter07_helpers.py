"""What chapter 7 calls to walk through a time series: the folder check and read, both methods at once,
references and fronts in a scene's CRS, the written rasters described, the EPSG:4326 fronts read back, the model
choice and its note."""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from fakes import write_geotiff
from rasterio.transform import Affine
from shapely.geometry import LineString

from ssl4sar import application, experiments, geo, timeseries
from ssl4sar.book import WorkLayout
from ssl4sar.data.synthetic import generate_time_series
from ssl4sar.errors import DataError
from ssl4sar.inference_settings import InferenceSettings
from ssl4sar.prediction_writers import describe_outputs, describe_rasters, geographic_fronts, text_excerpt


@pytest.fixture(scope="module")
def series_dir(tmp_path_factory) -> Path:
    return generate_time_series(tmp_path_factory.mktemp("ts"), n_dates=4, seed=0, shape=(128, 128))


def test_series_scenes_checks_the_folder(series_dir: Path, tmp_path: Path) -> None:
    scenes = timeseries.series_scenes(series_dir)
    assert [p.name for p in scenes] == sorted(p.name for p in (series_dir / "sar").glob("*.tif")) and len(scenes) == 4
    broken = shutil.copytree(series_dir, tmp_path / "ts")
    (broken / "centreline.geojson").unlink()
    with pytest.raises(DataError, match="centreline.geojson"):
        timeseries.series_scenes(broken)
    for scene in (broken / "sar").glob("*.tif"):
        scene.unlink()
    (broken / "centreline.geojson").write_text((series_dir / "centreline.geojson").read_text())
    with pytest.raises(DataError, match=r"no scenes \(\*\.tif\)"):
        timeseries.series_scenes(broken)


def test_series_by_method_equals_each_method_alone(series_dir: Path) -> None:
    masks = sorted((series_dir / "fronts").glob("*_front.tif"))
    both = timeseries.series_by_method(masks, series_dir)
    assert list(both) == ["box", "centreline"]
    pd.testing.assert_frame_equal(both["box"], timeseries.front_time_series(
        masks, box=series_dir / "reference_box.geojson"))
    pd.testing.assert_frame_equal(both["centreline"], timeseries.front_time_series(
        masks, centreline=series_dir / "centreline.geojson"))


def test_references_and_fronts_in_a_scene_crs(series_dir: Path) -> None:
    box, box_crs, _ = timeseries.read_reference(series_dir / "reference_box.geojson")
    refs = timeseries.references_in(series_dir, "EPSG:4326")
    assert list(refs) == ["reference box", "centreline"]
    back = geo.reproject_geometry(refs["reference box"], "EPSG:4326", box_crs)
    assert back.hausdorff_distance(box) < 0.01   # metres: the round trip lands on the box
    obs = timeseries.load_fronts(sorted((series_dir / "fronts").glob("*_front.geojson")))
    geoms, dates = timeseries.fronts_in(obs, obs[0].crs)
    assert dates == [o.date.isoformat() for o in obs] and dates[0] == "2019-01-05"
    assert all(g.equals(o.geometry) for g, o in zip(geoms, obs))


def test_describe_rasters_and_geographic_fronts(tmp_path: Path) -> None:
    transform = Affine(6.0, 0.0, 500_000.0, 0.0, -6.0, 7_660_000.0)
    scene = write_geotiff(tmp_path / "p1_img.tif", np.full((8, 10), 7, np.uint8), crs="EPSG:32622", transform=transform)
    table = describe_rasters([scene])
    assert table.iloc[0][["file", "CRS", "size (H × W)", "bands", "dtype", "pixel (m)"]].tolist() == [
        "p1_img.tif", "EPSG:32622", "8 × 10", 1, "uint8", 6.0]
    front = LineString([(-50.12345678, 69.2), (-50.1, 69.21)])
    wgs = geo.write_geojson(tmp_path / "p1_img_front_wgs84.geojson", [(front, {})], "EPSG:4326")
    (tmp_path / "metadata.csv").write_text("id,glacier,date\np1,Jakobshavn Glacier / Sermeq Kujalleq,2011-05-02\n")
    result = SimpleNamespace(stem="p1_img", outputs={"front_wgs84": wgs}, crs="EPSG:32622", resolution_m=20.0,
                             model_shape=(3, 3), n_front_pixels=5, length_m=123.4, path=scene)
    rows, panels = geographic_fronts([result], tmp_path / "metadata.csv")
    row = rows.iloc[0]
    assert (row["patch"], row["glacier"], row["date"]) == ("p1", "Jakobshavn Glacier", "2011-05-02")
    assert row["first front vertex (lon, lat)"] == (-50.1235, 69.2) and row["front length (m)"] == 123
    assert row["model grid (px)"] == "3×3"
    assert panels[0]["front"].equals(front) and panels[0]["sar"].shape == (8, 10)
    assert panels[0]["title"] == "p1: Jakobshavn Glacier\n2011-05-02, EPSG:32622"
    no_meta, _ = geographic_fronts([result])
    assert no_meta.iloc[0]["glacier"] == ""


def test_choose_checkpoint_and_model_note(tmp_path: Path) -> None:
    layout = WorkLayout(tmp_path)
    with pytest.raises(FileNotFoundError, match="finetune/runs.csv"):
        experiments.choose_checkpoint(layout)
    layout.finetune.mkdir(parents=True)
    pd.DataFrame({"init": ["scratch", "optsimmim"], "seed": [0, 0], "val_mde_m": [300.04, 250.0],
                  "val_fronts_found": [2, 2], "test_mde_m": [400.0, 999.0], "fronts_found": [3, 1],
                  "checkpoint": ["work_dir/finetune/scratch/seed0/best_mde.pt",
                                 "work_dir/finetune/optsimmim/seed0/best_mde.pt"]}).to_csv(layout.finetune_runs_csv,
                                                                                          index=False)
    path, table = experiments.choose_checkpoint(layout)
    assert path == tmp_path / "finetune" / "optsimmim" / "seed0" / "best_mde.pt"   # lower validation MDE
    assert list(table.columns) == list(experiments.CHOICE_COLUMNS) and table["selected"].tolist() == [False, True]
    assert table["val_mde_m"].tolist() == [300.0, 250.0]
    with pytest.raises(FileNotFoundError, match="work_dir/missing.pt"):
        experiments.choose_checkpoint(layout, tmp_path / "missing.pt")
    given = tmp_path / "model.pt"
    given.write_bytes(b"x")
    assert experiments.choose_checkpoint(layout, given) == (given, None)
    settings = InferenceSettings(context_size=64, stride=32, sigma=8.0, batch_size=2, rotations=(0, 1, 2, 3))
    note = experiments.model_note(layout, [path], 64, settings, "demo")
    assert note.startswith("Model: 1 member(s), `work_dir/finetune/optsimmim/seed0/best_mde.pt` (64 px input), on "
                           "`cpu` in float32; windows of 64 px every 32 px, Gaussian σ 8 px, test-time augmentation "
                           "with the rotations [0, 1, 2, 3].")
    bf16 = experiments.model_note(layout, [path], 64, InferenceSettings(64, 32, 8.0, 2, amp_dtype="bfloat16"), "demo")
    assert "on `cpu` with bfloat16 autocast;" in bf16
    assert "a small network" in note and str(tmp_path) not in note
    plain = experiments.model_note(layout, [path], 64, InferenceSettings(64, 32, 8.0, 2), "paper")
    assert "no test-time augmentation." in plain and plain.endswith("model of this build**.")


def test_truth_series_files_and_positions_table(series_dir: Path, tmp_path: Path) -> None:
    truth = timeseries.read_truth(series_dir)
    assert truth is not None and truth["date"].dt.year.iloc[0] == 2019 and truth["position_m"].iloc[0] == 0.0
    assert timeseries.read_truth(tmp_path) is None
    series = timeseries.series_by_method(sorted((series_dir / "fronts").glob("*_front.tif")), series_dir)
    paths = timeseries.write_series(series, tmp_path, "truth_masks_positions")
    assert [p.name for p in paths] == ["truth_masks_positions_box.csv", "truth_masks_positions_centreline.csv"]
    assert len(pd.read_csv(paths[0])) == len(series["box"])
    table = timeseries.positions_table(series)
    assert list(table.columns) == [("position_m", "box"), ("position_m", "centreline"), ("position_std_m", "box"),
                                   ("position_std_m", "centreline")]
    assert table[("position_m", "box")].tolist() == series["box"]["position_m"].round(1).tolist()


def test_predict_kwargs_with_and_without_tta() -> None:
    # the preset's inference.precision reaches predict_scenes (chapter 07 predicted in float32 whatever it said)
    settings = InferenceSettings(64, 32, 8.0, 2, rotations=(0, 1, 2, 3), flips=True, device="cpu", amp_dtype="bfloat16")
    assert settings.predict_kwargs() == {"rotations": (0, 1, 2, 3), "flips": True, "context_size": 64, "stride": 32,
                                         "sigma": 8.0, "batch_size": 2, "device": "cpu", "amp_dtype": torch.bfloat16}
    plain = settings.predict_kwargs(tta=False)
    assert plain["rotations"] == (0,) and plain["flips"] is False and plain["amp_dtype"] is torch.bfloat16
    assert InferenceSettings(64, 32, 8.0, 2).predict_kwargs()["amp_dtype"] is None   # float32


def test_figures_of_the_series(series_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from ssl4sar import viz
    from ssl4sar.data.raster import read_raster

    truth = timeseries.read_truth(series_dir)
    series = timeseries.series_by_method(sorted((series_dir / "fronts").glob("*_front.tif")), series_dir)
    truths = application.truth_by_method(series, truth)
    assert list(truths) == ["box", "centreline"]
    pd.testing.assert_frame_equal(truths["box"], application.truth_on_reference(series["box"], truth))
    assert application.truth_by_method(series, None) == {"box": None, "centreline": None}
    fig = viz.plot_positions_by_method(series, truths, "true front masks")
    assert [ax.get_title() for ax in fig.axes if ax.get_title()] == ["box method: true front masks vs truth",
                                                                      "centreline method: true front masks vs truth"]
    img, info = read_raster(timeseries.series_scenes(series_dir)[0], 1, require_crs=True)
    obs = timeseries.load_fronts(sorted((series_dir / "fronts").glob("*_front.geojson")))
    fronts, dates = timeseries.fronts_in(obs, info.crs)
    refs = timeseries.references_in(series_dir, info.crs)
    two = viz.plot_predicted_and_true_fronts(img, info.transform, str(info.crs), fronts, dates, refs, (fronts, dates))
    one = viz.plot_predicted_and_true_fronts(img, info.transform, str(info.crs), fronts, dates, refs, ([], []))
    titled = [ax.get_title() for ax in two.axes if ax.get_title()]
    assert (titled[0] == f"predicted fronts, {dates[0]} … {dates[-1]}"
            and "true fronts (synthetic front masks)" in titled)
    assert "true fronts (synthetic front masks)" not in [ax.get_title() for ax in one.axes]


def test_read_series_describes_the_folder(series_dir: Path) -> None:
    ts = application.read_series(series_dir)
    assert ts.scenes == timeseries.series_scenes(series_dir) and ts.first_image.shape == (128, 128)
    assert ts.description == "4 scenes, 128 × 128 px, CRS EPSG:32622, 20 m/px"
    assert [p.name for p in ts.true_masks] == [p.name.replace(".tif", "_front.tif") for p in ts.scenes]
    table = ts.truth_table()
    assert list(table.columns) == ["date", "stem", "true position (m)"] and table["true position (m)"].iloc[0] == 0.0
    assert table["stem"].tolist() == [p.stem for p in ts.scenes]


def test_measure_series_and_the_upper_bound_of_the_true_masks(series_dir: Path, tmp_path: Path) -> None:
    ts = application.read_series(series_dir)
    # the true masks measured twice: once as "model" fronts, once as the upper bound; both must agree exactly
    series, acc = application.measure_series(ts.true_masks, ts, "model (demo)", tmp_path, "front_positions")
    assert sorted(p.name for p in tmp_path.glob("*.csv")) == ["front_positions_box.csv",
                                                             "front_positions_centreline.csv"]
    assert acc["fronts from"].tolist() == ["model (demo)"] * 2 and acc["method"].tolist() == ["box", "centreline"]
    assert acc["dates"].tolist() == [4, 4] and acc["compared"].tolist() == [4, 4]
    assert acc.loc[0, "RMSE (m)"] < 10.0   # box method on the true masks: rasterisation error only (20 m pixels)
    truth_series, table = application.masks_upper_bound(ts, acc, tmp_path)
    assert table["fronts from"].tolist() == ["true front masks"] * 2 + ["model (demo)"] * 2
    pd.testing.assert_frame_equal(table.iloc[2:].reset_index(drop=True), acc)
    assert table.iloc[0]["RMSE (m)"] == acc.iloc[0]["RMSE (m)"]
    written = pd.read_csv(tmp_path / "accuracy.csv")
    assert len(written) == 4 and written["RMSE (m)"].round(3).tolist() == table["RMSE (m)"].round(3).tolist()
    pd.testing.assert_frame_equal(truth_series["box"], series["box"])
    assert (tmp_path / "truth_masks_positions_centreline.csv").is_file()


def test_plot_predicted_fronts_counts_the_scenes_without_a_front(series_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    ts = application.read_series(series_dir)
    obs = timeseries.load_fronts(sorted((series_dir / "fronts").glob("*_front.geojson")))
    results = [SimpleNamespace(geometry=o.geometry if i != 2 else None, date=o.date, stem=f"s{i}")
               for i, o in enumerate(obs)]
    fig, note = application.plot_predicted_fronts(ts, results)
    assert note == "*The model found no front in 1 of 4 scenes.*"
    assert "true fronts (synthetic front masks)" in [ax.get_title() for ax in fig.axes]
    assert application.plot_predicted_fronts(ts, results[:2])[1] is None


def test_describe_outputs_and_text_excerpt(tmp_path: Path) -> None:
    (tmp_path / "a_front.geojson").write_text("x" * 1000)
    (tmp_path / "a_zones.tif").write_bytes(b"\0" * 37)
    table = describe_outputs({"zones": tmp_path / "a_zones.tif", "front": tmp_path / "a_front.geojson"})
    assert table.values.tolist() == [["zones", "a_zones.tif", 37], ["front", "a_front.geojson", 1000]]
    assert text_excerpt(tmp_path / "a_front.geojson", 900) == "a_front.geojson (1000 characters):\n" + "x" * 900 + " …"
    assert text_excerpt(tmp_path / "a_front.geojson", 1000, with_length=False) == "a_front.geojson:\n" + "x" * 1000


def test_load_chosen_model_and_predict_real_patches(tmp_path: Path) -> None:
    import torch

    from ssl4sar.config import load_preset
    from ssl4sar.models.convert import save_checkpoint
    from ssl4sar.models.tyrion import Tyrion

    cfg = load_preset("smoke")
    torch.manual_seed(0)
    given = save_checkpoint(tmp_path / "model.pt", Tyrion.from_config(cfg["model"]))
    layout = WorkLayout(tmp_path)
    model = application.load_chosen_model(layout, cfg, "smoke", given, device="cpu")
    assert model.path == given and model.choice is None and len(model.members) == 1
    assert model.settings.rotations == (0,) and model.settings.context_size == cfg["model"]["img_size"]
    assert "`work_dir/model.pt`" in model.note and "no test-time augmentation." in model.note
    kwargs = model.predict_kwargs()
    assert kwargs["min_front_length_m"] == float(cfg["postprocess"]["min_front_length_m"]) and kwargs["device"] == "cpu"
    tta = application.load_chosen_model(layout, cfg, "demo", given, device="cpu")
    assert tuple(tta.settings.rotations) == (0, 1, 2, 3) and tta.predict_kwargs(tta=False)["rotations"] == (0,)
    out = tmp_path / "real"
    out.mkdir()
    (out / "stale.txt").write_text("from an earlier run")
    real = application.predict_real_patches(model, out, resolution_m=40.0)
    assert not (out / "stale.txt").exists()   # predicted afresh
    assert real.table["patch"].tolist() == ["sample_1632", "sample_1948", "sample_2349", "sample_3325",
                                            "sample_3386", "sample_4521", "sample_4737"]
    # outputs on each patch's own grid (6 m, 6.667 m); the model saw it at 40 m/px: 512 px × 6 m / 40 m ≈ 77 px
    assert real.table["pixel (m)"].tolist() == [6.0, 6.0, 6.667, 6.667, 6.0, 6.0, 6.0] and real.skipped is None
    assert real.table["model grid (px)"].tolist()[:3] == ["77×77", "77×77", "85×85"]
    assert len(real.panels) == 7 and real.run.seconds > 0
    assert real.excerpt.split(":\n")[0].endswith("_img_front_wgs84.geojson")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no real CaFFe patches"):
        application.predict_real_patches(model, out, tmp_path / "empty")


def test_time_series_accuracy_re_references_the_truth() -> None:
    dates = pd.to_datetime(["2019-01-05", "2019-01-29", "2019-02-22", "2019-03-18"])
    truth = pd.DataFrame({"date": dates, "position_m": [0.0, -100.0, -250.0, -400.0]})
    # no front on the first date: the series starts at the second date, 0 there
    series = pd.DataFrame({"date": dates, "position_m": [np.nan, 0.0, -140.0, -310.0],
                           "position_std_m": [np.nan, 10.0, 20.0, 30.0]})
    ref = application.truth_on_reference(series, truth)
    assert ref["position_m"].tolist() == [100.0, 0.0, -150.0, -300.0]
    table = application.time_series_accuracy({"box": series}, truth, "model").iloc[0]
    assert table["dates with a position"] == 3 and table["compared"] == 3
    assert table["bias (m)"] == pytest.approx((0 + 10 - 10) / 3)
    assert table["RMSE (m)"] == pytest.approx(math.sqrt((0 + 100 + 100) / 3))
    assert table["max |error| (m)"] == pytest.approx(10.0) and table["member spread (m)"] == pytest.approx(20.0)
    empty = series.assign(position_m=np.nan, position_std_m=np.nan)
    row = application.time_series_accuracy({"box": empty}, truth, "model").iloc[0]
    assert row["compared"] == 0 and math.isnan(row["member spread (m)"])
