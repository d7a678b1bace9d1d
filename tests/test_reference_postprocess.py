"""Post-processing and MDE against the official TYRION code (fixture ``postprocess_mde.json/.npz``).

Every case, expected value and tolerance-relevant number is read from the fixture files.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ssl4sar.metrics import breakdown, evaluate_fronts, mde_summary
from ssl4sar.postprocess import extract_front

pytestmark = pytest.mark.reference

REL = 1e-6  # "equal within 1e-6 relative" (how_to_check of the fixture)


def _load(reference_dir: Path) -> tuple[dict[str, Any], Any]:
    meta = json.loads((reference_dir / "postprocess_mde.json").read_text())
    arrays = np.load(reference_dir / "postprocess_mde.npz")
    return meta, arrays


def _corners(bounding_box_file: str) -> list[tuple[float, float]]:
    lines = bounding_box_file.strip().splitlines()
    return [tuple(float(v) for v in line.split(",")) for line in lines[1:5]]  # type: ignore[misc]


def _resolution(stem: str) -> float:
    return float(stem.split("_")[3])


def _predicted_fronts(reference_dir: Path) -> tuple[dict[str, Any], Any, dict[int, np.ndarray]]:
    meta, arrays = _load(reference_dir)
    fronts = {}
    for case in meta["cases"]:
        i = case["index"]
        zones = arrays[f"case{i:02d}_zones"]
        fronts[i] = extract_front(zones, _resolution(case["stem"]), _corners(case["bounding_box_file"]))
    return meta, arrays, fronts


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=REL, abs_tol=1e-9)


def test_post_processed_fronts_identical(reference_dir):
    meta, arrays, fronts = _predicted_fronts(reference_dir)
    assert meta["cases"], "fixture holds no cases"
    for case in meta["cases"]:
        i = case["index"]
        front = fronts[i]
        if case["reference_crashes"]:
            # documented behaviour where the official code raises (e.g. all-ocean): an empty front, no exception
            zones = arrays[f"case{i:02d}_zones"]
            assert front.shape == zones.shape and front.dtype == np.uint8
            if not (zones == 2).any() or not (zones == 3).any():
                assert front.sum() == 0, f"case {i}: expected an empty front"
            continue
        expected = arrays[f"case{i:02d}_front"]
        assert front.shape == expected.shape
        assert np.array_equal(front.astype(bool), expected > 0), (
            f"case {i} ({case['note']}): {int((front.astype(bool) != (expected > 0)).sum())} pixels differ")
        assert int(front.sum()) == case["predicted_front_pixels"]


def _table(reference_dir: Path):
    meta, arrays, fronts = _predicted_fronts(reference_dir)
    records = [{"stem": c["stem"], "pred_front": fronts[c["index"]],
                "gt_front": arrays[f"case{c['index']:02d}_gt_front"]}
               for c in meta["cases"] if not c["reference_crashes"]]
    return meta, evaluate_fronts(records)


def test_per_case_distances(reference_dir):
    meta, df = _table(reference_dir)
    by_stem = df.set_index("stem")
    for case in meta["cases"]:
        if case["reference_crashes"]:
            continue
        row = by_stem.loc[case["stem"]]
        assert int(row["n_gt"]) == case["gt_front_pixels"]
        if not case["front_exists"]:
            assert bool(row["missing"]), case["stem"]
            continue
        assert not row["missing"]
        assert int(row["n_distances"]) == case["n_distances"]
        assert _close(float(row["sum_m"]), case["sum_m"]), (case["stem"], row["sum_m"], case["sum_m"])
        assert _close(float(row["mean_m"]), case["mean_m"]), (case["stem"], row["mean_m"], case["mean_m"])


def test_overall_mde(reference_dir):
    meta, df = _table(reference_dir)
    overall = meta["overall"]
    s = mde_summary(df)
    assert _close(s.pooled_mde_m, overall["pooled_mde_m"])
    assert _close(s.picture_normalised_mde_m, overall["picture_normalised_mde_m"])
    assert _close(s.front_length_normalised_mde_m, overall["front_length_normalised_mde_m"])
    assert s.missing_fronts == overall["missing_fronts"]
    assert s.images_evaluated == overall["images_evaluated"]


def test_breakdown_groups(reference_dir):
    meta, df = _table(reference_dir)
    table = breakdown(df)
    groups = meta["overall"]["breakdown"]
    assert groups, "fixture holds no breakdown"
    for key, expected in groups.items():
        group_type, value = key.split("=", 1)
        rows = table[(table["group_type"] == group_type) & (table["group_value"] == value)]
        assert len(rows) == 1, f"group {key} missing from the breakdown"
        row = rows.iloc[0]
        assert sorted(row["stems"].split(";")) == sorted(expected["images"]), key
        assert int(row["images"]) == len(expected["images"])
        assert int(row["missing_fronts"]) == expected["missing_fronts"], key
        if expected["mde_m"] is None:
            assert math.isnan(row["mde_m"])
        else:
            assert _close(float(row["mde_m"]), expected["mde_m"]), (key, row["mde_m"], expected["mde_m"])
    # no group with images is absent from the fixture (for the four single-attribute group types)
    singles = table[table["group_type"].isin(["season", "glacier", "sensor", "resolution"])]
    assert len(singles) == len(groups)
