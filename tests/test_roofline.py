"""``ssl4sar.bench.traffic`` and ``ssl4sar.bench.roofline``: operator FLOPs and bytes recorded on ``meta`` against
hand counts, the fused-attention stand-in, the two bounds on a hand-made step, kernel replay on the CPU and the
command line."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import sdpa_backward_flop_count, sdpa_flop_count

from ssl4sar.bench.environment import measure_memory_bandwidth
from ssl4sar.bench.measure import count_flops
from ssl4sar.bench.roofline import StepCosts, find_reports, load_report, main, roofline, training_step_costs
from ssl4sar.bench.traffic import Kernel, OpCost, TrafficRecorder, fused_attention_model, tensor_bytes, time_kernels
from ssl4sar.config import load_preset
from ssl4sar.errors import DataError
from ssl4sar.models.tyrion import Tyrion

BF16 = 2  # bytes


def test_a_linear_layer_is_one_addmm_with_its_operands_bytes_and_views_move_nothing() -> None:
    rec = TrafficRecorder()
    with torch.device("meta"):
        lin = torch.nn.Linear(96, 288).to(torch.bfloat16)
        x = torch.empty(4096, 96, dtype=torch.bfloat16)
        with rec:
            y = lin(x)
            y.view(64, 64, 288).transpose(0, 1).expand(2, 64, 64, 288)
            torch.empty_like(y)
    assert set(rec.costs) == {"aten.addmm"}   # the weight's transpose, views and the allocation are free
    row = rec.costs["aten.addmm"]
    assert (row.kind, row.calls) == ("matmul", 1)
    assert row.flops == 2 * 4096 * 96 * 288
    assert row.bytes == (288 + 4096 * 96 + 96 * 288 + 4096 * 288) * BF16
    (kernel,) = rec.kernels.values()
    assert (kernel.count, kernel.flops, kernel.bytes) == (1, row.flops, row.bytes)
    out = kernel.prepare(torch.device("cpu"))()   # replayed on the CPU with random operands of the same layout
    assert out.shape == (4096, 288) and out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()


def test_a_broadcast_operand_counts_its_stored_elements_once() -> None:
    t = torch.empty(1, 3, dtype=torch.float32, device="meta").expand(5, 3)
    assert tensor_bytes(t) == 3 * 4
    assert tensor_bytes(torch.empty(5, 3, device="meta")) == 15 * 4
    assert tensor_bytes("not a tensor") == 0


@pytest.mark.parametrize("bias_grad", [True, False])
def test_fused_attention_is_one_kernel_each_way_and_its_bias_gradient_is_full_size(bias_grad: bool) -> None:
    rec = TrafficRecorder()
    shape = (2, 3, 16, 8)
    with torch.device("meta"):
        q, k, v = (torch.empty(shape, dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
        bias = torch.empty(1, 3, 16, 16, dtype=torch.bfloat16, requires_grad=bias_grad)
        with rec, fused_attention_model(rec):
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=1.0)
            rec.phase = "backward"
            out.float().sum().backward()
    assert out.shape == shape and q.grad is not None and q.grad.shape == shape
    assert (bias.grad is not None) == bias_grad
    assert "aten.bmm" not in rec.costs and "aten._safe_softmax" not in rec.costs   # not the unfused math form
    qkv = 3 * 2 * 3 * 16 * 8 * BF16
    lse = 2 * 3 * 16 * 4
    fwd = rec.costs["fused_attention"]
    assert fwd.flops == sdpa_flop_count(shape, shape, shape) == rec.forward_flops
    assert fwd.bytes == qkv + 3 * 16 * 16 * BF16 + 2 * 3 * 16 * 8 * BF16 + lse
    bwd = rec.costs["fused_attention_backward"]
    assert bwd.flops == sdpa_backward_flop_count(shape, shape, shape, shape)
    dbias = 2 * 3 * 16 * 16 * BF16 if bias_grad else 0   # one value per score and image, before the sum
    grad_out = 2 * 3 * 16 * 8 * BF16
    assert bwd.bytes == fwd.bytes + grad_out + qkv + dbias
    assert {k.kind for k in rec.kernels.values()} == {"attention"} and len(rec.kernels) == 2


def test_bounds_of_a_hand_made_step() -> None:
    # a compute-bound matmul (1 TFLOP, 1 GB) and a memory-bound element-wise op (10 GB) on a 100 TFLOP/s, 1 TB/s
    # device: 10 ms each at the roofline; useful work 1 TFLOP (3 × a third)
    costs = [OpCost("aten.mm", "matmul", 1, 1e12, 1e9), OpCost("aten.add", "other", 1, 0.0, 1e10)]
    kernel = Kernel("aten.mm", "matmul", None, count=2, flops=5e11, bytes=5e8)
    step = StepCosts(costs, [kernel], forward_flops=1e12 / 3, batch_size=4)
    r = roofline(step, peak_tflops=100, bandwidth_gb_per_s=1000)
    assert r["ridge_flop_per_byte"] == pytest.approx(100)
    assert r["bounds"]["unfused"]["step_s"] == pytest.approx(0.02)
    assert r["bounds"]["unfused"]["fraction_of_peak"] == pytest.approx(0.5)
    assert r["bounds"]["fused"]["step_s"] == pytest.approx(0.01)
    assert r["bounds"]["fused"]["samples_per_s"] == pytest.approx(400)
    assert r["bounds"]["fused"]["fraction_of_peak"] == pytest.approx(1.0)
    assert "measured kernels" not in r["bounds"] and r["kernels"] == []
    m = roofline(step, peak_tflops=100, bandwidth_gb_per_s=1000, kernel_seconds=[0.02])   # 2 calls × 20 ms
    assert m["bounds"]["measured kernels"]["step_s"] == pytest.approx(0.04)
    assert m["bounds"]["measured kernels"]["fraction_of_peak"] == pytest.approx(0.25)
    assert m["kernels"][0]["fraction_of_peak"] == pytest.approx(5e11 / 0.02 / 1e14)
    assert {k["kind"]: k["measured_s"] for k in m["kinds"]}["matmul"] == pytest.approx(0.04)
    with pytest.raises(ValueError, match="1 kernel times for 2 kernels|kernel times"):
        roofline(StepCosts(costs, [kernel, kernel], 1.0, 1), 100, 1000, kernel_seconds=[0.1])
    with pytest.raises(ValueError, match="must be positive"):
        roofline(step, peak_tflops=0, bandwidth_gb_per_s=1000)
    with pytest.raises(ValueError, match="must be positive, finite numbers"):  # inf made every fraction 0
        roofline(step, peak_tflops=100, bandwidth_gb_per_s=math.inf)


def test_a_smoke_training_step_on_meta_agrees_with_the_benchmarks_flop_count() -> None:
    cfg = load_preset("smoke")["model"]
    step = training_step_costs(cfg, batch_size=2)
    c = cfg["img_size"]
    # the benchmark counts the forward with timm's attention on meta: the same FLOPs as the fused model's
    assert step.forward_flops == pytest.approx(count_flops(lambda: Tyrion.from_config(cfg),
                                                           lambda m: m(torch.empty(2, 1, c, c))), rel=1e-9)
    kinds = {c.kind for c in step.costs}
    assert kinds == {"matmul", "convolution", "attention", "optimizer", "other"}
    n_params = sum(p.numel() for p in Tyrion.from_config(cfg).parameters())
    (opt,) = [c for c in step.costs if c.kind == "optimizer"]
    assert opt.bytes == n_params * (5 * 4 + 4 + BF16)
    # backward ≈ 2 × forward: executed FLOPs lie between 2.5 × (no input gradient of the stem) and 3.5 × the forward
    executed = sum(c.flops for c in step.costs)
    assert 2.5 * step.forward_flops < executed < 3.5 * step.forward_flops
    assert sum(k.count for k in step.kernels) == sum(c.calls for c in step.costs if c.kind in
                                                     ("matmul", "convolution", "attention"))
    r = roofline(step, peak_tflops=1.0, bandwidth_gb_per_s=50.0)
    assert 0 < r["bounds"]["unfused"]["fraction_of_peak"] < r["bounds"]["fused"]["fraction_of_peak"] <= 1.0
    with pytest.raises(ValueError, match="batch_size"):
        training_step_costs(cfg, batch_size=0)


def test_every_compute_kernel_of_a_smoke_step_replays_on_the_cpu() -> None:
    step = training_step_costs(load_preset("smoke")["model"], batch_size=1)
    seconds = time_kernels(step.kernels, "cpu", repeats=1)
    assert len(seconds) == len(step.kernels) and all(math.isfinite(t) and t > 0 for t in seconds)
    r = roofline(step, 1.0, 50.0, kernel_seconds=seconds)
    total = sum(k.count * t for k, t in zip(step.kernels, seconds, strict=True))
    opt = next(k["fused_s"] for k in r["kinds"] if k["kind"] == "optimizer")
    assert r["bounds"]["measured kernels"]["step_s"] == pytest.approx(total + opt)
    assert [k["total_s"] for k in r["kernels"]] == sorted((k["total_s"] for k in r["kernels"]), reverse=True)


def test_command_line_writes_json_and_markdown_and_refuses_bad_arguments(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "rf"
    args = ["--preset", "smoke", "--batch-size", "2", "--peak-tflops", "10", "--bandwidth-gbs", "100",
            "--peak-source", "test numbers", "--bandwidth-source", "a spec sheet",
            "--measured-samples-per-s", "50", "--measured-what", "a guess"]
    assert main([*args, "--out", str(out)]) == 0
    report = json.loads((out / "roofline.json").read_text())
    assert report["schema"] == "ssl4sar-roofline/1" and report["peak_source"] == "test numbers"
    assert report["bandwidth_source"] == "a spec sheet"
    assert report["measured"]["fraction_of_peak"] == pytest.approx(50 * report["useful_flops_per_sample"] / 1e13)
    md = (out / "roofline.md").read_text()
    assert "| fused |" in md and "| measured step: a guess |" in md and md in capsys.readouterr().out
    assert not list(out.glob("*.tmp"))
    for bad, message in ((["--peak-tflops", "10"], "give --peak-tflops and --bandwidth-gbs"),
                         (["--peak-tflops", "0", "--bandwidth-gbs", "100"], "must be positive"),
                         (["--peak-tflops", "inf", "--bandwidth-gbs", "100"], "must be positive, finite"),
                         (["--peak-tflops", "1", "--bandwidth-gbs", "1", "--batch-size", "0"], "at least 1")):
        with pytest.raises(SystemExit) as exc:
            main([*bad, "--preset", "smoke", "--out", str(tmp_path / "x")])
        assert exc.value.code == 2 and message in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SystemExit) as exc:
        main([*args, "--out", str(blocker / "sub")])
    assert exc.value.code == 2 and f"cannot write the report into {blocker / 'sub'}" in capsys.readouterr().err


def test_memory_bandwidth_is_measured_from_a_copy() -> None:
    r = measure_memory_bandwidth("cpu", mib=8, iters=2)
    assert r["mib"] == 8 and r["device"] == "cpu" and r["seconds_per_copy"] > 0
    assert r["gb_per_s"] == pytest.approx(2 * 8 * 2**20 / r["seconds_per_copy"] / 1e9)


def test_channels_last_changes_the_recorded_layouts_not_the_costs() -> None:
    cfg = load_preset("smoke")["model"]
    plain, nhwc = (training_step_costs(cfg, batch_size=1, channels_last=cl) for cl in (False, True))
    conv = {c.name: (c.flops, c.bytes) for c in plain.costs if c.kind == "convolution"}
    assert conv == {c.name: (c.flops, c.bytes) for c in nhwc.costs if c.kind == "convolution"}
    assert plain.forward_flops == nhwc.forward_flops

    def decoder_conv_weights(step: StepCosts) -> list:   # spec = (func, args, kwargs); args[1] = the weight
        return [k.spec[1][1] for k in step.kernels if k.name == "aten.convolution" and k.spec[1][1].shape[1] > 1]

    w_plain, w_nhwc = decoder_conv_weights(plain), decoder_conv_weights(nhwc)
    assert [w.shape for w in w_plain] == [w.shape for w in w_nhwc]
    assert all(w.make(torch.device("cpu")).is_contiguous() for w in w_plain)
    assert all(w.make(torch.device("cpu")).is_contiguous(memory_format=torch.channels_last) for w in w_nhwc)
    assert all(a.stride != b.stride for a, b in zip(w_plain, w_nhwc, strict=True))


def test_reports_are_found_by_folder_and_a_broken_one_is_named(tmp_path: Path) -> None:
    for sub in ("gpu/b64", "cpu"):
        assert main(["--preset", "smoke", "--batch-size", "1", "--peak-tflops", "1", "--bandwidth-gbs", "10",
                     "--out", str(tmp_path / sub)]) == 0
    (tmp_path / "bench.json").write_text("{}")          # other reports in the folder are not roofline reports
    found = find_reports(tmp_path)
    assert [label for label, _ in found] == ["cpu", "gpu/b64"]
    assert load_report(found[0][1])["bounds"]["fused"]["step_s"] > 0
    assert find_reports(tmp_path / "missing") == [] and find_reports(None) == []
    bad = tmp_path / "bad" / "roofline.json"
    bad.parent.mkdir()
    for text, message in (("{not json", "cannot read the roofline report"),
                          ('{"schema": "ssl4sar-bench/3"}', "not a roofline report"),
                          ('{"schema": "ssl4sar-roofline/1", "bounds": {}}', "roofline report without")):
        bad.write_text(text)
        with pytest.raises(DataError, match=message) as exc:
            load_report(bad)
        assert str(bad) in str(exc.value)


def test_kernels_are_timed_with_cudnn_autotuning_on_a_gpu(monkeypatch) -> None:
    """The training steps the roofline is compared with autotune cuDNN's convolutions; timed alone without it, the
    "measured kernels" bound timed cuDNN's untuned heuristic choices (pretended GPU, no kernel runs)."""
    import types

    from fake_gpu import pretend_cuda, pretend_cuda_memory

    from ssl4sar.bench.traffic import time_kernels

    pretend_cuda(monkeypatch, (9, 0), "H200")
    pretend_cuda_memory(monkeypatch)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    flags: list[bool] = []
    kernel = types.SimpleNamespace(prepare=lambda dev: lambda: flags.append(torch.backends.cudnn.benchmark))
    assert time_kernels([kernel, kernel], "cuda", repeats=2) == [0.001, 0.001]
    assert flags == [True] * 6 and torch.backends.cudnn.benchmark is False  # restored
