"""The evaluation pipeline (``ssl4sar.evaluate``) and ``ssl4sar evaluate``, on smoke-preset synthetic data."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from scipy import ndimage

from ssl4sar.cli import main
from ssl4sar.config import load_preset
from ssl4sar.data.caffe import discover, load_scene
from ssl4sar.domain import OCEAN
from ssl4sar.errors import DataError, SettingError
from ssl4sar.evaluate import (
    EXTRA_COLUMNS,
    ZONE_COLUMNS,
    evaluate,
    evaluate_predictions,
    inference_settings,
)
from ssl4sar.inference import predict_probabilities
from ssl4sar.metrics import BREAKDOWN_COLUMNS, PER_IMAGE_COLUMNS
from ssl4sar.models.convert import load_model, save_checkpoint
from ssl4sar.models.tyrion import Tyrion

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data(smoke_data: Path) -> Path:
    """Smoke-preset synthetic data (the session's ``smoke_data``, read only here); returns the CaFFe root."""
    return smoke_data


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> list[Path]:
    """Two smoke-preset TYRION checkpoints with different random weights."""
    folder = tmp_path_factory.mktemp("ckpt")
    cfg = load_preset("smoke")["model"]
    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        paths.append(save_checkpoint(folder / f"tyrion_{seed}.pt", Tyrion.from_config(cfg)))
    return paths


def gt_zone_maps(root: Path, split: str) -> dict[str, np.ndarray]:
    return {s.stem: load_scene(s, with_front=False, with_bbox=False)["zones"] for s in discover(root, split)}


def has_long_enough_front(front: np.ndarray, resolution_m: float, min_length_m: float = 750.0) -> bool:
    """Independent check: does any 8-connected GT front piece reach the short-front threshold (>=)?"""
    labels, n = ndimage.label(front > 0, structure=np.ones((3, 3)))
    sizes = np.bincount(labels.ravel())[1:]
    return bool(n) and bool((sizes >= min_length_m / resolution_m).any())


def read_png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.array(im)


# ------------------------------------------------------------------------------------------------ settings

def test_inference_settings_scale_with_the_model_context():
    paper = inference_settings(512)
    assert (paper.stride, paper.sigma, paper.batch_size, paper.rotations) == (128, 32.0, 8, (0,))
    assert inference_settings(512, tta=True).rotations == (0, 1, 2, 3)
    # the demo preset's 64 px stride / 16 px sigma at 256 px context, scaled to a 64-px model
    demo = load_preset("demo")
    s = inference_settings(64, preset="demo", tta=True)
    scale = 64 / demo["data"]["context_size"]
    assert s.stride == round(demo["inference"]["stride"] * scale)
    assert s.sigma == pytest.approx(demo["inference"]["gaussian_sigma"] * scale)
    assert s.batch_size == demo["inference"]["batch_size"]
    assert s.rotations == tuple(demo["inference"]["tta_rotations"])
    explicit = inference_settings(64, stride=8, sigma=3.5, batch_size=2, flips=True)
    assert (explicit.stride, explicit.sigma, explicit.batch_size, explicit.flips) == (8, 3.5, 2, True)
    with pytest.raises(ValueError, match="stride"):
        inference_settings(64, stride=33)
    with pytest.raises(ValueError, match="context size"):
        inference_settings(63)
    for sigma in (math.inf, math.nan):  # infinity ended evaluate and predict in an OverflowError traceback
        with pytest.raises(SettingError, match=f"sigma must be a positive number of pixels, got {sigma}"):
            inference_settings(64, sigma=sigma)


# ------------------------------------------------------------------------------------------ class-map path

def test_ground_truth_zone_maps_give_zero_mde(data, tmp_path):
    """GT zones in → fronts identical to the GT except where the GT front is too short for the 750 m rule."""
    maps = gt_zone_maps(data, "trainval")
    res = evaluate_predictions(maps, data, "trainval", tmp_path / "gt", figures=0, progress=False)
    expect_missing = set()
    for scene in discover(data, "trainval"):
        front = load_scene(scene)["front"]
        if not has_long_enough_front(front, scene.meta.resolution_m):
            expect_missing.add(scene.stem)
    df = res.per_image.set_index("stem")
    assert set(df.index[df["missing"]]) == expect_missing
    assert res.summary["missing_fronts"] == len(expect_missing) < len(df)
    # the predicted front can only lose short GT pieces: every predicted pixel is a GT pixel
    assert res.summary["pooled_mde_m"] < 0.5 * df["resolution_m"].min()
    assert (df.loc[~df["missing"], "n_pred"] <= df.loc[~df["missing"], "n_gt"]).all()
    assert res.summary["mean_iou"] == pytest.approx(1.0)
    assert res.zone_metrics.loc["macro", "f1"] == pytest.approx(1.0)

    # without the short-front rule the GT fronts come back exactly: MDE 0, no missing front
    exact = evaluate_predictions(maps, data, "trainval", tmp_path / "exact", figures=0, progress=False,
                                 min_front_length_m=0.0)
    assert exact.summary["missing_fronts"] == 0
    assert exact.summary["pooled_mde_m"] == 0.0
    assert (exact.per_image["n_pred"] == exact.per_image["n_gt"]).all()


def test_the_log_says_when_no_scene_has_a_front(data, tmp_path, caplog):
    """All-ocean maps hold no front: the log line says the MDE is undefined, not "MDE None m"."""
    maps = {stem: np.full_like(zones, OCEAN) for stem, zones in gt_zone_maps(data, "test").items()}
    with caplog.at_level(logging.INFO, logger="ssl4sar.evaluate"):
        res = evaluate_predictions(maps, data, "test", tmp_path / "ocean", figures=0, progress=False)
    assert res.summary["pooled_mde_m"] is None and res.summary["missing_fronts"] == len(maps)
    line = next(r.getMessage() for r in caplog.records if "missing fronts" in r.getMessage())
    assert "MDE None" not in line
    assert f"{len(maps)} missing fronts, MDE undefined (no front found), mean IoU" in line


def test_shifted_zone_maps_give_growing_errors(data, tmp_path):
    maps = gt_zone_maps(data, "test")
    results = {}
    for shift in (0, 2, 6):
        shifted = {k: np.roll(v, shift, axis=0) for k, v in maps.items()}
        results[shift] = evaluate_predictions(shifted, data, "test", tmp_path / f"s{shift}", figures=0,
                                              progress=False, min_front_length_m=0.0).summary
    assert results[0]["pooled_mde_m"] == 0.0
    assert 0 < results[2]["pooled_mde_m"] < results[6]["pooled_mde_m"]
    assert results[0]["mean_iou"] > results[2]["mean_iou"] > results[6]["mean_iou"]
    # a shift of k rows moves a front by at most k pixels: every distance is ≤ k · resolution
    res_max = max(s.meta.resolution_m for s in discover(data, "test"))
    assert results[2]["pooled_mde_m"] <= 2 * res_max


def test_class_map_outputs_and_tables(data, tmp_path):
    maps = gt_zone_maps(data, "test")
    out = tmp_path / "out"
    res = evaluate_predictions(maps, data, "test", out, figures=1, progress=False)
    stems = sorted(maps)
    for stem in stems:
        zones = read_png(out / "class_maps" / f"{stem}_zones.png")
        assert zones.shape == maps[stem].shape and set(np.unique(zones)) <= {0, 64, 127, 254}
        np.testing.assert_array_equal(zones, np.array([0, 64, 127, 254], np.uint8)[maps[stem]])
        front = read_png(out / "fronts" / f"{stem}_front.png")
        assert set(np.unique(front)) <= {0, 255}
        row = res.per_image.set_index("stem").loc[stem]
        assert int((front == 255).sum()) == row["n_pred"]
    assert sorted(p.name for p in (out / "figures").iterdir()) == [f"{stems[0]}_overlay.png"]
    assert not (out / "uncertainty").exists()  # no model, no uncertainty

    per_image = pd.read_csv(out / "per_image.csv")
    assert list(per_image.columns) == list(PER_IMAGE_COLUMNS) + list(ZONE_COLUMNS) + list(EXTRA_COLUMNS)
    assert list(per_image["stem"]) == stems
    assert list(pd.read_csv(out / "breakdown.csv").columns) == list(BREAKDOWN_COLUMNS)
    zones_tbl = pd.read_csv(out / "zone_metrics.csv", index_col=0, keep_default_na=False)  # "NA" is a class
    assert list(zones_tbl.index) == ["NA", "rock", "glacier", "ocean", "macro"]
    assert list(zones_tbl.columns) == ["precision", "recall", "f1", "iou"]
    summary = json.loads((out / "summary.json").read_text())
    for key in ("pooled_mde_m", "picture_normalised_mde_m", "front_length_normalised_mde_m", "missing_fronts",
                "images", "mean_iou", "settings", "versions"):
        assert key in summary
    assert summary["images"] == len(stems)
    assert json.loads((out / "per_image.json").read_text())[0]["stem"] == stems[0]

    # re-running into the same folder with fewer figures leaves no stale figure behind
    evaluate_predictions(maps, data, "test", out, figures=0, progress=False)
    assert list((out / "figures").iterdir()) == []


def test_class_maps_in_caffe_pixel_values_are_accepted(data, tmp_path):
    maps = gt_zone_maps(data, "test")
    values = {k: np.array([0, 64, 127, 254], np.uint8)[v] for k, v in maps.items()}
    a = evaluate_predictions(maps, data, "test", tmp_path / "a", figures=0, progress=False).per_image
    b = evaluate_predictions(values, data, "test", tmp_path / "b", figures=0, progress=False).per_image
    pd.testing.assert_frame_equal(a, b)


def test_bad_class_maps_are_refused(data, tmp_path):
    maps = gt_zone_maps(data, "test")
    stem = sorted(maps)[0]
    with pytest.raises(DataError, match="not in the test split"):
        evaluate_predictions({**maps, "Mapple_2020-01-01_S1_20_1_001": maps[stem]}, data, "test", tmp_path,
                             progress=False)
    partial = {stem: maps[stem]}
    with pytest.raises(DataError, match="no class map for 2 of the 3"):
        evaluate_predictions(partial, data, "test", tmp_path, progress=False)
    one = evaluate_predictions(partial, data, "test", tmp_path / "one", progress=False, require_all=False,
                               figures=0)
    assert list(one.per_image["stem"]) == [stem]
    # a run that fails part-way leaves no summary.json behind (it is written last)
    assert (tmp_path / "one" / "summary.json").is_file()
    with pytest.raises(DataError, match=stem):
        evaluate_predictions({**maps, stem: maps[stem][:-1]}, data, "test", tmp_path / "one", progress=False)
    assert not (tmp_path / "one" / "summary.json").exists()
    with pytest.raises(DataError, match="unknown pixel values"):
        evaluate_predictions({**maps, stem: np.full_like(maps[stem], 9)}, data, "test", tmp_path, progress=False)


# ------------------------------------------------------------------------------------------------ model path

def test_model_evaluation_matches_direct_inference_and_the_class_map_path(data, checkpoints, tmp_path):
    out = tmp_path / "single"
    # fp32: the direct inference below is fp32 (the default, precision "auto", is bf16 on CPUs with native bf16)
    res = evaluate([checkpoints[0]], data, "test", out, device="cpu", stride=32, figures=0, progress=False,
                   precision="fp32")
    assert res.summary["settings"]["stride"] == 32 and res.summary["settings"]["sigma"] == 4.0
    assert res.summary["settings"]["amp_dtype"] is None
    assert res.summary["settings"]["n_maps_per_scene"] == 1
    assert (res.per_image["n_maps"] == 1).all()

    # the class map is the argmax of the stitched softmax of that model
    model = load_model(checkpoints[0])
    scene = discover(data, "test")[0]
    image = load_scene(scene)["image"]
    direct = predict_probabilities(model, image, context_size=64, stride=32, sigma=4.0, batch_size=8)
    np.testing.assert_array_equal(read_png(out / "class_maps" / f"{scene.stem}_zones.png"),
                                  np.array([0, 64, 127, 254], np.uint8)[direct.classes])
    # a single map has no spread
    assert read_png(out / "uncertainty" / f"{scene.stem}_uncertainty.png").max() == 0

    # scoring the written class maps through the class-map path gives the same table
    maps = {s.stem: read_png(out / "class_maps" / f"{s.stem}_zones.png") for s in discover(data, "test")}
    again = evaluate_predictions(maps, data, "test", tmp_path / "again", figures=0, progress=False)
    cols = [c for c in res.per_image.columns if c not in ("n_maps", "mean_uncertainty", "inference_s")]
    pd.testing.assert_frame_equal(res.per_image[cols], again.per_image[cols])


def test_cli_ensemble_with_tta_writes_everything(data, checkpoints, tmp_path, capsys):
    out = tmp_path / "cli"
    rc = main(["evaluate", "--checkpoint", str(checkpoints[0]), "--ensemble", str(checkpoints[1]), "--tta",
               "--split", "val", "--data", str(data), "--out", str(out), "--device", "cpu", "--stride", "32",
               "--batch-size", "16", "--figures", "1", "--save-probabilities", "--no-progress"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "MDE (pooled)" in printed and "val split" in printed
    scenes = discover(data, "val")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["checkpoints"] == [str(c) for c in checkpoints]
    assert summary["settings"]["tta"] is True and summary["settings"]["n_maps_per_scene"] == 8
    assert summary["settings"]["rotations"] == [0, 1, 2, 3]
    assert summary["images"] == len(scenes)
    for name in ("per_image", "breakdown", "zone_metrics"):
        assert (out / f"{name}.csv").is_file() and (out / f"{name}.json").is_file()
    for scene in scenes:
        shape = load_scene(scene)["image"].shape
        for folder, suffix in (("class_maps", "_zones.png"), ("fronts", "_front.png"),
                               ("uncertainty", "_uncertainty.png"), ("figures", "_overlay.png")):
            assert (out / folder / f"{scene.stem}{suffix}").is_file(), (folder, scene.stem)
        with np.load(out / "probabilities" / f"{scene.stem}_probabilities.npz") as npz:
            prob, std = npz["probabilities"], npz["std"]
        assert prob.dtype == np.float16 and prob.shape == (4, *shape) and std.shape == (4, *shape)
        np.testing.assert_allclose(prob.astype(np.float32).sum(axis=0), 1.0, atol=5e-3)
        # two different random models disagree somewhere: the uncertainty PNG is the predicted class's std × 255
        unc = read_png(out / "uncertainty" / f"{scene.stem}_uncertainty.png")
        lut = np.zeros(256, np.intp)
        lut[[0, 64, 127, 254]] = [0, 1, 2, 3]
        classes = lut[read_png(out / "class_maps" / f"{scene.stem}_zones.png")]
        expected = np.take_along_axis(std.astype(np.float32), classes[None], 0)[0] * 255
        assert unc.max() > 0
        assert np.abs(unc.astype(np.float32) - expected).max() <= 1.0
    row = pd.read_csv(out / "per_image.csv").iloc[0]
    assert row["n_maps"] == 8 and row["mean_uncertainty"] > 0


def test_bad_inputs_give_clear_errors(data, checkpoints, tmp_path, caplog):
    missing = tmp_path / "nope.pt"
    with pytest.raises(DataError, match="nope.pt.*checkpoint file not found"):
        evaluate([checkpoints[0], missing], data, "test", tmp_path / "o", device="cpu", progress=False)
    with caplog.at_level(logging.ERROR):
        rc = main(["evaluate", "--checkpoint", str(missing), "--data", str(data), "--out", str(tmp_path / "o")])
    assert rc == 1 and "nope.pt" in caplog.text and "checkpoint file not found" in caplog.text

    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"definitely not a checkpoint")
    with pytest.raises(DataError, match="junk.pt"):
        evaluate([junk], data, "test", tmp_path / "o", device="cpu", progress=False)

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="sar_images"):
        evaluate([checkpoints[0]], empty, "test", tmp_path / "o", device="cpu", progress=False)
    with pytest.raises(DataError, match="data folder not found"):
        evaluate_predictions({}, tmp_path / "absent", "test", tmp_path / "o", progress=False)
    (empty / "sar_images" / "test").mkdir(parents=True)
    with pytest.raises(DataError, match="no SAR images"):
        evaluate([checkpoints[0]], empty, "test", tmp_path / "o", device="cpu", progress=False)


def test_a_negative_figure_count_is_refused_before_any_scene(data, checkpoints, tmp_path, caplog):
    # --figures -1 (read elsewhere as "all") drew no figure at all, without a word
    out = tmp_path / "o"
    with caplog.at_level(logging.ERROR):
        rc = main(["evaluate", "--checkpoint", str(checkpoints[0]), "--data", str(data), "--out", str(out),
                   "--device", "cpu", "--no-progress", "--figures", "-1"])
    assert rc == 1 and "figures must be 0 or more (overlays of the first N scenes), got -1" in caplog.text
    assert not (out / "per_image.csv").exists()


def test_ensemble_members_must_share_the_context_size(data, checkpoints, tmp_path):
    cfg = {**load_preset("smoke")["model"], "img_size": 32, "window_size": 2}
    other = save_checkpoint(tmp_path / "small.pt", Tyrion.from_config(cfg))
    with pytest.raises(DataError, match="input size 32 px differs from 64 px"):
        evaluate([checkpoints[0], other], data, "test", tmp_path / "o", device="cpu", progress=False)


def test_inference_precision_resolution(monkeypatch):
    import ssl4sar.models.fast as fast

    monkeypatch.setattr(fast, "cpu_has_native_bf16", lambda: True)
    assert inference_settings(64).amp_dtype == "bfloat16"  # default auto: bf16 where native
    assert inference_settings(64, preset="smoke").amp_dtype == "bfloat16"  # the presets' inference.precision: auto
    assert inference_settings(64, precision="fp32").amp_dtype is None
    assert inference_settings(64, precision="fp32", amp_dtype="float16").amp_dtype == "float16"  # explicit wins
    fp32_preset = {**load_preset("smoke"), "inference": {**load_preset("smoke")["inference"], "precision": "fp32"}}
    assert inference_settings(64, preset=fp32_preset).amp_dtype is None
    monkeypatch.setattr(fast, "cpu_has_native_bf16", lambda: False)
    assert inference_settings(64).amp_dtype is None  # emulated bf16 is slower than fp32: auto stays fp32
    assert inference_settings(64, precision="bf16").amp_dtype == "bfloat16"
    with pytest.raises(ValueError, match="precision"):
        inference_settings(64, precision="fp16")
    # an autocast dtype torch has no name for fails here, not at the first scene ("torch has no attribute 'bf16'")
    with pytest.raises(ValueError, match="amp_dtype must be one of bfloat16, float16 or None.*'bf16'"):
        inference_settings(64, amp_dtype="bf16")
    # the device as the settings record it: "auto" resolved, one that is not there refused now
    assert inference_settings(64, device="auto").device == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="cuda:7"):
        inference_settings(64, device="cuda:7")


def test_a_full_disk_is_one_error_line_naming_the_folder(data, checkpoints, tmp_path, monkeypatch, caplog):
    """Before: an evaluation that found no space for a file ended in a traceback (OSError ENOSPC). The files are
    written atomically, so nothing half-written is left; the scenes scored before keep their records."""
    import errno

    import ssl4sar.evaluate as evaluate_module
    from ssl4sar.errors import DiskFull

    calls = []

    def full(path, **arrays):
        calls.append(path)
        if len(calls) > 1:      # the second scene's probabilities find the disk full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, **arrays)

    real = evaluate_module._write_npz
    monkeypatch.setattr(evaluate_module, "_write_npz", full)
    out = tmp_path / "o"
    with pytest.raises(DiskFull, match="no space left on the device while writing the evaluation") as err:
        evaluate([checkpoints[0]], data, "test", out, device="cpu", progress=False, save_probabilities=True)
    assert err.value.path == out and "--resume" in err.value.hint
    assert len(list((out / "records").glob("*.evaluation.json"))) == 1
    assert not list(out.rglob("*.part.*"))
    with caplog.at_level(logging.ERROR):
        rc = main(["evaluate", "--checkpoint", str(checkpoints[0]), "--data", str(data), "--out", str(out),
                   "--save-probabilities", "--resume", "--no-progress"])
    assert rc == 1
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "no space left on the device" in errors[0].getMessage()
