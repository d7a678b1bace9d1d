"""Building the SSL4SAR layout from raw georeferenced scenes (ssl4sar.data.construct) on the synthetic raw scenes of
``generate_raw_scenes``: Sentinel-1 σ⁰ in UTM 22N (dB with NaN / −9999 no-data, linear intensity, 20 m and 10 m),
Sentinel-2 in EPSG:3413 at 10 / 20 / 60 m (band-group files, single-band files, a 15-band file), partial overlaps,
no-data borders and broken scenes. The values follow a known pattern in map coordinates, so the co-registration is
checked pixel by pixel."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio

from ssl4sar.data.construct import (
    MANIFEST_COLUMNS,
    SKIPPED_COLUMNS,
    ConstructionManifest,
    GlacierAOI,
    GlacierGrid,
    construct_ssl4sar,
    db_to_uint8,
    parse_date,
    read_aois,
    resolve_sar_units,
    sar_to_db,
)
from ssl4sar.data.synthetic import RAW_S2_BANDS, RawScenes, generate_raw_scenes
from ssl4sar.errors import DataError

DB_RANGE = (-30.0, 5.0)   # the documented default mapping


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> RawScenes:
    return generate_raw_scenes(tmp_path_factory.mktemp("raw"), seed=3)


@pytest.fixture(scope="module")
def built(raw: RawScenes, tmp_path_factory: pytest.TempPathFactory) -> ConstructionManifest:
    return construct_ssl4sar(raw.sar_dir, raw.optical_dir, raw.aoi_path, tmp_path_factory.mktemp("built"),
                             progress=False)


def _centres(src: rasterio.DatasetReader) -> tuple[np.ndarray, np.ndarray]:
    t = src.transform
    cols, rows = np.meshgrid(np.arange(src.width) + 0.5, np.arange(src.height) + 0.5)
    return t.c + cols * t.a + rows * t.b, t.f + cols * t.d + rows * t.e


def _expected_dn(db: np.ndarray) -> np.ndarray:
    lo, hi = DB_RANGE
    return np.rint(1 + 254 * (np.clip(db, lo, hi) - lo) / (hi - lo))


# ------------------------------------------------------------------------------------------------ co-registration
def test_optical_is_coregistered_onto_the_sar_grid(raw: RawScenes, built: ConstructionManifest) -> None:
    pattern = raw.pattern
    optical = [r for r in built.rows if r["sensor"] == "S2"]
    assert sorted(r["glacier"] for r in optical) == sorted(raw.glaciers)
    for row in optical:
        with rasterio.open(built.out_dir / row["file"]) as src:
            bands = src.read().astype(np.float64)
            x, y = _centres(src)
            assert src.crs.to_epsg() == 32622 and src.res == (20.0, 20.0)
            assert list(src.descriptions) == list(RAW_S2_BANDS)
            grid = (src.crs, src.transform, src.shape)
        # every SAR image of the glacier lies on exactly this grid
        for sar in (r for r in built.rows if r["glacier"] == row["glacier"] and r["sensor"] != "S2"):
            with rasterio.open(built.out_dir / sar["file"]) as s:
                assert (s.crs, s.transform, s.shape) == grid
        valid = bands[1] > 0
        assert valid.mean() > 0.95
        for i, band in enumerate(RAW_S2_BANDS):
            if band == "SCL":   # nearest neighbour: the categorical checkerboard survives
                agree = (bands[i][valid] == pattern.scl(x, y)[valid]).mean()
                assert agree > 0.97, (row["glacier"], agree)
                continue
            scale = 1000.0 if band in ("AOT", "WVP") else 10000.0
            truth = pattern.s2_dn(band, x, y)
            err = np.abs(bands[i] - truth)[valid] / scale                     # in reflectance units
            shifted = np.abs(bands[i] - np.roll(truth, 1, axis=1))[valid] / scale   # one pixel (20 m) off
            assert err.mean() < 0.0015 and np.percentile(err, 99) < 0.004, (row["glacier"], band)
            assert shifted.mean() > 4 * err.mean() + 0.003, (row["glacier"], band)


def test_sar_is_cropped_resampled_and_scaled(raw: RawScenes, built: ConstructionManifest) -> None:
    pattern = raw.pattern
    sar_rows = [r for r in built.rows if r["sensor"] != "S2"]
    assert len(sar_rows) == 5
    units = set()
    for row in sar_rows:
        with rasterio.open(built.out_dir / row["file"]) as src:
            img = src.read(1).astype(np.float64)
            x, y = _centres(src)
            assert src.dtypes[0] == "uint8" and src.nodata == 0 and src.count == 1
            units.add(src.tags()["SAR_UNITS"])
        valid = img > 0
        expected = _expected_dn(pattern.sigma0_db(x, y))
        err = np.abs(img - expected)[valid]
        assert err.mean() < 0.2 and err.max() <= 3, row["file"]
        assert np.abs(img - np.roll(expected, 1, axis=0))[valid].mean() > 1.5   # a 20 m shift would show
        if row["source"] == "S1A_IW_GRDH_20190701T100512_HH.tif":   # the grid's anchor: a crop, no resampling
            assert err.max() == 0
    assert units == {"db", "intensity"}   # dB (NaN and -9999 no-data) and linear σ0 were recognised


def test_bad_scenes_are_skipped_and_reported(raw: RawScenes, built: ConstructionManifest) -> None:
    with built.skipped_path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and tuple(rows[0]) == SKIPPED_COLUMNS
    by_file = {Path(r["source"]).name: r for r in rows}
    reasons = {"no_crs": "no coordinate reference system", "no_overlap": "does not overlap",
               "all_nodata": "no valid pixel"}
    assert set(by_file) == set(raw.bad)
    for name, kind in raw.bad.items():
        assert reasons[kind] in by_file[name]["reason"], (name, by_file[name])
    assert {Path(r["source"]).name for r in built.skipped} == set(raw.bad)
    sources = {r["source"] for r in built.rows if r["sensor"] != "S2"}
    assert not sources & set(raw.bad)


def test_manifest_is_complete(raw: RawScenes, built: ConstructionManifest) -> None:
    out = built.out_dir
    with built.path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames or ()) == MANIFEST_COLUMNS
        rows = list(reader)
    on_disk = sorted(str(p.relative_to(out)) for p in out.glob("*/**/*.tif"))
    assert sorted(r["file"] for r in rows) == on_disk
    assert rows == built.rows
    for r in rows:
        with rasterio.open(out / r["file"]) as src:
            data = src.read(1 if r["sensor"] != "S2" else 2)
        assert r["crs"] == "EPSG:32622" and float(r["resolution_m"]) == 20.0
        assert abs(float(r["valid_fraction"]) - (data > 0).mean()) < 2e-4
        assert r["date"] in r["file"]
        if r["sensor"] == "S2":
            assert r["file"] == f"optical/{r['glacier']}_S2_{r['date']}.tif" and r["split"] == ""
            assert all((raw.optical_dir / f).exists() or any(p.name.startswith(f) for p in raw.optical_files)
                       for f in r["source"].split(";"))
        else:
            assert r["file"].startswith(f"sar/{r['split']}/S1_{r['glacier']}_{r['date']}_")
            assert (raw.sar_dir / r["source"]).is_file()
    # Jakobshavn's optical image is a mosaic of its two Sentinel-2 scenes
    jak = next(r for r in rows if r["sensor"] == "S2" and r["glacier"] == "Jakobshavn")
    assert len(jak["source"].split(";")) == 2
    # the latest scene of each glacier is held out for validation
    for g in raw.glaciers:
        mine = sorted((r for r in rows if r["glacier"] == g and r["sensor"] != "S2"), key=lambda r: r["date"])
        assert [r["split"] for r in mine] == ["train"] * (len(mine) - 1) + ["val"]
    grids = json.loads((out / "grids.json").read_text())
    assert set(grids) == set(raw.glaciers)


def test_output_reads_as_ssl4sar_layout(built: ConstructionManifest) -> None:
    from ssl4sar.data.unlabeled import discover_unlabeled, load_pair

    for split in ("train", "val"):
        pairs = discover_unlabeled(built.out_dir, split)
        assert pairs
        for pair in pairs:
            sar, optical = load_pair(pair)   # checks CRS, transform and shape
            assert sar.shape == optical.shape[1:] and optical.shape[0] == 14 and optical.max() == 255


def test_rerun_skips_finished_outputs_and_resumes(raw: RawScenes, built: ConstructionManifest,
                                                  tmp_path: Path) -> None:
    from ssl4sar.cli import main

    out = tmp_path / "copy"
    shutil.copytree(built.out_dir, out)
    mtimes = {p: p.stat().st_mtime_ns for p in out.glob("*/**/*.tif")}
    again = construct_ssl4sar(raw.sar_dir, raw.optical_dir, raw.aoi_path, out, progress=False)
    assert again.written == [] and sorted(again.reused) == sorted(built.files())
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/**/*.tif")} == mtimes
    assert again.rows == built.rows
    # an interrupted run: one output missing, and a torn last manifest line
    lost = next(r["file"] for r in built.rows if r["sensor"] != "S2")
    (out / lost).unlink()
    with (out / "manifest.csv").open("a") as fh:
        fh.write("sar/train/S1_Eqip_2019-07-1")
    assert main(["data", "construct", "--sar", str(raw.sar_dir), "--optical", str(raw.optical_dir), "--aoi",
                 str(raw.aoi_path), "--out", str(out), "--no-progress"]) == 0
    resumed = ConstructionManifest.read(out)
    assert resumed.rows == built.rows and (out / lost).is_file()
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/**/*.tif") if p != out / lost} == {
        p: t for p, t in mtimes.items() if p != out / lost}


def test_rerun_redoes_outputs_damaged_after_they_were_written(raw: RawScenes, built: ConstructionManifest,
                                                              tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A truncated output (an interrupted copy of the folder) and one that is no raster are written again on a rerun,
    byte for byte as before, with a warning naming each; the intact outputs are reused untouched."""
    out = tmp_path / "copy"
    shutil.copytree(built.out_dir, out)
    sar_file = next(r["file"] for r in built.rows if r["sensor"] != "S2")
    optical_file = next(r["file"] for r in built.rows if r["sensor"] == "S2")
    original = {f: (out / f).read_bytes() for f in (sar_file, optical_file)}
    (out / sar_file).write_bytes(original[sar_file][: len(original[sar_file]) // 2])
    (out / optical_file).write_bytes(b"not a GeoTIFF")
    mtimes = {p: p.stat().st_mtime_ns for p in out.glob("*/**/*.tif")}
    with caplog.at_level("WARNING", logger="ssl4sar"):
        again = construct_ssl4sar(raw.sar_dir, raw.optical_dir, raw.aoi_path, out, progress=False)
    assert sorted(again.written) == sorted([sar_file, optical_file])
    assert sorted(again.reused) == sorted(set(built.files()) - {sar_file, optical_file})
    assert again.rows == built.rows
    for f, data in original.items():
        assert (out / f).read_bytes() == data
        assert any(f in r.getMessage() and "damaged" in r.getMessage() for r in caplog.records), f
    assert {p: t for p, t in mtimes.items() if p.stat().st_mtime_ns != t} == {
        out / sar_file: mtimes[out / sar_file], out / optical_file: mtimes[out / optical_file]}


def test_workers_write_the_same_files_and_records(raw: RawScenes, built: ConstructionManifest,
                                                 tmp_path: Path) -> None:
    """SAR scenes converted in 2 processes (`--workers 2`): byte-identical files, the same manifest and skip report
    (in the same order) as the serial run; a half-written file of a killed run is removed when its scene is redone."""
    from ssl4sar.cli import main

    out = tmp_path / "parallel"
    first_sar = next(r["file"] for r in built.rows if r["sensor"] != "S2")
    leftover = (out / first_sar).parent / f".{Path(first_sar).stem}.k1ll3d_x.part.tif"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"half a GeoTIFF")
    assert main(["data", "construct", "--sar", str(raw.sar_dir), "--optical", str(raw.optical_dir), "--aoi",
                 str(raw.aoi_path), "--out", str(out), "--no-progress", "--workers", "2"]) == 0
    parallel = ConstructionManifest.read(out)
    assert parallel.rows == built.rows
    for name in ("manifest.csv", "manifest_skipped.csv", "grids.json", "construction.json"):
        assert (out / name).read_bytes() == (built.out_dir / name).read_bytes(), name
    files = sorted(p.relative_to(out) for p in out.glob("*/**/*.tif"))
    assert files == sorted(p.relative_to(built.out_dir) for p in built.out_dir.glob("*/**/*.tif"))
    for rel in files:
        assert (out / rel).read_bytes() == (built.out_dir / rel).read_bytes(), rel
    assert not leftover.exists()


def test_explicit_resolution_and_aoi_objects(raw: RawScenes, tmp_path: Path) -> None:
    """The API with AOI objects, a 40 m grid: the SAR is resampled (bilinear, in dB) and still matches."""
    aoi = read_aois(raw.aoi_path)[1]
    result = construct_ssl4sar(raw.sar_dir, raw.optical_dir, [aoi], tmp_path, resolution_m=40.0, progress=False)
    grid = result.grids[aoi.name]
    assert grid.resolution_m == 40.0 and grid.crs.to_epsg() == 32622
    for row in result.rows:
        assert float(row["resolution_m"]) == 40.0
        if row["sensor"] == "S2":
            continue
        with rasterio.open(tmp_path / row["file"]) as src:
            img = src.read(1).astype(np.float64)
            x, y = _centres(src)
        valid = img > 0
        err = np.abs(img - _expected_dn(raw.pattern.sigma0_db(x, y)))[valid]
        assert err.mean() < 1.0, row["file"]


@pytest.mark.parametrize(("setting", "message"), [
    # a ZeroDivisionError traceback, numpy's "cannot convert float NaN to integer", and every glacier skipped as
    # "area of interest smaller than one pixel"
    ({"resolution_m": 0.0}, "resolution_m must be a positive number of metres, got 0"),
    ({"resolution_m": float("nan")}, "resolution_m must be a positive number of metres, got nan"),
    ({"resolution_m": -10.0}, "resolution_m must be a positive number of metres, got -10"),
    # every output skipped, reported as a successful run with 0 files; run serially; an inverted DN stretch
    ({"min_valid_fraction": 1.5}, "min_valid_fraction must be in [0, 1], got 1.5"),
    ({"workers": 0}, "workers must be at least 1, got 0"),
    ({"dn_percentiles": (99.0, 1.0)},
     "dn_percentiles must be (low, high) with 0 <= low < high <= 100, got (99.0, 1.0)"),
])
def test_settings_outside_their_values_are_refused_before_anything_is_written(
        raw: RawScenes, tmp_path: Path, setting: dict, message: str) -> None:
    from ssl4sar.errors import SettingError

    out = tmp_path / "out"
    with pytest.raises(SettingError) as info:
        construct_ssl4sar(raw.sar_dir, raw.optical_dir, raw.aoi_path, out, progress=False, **setting)
    assert message in str(info.value)
    assert not out.exists()


# ------------------------------------------------------------------------------------------------ pieces
def test_areas_of_interest(raw: RawScenes, tmp_path: Path) -> None:
    aois = read_aois(raw.aoi_path)
    assert [a.name for a in aois] == list(raw.glaciers)
    assert aois[0].crs.to_epsg() == 4326 and aois[1].crs.to_epsg() == 32622
    # the lon/lat polygon, in UTM, is the 3 km × 2.4 km AOI (shrunk by 0.9, rotated): area ≈ 0.81 · 7.2 km²
    assert abs(aois[0].in_crs(aois[1].crs).area - 0.81 * 3000 * 2400) < 0.01 * 0.81 * 3000 * 2400
    bad = tmp_path / "bad.geojson"
    bad.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"glacier": "My_Glacier"}, "bbox": [0, 0, 1, 1], "geometry": None}]}))
    with pytest.raises(DataError, match="bad.geojson.*not usable in file names"):
        read_aois(bad)
    for resolution in (0, -20, "nan"):  # 0 fell through to the resolution_m argument; -20 made an empty grid
        bad.write_text(json.dumps({"type": "FeatureCollection", "features": [
            {"type": "Feature", "properties": {"glacier": "G", "resolution_m": resolution}, "bbox": [0, 0, 1, 1],
             "geometry": None}]}))
        with pytest.raises(DataError, match=r"bad.geojson: glacier G: resolution_m must be a positive number"):
            read_aois(bad)
    bad.write_text("{not json")
    with pytest.raises(DataError, match="bad.geojson.*not valid JSON"):
        read_aois(bad)
    # NaN is read by Python's JSON: the polygon was accepted and then overlapped nothing
    bad.write_text('{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {"glacier": "G"}, '
                   '"geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [NaN, 1], [0, 0]]]}}]}')
    with pytest.raises(DataError, match=r"bad.geojson: glacier G: the geometry has non-finite coordinates"):
        read_aois(bad)
    with pytest.raises(DataError, match="empty"):
        GlacierAOI.from_bbox("X", [1, 1, 0, 2])
    with pytest.raises(DataError, match="glacier X: the geometry has non-finite coordinates"):
        GlacierAOI.from_bbox("X", [0, 0, math.inf, 1])
    explicit = GlacierGrid.from_json({"crs": "EPSG:3413", "transform": [30, 0, 1000, 0, -30, 9000],
                                      "width": 10, "height": 5})
    assert explicit.shape == (5, 10) and explicit.resolution_m == 30.0 and explicit.bounds == (1000, 8850, 1300, 9000)
    assert GlacierGrid.from_json(explicit.to_json()) == explicit


def test_sar_units_and_8bit_mapping() -> None:
    assert resolve_sar_units("auto", "uint8") == "uint8"
    assert resolve_sar_units("auto", "uint16") == "dn"
    assert resolve_sar_units("auto", "float32", "Sigma0_HH_db") == "db"
    assert resolve_sar_units("auto", "float32", "units=amplitude") == "amplitude"
    assert resolve_sar_units("auto", "float32", "", np.array([0.01, np.nan, -3.0])) == "db"
    assert resolve_sar_units("auto", "float32", "", np.array([0.01, 0.2])) == "intensity"
    assert resolve_sar_units("amplitude", "float32", "dB") == "amplitude"
    with pytest.raises(ValueError):
        resolve_sar_units("kelvin", "float32")
    db = sar_to_db(np.array([0.01, 0.0, np.nan, 1.0]), "intensity")
    assert np.allclose(db[[0, 3]], [-20.0, 0.0]) and np.isnan(db[[1, 2]]).all()
    assert np.allclose(sar_to_db(np.array([0.1]), "amplitude"), -20.0)
    assert np.isnan(sar_to_db(np.array([-5.0, 2.0]), "db", invalid=np.array([False, True]))[1])
    dn = db_to_uint8(np.array([-40.0, -30.0, 5.0, 9.0, -12.5, np.nan], dtype=np.float32), "db", DB_RANGE)
    assert dn.tolist() == [1, 1, 255, 255, 128, 0]
    stretched = db_to_uint8(np.linspace(0.0, 100.0, 1001, dtype=np.float32), "dn", dn_percentiles=(0.0, 100.0))
    assert stretched[0] == 1 and stretched[-1] == 255 and stretched[500] == 128


def test_parse_date() -> None:
    assert str(parse_date("S1A_IW_GRDH_1SDH_20190715T101010_20190715T101035_028111")) == "2019-07-15"
    assert str(parse_date("S1_Jakobshavn_2019-07-01_0")) == "2019-07-01"
    assert parse_date("T22WEV_B04_10m") is None
    assert parse_date("x_20191340") is None   # not a date


def test_each_sentinel2_file_is_decoded_once_per_scene(raw: RawScenes, tmp_path: Path, monkeypatch) -> None:
    """A 15-band Sentinel-2 file (Earth Engine's S2_SR export) stores its bands pixel-interleaved, so reading one band
    decodes all 15: its bands are read in one pass, not one pass per band (15x the decoding; 26 of 37 s of a
    construction with one 3500 x 3500 px scene)."""
    import ssl4sar.data.construct.resampling as resampling

    reads: list[tuple[str, int]] = []
    real_open = resampling._open

    def counting_open(path):
        src = real_open(path)
        real_read = src.read

        def read(indexes=None, **kwargs):
            reads.append((Path(path).name, 1 if isinstance(indexes, int) else len(indexes)))
            return real_read(indexes, **kwargs)

        src.read = read
        return src

    monkeypatch.setattr(resampling, "_open", counting_open)
    built = construct_ssl4sar(raw.sar_dir, raw.optical_dir, raw.aoi_path, tmp_path / "out", progress=False)
    assert any(r["sensor"] == "S2" for r in built.rows)
    s2 = [(name, n) for name, n in reads if name.startswith("S2")]
    passes: dict[str, int] = {}
    for name, _ in s2:
        passes[name] = passes.get(name, 0) + 1
    multi = [name for name, n in s2 if n > 1]
    assert any(name.endswith("_S2SR.tif") for name in multi)  # the 15-band file: all its bands in one read
    assert set(passes.values()) == {1}, passes  # no file decoded twice for one scene


def test_a_raster_that_does_not_read_back_is_not_kept(raw: RawScenes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    """GDAL does not always report a write that failed (a full disk: the tiles stay in its cache until the file is
    closed, and closing reports nothing). Before, such a cut-off raster took its final name and a manifest row, and
    the command said it had written it. Now each raster is read back before it takes its name; on a full disk the
    command stops with one line naming the output folder."""
    import logging

    from ssl4sar.cli import main
    from ssl4sar.data.construct import resampling

    monkeypatch.setattr(resampling, "damaged_output", lambda path, grid: "unreadable (Read failed)")
    monkeypatch.setattr(resampling, "free_disk_bytes", lambda folder: 0)
    out = tmp_path / "out"
    with caplog.at_level(logging.ERROR):
        rc = main(["data", "construct", "--sar", str(raw.sar_dir), "--optical", str(raw.optical_dir), "--aoi",
                   str(raw.aoi_path), "--out", str(out), "--no-progress"])
    assert rc == 1
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].getMessage().startswith(f"{out}: no space left on the device")
    assert not list(out.glob("*/**/*.tif")) and not list(out.rglob("*.part.*"))
    # space left, but the file unreadable all the same: that file is named
    monkeypatch.setattr(resampling, "free_disk_bytes", lambda folder: 10**12)
    with pytest.raises(DataError, match="cannot be read back"):
        construct_ssl4sar(raw.sar_dir, raw.optical_dir, raw.aoi_path, tmp_path / "again", progress=False)
