"""Roofline bounds of a TYRION training step: the fraction of a device's matmul peak that the network's own shapes
allow, whatever the kernels.

The training step (forward, the fine-tuning loss, backward, SGD with momentum) runs on the ``meta`` device — shapes
only, nothing computed, seconds on any machine — in bf16 with fused SDPA window attention, as the library's fast path
computes on a GPU. Every ATen operator it dispatches is recorded with its FLOPs (PyTorch's own counting formulas;
matrix products, convolutions and attention) and the bytes it moves (its inputs read once, its outputs written once;
views move nothing; a broadcast operand counts its stored elements). An operator then takes at least
``max(FLOPs / peak, bytes / bandwidth)`` — the roofline — and a step at least the sum over its operators. Two
traffic models bound a step from both sides:

``unfused``  every operator reads its inputs from and writes its outputs to device memory: what eager PyTorch does,
             with every kernel at the roofline. The measured eager fast path should sit below it.
``fused``    only the matrix products, convolutions, attention and the optimizer move bytes: every element-wise,
             normalisation and reduction operator is fused into them for free. No implementation of this network
             can beat it (at that peak and bandwidth); ``torch.compile`` moves a step from the first towards it.

The fraction of peak is defined as in ``make bench``: :data:`~ssl4sar.bench.measure.TRAINING_FLOPS_FACTOR` × the
forward FLOPs per sample (the useful work), divided by the step time and the peak. Attention's backward recomputes
the scores; that work costs time but does not count as useful.

Fused attention is modelled as one kernel per call (forward: reads q, k, v and the additive bias, writes the
output and the log-sum-exp rows; backward: reads those and the output's gradient, writes the gradients of q, k, v
and — when the bias needs one, as SwinV2's continuous position bias does in training — a bias gradient of the
broadcast shape, one value per attention score, which PyTorch's memory-efficient kernel writes before it is summed).
On ``meta`` PyTorch would run SDPA's unfused math form, so :func:`training_step_costs` substitutes that model.

``python -m ssl4sar.bench.roofline --peak-tflops P --bandwidth-gbs B`` evaluates the bounds for a device's numbers;
``--measure`` measures both on ``--device`` (:func:`~ssl4sar.bench.environment.measure_matmul_peak` in bf16,
:func:`~ssl4sar.bench.environment.measure_memory_bandwidth`). Writes ``roofline.json`` and ``roofline.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import flop_registry, sdpa_backward_flop_count, sdpa_flop_count

from ssl4sar.bench.measure import TRAINING_FLOPS_FACTOR

log = logging.getLogger(__name__)

__all__ = ["SCHEMA", "Kernel", "OpCost", "StepCosts", "TensorSpec", "TrafficRecorder", "build_report",
           "find_reports", "fused_attention_model", "load_report", "main", "render_markdown", "roofline",
           "time_kernels", "training_step_costs"]

SCHEMA = "ssl4sar-roofline/1"

#: ATen operators that are matrix products or convolutions (the operators a ``fused`` step keeps the traffic of)
MATMUL_OPS = frozenset({"aten.mm", "aten.addmm", "aten.bmm", "aten.baddbmm"})
CONVOLUTION_OPS = frozenset({"aten.convolution", "aten.convolution_backward"})
#: operators that return a view or alias of an input although their schema does not say so, and allocations that
#: write nothing: neither moves bytes
_FREE_OPS = frozenset({"aten._unsafe_view", "aten._reshape_alias", "aten.lift_fresh", "aten.empty", "aten.empty_like",
                       "aten.new_empty", "aten.empty_strided", "aten.new_empty_strided"})
KINDS = ("matmul", "convolution", "attention", "optimizer", "other")


@dataclasses.dataclass
class OpCost:
    """FLOPs and bytes moved by all calls of one operator in one step."""

    name: str
    kind: str            # one of KINDS
    calls: int = 0
    flops: float = 0.0   # executed FLOPs (attention's backward includes its recomputed scores)
    bytes: float = 0.0   # bytes read + written, each tensor once per call

    def seconds(self, peak_flops: float, bandwidth: float, fused: bool) -> float:
        """Roofline time: ``max(FLOPs / peak, bytes / bandwidth)``; under ``fused``, ``other`` operators are free."""
        if fused and self.kind == "other":
            return 0.0
        return max(self.flops / peak_flops, self.bytes / bandwidth)


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """Shape, strides and dtype of a recorded operand: enough to make a random tensor laid out the same way."""

    shape: tuple[int, ...]
    stride: tuple[int, ...]
    dtype: torch.dtype
    requires_grad: bool = False

    @classmethod
    def of(cls, t: torch.Tensor, requires_grad: bool = False) -> TensorSpec:
        return cls(tuple(t.shape), tuple(t.stride()), t.dtype, requires_grad)

    def make(self, device: torch.device) -> torch.Tensor:
        span = 1 + sum((n - 1) * st for n, st in zip(self.shape, self.stride, strict=True) if n > 0)
        base = torch.randn(span, device=device, dtype=torch.float32).to(self.dtype)
        out = torch.as_strided(base, self.shape, self.stride)
        return out.requires_grad_() if self.requires_grad else out


def _spec_tree(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return TensorSpec.of(x)
    if isinstance(x, (list, tuple)):
        return type(x)(_spec_tree(v) for v in x)
    if isinstance(x, dict):
        return {k: _spec_tree(v) for k, v in x.items()}
    return x


def _make_tree(x: Any, device: torch.device) -> Any:
    if isinstance(x, TensorSpec):
        return x.make(device)
    if isinstance(x, (list, tuple)):
        return type(x)(_make_tree(v, device) for v in x)
    if isinstance(x, dict):
        return {k: _make_tree(v, device) for k, v in x.items()}
    return x


@dataclasses.dataclass
class Kernel:
    """One distinct compute call of a step (operator and operand layouts), how often the step makes it, and its
    FLOPs and bytes per call; :meth:`prepare` builds random operands on a device and returns the call to time."""

    name: str
    kind: str
    spec: Any           # (func, args, kwargs) with TensorSpec operands, or ("attention", ...) for the stand-in
    count: int = 0
    flops: float = 0.0
    bytes: float = 0.0

    def prepare(self, device: torch.device) -> Any:
        if self.spec[0] in ("attention", "attention_backward"):
            _, q, k, v, bias = self.spec
            args = [t.make(device) for t in (q, k, v)]
            mask = bias.make(device) if bias is not None else None

            def forward() -> torch.Tensor:
                return F.scaled_dot_product_attention(*args, attn_mask=mask, scale=1.0)

            if self.spec[0] == "attention":
                return forward
            out = forward()
            grad = torch.randn_like(out)
            inputs = [t for t in (*args, mask) if t is not None and t.requires_grad]
            return lambda: torch.autograd.grad(out, inputs, grad, retain_graph=True)
        func, args, kwargs = self.spec
        args, kwargs = _make_tree(args, device), _make_tree(kwargs, device)
        return lambda: func(*args, **kwargs)


def tensor_bytes(t: Any) -> int:
    """Bytes a kernel must touch for ``t``: its elements, counting a broadcast (stride-0) dimension once."""
    if not isinstance(t, torch.Tensor):
        return 0
    n = 1
    for size, stride in zip(t.shape, t.stride(), strict=True):
        if stride != 0:
            n *= size
    return n * t.element_size()


def _moves_nothing(func: Any) -> bool:
    name = str(func._overloadpacket)
    if name in _FREE_OPS:
        return True
    returns = func._schema.returns
    return bool(returns) and all(r.alias_info is not None and not r.alias_info.is_write for r in returns)


def _kind(name: str) -> str:
    if name in MATMUL_OPS:
        return "matmul"
    if name in CONVOLUTION_OPS:
        return "convolution"
    return "other"


class TrafficRecorder(TorchDispatchMode):
    """Records every ATen operator dispatched inside it as :class:`OpCost` rows (keyed by operator name).

    ``phase`` (set by the caller) separates the forward FLOPs (:attr:`forward_flops`) from the rest.
    """

    def __init__(self) -> None:
        super().__init__()
        self.costs: dict[str, OpCost] = {}
        self.kernels: dict[str, Kernel] = {}
        self.phase = "forward"
        self.forward_flops = 0.0

    def add_kernel(self, name: str, kind: str, spec: Any, flops: float, nbytes: float) -> None:
        """Count one call of the compute kernel ``spec`` (see :class:`Kernel`)."""
        key = repr(spec)
        kernel = self.kernels.setdefault(key, Kernel(name, kind, spec, 0, flops, nbytes))
        kernel.count += 1

    def add(self, name: str, kind: str, flops: float, nbytes: float) -> None:
        row = self.costs.setdefault(name, OpCost(name, kind))
        row.calls += 1
        row.flops += flops
        row.bytes += nbytes
        if self.phase == "forward":
            self.forward_flops += flops

    def __torch_dispatch__(self, func: Any, types: Any, args: Sequence[Any] = (),
                           kwargs: Mapping[str, Any] | None = None) -> Any:
        kwargs = dict(kwargs or {})
        out = func(*args, **kwargs)
        if _moves_nothing(func):
            return out
        packet = func._overloadpacket
        flops = flop_registry[packet](*args, **kwargs, out_val=out) if packet in flop_registry else 0
        moved = sum(tensor_bytes(t) for t in tree_flatten((args, kwargs))[0]) + sum(
            tensor_bytes(t) for t in tree_flatten(out)[0])
        name = str(packet)
        kind = _kind(name)
        self.add(name, kind, float(flops), float(moved))
        if kind != "other":
            self.add_kernel(name, kind, (func, _spec_tree(tuple(args)), _spec_tree(kwargs)), float(flops),
                            float(moved))
        return out


class _FusedAttention(torch.autograd.Function):
    """Stand-in for a fused SDPA kernel on ``meta`` tensors: empty results of the right shapes; records the kernel's
    FLOPs and bytes into the recorder (forward and backward)."""

    @staticmethod
    def forward(ctx: Any, recorder: TrafficRecorder, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                bias: torch.Tensor | None) -> torch.Tensor:
        out = q.new_empty((*q.shape[:-1], v.shape[-1]))
        lse = torch.empty(q.shape[:-1], dtype=torch.float32, device=q.device)
        ctx.recorder, ctx.shapes = recorder, (q.shape, k.shape, v.shape)
        ctx.bias = bias
        ctx.bias_grad = bias is not None and bias.requires_grad
        ctx.moved_fwd = sum(tensor_bytes(t) for t in (q, k, v, bias, out, lse))
        ctx.out_lse = (out, lse)
        flops = float(sdpa_flop_count(*ctx.shapes))
        recorder.add("fused_attention", "attention", flops, float(ctx.moved_fwd))
        ctx.specs = (TensorSpec.of(q, True), TensorSpec.of(k, True), TensorSpec.of(v, True),
                     None if bias is None else TensorSpec.of(bias, ctx.bias_grad))
        recorder.add_kernel("fused_attention", "attention", ("attention", *ctx.specs), flops, float(ctx.moved_fwd))
        return out

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[Any, ...]:
        q_shape, k_shape, v_shape = ctx.shapes
        out, lse = ctx.out_lse
        dq, dk, dv = (grad_out.new_empty(s) for s in (q_shape, k_shape, v_shape))
        dbias = None
        # reads q, k, v, bias, out, lse (the forward's traffic) and the output's gradient; writes dq, dk, dv
        moved = ctx.moved_fwd + tensor_bytes(grad_out) + sum(tensor_bytes(t) for t in (dq, dk, dv))
        if ctx.bias_grad:
            # one gradient value per attention score, in the broadcast shape (the kernel does not reduce it)
            full = torch.broadcast_shapes(ctx.bias.shape, (*q_shape[:-1], k_shape[-2]))
            dbias_full = grad_out.new_empty(full)
            moved += tensor_bytes(dbias_full)
            dbias = dbias_full.sum_to_size(ctx.bias.shape)   # the reduction is an ordinary (recorded) operator
        flops = sdpa_backward_flop_count(tuple(grad_out.shape), q_shape, k_shape, v_shape)
        ctx.recorder.add("fused_attention_backward", "attention", float(flops), float(moved))
        ctx.recorder.add_kernel("fused_attention_backward", "attention", ("attention_backward", *ctx.specs),
                                float(flops), float(moved))
        return None, dq, dk, dv, dbias


class _FusedAttentionMode(TorchFunctionMode):
    def __init__(self, recorder: TrafficRecorder) -> None:
        super().__init__()
        self.recorder = recorder

    def __torch_function__(self, func: Any, types: Any, args: Sequence[Any] = (),
                           kwargs: Mapping[str, Any] | None = None) -> Any:
        kwargs = dict(kwargs or {})
        if func is not F.scaled_dot_product_attention:
            return func(*args, **kwargs)
        q, k, v = args[:3]
        bias = kwargs.get("attn_mask", args[3] if len(args) > 3 else None)
        if kwargs.get("is_causal") or (bias is not None and bias.dtype == torch.bool):
            raise NotImplementedError("the roofline's attention model covers additive float biases only")
        return _FusedAttention.apply(self.recorder, q, k, v, bias)


@contextmanager
def fused_attention_model(recorder: TrafficRecorder) -> Iterator[None]:
    """Inside: ``F.scaled_dot_product_attention`` is one fused kernel, recorded into ``recorder`` as ``attention``
    rows (see :class:`_FusedAttention`), instead of its unfused math form."""
    with _FusedAttentionMode(recorder):
        yield


@dataclasses.dataclass
class StepCosts:
    """What one training step of ``batch_size`` samples does: per-operator costs, distinct compute kernels, and the
    forward FLOPs of the whole batch."""

    costs: list[OpCost]
    kernels: list[Kernel]
    forward_flops: float
    batch_size: int


def training_step_costs(model_config: Mapping[str, Any], batch_size: int,
                        dtype: torch.dtype = torch.bfloat16, channels_last: bool = False) -> StepCosts:
    """Per-operator costs and compute kernels of one fine-tuning step of batch ``batch_size``, recorded on ``meta``.

    The network computes in ``dtype`` with fused attention; the loss is :func:`ssl4sar.losses.tyrion_loss` on
    float32 logits (as the training step does). ``channels_last``: convolution weights and the input image in
    channels-last layout, as the fast path on CUDA (the bytes are the same; the layouts of the recorded kernels, and
    so the kernels that :func:`time_kernels` runs, differ). The optimizer is SGD with momentum on float32 master
    weights, counted as one ``optimizer`` row: per parameter, weight, gradient and momentum read and weight and
    momentum written (4 bytes each), and the float32 weight read and written in ``dtype`` once (autocast's cast).
    """
    from ssl4sar.losses import tyrion_loss
    from ssl4sar.models.fast import enable_fused_attention, set_channels_last
    from ssl4sar.models.tyrion import Tyrion

    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    recorder = TrafficRecorder()
    with torch.device("meta"):
        model = Tyrion.from_config(model_config)
        enable_fused_attention(model)
        model.to(dtype).train()
        set_channels_last(model, channels_last)
        c = model.img_size
        x = torch.empty(batch_size, 1, c, c, dtype=dtype)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = torch.empty(batch_size, c, c, dtype=torch.long)
        with recorder, fused_attention_model(recorder):
            logits = model(x)
            recorder.phase = "loss"
            loss = tyrion_loss(logits.float(), y)[0]
            recorder.phase = "backward"
            loss.backward()
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    cast = torch.empty((), dtype=dtype, device="meta").element_size()
    recorder.add("sgd_momentum", "optimizer", 0.0, float(n_params * (5 * 4 + 4 + cast)))
    return StepCosts(list(recorder.costs.values()), list(recorder.kernels.values()), recorder.forward_flops,
                     batch_size)


def time_kernels(kernels: Sequence[Kernel], device: str | torch.device, repeats: int = 3) -> list[float]:
    """Best-of-``repeats`` seconds of one call of each kernel on ``device``, on random operands laid out as recorded
    (after one untimed call; CUDA events on CUDA). Each kernel's operands are freed before the next one's are made."""
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    out = []
    for kernel in kernels:
        call = kernel.prepare(dev)
        call()
        best = float("inf")
        for _ in range(max(1, repeats)):
            if cuda:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                torch.cuda.synchronize(dev)
                start.record()
                call()
                end.record()
                torch.cuda.synchronize(dev)
                best = min(best, start.elapsed_time(end) / 1000.0)
            else:
                t0 = time.perf_counter()
                call()
                best = min(best, time.perf_counter() - t0)
        out.append(best)
        del call
    return out


def roofline(step: StepCosts, peak_tflops: float, bandwidth_gb_per_s: float,
             kernel_seconds: Sequence[float] | None = None) -> dict[str, Any]:
    """The bounds of a step from its costs, with a breakdown by kind.

    Args:
        step: :func:`training_step_costs`' record.
        peak_tflops: the device's matmul peak (TFLOP/s); ``bandwidth_gb_per_s``: its memory bandwidth (10⁹ B/s).
        kernel_seconds: optionally :func:`time_kernels` of ``step.kernels`` on that device: adds the bound
            ``measured kernels`` (the compute kernels as measured, everything else fused away, the optimizer at its
            roofline) and each kernel's time and fraction of the peak.
    Returns ``{"bounds": {model: {step_s, samples_per_s, fraction_of_peak}}, "kinds": [...], ...}``.
    """
    if not (peak_tflops > 0 and bandwidth_gb_per_s > 0):
        raise ValueError(f"peak ({peak_tflops} TFLOP/s) and bandwidth ({bandwidth_gb_per_s} GB/s) must be positive")
    peak, bandwidth, costs = peak_tflops * 1e12, bandwidth_gb_per_s * 1e9, step.costs
    useful = TRAINING_FLOPS_FACTOR * step.forward_flops

    def bound(seconds: float) -> dict[str, float]:
        return {"step_s": seconds, "samples_per_s": step.batch_size / seconds,
                "fraction_of_peak": useful / seconds / peak}

    bounds = {model: bound(sum(c.seconds(peak, bandwidth, fused=model == "fused") for c in costs))
              for model in ("unfused", "fused")}
    measured: dict[str, float] = {}
    kernels = []
    if kernel_seconds is not None:
        if len(kernel_seconds) != len(step.kernels):
            raise ValueError(f"{len(kernel_seconds)} kernel times for {len(step.kernels)} kernels")
        for k, t in zip(step.kernels, kernel_seconds, strict=True):
            measured[k.kind] = measured.get(k.kind, 0.0) + k.count * t
            kernels.append({"name": k.name, "kind": k.kind, "count": k.count, "flops": k.flops, "bytes": k.bytes,
                            "seconds": t, "total_s": k.count * t,
                            "roofline_s": max(k.flops / peak, k.bytes / bandwidth),
                            "fraction_of_peak": k.flops / t / peak if t > 0 else None,
                            "operands": _describe(k.spec)})
        kernels.sort(key=lambda r: -r["total_s"])
        measured["optimizer"] = sum(c.seconds(peak, bandwidth, fused=True) for c in costs if c.kind == "optimizer")
        bounds["measured kernels"] = bound(sum(measured.values()))
    kinds = []
    for kind in KINDS:
        rows = [c for c in costs if c.kind == kind]
        flops, moved = sum(c.flops for c in rows), sum(c.bytes for c in rows)
        kinds.append({
            "kind": kind, "calls": sum(c.calls for c in rows), "flops": flops, "bytes": moved,
            "flop_per_byte": flops / moved if moved else None,
            "unfused_s": sum(c.seconds(peak, bandwidth, fused=False) for c in rows),
            "fused_s": sum(c.seconds(peak, bandwidth, fused=True) for c in rows),
            "measured_s": measured.get(kind, 0.0) if kernel_seconds is not None else None,
        })
    return {"peak_tflops": peak_tflops, "bandwidth_gb_per_s": bandwidth_gb_per_s,
            "ridge_flop_per_byte": peak / bandwidth, "batch_size": step.batch_size,
            "useful_flops_per_sample": useful / step.batch_size,
            "executed_flops_per_sample": sum(c.flops for c in costs) / step.batch_size,
            "bytes_per_sample_unfused": sum(c.bytes for c in costs) / step.batch_size,
            "bounds": bounds, "kinds": kinds, "kernels": kernels}


def _describe(spec: Any) -> str:
    """Operand shapes of a kernel, e.g. ``(4096, 96) × (96, 288)``."""
    if not isinstance(spec, tuple):
        return ""
    tensors = [t for t in tree_flatten(spec[1:])[0] if isinstance(t, TensorSpec)]
    return " × ".join(str(tuple(t.shape)) for t in tensors[:3])


def _num(x: float) -> str:
    """``12,345`` from 10 up, three significant digits below."""
    return f"{x:,.0f}" if abs(x) >= 10 else f"{x:.3g}"


def render_markdown(report: Mapping[str, Any], top: int = 10) -> str:
    """The report as Markdown: the bounds (and a measured throughput, when given), the breakdown by kind and, with
    measured kernels, the ``top`` kernels by time."""
    b = report["bounds"]
    lines = [
        f"Roofline of a TYRION training step, preset `{report['preset']}`, batch {report['batch_size']}, "
        f"{report['dtype']}{', channels-last' if report.get('channels_last') else ''}: peak "
        f"{report['peak_tflops']:.1f} TFLOP/s ({report['peak_source']}), bandwidth "
        f"{report['bandwidth_gb_per_s']:.0f} GB/s ({report['bandwidth_source']}), ridge "
        f"{report['ridge_flop_per_byte']:.0f} FLOP/byte. Useful work {report['useful_flops_per_sample'] / 1e9:.1f} "
        f"GFLOP per sample ({report['executed_flops_per_sample'] / 1e9:.1f} executed).",
        "",
        "| bound | step (ms) | samples/s at most | % of peak at most |",
        "|---|---|---|---|",
    ]
    for model, row in b.items():
        lines.append(f"| {model} | {row['step_s'] * 1e3:.1f} | {row['samples_per_s']:.1f} | "
                     f"{100 * row['fraction_of_peak']:.1f} % |")
    measured = report.get("measured")
    if measured:
        lines.append(f"| measured step: {measured['what']} | "
                     f"{report['batch_size'] / measured['samples_per_s'] * 1e3:.1f} | "
                     f"{measured['samples_per_s']:.1f} | {100 * measured['fraction_of_peak']:.1f} % |")
    has_measured = any(k["measured_s"] is not None for k in report["kinds"])
    lines += ["", "| kind | calls | GFLOP | GB moved | FLOP/byte | unfused (ms) | fused (ms) |"
              + (" measured (ms) |" if has_measured else ""),
              "|---|---|---|---|---|---|---|" + ("---|" if has_measured else "")]
    for k in report["kinds"]:
        fpb = "" if k["flop_per_byte"] is None else f"{k['flop_per_byte']:.0f}"
        row = (f"| {k['kind']} | {k['calls']} | {_num(k['flops'] / 1e9)} | {_num(k['bytes'] / 1e9)} | {fpb} | "
               f"{k['unfused_s'] * 1e3:.1f} | {k['fused_s'] * 1e3:.1f} |")
        if has_measured:
            row += f" {k['measured_s'] * 1e3:.1f} |"
        lines.append(row)
    if report.get("kernels"):
        lines += ["", f"The {top} compute kernels that take longest in a step (measured):", "",
                  "| kernel | operands | calls | ms per step | roofline (ms) | % of peak |",
                  "|---|---|---|---|---|---|"]
        for k in report["kernels"][:top]:
            frac = "" if k["fraction_of_peak"] is None else f"{100 * k['fraction_of_peak']:.1f} %"
            lines.append(f"| {k['name']} | {k['operands']} | {k['count']} | {k['total_s'] * 1e3:.2f} | "
                         f"{k['count'] * k['roofline_s'] * 1e3:.2f} | {frac} |")
    return "\n".join(lines) + "\n"


def build_report(preset: str, batch_size: int, peak_tflops: float, bandwidth_gb_per_s: float, *,
                 peak_source: str, bandwidth_source: str, time_on: str | None = None, channels_last: bool = False,
                 measured_samples_per_s: float | None = None, measured_what: str = "") -> dict[str, Any]:
    """:func:`roofline` of preset ``preset``'s network at ``batch_size`` in bf16, with where the device numbers come
    from, the compute kernels timed on ``time_on`` (a device) when given and, optionally, a measured throughput of the
    same step for comparison."""
    from ssl4sar.config import load_preset

    step = training_step_costs(load_preset(preset)["model"], batch_size, channels_last=channels_last)
    seconds = time_kernels(step.kernels, time_on) if time_on else None
    report = {"schema": SCHEMA, "preset": preset, "dtype": "bfloat16", "peak_source": peak_source,
              "bandwidth_source": bandwidth_source, "kernels_timed_on": time_on, "channels_last": channels_last,
              **roofline(step, peak_tflops, bandwidth_gb_per_s, seconds),
              "operators": [dataclasses.asdict(c) for c in sorted(step.costs, key=lambda c: -c.bytes)]}
    if measured_samples_per_s:
        report["measured"] = {
            "what": measured_what or "measured", "samples_per_s": measured_samples_per_s,
            "fraction_of_peak": measured_samples_per_s * report["useful_flops_per_sample"] / (peak_tflops * 1e12)}
    return report


def find_reports(folder: str | Path | None) -> list[tuple[str, Path]]:
    """The ``roofline.json`` reports under ``folder`` (any depth), as (label, path) sorted by label; the label is the
    report's folder relative to ``folder``. Missing folder: none."""
    if folder is None or not Path(folder).is_dir():
        return []
    root = Path(folder)
    return sorted((p.parent.relative_to(root).as_posix(), p) for p in root.glob("**/roofline.json"))


def load_report(path: str | Path) -> dict[str, Any]:
    """Read a ``roofline.json`` written by this module; :class:`~ssl4sar.errors.DataError` naming the file if it is
    not one (unreadable, not JSON, another schema, or without its bounds)."""
    from ssl4sar.errors import DataError

    p = Path(path)
    try:
        report = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(p, f"cannot read the roofline report: {exc}", "re-run  python -m ssl4sar.bench.roofline") \
            from exc
    schema = report.get("schema") if isinstance(report, dict) else None
    if schema != SCHEMA:
        raise DataError(p, f"not a roofline report (schema {schema!r}, expected {SCHEMA!r})",
                        "re-run  python -m ssl4sar.bench.roofline")
    missing = [k for k in ("bounds", "kinds", "batch_size", "peak_tflops", "bandwidth_gb_per_s") if k not in report]
    if missing or not all(m in report["bounds"] for m in ("unfused", "fused")):
        raise DataError(p, f"roofline report without {missing or 'its unfused and fused bounds'}",
                        "re-run  python -m ssl4sar.bench.roofline")
    return report


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ssl4sar.bench.roofline", description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="paper")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--peak-tflops", type=float, help="the device's bf16 matmul peak (TFLOP/s)")
    p.add_argument("--bandwidth-gbs", type=float, help="the device's memory bandwidth (GB/s)")
    p.add_argument("--peak-source", default="given", help="where --peak-tflops comes from (a few words)")
    p.add_argument("--bandwidth-source", default="given", help="where --bandwidth-gbs comes from (a few words)")
    p.add_argument("--measure", action="store_true",
                   help="measure peak and bandwidth on --device (instead of the two numbers) and time the step's "
                        "compute kernels there")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--channels-last", choices=("auto", "on", "off"), default="auto",
                   help="convolutions in channels-last layout (auto: on for CUDA, as the fast path)")
    p.add_argument("--measured-samples-per-s", type=float, help="a measured throughput of this step to compare")
    p.add_argument("--measured-what", default="", help="what that measurement is (a few words)")
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args(argv)
    if a.batch_size < 1:
        p.error(f"--batch-size must be at least 1, got {a.batch_size}")
    peak, bandwidth = a.peak_tflops, a.bandwidth_gbs
    peak_source, bandwidth_source = a.peak_source, a.bandwidth_source
    if a.measure:
        from ssl4sar.bench.environment import measure_matmul_peak, measure_memory_bandwidth

        dev = torch.device(a.device)
        peak = measure_matmul_peak(dev, torch.bfloat16, n=8192 if dev.type == "cuda" else 2048)["tflops"]
        bandwidth = measure_memory_bandwidth(dev)["gb_per_s"]
        peak_source = f"measured on {a.device}: bf16 matmul"
        bandwidth_source = f"measured on {a.device}: copy"
    if peak is None or bandwidth is None:
        p.error("give --peak-tflops and --bandwidth-gbs, or --measure")
    if not (peak > 0 and bandwidth > 0):
        p.error(f"peak and bandwidth must be positive, got {peak} TFLOP/s and {bandwidth} GB/s")
    channels_last = a.channels_last == "on" or (a.channels_last == "auto" and torch.device(a.device).type == "cuda")
    report = build_report(a.preset, a.batch_size, peak, bandwidth, peak_source=peak_source,
                          bandwidth_source=bandwidth_source, time_on=a.device if a.measure else None,
                          channels_last=channels_last,
                          measured_samples_per_s=a.measured_samples_per_s, measured_what=a.measured_what)
    try:
        a.out.mkdir(parents=True, exist_ok=True)
        md = render_markdown(report)
        _write_atomic(a.out / "roofline.json", json.dumps(report, indent=1) + "\n")
        _write_atomic(a.out / "roofline.md", md)
    except OSError as exc:
        p.exit(2, f"{p.prog}: cannot write the report into {a.out}: {exc}\n")
    print(md, end="")
    return 0


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


if __name__ == "__main__":
    raise SystemExit(main())
