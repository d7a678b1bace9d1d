"""Fast execution paths for TYRION: fused attention, channels-last, bf16 autocast, ``torch.compile``.

None of these changes the weights or the state-dict layout; each one is opt-in, and
:func:`optimize_for_device` applies the ones that help on a device in one call::

    model = optimize_for_device(Tyrion.from_config(cfg["model"]), "cuda")       # fused + channels_last
    with autocast("cuda", amp_dtype_for("cuda")):                                # bf16 on GPUs that have it natively
        logits = model(x)

**Fused attention** (:class:`FusedWindowAttention`). SwinV2's cosine attention is

    softmax( normalize(q) · normalize(k)ᵀ · exp(min(logit_scale, ln 100)) + 16·sigmoid(cpb(Δ)) [+ M] ) · v

with ``cpb`` the continuous-position-bias MLP on the log-spaced relative-coordinate table and ``M`` the −100
shifted-window mask. It is exactly ``scaled_dot_product_attention(q', k', v, attn_mask=B, scale=1)`` with
``q' = normalize(q) · exp(min(logit_scale, ln 100))`` (per head), ``k' = normalize(k)`` and the additive float
mask ``B = 16·sigmoid(cpb) [+ M]``. PyTorch then picks its fastest kernel (memory-efficient / cuDNN attention on
CUDA, the flash kernel with a float mask on CPU, the math kernel otherwise); the (B·nW, heads, N, N) attention
matrix of the default path is never materialised by the fused kernels. The CUDA kernels take only arguments whose
last dimension is contiguous, the mask included, so ``B`` is built contiguous: a permuted one sends the call to the
float32 math kernel without a warning (until 014915f, the unshifted blocks on a GPU). The result differs from the
default path only by floating-point rounding (float64: ~1e-15 relative; float32: ~1e-6).

The bias of a window (heads × N × N, N = window²) depends on the ``cpb_mlp`` weights and is recomputed on every
call, unless the model was asked to cache it (:func:`cache_attention_bias`; the inference form
:func:`for_inference` and the library's training modules do): then, with gradients disabled (evaluation,
inference), it is reused until a ``cpb_mlp`` parameter, the coordinate table or the shifted-window mask changes,
as tensor version counters and storage pointers tell (``load_state_dict``, ``.to(device)``, in-place tensor ops
and non-fused optimiser steps move them), and until the next ``train()`` / ``eval()`` switch. What the key
cannot see, and why the cache is not on by default: torch's fused optimisers (``SGD(fused=True)``,
``AdamW(fused=True)``) and updates through ``.data`` change weights without moving their version counters; the
train()/eval() switch around a training loop's steps covers the first, not an update in eval mode (e.g. EMA
weights written through ``.data``: call ``cache_attention_bias(model, False)`` for such a model). The cache of a
shifted block holds ``nW · heads · N²`` floats (50 MB for stage 1 of the paper model).

The bias is computed in the parameters' dtype with autocast disabled (the default path runs the 2→512→heads MLP
in bf16 under autocast) and cast to the attention dtype afterwards.

**channels-last**: the decoder is convolutional and its skip inputs already arrive channels-last (they are
permuted NHWC token grids), so ``model.to(memory_format=torch.channels_last)`` removes layout conversions in
front of every convolution. Outputs are identical up to rounding.

**bf16 autocast** (:func:`autocast`, :func:`amp_dtype_for`): only where the device computes bf16 natively — GPUs of
compute capability 8.0 and later (on a T4 or V100 bf16 is emulated and slower than float32), CPUs with AVX512-BF16 /
AMX, where oneDNN makes it faster (on AVX2 CPUs it is several times slower).

**Inference form** (:func:`for_inference`): fused attention (and channels-last on CUDA) plus TYRION's polyphase
×2 upsampling convolutions (:meth:`ssl4sar.models.tyrion.Tyrion.set_polyphase_upsampling`: 16/36 of their
multiply-adds, about 7 % of a bf16 window on the 2-core CPU); evaluation, ``ssl4sar predict`` and the book's
model applications load models through it. Training keeps timm's and the official decoder's form (fused attention only).

**cuDNN autotuning** (:func:`cudnn_autotuning`): on CUDA, sliding-window inference and (through Lightning's
``benchmark``, :func:`ssl4sar.training.build_trainer`) training let cuDNN time its convolution algorithms once per
input shape, as the benchmark's GPU measurements do.

**torch.compile** (:func:`maybe_compile`): compiles the module in place (state-dict keys unchanged) and falls
back to eager execution, with a logged warning, when compilation fails at the first call. :class:`CompiledCall`
compiles one call site only (the training forward of fine-tuning and of pretraining, ``finetune.compile`` and
``pretrain.compile``) and leaves every other use of the module eager, so that validation's changing window batches
do not trigger recompilations. Compiled, the decoder's nearest ×2 upsampling is traced as a broadcast
(:func:`ssl4sar.models.tyrion.upsample_nearest_2x`): same values and gradients, but its backward becomes a
reduction instead of inductor's atomic scatter-add.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from timm.models.swin_transformer_v2 import WindowAttention
from torch import nn

from ssl4sar.errors import SettingError

log = logging.getLogger(__name__)

__all__ = [
    "CompiledCall",
    "FusedWindowAttention",
    "amp_dtype_for",
    "autocast",
    "cache_attention_bias",
    "compile_failed",
    "cpu_has_native_bf16",
    "cuda_has_native_bf16",
    "cudnn_autotuning",
    "disable_fused_attention",
    "enable_fused_attention",
    "fused_attention",
    "fused_attention_enabled",
    "for_inference",
    "is_compiled",
    "lightning_precision",
    "maybe_compile",
    "optimize_for_device",
    "resolve_device",
    "set_channels_last",
]

#: SwinV2 clamps the learned temperature at ln(1 / 0.01) = ln 100 before exponentiating it.
LOGIT_SCALE_MAX = math.log(1.0 / 0.01)


def _compiling() -> bool:
    try:
        return bool(torch.compiler.is_compiling())
    except AttributeError:  # pragma: no cover - torch < 2.3
        return False


def _no_autocast(device_type: str) -> contextlib.AbstractContextManager:
    """Autocast switched off for ``device_type`` where it is on (a no-op elsewhere, e.g. on ``meta``)."""
    try:
        active = torch.is_autocast_enabled(device_type)
    except (TypeError, RuntimeError):  # device types without autocast support
        active = False
    return torch.autocast(device_type=device_type, enabled=False) if active else contextlib.nullcontext()


def _tensor_key(t: torch.Tensor | None) -> tuple[Any, ...]:
    """Identity of a tensor's current contents: storage pointer, version counter, shape, dtype, device."""
    if t is None:
        return (None,)
    return (t.data_ptr(), t._version, tuple(t.shape), t.dtype, t.device)


class FusedWindowAttention(WindowAttention):
    """timm's SwinV2 :class:`~timm.models.swin_transformer_v2.WindowAttention` on
    ``torch.nn.functional.scaled_dot_product_attention``.

    Same parameters and buffers as the parent (identical ``state_dict``); only :meth:`forward` differs. Instances
    are normally made by :func:`enable_fused_attention`, which swaps the class of existing modules in place.

    ``forward(x, mask)``: ``x`` (B·nW, N, C) window tokens (N = window_h · window_w), ``mask`` (nW, N, N) additive
    shifted-window mask (0 / −100) or ``None``; returns (B·nW, N, C), like the parent.
    """

    #: reuse the attention bias between calls without gradients (:func:`cache_attention_bias`; module docstring)
    bias_cache: bool = False

    def relative_position_bias(self) -> torch.Tensor:
        """The continuous position bias ``16 · sigmoid(cpb_mlp(table))`` as (heads, N, N), in the parameters'
        dtype (autocast disabled)."""
        n = self.window_size[0] * self.window_size[1]
        with _no_autocast(self.relative_coords_table.device.type):
            table = self.cpb_mlp(self.relative_coords_table).view(-1, self.num_heads)
        # contiguous: CUDA's fused kernels take a mask only with a unit-stride last dimension; a permuted one
        # (stride = heads) sends the call to the float32 math kernel
        bias = table[self.relative_position_index.view(-1)].view(n, n, -1).permute(2, 0, 1).contiguous()
        return 16 * torch.sigmoid(bias)

    def attention_bias(self, mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
        """The additive ``attn_mask`` for SDPA, in ``dtype``.

        Without ``mask``: (1, heads, N, N). With a shifted-window ``mask`` (nW, N, N): (1, nW · heads, N, N), row
        ``w · heads + h`` holding ``bias[h] + mask[w]`` (the layout of the reshaped queries, see :meth:`forward`).
        Cached while gradients are disabled, where :attr:`bias_cache` is on (see the module docstring).
        """
        use_cache = (self.bias_cache and not torch.is_grad_enabled() and not _compiling()
                     and not self._has_inference_tensors(mask))
        if use_cache:
            key = (
                tuple(_tensor_key(p) for p in self.cpb_mlp.parameters()),
                _tensor_key(self.relative_coords_table),
                _tensor_key(self.relative_position_index),
                _tensor_key(mask),
                dtype,
                torch.is_inference_mode_enabled(),
            )
            cached = self.__dict__.get("_fused_bias_cache")
            if cached is not None and cached[0] == key:
                return cached[1]
        bias = self.relative_position_bias()
        n = bias.shape[-1]
        if mask is None:
            out = bias.unsqueeze(0)
        else:
            out = (mask.to(bias.dtype).unsqueeze(1) + bias.unsqueeze(0)).reshape(1, -1, n, n)
        out = out.to(dtype)
        if use_cache:
            self.__dict__["_fused_bias_cache"] = (key, out)
        return out

    def _has_inference_tensors(self, mask: torch.Tensor | None) -> bool:
        """Whether a tensor the bias depends on was made in inference mode: such a tensor has no version counter,
        so an in-place change (``load_state_dict`` inside ``torch.inference_mode()``) could not be seen — no cache
        then."""
        tensors = [*self.cpb_mlp.parameters(), self.relative_coords_table, self.relative_position_index, mask]
        return any(t is not None and t.is_inference() for t in tensors)

    def clear_cache(self) -> None:
        """Drop the cached attention bias (it is rebuilt at the next call without gradients)."""
        self.__dict__.pop("_fused_bias_cache", None)

    def train(self, mode: bool = True) -> FusedWindowAttention:
        # a training loop switches modes around its optimiser steps, which may not move the version counters
        # the cache is keyed on (fused optimisers)
        self.clear_cache()
        return super().train(mode)

    def _apply(self, fn: Callable[..., Any], recurse: bool = True) -> FusedWindowAttention:
        # .to() / .cuda() / .half(): the cached bias is on the old device or dtype and would hold its memory (the
        # key would reject it anyway) until the next forward pass
        self.clear_cache()
        return super()._apply(fn, recurse)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        b_, n, c = x.shape
        heads = self.num_heads
        if self.q_bias is None:
            qkv = self.qkv(x)
        else:
            qkv_bias = torch.cat((self.q_bias, self.k_bias, self.v_bias))
            if getattr(self, "qkv_bias_separate", False):
                qkv = self.qkv(x) + qkv_bias
            else:
                qkv = F.linear(x, weight=self.qkv.weight, bias=qkv_bias)
        q, k, v = (
            qkv.reshape(b_, n, 3, heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        )  # each (B·nW, heads, N, d)
        scale = torch.clamp(self.logit_scale, max=LOGIT_SCALE_MAX).exp()  # (heads, 1, 1)
        q = F.normalize(q, dim=-1) * scale.to(q.dtype)
        k = F.normalize(k, dim=-1)
        attn_mask = self.attention_bias(mask, q.dtype)
        if mask is not None:
            # windows of one image are consecutive in the batch (timm's window_partition): fold (nW, heads) into
            # one head axis so that a single (1, nW·heads, N, N) mask broadcasts over the images.
            nw = mask.shape[0]
            if b_ % nw:
                raise ValueError(f"{b_} windows are not a multiple of the {nw} windows of the attention mask")
            q, k, v = (t.reshape(b_ // nw, nw * heads, n, -1) for t in (q, k, v))
        dropout = self.attn_drop.p if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout, scale=1.0)
        x = out.reshape(b_, heads, n, -1).transpose(1, 2).reshape(b_, n, c)
        x = self.proj(x)
        return self.proj_drop(x)


def enable_fused_attention(model: nn.Module) -> int:
    """Switch every SwinV2 ``WindowAttention`` inside ``model`` to :class:`FusedWindowAttention` (in place).

    Parameters, buffers, hooks and the state dict are untouched. Returns the number of modules switched now
    (already fused ones are not counted).
    """
    n = 0
    for module in model.modules():
        if type(module) is WindowAttention:
            module.__class__ = FusedWindowAttention
            n += 1
    return n


def disable_fused_attention(model: nn.Module) -> int:
    """Undo :func:`enable_fused_attention`: back to timm's default attention. Returns the number switched."""
    n = 0
    for module in model.modules():
        if isinstance(module, FusedWindowAttention):
            module.clear_cache()
            module.__class__ = WindowAttention
            n += 1
    return n


def cache_attention_bias(model: nn.Module, enabled: bool = True) -> int:
    """Let every :class:`FusedWindowAttention` in ``model`` reuse its attention bias between calls without
    gradients (or, ``enabled=False``, stop and drop it). Safe where weights change only through version-counted
    in-place ops, or in train mode (the module docstring says which updates are not). Returns the number of
    modules set; enable fused attention first."""
    n = 0
    for module in model.modules():
        if isinstance(module, FusedWindowAttention):
            module.bias_cache = bool(enabled)
            if not enabled:
                module.clear_cache()
            n += 1
    return n


def fused_attention_enabled(model: nn.Module) -> bool:
    """True when ``model`` has window-attention modules and all of them are fused."""
    kinds = [isinstance(m, FusedWindowAttention) for m in model.modules() if isinstance(m, WindowAttention)]
    return bool(kinds) and all(kinds)


# ------------------------------------------------------------------------------------------------ devices / AMP


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"``/``None`` → ``cuda`` when available, else ``cpu``; ``cpu``, ``cuda``, ``cuda:N`` (text or
    :class:`torch.device`) → that device.

    Raises :class:`~ssl4sar.errors.SettingError` (a ``ValueError``) for anything else, for a CUDA device on a machine
    without CUDA, or a GPU index torch does not see.
    """
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):  # the library has kernels and checks for these two only
        raise SettingError(f"device {str(device)!r}: expected auto, cpu, cuda or cuda:N")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SettingError(
            f"device {device!r} requested but CUDA is not available on this machine (use 'cpu' or 'auto')"
        )
    if dev.type == "cuda" and dev.index is not None and dev.index >= (count := torch.cuda.device_count()):
        raise SettingError(f"device {str(dev)!r} (GPU {dev.index}) requested but torch sees {count} CUDA device(s) "
                           f"(cuda:0 to cuda:{count - 1}, numbered after CUDA_VISIBLE_DEVICES)")
    return dev


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX tiles), so that CPU autocast pays off."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    for name in checks:
        fn = getattr(torch.cpu, name, None)
        if fn is not None:
            with contextlib.suppress(Exception):
                if fn():
                    return True
    return False


def cuda_has_native_bf16(device: str | torch.device | int | None = None) -> bool:
    """Whether the CUDA device (default: the current one) computes bf16 natively: compute capability 8.0 or higher
    (A100, A10, L4, RTX 30xx and later, H100), or an AMD GPU under ROCm.

    ``torch.cuda.is_bf16_supported()`` cannot decide this: by default it answers True on older GPUs as well (T4 on
    Colab's free tier, V100), because a bf16 tensor can be made there. On those, bf16 is emulated: no tensor cores,
    no cuDNN bf16 convolutions, no fused bf16 attention, so autocast to bf16 is slower than float32.
    """
    if not torch.cuda.is_available():
        return False
    if torch.version.hip:
        return True
    return torch.cuda.get_device_capability(device)[0] >= 8


def amp_dtype_for(device: str | torch.device, precision: str = "auto") -> torch.dtype | None:
    """Autocast dtype for ``device``: ``None`` means full float32.

    ``precision``: ``"auto"`` (bf16 where the device computes it natively: :func:`cuda_has_native_bf16`,
    :func:`cpu_has_native_bf16`; else float32),
    ``"bf16"`` / ``"bf16-mixed"`` (always bf16), ``"32"`` / ``"fp32"`` / ``"32-true"`` (float32).
    """
    dev = torch.device(device)
    p = str(precision).lower()
    if p in ("32", "fp32", "32-true", "float32"):
        return None
    if p in ("bf16", "bf16-mixed", "bfloat16"):
        return torch.bfloat16
    if p != "auto":
        raise ValueError(f"precision must be 'auto', 'bf16' or 'fp32', got {precision!r}")
    if dev.type == "cuda":
        return torch.bfloat16 if cuda_has_native_bf16(dev) else None
    if dev.type == "cpu":
        return torch.bfloat16 if cpu_has_native_bf16() else None
    return None


def lightning_precision(device: str | torch.device, precision: str = "auto") -> str:
    """The Lightning ``Trainer(precision=...)`` string matching :func:`amp_dtype_for`: ``bf16-mixed`` or ``32-true``."""
    return "bf16-mixed" if amp_dtype_for(device, precision) is torch.bfloat16 else "32-true"


def autocast(
    device: str | torch.device, dtype: torch.dtype | None = torch.bfloat16
) -> contextlib.AbstractContextManager:
    """``torch.autocast`` on ``device`` with ``dtype``; a no-op context when ``dtype`` is ``None``.

    Use it around the forward pass and the loss (the losses cast logits to float32 themselves).
    """
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


@contextlib.contextmanager
def cudnn_autotuning(device: str | torch.device, enabled: bool = True) -> Iterator[None]:
    """cuDNN's convolution-algorithm autotuning (``torch.backends.cudnn.benchmark``) set to ``enabled`` inside the
    block when ``device`` is CUDA; the flag is process-wide and restored afterwards. Worth it for fixed shapes
    (training crops, sliding windows): each new input shape is timed once, then the fastest algorithm is reused. A
    no-op elsewhere.
    """
    if torch.device(device).type != "cuda":
        yield
        return
    old = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = bool(enabled)
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = old


# ------------------------------------------------------------------------------------------------ memory format


def set_channels_last(model: nn.Module, enabled: bool = True) -> nn.Module:
    """Convert the 4-D (convolution) weights of ``model`` to channels-last (or back); returns ``model``.

    Only conv weights are affected; the encoder's linear layers and the state-dict values are unchanged.
    """
    return model.to(memory_format=torch.channels_last if enabled else torch.contiguous_format)


# ------------------------------------------------------------------------------------------------ torch.compile


class _CompileGuard:
    """One compiled entry point of a module (its ``_call_impl``, or a method such as ``centre_logits``), with a
    fallback to eager execution on compilation failure: the whole module then runs eagerly for good."""

    def __init__(self, module: nn.Module, compiled: Callable[..., Any], label: str,
                 eager: Callable[..., Any]) -> None:
        self.module = module
        self.compiled = compiled
        self.label = label
        self.eager = eager
        self.succeeded = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            out = self.compiled(*args, **kwargs)
        except Exception as exc:
            # Was it the compiler or the input? Run eagerly: if that works, the compiler failed.
            out = self.eager(*args, **kwargs)  # re-raises genuine input errors
            log.warning(
                "torch.compile of %s failed (%s: %s); running eagerly from now on",
                self.label,
                type(exc).__name__,
                str(exc).splitlines()[0] if str(exc) else "",
            )
            _uncompile(self.module)
            self.module.__dict__["_ssl4sar_compile_failed"] = f"{type(exc).__name__}: {exc}"
            return out
        self.succeeded = True
        return out


# methods that callers use instead of ``model(x)`` and that ``maybe_compile`` therefore compiles too
# (sliding-window inference decodes only each window's centre: ``Tyrion.centre_logits``)
_COMPILED_METHODS = ("centre_logits",)


def _uncompile(model: nn.Module) -> None:
    """Every :func:`maybe_compile` entry point of ``model`` back to eager."""
    model._compiled_call_impl = None
    for name in _COMPILED_METHODS:
        if isinstance(model.__dict__.get(name), _CompileGuard):
            del model.__dict__[name]


def maybe_compile(
    model: nn.Module,
    mode: str | None = "default",
    *,
    enabled: bool = True,
    backend: str | Callable[..., Any] = "inductor",
    dynamic: bool | None = None,
    fullgraph: bool = False,
) -> nn.Module:
    """``torch.compile`` ``model`` in place, falling back cleanly to eager execution.

    The module's ``__call__`` is compiled (like ``nn.Module.compile``), so parameters, state-dict keys and the
    module object stay the same (checkpoints and optimisers are unaffected); so is its ``centre_logits`` method where
    it has one, because sliding-window inference calls that instead of ``model(x)``. Compilation happens at the first
    call; if it raises, the call is repeated eagerly — when that works the failure is logged as a warning and the module
    stays eager for good (:func:`compile_failed` tells why); when the eager call fails too the input was at fault and
    its error propagates. Returns ``model`` (eager when ``enabled`` is false or ``torch.compile`` is unavailable).

    Args:
        mode: ``torch.compile`` mode (``"default"``, ``"reduce-overhead"``, ``"max-autotune"``; ``None`` = default).
        backend: compiler backend (``"inductor"``; ``"eager"`` / ``"aot_eager"`` for debugging).
        dynamic, fullgraph: passed to ``torch.compile``.
    """
    if not enabled:
        return model
    _uncompile(model)
    label = type(model).__name__
    eager = {"forward": model._call_impl}
    for name in _COMPILED_METHODS:
        if callable(getattr(type(model), name, None)):
            eager[name] = getattr(model, name)
    try:
        compiled = {name: torch.compile(fn, mode=None if mode == "default" else mode, backend=backend,
                                        dynamic=dynamic, fullgraph=fullgraph) for name, fn in eager.items()}
    except Exception as exc:  # e.g. unsupported Python / platform
        log.warning("torch.compile unavailable (%s: %s); using the eager model", type(exc).__name__, exc)
        model.__dict__["_ssl4sar_compile_failed"] = f"{type(exc).__name__}: {exc}"
        return model
    model.__dict__.pop("_ssl4sar_compile_failed", None)
    model._compiled_call_impl = _CompileGuard(model, compiled.pop("forward"), label, eager["forward"])
    for name, fn in compiled.items():
        model.__dict__[name] = _CompileGuard(model, fn, f"{label}.{name}", eager[name])
    return model


class CompiledCall:
    """``module(*args)`` through ``torch.compile``, for one call site: ``module`` itself stays eager.

    Compilation happens at the first call. If it raises, that call is repeated eagerly — when the eager call works
    the compiler was at fault: a warning is logged, :attr:`failed` says why and every later call is eager; when it
    fails too the input was at fault and its error propagates. Parameters are shared with ``module`` (nothing is
    copied; the state dict is unaffected).
    """

    def __init__(self, module: nn.Module, mode: str | None = "default", *,
                 backend: str | Callable[..., Any] = "inductor") -> None:
        self.module = module
        #: why the call runs eagerly (``None`` while it is compiled)
        self.failed: str | None = None
        self._compiled: Callable[..., Any] | None
        try:
            self._compiled = torch.compile(module, mode=None if mode == "default" else mode, backend=backend)
        except Exception as exc:  # e.g. unsupported Python / platform
            log.warning("torch.compile unavailable (%s: %s); using the eager model", type(exc).__name__, exc)
            self._compiled, self.failed = None, f"{type(exc).__name__}: {exc}"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._compiled is None:
            return self.module(*args, **kwargs)
        try:
            return self._compiled(*args, **kwargs)
        except Exception as exc:
            out = self.module(*args, **kwargs)  # re-raises genuine input errors
            first_line = str(exc).splitlines()[0] if str(exc) else ""
            log.warning("torch.compile of %s failed (%s: %s); running eagerly from now on",
                        type(self.module).__name__, type(exc).__name__, first_line)
            self._compiled, self.failed = None, f"{type(exc).__name__}: {exc}"
            return out


def compile_failed(model: nn.Module) -> str | None:
    """Why :func:`maybe_compile` fell back to eager for ``model`` (``None``: it did not, or was not asked to)."""
    return model.__dict__.get("_ssl4sar_compile_failed")


def is_compiled(model: Any) -> bool:
    """True while ``model`` runs through ``torch.compile``: a :func:`maybe_compile` compiled call (not fallen back),
    or the module that ``torch.compile(module)`` returns."""
    from torch._dynamo.eval_frame import OptimizedModule

    return isinstance(model, OptimizedModule) or isinstance(getattr(model, "_compiled_call_impl", None), _CompileGuard)


# ------------------------------------------------------------------------------------------------ one call


def optimize_for_device(
    model: nn.Module,
    device: str | torch.device | None = "auto",
    *,
    fused: bool = True,
    channels_last: bool | None = None,
    compile: bool = False,
    compile_mode: str | None = "default",
    polyphase: bool = False,
) -> nn.Module:
    """Move ``model`` to ``device`` and switch on the fast paths; returns the same (modified) module.

    Args:
        device: ``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a ``torch.device``.
        fused: fused SDPA attention in every SwinV2 window attention (:func:`enable_fused_attention`).
        channels_last: channels-last conv weights; ``None`` = on for CUDA (cuDNN's preferred layout), off on CPU
            (no gain measured on an AVX2 CPU: paper-model forward 5.6–6.7 s contiguous vs 5.6–9.9 s channels-last).
        compile: :func:`maybe_compile` (compiles at the first call; falls back to eager on failure).
        compile_mode: ``torch.compile`` mode.
        polyphase: the decoder's ×2 upsampling convolutions without the upsampled map
            (:meth:`ssl4sar.models.tyrion.Tyrion.set_polyphase_upsampling`; 16/36 of their multiply-adds). Off by
            default because training keeps the official form; the library's inference switches it on.

    Precision is not part of the model: wrap the forward in :func:`autocast` with :func:`amp_dtype_for`.
    """
    dev = resolve_device(device)
    if polyphase and getattr(model, "set_polyphase_upsampling", None) is None:  # refused before anything changes
        raise ValueError(f"polyphase upsampling needs a Tyrion model, got {type(model).__name__}")
    model.to(dev)
    if fused:
        enable_fused_attention(model)
    if polyphase:
        _set_polyphase(model)
    if channels_last is None:
        channels_last = dev.type == "cuda"
    if channels_last:
        set_channels_last(model, True)
    if compile:
        maybe_compile(model, mode=compile_mode)
    return model


def for_inference(model: nn.Module) -> nn.Module:
    """The library's inference form of a loaded TYRION, in eval mode: fused attention, polyphase upsampling
    convolutions and, when the model is on a CUDA device, channels-last convolution weights (same weights, same
    numbers up to rounding: the benchmark's inference fast path). Used by evaluation, ``ssl4sar predict`` and the
    book's model applications; device and precision are chosen by the caller (load or move the model to its device
    first). The attention bias is cached (:func:`cache_attention_bias`). Returns ``model``."""
    enable_fused_attention(model)
    cache_attention_bias(model)  # the weights stay as loaded
    _set_polyphase(model)
    if any(p.device.type == "cuda" for p in model.parameters()):
        set_channels_last(model)
    return model.eval()


def _set_polyphase(model: nn.Module) -> bool:
    """Polyphase upsampling on where ``model`` has it (a :class:`~ssl4sar.models.tyrion.Tyrion`); whether it has."""
    set_polyphase = getattr(model, "set_polyphase_upsampling", None)
    if set_polyphase is not None:
        set_polyphase(True)
    return set_polyphase is not None


@contextlib.contextmanager
def fused_attention(model: nn.Module, enabled: bool = True) -> Iterator[nn.Module]:
    """Context manager: fused attention on (or off) inside the block, the previous state restored after it."""
    was = fused_attention_enabled(model)
    (enable_fused_attention if enabled else disable_fused_attention)(model)
    try:
        yield model
    finally:
        (enable_fused_attention if was else disable_fused_attention)(model)
