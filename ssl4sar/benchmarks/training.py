"""Benchmarks of training: fine-tuning and pretraining step throughput, plus the measurement tools they share.

* :func:`benchmark_finetune_step` — one SGD step of TYRION fine-tuning (spec §6): forward of a ``(B, 1, C, C)``
  context batch, :func:`ssl4sar.losses.tyrion_loss` (centre + context CE and Dice) on float32 logits, backward,
  ``SGD(momentum 0.9, weight decay 1e-4)`` step.
* :func:`benchmark_pretrain_step` — one step of OptSimMIM or OptTranslator (spec §5) through the modules'
  own ``compute_loss`` (random token masks drawn every step for OptSimMIM), backward, SGD step.

Inputs are random tensors of the right shapes and value ranges (SAR and optical in [0, 1], class ids in 0 … K−1):
the networks have no data-dependent control flow, so the timings equal those on real data; data loading is
measured separately (``data_sampler`` in :mod:`ssl4sar.bench`).

Measurement rules (also used by :mod:`ssl4sar.bench`):

- ``warmup`` untimed steps first (lazy initialisation, optimiser state, cuDNN autotuning, compilation), then
  ``steps`` timed steps (:func:`warmup_steps`, :func:`time_steps`); on CUDA each step is timed with CUDA events
  after ``torch.cuda.synchronize``. Throughput is batch size / median step time.
- Peak memory (:class:`PeakMemory`): on CUDA ``torch.cuda.max_memory_allocated`` after a reset; on Linux CPUs the
  kernel's resident-set high-water mark ``VmHWM`` after resetting it through ``/proc/self/clear_refs`` (exact, no
  sampling), elsewhere ``getrusage(RUSAGE_SELF).ru_maxrss`` (process-lifetime peak; flagged in ``memory_kind``).
- FLOPs (:func:`count_flops`): ``torch.utils.flop_counter.FlopCounterMode`` on a batch of one, run on the
  ``meta`` device (shapes only, no arithmetic). It counts matrix multiplications, convolutions and attention
  (2 FLOPs per multiply-add); normalisation, activations and other element-wise work are not counted. A training
  step is reported as 3 × the forward FLOPs (backward ≈ 2 × forward).

Every function returns a flat dict of plain numbers / strings (JSON-ready); nothing is printed.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import resource
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from ssl4sar.config import paper_preset
from ssl4sar.models.fast import amp_dtype_for, autocast, compile_failed, maybe_compile, optimize_for_device

__all__ = [
    "PeakMemory",
    "benchmark_finetune_step",
    "benchmark_pretrain_step",
    "count_flops",
    "time_steps",
    "warmup_steps",
    "TRAINING_FLOPS_FACTOR",
]

log = logging.getLogger(__name__)

_MB = 1024.0 * 1024.0
#: training FLOPs per sample = this × forward FLOPs (backward ≈ 2 × forward)
TRAINING_FLOPS_FACTOR = 3.0


# ---------------------------------------------------------------------------------------------------- memory


def _read_status_kb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as fh:
            m = re.search(rf"^{field}:\s+(\d+)\s+kB", fh.read(), re.MULTILINE)
    except OSError:
        return None
    return float(m.group(1)) if m else None


def _reset_hwm() -> bool:
    """Reset the kernel's peak-RSS counter of this process (Linux ≥ 4.0); False where that is impossible."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return _read_status_kb("VmHWM") is not None


def _ru_maxrss_mb() -> float:
    v = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return v / _MB if sys.platform == "darwin" else v / 1024.0


class PeakMemory:
    """Context manager measuring the peak memory of the enclosed block on ``device``.

    After the block: ``peak_mb`` (CUDA: peak allocated by torch; CPU: peak resident set size of the process),
    ``baseline_mb`` (the same quantity when the block started), ``increase_mb = peak_mb − baseline_mb`` and
    ``kind``: ``"cuda_max_allocated"``, ``"rss_hwm"`` (exact peak RSS during the block) or ``"ru_maxrss"``
    (process-lifetime peak RSS; the block's own peak is not separable).
    """

    def __init__(self, device: str | torch.device) -> None:
        self.device = torch.device(device)
        self.kind = ""
        self.baseline_mb = float("nan")
        self.peak_mb = float("nan")

    @property
    def increase_mb(self) -> float:
        return self.peak_mb - self.baseline_mb

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.kind = "cuda_max_allocated"
            self.baseline_mb = torch.cuda.memory_allocated(self.device) / _MB
        elif _reset_hwm():
            self.kind = "rss_hwm"
            self.baseline_mb = (_read_status_kb("VmRSS") or float("nan")) / 1024.0
        else:
            self.kind = "ru_maxrss"
            self.baseline_mb = _ru_maxrss_mb()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.kind == "cuda_max_allocated":
            torch.cuda.synchronize(self.device)
            self.peak_mb = torch.cuda.max_memory_allocated(self.device) / _MB
        elif self.kind == "rss_hwm":
            self.peak_mb = (_read_status_kb("VmHWM") or float("nan")) / 1024.0
        else:
            self.peak_mb = _ru_maxrss_mb()

    def as_dict(self) -> dict[str, Any]:
        return {
            "peak_memory_mb": self.peak_mb,
            "memory_baseline_mb": self.baseline_mb,
            "memory_increase_mb": self.increase_mb,
            "memory_kind": self.kind,
        }


# ---------------------------------------------------------------------------------------------------- timing


def warmup_steps(step: Callable[[], Any], n: int, device: str | torch.device) -> list[float]:
    """Run ``step`` ``n`` times untimed-for-the-result; return each call's wall-clock seconds (device synchronised).

    Warm-up calls absorb lazy initialisation, optimiser-state allocation, cuDNN autotuning and compilation.
    """
    dev = torch.device(device)
    out = []
    for _ in range(max(0, int(n))):
        t0 = time.perf_counter()
        step()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        out.append(time.perf_counter() - t0)
    return out


def time_steps(step: Callable[[], Any], n: int, device: str | torch.device) -> list[float]:
    """Seconds of each of ``n`` (≥ 1) calls of ``step``.

    On CUDA each call is bracketed by CUDA events recorded on the current stream, with the device synchronised
    before and after; on CPU by ``time.perf_counter``.
    """
    dev = torch.device(device)
    times: list[float] = []
    for _ in range(max(1, int(n))):
        if dev.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize(dev)
            start.record()
            step()
            end.record()
            torch.cuda.synchronize(dev)
            times.append(start.elapsed_time(end) / 1000.0)
        else:
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
    return times


def _summary(times: list[float], batch_size: int) -> dict[str, Any]:
    med = float(np.median(times))
    return {
        "steps": len(times),
        "step_s_median": med,
        "step_s_min": float(min(times)),
        "step_s_max": float(max(times)),
        "throughput": batch_size / med if med > 0 else math.inf,
        "throughput_unit": "samples/s",
        "time_per_item_s": med / batch_size,
    }


# ---------------------------------------------------------------------------------------------------- FLOPs


def count_flops(build: Callable[[], nn.Module], forward: Callable[[nn.Module], Any]) -> int:
    """Forward FLOPs of ``forward(build())`` counted on the ``meta`` device (shapes only, nothing computed).

    ``build`` constructs the module (it is called inside ``torch.device("meta")``, so parameters and any tensors
    ``forward`` creates are meta tensors). Counts matmuls, convolutions and attention (2 FLOPs per multiply-add).
    Returns 0 when the module cannot run on ``meta`` (logged).
    """
    from torch.utils.flop_counter import FlopCounterMode

    try:
        with torch.device("meta"):
            module = build()
            with FlopCounterMode(display=False) as counter, torch.no_grad():
                forward(module)
        return int(counter.get_total_flops())
    except Exception as exc:  # pragma: no cover - depends on op support for meta tensors
        log.warning("FLOP count on the meta device failed (%s: %s)", type(exc).__name__, exc)
        return 0


# ---------------------------------------------------------------------------------------------------- helpers


def _set_seed(seed: int) -> None:
    torch.manual_seed(int(seed))


def _describe(
    device: torch.device, precision: str, fused: bool, compiled: bool, channels_last: bool
) -> dict[str, Any]:
    return {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "precision": precision,
        "fused_attention": bool(fused),
        "compile": bool(compiled),
        "channels_last": bool(channels_last),
        "torch_threads": torch.get_num_threads(),
    }


def _precision_label(amp: torch.dtype | None, tf32: bool) -> str:
    if amp is torch.bfloat16:
        return "bf16-mixed"
    return "fp32 (tf32 matmul)" if tf32 else "fp32"


@contextlib.contextmanager
def _tf32(enabled: bool) -> Any:
    """TF32 tensor-core matmuls and convolutions on CUDA inside the block (restored afterwards)."""
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    if enabled:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def _prepare(
    model: nn.Module,
    device: torch.device,
    fused: bool,
    channels_last: bool | None,
    compile: bool,
    compile_mode: str | None,
) -> tuple[nn.Module, bool]:
    """optimize_for_device + the realised channels-last flag."""
    cl = (device.type == "cuda") if channels_last is None else bool(channels_last)
    optimize_for_device(
        model, device, fused=fused, channels_last=cl, compile=compile, compile_mode=compile_mode
    )
    return model, cl


# ---------------------------------------------------------------------------------------------------- fine-tuning


def _time_training_step(step: Callable[[], None], model: nn.Module, head: dict[str, Any], *, dev: torch.device,
                        amp: torch.dtype | None, fused: bool, channels_last: bool, compile: bool, tf32: bool,
                        steps: int, warmup: int, batch_size: int, img_size: int, forward_flops: int,
                        last: Mapping[str, float]) -> dict[str, Any]:
    """Warm up and time ``step`` (a whole training step of ``model``) and report it: ``head`` first, then the
    settings, throughput, FLOPs (training = 3 × ``forward_flops``), peak memory over the timed steps and the last
    loss; ``compile_failed`` when compilation fell back to eager."""
    with _tf32(tf32 and dev.type == "cuda"):
        warm = warmup_steps(step, max(int(warmup), 3 if compile else 0), dev)
        with PeakMemory(dev) as mem:
            times = time_steps(step, steps, dev)
    out = {
        **head,
        "model_img_size": img_size,
        "batch_size": int(batch_size),
        **_describe(dev, _precision_label(amp, tf32 and dev.type == "cuda"), fused, compile, channels_last),
        **_summary(times, batch_size),
        "warmup_s": warm,
        "first_step_s": warm[0] if warm else None,
        "forward_flops_per_item": forward_flops,
        "flops_per_item": TRAINING_FLOPS_FACTOR * forward_flops,
        "flops_note": "FlopCounterMode forward on meta (matmul/conv/attention); training = 3 x forward",
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "loss": last.get("loss", float("nan")),
        **mem.as_dict(),
    }
    failed = compile_failed(model)
    if compile and failed:
        out["compile_failed"] = failed
    return out


def benchmark_finetune_step(
    model_config: Mapping[str, Any],
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 2,
    precision: str = "fp32",
    fused: bool = True,
    channels_last: bool | None = None,
    compile: bool = False,
    compile_mode: str | None = "default",
    tf32: bool = False,
    steps: int = 5,
    warmup: int = 2,
    seed: int = 0,
    lr: float = paper_preset().finetune.lr,
    loss_weights: Mapping[str, float] | None = None,
    label_smoothing: float = paper_preset().finetune.label_smoothing,
) -> dict[str, Any]:
    """Throughput of TYRION fine-tuning steps (forward, :func:`~ssl4sar.losses.tyrion_loss`, backward, SGD).

    Args:
        model_config: a preset's ``model`` section (the paper model: 512 px, SwinV2-T).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        batch_size: context crops per step (each ``(1, C, C)``, C = ``img_size``).
        precision: ``"fp32"`` or ``"bf16"`` (autocast bf16-mixed; loss on float32 logits).
        fused, channels_last, compile, compile_mode: fast paths (:func:`ssl4sar.models.fast.optimize_for_device`;
            ``channels_last=None`` = on for CUDA only).
        tf32: allow TF32 tensor-core matmuls / convolutions for the fp32 run (CUDA only).
        steps, warmup: timed and untimed steps (a compiled model gets at least 3 warm-up steps).
        seed: seed of the weights and of the random batch.
        lr, loss_weights, label_smoothing: the paper's fine-tuning settings by default.

    Returns:
        ``throughput`` (samples/s, median step), ``time_per_item_s``, ``step_s_median``/``min``/``max``,
        ``warmup_s`` (list), ``first_step_s`` (incl. compilation), ``flops_per_item`` (training ≈ 3 × forward),
        ``forward_flops_per_item``, peak memory (:class:`PeakMemory` fields over the timed steps), ``loss``
        (last step, finite check), the settings, and ``compile_failed`` when compilation fell back to eager.
    """
    from ssl4sar.losses import tyrion_loss
    from ssl4sar.models.tyrion import Tyrion

    dev = torch.device(device)
    amp = amp_dtype_for(dev, precision)
    _set_seed(seed)
    model = Tyrion.from_config(model_config)
    c, k = model.img_size, model.num_classes
    model, cl = _prepare(model, dev, fused, channels_last, compile, compile_mode)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(int(seed))
    x = torch.rand(batch_size, 1, c, c, generator=gen).to(dev)
    y = torch.randint(0, k, (batch_size, c, c), generator=gen).to(dev)
    if cl:
        x = x.contiguous(memory_format=torch.channels_last)
    last: dict[str, float] = {}

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with autocast(dev, amp):
            logits = model(x)
        loss, _ = tyrion_loss(logits.float(), y, weights=loss_weights, label_smoothing=label_smoothing)
        loss.backward()
        opt.step()
        last["loss"] = float(loss.detach())

    fwd = count_flops(lambda: Tyrion.from_config(model_config), lambda m: m(torch.empty(1, 1, c, c)))
    return _time_training_step(step, model, {"benchmark": "finetune_step"}, dev=dev, amp=amp, fused=fused,
                               channels_last=cl, compile=compile, tf32=tf32, steps=steps, warmup=warmup,
                               batch_size=batch_size, img_size=c, forward_flops=fwd, last=last)


# ---------------------------------------------------------------------------------------------------- pretraining


def benchmark_pretrain_step(
    method: str,
    model_config: Mapping[str, Any],
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 2,
    precision: str = "fp32",
    fused: bool = True,
    channels_last: bool | None = None,
    compile: bool = False,
    compile_mode: str | None = "default",
    tf32: bool = False,
    steps: int = 5,
    warmup: int = 2,
    seed: int = 0,
    method_settings: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Throughput of OptSimMIM / OptTranslator pretraining steps (``compute_loss``, backward, SGD step).

    Args:
        method: ``"optsimmim"`` or ``"opttranslator"`` (:mod:`ssl4sar.pretrain`).
        model_config: a preset's ``model`` section.
        method_settings: constructor settings of the module (``lr``, ``mask_ratio``, ``token_size`` …, e.g.
            :func:`ssl4sar.pretrain.common.method_settings` of a preset); defaults to the module's defaults.
        The other arguments as in :func:`benchmark_finetune_step`; the batch is ``sar`` (B, 1, C, C) and
        ``optical`` (B, 14, C, C), random in [0, 1]. With ``compile`` the whole module is compiled (its forward).

    Returns the same fields as :func:`benchmark_finetune_step` (``benchmark`` = ``pretrain_step``, ``method``).
    Raises ``ImportError`` when :mod:`ssl4sar.pretrain` is not available.
    """
    from ssl4sar.pretrain.common import module_class

    dev = torch.device(device)
    amp = amp_dtype_for(dev, precision)
    cls = module_class(method)
    settings = dict(method_settings or {})
    settings.setdefault("lr", 0.001 if method == "optsimmim" else 0.005)
    _set_seed(seed)
    module = cls(model_config=model_config, **settings)
    c = module.model.img_size
    n_opt = int(module.hparams.get("n_optical", 14))
    # fused attention / channels-last on the network; compile the whole module (compute_loss calls it)
    _, cl = _prepare(module.model, dev, fused, channels_last, False, compile_mode)
    module.to(dev)
    if cl:
        module.to(memory_format=torch.channels_last)
    module._channels_last = cl  # what PretrainModule.on_fit_start sets under Lightning on CUDA
    if compile:
        maybe_compile(module, mode=compile_mode)
    module.train()
    params = [p for p in module.parameters() if p.requires_grad]
    lr = float(module.hparams.get("lr", settings["lr"]))
    opt = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(int(seed))
    batch = {
        "sar": torch.rand(batch_size, 1, c, c, generator=gen).to(dev),
        "optical": torch.rand(batch_size, n_opt, c, c, generator=gen).to(dev),
    }
    last: dict[str, float] = {}

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with autocast(dev, amp):
            loss = module.compute_loss(batch)
        loss.float().backward()
        opt.step()
        last["loss"] = float(loss.detach())

    def flops_forward(m: nn.Module) -> Any:
        sar = torch.empty(1, 1, c, c)
        if method == "optsimmim":
            n_mask = int(m.n_tokens * m.mask_ratio)
            return m(sar, torch.zeros(1, max(1, n_mask), dtype=torch.long))
        return m(sar)

    fwd = count_flops(lambda: cls(model_config=model_config, **settings), flops_forward)
    return _time_training_step(step, module, {"benchmark": "pretrain_step", "method": method}, dev=dev, amp=amp,
                               fused=fused, channels_last=cl, compile=compile, tf32=tf32, steps=steps,
                               warmup=warmup, batch_size=batch_size, img_size=c, forward_flops=fwd, last=last)
