"""The benchmark tools: ``python -m ssl4sar.bench`` (the ssl4sar.bench package).

Tiny networks and the smoke preset only: these tests check that the measurements are what they claim to be
(throughput = batch / median step, FLOPs counted on meta equal FLOPs counted on a real forward, window counts
equal the real padding's, peak memory sees a known allocation) and that the files are valid, not the speed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from fake_gpu import pretend_cuda, pretend_cuda_memory
from torch.utils.flop_counter import FlopCounterMode

from ssl4sar.bench import (
    BENCHMARKS,
    REFERENCE,
    SCHEMA,
    TRAINING_FLOPS_FACTOR,
    ExecPath,
    PeakMemory,
    StepSettings,
    alternate,
    benchmark_data_sampler,
    benchmark_finetune_step,
    benchmark_pretrain_sampler,
    benchmark_pretrain_step,
    count_flops,
    fast_path,
    fast_training_path,
    load_report,
    measure_matmul_peak,
    render_markdown,
    results_frame,
    scene_side_for,
    selected,
    time_steps,
    windows_in_scene,
)
from ssl4sar.bench.report import make_row, ratios_of
from ssl4sar.bench.training import finetune_case
from ssl4sar.commands.bench import main as bench_main
from ssl4sar.config import load_preset
from ssl4sar.data.sampling import pad_overlapping
from ssl4sar.errors import DataError
from ssl4sar.inference import default_inference_workers, window_origins
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
    r = benchmark_finetune_step(TINY, StepSettings(batch_size=2, seed=0), steps=2, warmup=1)
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
    r = benchmark_pretrain_step(method, TINY, StepSettings(batch_size=2), steps=1, warmup=0,
                                method_settings=settings)
    assert r["benchmark"] == "pretrain_step" and r["method"] == method
    assert r["throughput"] == pytest.approx(2 / r["step_s_median"])
    assert np.isfinite(r["loss"]) and r["loss"] > 0
    # the pretraining heads add work on top of the network
    assert (
        r["forward_flops_per_item"]
        > count_flops(lambda: Tyrion.from_config(TINY), lambda m: m(torch.empty(1, 1, 32, 32))) * 0.9
    )


@pytest.mark.parametrize("method", ["optsimmim", "opttranslator"])
def test_pretrain_step_runs_the_attention_its_path_names(method: str) -> None:
    # the pretraining modules switch fused attention on when they are built; the reference path (the official
    # code) must still time timm's attention, and the report must say which attention actually ran
    from ssl4sar.bench.training import pretrain_case
    from ssl4sar.models.fast import fused_attention_enabled

    settings = {"lr": 0.001, "mask_ratio": 0.3, "token_size": 4} if method == "optsimmim" else {"lr": 0.005}
    for path, fused in ((REFERENCE, False), (fast_training_path("cpu"), True)):
        case = pretrain_case(method, TINY, StepSettings.on_path(path, "cpu", 2), method_settings=settings)
        assert fused_attention_enabled(case.module.model) is fused
        assert case.info["fused_attention"] is fused
        case.step()
        assert np.isfinite(case.last["loss"])


def test_accuracy_reference_path_undoes_the_inference_form_of_a_model_in_memory() -> None:
    # the accuracy benchmark takes a loaded model as it comes (evaluation prepares them with for_inference: fused
    # attention + polyphase upsampling); its reference path must still run the official forward
    from ssl4sar.bench.accuracy import _on_path
    from ssl4sar.models.fast import for_inference, fused_attention_enabled

    def polyphase(m: torch.nn.Module) -> bool:
        return any(getattr(mod, "polyphase", False) for mod in m.modules())

    model = for_inference(Tyrion.from_config(TINY))
    ref = _on_path(model, REFERENCE, torch.device("cpu"))
    assert not fused_attention_enabled(ref) and not polyphase(ref)
    fast = _on_path(model, fast_path("cpu"), torch.device("cpu"))
    assert fused_attention_enabled(fast) and polyphase(fast)
    assert fused_attention_enabled(model) and polyphase(model)  # the caller's model is left as it was


def test_time_steps_counts_calls() -> None:
    calls: list[int] = []
    times = time_steps(lambda: calls.append(1), 3, "cpu")
    assert len(times) == 3 and len(calls) == 3 and all(t >= 0 for t in times)


def test_cuda_timing_records_its_events_on_the_stream_of_the_benchmark_device(monkeypatch) -> None:
    """``Event().record()`` records on the current device's stream (cuda:0): on ``--device cuda:1`` the events then
    timed cuda:0, not the step's kernels."""
    pretend_cuda(monkeypatch, (9, 0), "H200", count=2)
    streams = {0: "stream of cuda:0", 1: "stream of cuda:1"}

    def current_stream(device=None):
        index = device if isinstance(device, int) else getattr(device, "index", None) if device is not None else None
        return streams[torch.cuda.current_device() if index is None else index]

    class Event:  # the events of a GPU, recorded where they are told to be
        def __init__(self, enable_timing: bool = False) -> None:
            self.stream = None

        def record(self, stream=None) -> None:
            self.stream = current_stream() if stream is None else stream
            recorded.append(self.stream)

        def elapsed_time(self, end: Event) -> float:
            return 2.0

    recorded: list[str] = []
    monkeypatch.setattr(torch.cuda, "Event", Event)
    monkeypatch.setattr(torch.cuda, "current_stream", current_stream)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    assert time_steps(lambda: None, 2, "cuda:1") == [0.002, 0.002]
    assert recorded == [streams[1]] * 4


def test_peak_memory_sees_an_allocation() -> None:
    import mmap

    with PeakMemory("cpu") as mem:
        # 40 MB of new pages, touched. Not a numpy array: after some tests (test_fast) the process's allocator
        # served 40 MB from pages it already held, so the resident size did not grow (increase 0.0)
        block = mmap.mmap(-1, 40 * 1024 * 1024)
        np.frombuffer(block, dtype=np.uint8)[:] = 1
        block.close()
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
    side = scene_side_for(per_axis, c, s)
    assert windows_in_scene((side, side), c, s) == per_axis**2


def test_matmul_peak_cpu() -> None:
    r = measure_matmul_peak("cpu", torch.float32, n=128, iters=2, warmup=1)
    assert r["tflops"] == pytest.approx(2 * 128**3 / r["seconds_per_matmul"] / 1e12)
    assert r["dtype"] == "float32" and r["n"] == 128


def test_matmul_peak_row_names_the_device_it_ran_on() -> None:
    # the H200 report of 2026-12-04 labelled its bf16 GPU peak "CPU": the raw result did not carry its device
    r = measure_matmul_peak("cpu", torch.float32, n=64, iters=1, warmup=0)
    assert r["device"] == "cpu"
    row = make_row("matmul_peak", "bfloat16-8192", {**r, "device": "cuda:0"}, None)
    assert row["device"] == "cuda:0"


def test_data_sampler_smoke() -> None:
    cfg = load_preset("smoke")
    r = benchmark_data_sampler(cfg["data"], n_samples=3, warmup=1, n_scenes=1, scene_size=(96, 110))
    assert r["n_samples"] == 3 and r["n_scenes"] == 1 and r["context_size"] == 64
    assert r["throughput"] == pytest.approx(1 / r["time_per_item_s"])
    assert r["data"] == "synthetic"


def test_pretrain_sampler_preloaded_reads_no_optical_image_per_sample() -> None:
    """The pretraining sampler's two modes on a pool of 6 glaciers (more than the 4 a worker keeps on demand): the
    preloaded one reads no optical image while sampling, the on-demand one reads one for a good part of the samples;
    the row says so and quotes the ratio of the same run."""
    cfg = load_preset("smoke")
    slow, fast = benchmark_pretrain_sampler(cfg["pretrain"], n_samples=8, rounds=2, n_glaciers=6, scene_size=(96, 110))
    assert (slow["variant"], fast["variant"]) == ("on-demand", "preloaded")
    assert slow["n_glaciers"] == fast["n_glaciers"] == 6 and slow["context_size"] == 64
    assert fast["optical_reads_per_sample"] == 0 and slow["optical_reads_per_sample"] > 0.25
    assert len(slow["round_s"]) == len(fast["round_s"]) == 2 and len(fast["ratio_rounds"]) == 2
    assert fast["speedup_over_on_demand"] == pytest.approx(fast["throughput"] / slow["throughput"])
    assert fast["optical_mb"] == pytest.approx(6 * 14 * slow["mean_image_mp"], rel=1e-6)
    rows = [make_row("pretrain_sampler", "64px-6-glaciers", r, None) for r in (slow, fast)]
    assert [r["variant"] for r in rows] == ["64px-6-glaciers+on-demand", "64px-6-glaciers+preloaded"]
    assert rows[0]["speedup"] is None  # not a reference/fast pair: no row of the ratio table
    assert "x the on-demand reads of the same run" in " ".join(rows[1]["notes"])


def test_only_selection() -> None:
    assert selected("finetune_step/reference-vs-fast", None)
    assert selected("finetune_step/reference-vs-fast", ["finetune_step"])
    assert selected("pretrain_step/optsimmim", ["pretrain_step/optsimmim"])
    assert selected("pretrain_step/opttranslator", ["pretrain_step/opt*"])
    assert selected("data_sampler/64px-preset-probabilities", ["data_sampler/*preset*"])
    assert not selected("pretrain_step/optsimmim", ["pretrain_step/opttranslator", "sliding_window"])
    assert not selected("pretrain_step/optsimmim", ["pretrain_step/opt"])


def test_only_entries_that_match_nothing_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    """A misspelt variant (or ``accuracy`` without ``--accuracy``) once ran nothing, exited 0 and replaced
    bench.json with an empty report."""
    from ssl4sar.bench import run_benchmarks

    (tmp_path / "bench.json").write_text("earlier report")
    with pytest.raises(ValueError, match=r"postprocess_mde/512pxx.*postprocess_mde/512px\b"):
        run_benchmarks(tmp_path, quick=True, device="cpu", preset="smoke", only=["postprocess_mde/512pxx"])
    with pytest.raises(ValueError, match=r"\['accuracy'\].*--accuracy CKPT DATA"):
        run_benchmarks(tmp_path, quick=True, device="cpu", preset="smoke", only=["postprocess_mde", "accuracy"])
    assert (tmp_path / "bench.json").read_text() == "earlier report" and not (tmp_path / "bench.md").exists()
    assert bench_main(["--quick", "--preset", "smoke", "--device", "cpu", "--out", str(tmp_path), "--only",
                       "sliding_window/stride00"]) == 2
    assert (tmp_path / "bench.json").read_text() == "earlier report"
    assert bench_main(["--quick", "--preset", "smoke", "--device", "cpu", "--list", "--only", "accuracy"]) == 2


def test_alternate_interleaves_rounds() -> None:
    order: list[str] = []
    times = alternate({"a": lambda: order.append("a"), "b": lambda: order.append("b")}, 3, "cpu")
    assert order == ["a", "b", "b", "a", "a", "b"]  # reversed on odd rounds: neither always goes first
    assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3}


def test_one_thread_rows_report_the_threads_and_workers_they_ran_with() -> None:
    """The ``fast-1-thread`` rows once read torch's thread count (and the default workers, which follow it) after
    the path had set it back: 2 threads / 2 workers for a path that ran 1 / 1."""
    from ssl4sar.bench.plan import FinetuneStep
    from ssl4sar.bench.windows import compare_sliding_window

    torch.set_num_threads(2)
    one = fast_path("cpu").with_(name="fast-1-thread", threads=1)
    (window,) = compare_sliding_window(load_preset("smoke")["model"], [one], device="cpu", windows_per_axis=2,
                                       rounds=1)
    assert (window["path_threads"], window["torch_threads"], window["workers"]) == (1, 1, 1)
    train = fast_training_path("cpu").with_(name="fast-1-thread", threads=1)
    (step,) = FinetuneStep("one-thread", "cpu", TINY, [train], batch=1, rounds=1, warmup=0).run()
    assert (step["path_threads"], step["torch_threads"]) == (1, 1)
    assert torch.get_num_threads() == 2  # set back after the path


def test_gpu_training_rows_do_not_count_the_memory_of_the_other_paths(monkeypatch) -> None:
    """Every path's model, gradients and optimiser state stay allocated for the alternating rounds: the peak of the
    paths measured later once included those of the paths before them (on a pretended GPU with a counted allocator:
    each case allocates 100 MB, its first step 50 MB more for good, every step 30 MB for the step alone)."""
    from ssl4sar.bench.plan import _StepComparison
    from ssl4sar.bench.training import StepCase

    pretend_cuda(monkeypatch, (9, 0), "H200")
    allocate = pretend_cuda_memory(monkeypatch).allocate

    class Counted(_StepComparison):
        name = "finetune_step"

        def case(self, path: ExecPath) -> StepCase:
            allocate(100)
            state = {"first": True}

            def step() -> None:
                if state.pop("first", False):
                    allocate(50)  # gradients and optimiser state, kept
                allocate(30)
                allocate(-30)  # activations, freed

            info = {"device": "cuda:0", "batch_size": 2}
            return StepCase(step, torch.nn.Linear(1, 1), 2, 10, info)

    paths = [REFERENCE, fast_training_path("cuda")]
    rows = Counted("counted", "cuda:0", TINY, paths, batch=2, rounds=1, warmup=1).run()
    assert [r["peak_memory_mb"] for r in rows] == [180.0, 180.0]  # 100 + 50 + 30 each, not 280 and 330
    assert [r["memory_increase_mb"] for r in rows] == [30.0, 30.0]
    assert [r["memory_other_paths_mb"] for r in rows] == [0.0, 150.0]


def _counted_comparison(allocate, on_step=None, too_big: tuple[str, ...] = ()):
    """A :class:`_StepComparison` whose case allocates 100 MB (its model) on a pretended GPU, runs out of memory
    while building the paths named in ``too_big``, and calls ``on_step(path name)`` at every step."""
    from ssl4sar.bench.plan import _StepComparison
    from ssl4sar.bench.training import StepCase

    class Counted(_StepComparison):
        name = "finetune_step"

        def case(self, path: ExecPath) -> StepCase:
            if path.name in too_big:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 54.00 GiB")
            allocate(100)

            def step() -> None:
                if on_step is not None:
                    on_step(path.name)

            return StepCase(step, torch.nn.Linear(1, 1), 2, 10, {"device": "cuda:0", "batch_size": 2})

    return Counted


def test_a_path_that_runs_out_of_gpu_memory_is_dropped_and_the_others_measured(monkeypatch) -> None:
    """At batch 64 the reference path needs 106 GB, more than an H100's 80: its out-of-memory error ended the whole
    training benchmark, losing the fast paths' rows, which fit."""
    pretend_cuda(monkeypatch, (9, 0), "H100")
    allocate = pretend_cuda_memory(monkeypatch).allocate
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    Counted = _counted_comparison(allocate, too_big=("reference",))
    rows = Counted("counted", "cuda:0", TINY, [REFERENCE, fast_training_path("cuda")], batch=2, rounds=1,
                   warmup=1).run()
    assert [r["path"] for r in rows] == ["reference", "fast"]
    assert rows[0]["failed"].startswith("out of memory: CUDA out of memory. Tried to allocate 54.00 GiB")
    assert "speedup" not in rows[0] and rows[1]["speedup"] is None  # no reference to divide by
    assert rows[1]["throughput_best"] > 0 and "failed" not in rows[1]
    table = [make_row("finetune_step", "paper", r, None) for r in rows]
    assert table[0]["throughput"] is None and table[0]["notes"] == [rows[0]["failed"].join(("failed: ", ""))]
    assert table[1]["throughput"] == rows[1]["throughput_best"]
    assert ratios_of({"results": table}) == []


def test_the_path_without_cudnn_autotuning_runs_in_a_thread_of_its_own(monkeypatch) -> None:
    """cuDNN reuses the convolution plans it chose in a thread whatever the autotuning flag: run in the thread
    where the other paths had autotuned, the no-autotuning path ran their plans and measured nothing."""
    import threading

    pretend_cuda(monkeypatch, (9, 0), "H200")
    allocate = pretend_cuda_memory(monkeypatch).allocate
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    seen: dict[str, set] = {}

    def on_step(name: str) -> None:
        seen.setdefault(name, set()).add((threading.get_ident(), torch.backends.cudnn.benchmark))

    fast = fast_training_path("cuda")
    paths = [REFERENCE, fast, fast.with_(name="fast-no-cudnn-autotuning", cudnn_autotuning=False)]
    Counted = _counted_comparison(allocate, on_step)
    rows = Counted("counted", "cuda:0", TINY, paths, batch=2, rounds=2, warmup=1).run()
    main = threading.get_ident()
    assert seen["fast"] == {(main, True)}
    (ref,) = seen["reference"]  # the official code does not autotune (test below); every step in one thread
    (other,) = seen["fast-no-cudnn-autotuning"]
    assert ref[1] is other[1] is False
    assert len({main, ref[0], other[0]}) == 3  # a thread of its own each
    assert [r["path"] for r in rows] == [p.name for p in paths] and all(r["speedup"] for r in rows)


def test_the_reference_path_runs_without_cudnn_autotuning_as_the_official_code(monkeypatch) -> None:
    """The official scripts build ``pl.Trainer`` without ``benchmark=`` and set no cuDNN flag, so they train with
    torch's default, autotuning off: Lightning changes the flag only when asked to. The reference path autotuned,
    which made the GPU ratios look smaller than against the official code."""
    import lightning.pytorch as pl

    assert REFERENCE.cudnn_autotuning is False
    for preset in (False, True):
        monkeypatch.setattr(torch.backends.cudnn, "benchmark", preset)
        pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                   enable_model_summary=False)
        assert torch.backends.cudnn.benchmark is preset
    pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, benchmark=False)
    assert torch.backends.cudnn.benchmark is False  # the flag this test reads is the one Lightning sets


def test_gpu_sliding_window_reference_runs_untuned_in_a_thread_of_its_own(monkeypatch) -> None:
    """Sliding-window rows on a GPU: the reference path's passes (warm-up, memory, timed rounds) ask for no cuDNN
    autotuning and all run in one thread that no autotuning path uses (cuDNN's plans are kept per thread)."""
    import threading

    import ssl4sar.bench.windows as windows

    pretend_cuda(monkeypatch, (9, 0), "H200")
    pretend_cuda_memory(monkeypatch)
    monkeypatch.setattr(ExecPath, "prepare", lambda self, model, device: model)
    seen: dict[bool, set] = {}

    def scene_pass(model, image, **kwargs):
        seen.setdefault(kwargs["cudnn_autotune"], set()).add(threading.get_ident())

    monkeypatch.setattr(windows, "sliding_window_probabilities", scene_pass)
    rows = windows.compare_sliding_window(TINY, [REFERENCE, fast_path("cuda")], device="cuda:0", rounds=2)
    assert [r["path"] for r in rows] == ["reference", "fast"]
    assert [r["path_cudnn_autotuning"] for r in rows] == [False, True]
    assert seen[True] == {threading.get_ident()}
    (untuned,) = seen[False]
    assert untuned != threading.get_ident()


def test_gpu_accuracy_reference_predicts_untuned_in_a_thread_of_its_own(monkeypatch) -> None:
    """The accuracy benchmark's reference maps come from the official code's inference: no cuDNN autotuning, in a
    thread where no autotuned plan of the fast path can be reused (pretended GPU, the scene passes recorded)."""
    import threading
    import types

    import ssl4sar.data.caffe as caffe
    import ssl4sar.inference as inference
    from ssl4sar.bench.accuracy import predict_split

    pretend_cuda(monkeypatch, (9, 0), "H200")
    monkeypatch.setattr(ExecPath, "prepare", lambda self, model, device: model)
    monkeypatch.setattr(caffe, "load_scene", lambda scene: {"image": np.zeros((8, 8), np.uint8)})
    seen: dict[bool, set] = {}

    def scene_pass(model, image, **kwargs):
        seen.setdefault(kwargs["cudnn_autotune"], set()).add(threading.get_ident())
        return np.ones((4, 8, 8), np.float32)

    monkeypatch.setattr(inference, "sliding_window_probabilities", scene_pass)
    model = torch.nn.Identity()
    model.img_size = 32
    scenes = [types.SimpleNamespace(stem="a"), types.SimpleNamespace(stem="b")]
    for path in (REFERENCE, fast_path("cuda")):
        maps, _ = predict_split(model, scenes, path, device=torch.device("cuda:0"), stride=8, sigma=2.0, batch_size=2)
        assert sorted(maps) == ["a", "b"]
    assert seen[True] == {threading.get_ident()}
    (untuned,) = seen[False]
    assert untuned != threading.get_ident()


def test_gpu_sliding_window_rows_do_not_count_the_memory_of_the_other_paths(monkeypatch) -> None:
    """Every path's model copy stays on the GPU for the alternating rounds: the peak of the paths measured later
    once included the copies of the paths before them (pretended GPU, counted allocator: a model copy holds 100 MB,
    one pass over the scene 30 MB more while it runs)."""
    import ssl4sar.bench.windows as windows
    from ssl4sar.bench.paths import ExecPath as Path_

    pretend_cuda(monkeypatch, (9, 0), "H200")
    allocate = pretend_cuda_memory(monkeypatch).allocate
    monkeypatch.setattr(Path_, "prepare", lambda self, model, device: (allocate(100), model)[1])

    def scene_pass(model, image, **kwargs):
        allocate(30)
        allocate(-30)

    monkeypatch.setattr(windows, "sliding_window_probabilities", scene_pass)
    rows = windows.compare_sliding_window(TINY, [REFERENCE, fast_path("cuda")], device="cuda:0", rounds=1)
    assert [r["peak_memory_mb"] for r in rows] == [130.0, 130.0]  # not 130 and 230
    assert [r["memory_increase_mb"] for r in rows] == [30.0, 30.0]
    assert [r["memory_other_paths_mb"] for r in rows] == [0.0, 100.0]


def test_sliding_window_rows_say_when_compilation_fell_back(monkeypatch) -> None:
    """A compiled path whose compilation fails runs eagerly; its row was labelled compiled with eager numbers and
    nothing said so (the training rows did)."""
    import ssl4sar.bench.windows as windows
    from ssl4sar.bench.paths import ExecPath as Path_
    from ssl4sar.models.fast import maybe_compile

    def failing_backend(gm: torch.fx.GraphModule, example_inputs: list) -> None:
        raise RuntimeError("simulated compiler failure")

    def prepare(self, model, device):
        model.to(device)
        if self.compile:
            maybe_compile(model, backend=failing_backend)
        return model

    monkeypatch.setattr(Path_, "prepare", prepare)
    torch._dynamo.reset()
    paths = [REFERENCE, fast_path("cpu").with_(name="fast-compile", compile=True)]
    rows = windows.compare_sliding_window(TINY, paths, device="cpu", rounds=1)
    torch._dynamo.reset()
    assert "compile_failed" not in rows[0]
    assert "simulated compiler failure" in rows[1]["compile_failed"]
    row = make_row("sliding_window", "quick", rows[1], None)
    assert any(n.startswith("torch.compile failed, eager") for n in row["notes"])


def test_reference_and_fast_paths_are_what_they_claim() -> None:
    assert (REFERENCE.precision, REFERENCE.fused, REFERENCE.centre_only, REFERENCE.batch) == ("fp32", False, False, 1)
    assert REFERENCE.amp_dtype("cpu") is None and REFERENCE.amp_dtype("cuda") is None
    cpu, gpu = fast_path("cpu"), fast_path("cuda")
    assert cpu.fused and cpu.centre_only and cpu.precision == "auto" and not cpu.channels_last
    assert gpu.channels_last  # cuDNN's layout; decided from the device name, no GPU needed
    assert cpu.describe("cpu")["realised_precision"] in ("bf16-mixed", "fp32")


@pytest.mark.parametrize(("capability", "name", "dtype"),
                         [((7, 5), "Tesla T4", torch.float32), ((9, 0), "NVIDIA H200", torch.bfloat16)])
def test_gpu_peak_is_measured_in_the_precision_the_fast_path_computes(
    monkeypatch: pytest.MonkeyPatch, capability: tuple[int, int], name: str, dtype: torch.dtype
) -> None:
    # "% of peak" divides the fast path's FLOP/s by the matmul peak: on a T4 the fast path runs float32 (its bf16 is
    # emulated), so an emulated-bf16 peak would make that fraction meaningless
    from ssl4sar.bench.plan import MatmulPeak, plan_benchmarks
    from ssl4sar.config import load_preset

    pretend_cuda(monkeypatch, capability, name)
    assert fast_path("cuda").amp_dtype("cuda") is (dtype if dtype is torch.bfloat16 else None)
    plan = plan_benchmarks(load_preset("smoke"), device=torch.device("cuda"), quick=True, compile=False,
                           preset_name="smoke")
    peak = next(b for b in plan if isinstance(b, MatmulPeak))
    assert peak.dtype is dtype and peak.variant.startswith(str(dtype).replace("torch.", ""))


def test_ratios_come_from_same_case_reference() -> None:
    def row(name: str, case: str, path: str, tput: float) -> dict:
        return {"name": name, "case": case, "path": path, "throughput": tput, "speedup": 1.0,
                "details": {"seconds_10mp_scene_extrapolated": 600.0 / tput}}

    report = {"results": [row("finetune_step", "c", "reference", 2.0), row("finetune_step", "c", "fast", 5.0),
                          row("sliding_window", "s", "reference", 1.0), row("sliding_window", "s", "fast", 3.0),
                          row("pretrain_step", "optsimmim", "fast", 9.0)]}  # no reference of that case: no ratio
    ratios = ratios_of(report)
    assert [(r["benchmark"], r["path"], r["ratio"]) for r in ratios] == [("finetune_step", "fast", 2.5),
                                                                        ("sliding_window", "fast", 3.0)]
    assert ratios[1]["reference_minutes_10mp"] == pytest.approx(10.0)
    assert ratios[1]["minutes_10mp"] == pytest.approx(10.0 / 3)


def test_ratios_carry_the_spread_of_paired_alternating_rounds() -> None:
    """Each alternating round times the reference and the path back to back, so round r gives one paired ratio; the
    report's ``ratio`` stays best against best, and the paired ratios show how much a single run can be trusted."""
    def row(path: str, round_s: list[float], items: float) -> dict:
        return {"name": "sliding_window", "case": "s", "path": path, "throughput": items / min(round_s),
                "speedup": 1.0, "details": {"round_s": round_s, "seconds_10mp_scene_extrapolated": 60.0}}

    ref, fast = row("reference", [16.0, 20.0, 18.0], 16), row("fast", [8.0, 8.0, 6.0], 16)
    (r,) = ratios_of({"results": [ref, fast]})
    assert r["ratio"] == pytest.approx(16.0 / 6.0)  # best round against best round, as before
    assert r["ratio_rounds"] == pytest.approx([2.0, 2.5, 3.0])  # 16/8, 20/8, 18/6
    assert (r["ratio_low"], r["ratio_high"]) == pytest.approx((2.0, 3.0))
    # different items per call (another batch) scale the paired ratios like the throughputs
    (r,) = ratios_of({"results": [ref, row("fast", [8.0, 8.0, 6.0], 32)]})
    assert r["ratio_rounds"] == pytest.approx([4.0, 5.0, 6.0])
    text = render_markdown({"results": [], "ratios": ratios_of({"results": [ref, fast]}), "environment": {}})
    line = next(x for x in text.splitlines() if x.startswith("| sliding_window | s |"))
    assert "**2.67×** (2.00–3.00×, 3 rounds)" in line
    # one round, or rounds of unequal count: no spread, and nothing pretends to be one
    (r,) = ratios_of({"results": [row("reference", [16.0], 16), row("fast", [8.0, 7.0], 16)]})
    assert r["ratio_rounds"] == [] and r["ratio_low"] is None and r["ratio_high"] is None


def test_reports_whose_pretraining_reference_ran_fused_attention_drop_those_ratios(tmp_path: Path) -> None:
    # before schema 3 the pretraining modules kept their fused attention on the reference path: those ratios were
    # not against the official code, so an old report must not show them, and must say why
    def row(name: str, case: str, path: str, throughput: float) -> dict:
        return {"name": name, "variant": f"{case}+{path}", "case": case, "path": path, "throughput": throughput,
                "speedup": 1.0, "notes": []}

    rows = [row("finetune_step", "c", "reference", 2.0), row("finetune_step", "c", "fast", 4.0),
            row("pretrain_step", "optsimmim", "reference", 2.0), row("pretrain_step", "optsimmim", "fast", 3.0)]
    for schema, pretraining_ratio in (("ssl4sar-bench/2", False), (SCHEMA, True)):
        path = tmp_path / "bench.json"
        path.write_text(json.dumps({"schema": schema, "environment": {}, "results": rows}))
        report = load_report(path)
        assert [r["benchmark"] for r in report["ratios"]] == (
            ["finetune_step", "pretrain_step"] if pretraining_ratio else ["finetune_step"])
        text = render_markdown(report)
        assert ("fused attention" in text) is not pretraining_ratio
    assert SCHEMA != "ssl4sar-bench/2"


def test_compact_markdown_fits_a_book_page() -> None:
    # the book shows reports inside a chapter: no page heading, bold section titles, a narrower table whose row notes
    # are numbers into one list (equal notes share a number); bench.md keeps the full form
    def row(case: str, path: str, throughput: float, notes: list[str]) -> dict:
        return {"name": "pretrain_step", "variant": f"{case}+{path}", "case": case, "path": path, "device": "cpu",
                "throughput": throughput, "throughput_unit": "samples/s", "speedup": 1.0, "notes": notes}

    rows = [row("optsimmim", "reference", 2.0, ["best of 2 alternating rounds"]),
            row("optsimmim", "fast", 4.0, ["best of 2 alternating rounds", "peak memory of one step"])]
    report = {"results": rows, "environment": {"device_name": "CPU"}, "mode": "quick", "preset": "paper"}
    report["ratios"] = ratios_of(report)
    full, compact = render_markdown(report), render_markdown(report, heading=False, compact=True)
    assert full.startswith("# ssl4sar benchmarks") and "## Fast path / reference path" in full
    assert "| device |" in full and "| time / item |" in full and "best of 2 alternating rounds; peak memory" in full
    assert not compact.startswith("#") and "\n#" not in compact and "**Fast path / reference path" in compact
    head = next(x for x in compact.splitlines() if x.startswith("| benchmark | variant |"))
    assert head.split(" | ") == ["| benchmark", "variant", "precision", "batch", "throughput", "× reference",
                                 "peak memory", "% of peak", "notes |"]
    table = [x for x in compact.splitlines() if x.startswith("| pretrain_\u200bstep |")]
    assert [x.rsplit("|", 2)[1].strip() for x in table] == ["1", "1, 2"]
    assert "| optsimmim + fast |" in table[1]
    assert "1. best of 2 alternating rounds\n2. peak memory of one step" in compact


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
    # a sliding-window pair whose rows lost their details: the ratios cannot be derived, and the error says so
    rows = [{"name": "sliding_window", "variant": v, "case": "s", "path": v, "throughput": t, "speedup": 1.0}
            for v, t in (("reference", 1.0), ("fast", 2.5))]
    bad.write_text(json.dumps({"schema": SCHEMA, "environment": {}, "results": rows}))
    with pytest.raises(DataError, match="bench.json: cannot derive the fast/reference ratios"):
        load_report(bad)


def test_committed_reports_load() -> None:
    for path in sorted((ROOT / "book" / "bench").glob("*.json")):
        report = load_report(path)
        assert render_markdown(report).startswith("# ssl4sar benchmarks")


def _run_cli(*args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "2"}
    return subprocess.run([sys.executable, "-m", "ssl4sar.bench", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=timeout, check=False)


def test_cli_quick_smoke_writes_valid_files(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    proc = _run_cli("--quick", "--preset", "smoke", "--device", "cpu", "--out", str(out), "--only", "sliding_window",
                    "postprocess_mde")
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = load_report(out / "bench.json")
    assert report["schema"] == SCHEMA and report["mode"] == "quick" and report["preset"] == "smoke"
    assert not report["paper_model"] and report["failed"] == []
    names = [(r["name"], r["variant"]) for r in report["results"]]
    # the matmul peak is added automatically: it is the reference of the model rows' "% of peak"
    assert names == [("matmul_peak", "float32-512"), ("sliding_window", "reference"), ("sliding_window", "fast"),
                     ("sliding_window", "fast-fp32"), ("postprocess_mde", "512px")]
    env = report["environment"]
    for key in ("torch", "timm", "cpu_count", "torch_threads", "device_name"):
        assert env[key]
    assert isinstance(env["cpu_native_bf16"], bool)
    peak, ref, fast, fast32, pp = report["results"]
    assert fast32["details"]["path_realised_precision"] == "fp32"
    assert peak["throughput_unit"] == "TFLOP/s" and peak["throughput"] > 0
    assert ref["batch"] == 1 and fast["batch"] == 2 and ref["speedup"] == 1.0
    # the official code runs one forward pass at a time; the fast path the library's default number
    assert ref["details"]["workers"] == 1 and ref["details"]["path_workers"] == 1
    assert fast["details"]["workers"] == default_inference_workers("cpu")
    assert ref["details"]["path_centre_only"] is False and fast["details"]["path_centre_only"] is True
    for sw in (ref, fast):
        d = sw["details"]
        assert sw["throughput_unit"] == "windows/s" and sw["throughput"] > 0
        assert d["n_windows"] == 16 and len(d["round_s"]) == 3  # 4 × 4 windows, 3 alternating rounds
        assert d["windows_10mp_scene"] == windows_in_scene((3162, 3162), 64, 16)
        assert d["seconds_10mp_scene_extrapolated"] == pytest.approx(d["windows_10mp_scene"] / sw["throughput"])
        assert sw["throughput"] == pytest.approx(16 / min(d["round_s"]))
        assert sw["flops_per_item"] == count_flops(
            lambda: Tyrion.from_config(load_preset("smoke")["model"]), lambda m: m(torch.empty(1, 1, 64, 64)))
        assert sw["fraction_of_peak"] == pytest.approx(sw["achieved_tflops"] / peak["throughput"])
    assert fast["speedup"] == pytest.approx(fast["throughput"] / ref["throughput"])
    # the file holds the ratios of its rows (load_report recomputes them, so read the file itself)
    assert json.loads((out / "bench.json").read_text())["ratios"] == ratios_of(report)
    ratio, ratio32 = report["ratios"]
    assert ratio["benchmark"] == "sliding_window" and ratio["ratio"] == pytest.approx(fast["speedup"])
    assert len(ratio["ratio_rounds"]) == 3 and ratio["ratio_low"] <= ratio["ratio_high"]
    assert ratio32["path"] == "fast-fp32" and ratio32["ratio"] == pytest.approx(fast32["speedup"])
    assert pp["throughput_unit"] == "scenes/s" and pp["details"]["size_px"] == 512 and pp["details"]["n_pred"] > 0
    md = (out / "bench.md").read_text()
    assert md == render_markdown(report)
    assert "## Fast path / reference path" in md and "| sliding_window | stride16 | fast |" in md
    table = [line for line in md.splitlines() if line.startswith("| ") and "× reference" not in line]
    assert "NOT the paper model" in md and "extrapolated" in md
    assert "| sliding_window | fast | CPU |" in md and len(table) >= len(report["results"])
    assert list(results_frame(report)["name"]) == [n for n, _ in names]
    assert "wrote" in proc.stdout and "| benchmark |" in proc.stdout
    # the attention kernel of every block of the smoke network on this CPU (see the next test)
    blocks = sum(load_preset("smoke")["model"]["depths"])
    kernels = report["attention_backends"]
    assert len(kernels["blocks"]) == blocks and kernels["counts"]["inference"] == {"flash_attention": blocks}
    assert (f"Attention kernels of the fast path (PyTorch's choice per window-attention block): "
            f"training: math ×{blocks}; inference: flash_attention ×{blocks}.") in md


def test_attention_backends_report_what_pytorch_selects() -> None:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from ssl4sar.bench.attention import attention_backends, backends_line

    cfg = load_preset("smoke")["model"]
    n = sum(cfg["depths"])
    got = attention_backends(cfg, "cpu")
    assert [b["stage"] for b in got["blocks"]] == [s for s, d in enumerate(cfg["depths"]) for _ in range(d)]
    # the CPU's flash kernel takes a float bias that needs no gradient; it cannot return a mask's gradient, so in
    # training (the position-bias MLP learns through the mask) PyTorch runs the math kernel
    assert got["counts"] == {"training": {"math": n}, "inference": {"flash_attention": n}}
    assert backends_line(got) == f"training: math ×{n}; inference: flash_attention ×{n}"
    with sdpa_kernel([SDPBackend.MATH]):  # the record follows PyTorch's selection, not a fixed table
        assert attention_backends(cfg, "cpu")["counts"]["inference"] == {"math": n}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_attention_backends_of_the_paper_network_on_cuda_avoid_the_math_kernel() -> None:
    from ssl4sar.bench.attention import attention_backends

    got = attention_backends(load_preset("paper")["model"], "cuda")
    assert len(got["blocks"]) == 12
    assert "math" not in got["counts"]["training"] and "math" not in got["counts"]["inference"], got["counts"]


def test_cli_list_and_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert bench_main(["--quick", "--preset", "smoke", "--device", "cpu", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    keys = [line.split()[0] for line in lines]
    assert {k.split("/")[0] for k in keys} == set(BENCHMARKS) - {"accuracy"}
    assert "finetune_step/reference-vs-fast  [reference, fast]" in lines
    assert "pretrain_step/optsimmim  [reference, fast]" in lines
    assert bench_main(["--preset", "smoke", "--device", "cpu", "--list", "--only", "sliding_window",
                       "finetune_step"]) == 0
    full = capsys.readouterr().out
    for ablation in ("fast-fp32", "fast-timm-attention", "fast-full-decoder", "fast-batch-1", "fast-nearest-upsampling",
                     "fast-1-worker"):
        assert ablation in full  # full mode: one switch of the fast path off per row
    train_line = next(line for line in full.splitlines() if line.startswith("finetune_step/"))
    assert train_line.endswith(", fast-polyphase]")  # training: polyphase upsampling is an ablation, not the default
    assert "fast-polyphase" not in next(line for line in full.splitlines() if line.startswith("sliding_window/"))
    assert bench_main(["--quick", "--preset", "smoke", "--device", "cpu", "--list", "--only", "data_sampler"]) == 0
    assert capsys.readouterr().out.split() == ["data_sampler/64px-preset-probabilities",
                                               "data_sampler/64px-all-augmentations"]
    assert bench_main(["--quick", "--preset", "smoke", "--out", str(tmp_path), "--only", "nonsense"]) == 2
    assert not (tmp_path / "bench.json").exists()
    assert bench_main(["--quick", "--preset", "no-such-preset", "--out", str(tmp_path)]) == 2


@pytest.mark.parametrize(("options", "message"), [
    (["--batch-size", "0"], "batch size must be at least 1, got 0"),  # was taken as "the default" (0 is falsy)
    (["--batch-size", "-3"], "batch size must be at least 1, got -3"),
    (["--seed", "-1"], "seed: expected an integer in [0, 4294967295], got -1"),  # failed each benchmark, unnamed
    (["--device", "foo"], "device 'foo': expected auto, cpu, cuda or cuda:N"),  # a RuntimeError traceback
])
def test_cli_refuses_bad_settings_before_anything_runs(options: list[str], message: str, tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "out"
    assert bench_main(["--quick", "--preset", "smoke", "--out", str(out), "--only", "postprocess_mde", *options]) == 2
    assert message in caplog.text
    assert not (out / "bench.json").exists()


def test_append_merges_runs(tmp_path: Path) -> None:
    from ssl4sar.bench import run_benchmarks

    first = run_benchmarks(tmp_path, quick=True, device="cpu", preset="smoke", only=["postprocess_mde"])
    assert "attention_backends" not in first  # no network ran
    assert [r["name"] for r in first["results"]] == ["postprocess_mde"]
    # the attention-kernel record of an earlier run (one that ran a network) survives an append that runs none
    record = {"device": "cpu", "blocks": [], "counts": {"training": {"math": 4}, "inference": {"flash_attention": 4}}}
    path = tmp_path / "bench.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "attention_backends": record}))
    second = run_benchmarks(tmp_path, quick=True, device="cpu", preset="smoke", only=["data_sampler/*preset*"],
                            append=True)
    assert second["attention_backends"] == record and load_report(path)["attention_backends"] == record
    assert [(r["name"], r["variant"]) for r in second["results"]] == [
        ("postprocess_mde", "512px"), ("data_sampler", "64px-preset-probabilities")]
    on_disk = load_report(tmp_path / "bench.json")
    assert [r["name"] for r in on_disk["results"]] == ["postprocess_mde", "data_sampler"]
    # re-measuring a row replaces it
    third = run_benchmarks(tmp_path, quick=True, device="cpu", preset="smoke", only=["postprocess_mde"], append=True)
    assert [r["name"] for r in third["results"]] == ["data_sampler", "postprocess_mde"]
    with pytest.raises(DataError, match="--append"):
        run_benchmarks(tmp_path, quick=False, device="cpu", preset="smoke", only=["postprocess_mde"], append=True)
    # without append the report is replaced
    fresh = run_benchmarks(tmp_path, quick=True, device="cpu", preset="smoke", only=["postprocess_mde"])
    assert len(fresh["results"]) == 1 and "attention_backends" not in fresh


def test_postprocess_and_sliding_window_benchmarks_measure_something() -> None:
    from ssl4sar.bench import benchmark_postprocess_mde, benchmark_sliding_window, build_model

    pp = benchmark_postprocess_mde(size=300, repeats=1)
    assert pp["n_pred"] > 300 and pp["n_gt"] > 300  # ~2 × size front pixels
    assert 0 < pp["mde_m"] < 300 * 20 and pp["postprocess_s"] > 0
    assert pp["memory_kind"] in ("rss_hwm", "ru_maxrss") and pp["peak_memory_mb"] > 0
    sw = benchmark_sliding_window(build_model("smoke"), 80, batch_size=8, stride=32, device="cpu")
    assert sw["context_size"] == 64 and sw["stride"] == 32
    assert sw["n_windows"] == 9  # 80 + 2·16 = 112 → padded to 128 → 3 × 3 windows of 64 on a 32-grid
    assert sw["windows_per_s"] == pytest.approx(sw["n_windows"] / sw["seconds"])
    assert sw["peak_memory_mb"] >= sw["memory_baseline_mb"] > 0


def test_profile_step_ranks_the_matmul_first() -> None:
    from ssl4sar.bench.profile import profile_step

    a, b = torch.rand(256, 256), torch.rand(256, 256)
    prof = profile_step(lambda: (a @ b).relu_(), "cpu", steps=2, warmup=1)
    assert prof["top"][0]["name"] in ("aten::mm", "aten::matmul") and prof["top"][0]["calls"] == 1
    assert 0 < prof["top"][0]["fraction"] <= 1 and prof["profiled_s"] > 0
    assert "aten::mm" in prof["table"]


def test_step_settings_of_a_path_and_their_report_fields() -> None:
    fast = ExecPath("fast", precision="bf16", fused=True, channels_last=True, compile=False)
    s = StepSettings.on_path(fast, "cpu", 4, seed=7)
    assert (s.device, s.batch_size, s.precision, s.fused, s.channels_last, s.compile, s.seed) == (
        "cpu", 4, "bf16", True, True, False, 7)
    assert s.amp is torch.bfloat16 and s.use_channels_last and not s.use_tf32
    plain = StepSettings(tf32=True)   # channels-last on CUDA only; TF32 on CUDA only
    assert plain.amp is None and not plain.use_channels_last and not plain.use_tf32
    model = Tyrion.from_config(TINY)
    info = s.info(32, model)
    assert info["precision"] == "bf16-mixed" and info["channels_last"] is True and info["batch_size"] == 4
    assert info["model_img_size"] == 32 and info["params_m"] == pytest.approx(model.num_params() / 1e6)
    assert plain.info(32, model)["precision"] == "fp32" and plain.info(32, model)["device_name"] == "cpu"


def test_training_steps_keep_the_official_upsampling_and_measure_polyphase_as_an_ablation() -> None:
    # the library trains with nearest upsampling + 3 x 3 convolution; inference uses the polyphase form
    assert fast_path("cpu").polyphase and not fast_training_path("cpu").polyphase
    assert fast_training_path("cuda") == fast_path("cuda").with_(polyphase=False)
    ablation = fast_training_path("cpu").with_(name="fast-polyphase", polyphase=True)
    losses = []
    exact = {"precision": "fp32"}  # the loss comparison below needs the same function in float32
    for path, on in ((fast_training_path("cpu").with_(**exact), False), (ablation.with_(**exact), True)):
        s = StepSettings.on_path(path, "cpu", 2)
        assert s.polyphase is on
        case = finetune_case(TINY, s)
        assert case.info["polyphase_upsampling"] is on
        assert any(getattr(m, "polyphase", False) for m in case.module.modules()) is on
        for _ in range(2):
            case.step()
        losses.append(case.last["loss"])
    # the same function and gradients either way: two SGD steps from the same weights and batch, the same loss
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)


def test_cudnn_autotuning_is_a_training_ablation_on_cuda_and_a_path_setting() -> None:
    from ssl4sar.bench.paths import path_settings
    from ssl4sar.bench.plan import _paths

    def names(device: str, quick: bool = True, inference: bool = False) -> list[str]:
        return [p.name for p in _paths(torch.device(device), quick, compile=False, inference=inference)]

    assert names("cuda") == ["reference", "fast", "fast-contiguous", "fast-polyphase", "fast-no-cudnn-autotuning"]
    assert names("cuda", inference=True) == ["reference", "fast", "fast-fp32", "fast-contiguous"]
    assert "fast-channels-last" not in names("cpu") + names("cpu", inference=True)  # CPU: full mode only
    assert "fast-no-cudnn-autotuning" in names("cuda", quick=False)
    # inference always autotunes (the library does), and the CPU has no cuDNN
    assert "fast-no-cudnn-autotuning" not in names("cuda", inference=True) + names("cpu", quick=False)
    off = next(p for p in _paths(torch.device("cuda"), True, False, False) if p.name == "fast-no-cudnn-autotuning")
    assert off == fast_training_path("cuda").with_(name=off.name, cudnn_autotuning=False)
    old, threads = torch.backends.cudnn.benchmark, torch.get_num_threads()
    try:
        torch.backends.cudnn.benchmark = True
        with path_settings(off.with_(threads=1), "cuda"):
            assert torch.backends.cudnn.benchmark is False and torch.get_num_threads() == 1
        assert torch.backends.cudnn.benchmark is True and torch.get_num_threads() == threads
        torch.backends.cudnn.benchmark = False
        with path_settings(fast_training_path("cuda"), "cuda"):
            assert torch.backends.cudnn.benchmark is True
        assert torch.backends.cudnn.benchmark is False
    finally:
        torch.backends.cudnn.benchmark = old


def test_bench_command_profile_writes_the_operator_table(tmp_path: Path) -> None:
    """``--profile`` profiles a fast-path fine-tuning step after the benchmarks (it once crashed on an unknown
    argument name after every benchmark had run)."""
    from ssl4sar.commands.bench import main

    assert main(["--preset", "smoke", "--quick", "--device", "cpu", "--only", "matmul_peak", "sliding_window",
                 "--profile", "--batch-size", "2", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "profile.txt").read_text()
    assert text.startswith("fast-path fine-tuning step, preset smoke, batch 2, cpu:") and "Self CPU" in text
    assert re.search(r"s of operator self time per step, [0-9.e-]+ s wall under the profiler\n", text)
    # the sliding-window profile runs the benchmark's scene, stride and batch
    row = next(r["details"] for r in load_report(tmp_path / "bench.json")["results"]
               if r["name"] == "sliding_window" and r["path"] == "fast")
    window = (tmp_path / "profile-sliding-window.txt").read_text()
    assert window.startswith(f"fast-path sliding-window inference, preset smoke, {row['n_windows']} windows (random "
                             f"{row['scene_h']} px scene, stride {row['stride']} px, batch {row['batch_size']}, "
                             "one forward pass at a time), cpu:")
    assert "per scene" in window and "Self CPU" in window and "busy" not in window  # the busy share is for GPUs


def test_profile_header_gives_the_kernel_share_of_the_wall_time_on_a_gpu() -> None:
    from ssl4sar.commands.bench import profile_header

    prof = {"profiled_s": 0.02, "wall_s": 0.08}
    assert profile_header("a step", "step", "cuda:0", prof) == (
        "a step, cuda:0: 0.02 s of operator self time per step, 0.08 s wall under the profiler "
        "(kernels busy 25 % of the wall time)\n\n")
    assert "busy" not in profile_header("a step", "step", "cpu", prof)


def test_profile_step_measures_the_wall_time_of_its_steps() -> None:
    from ssl4sar.bench.profile import profile_step

    calls = []

    def step() -> None:
        calls.append(1)
        time.sleep(0.01)

    prof = profile_step(step, "cpu", steps=3, warmup=1)
    assert len(calls) == 4 and prof["steps"] == 3
    assert prof["wall_s"] >= 0.01   # each profiled step sleeps 10 ms: a lower bound, not a timing target


def test_bench_command_profiles_the_compiled_step_when_compile_is_on(tmp_path: Path, monkeypatch) -> None:
    # the compiled profile itself is torch.profiler on a maybe_compile'd step (compiling costs minutes on this
    # CPU): here only the command's wiring, with a stand-in for the profiler
    import ssl4sar.bench.profile as profile_module
    from ssl4sar.commands.bench import main

    calls = []

    def fake_profile(model_config, device, batch, steps=2, compile=False):
        calls.append(compile)
        return {"batch_size": batch, "profiled_s": 0.5, "wall_s": 0.6, "table": f"table compile={compile}"}

    monkeypatch.setattr(profile_module, "profile_fast_finetune", fake_profile)
    assert main(["--preset", "smoke", "--quick", "--device", "cpu", "--only", "matmul_peak", "--profile",
                 "--compile", "on", "--batch-size", "2", "--out", str(tmp_path)]) == 0
    assert calls == [False, True]
    compiled = (tmp_path / "profile-compile.txt").read_text()
    assert compiled.startswith("fast-path compiled fine-tuning step, preset smoke, batch 2, cpu:")
    assert compiled.rstrip().endswith("table compile=True")
    assert (tmp_path / "profile.txt").read_text().rstrip().endswith("table compile=False")


def test_bench_command_writes_each_profile_before_the_next_one_runs(tmp_path: Path, monkeypatch) -> None:
    """Eager step, then inference, then the compiled step (minutes of compiling): a time limit or a failure in the
    compiled profile keeps the tables already measured."""
    import ssl4sar.bench.profile as profile_module
    from ssl4sar.commands.bench import main

    order = []

    def fake_finetune(model_config, device, batch, steps=2, compile=False):
        order.append("compiled" if compile else "eager")
        if compile:
            raise RuntimeError("compilation killed")
        return {"profiled_s": 0.5, "wall_s": 0.6, "table": "eager table"}

    def fake_window(model_config, device, *, scene_side, stride, batch, calls=1, seed=0):
        order.append("sliding-window")
        return {"profiled_s": 0.1, "wall_s": 0.2, "table": "window table", "n_windows": 9, "scene_side": scene_side,
                "stride": stride, "batch_size": batch}

    monkeypatch.setattr(profile_module, "profile_fast_finetune", fake_finetune)
    monkeypatch.setattr(profile_module, "profile_fast_sliding_window", fake_window)
    with pytest.raises(RuntimeError, match="compilation killed"):
        main(["--preset", "smoke", "--quick", "--device", "cpu", "--only", "sliding_window", "--profile",
              "--compile", "on", "--batch-size", "2", "--out", str(tmp_path)])
    assert order == ["eager", "sliding-window", "compiled"]
    assert (tmp_path / "profile.txt").read_text().rstrip().endswith("eager table")
    assert (tmp_path / "profile-sliding-window.txt").read_text().rstrip().endswith("window table")
    assert (tmp_path / "bench.json").is_file() and not (tmp_path / "profile-compile.txt").exists()


def test_report_environment_names_the_commit_of_a_source_checkout(tmp_path: Path) -> None:
    """A report measured from a git checkout records that checkout's commit (``-dirty`` with uncommitted changes to
    tracked files); a package outside a checkout (an installed wheel) records none."""
    import importlib

    env_mod = importlib.import_module("ssl4sar.bench.environment")  # the package exports a function of that name

    package = Path(env_mod.__file__).resolve().parent.parent
    if not (package.parent / ".git").exists():
        pytest.skip("not running from a git checkout")
    head = subprocess.run(["git", "-C", str(package.parent), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(package.parent), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert env_mod.environment("cpu")["git_commit"] == head + ("-dirty" if dirty else "")
    assert env_mod.git_commit_of(tmp_path / "ssl4sar") is None  # no .git beside the package
