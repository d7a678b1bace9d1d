"""Faults around training runs (issue 17): divergence, resume overrides, metrics history, moved run folders,
crafted and non-finite checkpoints. Each test reproduced its fault before the fix; the smoke preset keeps each run
to seconds."""

from __future__ import annotations

import builtins
import logging
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

from ssl4sar import cli
from ssl4sar.config import load_preset
from ssl4sar.errors import DataError
from ssl4sar.models.convert import load_model, save_checkpoint
from ssl4sar.models.tyrion import Tyrion

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _finetune(data: Path, out: Path, *extra: str) -> int:
    return cli.main(["finetune", "--preset", "smoke", "--data", str(data), "--out", str(out), "--accelerator", "cpu",
                     "--no-progress", *extra])


@pytest.fixture(scope="module")
def one_epoch_run(smoke_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished one-epoch smoke run (copied by the tests that resume it)."""
    out = tmp_path_factory.mktemp("ft") / "run"
    assert _finetune(smoke_data, out, "--max-epochs", "1") == 0
    return out


def _copy(run: Path, dest: Path) -> Path:
    shutil.copytree(run, dest)
    return dest


class _Crafted:
    """Pickles as a call of ``open(marker, "w")``: loading it with the full unpickler creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (builtins.open, (str(self.marker), "w"))


# ------------------------------------------------------------------------------------------------- out of memory
_CPU_ALLOCATOR_FAILURE = ("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
                          "you tried to allocate 8589934592 bytes. Error code 12 (Cannot allocate memory)")


@pytest.mark.parametrize("error", [torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
                                   RuntimeError(_CPU_ALLOCATOR_FAILURE)], ids=["cuda", "cpu-allocator"])
def test_out_of_memory_names_the_device_and_a_batch_that_keeps_the_recipe(
        smoke_data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
        error: Exception) -> None:
    def no_memory(self: Tyrion, x: torch.Tensor) -> torch.Tensor:
        raise error

    monkeypatch.setattr(Tyrion, "forward", no_memory)
    with caplog.at_level(logging.ERROR):
        rc = _finetune(smoke_data, tmp_path / "run")
    assert rc == 1                                              # one line, not the allocator's traceback
    message = " ".join(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)
    assert "fine-tuning ran out of memory on the CPU with 4 samples per device (32-true)" in message
    assert "--set finetune.batch_size_per_device=2: the global batch stays 4 (gradient accumulation over 2 steps)" \
        in message
    assert f"The checkpoints written so far stay in {tmp_path / 'run'}" in message


def test_other_runtime_errors_of_a_step_are_not_reported_as_out_of_memory(smoke_data: Path, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: Tyrion, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    monkeypatch.setattr(Tyrion, "forward", broken)
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied") as info:
        _finetune(smoke_data, tmp_path / "run")
    assert type(info.value) is RuntimeError


# ---------------------------------------------------------------------------------------------------- divergence
def test_divergence_stops_at_the_first_non_finite_step_without_checkpoints(smoke_data: Path, tmp_path: Path,
                                                                           caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "diverged"
    with caplog.at_level(logging.ERROR):
        rc = _finetune(smoke_data, out, "--set", "finetune.lr=1e12")
    assert rc == 1                                              # a message, no FloatingPointError traceback
    message = " ".join(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)
    assert "training diverged at epoch 0" in message and "no checkpoint was written before" in message
    assert not list((out / "checkpoints").glob("*.ckpt")) if (out / "checkpoints").exists() else True
    steps = pd.read_csv(out / "logs" / "metrics.csv")["step"] if (out / "logs" / "metrics.csv").exists() else []
    assert len(steps) == 0 or max(steps) < 4                    # stopped within epoch 0 (4 steps per epoch)


def test_divergence_after_a_good_epoch_names_the_last_good_checkpoint(one_epoch_run: Path, smoke_data: Path,
                                                                      tmp_path: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    out = _copy(one_epoch_run, tmp_path / "run")
    before = (out / "checkpoints" / "last.ckpt").read_bytes()
    with caplog.at_level(logging.ERROR):
        rc = _finetune(smoke_data, out, "--max-epochs", "2", "--set", "finetune.lr=1e12")
    assert rc == 1
    message = " ".join(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)
    assert f"the last good checkpoint is {out / 'checkpoints' / 'last.ckpt'}" in message
    assert (out / "checkpoints" / "last.ckpt").read_bytes() == before   # not overwritten by the diverged state
    for ckpt in (out / "checkpoints").glob("*.ckpt"):
        sd = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
        assert all(torch.isfinite(v).all() for v in sd.values() if v.is_floating_point()), ckpt


# ------------------------------------------------------------------------------------------------------ full disk
def test_a_full_disk_keeps_the_last_checkpoint_whole_and_says_so(one_epoch_run: Path, smoke_data: Path,
                                                                  tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: Lightning wrote each checkpoint in the system's temporary folder and copied it over the old one; a
    disk that filled up during the copy left ``last.ckpt`` (the only way to resume) cut off, and the run ended in
    a traceback. Now a checkpoint is written beside its final name and renamed onto it, and the error is one line
    naming the run folder."""
    import errno

    out = _copy(one_epoch_run, tmp_path / "run")
    last = out / "checkpoints" / "last.ckpt"
    before = last.read_bytes()
    real_write = Path.write_bytes

    def write_half(self: Path, data: Any) -> int:
        if self.name.endswith(".ckpt"):          # a checkpoint file: part of it, then a full disk
            real_write(self, bytes(data)[:1000])
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", write_half)
    with caplog.at_level(logging.ERROR):
        rc = _finetune(smoke_data, out, "--max-epochs", "2")
    assert rc == 1
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "no space left on the device" in errors[0].getMessage()
    assert str(out) in errors[0].getMessage() and "resumes" in errors[0].getMessage()
    assert last.read_bytes() == before                                   # the epoch-0 state, whole
    assert not [p.name for p in (out / "checkpoints").iterdir() if ".part" in p.name]
    monkeypatch.setattr(Path, "write_bytes", real_write)
    assert _finetune(smoke_data, out, "--max-epochs", "2") == 0          # and the run goes on from it
    assert torch.load(last, map_location="cpu", weights_only=True)["epoch"] == 1


def test_a_killed_checkpoint_write_leaves_nothing_once_resumed(one_epoch_run: Path, smoke_data: Path,
                                                               tmp_path: Path) -> None:
    out = _copy(one_epoch_run, tmp_path / "run")
    leftover = out / "checkpoints" / ".last.k1ll3d_x.part.ckpt"         # what a kill during a write leaves
    leftover.write_bytes(b"\x00" * 100)
    unrelated = out / "checkpoints" / "notes.part.ckpt.txt"
    unrelated.write_text("mine")
    assert _finetune(smoke_data, out, "--max-epochs", "2") == 0
    assert not leftover.exists() and unrelated.exists()


# ------------------------------------------------------------------------------------------------ resume overrides
def test_learning_rate_override_on_resume_reaches_the_optimiser(one_epoch_run: Path, smoke_data: Path,
                                                                tmp_path: Path) -> None:
    out = _copy(one_epoch_run, tmp_path / "run")
    assert _finetune(smoke_data, out, "--max-epochs", "2", "--set", "finetune.lr=0.0005") == 0
    last = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["epoch"] == 1
    assert [g["lr"] for g in last["optimizer_states"][0]["param_groups"]] == [0.0005]   # was 0.01 before the fix


def test_resume_with_other_model_settings_is_refused(one_epoch_run: Path, smoke_data: Path, tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    out = _copy(one_epoch_run, tmp_path / "run")
    with caplog.at_level(logging.ERROR):
        rc = _finetune(smoke_data, out, "--max-epochs", "2", "--set", "model.drop_path_rate=0.3")
    assert rc == 1
    assert "other model settings" in caplog.text and "model.drop_path_rate" in caplog.text


def test_resume_from_another_initialisation_is_refused(one_epoch_run: Path, smoke_data: Path, tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    """A resumed run takes every weight from its checkpoint: asking it for other initial weights cannot be honoured
    (before the fix it went on from the old ones and recorded the new ``--init`` as its initialisation)."""
    out = _copy(one_epoch_run, tmp_path / "run")    # started from scratch
    other = _tiny_checkpoint(tmp_path / "other.pt")
    before = (out / "checkpoints" / "last.ckpt").read_bytes()
    with caplog.at_level(logging.ERROR):
        rc = _finetune(smoke_data, out, "--max-epochs", "2", "--init", str(other))
    assert rc == 1
    assert "the run being resumed started from scratch, not from" in caplog.text and "other.pt" in caplog.text
    assert (out / "checkpoints" / "last.ckpt").read_bytes() == before


def test_a_resumed_run_records_the_initialisation_it_started_from(smoke_data: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    init = _tiny_checkpoint(tmp_path / "init.pt")
    out = tmp_path / "run"
    assert _finetune(smoke_data, out, "--max-epochs", "1", "--init", str(init)) == 0
    monkeypatch.chdir(tmp_path)   # the same file, named by a relative path
    assert _finetune(smoke_data, out, "--max-epochs", "2", "--init", "init.pt") == 0
    run = yaml.safe_load((out / "config.yaml").read_text())["run"]
    started = f"checkpoint:{init} [weights {_fingerprint(init)}]"
    assert run["resumed_from"] and run["init"] == started      # before the fix: "init.pt"
    last = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["epoch"] == 1 and last["hyper_parameters"]["init"] == started
    # without --init the run goes on from whatever it started from (the preset's init is not asked for)
    assert _finetune(smoke_data, out, "--max-epochs", "3") == 0
    assert yaml.safe_load((out / "config.yaml").read_text())["run"]["init"] == started


def test_resume_after_the_initial_weights_file_was_overwritten_is_refused(smoke_data: Path, tmp_path: Path,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    """The file named by --init now holds other weights (a pretraining run again, exported to the same path): the
    resumed run would go on from weights that are not the ones it records (before the fix it did). The same
    weights written again (a new export of one checkpoint) resume as before."""
    init = _tiny_checkpoint(tmp_path / "init.pt")
    out = tmp_path / "run"
    assert _finetune(smoke_data, out, "--max-epochs", "1", "--init", str(init)) == 0
    started = _fingerprint(init)
    _tiny_checkpoint(init, note="exported again")        # same weights, other bytes
    assert _finetune(smoke_data, out, "--max-epochs", "2", "--init", str(init)) == 0
    _tiny_checkpoint(init, seed=1)                       # other weights, same path
    now = _fingerprint(init)
    assert now != started
    before = (out / "checkpoints" / "last.ckpt").read_bytes()
    with caplog.at_level(logging.ERROR):
        rc = _finetune(smoke_data, out, "--max-epochs", "3", "--init", str(init))
    assert rc == 1
    assert str(init) in caplog.text and f"not the weights {started}" in caplog.text \
        and f"now holds the weights {now}" in caplog.text
    assert (out / "checkpoints" / "last.ckpt").read_bytes() == before
    # without --init nothing is asked of the file, and the run goes on from its checkpoint
    assert _finetune(smoke_data, out, "--max-epochs", "3") == 0
    # a file that is gone cannot be compared: the run resumes from its checkpoint, which holds every weight
    init.unlink()
    assert _finetune(smoke_data, out, "--max-epochs", "4", "--init", str(init)) == 0


def _fingerprint(path: Path) -> str:
    from ssl4sar.models.convert import load_model
    from ssl4sar.models.initialise import weights_fingerprint

    return weights_fingerprint(load_model(path).state_dict())


# ------------------------------------------------------------------------------------------------ metrics history
def test_resume_appends_to_the_metrics_history(one_epoch_run: Path, smoke_data: Path, tmp_path: Path) -> None:
    out = _copy(one_epoch_run, tmp_path / "run")
    assert _finetune(smoke_data, out, "--max-epochs", "2") == 0
    df = pd.read_csv(out / "logs" / "metrics.csv")
    assert sorted(df.dropna(subset=["val/mde"])["epoch"].astype(int)) == [0, 1]   # before the fix: [1]
    assert sorted(df.dropna(subset=["train/loss_step"])["step"].astype(int))[0] < 4  # epoch-0 steps are kept


# ------------------------------------------------------------------------------------------------ moved run folder
def test_copied_run_folder_keeps_its_best_checkpoint_tracking(one_epoch_run: Path, smoke_data: Path,
                                                              tmp_path: Path) -> None:
    out = _copy(one_epoch_run, tmp_path / "copied")
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    states = [v for k, v in ckpt["callbacks"].items() if "val/iou_patch" in k]
    recorded = float(states[0]["best_model_score"])
    assert _finetune(smoke_data, out, "--max-epochs", "2", "--set", "finetune.lr=0") == 0   # lr 0: no better score
    after = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    state = next(v for k, v in after["callbacks"].items() if "val/iou_patch" in k)
    assert float(state["best_model_score"]) >= recorded            # before the fix: epoch 1's score, tracking lost
    assert Path(state["best_model_path"]).parent == out / "checkpoints"   # not the original folder
    assert Path(state["best_model_path"]).is_file()


# ------------------------------------------------------------------------------------------ checkpoints and trust
def _tiny_checkpoint(path: Path, seed: int = 0, **extra: Any) -> Path:
    with torch.random.fork_rng():     # the same seed, the same weights; the tests' random state untouched
        torch.manual_seed(seed)
        model = Tyrion.from_config(load_preset("smoke")["model"])
    save_checkpoint(path, model)
    obj = torch.load(path, map_location="cpu", weights_only=True)
    obj["meta"].update(extra)
    torch.save(obj, path)
    return path


def test_crafted_checkpoint_runs_nothing_without_trust(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    marker = tmp_path / "pwned"
    crafted = _tiny_checkpoint(tmp_path / "crafted.pt", payload=_Crafted(marker))
    with pytest.raises(DataError, match=r"crafted\.pt: refused to load.*builtins\.open|io\.open"):
        load_model(crafted)
    scene = tmp_path / "scene.png"
    scene.write_bytes(b"")
    with caplog.at_level(logging.ERROR):
        rc = cli.main(["predict", str(scene), "--checkpoint", str(crafted), "--out", str(tmp_path / "pred"),
                       "--device", "cpu"])
    assert rc != 0 and "--trust-checkpoint" in caplog.text
    assert not marker.exists()                                       # before the fix the file appeared here
    load_model(crafted, trusted=True)                                # the documented way to run it
    assert marker.exists()


def test_crafted_resume_checkpoint_is_refused(one_epoch_run: Path, smoke_data: Path, tmp_path: Path) -> None:
    out = _copy(one_epoch_run, tmp_path / "run")
    marker = tmp_path / "pwned"
    last = out / "checkpoints" / "last.ckpt"
    obj = torch.load(last, map_location="cpu", weights_only=True)
    obj["hyper_parameters"]["payload"] = _Crafted(marker)
    torch.save(obj, last)
    assert _finetune(smoke_data, out, "--max-epochs", "2") == 1
    assert not marker.exists()


def test_harmless_lightning_types_are_allowed(tmp_path: Path) -> None:
    import argparse

    import numpy as np
    from lightning.fabric.utilities.data import AttributeDict

    path = _tiny_checkpoint(tmp_path / "ok.pt", args=argparse.Namespace(lr=0.1), where=Path("/data/x"),
                            hp=AttributeDict(a=1), score=np.float64(0.5))
    assert isinstance(load_model(path), Tyrion)


def test_non_finite_weights_are_refused_by_every_loader(tmp_path: Path, smoke_data: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    model = Tyrion.from_config(load_preset("smoke")["model"])
    with torch.no_grad():
        model.head.weight.fill_(float("nan"))
    ckpt = save_checkpoint(tmp_path / "nan.pt", model)
    with pytest.raises(DataError, match=r"nan\.pt: .*non-finite weights.*head\.weight"):
        load_model(ckpt)
    for argv in (["evaluate", "--checkpoint", str(ckpt), "--data", str(smoke_data), "--split", "test",
                  "--out", str(tmp_path / "ev"), "--device", "cpu", "--no-progress"],
                 ["predict", str(next((smoke_data / "sar_images" / "test").iterdir())), "--checkpoint", str(ckpt),
                  "--out", str(tmp_path / "pred"), "--device", "cpu"],
                 ["finetune", "--preset", "smoke", "--data", str(smoke_data), "--out", str(tmp_path / "ft"),
                  "--init", str(ckpt), "--accelerator", "cpu", "--no-progress"]):
        caplog.clear()
        with caplog.at_level(logging.ERROR):
            assert cli.main(argv) != 0, argv[0]                     # before the fix: exit 0, all zones NA
        assert "non-finite weights" in caplog.text and "nan.pt" in caplog.text, argv[0]


def test_non_finite_network_output_names_the_scene(tmp_path: Path, smoke_data: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    model = Tyrion.from_config(load_preset("smoke")["model"])
    with torch.no_grad():
        model.head.weight.fill_(3e38)                                 # finite weights, overflowing logits
    ckpt = save_checkpoint(tmp_path / "overflow.pt", model)
    scene = next((smoke_data / "sar_images" / "test").iterdir())
    rc = cli.main(["predict", str(scene), "--checkpoint", str(ckpt), "--out", str(tmp_path / "pred"),
                   "--device", "cpu", "--no-overlay"])
    assert rc == 1                                                    # counted: one scene failed
    skipped = pd.read_csv(tmp_path / "pred" / "skipped.csv")
    assert skipped["scene"].tolist() == [str(scene)] and "not finite" in skipped["reason"][0]
    with caplog.at_level(logging.ERROR):
        rc = cli.main(["evaluate", "--checkpoint", str(ckpt), "--data", str(smoke_data), "--split", "test",
                       "--out", str(tmp_path / "ev"), "--device", "cpu", "--no-progress"])
    assert rc == 1 and "not finite" in caplog.text and "sar_images/test/" in caplog.text


def test_resume_from_a_non_finite_checkpoint_is_refused(one_epoch_run: Path, smoke_data: Path, tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    out = _copy(one_epoch_run, tmp_path / "run")
    last = out / "checkpoints" / "last.ckpt"
    obj = torch.load(last, map_location="cpu", weights_only=True)
    obj["state_dict"]["model.head.bias"] = torch.full_like(obj["state_dict"]["model.head.bias"], float("inf"))
    torch.save(obj, last)
    with caplog.at_level(logging.ERROR):
        assert _finetune(smoke_data, out, "--max-epochs", "2") == 1  # before: resumed and trained on inf weights
    assert "last.ckpt" in caplog.text and "non-finite weights" in caplog.text and "model.head.bias" in caplog.text


# ------------------------------------------------------------------------------------------------- training budget
@pytest.mark.parametrize(("command", "budget", "message"), [
    ("finetune", ["--max-epochs", "-3"], "max_epochs must be 0 or more (-1: no epoch limit, with max_steps), got -3"),
    ("finetune", ["--max-epochs", "-1"], "max_epochs -1 (no epoch limit) needs a max_steps limit"),
    ("finetune", ["--max-steps", "-5"], "max_steps must be 0 or more (-1 or none: no step limit), got -5"),
    ("pretrain", ["--max-epochs", "-2"], "max_epochs must be 0 or more (-1: no epoch limit, with max_steps), got -2"),
])
@pytest.mark.timeout(600)  # before the fix, --max-epochs -1 trained until stopped
def test_a_training_budget_outside_its_range_is_refused_before_anything_is_written(
        command: str, budget: list[str], message: str, smoke_data: Path, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    # Lightning took --max-epochs -3 and --max-steps -5 to a MisconfigurationException traceback after the data had
    # loaded, and --max-epochs -1 alone to a run that never ends.
    data_flag, data = ("--data", smoke_data) if command == "finetune" else ("--ssl4sar", tmp_path)
    out = tmp_path / "run"
    with caplog.at_level(logging.ERROR):
        rc = cli.main([command, *(["--method", "optsimmim"] if command == "pretrain" else []), "--preset", "smoke",
                       data_flag, str(data), "--out", str(out), "--accelerator", "cpu", "--no-progress", *budget])
    assert rc == 1
    assert message in caplog.text
    assert not out.exists()


def test_training_budget_keeps_lightnings_no_limit_values() -> None:
    from ssl4sar.runner import training_budget

    assert training_budget(3, None) == (3, None)
    assert training_budget(3, -1) == (3, None)  # -1: no step limit, as in Lightning
    assert training_budget(-1, 20) == (-1, 20)  # a run bounded by optimiser steps only
    assert training_budget(0, 0) == (0, 0)  # nothing trained: the run exports its initial weights
