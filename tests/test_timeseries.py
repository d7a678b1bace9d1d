"""Front-position time series (ssl4sar.timeseries) on the synthetic glacier with a known moving front.

Measured on ``generate_time_series(n_dates=6, seed=0, shape=(128, 128))`` (20 m pixels, EPSG:32622), position
RMSE against truth.csv: box method 0.4 m (analytic front lines), 4.8 m (true masks → fronts), 4.3 m (stand-in
model through ``predict``); centreline method 17 m / 70 m / 63 m — the centreline samples the rough front at
one point, the box averages over the fjord width (the known advantage of the box method).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import torch
import torch.nn.functional as F
from shapely.geometry import LineString, MultiLineString, Polygon

from ssl4sar import geo
from ssl4sar.data.synthetic import generate_time_series
from ssl4sar.errors import DataError
from ssl4sar.timeseries import (
    COLUMNS,
    FrontObservation,
    box_positions,
    box_transects,
    centreline_positions,
    compare_to_truth,
    front_time_series,
    load_fronts,
    write_time_series,
)

UTM22 = geo.as_crs("EPSG:32622")
LEVELS = (0, 240, 170, 40)  # stand-in brightness of NA, rock, glacier, ocean


class BrightnessRule(torch.nn.Module):
    """Per-pixel nearest brightness level after a 3 × 3 median (bright → glacier, dark → ocean)."""

    img_size = 32
    num_classes = 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        x = F.unfold(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3).median(dim=1).values.view(b, 1, h, w)
        levels = torch.tensor(LEVELS, dtype=x.dtype).view(1, 4, 1, 1) / 255.0
        logits = -((x - levels) / 0.12) ** 2
        logits[:, 0] -= 50.0
        return logits


@pytest.fixture(scope="module")
def series_dir(tmp_path_factory) -> Path:
    return generate_time_series(tmp_path_factory.mktemp("ts"), n_dates=6, seed=0, shape=(128, 128))


def _errors(df: pd.DataFrame, root: Path) -> dict[str, float]:
    stats = compare_to_truth(df, root / "truth.csv")
    assert stats["n"] == 6
    return stats


def test_box_and_centreline_recover_the_known_front_motion(series_dir):
    lines = sorted((series_dir / "fronts").glob("*_front.geojson"))
    masks = sorted((series_dir / "fronts").glob("*_front.tif"))
    box, cl = series_dir / "reference_box.geojson", series_dir / "centreline.geojson"
    truth = pd.read_csv(series_dir / "truth.csv")
    assert np.ptp(truth["position_m"]) > 500  # the front moves by > 25 px over the series

    box_lines = front_time_series(lines, box=box)
    assert list(box_lines.columns) == COLUMNS and (box_lines["method"] == "box").all()
    assert box_lines["position_m"].iloc[0] == 0.0 and (box_lines["coverage"] == 1.0).all()
    assert box_lines["date"].is_monotonic_increasing
    e_box_lines = _errors(box_lines, series_dir)
    e_box_masks = _errors(front_time_series(masks, box=box), series_dir)
    e_cl_lines = _errors(front_time_series(lines, centreline=cl), series_dir)
    e_cl_masks = _errors(front_time_series(masks, centreline=cl), series_dir)
    # analytic lines: the box integral is exact up to the transect midpoint rule
    assert e_box_lines["rmse_m"] < 2.0
    # rasterised true masks: within half a 20 m pixel
    assert e_box_masks["rmse_m"] < 10.0 and e_box_masks["max_abs_m"] < 15.0
    # the centreline sees the local roughness of the front: within 2 px (lines) / 5 px (masks)
    assert e_cl_lines["rmse_m"] < 40.0
    assert e_cl_masks["rmse_m"] < 100.0
    assert e_box_masks["rmse_m"] < e_cl_masks["rmse_m"]


def test_stand_in_model_through_predict_recovers_the_retreat(series_dir, tmp_path):
    from ssl4sar.predict import predict_scenes

    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        scenes = _idealised_sar(series_dir, tmp_path / "sar")
        run = predict_scenes(BrightnessRule(), scenes, tmp_path / "pred", rotations=(0, 2), stride=16,
                             member_fronts=True, overlay=False)
    finally:
        torch.set_num_threads(torch_threads)
    assert not run.skipped and len(run.results) == 6
    fronts = sorted((tmp_path / "pred").glob("*.geojson"))  # fused, and members found and attached
    obs = load_fronts(fronts)
    assert len(obs) == 6 and all(len(o.members) == 2 for o in obs)
    box = front_time_series(obs, box=series_dir / "reference_box.geojson")
    cl = front_time_series(obs, centreline=series_dir / "centreline.geojson")
    assert _errors(box, series_dir)["rmse_m"] < 10.0
    assert _errors(cl, series_dir)["rmse_m"] < 100.0
    assert (box["n_members"] == 2).all() and box["position_std_m"].notna().all()


def _idealised_sar(series_dir: Path, folder: Path) -> list[Path]:
    """SAR scenes of the series' true zones (class brightness and noise), for :class:`BrightnessRule`."""
    rng = np.random.default_rng(1)
    scenes = []
    for z in sorted((series_dir / "zones").glob("*_zones.tif")):
        with rasterio.open(z) as ds:
            zones, profile = ds.read(1), ds.profile
        img = np.clip(np.rint(np.asarray(LEVELS, float)[zones] + rng.normal(0, 15, zones.shape)), 1, 255)
        out = folder / z.name.replace("_zones", "")
        out.parent.mkdir(exist_ok=True)
        with rasterio.open(out, "w", **profile) as ds:
            ds.write(img.astype(np.uint8), 1)
        scenes.append(out)
    return scenes


def test_the_other_rasters_of_predict_are_left_out(series_dir, tmp_path, caplog):
    """``timeseries pred/*.tif`` after ``predict --out pred``: before, each zones, probability and uncertainty raster
    was read as a front mask (non-zero on the front), which gave every date four fronts and the zones raster a
    position of its own with full coverage, without a word."""
    import logging

    from ssl4sar.predict import predict_scenes

    scenes = _idealised_sar(series_dir, tmp_path / "sar")
    predict_scenes(BrightnessRule(), scenes, tmp_path / "pred", stride=16, overlay=False)
    rasters = sorted((tmp_path / "pred").glob("*.tif"))
    masks = sorted((tmp_path / "pred").glob("*_front.tif"))
    assert len(rasters) == 4 * len(masks) == 24
    with caplog.at_level(logging.WARNING):
        obs = load_fronts(rasters)
    assert [o.source for o in obs] == masks
    assert "left out 18 raster(s) that ssl4sar predict wrote that are not front masks" in caplog.text
    box = series_dir / "reference_box.geojson"
    pd.testing.assert_frame_equal(front_time_series(obs, box=box), front_time_series(masks, box=box))
    with pytest.raises(DataError, match="no front"):
        load_fronts([r for r in rasters if r not in masks])


def _straight(distance: float, flow=(1.0, 0.0), half_width: float = 500.0, origin=(500_000.0, 7_600_000.0)):
    """A straight front across the flow at ``distance`` m downstream of ``origin``."""
    f = np.asarray(flow, float) / np.hypot(*flow)
    n = np.array([-f[1], f[0]])
    c = np.asarray(origin) + distance * f
    return LineString([c - half_width * n, c + half_width * n])


def _obs(day: int, geometry, members=()) -> FrontObservation:
    return FrontObservation(date=dt.date(2020, 1, 1) + dt.timedelta(days=day), scene=f"s{day}",
                            geometry=geometry, crs=UTM22, source=Path(f"s{day}.geojson"), members=list(members))


def test_member_spread_and_upstream_edge():
    x0, y0 = 500_000.0, 7_600_000.0
    box = Polygon([(x0, y0 - 200), (x0, y0 + 200), (x0 + 2000, y0 + 200), (x0 + 2000, y0 - 200)])
    obs = [_obs(0, _straight(800.0), [_straight(780.0), _straight(820.0)]),
           _obs(10, _straight(650.0), [_straight(640.0), _straight(670.0), _straight(660.0)]),
           _obs(20, _straight(1100.0))]
    df = box_positions(obs, box, UTM22, n_transects=50)
    np.testing.assert_allclose(df["distance_m"], [800.0, 650.0, 1100.0])
    np.testing.assert_allclose(df["position_m"], [0.0, -150.0, 300.0])
    np.testing.assert_allclose(df["position_std_m"].iloc[:2], [20.0, np.std([640.0, 670.0, 660.0])])
    assert np.isnan(df["position_std_m"].iloc[2]) and list(df["n_members"]) == [2, 3, 0]
    # the same box with another first vertex, upstream edge chosen by the flow direction
    rotated = Polygon(list(box.exterior.coords)[2:4] + list(box.exterior.coords)[:2])
    same = box_positions(obs, rotated, UTM22, flow_direction=(1.0, 0.0), n_transects=50)
    np.testing.assert_allclose(same["position_m"], df["position_m"])
    # flow the other way: distances from the other end, positions change sign
    rev = box_positions(obs, box, UTM22, flow_direction=(-1.0, 0.0), n_transects=50)
    np.testing.assert_allclose(rev["distance_m"], [1200.0, 1350.0, 900.0])
    np.testing.assert_allclose(rev["position_m"], -df["position_m"])
    # a centreline along the flow gives the same for straight fronts
    cl = LineString([(x0 - 100, y0), (x0 + 2500, y0)])
    np.testing.assert_allclose(centreline_positions(obs, cl, UTM22)["distance_m"], [900.0, 750.0, 1200.0])


def test_coverage_reference_in_wgs84_and_multiline_fronts():
    x0, y0 = 500_000.0, 7_600_000.0
    box = Polygon([(x0, y0 - 200), (x0, y0 + 200), (x0 + 2000, y0 + 200), (x0 + 2000, y0 - 200)])
    starts, ends, width = box_transects(box, 4)
    assert width == pytest.approx(400.0)
    np.testing.assert_allclose(starts[:, 1] - y0, [-150.0, -50.0, 50.0, 150.0])
    np.testing.assert_allclose(ends[:, 0], x0 + 2000.0)
    partial = LineString([(x0 + 700, y0 - 300), (x0 + 700, y0 - 100)])   # crosses a quarter of the box
    split = MultiLineString([[(x0 + 600, y0 - 300), (x0 + 600, y0 + 1)], [(x0 + 700, y0 + 1), (x0 + 700, y0 + 300)]])
    obs = [_obs(0, split), _obs(5, partial), _obs(9, None)]
    df = box_positions(obs, box, UTM22, n_transects=400)
    assert df["coverage"].tolist() == pytest.approx([1.0, 0.25, 0.0])
    assert df["distance_m"].iloc[0] == pytest.approx(650.0, abs=0.5)  # half the width at 600 m, half at 700 m
    assert np.isnan(df["distance_m"].iloc[1]) and np.isnan(df["distance_m"].iloc[2])
    loose = box_positions(obs, box, UTM22, n_transects=400, min_coverage=0.2)
    assert loose["distance_m"].iloc[1] == pytest.approx(700.0)
    # the box given in EPSG:4326 (vertices reprojected) measures the same
    box_ll = geo.reproject_geometry(box, UTM22, 4326)
    df_ll = box_positions(obs, box_ll, "EPSG:4326", n_transects=400)
    np.testing.assert_allclose(df_ll["distance_m"], df["distance_m"], atol=1e-3)


def test_files_dates_and_errors(series_dir, tmp_path):
    lines = sorted((series_dir / "fronts").glob("*_front.geojson"))
    masks = sorted((series_dir / "fronts").glob("*_front.tif"))
    obs = load_fronts(lines + masks)  # one observation per scene, the GeoJSON preferred
    assert len(obs) == 6 and all(o.source.suffix == ".geojson" for o in obs)
    assert obs[0].date == dt.date(2019, 1, 5) and obs[0].crs == UTM22
    # no date anywhere
    undated = geo.write_geojson(tmp_path / "front.geojson", [(LineString([(0, 0), (1, 1)]), {})], UTM22)
    with pytest.raises(DataError, match="no date") as err:
        load_fronts([undated])
    assert str(undated) in str(err.value)
    pixel = geo.write_geojson(tmp_path / "p_2020-01-01.geojson", [(LineString([(0, 0), (1, 1)]), {})], None)
    with pytest.raises(DataError, match="pixel coordinates"):
        load_fronts([pixel])
    with pytest.raises(DataError, match="unknown front file type"):
        load_fronts([tmp_path / "x.txt"])
    # a box that is not a 4-corner polygon names the box file
    bad_box = geo.write_geojson(tmp_path / "box.geojson", [(Polygon([(0, 0), (0, 1), (1, 2), (2, 1), (1, 0)]), {})],
                                UTM22)
    with pytest.raises(DataError, match="4 corners") as err:
        front_time_series(lines, box=bad_box)
    assert str(bad_box) in str(err.value)
    with pytest.raises(ValueError, match="exactly one"):
        front_time_series(lines)


def test_compare_to_truth_and_csv(tmp_path):
    series = pd.DataFrame({"date": pd.to_datetime(["2020-01-01", "2020-02-01", "2020-03-01"]),
                           "position_m": [0.0, 13.0, -4.0]})
    truth = pd.DataFrame({"date": ["2020-01-01", "2020-02-01", "2020-03-01", "2020-04-01"],
                          "position_m": [0.0, 10.0, 0.0, 50.0]})
    s = compare_to_truth(series, truth)
    assert s["n"] == 3 and s["rmse_m"] == pytest.approx(np.sqrt((9 + 16) / 3))
    assert s["bias_m"] == pytest.approx(-1 / 3) and s["max_abs_m"] == 4.0
    p = write_time_series(series, tmp_path / "ts.csv")
    back = pd.read_csv(p)
    assert back["date"].tolist() == ["2020-01-01", "2020-02-01", "2020-03-01"]
    assert back["position_m"].tolist() == [0.0, 13.0, -4.0]


def test_cli_writes_csv_and_plot(series_dir, tmp_path):
    from ssl4sar.cli import main

    lines = sorted(str(p) for p in (series_dir / "fronts").glob("*_front.geojson"))
    out = tmp_path / "out"
    rc = main(["timeseries", *lines, "--box", str(series_dir / "reference_box.geojson"), "--out", str(out),
               "--truth", str(series_dir / "truth.csv"), "--transects", "100"])
    assert rc == 0
    df = pd.read_csv(out / "front_positions.csv")
    assert list(df.columns) == COLUMNS and len(df) == 6
    truth = pd.read_csv(series_dir / "truth.csv")
    np.testing.assert_allclose(df["position_m"], truth["position_m"], atol=2.0)
    assert (out / "front_positions.png").stat().st_size > 5000
    rc = main(["timeseries", *lines, "--centreline", str(series_dir / "centreline.geojson"), "--out", str(out)])
    assert rc == 0 and (pd.read_csv(out / "front_positions.csv")["method"] == "centreline").all()


def _good_truth(series_dir: Path) -> str:
    return (series_dir / "truth.csv").read_text()


# (file text from the good truth table -> the bad one, the phrase the error must hold)
BAD_TRUTH_TABLES = {
    "missing": (None, "file not found"),
    "empty": (lambda good: "", "empty file"),
    "no position column": (lambda good: good.replace("position_m", "pos"), "no column 'position_m'"),
    "no date column": (lambda good: good.replace("date", "day", 1), "no column 'date'"),
    "bad date": (lambda good: good.replace("\n2019-05-05,", "\n2019-13-45,"), "line 7: date '2019-13-45'"),
    "bad position": (lambda good: _replace_position(good, 2, "twelve"), "line 3: position_m 'twelve'"),
    "infinite position": (lambda good: _replace_position(good, 4, "inf"), "line 5: position_m 'inf' is not a finite"),
    "date twice": (lambda good: good + good.splitlines()[1] + "\n", "dated twice: 2019-01-05"),
    "header only": (lambda good: good.splitlines()[0] + "\n", "no rows"),
}


def _replace_position(text: str, row: int, value: str) -> str:
    lines = text.splitlines()
    header = lines[0].split(",")
    cells = lines[row].split(",")
    cells[header.index("position_m")] = value
    lines[row] = ",".join(cells)
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("case", sorted(BAD_TRUTH_TABLES))
def test_cli_refuses_a_bad_truth_table_by_name_before_measuring(series_dir, tmp_path, caplog, case):
    """A truth table that is missing, empty, lacks a column, or holds a bad date, a bad position or a date twice
    stops ``ssl4sar timeseries --truth`` with exit status 1 and one error naming the file, the line and the problem,
    before any output is written (it used to end in a FileNotFoundError or KeyError traceback, after the CSV)."""
    from ssl4sar.cli import main

    edit, phrase = BAD_TRUTH_TABLES[case]
    truth = tmp_path / "my_truth.csv"
    if edit is not None:
        truth.write_text(edit(_good_truth(series_dir)))
    lines = sorted(str(p) for p in (series_dir / "fronts").glob("*_front.geojson"))
    out = tmp_path / "out"
    rc = main(["timeseries", *lines, "--box", str(series_dir / "reference_box.geojson"), "--out", str(out),
               "--truth", str(truth), "--transects", "50"])
    assert rc == 1
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and errors[0].startswith(f"{truth}: ") and phrase in errors[0], errors
    assert not (out / "front_positions.csv").exists()


def test_compare_to_truth_names_a_missing_column_of_a_table_in_memory():
    series = pd.DataFrame({"date": pd.to_datetime(["2020-01-01"]), "position_m": [0.0]})
    with pytest.raises(ValueError, match="no column 'position_m'"):
        compare_to_truth(series, pd.DataFrame({"date": ["2020-01-01"], "pos": [0.0]}))


def test_cli_warns_when_no_truth_date_matches_a_front(series_dir, tmp_path, caplog):
    from ssl4sar.cli import main

    truth = tmp_path / "other_dates.csv"
    truth.write_text("date,position_m\n2001-01-01,0\n2001-02-01,5\n")
    lines = sorted(str(p) for p in (series_dir / "fronts").glob("*_front.geojson"))
    rc = main(["timeseries", *lines, "--box", str(series_dir / "reference_box.geojson"), "--out",
               str(tmp_path / "out"), "--truth", str(truth), "--transects", "50"])
    assert rc == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(f"{truth}: none of its 2 dates is the date of a front" in w for w in warnings), warnings


def test_front_map_figure(series_dir):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ssl4sar.timeseries import read_reference
    from ssl4sar.viz import plot_front_map

    obs = load_fronts(sorted((series_dir / "fronts").glob("*_front.geojson")))
    box, _, _ = read_reference(series_dir / "reference_box.geojson")
    fig = plot_front_map([o.geometry for o in obs], [o.date.isoformat() for o in obs], reference=box)
    ax = fig.axes[0]
    assert len(ax.lines) == 6 + 1  # one line per (single-part) front plus the box
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["2019-01-05", "2019-05-05", "reference"]
    plt.close(fig)


@pytest.mark.parametrize(("options", "phrase"), [
    # every front got no position, with a warning each, and the command succeeded
    (["--min-coverage", "1.5"], "min_coverage must be in [0, 1], got 1.5"),
    (["--min-coverage", "nan"], "min_coverage must be in [0, 1], got nan"),
    (["--min-coverage", "-0.2"], "min_coverage must be in [0, 1], got -0.2"),
    # refused only after --out had been made
    (["--transects", "0"], "n_transects must be >= 1, got 0"),
    (["--flow-direction", "0", "0"], "flow_direction must be two finite numbers (dx, dy), not both 0, got [0.0, 0.0]"),
])
def test_cli_refuses_bad_settings_before_anything_is_written(series_dir, tmp_path, caplog, options, phrase):
    from ssl4sar.cli import main

    lines = sorted(str(p) for p in (series_dir / "fronts").glob("*_front.geojson"))
    out = tmp_path / "out"
    rc = main(["timeseries", *lines, "--box", str(series_dir / "reference_box.geojson"), "--out", str(out), *options])
    assert rc == 1
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and phrase in errors[0], errors
    assert not out.exists()


def test_a_folder_of_predictions_is_read_for_its_fronts(series_dir, tmp_path):
    """``ssl4sar timeseries FRONTS_DIR`` as the README shows it: before, a folder was refused as an "unknown front
    file type ''"."""
    from ssl4sar.cli import main
    from ssl4sar.predict import predict_scenes

    scenes = _idealised_sar(series_dir, tmp_path / "sar")
    predict_scenes(BrightnessRule(), scenes, tmp_path / "pred", rotations=(0, 2), stride=16, member_fronts=True,
                   overlay=False)
    obs = load_fronts([tmp_path / "pred"])
    assert [o.source.name for o in obs] == sorted(p.name for p in (tmp_path / "pred").glob("*_front.geojson"))
    assert len(obs) == 6 and all(len(o.members) == 2 for o in obs)
    box = series_dir / "reference_box.geojson"
    assert main(["timeseries", str(tmp_path / "pred"), "--box", str(box), "--out", str(tmp_path / "ts")]) == 0
    assert len(pd.read_csv(tmp_path / "ts" / "front_positions.csv")) == 6
    with pytest.raises(DataError, match="no front file"):
        load_fronts([tmp_path / "sar"])


def test_cli_on_a_full_disk_says_so_in_one_line(series_dir, tmp_path, monkeypatch, caplog):
    """Before: the figure's write that found no space ended the command in a traceback."""
    import errno
    import logging

    from ssl4sar.cli import main

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("ssl4sar.viz.save_figure", full)
    out = tmp_path / "out"
    with caplog.at_level(logging.ERROR):
        rc = main(["timeseries", str(series_dir / "fronts"), "--box", str(series_dir / "reference_box.geojson"),
                   "--out", str(out)])
    assert rc == 1
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].getMessage().startswith(f"{out}: no space left on the device")
