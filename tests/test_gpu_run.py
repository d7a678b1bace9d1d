"""``tools/gpu_run.sh``, the one command a lent GPU machine runs, exercised on the CPU so that its wiring (arguments,
paths, the data it generates) is known to work before device minutes are spent on it. Smoke preset, the benchmark's
matmul peak only, the roofline with its kernels timed, one eager fine-tuning and one eager pretraining step, the
timing of `predict` on a small scene; the
compiled runs are left out (minutes of inductor code generation on this CPU; the compiled forwards are tested in
test_finetune.py / test_pretrain.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _packed(out: Path, tag: str) -> set[str]:
    with tarfile.open(out / f"{tag}.tar.gz") as tar:
        return {m.name.removeprefix("./") for m in tar.getmembers() if m.isfile()}


def test_gpu_run_script_runs_on_the_cpu(tmp_path: Path) -> None:
    out, res = tmp_path / "out", tmp_path / "results"
    env = {**os.environ, "PY": sys.executable, "OUT": str(out), "DEVICE": "cpu", "PRESET": "smoke", "COMPILE": "off",
           "BENCH_BATCHES": "2", "BENCH_ONLY": "matmul_peak", "FINETUNE_STEPS": "1", "PRETRAIN_STEPS": "1",
           "FINETUNE_PRESET": "smoke", "TRAIN_MODES": "eager", "BENCH_S": "300", "TMPDIR": str(tmp_path),
           "PREDICT_S": "300", "PREDICT_SIDE": "200", "RESULTS": str(res), "TAG": "cpu"}
    proc = subprocess.run(["bash", str(ROOT / "tools" / "gpu_run.sh")], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # the device tool returns at most 8 files from $OUT: the summary and one archive of the results
    assert sorted(p.name for p in out.iterdir()) == ["cpu.tar.gz", "gpu.txt"]
    summary = (out / "gpu.txt").read_text()
    for line in ("== cpu ", "bench batch 2 rc=0", "roofline batch 2 rc=0", "finetune eager rc=0", "pretrain eager rc=0",
                 "predict timing rc=0"):
        assert line in summary, summary
    packed = _packed(out, "cpu")
    for name in ("gpu.txt", "bench-b2/bench.json", "bench-b2/roofline/roofline.json", "predict/predict_timing.json",
                 "finetune-eager.log", "pretrain-eager.log", "finetune-eager/config.yaml"):
        assert name in packed, sorted(packed)
    assert not [n for n in packed if n.endswith((".tif", ".pt", ".ckpt", ".png"))]  # results, not rasters
    report = json.loads((res / "bench-b2" / "bench.json").read_text())
    assert [r["name"] for r in report["results"]] == ["matmul_peak"]
    assert "optsimmim pretraining done: 1 epochs, 1 steps" in (res / "pretrain-eager.log").read_text()
    roofline = json.loads((res / "bench-b2" / "roofline" / "roofline.json").read_text())
    assert roofline["batch_size"] == 2 and "measured kernels" in roofline["bounds"]
    assert roofline["peak_source"].startswith("measured on cpu")
    timing = json.loads((res / "predict" / "predict_timing.json").read_text())
    assert timing["side_px"] == 200 and timing["tta4"]["n_maps"] == 4 and timing["one_map"]["n_maps"] == 1
    assert timing["one_map"]["windows_s"] > 0 and timing["one_map"]["outputs_s"] > 0
    assert not (res / "predict" / "scenes").exists()  # inputs are not results


def test_gpu_run_script_can_leave_the_benchmark_out(tmp_path: Path) -> None:
    # a second device call that only times `predict` must not spend minutes on the benchmark again, nor erase the
    # first call's summary in the same $OUT
    out = tmp_path / "out"
    out.mkdir()
    (out / "gpu.txt").write_text("bench batch 64 rc=0 wall=300s\n")
    env = {**os.environ, "PY": sys.executable, "OUT": str(out), "DEVICE": "cpu", "PRESET": "smoke", "BENCH": "off",
           "PREDICT_S": "300", "PREDICT_SIDE": "200", "TMPDIR": str(tmp_path), "TAG": "predict"}
    proc = subprocess.run(["bash", str(ROOT / "tools" / "gpu_run.sh")], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = (out / "gpu.txt").read_text()
    assert summary.startswith("bench batch 64 rc=0 wall=300s\n")  # the earlier call's line is kept
    assert "predict timing rc=0" in summary and "bench batch 2" not in summary and "roofline" not in summary
    packed = _packed(out, "predict")
    assert "predict/predict_timing.json" in packed and not [n for n in packed if n.startswith("bench-")]


def test_gpu_run_script_stops_at_once_when_a_package_is_missing(tmp_path: Path) -> None:
    """The GPU image holds torch but no rasterio: without the carried wheels every step failed, one after another,
    after minutes each. The script checks every import first and names what is missing."""
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    (blocked / "rasterio.py").write_text("raise ImportError('No module named rasterio')\n")
    out = tmp_path / "out"
    env = {**os.environ, "PY": sys.executable, "OUT": str(out), "DEVICE": "cpu", "PRESET": "smoke",
           "BENCH_BATCHES": "2", "PREDICT_S": "300", "TMPDIR": str(tmp_path), "TAG": "bench",
           "PYTHONPATH": f"{blocked}{os.pathsep}{ROOT}", "WHEELS": str(tmp_path / "no-wheels")}
    proc = subprocess.run(["bash", str(ROOT / "tools" / "gpu_run.sh")], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    summary = (out / "gpu.txt").read_text()
    assert "cannot import: rasterio (ImportError: No module named rasterio)" in summary, summary
    assert "tools/gpu_wheels.sh" in summary and "bench batch" not in summary
    assert "gpu.txt" in _packed(out, "bench")


def test_predict_timing_keeps_the_finished_mode_when_the_next_one_fails(tmp_path: Path, monkeypatch) -> None:
    """On the GPU machine `predict_timing.py` runs under a time limit: the one-map timing was written only after the
    TTA x4 pass, so a run cut off during TTA lost both. Each mode's numbers are now written as soon as it ends."""
    import importlib.util

    import ssl4sar.predict

    spec = importlib.util.spec_from_file_location("predict_timing", ROOT / "tools" / "predict_timing.py")
    timing = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(timing)
    real = ssl4sar.predict.predict_scenes

    def cut_off_during_tta(model, scenes, out, rotations, **kw):
        if len(rotations) > 1:
            raise KeyboardInterrupt  # what the time limit's SIGTERM ends as, at the latest
        return real(model, scenes, out, rotations=rotations, **kw)

    monkeypatch.setattr(ssl4sar.predict, "predict_scenes", cut_off_during_tta)
    with pytest.raises(KeyboardInterrupt):
        timing.main(["--out", str(tmp_path), "--device", "cpu", "--preset", "smoke", "--side", "160"])
    report = json.loads((tmp_path / "predict_timing.json").read_text())
    assert report["one_map"]["n_maps"] == 1 and report["one_map"]["windows_s"] > 0 and "tta4" not in report
