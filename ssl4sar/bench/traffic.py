"""What a step does to a device, operator by operator, recorded on the ``meta`` device: FLOPs and bytes moved
(:class:`TrafficRecorder`), fused SDPA as one kernel (:func:`fused_attention_model`), and the distinct compute
kernels (:class:`Kernel`), which :func:`time_kernels` replays on a real device with random operands of the recorded
layouts. :mod:`ssl4sar.bench.roofline` turns this into bounds on a training step.

An operator's bytes are its inputs read once and its outputs written once; views and allocations move nothing
(:func:`tensor_bytes` counts a broadcast operand's stored elements). FLOPs are PyTorch's own counting formulas
(``torch.utils.flop_counter``): matrix products, convolutions and attention.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import flop_registry, sdpa_backward_flop_count, sdpa_flop_count

from ssl4sar.bench.measure import time_steps

__all__ = ["KINDS", "Kernel", "OpCost", "TensorSpec", "TrafficRecorder", "fused_attention_model", "tensor_bytes",
           "time_kernels"]

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
        """Roofline seconds ``max(FLOPs / peak_flops, bytes / bandwidth)`` (FLOP/s, bytes/s); under ``fused``,
        ``other`` operators are free."""
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


def time_kernels(kernels: Sequence[Kernel], device: str | torch.device, repeats: int = 3) -> list[float]:
    """Best-of-``repeats`` seconds of one call of each kernel on ``device``, on random operands laid out as recorded
    (after one untimed call; CUDA events on CUDA). Each kernel's operands are freed before the next one's are made.
    On CUDA with cuDNN's autotuning on, as in the library's training and the benchmark's training steps: the untimed
    call chooses each convolution's algorithm, so the timed ones are not cuDNN's untuned heuristic choice."""
    from ssl4sar.models.fast import cudnn_autotuning

    dev = torch.device(device)
    out: list[float] = []
    with cudnn_autotuning(dev):
        for kernel in kernels:
            call = kernel.prepare(dev)
            call()
            out.append(min(time_steps(call, repeats, dev)))
            del call
    return out
