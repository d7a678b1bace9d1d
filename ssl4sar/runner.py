"""One training run, shared by fine-tuning (:func:`ssl4sar.finetune.finetune`) and pretraining
(:func:`ssl4sar.pretrain.common.pretrain`).

:func:`run_training` does what every run does, in this order: check the data folder and the run folder, plan the
hardware (:func:`ssl4sar.training.plan_training`), seed, build the datamodule and the LightningModule, then either
initialise the weights or inspect ``last.ckpt`` for a resume (learning-rate overrides applied, model changes
refused, non-finite weights refused; :func:`ssl4sar.training.inspect_resume_checkpoint`), build the trainer with
one checkpoint callback per monitored metric, ``last.ckpt`` and the :class:`~ssl4sar.training.DivergenceGuard`,
write ``config.yaml``, fit, and export the network of the best checkpoint of the first monitor in the project's
format (the final weights when no validation ran). What differs between the entry points — module and datamodule,
monitored metrics, extra callbacks, file names — is stated in a :class:`RunSpec`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import yaml
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from ssl4sar.config import check_seed
from ssl4sar.domain import is_undefined_mde
from ssl4sar.errors import DataError, OutOfMemory, SettingError, is_out_of_memory
from ssl4sar.io import disk_full_raises, ensure_writable_dir, write_text_atomic
from ssl4sar.models.initialise import export_lightning_checkpoint
from ssl4sar.training import (
    CHECKPOINT_DIR,
    LAST_CHECKPOINT,
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
    remove_checkpoint_leftovers,
    scalar_metrics,
    seed_everything,
)

__all__ = ["RunSpec", "TrainingRun", "run_training", "training_budget"]

log = logging.getLogger(__name__)

#: what to do when the disk of a run folder is full (:class:`~ssl4sar.errors.DiskFull`)
_DISK_FULL_HINT = ("free some space, then run the same command: it resumes from checkpoints/last.ckpt, which a "
                   "failed write leaves whole")


@dataclass(frozen=True)
class RunSpec:
    """What one kind of training run does differently from the others.

    Attributes:
        section: the preset section with the run's hardware, batch, epochs and ``imagenet_weights``
            (``"finetune"`` or ``"pretrain"``); also the section whose settings a resume may change.
        label: the run's name in log lines (``"fine-tuning"``, ``"optsimmim pretraining"``).
        data_hint: how to get a valid data folder (shown when ``data_dir`` does not exist).
        samples_per_epoch: dotted preset key of the number of samples per epoch (``"data.samples_per_epoch"``).
        monitors: checkpoint monitors ``(metric, "min" | "max")``; the first one selects the exported network.
        export_name: file name of the exported network inside the run folder.
        make_datamodule: ``(data_dir, cfg, seed) -> LightningDataModule``.
        make_module: ``(cfg, init_choice, seed) -> LightningModule`` with attribute ``model`` and method
            ``initialise(init, imagenet_weights, trusted=…) -> str``.
        default_init: the initialisation when the caller gives none.
        record: extra entries written first into ``config.yaml``'s ``run`` section and the export's metadata
            (pretraining: ``{"method": …}``).
        callbacks: extra Lightning callbacks of this kind of run (after the checkpoint callbacks and the
            divergence guard, before the caller's).
        check_val_every_n_epoch: validation interval (epochs).
    """

    section: str
    label: str
    data_hint: str
    samples_per_epoch: str
    monitors: tuple[tuple[str, str], ...]
    export_name: str
    make_datamodule: Callable[[Path, dict[str, Any], int], Any]
    make_module: Callable[[dict[str, Any], str, int], pl.LightningModule]
    default_init: str
    record: Mapping[str, Any] = field(default_factory=dict)
    callbacks: Sequence[Callback] = ()
    check_val_every_n_epoch: int = 1


@dataclass
class TrainingRun:
    """What :func:`run_training` produced (paths are ``None`` when the file was not written)."""

    out_dir: Path
    plan: TrainingPlan
    seed: int
    init: str
    resumed_from: Path | None
    module: pl.LightningModule
    trainer: pl.Trainer
    #: one per monitor of the :class:`RunSpec`, in its order
    best_checkpoints: list[ModelCheckpoint]
    last_checkpoint: Path | None
    export: Path | None
    metrics_csv: Path
    final_metrics: dict[str, float] = field(default_factory=dict)

    def best(self, metric: str) -> tuple[Path | None, float | None]:
        """The best checkpoint of monitored ``metric`` and its score (``None`` when none was written)."""
        for cb in self.best_checkpoints:
            if cb.monitor == metric:
                score = cb.best_model_score
                return existing_file(cb.best_model_path), float(score) if score is not None else None
        raise KeyError(f"{metric!r} is not a monitored metric of this run")

    @property
    def epochs(self) -> int:
        return int(self.trainer.current_epoch)

    @property
    def global_step(self) -> int:
        return int(self.trainer.global_step)


def _preset_value(cfg: Mapping[str, Any], dotted: str) -> Any:
    value: Any = cfg
    for key in dotted.split("."):
        value = value[key]
    return value


def run_training(spec: RunSpec, cfg: dict[str, Any], data_dir: str | Path, out_dir: str | Path,
                 init: str | Path | None = None, seed: int | None = None, devices: int | str | Sequence[int] = "auto",
                 resume: bool = True, max_steps: int | None = None, *, num_nodes: int | None = None,
                 max_epochs: int | None = None, precision: str | None = None, accelerator: str = "auto",
                 imagenet_weights: str | Path | None = None, callbacks: Sequence[Callback] = (),
                 progress: bool = True, trainer_kwargs: Mapping[str, Any] | None = None,
                 trust_checkpoint: bool = False) -> TrainingRun:
    """Train as ``spec`` says on the validated, complete preset dict ``cfg``, writing everything under ``out_dir``.

    The other arguments are those of :func:`ssl4sar.finetune.finetune` (documented there).

    Raises:
        SettingError: a seed, ``max_epochs`` or ``max_steps`` outside its range (:func:`training_budget`), before
            anything is read or written.
        DataError: missing ``data_dir``, an unwritable ``out_dir``, a refused / non-finite / mismatched checkpoint.
        ValueError: a preset that gives no optimiser step per epoch.
        TrainingDiverged: the loss or the weights became NaN / infinite; names the last good checkpoint.
        OutOfMemory: a step did not fit in the device's memory; names the device and a batch per device to try.
    """
    section = cfg[spec.section]
    seed = check_seed(cfg["seed"] if seed is None else seed)
    max_epochs, max_steps = training_budget(section["max_epochs"] if max_epochs is None else max_epochs, max_steps)
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(data_dir, "data folder not found", spec.data_hint)
    out = ensure_writable_dir(out_dir, "run folder")
    plan = plan_training(section, devices=devices, num_nodes=num_nodes, precision=precision, accelerator=accelerator)
    log.info("%s plan: %s device(s)%s × %s node(s), %s, batch %d per device × %d accumulation = global %d, "
             "precision %s", spec.label, plan.devices,
             f" (GPU {', '.join(map(str, plan.gpu_indices))})" if plan.gpu_indices else "", plan.num_nodes,
             plan.accelerator, plan.batch_size_per_device,
             plan.accumulate_grad_batches, plan.global_batch_size, plan.precision)

    seed_everything(seed)
    init_choice = str(init if init is not None else spec.default_init)
    if imagenet_weights is None and section.get("imagenet_weights"):
        imagenet_weights = section["imagenet_weights"]
    datamodule = spec.make_datamodule(data_dir, cfg, seed)
    module = spec.make_module(cfg, init_choice, seed)
    resume_from = find_resume_checkpoint(out) if resume else None
    resume_state = None
    if resume_from is None:
        init_desc = module.initialise(init_choice, imagenet_weights, trusted=trust_checkpoint)
    else:
        resume_state = inspect_resume_checkpoint(resume_from, module.hparams, trusted=trust_checkpoint,
                                                 section=spec.section, init=init)
        # the run's provenance stays the initial weights it started from (its later checkpoints record them too)
        init_desc = resume_state.init if resume_state.init is not None else str(module.hparams["init"])
        module.hparams["init"] = init_desc
        log.info("resuming from %s (initial weights are taken from it)", resume_from)

    samples = int(_preset_value(cfg, spec.samples_per_epoch))
    steps_per_epoch = plan.optimizer_steps_per_epoch(samples)
    if steps_per_epoch < 1:
        raise ValueError(f"{spec.samples_per_epoch} = {samples} gives no optimiser step per epoch with a global "
                         f"batch of {plan.global_batch_size}")
    ckpt_cbs = checkpoint_callbacks(out, spec.monitors)
    trainer = build_trainer(
        plan, out, callbacks=[*ckpt_cbs, DivergenceGuard(out, spec.section), *spec.callbacks, *callbacks],
        max_epochs=max_epochs, max_steps=max_steps, seed=seed, check_val_every_n_epoch=spec.check_val_every_n_epoch,
        log_every_n_steps=min(50, steps_per_epoch), progress=progress, resume=resume_state,
        **dict(trainer_kwargs or {}))
    if trainer.is_global_zero:
        out.mkdir(parents=True, exist_ok=True)
        remove_checkpoint_leftovers(out)
        record = {**cfg, "run": {**spec.record, "seed": seed, "init": init_desc, "devices": plan.devices,
                                 "num_nodes": plan.num_nodes, "precision": plan.precision,
                                 "accumulate_grad_batches": plan.accumulate_grad_batches,
                                 "data_dir": str(data_dir), "max_epochs": max_epochs, "max_steps": max_steps,
                                 "resumed_from": str(resume_from) if resume_from else None}}
        write_text_atomic(out / "config.yaml", yaml.safe_dump(record, sort_keys=False))
    if resume_state is not None and max_steps is None and max_epochs <= resume_state.epoch + 1:
        log.warning("%s has already trained %d epoch(s) and max_epochs is %d: nothing left to train (raise it with "
                    "--max-epochs)", resume_from, resume_state.epoch + 1, max_epochs)
    def full_disk() -> Any:  # a write that finds no space: one line naming the run folder
        return disk_full_raises(out, f"the {spec.label} run's checkpoints and records", _DISK_FULL_HINT)

    try:
        with full_disk():
            fit(trainer, module, datamodule, resume_state)
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
        raise OutOfMemory(plan.out_of_memory_message(spec.label, spec.section, out)) from exc

    best_cbs, last_cb = ckpt_cbs[:-1], ckpt_cbs[-1]
    with full_disk():
        export = _export_best(spec, cfg, out, best_cbs[0], module, trainer, seed, init_desc) \
            if trainer.is_global_zero else None
    result = TrainingRun(
        out_dir=out, plan=plan, seed=seed, init=init_desc, resumed_from=resume_from, module=module, trainer=trainer,
        best_checkpoints=best_cbs,
        last_checkpoint=existing_file(last_cb.best_model_path) or existing_file(out / CHECKPOINT_DIR / LAST_CHECKPOINT),
        export=export, metrics_csv=metrics_csv_path(out), final_metrics=scalar_metrics(trainer.callback_metrics))
    if trainer.is_global_zero:
        bests = "; ".join(f"best {cb.monitor} {describe_best_score(str(cb.monitor), result.best(str(cb.monitor))[1])}"
                          f" ({existing_file(cb.best_model_path)})" for cb in best_cbs)
        log.info("%s done: %d epochs, %d steps; %s; export %s", spec.label, result.epochs, result.global_step, bests,
                 export)
    return result


def training_budget(max_epochs: int, max_steps: int | None) -> tuple[int, int | None]:
    """The epoch and optimiser-step limits of a run, checked before anything is read or written, as
    ``(max_epochs, max_steps)`` with ``max_steps`` None for no step limit (Lightning's -1 is taken as None).

    ``max_epochs`` -1 means no epoch limit, allowed only with a step limit: alone, the run would never end. 0 epochs
    or 0 steps train nothing (the run exports its initial weights, with a warning). Raises
    :class:`~ssl4sar.errors.SettingError` naming the value otherwise.
    """
    if max_steps is not None and max_steps < -1:
        raise SettingError(f"max_steps must be 0 or more (-1 or none: no step limit), got {max_steps}")
    steps = None if max_steps is None or max_steps == -1 else int(max_steps)
    if max_epochs < -1:
        raise SettingError(f"max_epochs must be 0 or more (-1: no epoch limit, with max_steps), got {max_epochs}")
    if max_epochs == -1 and steps is None:
        raise SettingError("max_epochs -1 (no epoch limit) needs a max_steps limit, else the run never ends")
    return int(max_epochs), steps


def describe_best_score(metric: str, score: float | None) -> str:
    """A monitored metric's best score for the log: 6 significant digits, and words where the number is no
    measurement (an MDE monitor holding :data:`~ssl4sar.domain.MDE_UNDEFINED_M` found no front at all)."""
    if score is None:
        return "none (no validation ran)"
    if metric.endswith("mde") and is_undefined_mde(score):
        return "undefined (no front found in validation)"
    return f"{score:.6g}"


def _export_best(spec: RunSpec, cfg: Mapping[str, Any], out: Path, cb: ModelCheckpoint, module: pl.LightningModule,
                 trainer: pl.Trainer, seed: int, init_desc: str) -> Path:
    """Export the network of ``cb``'s best checkpoint (or the final weights when no validation ran)."""
    metric, mode = spec.monitors[0]
    target = out / spec.export_name
    meta: dict[str, Any] = {**spec.record, "selected_by": f"{metric} ({mode})", "seed": seed, "init": init_desc,
                            "preset": cfg.get("name")}
    best = existing_file(cb.best_model_path)
    if best is not None:
        score = cb.best_model_score
        meta[metric] = float(score) if score is not None else None
        return export_lightning_checkpoint(best, target, meta)
    from ssl4sar.models.convert import save_checkpoint

    log.warning("no validation ran: exporting the final weights to %s", target)
    meta["selected_by"] = "final weights (no validation ran)"
    return save_checkpoint(target, module.model,
                           meta={**meta, "epoch": trainer.current_epoch, "global_step": trainer.global_step})
