"""Bad inputs and outputs across the commands (issue 17): truncated rasters, re-runs with other settings, oversized
images, unwritable output folders, a checkpoint missing a key, empty time-series input. Each test reproduced its
fault (a traceback, a silent reuse, a PermissionError after the work) before the fix."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from ssl4sar import cli
from ssl4sar.config import load_preset
from ssl4sar.data.construct import construct_ssl4sar
from ssl4sar.data.synthetic import RawScenes, generate_raw_scenes
from ssl4sar.errors import DataError
from ssl4sar.models.convert import save_checkpoint
from ssl4sar.models.tyrion import Tyrion


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> RawScenes:
    return generate_raw_scenes(tmp_path_factory.mktemp("raw"), seed=3)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ssl4sar.data.synthetic import generate

    root = tmp_path_factory.mktemp("smoke")
    generate(root, preset="smoke", seed=0, layouts=("caffe", "timeseries"))
    return root


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = Tyrion.from_config(load_preset("smoke")["model"])
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "model.pt", model)


def _truncate(path: Path, fraction: float) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def _errors(caplog: pytest.LogCaptureFixture) -> str:
    return " ".join(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)


# ------------------------------------------------------------------------------------------ data construct
def test_construct_skips_truncated_sar_and_optical_files(raw: RawScenes, tmp_path: Path) -> None:
    sar = tmp_path / "sar"
    optical = tmp_path / "optical"
    shutil.copytree(raw.sar_dir, sar)
    shutil.copytree(raw.optical_dir, optical)
    bad_sar = _truncate(sar / "S1A_IW_GRDH_20190713T100513_HH.tif", 0.6)       # header intact, pixels cut
    bad_opt = _truncate(optical / "S2A_MSIL2A_20190805T150801_T22WEV_B04_10m.tif", 0.6)
    out = tmp_path / "out"
    result = construct_ssl4sar(sar, optical, raw.aoi_path, out, progress=False)   # before the fix: RasterioIOError
    reasons = {Path(r["source"]).name: r["reason"] for r in result.skipped}
    assert "unreadable" in reasons[bad_sar.name] and "unreadable" in reasons[bad_opt.name]
    assert not any("20190805" in r["source"] for r in result.rows)   # no part of the broken scene is used
    others = [r for r in result.skipped if "20190805" in r["source"] and Path(r["source"]).name != bad_opt.name]
    assert others and all(f"unreadable file, {bad_opt.name}" in r["reason"] for r in others)
    assert all(not f.endswith("2019-07-13_0.tif") for f in result.files())
    assert result.files("S1") and result.files("S2")                  # the good scenes are all there
    assert (out / "manifest.csv").is_file() and not list(out.rglob(".*.part*"))


def test_construct_rerun_with_another_resolution_is_refused(raw: RawScenes, tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "out"
    first = construct_ssl4sar(raw.sar_dir, raw.optical_dir, raw.aoi_path, out, resolution_m=40.0, progress=False)
    assert first.written
    with pytest.raises(DataError, match=r"resolution_m.*40.*60"):      # before the fix: all reused at 40 m
        construct_ssl4sar(raw.sar_dir, raw.optical_dir, raw.aoi_path, out, resolution_m=60.0, progress=False)
    argv = ["data", "construct", "--sar", str(raw.sar_dir), "--optical", str(raw.optical_dir), "--aoi",
            str(raw.aoi_path), "--out", str(out), "--resolution", "60", "--no-progress"]
    with caplog.at_level(logging.ERROR):
        assert cli.main(argv) == 1
    assert str(out) in _errors(caplog) and "new --out" in _errors(caplog)
    again = construct_ssl4sar(raw.sar_dir, raw.optical_dir, raw.aoi_path, out, resolution_m=40.0, progress=False)
    assert not again.written and sorted(again.reused) == sorted(first.written)   # same settings: reused


# ------------------------------------------------------------------------------------------------ timeseries
def test_timeseries_with_a_truncated_front_says_unreadable(smoke: Path, tmp_path: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    fronts = tmp_path / "fronts"
    fronts.mkdir()
    for f in sorted((smoke / "timeseries" / "fronts").glob("*_front.tif")):
        shutil.copy(f, fronts)
    bad = _truncate(sorted(fronts.iterdir())[0], 0.6)
    argv = ["timeseries", *map(str, sorted(fronts.iterdir())), "--box", str(smoke / "timeseries" /
            "reference_box.geojson"), "--out", str(tmp_path / "ts")]
    with caplog.at_level(logging.ERROR):
        assert cli.main(argv) == 1                                      # before: a traceback about "no CRS"
    assert bad.name in _errors(caplog) and "cannot read" in _errors(caplog) and "CRS" not in _errors(caplog)


def test_timeseries_with_empty_input_is_a_message(smoke: Path, tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    empty = tmp_path / "JAC_2019-01-05_front.geojson"
    empty.write_text('{"type": "FeatureCollection", "features": []}')
    zero = tmp_path / "JAC_2019-02-05_front.geojson"
    zero.write_text("")
    box = str(smoke / "timeseries" / "reference_box.geojson")
    for front in (empty, zero):
        caplog.clear()
        with caplog.at_level(logging.ERROR):
            assert cli.main(["timeseries", str(front), "--box", box, "--out", str(tmp_path / "ts")]) == 1
        assert front.name in _errors(caplog)


# -------------------------------------------------------------------------------------------- oversized images
def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose IHDR claims ``width`` × ``height`` grey pixels (no image data)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk + struct.pack(">I", 0) + b"IEND" + struct.pack(">I",
                                                                                                  zlib.crc32(b"IEND")))
    return path


def test_oversized_png_is_refused_naming_file_and_size(smoke: Path, tmp_path: Path, checkpoint: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    data = tmp_path / "caffe"
    shutil.copytree(smoke / "caffe", data)
    for split in ("train", "test"):
        victim = sorted((data / "sar_images" / split).glob("*.png"))[0]
        _png_header_only(victim, 100_000, 100_000)
    for argv in (["finetune", "--preset", "smoke", "--data", str(data), "--out", str(tmp_path / "ft"),
                  "--accelerator", "cpu", "--no-progress"],
                 ["evaluate", "--checkpoint", str(checkpoint), "--data", str(data), "--split", "test",
                  "--out", str(tmp_path / "ev"), "--device", "cpu", "--no-progress"]):
        caplog.clear()
        with caplog.at_level(logging.ERROR):
            assert cli.main(argv) == 1, argv[0]                       # before: DecompressionBombError traceback
        assert "100000 × 100000" in _errors(caplog) and ".png" in _errors(caplog), argv[0]


# -------------------------------------------------------------------------------------------- unwritable output
def _every_command(out: Path, smoke: Path, raw: RawScenes, checkpoint: Path) -> dict[str, list[str]]:
    """The command lines of every command that writes a folder, each writing into ``out``."""
    caffe = smoke / "caffe"
    scene = next((caffe / "sar_images" / "test").glob("*.png"))
    ts = smoke / "timeseries"
    return {
        "data fetch": ["data", "fetch", "caffe-meta", "--dest", str(out)],
        "data synth": ["data", "synth", "--preset", "smoke", "--layouts", "caffe", "--out", str(out)],
        "data construct": ["data", "construct", "--sar", str(raw.sar_dir), "--optical", str(raw.optical_dir),
                           "--aoi", str(raw.aoi_path), "--out", str(out), "--no-progress"],
        "pretrain": ["pretrain", "--method", "optsimmim", "--preset", "smoke", "--ssl4sar", str(smoke),
                     "--out", str(out), "--accelerator", "cpu", "--no-progress"],
        "finetune": ["finetune", "--preset", "smoke", "--data", str(caffe), "--out", str(out),
                     "--accelerator", "cpu", "--no-progress"],
        "evaluate": ["evaluate", "--checkpoint", str(checkpoint), "--data", str(caffe), "--out", str(out),
                     "--device", "cpu", "--no-progress"],
        "predict": ["predict", str(scene), "--checkpoint", str(checkpoint), "--out", str(out), "--device", "cpu"],
        "timeseries": ["timeseries", *map(str, sorted((ts / "fronts").glob("*_front.geojson"))), "--box",
                       str(ts / "reference_box.geojson"), "--out", str(out)],
        "bench": ["bench", "--quick", "--device", "cpu", "--only", "none", "--out", str(out)],
    }


def test_every_command_checks_its_output_folder_first(smoke: Path, raw: RawScenes, checkpoint: Path,
                                                      tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    bad = blocker / "out"                                             # cannot be created, even by root
    commands = _every_command(bad, smoke, raw, checkpoint)
    for name, argv in commands.items():
        caplog.clear()
        with caplog.at_level(logging.ERROR):
            rc = cli.main(argv)                                       # before: PermissionError / OSError traceback
        assert rc != 0, name
        assert str(bad) in _errors(caplog) and "not writable" in _errors(caplog), name


# ------------------------------------------------------------------------------------- one command per folder
_HOLDER = textwrap.dedent("""
    import pathlib, sys, time
    from ssl4sar.errors import DataError
    from ssl4sar.io import ensure_writable_dir, output_locks
    with output_locks():
        try:
            ensure_writable_dir(sys.argv[1])
        except DataError as exc:
            print(exc)
            sys.exit(3)
        if len(sys.argv) > 2:
            pathlib.Path(sys.argv[2]).write_text("held")
            time.sleep(600)
""")


def _python(*args: str) -> list[str]:
    return [sys.executable, "-c", _HOLDER, *args]


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID")}
    return {**env, "HF_HUB_OFFLINE": "1", **extra}


@contextlib.contextmanager
def _held_by_another_process(folder: Path, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``folder`` prepared (and so locked) by a command-like process that then waits; killed (-9) at the end."""
    ready = tmp_path / f"{folder.name}.held"
    proc = subprocess.Popen(_python(str(folder), str(ready)), env=_clean_env())
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the holding process did not start"
            time.sleep(0.05)
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_every_command_refuses_a_folder_another_command_is_writing_into(
        smoke: Path, raw: RawScenes, checkpoint: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Two commands with the same output folder (two terminals) used to write checkpoints, records and downloads
    over each other; now the second stops at once, naming the folder, and writes nothing into it."""
    out = tmp_path / "busy"
    commands = {**_every_command(out, smoke, raw, checkpoint),
                "protocol": ["protocol", "--preset", "smoke", "--work-dir", str(out), "--inits", "scratch"]}
    with _held_by_another_process(out, tmp_path):
        for name, argv in commands.items():
            caplog.clear()
            with caplog.at_level(logging.ERROR):
                rc = cli.main(argv)
            assert rc != 0, name
            assert f"{out}: another process is writing into this" in _errors(caplog), (name, _errors(caplog))
            assert sorted(p.name for p in out.iterdir()) == [], name
    # the holder was killed (-9): nothing stale is left behind, and the folder is free again
    assert cli.main(commands["timeseries"]) == 0


def test_folder_locks_are_reentrant_and_left_to_rank_0(smoke: Path, tmp_path: Path) -> None:
    from ssl4sar.io import ensure_writable_dir, output_locks

    out = tmp_path / "run"
    ts = smoke / "timeseries"
    with output_locks():
        ensure_writable_dir(out)
        ensure_writable_dir(out)                                  # the same process again: not refused
        assert cli.main(["timeseries", *map(str, sorted((ts / "fronts").glob("*_front.geojson"))), "--box",
                         str(ts / "reference_box.geojson"), "--out", str(out)]) == 0
        other = subprocess.run(_python(str(out)), env=_clean_env(), capture_output=True, text=True, timeout=120)
        assert other.returncode == 3 and "another process is writing into this output folder" in other.stdout
        # a secondary rank of a multi-process training writes into rank 0's folder
        rank1 = subprocess.run(_python(str(out)), env=_clean_env(LOCAL_RANK="1"), capture_output=True, text=True,
                               timeout=120)
        assert rank1.returncode == 0, rank1.stdout + rank1.stderr
    after = subprocess.run(_python(str(out)), env=_clean_env(), capture_output=True, text=True, timeout=120)
    assert after.returncode == 0, after.stdout                    # released when the block ended


# ------------------------------------------------------------------------------------------------ predict
def test_predict_with_a_checkpoint_missing_a_key(smoke: Path, checkpoint: Path, tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    obj = torch.load(checkpoint, map_location="cpu", weights_only=True)
    del obj["state_dict"]["head.bias"]
    broken = tmp_path / "broken.pt"
    torch.save(obj, broken)
    scene = next((smoke / "caffe" / "sar_images" / "test").glob("*.png"))
    with caplog.at_level(logging.ERROR):
        rc = cli.main(["predict", str(scene), "--checkpoint", str(broken), "--out", str(tmp_path / "p"),
                       "--device", "cpu"])                             # before: a traceback
    assert rc == 1 and "broken.pt" in _errors(caplog) and "missing: head.bias" in _errors(caplog)
