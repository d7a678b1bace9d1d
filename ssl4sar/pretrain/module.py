"""What the two self-supervised tasks share (spec §5.1): the LightningModule base and its settings.

:class:`PretrainModule` holds the TYRION network as attribute ``model`` (a :class:`~ssl4sar.models.tyrion.Tyrion`)
and its task head(s) as other attributes, and stores ``model_config`` in its hyper-parameters. Its Lightning
checkpoints therefore load directly into fine-tuning: :func:`ssl4sar.models.convert.load_model` keeps every
``model.…`` weight (encoder *and* decoder, spec §5.4) and drops the heads by name, and
:func:`ssl4sar.models.initialise.initialise_model` (``ssl4sar finetune --init <checkpoint>``) does the same.

Optimisation (spec §5.1): SGD (momentum 0.9, weight decay 1e-4 on all trainable parameters, no warm-up, no
clipping); ``ReduceLROnPlateau(mode="min", factor 0.5, patience 5)`` stepped once per epoch on ``val/loss`` (the
epoch mean of the validation loss, the reference's ``val/loss_avg``). Checkpoints: best ``val/loss`` (min) and
``last.ckpt``. The learning rate and, for OptTranslator, the early-stopping patience come from the preset's
``pretrain.<method>`` section; everything else from ``pretrain``.

TYRION's segmentation head (1 × 1 conv to the class logits) takes no part in either task (the reference leaves it
random and needs DDP's ``find_unused_parameters``); here it is frozen during pretraining, so that DDP runs without
searching for unused parameters. It keeps its random initial values, as in the reference.

Validation masks of OptSimMIM are drawn from a generator seeded by ``(seed, batch index)``, i.e. every epoch sees
the same masks, so that the validation loss that drives the scheduler and the checkpoint choice is not noisier than
it needs to be. (The reference draws fresh masks at every validation.) Training masks come from torch's global
generator, which :class:`ssl4sar.training.StepSeed` re-seeds at every step.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch

from ssl4sar.config import PRETRAIN_METHODS as METHODS  # re-exported: its home is ssl4sar.config
from ssl4sar.config import Preset, as_preset, paper_preset
from ssl4sar.models.fast import CompiledCall, cache_attention_bias
from ssl4sar.models.initialise import initialise_model
from ssl4sar.models.tyrion import Tyrion

__all__ = [
    "METHODS",
    "MONITOR",
    "N_OPTICAL",
    "PretrainModule",
    "mean_predictor_val_loss",
    "method_settings",
    "optical_band_means",
]

log = logging.getLogger(__name__)

#: the validation metric that drives the scheduler, checkpointing and early stopping (min)
MONITOR = "val/loss"
#: optical target channels (B1…B12, WVP, SCL; spec §2.2)
N_OPTICAL = 14
_PAPER = paper_preset().pretrain  # the constructor defaults of PretrainModule


def _val_seed(seed: int, batch_idx: int) -> int:
    state = np.random.SeedSequence([int(seed), int(batch_idx), 0x7A1]).generate_state(1)
    return int(state[0])


class PretrainModule(pl.LightningModule):
    """Base of :class:`~ssl4sar.pretrain.optsimmim.OptSimMIM` and
    :class:`~ssl4sar.pretrain.opttranslator.OptTranslator`.

    Args:
        model_config: :class:`Tyrion` constructor arguments (a preset's ``model`` section; saved in full).
        lr, momentum, weight_decay: SGD settings.
        plateau_factor, plateau_patience: ``ReduceLROnPlateau`` on ``val/loss`` (per epoch).
        n_optical: optical target channels (14).
        seed: base seed of the fixed validation masks.
        channels_last: use the channels-last memory format on CUDA.
        compile: run the training step's forward through ``torch.compile``
            (:class:`~ssl4sar.models.fast.CompiledCall`; ``pretrain.compile``); validation stays eager. Falls back
            to eager, with a warning, when compilation fails.
        init: provenance of the initial weights (recorded only; loaded by :meth:`initialise`).

    Batches follow ARCHITECTURE.md: ``sar`` (B, 1, C, C) and ``optical`` (B, 14, C, C), both float in [0, 1].
    Subclasses implement :meth:`compute_loss`.
    """

    method: str = ""

    def __init__(self, model_config: Mapping[str, Any], lr: float, momentum: float = _PAPER.momentum,
                 weight_decay: float = _PAPER.weight_decay, plateau_factor: float = _PAPER.plateau_factor,
                 plateau_patience: int = _PAPER.plateau_patience,
                 n_optical: int = N_OPTICAL, seed: int = 0, channels_last: bool = True, compile: bool = False,
                 init: str = "scratch", **task_hparams: Any) -> None:
        super().__init__()
        self.model = Tyrion.from_config(model_config).set_fused_attention(True)  # same numbers, faster (models.fast)
        cache_attention_bias(self.model)  # validation's bias, dropped by Lightning's eval()/train() switches
        # The segmentation head is not part of the pretraining graph: freeze it (no DDP unused-parameter search).
        self.model.head.requires_grad_(False)
        self.save_hyperparameters({
            "method": self.method, "model_config": dict(self.model.config), "lr": float(lr),
            "momentum": float(momentum), "weight_decay": float(weight_decay),
            "plateau_factor": float(plateau_factor), "plateau_patience": int(plateau_patience),
            "n_optical": int(n_optical), "seed": int(seed), "channels_last": bool(channels_last),
            "compile": bool(compile), "init": str(init), **task_hparams,
        })
        self._channels_last = False
        # outside the module tree (self.__dict__): the compiled wrapper must not add a second copy of the weights
        self.__dict__["_compiled_forward"] = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], init: str | None = None, seed: int | None = None
                    ) -> PretrainModule:
        """Build from a preset (dict or :class:`ssl4sar.config.Preset`; ``model`` and ``pretrain``)."""
        preset = as_preset(cfg)
        settings = method_settings(preset, cls.method)
        return cls(model_config=preset.model.to_dict(), init=str(init if init is not None else "scratch"),
                   seed=int(preset.seed if seed is None else seed), compile=preset.pretrain.compile, **settings)

    def initialise(self, init: str | Path = "scratch", imagenet_weights: str | Path | None = None,
                   *, trusted: bool = False) -> str:
        """Load the initial network weights: ``scratch`` | ``imagenet`` | checkpoint path (see
        :func:`ssl4sar.models.initialise.initialise_model`); the heads keep their random initialisation. Returns a
        description, also recorded in the hyper-parameters."""
        desc = initialise_model(self.model, init, imagenet_weights, trusted=trusted)
        self.hparams["init"] = desc
        return desc

    # ------------------------------------------------------------------ the task
    def encode_decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """TYRION encoder + decoder steps on patch tokens (B, h, w, C) → features (B, embed_dim, H, W)."""
        feats = self.model.decode(self.model.encode(tokens))
        if self._channels_last:
            feats = feats.contiguous(memory_format=torch.channels_last)
        return feats

    def embed(self, sar: torch.Tensor) -> torch.Tensor:
        """Patch embedding (incl. its LayerNorm) of SAR (B, 1, C, C) → tokens (B, C/p, C/p, embed_dim)."""
        if self._channels_last:
            sar = sar.contiguous(memory_format=torch.channels_last)
        return self.model.embed(sar)

    def compute_loss(self, batch: Mapping[str, Any], generator: torch.Generator | None = None) -> torch.Tensor:
        """The task loss (scalar) of a batch; ``generator`` fixes the random masks (OptSimMIM). Subclasses call
        the network through :meth:`forward_now`."""
        raise NotImplementedError

    def forward_now(self, *args: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` as the current step runs it: compiled in training when ``compile`` is on, else eager (so
        validation's and figures' calls never trigger a compilation)."""
        compiled = self.__dict__["_compiled_forward"]
        if compiled is not None and self.training:
            return compiled(*args)
        return self(*args)

    @staticmethod
    def _check_batch(batch: Mapping[str, Any], n_optical: int) -> tuple[torch.Tensor, torch.Tensor]:
        sar, optical = batch["sar"], batch["optical"]
        if sar.ndim != 4 or sar.shape[1] != 1:
            raise ValueError(f"batch['sar'] must be (B, 1, C, C), got {tuple(sar.shape)}")
        if optical.ndim != 4 or optical.shape[1] != n_optical or optical.shape[-2:] != sar.shape[-2:]:
            raise ValueError(f"batch['optical'] must be (B, {n_optical}, C, C) like the SAR crop "
                             f"{tuple(sar.shape)}, got {tuple(optical.shape)}")
        return sar, optical

    # ------------------------------------------------------------------ Lightning hooks
    def setup(self, stage: str) -> None:
        # before Lightning moves the module to its device and wraps it in DDP (so the gradient buckets match)
        if self.hparams["channels_last"] and self.trainer.strategy.root_device.type == "cuda":
            self.to(memory_format=torch.channels_last)
            self._channels_last = True
        if self.hparams.get("compile") and self.__dict__["_compiled_forward"] is None:
            self.__dict__["_compiled_forward"] = CompiledCall(self)  # compiles at its first call

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        loss = self.compute_loss(batch)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=batch["sar"].shape[0])
        return loss

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(_val_seed(self.hparams["seed"], batch_idx))
        loss = self.compute_loss(batch, generator=gen)
        self.log(MONITOR, loss, on_step=False, on_epoch=True, prog_bar=True, sync_dist=True,
                 batch_size=batch["sar"].shape[0])
        return loss

    def baseline_loss(self, batch: Mapping[str, Any], band_means: torch.Tensor,
                      generator: torch.Generator | None = None) -> torch.Tensor:
        """The task loss of a trivial predictor that outputs ``band_means`` (14,) at every pixel (same masks as
        :meth:`compute_loss` for the same ``generator``): the level a useful pretraining must beat."""
        raise NotImplementedError

    def configure_optimizers(self) -> dict[str, Any]:
        params = [p for p in self.parameters() if p.requires_grad]
        opt = torch.optim.SGD(params, lr=self.hparams["lr"], momentum=self.hparams["momentum"],
                              weight_decay=self.hparams["weight_decay"])
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=self.hparams["plateau_factor"],
                                                           patience=self.hparams["plateau_patience"])
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": MONITOR, "interval": "epoch",
                                                   "frequency": 1, "strict": False}}


@torch.no_grad()
def optical_band_means(dataset: Any, n_samples: int | None = None) -> torch.Tensor:
    """Mean of each optical band (14,) over the first ``n_samples`` items of a pretraining dataset (all when
    ``None``; every item weighs the same; values in [0, 1])."""
    n = len(dataset) if n_samples is None else min(int(n_samples), len(dataset))
    if n < 1:
        raise ValueError("optical_band_means needs at least one sample")
    total = None
    for i in range(n):
        optical = dataset[i]["optical"].double()
        m = optical.mean(dim=(-2, -1))
        total = m if total is None else total + m
    assert total is not None
    return (total / n).float()


@torch.no_grad()
def mean_predictor_val_loss(module: PretrainModule, loader: Any, band_means: torch.Tensor) -> float:
    """The validation loss of predicting ``band_means`` everywhere, on the batches of ``loader`` with the masks
    that :meth:`PretrainModule.validation_step` draws for them — directly comparable to ``val/loss``
    (a batch-size-weighted epoch mean, as Lightning logs it)."""
    total, count = 0.0, 0
    for batch_idx, batch in enumerate(loader):
        gen = torch.Generator().manual_seed(_val_seed(module.hparams["seed"], batch_idx))
        loss = module.baseline_loss(batch, band_means, generator=gen)
        b = int(batch["sar"].shape[0])
        total += float(loss) * b
        count += b
    if count == 0:
        raise ValueError("mean_predictor_val_loss: the loader is empty")
    return total / count


def method_settings(cfg: Mapping[str, Any] | Preset, method: str) -> dict[str, Any]:
    """Constructor arguments of the ``method`` module from a preset's ``pretrain`` section.

    Common keys: ``momentum``, ``weight_decay``, ``plateau_factor``, ``plateau_patience``; the method's sub-section
    gives ``lr`` (required) and its own settings (OptSimMIM: ``mask_ratio``, ``token_size``). The
    ``early_stopping_patience`` of a sub-section is a trainer setting and not returned.
    """
    if method not in METHODS:
        raise ValueError(f"unknown pretraining method {method!r}: choose from {', '.join(METHODS)}")
    pre = as_preset(cfg).pretrain
    sub = getattr(pre, method).to_dict()
    out: dict[str, Any] = {"lr": sub.pop("lr"), "momentum": pre.momentum, "weight_decay": pre.weight_decay,
                           "plateau_factor": pre.plateau_factor, "plateau_patience": pre.plateau_patience}
    sub.pop("early_stopping_patience", None)
    out.update(sub)
    return out
