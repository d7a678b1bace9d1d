"""Training-step benchmarks: TYRION fine-tuning (spec §6) and OptSimMIM / OptTranslator pretraining (spec §5).

A benchmark is prepared once as a :class:`StepCase` (model, optimiser, a random batch of the right shapes and value
ranges, and a ``step()`` that runs one forward, loss, backward and SGD step) and then timed, alone
(:func:`measure_case`) or alternating with other cases (:func:`ssl4sar.bench.measure.alternate`). The networks have
no data-dependent control flow, so random inputs time like real data; data loading is measured separately
(:mod:`ssl4sar.bench.sampler`).

* :func:`finetune_case` — forward of a ``(B, 1, C, C)`` context batch, :func:`ssl4sar.losses.tyrion_loss` (centre +
  context CE and Dice) on float32 logits, backward, ``SGD(momentum 0.9, weight decay 1e-4)``.
* :func:`pretrain_case` — the pretraining module's own ``compute_loss`` (fresh random token masks every step for
  OptSimMIM), backward, SGD.

Both take one :class:`StepSettings`: device, batch size, seed and the execution path, ``precision`` (``fp32`` or
``bf16`` autocast), ``fused`` attention, ``channels_last`` and ``compile`` (:meth:`StepSettings.on_path` of an
:class:`ssl4sar.bench.paths.ExecPath`). The *reference path* of the official code is fp32, timm's attention, no
channels-last, no compile, and on CUDA no cuDNN autotuning.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ssl4sar.bench.measure import (
    COMPILE_WARMUP_STEPS,
    TRAINING_FLOPS_FACTOR,
    PeakMemory,
    count_flops,
    step_summary,
    time_steps,
    warmup_steps,
)
from ssl4sar.bench.paths import prepare_on_path
from ssl4sar.models.fast import amp_dtype_for, autocast, compile_failed, fused_attention_enabled, maybe_compile

__all__ = [
    "StepCase",
    "StepSettings",
    "benchmark_finetune_step",
    "benchmark_pretrain_step",
    "case_result",
    "finetune_case",
    "measure_case",
    "pretrain_case",
]

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------------- helpers


@contextlib.contextmanager
def _tf32(enabled: bool) -> Iterator[None]:
    """TF32 tensor-core matmuls and convolutions on CUDA inside the block (restored afterwards)."""
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    if enabled:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def _sgd_step(opt: torch.optim.Optimizer, loss_of_batch: Callable[[], torch.Tensor], tf32: bool,
              last: dict[str, float]) -> Callable[[], None]:
    """One optimiser step of ``loss_of_batch()`` (forward and loss, float32) with TF32 on or off; the loss goes to
    ``last["loss"]``."""

    def step() -> None:
        with _tf32(tf32):
            opt.zero_grad(set_to_none=True)
            loss = loss_of_batch()
            loss.backward()
            opt.step()
        last["loss"] = float(loss.detach())

    return step


@dataclass
class StepCase:
    """One prepared training step. ``step()`` runs it; ``module`` is what it trains; ``info`` the settings
    (JSON-ready); ``last`` holds the loss of the latest step."""

    step: Callable[[], None]
    module: nn.Module
    batch_size: int
    forward_flops: int
    info: dict[str, Any]
    compile: bool = False
    last: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class StepSettings:
    """How a benchmarked training step runs, the same for both kinds of step.

    Attributes:
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        batch_size: samples per step (context crops ``(1, C, C)``, C = the network's ``img_size``).
        precision: ``"fp32"``, ``"bf16"`` (autocast bf16-mixed; the loss on float32) or ``"auto"``
            (:func:`ssl4sar.models.fast.amp_dtype_for`).
        fused, channels_last, compile, compile_mode, polyphase: :func:`ssl4sar.models.fast.optimize_for_device`
            (``channels_last=None``: on for CUDA only; ``polyphase``: the decoder's upsampling convolutions in
            polyphase form, off as in the library's training).
        tf32: TF32 tensor-core matmuls / convolutions in the step (CUDA only).
        seed: seed of the weights and of the random batch.
    """

    device: str | torch.device = "cpu"
    batch_size: int = 2
    precision: str = "fp32"
    fused: bool = True
    channels_last: bool | None = None
    compile: bool = False
    compile_mode: str | None = "default"
    tf32: bool = False
    seed: int = 0
    polyphase: bool = False

    @classmethod
    def on_path(cls, path: Any, device: str | torch.device, batch_size: int, seed: int = 0) -> StepSettings:
        """The settings of an execution path (:class:`ssl4sar.bench.paths.ExecPath`) on ``device``."""
        return cls(device, batch_size, path.precision, path.fused, path.channels_last, path.compile, seed=seed,
                   polyphase=path.polyphase)

    @property
    def torch_device(self) -> torch.device:
        return torch.device(self.device)

    @property
    def amp(self) -> torch.dtype | None:
        """The autocast dtype (``None``: float32)."""
        return amp_dtype_for(self.torch_device, self.precision)

    @property
    def use_channels_last(self) -> bool:
        return (self.torch_device.type == "cuda") if self.channels_last is None else bool(self.channels_last)

    @property
    def use_tf32(self) -> bool:
        return self.tf32 and self.torch_device.type == "cuda"

    def info(self, img_size: int, module: nn.Module) -> dict[str, Any]:
        """The settings as report fields (JSON-ready), with the network's input size and parameter count."""
        dev = self.torch_device
        return {
            "device": str(dev),
            "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
            "precision": "bf16-mixed" if self.amp is torch.bfloat16
            else ("fp32 (tf32 matmul)" if self.use_tf32 else "fp32"),
            "fused_attention": fused_attention_enabled(module),  # as realised (a module may build it fused)
            "compile": bool(self.compile),
            "channels_last": self.use_channels_last,
            "polyphase_upsampling": bool(self.polyphase),
            "torch_threads": torch.get_num_threads(),
            "model_img_size": int(img_size),
            "batch_size": int(self.batch_size),
            "params_m": sum(p.numel() for p in module.parameters()) / 1e6,
        }


def finetune_case(
    model_config: Mapping[str, Any],
    settings: StepSettings | None = None,
    *,
    lr: float = 0.01,
    loss_weights: Mapping[str, float] | None = None,
    label_smoothing: float = 0.1,
) -> StepCase:
    """A TYRION fine-tuning step (forward, :func:`~ssl4sar.losses.tyrion_loss`, backward, SGD) ready to time.

    Args:
        model_config: a preset's ``model`` section (the paper model: 512 px, SwinV2-T).
        settings: device, batch size, execution path, seed (:class:`StepSettings`; default: CPU, batch 2, fp32).
        lr, loss_weights, label_smoothing: the paper's fine-tuning settings by default.
    """
    from ssl4sar.losses import tyrion_loss
    from ssl4sar.models.tyrion import Tyrion

    s = settings or StepSettings()
    dev, amp, cl, batch_size = s.torch_device, s.amp, s.use_channels_last, int(s.batch_size)
    torch.manual_seed(int(s.seed))
    model = Tyrion.from_config(model_config)
    c, k = model.img_size, model.num_classes
    prepare_on_path(model, dev, fused=s.fused, channels_last=cl, compile=s.compile, compile_mode=s.compile_mode,
                    polyphase=s.polyphase)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(int(s.seed))
    x = torch.rand(batch_size, 1, c, c, generator=gen).to(dev)
    y = torch.randint(0, k, (batch_size, c, c), generator=gen).to(dev)
    if cl:
        x = x.contiguous(memory_format=torch.channels_last)
    last: dict[str, float] = {}

    def loss_of_batch() -> torch.Tensor:
        with autocast(dev, amp):
            logits = model(x)
        return tyrion_loss(logits.float(), y, weights=loss_weights, label_smoothing=label_smoothing)[0]

    step = _sgd_step(opt, loss_of_batch, s.use_tf32, last)

    fwd = count_flops(lambda: Tyrion.from_config(model_config), lambda m: m(torch.empty(1, 1, c, c)))
    info = {"benchmark": "finetune_step", **s.info(c, model)}
    return StepCase(step, model, batch_size, fwd, info, bool(s.compile), last)


def pretrain_case(
    method: str,
    model_config: Mapping[str, Any],
    settings: StepSettings | None = None,
    *,
    method_settings: Mapping[str, Any] | None = None,
) -> StepCase:
    """An OptSimMIM / OptTranslator pretraining step (``compute_loss``, backward, SGD) ready to time.

    Args:
        method: ``"optsimmim"`` or ``"opttranslator"`` (:mod:`ssl4sar.pretrain`).
        method_settings: constructor settings of the module (``lr``, ``mask_ratio``, ``token_size`` …, e.g.
            :func:`ssl4sar.pretrain.common.method_settings` of a preset); default the module's defaults.
        model_config, settings: as in :func:`finetune_case`; the batch is ``sar`` (B, 1, C, C) and ``optical``
        (B, 14, C, C), random in [0, 1]. With ``compile`` the whole module is compiled.

    Raises ``ImportError`` when :mod:`ssl4sar.pretrain` is not available.
    """
    from ssl4sar.pretrain.common import module_class

    s = settings or StepSettings()
    dev, amp, cl, batch_size = s.torch_device, s.amp, s.use_channels_last, int(s.batch_size)
    cls = module_class(method)
    module_settings = dict(method_settings or {})
    module_settings.setdefault("lr", 0.001 if method == "optsimmim" else 0.005)
    torch.manual_seed(int(s.seed))
    module = cls(model_config=model_config, **module_settings)
    c = module.model.img_size
    n_opt = int(module.hparams.get("n_optical", 14))
    # the path's attention / upsampling / layout on the network (the module builds it with fused attention);
    # compile the whole module (compute_loss calls it)
    prepare_on_path(module.model, dev, fused=s.fused, channels_last=cl, polyphase=s.polyphase)
    module.to(dev)
    if cl:
        module.to(memory_format=torch.channels_last)
    module._channels_last = cl  # what PretrainModule.setup sets under Lightning on CUDA
    if s.compile:
        maybe_compile(module, mode=s.compile_mode)
    module.train()
    params = [p for p in module.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=float(module.hparams.get("lr", module_settings["lr"])), momentum=0.9,
                          weight_decay=1e-4)
    gen = torch.Generator().manual_seed(int(s.seed))
    batch = {
        "sar": torch.rand(batch_size, 1, c, c, generator=gen).to(dev),
        "optical": torch.rand(batch_size, n_opt, c, c, generator=gen).to(dev),
    }
    last: dict[str, float] = {}

    def loss_of_batch() -> torch.Tensor:
        with autocast(dev, amp):
            return module.compute_loss(batch).float()

    step = _sgd_step(opt, loss_of_batch, s.use_tf32, last)

    def flops_forward(m: nn.Module) -> Any:
        sar = torch.empty(1, 1, c, c)
        if method == "optsimmim":
            n_mask = int(m.n_tokens * m.mask_ratio)
            return m(sar, torch.zeros(1, max(1, n_mask), dtype=torch.long))
        return m(sar)

    fwd = count_flops(lambda: cls(model_config=model_config, **module_settings), flops_forward)
    info = {"benchmark": "pretrain_step", "method": method, **s.info(c, module)}
    return StepCase(step, module, batch_size, fwd, info, bool(s.compile), last)


def case_result(case: StepCase, times: list[float], warm: list[float], memory: PeakMemory | None) -> dict[str, Any]:
    """The report dict of a timed case: settings, throughput (samples/s from the median step), FLOPs (training =
    3 × forward), warm-up seconds, the last loss, peak memory, and ``compile_failed`` when compilation fell back."""
    out = {
        **case.info,
        **step_summary(times, case.batch_size),
        "throughput_unit": "samples/s",
        "warmup_s": warm,
        "first_step_s": warm[0] if warm else None,
        "forward_flops_per_item": case.forward_flops,
        "flops_per_item": TRAINING_FLOPS_FACTOR * case.forward_flops,
        "flops_note": "FlopCounterMode forward on meta (matmul/conv/attention); training = 3 x forward",
        "loss": case.last.get("loss", float("nan")),
        **(memory.as_dict() if memory is not None else {}),
    }
    failed = compile_failed(case.module)
    if case.compile and failed:
        out["compile_failed"] = failed
    return out


def measure_case(case: StepCase, steps: int = 5, warmup: int = 2) -> dict[str, Any]:
    """Warm up (a compiled case at least 3 steps) and time ``steps`` steps of ``case``, peak memory over the timed
    steps; see :func:`case_result`."""
    dev = torch.device(case.info["device"])
    warm = warmup_steps(case.step, max(int(warmup), COMPILE_WARMUP_STEPS if case.compile else 0), dev)
    with PeakMemory(dev) as mem:
        times = time_steps(case.step, steps, dev)
    return case_result(case, times, warm, mem)


def benchmark_finetune_step(model_config: Mapping[str, Any], settings: StepSettings | None = None, *, steps: int = 5,
                            warmup: int = 2, **kwargs: Any) -> dict[str, Any]:
    """:func:`measure_case` of :func:`finetune_case` (``settings``, ``kwargs``): throughput (samples/s), step
    seconds, FLOPs, peak memory, last loss and the settings."""
    return measure_case(finetune_case(model_config, settings, **kwargs), steps, warmup)


def benchmark_pretrain_step(method: str, model_config: Mapping[str, Any], settings: StepSettings | None = None, *,
                            steps: int = 5, warmup: int = 2, **kwargs: Any) -> dict[str, Any]:
    """:func:`measure_case` of :func:`pretrain_case` (``settings``, ``kwargs``); fields as
    :func:`benchmark_finetune_step` plus ``method``."""
    return measure_case(pretrain_case(method, model_config, settings, **kwargs), steps, warmup)
