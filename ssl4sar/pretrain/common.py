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

import yaml
from lightning.pytorch.callbacks import Callback, EarlyStopping, LearningRateMonitor

from ssl4sar.config import Preset, as_preset
from ssl4sar.errors import DataError
from ssl4sar.io import ensure_writable_dir, write_text_atomic
from ssl4sar.models.initialise import export_lightning_checkpoint
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

    cls = module_class(method)
    cfg = as_preset(cfg).to_dict()  # validated and complete: the values below all come from the preset
    pre = cfg["pretrain"]
    seed = int(cfg["seed"] if seed is None else seed)
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(data_dir, "data folder not found",
                        "pass the SSL4SAR-layout root (sar/train, sar/val, optical/); build it with "
                        "`ssl4sar data construct` or synthetic data with `ssl4sar data synth`")
    out = ensure_writable_dir(out_dir, "run folder")
    plan = plan_training(pre, devices=devices, num_nodes=num_nodes, precision=precision, accelerator=accelerator)
    max_epochs = int(pre["max_epochs"] if max_epochs is None else max_epochs)
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
    patience = pre[method].get("early_stopping_patience")
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
