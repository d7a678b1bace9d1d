"""What the two self-supervised tasks share (spec §5.1): the LightningModule base, the training entry point.

:class:`PretrainModule` holds the TYRION network as attribute ``model`` (a :class:`~ssl4sar.models.tyrion.Tyrion`)
and its task head(s) as other attributes, and stores ``model_config`` in its hyper-parameters. Its Lightning
checkpoints therefore load directly into fine-tuning: :func:`ssl4sar.models.convert.load_model` keeps every
``model.…`` weight (encoder *and* decoder, spec §5.4) and drops the heads by name, and
:func:`ssl4sar.finetune.initialise_model` (``ssl4sar finetune --init <checkpoint>``) does the same.

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
import yaml
from lightning.pytorch.callbacks import Callback, EarlyStopping, LearningRateMonitor

from ssl4sar.config import load_preset
from ssl4sar.errors import DataError
from ssl4sar.io import ensure_writable_dir, write_text_atomic
from ssl4sar.models.tyrion import Tyrion
from ssl4sar.training import (
    DivergenceGuard,
    TrainingPlan,
    build_trainer,
    checkpoint_callbacks,
    existing_file,
    find_resume_checkpoint,
    fit,
    inspect_resume_checkpoint,
    metrics_csv_path,
    plan_training,
    scalar_metrics,
    seed_everything,
)

__all__ = [
    "METHODS",
    "MONITOR",
    "N_OPTICAL",
    "PretrainModule",
    "PretrainResult",
    "mean_predictor_val_loss",
    "method_settings",
    "module_class",
    "optical_band_means",
    "pretrain",
]

log = logging.getLogger(__name__)

#: the two pretraining tasks
METHODS: tuple[str, ...] = ("optsimmim", "opttranslator")
#: the validation metric that drives the scheduler, checkpointing and early stopping (min)
MONITOR = "val/loss"
#: optical target channels (B1…B12, WVP, SCL; spec §2.2)
N_OPTICAL = 14
#: file name of the exported best network (our checkpoint format) inside ``out_dir``
BEST_EXPORT = "pretrained.pt"


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
        init: provenance of the initial weights (recorded only; loaded by :meth:`initialise`).

    Batches follow ARCHITECTURE.md: ``sar`` (B, 1, C, C) and ``optical`` (B, 14, C, C), both float in [0, 1].
    Subclasses implement :meth:`compute_loss`.
    """

    method: str = ""

    def __init__(self, model_config: Mapping[str, Any], lr: float, momentum: float = 0.9,
                 weight_decay: float = 1e-4, plateau_factor: float = 0.5, plateau_patience: int = 5,
                 n_optical: int = N_OPTICAL, seed: int = 0, channels_last: bool = True, init: str = "scratch",
                 **task_hparams: Any) -> None:
        super().__init__()
        self.model = Tyrion.from_config(model_config).set_fused_attention(True)  # same numbers, faster (models.fast)
        # The segmentation head is not part of the pretraining graph: freeze it (no DDP unused-parameter search).
        self.model.head.requires_grad_(False)
        self.save_hyperparameters({
            "method": self.method, "model_config": dict(self.model.config), "lr": float(lr),
            "momentum": float(momentum), "weight_decay": float(weight_decay),
            "plateau_factor": float(plateau_factor), "plateau_patience": int(plateau_patience),
            "n_optical": int(n_optical), "seed": int(seed), "channels_last": bool(channels_last), "init": str(init),
            **task_hparams,
        })
        self._channels_last = False

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], init: str | None = None, seed: int | None = None
                    ) -> PretrainModule:
        """Build from a preset dict (``model`` and ``pretrain`` with its ``<method>`` sub-section)."""
        settings = method_settings(cfg, cls.method)
        return cls(model_config=cfg["model"], init=str(init if init is not None else "scratch"),
                   seed=int(cfg.get("seed", 0) if seed is None else seed), **settings)

    def initialise(self, init: str | Path = "scratch", imagenet_weights: str | Path | None = None,
                   *, trusted: bool = False) -> str:
        """Load the initial network weights: ``scratch`` | ``imagenet`` | checkpoint path (see
        :func:`ssl4sar.finetune.initialise_model`); the heads keep their random initialisation. Returns a
        description, also recorded in the hyper-parameters."""
        from ssl4sar.finetune import initialise_model

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
        """The task loss (scalar) of a batch; ``generator`` fixes the random masks (OptSimMIM)."""
        raise NotImplementedError

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
    def on_fit_start(self) -> None:
        if self.hparams["channels_last"] and self.device.type == "cuda":
            self.to(memory_format=torch.channels_last)
            self._channels_last = True

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


def method_settings(cfg: Mapping[str, Any], method: str) -> dict[str, Any]:
    """Constructor arguments of the ``method`` module from a preset's ``pretrain`` section.

    Common keys: ``momentum``, ``weight_decay``, ``plateau_factor``, ``plateau_patience``; the method's sub-section
    gives ``lr`` (required) and its own settings (OptSimMIM: ``mask_ratio``, ``token_size``). The
    ``early_stopping_patience`` of a sub-section is a trainer setting and not returned.
    """
    if method not in METHODS:
        raise ValueError(f"unknown pretraining method {method!r}: choose from {', '.join(METHODS)}")
    if "pretrain" not in cfg or "model" not in cfg:
        raise ValueError(f"preset {cfg.get('name', '?')!r} needs 'model' and 'pretrain' sections")
    pre = dict(cfg["pretrain"])
    sub = dict(pre.get(method) or {})
    if "lr" not in sub:
        raise ValueError(f"preset {cfg.get('name', '?')!r}: pretrain.{method}.lr is missing")
    out: dict[str, Any] = {
        "lr": float(sub.pop("lr")),
        "momentum": float(pre.get("momentum", 0.9)),
        "weight_decay": float(pre.get("weight_decay", 1e-4)),
        "plateau_factor": float(pre.get("plateau_factor", 0.5)),
        "plateau_patience": int(pre.get("plateau_patience", 5)),
    }
    sub.pop("early_stopping_patience", None)
    out.update(sub)
    return out


def module_class(method: str) -> type[PretrainModule]:
    """The LightningModule class of ``method`` (``optsimmim`` or ``opttranslator``)."""
    if method == "optsimmim":
        from ssl4sar.pretrain.optsimmim import OptSimMIM

        return OptSimMIM
    if method == "opttranslator":
        from ssl4sar.pretrain.opttranslator import OptTranslator

        return OptTranslator
    raise ValueError(f"unknown pretraining method {method!r}: choose from {', '.join(METHODS)}")


# ---------------------------------------------------------------------------------------------------- entry point
@dataclass
class PretrainResult:
    """What :func:`pretrain` produced (paths are ``None`` when the file was not written).

    ``best_checkpoint`` (best ``val/loss``) and ``last_checkpoint`` are Lightning checkpoints that
    ``ssl4sar finetune --init PATH`` (or :func:`ssl4sar.models.convert.load_model`) reads directly;
    ``export`` is the best network in the project's own format.
    """

    method: str
    out_dir: Path
    best_checkpoint: Path | None
    last_checkpoint: Path | None
    export: Path | None
    metrics_csv: Path
    best_val_loss: float | None = None
    final_metrics: dict[str, float] = field(default_factory=dict)
    epochs: int = 0
    global_step: int = 0
    resumed_from: Path | None = None
    init: str = "scratch"
    plan: TrainingPlan | None = None


def default_init(cfg: Mapping[str, Any]) -> str:
    """Initialisation when none is given: ``pretrain.init`` of the preset, else ``finetune.init`` when that is
    ``scratch`` or ``imagenet`` (the paper pretrains from ImageNet weights, spec §5.1), else ``scratch``."""
    pre = cfg.get("pretrain") or {}
    if pre.get("init"):
        return str(pre["init"])
    ft_init = str((cfg.get("finetune") or {}).get("init", "scratch"))
    return ft_init if ft_init in ("scratch", "imagenet") else "scratch"


def pretrain(method: str, cfg: Mapping[str, Any] | str, data_dir: str | Path, out_dir: str | Path,
             init: str | Path | None = None, seed: int | None = None, devices: int | str = "auto",
             resume: bool = True, max_steps: int | None = None, *, num_nodes: int | None = None,
             max_epochs: int | None = None, precision: str | None = None, accelerator: str = "auto",
             imagenet_weights: str | Path | None = None, callbacks: Sequence[Callback] = (),
             progress: bool = True, trainer_kwargs: Mapping[str, Any] | None = None,
             trust_checkpoint: bool = False) -> PretrainResult:
    """Self-supervised pretraining of TYRION on SSL4SAR-layout data, writing everything under ``out_dir``.

    Args:
        method: ``"optsimmim"`` (spec §5.2) or ``"opttranslator"`` (§5.3).
        cfg: a preset dict or a preset name / YAML path (:func:`ssl4sar.config.load_preset`); uses ``model``,
            ``pretrain`` and ``seed``.
        data_dir: SSL4SAR-layout root (``sar/train``, ``sar/val``, ``optical/``; :mod:`ssl4sar.data.unlabeled`).
        out_dir: run folder (``checkpoints/``, ``logs/``, ``config.yaml``, ``pretrained.pt``).
        init: ``scratch`` | ``imagenet`` | checkpoint path (default: :func:`default_init`).
        seed: global seed (default: the preset's ``seed``).
        devices, num_nodes, precision, accelerator: hardware (see :mod:`ssl4sar.training`); the preset's global
            batch (32 in the paper) is kept through gradient accumulation.
        resume: continue from ``out_dir/checkpoints/last.ckpt`` (or a SLURM requeue checkpoint) when present.
        max_steps: stop after this many optimiser steps; max_epochs: overrides ``pretrain.max_epochs``.
        imagenet_weights: path of ``swinv2_tiny_patch4_window16_256.pth`` for ``init="imagenet"``.
        callbacks, progress, trainer_kwargs: extra Lightning callbacks / progress bar / Trainer arguments.
        trust_checkpoint: load ``init`` / resume checkpoints with the full unpickler (runs code from the file).

    Raises ``DataError`` (bad data, unwritable ``out_dir``, refused or non-finite checkpoint) and
    ``TrainingDiverged`` (non-finite loss or weights; names the last good checkpoint).
    """
    from ssl4sar.data.datamodules import PretrainDataModule
    from ssl4sar.finetune import export_lightning_checkpoint

    cls = module_class(method)
    cfg = load_preset(cfg) if isinstance(cfg, str) else dict(cfg)
    pre = dict(cfg.get("pretrain") or {})
    seed = int(cfg.get("seed", 0) if seed is None else seed)
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(data_dir, "data folder not found",
                        "pass the SSL4SAR-layout root (sar/train, sar/val, optical/); build it with "
                        "`ssl4sar data construct` or synthetic data with `ssl4sar data synth`")
    out = ensure_writable_dir(out_dir, "run folder")
    plan = plan_training(pre, devices=devices, num_nodes=num_nodes, precision=precision, accelerator=accelerator)
    max_epochs = int(pre.get("max_epochs", 1) if max_epochs is None else max_epochs)
    log.info("%s pretraining plan: %s device(s) × %s node(s), %s, batch %d per device × %d accumulation = global "
             "%d, precision %s", method, plan.devices, plan.num_nodes, plan.accelerator, plan.batch_size_per_device,
             plan.accumulate_grad_batches, plan.global_batch_size, plan.precision)

    seed_everything(seed)
    init_choice = str(init if init is not None else default_init(cfg))
    if imagenet_weights is None and pre.get("imagenet_weights"):
        imagenet_weights = pre["imagenet_weights"]
    datamodule = PretrainDataModule(data_dir, cfg, seed=seed)
    module = cls.from_config(cfg, init=init_choice, seed=seed)
    resume_from = find_resume_checkpoint(out) if resume else None
    resume_state = None
    if resume_from is None:
        init_desc = module.initialise(init_choice, imagenet_weights, trusted=trust_checkpoint)
    else:
        resume_state = inspect_resume_checkpoint(resume_from, module.hparams, trusted=trust_checkpoint,
                                                 section="pretrain")
        init_desc = str(module.hparams["init"])
        log.info("resuming from %s (initial weights are taken from it)", resume_from)

    samples = int(pre["samples_per_epoch"])
    steps_per_epoch = plan.optimizer_steps_per_epoch(samples)
    if steps_per_epoch < 1:
        raise ValueError(f"pretrain.samples_per_epoch = {samples} gives no optimiser step per epoch with a global "
                         f"batch of {plan.global_batch_size}")
    ckpt_cbs = checkpoint_callbacks(out, [(MONITOR, "min")])
    extra: list[Callback] = [LearningRateMonitor(logging_interval="epoch")]
    patience = (pre.get(method) or {}).get("early_stopping_patience")
    if patience is not None:
        extra.append(EarlyStopping(monitor=MONITOR, mode="min", patience=int(patience), strict=False))
    trainer = build_trainer(
        plan, out, callbacks=[*ckpt_cbs, DivergenceGuard(out, "pretrain"), *extra, *callbacks], max_epochs=max_epochs,
        max_steps=max_steps, seed=seed, log_every_n_steps=min(50, steps_per_epoch), progress=progress,
        resume=resume_state, **dict(trainer_kwargs or {}))
    if trainer.is_global_zero:
        out.mkdir(parents=True, exist_ok=True)
        record = {**cfg, "run": {"method": method, "seed": seed, "init": init_desc, "devices": plan.devices,
                                 "num_nodes": plan.num_nodes, "precision": plan.precision,
                                 "accumulate_grad_batches": plan.accumulate_grad_batches,
                                 "data_dir": str(data_dir), "max_epochs": max_epochs, "max_steps": max_steps,
                                 "resumed_from": str(resume_from) if resume_from else None}}
        write_text_atomic(out / "config.yaml", yaml.safe_dump(record, sort_keys=False))
    fit(trainer, module, datamodule, resume_state)

    cb = ckpt_cbs[0]
    best = existing_file(cb.best_model_path)
    export: Path | None = None
    if trainer.is_global_zero:
        meta = {"method": method, "selected_by": f"{MONITOR} (min)", "seed": seed, "init": init_desc,
                "preset": cfg.get("name")}
        if best is not None:
            score = cb.best_model_score
            meta[MONITOR] = float(score) if score is not None else None
            export = export_lightning_checkpoint(best, out / BEST_EXPORT, meta)
        else:
            from ssl4sar.models.convert import save_checkpoint

            log.warning("no validation ran: exporting the final weights to %s", out / BEST_EXPORT)
            meta["selected_by"] = "final weights (no validation ran)"
            export = save_checkpoint(out / BEST_EXPORT, module.model,
                                     meta={**meta, "epoch": trainer.current_epoch, "global_step": trainer.global_step})
    score = cb.best_model_score
    result = PretrainResult(
        method=method, out_dir=out, best_checkpoint=best,
        last_checkpoint=existing_file(cb.last_model_path) or existing_file(out / "checkpoints" / "last.ckpt"),
        export=export, metrics_csv=metrics_csv_path(out),
        best_val_loss=float(score) if score is not None else None,
        final_metrics=scalar_metrics(trainer.callback_metrics), epochs=int(trainer.current_epoch),
        global_step=int(trainer.global_step), resumed_from=resume_from, init=init_desc, plan=plan)
    if trainer.is_global_zero:
        log.info("%s pretraining done: %d epochs, %d steps; best %s %s (%s); export %s", method, result.epochs,
                 result.global_step, MONITOR, result.best_val_loss, best, export)
    return result
