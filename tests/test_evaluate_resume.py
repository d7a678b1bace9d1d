"""Resuming a stopped evaluation (``evaluate(..., resume=True)``, ``ssl4sar evaluate --resume``): what is kept,
what is evaluated again, and that the pooled tables equal those of an uninterrupted run."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import ssl4sar.evaluate as evaluate_module
import ssl4sar.inference as inference_module
from ssl4sar.cli import main
from ssl4sar.config import load_preset
from ssl4sar.data.caffe import discover
from ssl4sar.errors import DataError
from ssl4sar.evaluate import evaluate, evaluate_predictions, evaluate_with_and_without_tta
from ssl4sar.models.convert import save_checkpoint
from ssl4sar.models.tyrion import Tyrion

pytestmark = pytest.mark.usefixtures("one_torch_thread")

KW = {"device": "cpu", "stride": 32, "progress": False}


@pytest.fixture()
def data(smoke_data: Path, tmp_path: Path) -> Path:
    """A private copy of the smoke data (3 test scenes): some tests change its files."""
    return Path(shutil.copytree(smoke_data, tmp_path / "caffe"))


@pytest.fixture()
def model() -> Tyrion:
    torch.manual_seed(0)
    return Tyrion.from_config(load_preset("smoke")["model"]).eval()


class SceneCounter:
    """Stands in for ``predict_probabilities`` (or ``function``) in :mod:`ssl4sar.evaluate`: counts the scenes
    predicted and raises KeyboardInterrupt (a Ctrl-C, a kill) when scene number ``interrupt_at`` (1-based)
    starts."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, interrupt_at: int | None = None,
                 function: str = "predict_probabilities") -> None:
        self.calls = 0
        self.interrupt_at = interrupt_at
        self.function = getattr(inference_module, function)  # the real one, not an earlier counter
        monkeypatch.setattr(evaluate_module, function, self)

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.interrupt_at is not None and self.calls >= self.interrupt_at:
            raise KeyboardInterrupt
        return self.function(*args, **kwargs)


def scene_files(out: Path) -> dict[str, bytes]:
    """Every per-scene file (PNGs and probabilities) of an evaluation folder, by relative path."""
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and p.parent != out and p.parent.name != "records"}


def records(out: Path) -> list[str]:
    return sorted(p.name for p in (out / "records").glob("*")) if (out / "records").is_dir() else []


def test_a_stopped_evaluation_resumes_with_the_tables_of_an_uninterrupted_run(data, model, tmp_path, monkeypatch):
    stems = [s.stem for s in discover(data, "test")]
    assert len(stems) == 3
    kw = {**KW, "figures": 2, "save_probabilities": True, "min_front_length_m": 0.0}  # random weights: keep pieces
    full = evaluate([model], data, "test", tmp_path / "full", **kw)
    assert records(tmp_path / "full") == [f"{s}.evaluation.json" for s in stems]
    assert full.summary["scenes_kept_from_earlier_run"] == 0

    # stopped when the second scene starts: the first is scored and recorded, the run is unfinished
    out = tmp_path / "out"
    SceneCounter(monkeypatch, interrupt_at=2)
    with pytest.raises(KeyboardInterrupt):
        evaluate([model], data, "test", out, **kw)
    assert records(out) == [f"{stems[0]}.evaluation.json"]
    assert not (out / "summary.json").exists()
    first = out / "class_maps" / f"{stems[0]}_zones.png"
    first_mtime = first.stat().st_mtime_ns

    # the resume predicts the two other scenes only, and leaves the first one's files as they were
    counter = SceneCounter(monkeypatch)
    resumed = evaluate([model], data, "test", out, resume=True, **kw)
    assert counter.calls == 2
    assert first.stat().st_mtime_ns == first_mtime
    assert resumed.summary["scenes_kept_from_earlier_run"] == 1

    # … and pools to the same numbers and files as the uninterrupted run
    def same_results(result) -> None:
        timing = ["inference_s"]
        pd.testing.assert_frame_equal(result.per_image.drop(columns=timing), full.per_image.drop(columns=timing))
        pd.testing.assert_frame_equal(result.breakdown, full.breakdown)
        pd.testing.assert_frame_equal(result.zone_metrics, full.zone_metrics)
        def headline(summary: dict) -> dict:
            settings = {k: v for k, v in summary["settings"].items() if k != "batch_size"}
            return {**summary, "elapsed_s": None, "scenes_kept_from_earlier_run": None, "settings": settings}

        assert headline(result.summary) == headline(full.summary)
        assert scene_files(result.out_dir) == scene_files(full.out_dir)
        for name in ("per_image.csv", "breakdown.csv", "zone_metrics.csv"):
            a = pd.read_csv(result.out_dir / name).drop(columns=timing, errors="ignore")
            b = pd.read_csv(full.out_dir / name).drop(columns=timing, errors="ignore")
            pd.testing.assert_frame_equal(a, b)

    same_results(resumed)
    assert full.per_image["missing"].sum() < 3  # the comparison includes real distances, not only missing fronts

    # a second resume predicts nothing; the CLI says what it kept
    counter = SceneCounter(monkeypatch)
    same_results(evaluate([model], data, "test", out, resume=True, **{**kw, "batch_size": 3}))  # batch size: no
    assert counter.calls == 0


def test_a_resumed_evaluation_evaluates_again_what_changed(data, model, tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="ssl4sar.evaluate")
    scenes = discover(data, "test")
    out = tmp_path / "out"
    evaluate([model], data, "test", out, **KW)

    def redone(m=model, **kw) -> int:
        counter = SceneCounter(monkeypatch)
        evaluate([m], data, "test", out, resume=True, **{**KW, **kw})
        return counter.calls

    assert redone() == 0
    # other settings: inference (stride, precision, TTA) and scoring (minimum front length) alike
    assert redone(stride=16) == 3
    assert redone(stride=16) == 0
    assert redone(stride=16, min_front_length_m=500) == 3
    assert "the settings differ from the earlier run's (min_front_length_m)" in caplog.text
    assert redone(stride=16, min_front_length_m=500, precision="fp32") == 3
    assert redone(stride=16, min_front_length_m=500, precision="fp32") == 0

    kw = {"stride": 16, "min_front_length_m": 500, "precision": "fp32"}
    # other weights: one value of one parameter
    other = Tyrion.from_config(load_preset("smoke")["model"]).eval()
    other.load_state_dict(model.state_dict())
    with torch.no_grad():
        next(other.parameters()).view(-1)[0] += 1e-3
    assert redone(other, **kw) == 3
    assert redone(model, **kw) == 3

    # a changed ground-truth front (only that scene); the SAR image touched but identical (its sha256 decides)
    with Image.open(scenes[1].front_path) as im:
        front = np.array(im)
    Image.fromarray(np.roll(front, 3, axis=1)).save(scenes[1].front_path)
    st = scenes[2].sar_path.stat()
    os.utime(scenes[2].sar_path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    assert redone(**kw) == 1
    assert redone(**kw) == 0
    # a bounding-box file removed: the scene's front is no longer masked
    if scenes[0].bbox_path is not None:
        scenes[0].bbox_path.unlink()
        assert redone(**kw) == 1
    # a missing output, a truncated one (it was kept), and a damaged record
    (out / "fronts" / f"{scenes[2].stem}_front.png").unlink()
    assert redone(**kw) == 1
    with (out / "class_maps" / f"{scenes[0].stem}_zones.png").open("r+b") as f:
        f.truncate(50)
    assert redone(**kw) == 1
    record = out / "records" / f"{scenes[1].stem}.evaluation.json"
    record.write_text(record.read_text()[:100])
    assert redone(**kw) == 1
    assert redone(**kw) == 0


def test_a_scene_scored_again_loses_its_record_first(data, model, tmp_path, monkeypatch):
    # a run stopped half-way through rewriting a scene's files must not leave the old record over the new files
    scenes = discover(data, "test")
    out = tmp_path / "out"
    evaluate([model], data, "test", out, **KW)
    maps = {s.stem: np.asarray(Image.open(out / "class_maps" / f"{s.stem}_zones.png")) for s in scenes}
    maps[scenes[1].stem] = maps[scenes[1].stem][:-1]  # the second map is refused after the first is rewritten
    with pytest.raises(DataError, match="predicted class map"):
        evaluate_predictions(maps, data, "test", out, progress=False)
    assert records(out) == [f"{s.stem}.evaluation.json" for s in scenes[1:]]
    counter = SceneCounter(monkeypatch)
    evaluate([model], data, "test", out, resume=True, **KW)
    assert counter.calls == 1
    # an evaluation of given class maps writes no records, and removes those of the earlier model run
    maps[scenes[1].stem] = np.asarray(Image.open(out / "class_maps" / f"{scenes[1].stem}_zones.png"))
    evaluate_predictions(maps, data, "test", out, progress=False)
    assert records(out) == []


def test_half_written_files_of_a_killed_run_are_removed(data, model, tmp_path):
    stem = discover(data, "test")[0].stem
    out = tmp_path / "out"
    folder = out / "probabilities"
    folder.mkdir(parents=True)
    leftover = folder / f".{stem}_probabilities.k2x_9abc.part.npz"  # atomic_path's name for the npz
    leftover.write_bytes(b"\0" * 1000)
    mine = [folder / f".{stem}_probabilities.notes.npz", folder / f".{stem}_probabilities.k2x_9abc.part.npz.bak"]
    for p in mine:
        p.write_text("the user's")
    evaluate([model], data, "test", out, save_probabilities=True, **KW)
    assert not leftover.exists()
    assert all(p.read_text() == "the user's" for p in mine)


def test_cli_resume(data, model, tmp_path, capsys, monkeypatch):
    ckpt = save_checkpoint(tmp_path / "m.pt", model)
    args = ["evaluate", "--checkpoint", str(ckpt), "--data", str(data), "--out", str(tmp_path / "out"),
            "--device", "cpu", "--stride", "32", "--no-progress", "--figures", "0"]
    assert main(args) == 0
    assert "earlier run" not in capsys.readouterr().out
    counter = SceneCounter(monkeypatch)
    assert main([*args, "--resume"]) == 0
    assert counter.calls == 0
    assert "kept 3 of 3 scene(s) from an earlier run" in capsys.readouterr().out
    assert main(args) == 0  # without --resume: every scene again
    assert counter.calls == 3
    assert "earlier run" not in capsys.readouterr().out
    assert main([*args, "--resume", "--processes", "2"]) == 0  # the shards keep every scene
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["scenes_kept_from_earlier_run"] == 3


def test_the_books_ensemble_evaluation_run_again_evaluates_nothing(data, tmp_path, monkeypatch):
    from ssl4sar import experiments
    from ssl4sar.book import WorkLayout

    layout = WorkLayout(tmp_path / "work")
    cfg = load_preset("smoke")
    rows = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        ckpt = save_checkpoint(layout.root / "runs" / f"seed{seed}" / "best.pt", Tyrion.from_config(cfg["model"]))
        evaluate([ckpt], data, "test", ckpt.parent / "test", **KW)  # the run's own test evaluation (chapter 4)
        rows.append({"init": "scratch", "seed": seed, "checkpoint": str(ckpt), "val_fronts_found": 1.0,
                     "val_mde_m": 100.0})
    runs = pd.DataFrame(rows)
    def counters() -> tuple[SceneCounter, SceneCounter]:  # scenes predicted for one folder, and for both at once
        return SceneCounter(monkeypatch), SceneCounter(monkeypatch, function="predict_with_and_without_tta")

    one, both = counters()
    first = experiments.evaluate_ensembles(cfg, data, layout, runs, device="cpu")
    assert (one.calls, both.calls) == (0, 3)  # 3 scenes, without and with TTA from the same passes
    one, both = counters()
    again = experiments.evaluate_ensembles(cfg, data, layout, runs, device="cpu")
    assert (one.calls, both.calls) == (0, 0)
    pd.testing.assert_frame_equal(first, again)
    assert experiments.evaluate_ensembles(cfg, data, layout, runs, device="cpu", resume=False).equals(first)
    assert (one.calls, both.calls) == (0, 3)


def test_with_and_without_tta_in_one_pass_equals_two_evaluations(data, model, tmp_path, monkeypatch):
    other = Tyrion.from_config(load_preset("smoke")["model"]).eval()  # a second member: non-zero uncertainty
    kw = {**KW, "save_probabilities": True, "min_front_length_m": 0.0}  # random weights: keep every front piece
    members = [model, other]
    without = evaluate(members, data, "test", tmp_path / "without", figures=1, **kw)
    with_tta = evaluate(members, data, "test", tmp_path / "with_tta", tta=True, figures=2, **kw)

    one, both = SceneCounter(monkeypatch), SceneCounter(monkeypatch, function="predict_with_and_without_tta")
    pair = evaluate_with_and_without_tta(members, data, "test", tmp_path / "a", tmp_path / "b", figures=1,
                                         tta_figures=2, **kw)
    assert (one.calls, both.calls) == (0, 3)
    timing = ["inference_s"]
    for got, expected in zip(pair, (without, with_tta)):
        pd.testing.assert_frame_equal(got.per_image.drop(columns=timing), expected.per_image.drop(columns=timing))
        pd.testing.assert_frame_equal(got.breakdown, expected.breakdown)
        assert {**got.summary, "elapsed_s": None} == {**expected.summary, "elapsed_s": None}
        assert scene_files(got.out_dir) == scene_files(expected.out_dir)
        assert records(got.out_dir) == records(expected.out_dir)
    assert pair[0].summary["settings"]["n_maps_per_scene"] == 2 and pair[1].summary["settings"]["tta"] is True
    assert (pair[1].per_image["mean_uncertainty"] > 0).all()
    assert not pair[0].per_image["iou_macro"].equals(pair[1].per_image["iou_macro"])  # the two differ

    # records are shared with evaluate(): either path resumes the other's folders, and a half-done pair resumes
    one, both = SceneCounter(monkeypatch), SceneCounter(monkeypatch, function="predict_with_and_without_tta")
    evaluate(members, data, "test", tmp_path / "a", resume=True, figures=1, **kw)
    evaluate_with_and_without_tta(members, data, "test", tmp_path / "without", tmp_path / "with_tta", figures=1,
                                  tta_figures=2, resume=True, **kw)
    assert (one.calls, both.calls) == (0, 0)
    (tmp_path / "b" / "records" / f"{discover(data, 'test')[1].stem}.evaluation.json").unlink()
    again = evaluate_with_and_without_tta(members, data, "test", tmp_path / "a", tmp_path / "b", figures=1,
                                          tta_figures=2, resume=True, **kw)
    assert (one.calls, both.calls) == (1, 0)  # only the TTA folder lacked that scene: it alone is predicted
    assert scene_files(again[1].out_dir) == scene_files(with_tta.out_dir)
    with pytest.raises(ValueError, match="two folders"):
        evaluate_with_and_without_tta(members, data, "test", tmp_path / "a", tmp_path / "a", **KW)
    with pytest.raises(TypeError, match="tta"):
        evaluate_with_and_without_tta(members, data, "test", tmp_path / "a", tmp_path / "b", tta=False, **KW)


def test_scenes_shared_by_processes_give_the_files_and_tables_of_one_process(data, model, tmp_path, monkeypatch):
    ckpt = save_checkpoint(tmp_path / "m.pt", model)
    kw = {**KW, "figures": 2, "save_probabilities": True, "min_front_length_m": 0.0}  # figures: scenes 0 and 1
    one = evaluate([ckpt], data, "test", tmp_path / "one", **kw)
    two = evaluate([ckpt], data, "test", tmp_path / "two", processes=2, **kw)
    timing = ["inference_s"]
    pd.testing.assert_frame_equal(two.per_image.drop(columns=timing), one.per_image.drop(columns=timing))
    pd.testing.assert_frame_equal(two.breakdown, one.breakdown)
    assert {**two.summary, "elapsed_s": None} == {**one.summary, "elapsed_s": None}  # none kept: all new
    assert scene_files(two.out_dir) == scene_files(one.out_dir)  # figures by the scene's place in the split
    assert records(two.out_dir) == records(one.out_dir)
    assert len(list((two.out_dir / "figures").iterdir())) == 2

    # a resumed run with processes keeps what is there and says so; the pair takes processes too
    counter = SceneCounter(monkeypatch)  # counts this process's predictions only
    again = evaluate([ckpt], data, "test", tmp_path / "two", processes=2, resume=True, **kw)
    assert again.summary["scenes_kept_from_earlier_run"] == 3 and counter.calls == 0
    pair = evaluate_with_and_without_tta([ckpt], data, "test", tmp_path / "one", tmp_path / "tta", figures=2,
                                         tta_figures=0, processes=3, resume=True,
                                         **{k: v for k, v in kw.items() if k != "figures"})
    assert pair[0].summary["scenes_kept_from_earlier_run"] == 3
    assert pair[1].summary["scenes_kept_from_earlier_run"] == 0 and pair[1].summary["images"] == 3
    assert counter.calls == 0
    with pytest.raises(ValueError, match="needs checkpoint files"):
        evaluate([model], data, "test", tmp_path / "mem", processes=2, **KW)


def test_a_network_built_otherwise_from_the_same_weights_is_evaluated_again(data, model, tmp_path, monkeypatch):
    # window_size changes Tyrion's output but not its state dict (non-persistent relative-position tables)
    out = tmp_path / "out"
    evaluate([model], data, "test", out, **KW)
    other = Tyrion.from_config({**load_preset("smoke")["model"], "window_size": 8}).eval()
    other.load_state_dict(model.state_dict())
    counter = SceneCounter(monkeypatch)
    resumed = evaluate([other], data, "test", out, resume=True, **KW)
    assert counter.calls == 3 and resumed.summary["scenes_kept_from_earlier_run"] == 0


def test_an_input_replaced_while_its_scene_is_evaluated_is_evaluated_again(data, model, tmp_path, monkeypatch):
    # the record must describe the files as they were read, not as they are when it is written
    target = discover(data, "test")[1]
    real = inference_module.predict_probabilities
    calls = 0

    def replacing(*args, **kwargs):
        nonlocal calls
        calls += 1
        if calls == 2:  # the second scene was read: a new version of its zones arrives (written aside, moved over)
            with Image.open(target.zones_path) as im:
                zones = np.array(im)
            new = target.zones_path.with_name(".new.png")
            Image.fromarray(np.roll(zones, 40, axis=1)).save(new)
            os.replace(new, target.zones_path)
        return real(*args, **kwargs)

    monkeypatch.setattr(evaluate_module, "predict_probabilities", replacing)
    out = tmp_path / "out"
    evaluate([model], data, "test", out, **KW)
    counter = SceneCounter(monkeypatch)
    resumed = evaluate([model], data, "test", out, resume=True, **KW)
    assert counter.calls == 1 and resumed.summary["scenes_kept_from_earlier_run"] == 2
    fresh = evaluate([model], data, "test", tmp_path / "fresh", **KW)
    timing = ["inference_s"]
    pd.testing.assert_frame_equal(resumed.per_image.drop(columns=timing), fresh.per_image.drop(columns=timing))


def test_more_processes_than_cpu_threads_is_said(tmp_path, monkeypatch, caplog):
    """Each shard gets an equal share of torch's threads, at least one: with more processes than threads they
    oversubscribe the CPU, and the run should say so rather than be slower in silence."""
    import ssl4sar.parallel
    from ssl4sar.evaluate import _run_shards

    shares: list[int] = []

    def fake_parallel_map(fn, jobs, workers, *, threads):
        shares.append(threads)
        return [[0] for _ in jobs]

    monkeypatch.setattr(ssl4sar.parallel, "parallel_map", fake_parallel_map)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with caplog.at_level(logging.WARNING, logger="ssl4sar.evaluate"):
            _run_shards([tmp_path / "m.pt"], tmp_path, "test", [], {}, False, 2)
            assert not caplog.records
            _run_shards([tmp_path / "m.pt"], tmp_path, "test", [], {}, False, 3)
    finally:
        torch.set_num_threads(before)
    assert shares == [1, 1]
    assert "3 processes share 2 CPU thread(s)" in caplog.text and "--processes 2" in caplog.text
