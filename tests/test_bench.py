"""The benchmark tools: ``python -m ssl4sar.bench`` and ssl4sar.benchmarks.training.

Tiny networks and the smoke preset only: these tests check that the measurements are what they claim to be
(throughput = batch / median step, FLOPs counted on meta equal FLOPs counted on a real forward, window counts
equal the real padding's, peak memory sees a known allocation) and that the files are valid, not the speed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from ssl4sar.bench import (
    BENCHMARKS,
    SCHEMA,
    _scene_side_for,
    _selected,
    benchmark_data_sampler,
    load_report,
    measure_matmul_peak,
    render_markdown,
    results_frame,
    windows_in_scene,
)
from ssl4sar.bench import main as bench_main
from ssl4sar.benchmarks.training import (
    TRAINING_FLOPS_FACTOR,
    PeakMemory,
    benchmark_finetune_step,
    benchmark_pretrain_step,
    count_flops,
    time_steps,
)
from ssl4sar.config import load_preset
from ssl4sar.data.sampling import pad_overlapping
from ssl4sar.errors import DataError
from ssl4sar.inference import window_origins
from ssl4sar.models import Tyrion

torch.set_num_threads(2)

TINY = {
    "img_size": 32,
    "patch_size": 4,
    "embed_dim": 32,
    "depths": [2, 1],
    "num_heads": [1, 2],
    "window_size": 4,
    "mlp_ratio": 1.0,
}
ROOT = Path(__file__).resolve().parent.parent


def test_meta_flop_count_equals_real_forward() -> None:
    on_meta = count_flops(lambda: Tyrion.from_config(TINY), lambda m: m(torch.empty(1, 1, 32, 32)))
    model = Tyrion.from_config(TINY).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.rand(1, 1, 32, 32))
    assert on_meta == counter.get_total_flops() > 0
    # the fused path does the same arithmetic
    fused = count_flops(lambda: Tyrion(**TINY, fused_attention=True), lambda m: m(torch.empty(1, 1, 32, 32)))
    assert fused == on_meta
    # the 1x1 head alone: 2 * C * K FLOPs per pixel
    head = count_flops(lambda: torch.nn.Conv2d(32, 4, 1), lambda m: m(torch.empty(1, 32, 8, 8)))
    assert head == 2 * 32 * 4 * 64


def test_finetune_step_benchmark_fields() -> None:
    r = benchmark_finetune_step(TINY, batch_size=2, steps=2, warmup=1, seed=0)
    assert r["benchmark"] == "finetune_step" and r["device"] == "cpu" and r["precision"] == "fp32"
    assert r["fused_attention"] and not r["compile"] and r["steps"] == 2 and len(r["warmup_s"]) == 1
    assert r["step_s_min"] <= r["step_s_median"] <= r["step_s_max"]
    assert r["throughput"] == pytest.approx(2 / r["step_s_median"])
    assert r["time_per_item_s"] == pytest.approx(r["step_s_median"] / 2)
    real = count_flops(lambda: Tyrion.from_config(TINY), lambda m: m(torch.empty(1, 1, 32, 32)))
    assert r["forward_flops_per_item"] == real
    assert r["flops_per_item"] == TRAINING_FLOPS_FACTOR * real
    assert np.isfinite(r["loss"]) and r["loss"] > 0
    assert r["params_m"] == pytest.approx(Tyrion.from_config(TINY).num_params() / 1e6)
    assert r["peak_memory_mb"] > 0 and r["memory_kind"] in ("rss_hwm", "ru_maxrss")


@pytest.mark.parametrize("method", ["optsimmim", "opttranslator"])
def test_pretrain_step_benchmark(method: str) -> None:
    settings = {"lr": 0.001, "mask_ratio": 0.3, "token_size": 4} if method == "optsimmim" else {"lr": 0.005}
    r = benchmark_pretrain_step(method, TINY, batch_size=2, steps=1, warmup=0, method_settings=settings)
    assert r["benchmark"] == "pretrain_step" and r["method"] == method
    assert r["throughput"] == pytest.approx(2 / r["step_s_median"])
    assert np.isfinite(r["loss"]) and r["loss"] > 0
    # the pretraining heads add work on top of the network
    assert (
        r["forward_flops_per_item"]
        > count_flops(lambda: Tyrion.from_config(TINY), lambda m: m(torch.empty(1, 1, 32, 32))) * 0.9
    )


def test_time_steps_counts_calls() -> None:
    calls: list[int] = []
    times = time_steps(lambda: calls.append(1), 3, "cpu")
    assert len(times) == 3 and len(calls) == 3 and all(t >= 0 for t in times)


def test_peak_memory_sees_an_allocation() -> None:
    with PeakMemory("cpu") as mem:
        block = np.ones(40 * 1024 * 1024 // 8)  # 40 MB, touched
        block += 1
        del block
    assert mem.kind in ("rss_hwm", "ru_maxrss")
    if mem.kind == "rss_hwm":
        assert mem.increase_mb >= 35
    assert mem.peak_mb >= mem.baseline_mb


@pytest.mark.parametrize("shape", [(320, 320), (3162, 3162), (700, 1000), (100, 90)])
def test_windows_in_scene_matches_real_padding(shape: tuple[int, int]) -> None:
    c, s = 512, 128
    padded = pad_overlapping(np.zeros(shape, dtype=np.uint8), c, s).shape
    assert windows_in_scene(shape, c, s) == len(window_origins(padded, c, s))


@pytest.mark.parametrize(("per_axis", "c", "s"), [(2, 512, 128), (5, 512, 128), (15, 512, 128), (2, 64, 16)])
def test_scene_side_gives_requested_windows(per_axis: int, c: int, s: int) -> None:
    side = _scene_side_for(per_axis, c, s)
    assert windows_in_scene((side, side), c, s) == per_axis**2


def test_matmul_peak_cpu() -> None:
    r = measure_matmul_peak("cpu", torch.float32, n=128, iters=2, warmup=1)
    assert r["tflops"] == pytest.approx(2 * 128**3 / r["seconds_per_matmul"] / 1e12)
    assert r["dtype"] == "float32" and r["n"] == 128


def test_data_sampler_smoke() -> None:
    cfg = load_preset("smoke")
    r = benchmark_data_sampler(cfg["data"], n_samples=3, warmup=1, n_scenes=1, scene_size=(96, 110))
    assert r["n_samples"] == 3 and r["n_scenes"] == 1 and r["context_size"] == 64
    assert r["throughput"] == pytest.approx(1 / r["time_per_item_s"])
    assert r["data"] == "synthetic"


def test_only_selection() -> None:
    assert _selected("finetune_step/bf16+fused", None)
    assert _selected("finetune_step/bf16+fused", ["finetune_step"])
    assert _selected("finetune_step/bf16+fused", ["finetune_step/bf16+fused"])
    assert _selected("finetune_step/bf16+fused", ["finetune_step/bf16*"])
    assert _selected("data_sampler/64px-preset-probabilities", ["data_sampler/*preset*"])
    assert _selected("finetune_step/bf16+fused+compile", ["*/*compile"])
    assert not _selected("finetune_step/bf16+fused", ["*/*compile"])
    assert not _selected("finetune_step/bf16+fused", ["finetune_step/fp32*", "sliding_window"])
    assert not _selected("finetune_step/bf16+fused", ["finetune_step/bf16"])


def test_load_report_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_report(tmp_path / "missing.json")
    bad = tmp_path / "bench.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="bench.json: not a JSON file"):
        load_report(bad)
    bad.write_text(json.dumps({"schema": "other", "results": []}))
    with pytest.raises(DataError, match="not an ssl4sar benchmark report"):
        load_report(bad)
    bad.write_text(json.dumps({"schema": SCHEMA, "environment": {}, "results": [{"name": "x"}]}))
    with pytest.raises(DataError, match="lack name / variant / throughput"):
        load_report(bad)


def _run_cli(*args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "2"}
    return subprocess.run(
        [sys.executable, "-m", "ssl4sar.bench", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=timeout,
        check=False,
    )


def test_cli_quick_smoke_writes_valid_files(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    proc = _run_cli(
        "--quick",
        "--preset",
        "smoke",
        "--device",
        "cpu",
        "--out",
        str(out),
        "--only",
        "sliding_window/fp32+fused",
        "postprocess_mde",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = load_report(out / "bench.json")
    assert report["mode"] == "quick" and report["preset"] == "smoke" and not report["paper_model"]
    assert report["failed"] == []
    names = [(r["name"], r["variant"]) for r in report["results"]]
    # the matmul peak is added automatically: it is the reference of the model rows' "% of peak"
    assert names == [
        ("matmul_peak", "float32-512"),
        ("sliding_window", "fp32+fused"),
        ("postprocess_mde", "512px"),
    ]
    env = report["environment"]
    for key in ("torch", "timm", "cpu_count", "torch_threads", "device_name"):
        assert env[key]
    peak, sw, pp = report["results"]
    assert peak["throughput_unit"] == "TFLOP/s" and peak["throughput"] > 0
    assert sw["throughput_unit"] == "windows/s" and sw["throughput"] > 0 and sw["batch"] == 2
    d = sw["details"]
    assert d["n_windows"] == 4 and d["windows_10mp_scene"] == windows_in_scene((3162, 3162), 64, 16)
    assert d["seconds_10mp_scene_extrapolated"] == pytest.approx(d["windows_10mp_scene"] / sw["throughput"])
    assert sw["flops_per_item"] == count_flops(
        lambda: Tyrion.from_config(load_preset("smoke")["model"]), lambda m: m(torch.empty(1, 1, 64, 64))
    )
    assert sw["achieved_tflops"] == pytest.approx(sw["flops_per_item"] * sw["throughput"] / 1e12)
    assert sw["fraction_of_peak"] == pytest.approx(sw["achieved_tflops"] / peak["throughput"])
    assert pp["throughput_unit"] == "scenes/s" and pp["device"] == "cpu"
    assert pp["details"]["size_px"] == 512 and pp["details"]["n_pred"] > 0
    md = (out / "bench.md").read_text()
    assert md == render_markdown(report)
    table = [line for line in md.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| benchmark | variant |") and len(table) == 1 + len(report["results"])
    assert "NOT the paper model" in md and "extrapolated" in md
    assert "| sliding_window | fp32+fused | CPU | fp32 | 2 |" in md
    assert list(results_frame(report)["name"]) == [n for n, _ in names]
    assert "wrote" in proc.stdout and "| benchmark |" in proc.stdout


def test_cli_list_and_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert bench_main(["--quick", "--preset", "smoke", "--device", "cpu", "--list"]) == 0
    rows = capsys.readouterr().out.split()
    assert {r.split("/")[0] for r in rows} == set(BENCHMARKS)
    assert "finetune_step/fp32+fused" in rows and "pretrain_step/optsimmim+fp32+fused" in rows
    assert "finetune_step/bf16+fused" not in rows  # no bf16 rows on a CPU in quick mode
    assert (
        bench_main(["--quick", "--preset", "smoke", "--device", "cpu", "--list", "--only", "data_sampler"])
        == 0
    )
    assert capsys.readouterr().out.split() == [
        "data_sampler/64px-preset-probabilities",
        "data_sampler/64px-all-augmentations",
    ]
    assert bench_main(["--quick", "--preset", "smoke", "--out", str(tmp_path), "--only", "nonsense"]) == 2
    assert not (tmp_path / "bench.json").exists()
    assert bench_main(["--quick", "--preset", "no-such-preset", "--out", str(tmp_path)]) == 2


def test_append_merges_runs(tmp_path: Path) -> None:
    from ssl4sar.bench import run_benchmarks

    first = run_benchmarks(tmp_path, quick=True, device="cpu", preset="smoke", only=["postprocess_mde"])
    assert [r["name"] for r in first["results"]] == ["postprocess_mde"]
    second = run_benchmarks(
        tmp_path, quick=True, device="cpu", preset="smoke", only=["data_sampler/*preset*"], append=True
    )
    assert [(r["name"], r["variant"]) for r in second["results"]] == [
        ("postprocess_mde", "512px"),
        ("data_sampler", "64px-preset-probabilities"),
    ]
    on_disk = load_report(tmp_path / "bench.json")
    assert [r["name"] for r in on_disk["results"]] == ["postprocess_mde", "data_sampler"]
    # re-measuring a row replaces it
    third = run_benchmarks(
        tmp_path, quick=True, device="cpu", preset="smoke", only=["postprocess_mde"], append=True
    )
    assert [r["name"] for r in third["results"]] == ["data_sampler", "postprocess_mde"]
    with pytest.raises(DataError, match="--append"):
        run_benchmarks(
            tmp_path, quick=False, device="cpu", preset="smoke", only=["postprocess_mde"], append=True
        )
    # without append the report is replaced
    fresh = run_benchmarks(tmp_path, quick=True, device="cpu", preset="smoke", only=["postprocess_mde"])
    assert len(fresh["results"]) == 1
