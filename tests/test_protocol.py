"""``ssl4sar protocol`` / :func:`ssl4sar.protocol.run_protocol`: the book's experiments without the notebooks, the
``gpu`` preset, and synthetic data made in several processes."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from ssl4sar.book import WorkLayout
from ssl4sar.cli import main
from ssl4sar.config import load_preset
from ssl4sar.data.synthetic import COMPLETE_MARKER, ensure_synthetic_data, generate
from ssl4sar.experiments import RUN_COLUMNS, SUMMARY_COLUMNS
from ssl4sar.protocol import run_protocol


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_synthetic_data_is_the_same_for_any_number_of_workers(tmp_path: Path) -> None:
    generate(tmp_path / "one", preset="smoke", seed=3, layouts=("caffe", "ssl4sar"), progress=False)
    generate(tmp_path / "two", preset="smoke", seed=3, layouts=("caffe", "ssl4sar"), progress=False, workers=2)
    one, two = _tree(tmp_path / "one"), _tree(tmp_path / "two")
    assert len(one) > 20 and any(k.endswith(".tif") for k in one) and any(k.endswith(".png") for k in one)
    assert one.keys() == two.keys()
    assert [k for k in one if one[k] != two[k]] == []


def test_gpu_preset_trains_the_paper_network_with_five_seeds() -> None:
    gpu, paper, demo = load_preset("gpu"), load_preset("paper"), load_preset("demo")
    assert gpu["model"] == paper["model"]
    assert gpu["data"]["context_size"] == paper["data"]["context_size"] == gpu["pretrain"]["context_size"] == 512
    assert (gpu["inference"]["stride"], gpu["inference"]["gaussian_sigma"]) == (128, 32.0)
    assert gpu["finetune"]["seeds"] == 5
    # the demo's easier synthetic data, at least 10 unlabeled scenes per labelled one, >= 32 test scenes
    assert gpu["synthetic"]["radiometry"] == demo["synthetic"]["radiometry"]
    assert gpu["synthetic"]["n_unlabeled"] >= 10 * gpu["synthetic"]["n_train"]
    assert gpu["synthetic"]["n_test"] >= 32
    assert min(gpu["synthetic"]["scene_size"]) >= gpu["data"]["context_size"]


def test_existing_synthetic_data_is_reused_and_another_preset_regenerates(tmp_path: Path) -> None:
    layout = WorkLayout(tmp_path)
    two = ("caffe", "ssl4sar")
    made, _ = ensure_synthetic_data(layout.data, "smoke", 0, layouts=two)
    again, seconds = ensure_synthetic_data(layout.data, "smoke", 0, layouts=two)
    other_seed, _ = ensure_synthetic_data(layout.data, "smoke", 1, layouts=two)
    assert (made, again, seconds, other_seed) == (True, False, 0.0, True)
    info = json.loads((layout.data / "synthetic.json").read_text())
    assert {info["layouts"][x]["seed"] for x in two} == {1}
    assert json.loads((layout.data / COMPLETE_MARKER).read_text())["layouts"] == list(two)
    assert not (layout.data / "timeseries").exists()
    # the book needs the time series too: two layouts are not enough, all three are made (the same files again)
    caffe_bytes = sorted(p.read_bytes() for p in (layout.data / "caffe").rglob("*.png"))
    more, _ = ensure_synthetic_data(layout.data, "smoke", 1)
    assert more and (layout.data / "timeseries").is_dir()
    assert sorted(p.read_bytes() for p in (layout.data / "caffe").rglob("*.png")) == caffe_bytes
    # and a subset of what is there is reused
    assert ensure_synthetic_data(layout.data, "smoke", 1, layouts=two) == (False, 0.0)


@pytest.mark.slow
def test_protocol_runs_pretraining_seeds_tests_and_ensembles(tmp_path: Path) -> None:
    record = run_protocol("smoke", tmp_path, device="cpu", inits=("scratch", "optsimmim"), seeds=2, workers=1,
                          threads=1)
    layout = WorkLayout(tmp_path)
    runs = pd.read_csv(layout.finetune_runs_csv)
    assert list(runs.columns) == list(RUN_COLUMNS)
    assert list(zip(runs["init"], runs["seed"], strict=True)) == [("scratch", 0), ("scratch", 1),
                                                                 ("optsimmim", 0), ("optsimmim", 1)]
    assert (runs["test_images"] == load_preset("smoke")["synthetic"]["n_test"]).all()
    summary = pd.read_csv(layout.evaluate_summary_csv)
    assert list(summary.columns) == list(SUMMARY_COLUMNS)
    assert len(summary) == len(runs) + 2 and summary["tta"].tolist()[-2:] == [False, True]
    assert layout.finetune_tests_csv.is_file()
    assert layout.pretrained("optsimmim").is_file() and not layout.pretrain_run("opttranslator").exists()
    written = json.loads((tmp_path / "protocol.json").read_text())
    assert written["finished"] is not None and written["device"] == "cpu" and written["seeds"] == [0, 1]
    assert list(written["stages"]) == ["data", "pretrain_optsimmim", "finetune", "evaluate"]
    assert all(stage["seconds"] >= 0 for stage in written["stages"].values())
    assert written["stages"]["finetune"]["runs"] == 4
    assert written["stages"]["pretrain_optsimmim"]["steps"] > 0
    assert list(record.stages) == list(written["stages"]) and record.finished == written["finished"]


def test_protocol_command_names_a_bad_preset(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert main(["protocol", "--preset", str(tmp_path / "nope.yaml"), "--work-dir", str(tmp_path / "w")]) == 1
    assert "nope.yaml" in caplog.text and "unknown preset" in caplog.text


@pytest.mark.parametrize(("options", "message"), [
    (["--seeds", "0"], "seeds must be at least 1 (fine-tuning runs per initialisation), got 0"),
    (["--seeds", "-2"], "seeds must be at least 1 (fine-tuning runs per initialisation), got -2"),
    (["--workers", "0"], "workers must be at least 1, got 0"),
    (["--gpu-workers", "0"], "gpu_workers must be at least 1, got 0"),
    (["--data-workers", "-1"], "data_workers must be at least 1, got -1"),  # -1 is not "all cores" here
    (["--inits", "scratch", "bogus"], "init 'bogus' is none of scratch, imagenet, optsimmim, opttranslator and "
                                      "no checkpoint file"),
    (["--inits", "scratch", "scratch"], "inits must be distinct, got scratch twice"),
    (["--seed", "-4"], "seed: expected an integer in [0, 4294967295], got -4"),
    (["--device", "foo"], "device 'foo': expected auto, cpu, cuda or cuda:N"),  # was torch's RuntimeError traceback
])
def test_protocol_refuses_bad_settings_before_any_work(options: list[str], message: str, tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # Before, these surfaced after the data had been generated and both pretrainings had run (--seeds 0, a bad init
    # name, numpy's unnamed "expected non-negative integer" for --seed -4), or were silently taken as 1 (--workers 0,
    # --data-workers -1).
    def no_work(*args: object, **kwargs: object) -> None:
        pytest.fail("the protocol started work before its settings were checked")

    monkeypatch.setattr("ssl4sar.protocol.ensure_synthetic_data", no_work)
    work = tmp_path / "w"
    device = [] if "--device" in options else ["--device", "cpu"]
    assert main(["protocol", "--preset", "smoke", "--work-dir", str(work), *device, *options]) == 1
    assert message in caplog.text
    assert not work.exists()


def test_protocol_takes_a_checkpoint_path_as_an_initialisation(tmp_path: Path) -> None:
    from ssl4sar.protocol import check_protocol_settings

    checkpoint = tmp_path / "mine.ckpt"
    checkpoint.write_bytes(b"weights")
    check_protocol_settings(["scratch", str(checkpoint)], seeds=2, workers=1, gpu_workers=1, data_workers=1, seed=0)


@pytest.mark.parametrize("resume", [False, True])
def test_protocol_resume_reaches_the_pretrainings_and_the_runs(resume: bool, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from ssl4sar import experiments, pretrain_report

    seen: dict[str, object] = {}

    class Stop(Exception):
        pass

    def pretraining(*args: object, **kwargs: object) -> None:
        seen["pretraining"] = kwargs["resume"]
        raise Stop

    def runs(*args: object, **kwargs: object) -> None:
        seen["runs"] = kwargs["resume"]
        raise Stop

    monkeypatch.setattr("ssl4sar.protocol.ensure_synthetic_data", lambda *a, **k: ({}, 0.0))
    monkeypatch.setattr(pretrain_report, "run_pretraining", pretraining)
    monkeypatch.setattr(experiments, "finetune_seeds", runs)
    with pytest.raises(Stop):
        run_protocol("smoke", tmp_path / "w", device="cpu", resume=resume)
    with pytest.raises(Stop):
        run_protocol("smoke", tmp_path / "w", device="cpu", inits=["scratch"], resume=resume)
    assert seen == {"pretraining": resume, "runs": resume}


def test_a_full_disk_in_any_stage_is_one_error_line_naming_the_work_folder(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    """Before: a write that found no space while the protocol generated its data ended in a traceback."""
    import errno
    import logging

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("ssl4sar.protocol.ensure_synthetic_data", full)
    with caplog.at_level(logging.ERROR):
        rc = main(["protocol", "--preset", "smoke", "--work-dir", str(tmp_path / "w"), "--inits", "scratch",
                   "--device", "cpu"])
    assert rc == 1
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is None
    message = errors[0].getMessage()
    assert message.startswith(f"{tmp_path / 'w'}: no space left on the device") and "--resume" in message
