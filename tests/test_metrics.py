"""MDE (§8.1), zone metrics (§8.2), breakdowns and seasons (§8.3/§8.4), tables."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import cdist

from ssl4sar.errors import DataError
from ssl4sar.metrics import (
    CAFFE_GLACIERS,
    FrontResult,
    average_zone_metrics,
    breakdown,
    confusion_matrix,
    evaluate_fronts,
    front_distances,
    front_result,
    mde_summary,
    season_of,
    sensor_group,
    stem_metadata,
    write_tables,
    zone_metrics,
)


def random_front(rng: np.random.Generator, shape=(40, 50), n=30) -> np.ndarray:
    f = np.zeros(shape, np.uint8)
    f[rng.integers(0, shape[0], n), rng.integers(0, shape[1], n)] = 255
    return f


def brute_force(p: np.ndarray, g: np.ndarray, res: float) -> np.ndarray:
    pc = np.argwhere(p > 0)
    gc = np.argwhere(g > 0)
    d = cdist(pc, gc)
    return np.concatenate((d.min(axis=1), d.min(axis=0))) * res


def test_front_distances_equal_brute_force_all_pairs():
    rng = np.random.default_rng(0)
    for _ in range(10):
        p, g = random_front(rng), random_front(rng, n=int(rng.integers(1, 60)))
        res = float(rng.choice([6, 7, 12, 17, 20]))
        d = front_distances(p, g, res)
        ref = brute_force(p, g, res)
        assert d is not None and d.shape == ref.shape
        np.testing.assert_allclose(d, ref, rtol=1e-12, atol=1e-12)


def test_front_distances_properties():
    rng = np.random.default_rng(1)
    p, g = random_front(rng), random_front(rng)
    assert np.all(front_distances(p, p, 20.0) == 0)
    a = front_distances(p, g, 7.0)
    b = front_distances(g, p, 7.0)
    assert a.mean() == pytest.approx(b.mean(), rel=1e-12)  # symmetric
    assert front_distances(p, g, 14.0).mean() == pytest.approx(2 * a.mean(), rel=1e-12)  # ∝ m/px
    # a front shifted by k rows: every distance is k pixels
    line = np.zeros((30, 30), np.uint8)
    line[10, 2:28] = 1
    assert np.allclose(front_distances(line, np.roll(line, 3, axis=0), 6.0), 18.0)


def test_front_distances_missing_and_shape_errors():
    p = np.zeros((5, 5), np.uint8)
    g = np.zeros((5, 5), np.uint8)
    g[2, 2] = 1
    assert front_distances(p, g, 20.0) is None
    assert front_distances(g, p, 20.0) is None
    with pytest.raises(DataError, match="shape"):
        front_distances(np.zeros((4, 5)), g, 20.0)


def test_mde_summary_definitions():
    rng = np.random.default_rng(2)
    results = []
    for i in range(4):
        p, g = random_front(rng), random_front(rng, n=10 + 10 * i)
        results.append(front_result(f"img{i}", p, g, 10.0 + i))
    results.append(FrontResult("missing", None, 0, 12))
    s = mde_summary(results)
    pooled = np.concatenate([r.distances_m for r in results if not r.missing])
    means = np.array([r.distances_m.mean() for r in results if not r.missing])
    lengths = np.array([r.n_gt for r in results if not r.missing])
    assert s.pooled_mde_m == pytest.approx(pooled.mean(), rel=1e-12)
    assert s.std_m == pytest.approx(pooled.std(), rel=1e-12)
    assert s.picture_normalised_mde_m == pytest.approx(means.mean(), rel=1e-12)
    assert s.front_length_normalised_mde_m == pytest.approx((means * lengths).sum() / lengths.sum(), rel=1e-12)
    assert (s.missing_fronts, s.images_evaluated, s.n_distances) == (1, 5, pooled.size)
    # the DataFrame route gives the same numbers
    recs = []
    rng = np.random.default_rng(2)
    for i in range(4):
        p, g = random_front(rng), random_front(rng, n=10 + 10 * i)
        recs.append({"stem": f"img{i}", "pred_front": p, "gt_front": g, "resolution_m": 10.0 + i,
                     "glacier": "X", "season": "winter", "sensor": "S1", "date": "2020-01-01"})
    recs.append({"stem": "missing", "pred_front": np.zeros((40, 50)), "gt_front": np.ones((40, 50)),
                 "resolution_m": 5.0, "glacier": "X", "season": "winter", "sensor": "S1", "date": "2020-01-01"})
    s2 = mde_summary(evaluate_fronts(recs))
    for k in ("pooled_mde_m", "picture_normalised_mde_m", "front_length_normalised_mde_m"):
        assert getattr(s2, k) == pytest.approx(getattr(s, k), rel=1e-10)
    assert s2.std_m == pytest.approx(s.std_m, rel=1e-6)


def test_mde_summary_all_missing_is_nan():
    s = mde_summary([FrontResult("a", None, 0, 3), FrontResult("b", None, 4, 0)])
    assert math.isnan(s.pooled_mde_m) and s.missing_fronts == 2 and s.images_evaluated == 2


@pytest.mark.parametrize(("glacier", "month", "season"), [
    ("COL", 1, "winter"), ("COL", 3, "winter"), ("COL", 4, "summer"), ("COL", 8, "summer"), ("JAC", 9, "winter"),
    ("JAC", 12, "winter"), ("Mapple", 3, "summer"), ("Mapple", 4, "winter"), ("SI", 8, "winter"),
    ("Crane", 9, "summer"), ("DBE", 11, "summer"),
])
def test_season_rule(glacier, month, season):
    assert season_of(glacier, month) == season


def test_stem_metadata_and_sensor_group():
    m = stem_metadata("COL_2011-06-18_TDX_7_1_024")
    assert m == {"glacier": "COL", "date": "2011-06-18", "sensor": "TDX", "sensor_group": "TSX/TDX",
                 "resolution_m": 7.0, "season": "summer"}
    assert sensor_group("S1") == "S1" and sensor_group("TSX") == "TSX/TDX"
    with pytest.raises(DataError, match="scene42"):
        stem_metadata("scene42")
    with pytest.raises(DataError):
        stem_metadata("COL_20110618_TDX_x_1_024")


def _demo_table() -> pd.DataFrame:
    line = np.zeros((20, 20), np.uint8)
    line[10, :] = 1
    recs = [
        {"stem": "COL_2011-06-18_TDX_7_1_024", "pred_front": np.roll(line, 1, 0), "gt_front": line},
        {"stem": "COL_2012-01-18_TSX_7_1_025", "pred_front": np.roll(line, 2, 0), "gt_front": line},
        {"stem": "Mapple_2018-06-11_S1_20_2_009", "pred_front": np.zeros_like(line), "gt_front": line},
        {"stem": "Mapple_2018-12-11_S1_20_2_010", "pred_front": np.roll(line, 3, 0), "gt_front": line},
    ]
    return evaluate_fronts(recs)


def test_evaluate_fronts_table():
    df = _demo_table()
    assert list(df["season"]) == ["summer", "winter", "winter", "summer"]
    assert list(df["missing"]) == [False, False, True, False]
    assert df.loc[0, "mean_m"] == pytest.approx(7.0) and df.loc[1, "mean_m"] == pytest.approx(14.0)
    assert df.loc[3, "mean_m"] == pytest.approx(60.0)
    assert (df["n_distances"] == [40, 40, 0, 40]).all()


def test_breakdown_counts_missing_fronts_in_every_group():
    b = breakdown(_demo_table())
    row = b[(b["group_type"] == "glacier") & (b["group_value"] == "Mapple")].iloc[0]
    assert (row["images"], row["missing_fronts"]) == (2, 1)
    assert row["mde_m"] == pytest.approx(60.0)
    row = b[(b["group_type"] == "glacier×season") & (b["group_value"] == "Mapple|winter")].iloc[0]
    assert row["missing_fronts"] == 1 and math.isnan(row["mde_m"])
    row = b[(b["group_type"] == "sensor") & (b["group_value"] == "TSX/TDX")].iloc[0]
    assert row["images"] == 2 and row["mde_m"] == pytest.approx(10.5)
    row = b[b["group_type"] == "all"].iloc[0]
    assert row["images"] == 4 and row["missing_fronts"] == 1
    assert row["mde_m"] == pytest.approx((7 + 14 + 60) / 3)
    assert set(b["group_type"]) == {"all", "season", "glacier", "sensor", "resolution", "glacier×season",
                                    "glacier×sensor", "glacier×resolution"}
    full = breakdown(_demo_table(), all_categories=True)
    glaciers = full[full["group_type"] == "glacier"]
    assert list(glaciers["group_value"]) == list(CAFFE_GLACIERS)
    assert (glaciers.set_index("group_value").loc["JAC", "images"]) == 0
    assert not breakdown(_demo_table(), crosses=False)["group_type"].str.contains("×").any()


def test_zone_metrics_absent_zero_matches_torchmetrics():
    torchmetrics = pytest.importorskip("torchmetrics")
    import torch

    rng = np.random.default_rng(4)
    pred = rng.integers(0, 3, (30, 40))  # class 3 never predicted
    gt = rng.integers(0, 3, (30, 40))  # … and absent from the ground truth
    pred[0, 0] = 1
    m = zone_metrics(pred, gt, absent="zero")
    tp, tt = torch.from_numpy(pred), torch.from_numpy(gt)
    for name, cls in (("precision", torchmetrics.Precision), ("recall", torchmetrics.Recall),
                      ("f1", torchmetrics.F1Score), ("iou", torchmetrics.JaccardIndex)):
        ref = cls(task="multiclass", num_classes=4, average="none")(tp, tt).numpy()
        np.testing.assert_allclose(getattr(m, name), ref, rtol=1e-5, atol=1e-6, err_msg=name)
    assert m.macro()["iou"] == pytest.approx(m.iou.mean())


def test_zone_metrics_absent_nan_excludes_class_from_macro():
    pred = np.array([[0, 1], [1, 2]])
    gt = np.array([[0, 1], [2, 2]])
    m = zone_metrics(pred, gt)
    assert math.isnan(m.iou[3]) and math.isnan(m.f1[3])
    assert m.iou[:3] == pytest.approx([1.0, 0.5, 0.5])
    assert m.precision[:3] == pytest.approx([1.0, 0.5, 1.0])
    assert m.recall[:3] == pytest.approx([1.0, 1.0, 0.5])
    assert m.macro()["iou"] == pytest.approx(2.0 / 3.0)
    z = zone_metrics(pred, gt, absent="zero")
    assert z.macro()["iou"] == pytest.approx(0.5)
    # a class present in the ground truth but never predicted scores 0, not NaN
    m2 = zone_metrics(np.zeros((2, 2), int), np.array([[0, 3], [0, 0]]))
    assert m2.precision[3] == 0 and m2.recall[3] == 0 and m2.iou[3] == 0
    frame = m.to_frame()
    assert list(frame.index) == ["NA", "rock", "glacier", "ocean", "macro"]
    avg = average_zone_metrics([m, zone_metrics(gt, gt)])
    assert avg.loc["glacier", "iou"] == pytest.approx(0.75)
    assert math.isnan(avg.loc["ocean", "iou"])
    with pytest.raises(ValueError):
        zone_metrics(pred, gt, absent="one")  # type: ignore[arg-type]


def test_confusion_matrix_and_errors():
    cm = confusion_matrix(np.array([0, 1, 1, 3]), np.array([0, 1, 2, 3]))
    assert cm[2, 1] == 1 and np.trace(cm) == 3 and cm.sum() == 4
    with pytest.raises(DataError, match="outside"):
        confusion_matrix(np.array([0, 254]), np.array([0, 1]))
    with pytest.raises(DataError, match="shape"):
        confusion_matrix(np.zeros((2, 2), int), np.zeros((2, 3), int))


def test_write_tables(tmp_path):
    df = _demo_table()
    b = breakdown(df)
    z = zone_metrics(np.array([[0, 1]]), np.array([[0, 1]])).to_frame()
    paths = write_tables(tmp_path / "out", per_image=df, breakdown_df=b, summary=mde_summary(df), zones=z,
                         prefix="test_")
    assert {p.name for p in paths.values()} == {"test_per_image.csv", "test_per_image.json", "test_breakdown.csv",
                                                "test_breakdown.json", "test_zone_metrics.csv",
                                                "test_zone_metrics.json", "test_summary.json"}
    back = pd.read_csv(paths["breakdown.csv"])
    assert len(back) == len(b) and "missing_fronts" in back.columns
    summ = json.loads(paths["summary.json"].read_text())
    assert summ["missing_fronts"] == 1 and summ["images_evaluated"] == 4
    rows = json.loads(paths["breakdown.json"].read_text())
    assert any(r["mde_m"] is None for r in rows)  # NaN → null, valid JSON
    assert not list((tmp_path / "out").glob(".*part*"))
