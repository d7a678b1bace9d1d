"""What ``ssl4sar.bench.profile`` sums from a profile: torch's event entries stood in for by plain objects, since
the GPU case (kernels as their own entries) cannot be recorded on a CPU."""

from __future__ import annotations

import types

import pytest
from torch.autograd import DeviceType

from ssl4sar.bench.profile import self_time_us


def _event(key: str, device_type: DeviceType, self_cpu: float, self_device: float,
           annotation: bool = False) -> types.SimpleNamespace:
    return types.SimpleNamespace(key=key, device_type=device_type, self_cpu_time_total=self_cpu,
                                 self_device_time_total=self_device, is_user_annotation=annotation)


def test_gpu_self_time_counts_each_kernel_once() -> None:
    """In torch 2.14 a kernel is an entry of its own and also the self device time of the aten op that launched it;
    summing every entry doubled the "operator self time per step" of the H200 profile (0.248 s per step, torch's
    own footer 123 ms)."""
    events = [
        _event("aten::mm", DeviceType.CPU, 30.0, 100.0),  # launched the gemm below
        _event("sm90_xmma_gemm", DeviceType.CUDA, 0.0, 100.0),
        _event("aten::relu_", DeviceType.CPU, 10.0, 5.0),
        _event("vectorized_elementwise_kernel", DeviceType.CUDA, 0.0, 5.0),
        _event("ProfilerStep", DeviceType.CUDA, 0.0, 105.0, annotation=True),  # a range, not a kernel
    ]
    assert self_time_us(events, cuda=True) == pytest.approx(105.0)
    assert self_time_us(events, cuda=False) == pytest.approx(40.0)  # CPU: the operators' own CPU time


@pytest.mark.parametrize("compile_", [False, True])
def test_a_compiled_step_is_profiled_after_the_benchmarks_warm_up(monkeypatch, compile_: bool) -> None:
    """The benchmark times a compiled path after three warm-up steps (compilation, and the recompilation a second
    step can trigger); the profile of the same path warmed up one step only, so a recompile could land in the
    profiled steps."""
    import ssl4sar.bench.training as training
    from ssl4sar.bench.measure import COMPILE_WARMUP_STEPS
    from ssl4sar.bench.profile import profile_fast_finetune

    calls = []
    case = types.SimpleNamespace(step=lambda: calls.append(1))
    monkeypatch.setattr(training, "finetune_case", lambda config, settings: case)
    out = profile_fast_finetune({}, "cpu", batch=1, steps=2, compile=compile_)
    assert out["steps"] == 2 and out["compile"] is compile_
    assert len(calls) == (COMPILE_WARMUP_STEPS if compile_ else 1) + 2
