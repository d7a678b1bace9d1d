"""The pretraining entry point (``ssl4sar pretrain``): :func:`pretrain` runs one of the two self-supervised tasks
(:mod:`ssl4sar.pretrain.optsimmim`, :mod:`ssl4sar.pretrain.opttranslator`) with Lightning, writing checkpoints, logs,
the run's ``config.yaml`` and the exported best network under ``out_dir``. The LightningModule base they share and
its settings live in :mod:`ssl4sar.pretrain.module` (re-exported here).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import Callback, EarlyStopping, LearningRateMonitor

from ssl4sar.config import Preset, as_preset
from ssl4sar.pretrain.module import (
    METHODS,
    MONITOR,
    N_OPTICAL,
    PretrainModule,
    mean_predictor_val_loss,
    method_settings,
    optical_band_means,
)
from ssl4sar.pretrain.optsimmim import OptSimMIM
from ssl4sar.pretrain.opttranslator import OptTranslator
from ssl4sar.runner import RunSpec, run_training
from ssl4sar.training import TrainingPlan

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
    "default_init",
]

log = logging.getLogger(__name__)

#: file name of the exported best network (our checkpoint format) inside ``out_dir``
BEST_EXPORT = "pretrained.pt"


def module_class(method: str) -> type[PretrainModule]:
    """The LightningModule class of ``method`` (``optsimmim`` or ``opttranslator``)."""
    if method == "optsimmim":
        return OptSimMIM
    if method == "opttranslator":
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


def default_init(cfg: Mapping[str, Any] | Preset) -> str:
    """Initialisation when none is given: ``pretrain.init`` of the preset, else ``finetune.init`` when that is
    ``scratch`` or ``imagenet`` (the paper pretrains from ImageNet weights, spec §5.1), else ``scratch``."""
    preset = as_preset(cfg)
    if preset.pretrain.init:
        return preset.pretrain.init
    ft_init = preset.finetune.init
    return ft_init if ft_init in ("scratch", "imagenet") else "scratch"


def pretrain(method: str, cfg: Mapping[str, Any] | str, data_dir: str | Path, out_dir: str | Path,
             init: str | Path | None = None, seed: int | None = None, devices: int | str | Sequence[int] = "auto",
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
        max_steps: stop after this many optimiser steps (``None`` or -1: no step limit); max_epochs: overrides
            ``pretrain.max_epochs`` (-1: no epoch limit, with ``max_steps``).
        imagenet_weights: path of ``swinv2_tiny_patch4_window16_256.pth`` for ``init="imagenet"``.
        callbacks, progress, trainer_kwargs: extra Lightning callbacks / progress bar / Trainer arguments.
        trust_checkpoint: load ``init`` / resume checkpoints with the full unpickler (runs code from the file).

    Raises ``SettingError`` (a seed, ``max_epochs`` or ``max_steps`` outside its range, before anything is read or
    written), ``DataError`` (bad data, unwritable ``out_dir``, refused or non-finite checkpoint) and
    ``TrainingDiverged`` (non-finite loss or weights; names the last good checkpoint).
    """
    cls = module_class(method)
    cfg = as_preset(cfg).to_dict()  # validated and complete: the values below all come from the preset
    extra: list[Callback] = [LearningRateMonitor(logging_interval="epoch")]
    patience = cfg["pretrain"][method].get("early_stopping_patience")
    if patience is not None:
        extra.append(EarlyStopping(monitor=MONITOR, mode="min", patience=int(patience), strict=False))
    spec = RunSpec(
        section="pretrain", label=f"{method} pretraining", samples_per_epoch="pretrain.samples_per_epoch",
        monitors=((MONITOR, "min"),), export_name=BEST_EXPORT, make_datamodule=_pretrain_datamodule,
        data_hint="pass the SSL4SAR-layout root (sar/train, sar/val, optical/); build it with "
                  "`ssl4sar data construct` or synthetic data with `ssl4sar data synth`",
        make_module=lambda c, init_choice, run_seed: cls.from_config(c, init=init_choice, seed=run_seed),
        default_init=default_init(cfg), record={"method": method}, callbacks=extra)
    trained = run_training(spec, cfg, data_dir, out_dir, init=init, seed=seed, devices=devices, resume=resume,
                           max_steps=max_steps, num_nodes=num_nodes, max_epochs=max_epochs, precision=precision,
                           accelerator=accelerator, imagenet_weights=imagenet_weights, callbacks=callbacks,
                           progress=progress, trainer_kwargs=trainer_kwargs, trust_checkpoint=trust_checkpoint)
    best, best_loss = trained.best(MONITOR)
    return PretrainResult(
        method=method, out_dir=trained.out_dir, best_checkpoint=best, last_checkpoint=trained.last_checkpoint,
        export=trained.export, metrics_csv=trained.metrics_csv, best_val_loss=best_loss,
        final_metrics=trained.final_metrics, epochs=trained.epochs, global_step=trained.global_step,
        resumed_from=trained.resumed_from, init=trained.init, plan=trained.plan)


def _pretrain_datamodule(data_dir: Path, cfg: dict[str, Any], seed: int) -> Any:
    from ssl4sar.data.datamodules import PretrainDataModule

    return PretrainDataModule(data_dir, cfg, seed=seed)
