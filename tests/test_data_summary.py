"""Data-set tables of ``ssl4sar.data.summary``: inventories, counts, glacier locations, realism gradients and the
check of the dataset construction against the known pattern of synthetic raw scenes."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
from PIL import Image

from ssl4sar.data import caffe, construct, summary, synthetic
from ssl4sar.data.realism import Patch, load_real_patches
from ssl4sar.errors import DataError


# ---------------------------------------------------------------------------------------------------- glaciers
def test_glacier_locations_cover_the_caffe_glaciers_consistently() -> None:
    assert list(summary.GLACIER_LOCATIONS) == list(caffe.GLACIERS)
    for code, loc in summary.GLACIER_LOCATIONS.items():
        assert loc.code == code
        assert (loc.hemisphere == "north") == (code in caffe.NORTHERN_GLACIERS)
        assert loc.caffe_split == synthetic.CAFFE_GLACIERS[code]["split"]
        assert -90 <= loc.lat <= 90 and -180 <= loc.lon <= 180 and loc.source
    table = summary.glacier_table()
    assert list(table.index) == list(caffe.GLACIERS)
    assert set(table.loc[table["caffe_split"] == "test"].index) == {"Mapple", "COL"}


def test_glacier_code_resolves_names_and_aliases() -> None:
    assert summary.glacier_code("Jakobshavn Glacier / Sermeq Kujalleq") == "JAC"
    assert summary.glacier_code("dinsmoorbombardieredgeworth") == "DBE"
    assert summary.glacier_code(" Columbia ") == "COL"
    assert summary.glacier_code("SI") == "SI"
    assert summary.glacier_code("Sjogren inlet") == "SI"
    assert summary.glacier_code("Dinsmoor\x96Bombardier\x96Edgeworth") == "DBE"   # mis-decoded en dash
    with pytest.raises(KeyError, match="unknown glacier"):
        summary.glacier_code("Petermann")


def _distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2, dl = math.radians(lat1), math.radians(lat2), math.radians(lon2 - lon1)
    c = math.sin(p1) * math.sin(p2) + math.cos(p1) * math.cos(p2) * math.cos(dl)
    return 6371.0 * math.acos(min(1.0, max(-1.0, c)))


def test_real_patches_lie_near_their_glacier(real_samples_dir: Path) -> None:
    """The centres of the real CaFFe patches (metadata.csv) are within 25 km of the coordinates in the library."""
    meta = pd.read_csv(real_samples_dir / "metadata.csv")
    for row in meta.itertuples():
        loc = summary.GLACIER_LOCATIONS[summary.glacier_code(row.glacier)]
        assert _distance_km(row.lat, row.lon, loc.lat, loc.lon) < 25.0, row.id


def test_paper_facts_agree_with_the_reader_constants() -> None:
    caffe_facts = summary.paper_facts("CaFFe").set_index("quantity")["value"]
    n_train = int(caffe_facts["training images (train folder)"])
    n_test = int(caffe_facts["test images (test folder)"])
    n_val = int(caffe_facts["validation images (held out of the 559)"])
    assert n_train == caffe.CAFFE_N_TRAIN and n_val == caffe.CAFFE_N_VAL
    assert n_train + n_test == int(caffe_facts["SAR images"])
    assert len(caffe.validation_indices(n_train)) == n_val
    assert int(caffe_facts["training images after the validation hold-out"]) == n_train - n_val
    assert set(summary.paper_facts()["dataset"]) == {"CaFFe", "SSL4SAR"}
    assert summary.paper_facts()["source"].str.len().min() > 10
    with pytest.raises(ValueError, match="unknown dataset"):
        summary.paper_facts("ImageNet")


# ---------------------------------------------------------------------------------------------------- CaFFe
@pytest.fixture(scope="module")
def caffe_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic.generate_caffe(tmp_path_factory.mktemp("caffe"), n_train=12, n_test=4, scene_size=(40, 56),
                                    seed=3)


def test_caffe_inventory_reads_every_scene_with_the_official_split_rule(caffe_root: Path) -> None:
    inv = summary.caffe_inventory(caffe_root)
    truth = pd.read_csv(caffe_root / "scenes.csv")
    assert len(inv) == len(truth) == 16
    assert set(inv["stem"]) == set(truth["stem"])
    # the train folder is partitioned with validation_indices over the sorted names
    train_stems = sorted(truth.loc[truth["split"] == "train", "stem"])
    expected_val = {train_stems[i] for i in caffe.validation_indices(len(train_stems))}
    assert set(inv.loc[inv["split"] == "val", "stem"]) == expected_val
    assert len(expected_val) == math.ceil(0.1 * 12)
    assert set(inv.loc[inv["split"] == "test", "stem"]) == set(truth.loc[truth["split"] == "test", "stem"])
    assert list(inv["split"].astype(str).drop_duplicates()) == ["train", "val", "test"]
    merged = inv.merge(truth, on="stem", suffixes=("", "_truth"))
    assert (merged["height_px"] == merged["height"]).all() and (merged["width_px"] == merged["width"]).all()
    assert (merged["season"] == merged["season_truth"]).all()
    assert (merged["resolution_m"] == merged["resolution_m_truth"]).all()
    for row in inv.itertuples():
        assert row.season == caffe.season_of(row.glacier, row.month)
        with Image.open(row.sar_path) as im:
            assert (im.height, im.width) == (row.height_px, row.width_px)
    assert inv["has_bbox"].all()


def test_count_table_totals_and_order(caffe_root: Path) -> None:
    inv = summary.caffe_inventory(caffe_root)
    t = summary.count_table(inv, "glacier", "split")
    assert list(t.columns) == ["train", "val", "test", "total"]
    assert int(t.loc["total", "total"]) == len(inv)
    assert (t.drop(index="total")["total"] == t.drop(index="total")[["train", "val", "test"]].sum(axis=1)).all()
    glaciers = [g for g in t.index if g != "total"]
    assert glaciers == [g for g in caffe.GLACIERS if g in set(inv["glacier"])]
    assert t.loc["Mapple", "train"] == 0 and t.loc["Mapple", "test"] == (inv["glacier"] == "Mapple").sum()
    res = summary.count_table(inv, "resolution_m", "split")
    values = [r for r in res.index if r != "total"]
    assert values == sorted(values, reverse=True)
    single = summary.count_table(inv, "sensor", None)
    assert list(single.columns) == ["count"] and int(single.loc["total", "count"]) == len(inv)
    with pytest.raises(KeyError, match="no column"):
        summary.count_table(inv, "orbit")


def test_caffe_examples_are_varied_and_subsampled_for_display(caffe_root: Path) -> None:
    inv = summary.caffe_inventory(caffe_root)
    ex = summary.caffe_examples(inv, caffe_root, n=3, seed=1)
    assert len({e["stem"] for e in ex}) == 3
    assert {e["split"] for e in ex} == {"train", "val", "test"}
    for e in ex:
        assert e["image"].shape == e["zones"].shape == e["front"].shape
        assert e["bbox"] is not None and e["stride"] == 1 and e["meta"].glacier in e["title"]
    small = summary.caffe_examples(inv, caffe_root, n=2, seed=1, max_side_px=20)
    for e in small:
        assert max(e["image"].shape) <= 20 and e["stride"] >= 2 and e["bbox"] is None
        assert e["front"].shape == e["image"].shape
        assert e["front"].sum() > 0   # front pixels survive the subsampling (max-pooled)
    assert summary.caffe_examples(inv, caffe_root, n=0) == []


def test_caffe_inventory_names_the_broken_file(tmp_path: Path, caffe_root: Path) -> None:
    import shutil

    root = tmp_path / "broken"
    shutil.copytree(caffe_root, root)
    victim = sorted((root / "zones" / "test").iterdir())[0]
    victim.unlink()
    with pytest.raises(DataError, match="zone mask"):
        summary.caffe_inventory(root)


# ---------------------------------------------------------------------------------------------------- SSL4SAR
def test_unlabeled_inventory_and_counts(tmp_path: Path) -> None:
    root = synthetic.generate_ssl4sar(tmp_path / "ssl", n_sar=5, seed=2, n_glaciers=2, scene_size=(40, 48))
    truth = pd.read_csv(root / "scenes.csv")
    inv = summary.unlabeled_inventory(root)
    assert len(inv) == len(truth)
    merged = inv.assign(file=[f"sar/{s}/{n}.tif" for s, n in zip(inv["split"], inv["name"])]).merge(truth, on="file")
    assert len(merged) == len(truth)
    assert (merged["glacier_x"] == merged["glacier_y"]).all()
    assert (merged["date_x"].dt.strftime("%Y-%m-%d") == merged["date_y"]).all()
    assert (merged["height_px"] == merged["height"]).all() and (merged["width_px"] == merged["width"]).all()
    assert (inv["sensor"] == "S1").all()
    assert all(f.startswith(g + "_") for g, f in zip(inv["glacier"], inv["optical_file"]))
    opt = summary.optical_inventory(root)
    assert len(opt) == 2 and (opt["bands"] == 15).all() and (opt["resolution_m"] == 20.0).all()
    counts = summary.unlabeled_counts(inv, opt)
    assert int(counts.loc["total", "total"]) == len(inv)
    per = truth.groupby("glacier").size()
    for g, n in per.items():
        assert int(counts.loc[g, "total"]) == n
        assert counts.loc[g, "optical_file"] == opt.set_index("glacier").loc[g, "file"]
    # a SAR image without an optical partner is an error naming the file
    (root / "optical" / opt["file"].iloc[0]).unlink()
    with pytest.raises(DataError, match="no optical image"):
        summary.unlabeled_inventory(root)


# ---------------------------------------------------------------------------------------------------- realism
def test_gradient_histogram_frame_puts_known_gradients_in_the_right_bins() -> None:
    rows, cols = np.mgrid[0:64, 0:64]
    ramp = (20 + 3 * cols).astype(np.uint8)          # Sobel/8 magnitude is exactly 3 grey levels / px inside
    flat = np.full((64, 64), 100, np.uint8)           # gradient 0 inside
    mask = np.where(cols < 32, 2, 3).astype(np.uint8)  # left glacier, right ocean
    image = np.where(cols < 32, flat, ramp).astype(np.uint8)
    df = summary.gradient_histogram_frame([Patch(image, mask)], "test", bins=32, max_gradient=32.0)
    assert set(df["class"]) == {1, 2, 3}
    for c, expected in ((2, 0.0), (3, 3.0)):
        d = df[df["class"] == c]
        assert d["density"].sum() == pytest.approx(1.0)
        top = d.loc[d["density"].idxmax()]
        assert top["bin_left"] <= expected < top["bin_right"] and top["density"] > 0.95
    assert df[df["class"] == 1]["density"].sum() == 0.0   # no rock
    with pytest.raises(ValueError):
        summary.gradient_histogram_frame([Patch(image, mask)], "test", max_gradient=0)


def test_gradient_histograms_of_real_patches(real_samples_dir: Path) -> None:
    real = load_real_patches(real_samples_dir)
    df = summary.gradient_histogram_frame(real, "real", bins=16)
    sums = df.groupby("class")["density"].sum()
    assert np.allclose(sums, 1.0)   # all three classes occur in the seven patches


# ---------------------------------------------------------------------------------------------------- construction
@pytest.fixture(scope="module")
def constructed(tmp_path_factory: pytest.TempPathFactory) -> tuple[synthetic.RawScenes, Path]:
    base = tmp_path_factory.mktemp("raw")
    raw = synthetic.generate_raw_scenes(base / "raw", seed=5, aoi_size_m=(1600.0, 1200.0))
    out = base / "constructed"
    construct.construct_ssl4sar(raw.sar_dir, raw.optical_dir, raw.aoi_path, out, progress=False)
    return raw, out


def test_coregistration_residuals_are_far_below_one_pixel(constructed: tuple[synthetic.RawScenes, Path]) -> None:
    raw, out = constructed
    res = summary.coregistration_residuals(out, raw.pattern)
    assert set(res["glacier"]) == set(raw.glaciers)
    sar = res[res["sensor"] != "S2"]
    opt = res[res["sensor"] == "S2"]
    assert len(opt) == 2 and len(sar) >= 4
    assert (sar["median_abs_error"] < 0.1).all()                       # dB
    assert (sar["median_abs_error"] < 0.3 * sar["shift_1px_error"]).all()
    assert (opt["median_abs_error"] < 0.3 * opt["shift_1px_error"]).all()
    assert (opt["scl_agreement"] > 0.95).all()
    # the check can fail: a SAR output shifted by two pixels is far off
    victim = out / sar["file"].iloc[0]
    with rasterio.open(victim) as src:
        profile, data = src.profile, src.read(1)
    shifted = out / "shifted"
    shifted.mkdir()
    (shifted / "sar" / "train").mkdir(parents=True)
    with rasterio.open(shifted / sar["file"].iloc[0], "w", **profile) as dst:
        dst.write(np.roll(data, 2, axis=1), 1)
    (shifted / "manifest.csv").write_text(
        (out / "manifest.csv").read_text().splitlines()[0] + "\n"
        + next(line for line in (out / "manifest.csv").read_text().splitlines() if sar["file"].iloc[0] in line)
        + "\n")
    (shifted / "grids.json").write_text((out / "grids.json").read_text())
    bad = summary.coregistration_residuals(shifted, raw.pattern)
    assert float(bad["median_abs_error"].iloc[0]) > sar["shift_1px_error"].iloc[0]


def test_coregistration_example_collects_before_and_after(constructed: tuple[synthetic.RawScenes, Path]) -> None:
    raw, out = constructed
    ex = summary.coregistration_example(raw.sar_dir, raw.optical_dir, raw.aoi_path, out, glacier=raw.glaciers[0],
                                        pattern=raw.pattern)
    assert ex.glacier == raw.glaciers[0] and ex.grid_crs == "EPSG:32622" and ex.raw_optical_crs == "EPSG:3413"
    assert ex.sar.shape == ex.scl.shape == ex.rgb.shape[:2] == ex.truth_db.shape == ex.truth_scl.shape
    # the chosen raw SAR scene was not on the grid lattice already (sub-pixel offset, other spacing or CRS)
    assert ex.raw_sar_name in {"S1B_IW_GRDH_20190706T100431_HH.tif", "S1A_IW_GRDH_20190713T100513_HH.tif"}
    kinds = {f.kind for f in ex.footprints}
    assert kinds == {"sar", "optical", "aoi", "grid"}
    used = {f.name for f in ex.footprints if f.kind == "sar" and f.used}
    assert "S1A_IW_GRDH_20190703T100512_faraway.tif" not in used
    grid = next(f for f in ex.footprints if f.kind == "grid").geometry
    assert all(f.geometry.intersects(grid) for f in ex.footprints if f.used)
    valid = ex.scl > 0
    assert (ex.scl[valid] == ex.truth_scl[valid]).mean() > 0.95
    finite = np.isfinite(ex.raw_sar_db)
    assert -23.0 < np.nanmin(ex.raw_sar_db) and np.nanmax(ex.raw_sar_db[finite]) < -5.0   # −14 ± 8 dB
    with pytest.raises(DataError, match="no grid"):
        summary.coregistration_example(raw.sar_dir, raw.optical_dir, raw.aoi_path, out, glacier="Petermann")


# ---------------------------------------------------------------------------------------------------- data chapter
def test_source_note_says_synthetic_or_real() -> None:
    note = summary.source_note("CaFFe", "work_dir/data/caffe", synthetic=True, preset="demo", seed=3)
    assert note.startswith("**This run reads synthetic CaFFe data**") and "`work_dir/data/caffe`" in note
    assert "preset `demo`, seed 3" in note
    assert summary.source_note("SSL4SAR", "/data/ssl", synthetic=False, preset="demo", seed=0) == \
        "This run reads the SSL4SAR data in `/data/ssl`."


def test_validation_split_note_names_the_picked_stems(caffe_root: Path) -> None:
    inventory = summary.caffe_inventory(caffe_root)
    note = summary.validation_split_note(inventory).splitlines()
    # the official split of 559 images: the first 56 of RandomState(1).permutation(559), in index order
    first = sorted(np.random.RandomState(1).permutation(559)[:56].tolist())[:10]
    assert note[0] == f"official split: 56 validation / 503 training images; validation indices into the sorted 559 " \
                      f"names start with {first}"
    val = inventory.loc[inventory["split"] == "val", "stem"].tolist()
    assert val and note[1] == (f"this run's train folder holds 12 images, not 559: the same rule picks {len(val)} of "
                               f"them for validation ({', '.join(val)})")
    full = pd.DataFrame({"split": ["train"] * 503 + ["val"] * 56 + ["test"] * 3, "stem": [f"s{i}" for i in range(562)]})
    assert "the validation images are the official ones" in summary.validation_split_note(full)


def test_construction_tables_show_file_names_and_every_defect(constructed: tuple[synthetic.RawScenes, Path]) -> None:
    raw, out = constructed
    rows = pd.read_csv(out / "manifest.csv").to_dict("records")
    table = summary.construction_table(rows)
    assert list(table.columns) == ["file", "resolution_m", "valid_fraction", "split", "source"]
    assert len(table) == len(rows) and not table["source"].astype(str).str.contains("/").any()
    skipped = pd.read_csv(out / "manifest_skipped.csv").to_dict("records")
    skips, undetected = summary.construction_skips(skipped, raw.bad)
    assert undetected == []   # every broken scene the generator built in was skipped
    built_in = skips.set_index("source")["built-in defect"]
    for name, defect in raw.bad.items():
        assert built_in[name] == defect
    _, missed = summary.construction_skips(skipped[1:], {**raw.bad, "never_seen.tif": "no_crs"})
    assert "never_seen.tif" in missed
