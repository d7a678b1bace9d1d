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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_gpu_run_script_runs_on_the_cpu(tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = {**os.environ, "PY": sys.executable, "OUT": str(out), "DEVICE": "cpu", "PRESET": "smoke", "COMPILE": "off",
           "BENCH_BATCHES": "2", "BENCH_ONLY": "matmul_peak", "FINETUNE_STEPS": "1", "PRETRAIN_STEPS": "1",
           "FINETUNE_PRESET": "smoke", "TRAIN_MODES": "eager", "BENCH_S": "300", "TMPDIR": str(tmp_path),
           "PREDICT_S": "300", "PREDICT_SIDE": "200"}
    proc = subprocess.run(["bash", str(ROOT / "tools" / "gpu_run.sh")], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = (out / "gpu.txt").read_text()
    for line in ("bench batch 2 rc=0", "roofline batch 2 rc=0", "finetune eager rc=0", "pretrain eager rc=0",
                 "predict timing rc=0"):
        assert line in summary, summary
    report = json.loads((out / "bench-b2" / "bench.json").read_text())
    assert [r["name"] for r in report["results"]] == ["matmul_peak"]
    assert "optsimmim pretraining done: 1 epochs, 1 steps" in (out / "pretrain-eager.log").read_text()
    roofline = json.loads((out / "bench-b2" / "roofline" / "roofline.json").read_text())
    assert roofline["batch_size"] == 2 and "measured kernels" in roofline["bounds"]
    assert roofline["peak_source"].startswith("measured on cpu")
    timing = json.loads((out / "predict" / "predict_timing.json").read_text())
    assert timing["side_px"] == 200 and timing["tta4"]["n_maps"] == 4 and timing["one_map"]["n_maps"] == 1
    assert timing["one_map"]["windows_s"] > 0 and timing["one_map"]["outputs_s"] > 0
    assert not (out / "predict" / "scenes").exists()  # inputs are not results


def test_gpu_run_script_can_leave_the_benchmark_out(tmp_path: Path) -> None:
    # a second device call that only times `predict` must not spend minutes on the benchmark again
    out = tmp_path / "out"
    env = {**os.environ, "PY": sys.executable, "OUT": str(out), "DEVICE": "cpu", "PRESET": "smoke", "BENCH": "off",
           "PREDICT_S": "300", "PREDICT_SIDE": "200", "TMPDIR": str(tmp_path)}
    proc = subprocess.run(["bash", str(ROOT / "tools" / "gpu_run.sh")], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = (out / "gpu.txt").read_text()
    assert "predict timing rc=0" in summary and "bench batch" not in summary and "roofline" not in summary
    assert not list(out.glob("bench-*"))
