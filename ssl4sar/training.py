"""Shared training engine: seeding, trainer construction from a preset section, checkpoints, loggers, resume.

Why one module of ~730 lines: it is the one engine that both fine-tuning and pretraining build a Lightning run
with, and its sections (seeding, devices, loggers, checkpoints, resume and divergence; 25 to 150
lines each, about 50 of them this docstring) are used together by :mod:`ssl4sar.runner` and share the
:class:`TrainingPlan` and the run-folder layout; split into five modules, every caller would import all five.

Used by fine-tuning (:mod:`ssl4sar.finetune`) and by the pretraining tasks. Everything is plain Lightning; this
module only turns a preset section (``finetune`` or ``pretrain``: ``global_batch_size``, ``batch_size_per_device``,
``precision``, ``max_epochs``) plus the command-line choices (devices, nodes, precision) into Trainer arguments.

Global batch and gradient accumulation
    The presets state the *global* batch (the paper: 128 for fine-tuning = 16 per GPU × 4 GPUs × 2 accumulation
    steps). ``accumulate_grad_batches = global_batch_size / (batch_size_per_device × devices × num_nodes)`` must be
    a whole number ≥ 1, otherwise :func:`accumulation_steps` raises ``ValueError`` with the numbers, so that the
    optimiser always sees the published batch size whatever the hardware.

Devices
    ``devices="auto"`` means: the ``LOCAL_WORLD_SIZE`` of a ``torchrun`` launch, else every visible CUDA GPU, else
    one CPU process. A count ``n`` means the first ``n`` GPUs; a list of GPU indices (Lightning's convention, e.g.
    ``[1]`` for ``cuda:1``) names them, and the precision is then checked on those GPUs. ``num_nodes=None`` means:
    ``WORLD_SIZE / LOCAL_WORLD_SIZE`` under ``torchrun``, ``SLURM_NNODES`` inside a SLURM job, else 1. More than one
    process in all selects Lightning's ``"ddp"`` strategy (NCCL on GPUs, gloo on CPU).

Precision
    ``"32-true"`` (the paper) or ``"bf16-mixed"`` (autocast to bfloat16). ``bf16-mixed`` is used where the hardware
    computes bf16 natively: GPUs of compute capability 8.0 or later (A100, L4, H100, ...) and CPUs with AVX512-BF16 /
    AMX (a paper-network step about 2x faster, see ``make bench``). Elsewhere it falls back to ``32-true`` with a
    warning: emulated bf16 is several times slower on AVX2 CPUs, and on a T4 (Colab's free tier) or a V100 it has no
    tensor cores or cuDNN convolutions, although ``torch.cuda.is_bf16_supported()`` answers True there.

Reproducibility
    :func:`seed_everything` seeds Python, NumPy and torch (and DataLoader workers). :class:`StepSeed` re-seeds
    torch's generators at the start of every training batch from ``(seed, epoch, batch index, rank)``, so dropout
    and any other torch randomness of a training step depend only on those numbers and not on what ran before —
    a run interrupted at an epoch boundary and resumed from ``last.ckpt`` ends with the same weights as an
    uninterrupted run (bit-identical on CPU). The data samplers of :mod:`ssl4sar.data.datasets` are pure functions of
    ``(seed, epoch, index)`` already.

Output folder layout (``out_dir``)::

    checkpoints/last.ckpt            written after every validation (resume point)
    checkpoints/best-*.ckpt          one file per monitored metric (see :func:`checkpoint_callbacks`)
    logs/metrics.csv, hparams.yaml   CSV log (always; a resumed run appends to it)
    logs/tensorboard/                TensorBoard events (when ``tensorboard`` or ``tensorboardX`` is installed)

Resume, divergence, trust
    :func:`inspect_resume_checkpoint` reads the resume checkpoint safely (``weights_only``; ``trusted`` allows
    arbitrary objects), refuses non-finite weights and compares its hyper-parameters with the new run's: changed
    optimiser settings (``lr``, ``momentum``, ``weight_decay``, plateau settings) are applied to the restored
    optimiser, changed model settings are refused with a message. :class:`DivergenceGuard` stops training at the
    step whose loss (or whose updated weights) is NaN or infinite and never lets a checkpoint of such a state be
    written; the :class:`~ssl4sar.errors.TrainingDiverged` error names the last good checkpoint. A run folder
    copied elsewhere keeps its best-checkpoint tracking (the callbacks re-base the recorded paths).
"""

from __future__ import annotations

import csv
import importlib.util
import io
import logging
import math
import operator
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, Logger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from ssl4sar.config import TRAINING_PRECISIONS as PRECISIONS  # re-exported: its home is ssl4sar.config
from ssl4sar.config import paper_preset
from ssl4sar.errors import DataError, TrainingDiverged, device_memory_text
from ssl4sar.io import atomic_leftovers, write_bytes_atomic, write_text_atomic
from ssl4sar.metrics_log import read_metrics_csv  # re-exported: its home is metrics_log

__all__ = [
    "PRECISIONS",
    "TrainingPlan",
    "StepSeed",
    "accumulation_steps",
    "resolve_devices",
    "resolve_num_nodes",
    "plan_training",
    "seed_everything",
    "build_loggers",
    "checkpoint_callbacks",
    "find_resume_checkpoint",
    "AtomicCheckpointIO",
    "remove_checkpoint_leftovers",
    "build_trainer",
    "metrics_csv_path",
    "read_metrics_csv",
    "CHECKPOINT_DIR",
    "LOG_DIR",
    "LAST_CHECKPOINT",
    "single_device_hardware",
    "named_gpus",
    "scalar_metrics",
    "existing_file",
    "ResumeState",
    "inspect_resume_checkpoint",
    "DivergenceGuard",
    "fit",
]

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
LOG_DIR = "logs"
LAST_CHECKPOINT = "last.ckpt"


# --------------------------------------------------------------------------------------------------- seeding
def seed_everything(seed: int) -> int:
    """Seed Python, NumPy and torch (all devices) and make DataLoader workers derive their seeds from it."""
    return pl.seed_everything(int(seed), workers=True, verbose=False)


def _step_seed(seed: int, epoch: int, batch_idx: int, rank: int) -> int:
    state = np.random.SeedSequence([int(seed), int(epoch), int(batch_idx), int(rank), 0x5EED]).generate_state(2)
    return int(state[0]) << 32 | int(state[1])


class StepSeed(Callback):
    """Re-seed torch at the start of every training batch from ``(seed, epoch, batch_idx, global rank)``.

    Makes the randomness of a training step (dropout, random masks) independent of the history of the process,
    which is what exact resumption needs (Lightning does not store the generators' states in checkpoints).
    Each micro-batch of an accumulation step and each DDP rank gets its own stream.
    """

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        torch.manual_seed(_step_seed(self.seed, trainer.current_epoch, batch_idx, trainer.global_rank))


# --------------------------------------------------------------------------------------------------- devices
def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None or not value.strip():
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _cuda_requested(accelerator: str) -> bool:
    if accelerator in ("gpu", "cuda"):
        return True
    return accelerator == "auto" and torch.cuda.is_available()


def resolve_devices(devices: int | str | None = "auto", accelerator: str = "auto") -> int:
    """Number of processes per node: an int ≥ 1, or ``"auto"`` (see the module docstring)."""
    if devices is None or (isinstance(devices, str) and devices.strip().lower() == "auto"):
        local = _env_int("LOCAL_WORLD_SIZE")
        if local:
            return local
        if _cuda_requested(accelerator):
            return max(1, torch.cuda.device_count())
        return 1
    try:
        n = int(devices)
    except (TypeError, ValueError):
        raise ValueError(f"devices must be a positive integer or 'auto', got {devices!r}") from None
    if n < 1:
        raise ValueError(f"devices must be a positive integer or 'auto', got {devices!r}")
    return n


def named_gpus(devices: int | str | Sequence[int] | None, accelerator: str = "auto") -> tuple[int, ...] | None:
    """The CUDA GPUs that ``devices`` names by index (Lightning's ``devices=[1, 3]``), checked against the GPUs torch
    sees; ``None`` where ``devices`` is a count or ``"auto"`` (the first GPUs). Raises ``ValueError`` naming the
    index that is not an integer, repeated or absent, and for indices on a run without CUDA."""
    if devices is None or isinstance(devices, (str, int)):
        return None
    indices = list(devices)
    if not _cuda_requested(accelerator):
        raise ValueError(f"devices {indices!r} are GPU indices, but the run is on the CPU (accelerator "
                         f"{accelerator!r}, CUDA available: {torch.cuda.is_available()}): give a number of processes")
    if not indices:
        raise ValueError("devices: a list of GPU indices needs at least one index")
    try:
        gpus = tuple(operator.index(i) for i in indices)
    except TypeError:
        raise ValueError(f"devices: GPU indices must be integers, got {indices!r}") from None
    from ssl4sar.models.fast import resolve_device

    for i in gpus:
        if gpus.count(i) > 1:
            raise ValueError(f"devices {list(gpus)} names GPU {i} twice")
        if i < 0:
            raise ValueError(f"devices: GPU {i} is not an index (0 or more)")
        resolve_device(torch.device("cuda", i))  # the one check that torch sees that GPU
    return gpus


def single_device_hardware(device: str = "auto") -> dict[str, Any]:
    """Keyword arguments (``accelerator``, ``devices``) of ``finetune``/``pretrain`` that train on one device named as
    the book's chapters name it: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (``devices=[N]``: that GPU, whose
    bf16 support then decides the precision). Multi-device runs go through the CLI (``--devices``)."""
    name = str(device).strip().lower()
    if name == "cpu":
        return {"accelerator": "cpu", "devices": 1}
    if name == "auto":
        return {"accelerator": "auto", "devices": 1}
    if name == "cuda" or name.startswith("cuda:"):
        index = name.partition(":")[2]
        if index and not index.isdigit():
            raise ValueError(f"device {device!r}: expected 'cuda' or 'cuda:N' with an integer N")
        return {"accelerator": "gpu", "devices": [int(index)] if index else 1}
    raise ValueError(f"unknown device {device!r}: choose 'auto', 'cpu', 'cuda' or 'cuda:N'")


def resolve_num_nodes(num_nodes: int | None = None) -> int:
    """Number of nodes: the given int, else derived from a torchrun or SLURM launch, else 1."""
    if num_nodes is not None:
        n = int(num_nodes)
        if n < 1:
            raise ValueError(f"num_nodes must be a positive integer, got {num_nodes!r}")
        return n
    world, local = _env_int("WORLD_SIZE"), _env_int("LOCAL_WORLD_SIZE")
    if world and local:
        return max(1, world // local)
    return _env_int("SLURM_NNODES") or 1


def accumulation_steps(global_batch_size: int, batch_size_per_device: int, devices: int = 1,
                       num_nodes: int = 1) -> int:
    """Gradient-accumulation steps that make ``batch_size_per_device × devices × num_nodes × steps`` equal the
    global batch. Raises ``ValueError`` when it does not divide (or is smaller than one step's batch)."""
    g, b, d, n = int(global_batch_size), int(batch_size_per_device), int(devices), int(num_nodes)
    if min(g, b, d, n) < 1:
        raise ValueError(f"batch sizes, devices and nodes must be positive (global batch {g}, per device {b}, "
                         f"devices {d}, nodes {n})")
    per_step = b * d * n
    if g % per_step:
        raise ValueError(f"global batch {g} is not a multiple of batch_size_per_device × devices × nodes = "
                         f"{b} × {d} × {n} = {per_step}: choose devices / batch_size_per_device so that it divides "
                         f"(e.g. --set <section>.batch_size_per_device=...)")
    return g // per_step


@dataclass(frozen=True)
class TrainingPlan:
    """Trainer settings derived from a preset section and the hardware choice."""

    accelerator: str
    devices: int
    num_nodes: int
    strategy: str
    precision: str
    accumulate_grad_batches: int
    batch_size_per_device: int
    global_batch_size: int
    gpu_indices: tuple[int, ...] | None = None
    """The GPUs of each node, where the run names them (``devices=[1]``); ``None``: the first ``devices`` ones."""

    @property
    def world_size(self) -> int:
        return self.devices * self.num_nodes

    @property
    def on_cuda(self) -> bool:
        return _cuda_requested(self.accelerator)

    def optimizer_steps_per_epoch(self, samples_per_epoch: int) -> int:
        """Optimiser steps of one epoch of ``samples_per_epoch`` (loaders drop the last incomplete batch)."""
        batches = int(samples_per_epoch) // self.world_size // self.batch_size_per_device
        return batches // self.accumulate_grad_batches

    def smaller_batch_per_device(self) -> int | None:
        """The largest batch per device below this plan's that keeps its global batch (by accumulating more steps),
        or ``None`` at one sample per device."""
        per_process = self.global_batch_size // self.world_size
        return next((b for b in range(self.batch_size_per_device - 1, 0, -1) if per_process % b == 0), None)

    def out_of_memory_message(self, label: str, section: str, out_dir: str | Path) -> str:
        """What to tell the user when a step of this plan did not fit in memory, and what to change."""
        where = device_memory_text("cuda" if self.on_cuda else "cpu")
        message = (f"{label} ran out of memory on {where} with {self.batch_size_per_device} samples per device "
                   f"({self.precision}): ")
        smaller = self.smaller_batch_per_device()
        if smaller is not None:
            steps = accumulation_steps(self.global_batch_size, smaller, self.devices, self.num_nodes)
            message += (f"lower the batch per device, e.g. --set {section}.batch_size_per_device={smaller}: the global "
                        f"batch stays {self.global_batch_size} (gradient accumulation over {steps} steps), so the "
                        "recipe is unchanged")
        else:
            message += "one sample per device does not fit: use a device with more memory"
            if self.precision == "32-true" and self.on_cuda:
                message += ", or bf16-mixed on a GPU that computes bf16 natively"
        return message + f". The checkpoints written so far stay in {out_dir}"

    def trainer_kwargs(self) -> dict[str, Any]:
        devices = list(self.gpu_indices) if self.gpu_indices is not None else self.devices
        return {"accelerator": self.accelerator, "devices": devices, "num_nodes": self.num_nodes,
                "strategy": self.strategy, "precision": self.precision,
                "accumulate_grad_batches": self.accumulate_grad_batches}


def _precision_for_hardware(accelerator: str, gpus: Sequence[int]) -> str:
    """``bf16-mixed`` where every device of the run computes bf16 natively, else ``32-true`` with a warning: emulated
    bf16 is slower than float32 (several times on AVX2 CPUs; T4 / V100 GPUs lack bf16 tensor cores and cuDNN bf16
    convolutions). ``gpus``: the CUDA indices the run trains on."""
    from ssl4sar.models.fast import cpu_has_native_bf16, cuda_has_native_bf16

    if _cuda_requested(accelerator):
        emulated = [i for i in gpus if not cuda_has_native_bf16(i)]
        if not emulated:
            return "bf16-mixed"
        gpu = torch.cuda.get_device_name(emulated[0])
        major, minor = torch.cuda.get_device_capability(emulated[0])
        log.warning("precision bf16-mixed needs a GPU with native bf16 (compute capability 8.0 or later: A100, L4, "
                    "H100, ...); this run's %s has %d.%d and would emulate it, slower than float32: using 32-true",
                    gpu, major, minor)
        return "32-true"
    if cpu_has_native_bf16():
        return "bf16-mixed"
    log.warning("precision bf16-mixed needs a GPU or a CPU with native bf16 (compute capability 8.0 or later; "
                "AVX512-BF16 / AMX); this run is on %s without it: using 32-true",
                accelerator if accelerator != "auto" else "CPU")
    return "32-true"


def plan_training(section: Mapping[str, Any], devices: int | str | Sequence[int] | None = "auto",
                  num_nodes: int | None = None, precision: str | None = None, accelerator: str = "auto"
                  ) -> TrainingPlan:
    """Derive a :class:`TrainingPlan` from a preset section (``finetune`` / ``pretrain``).

    Args:
        section: needs ``global_batch_size`` and ``batch_size_per_device``; ``precision`` is optional.
        devices: processes per node (int or ``"auto"``), or the GPU indices of each node (one process each).
        num_nodes: nodes (``None`` = from the launch environment, else 1).
        precision: overrides the section's ``precision`` (one of :data:`PRECISIONS`).
        accelerator: ``"auto"``, ``"cpu"`` or ``"gpu"``/``"cuda"``.
    """
    accelerator = str(accelerator).lower()
    if accelerator not in ("auto", "cpu", "gpu", "cuda", "mps"):
        raise ValueError(f"accelerator must be auto, cpu, gpu or mps, got {accelerator!r}")
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ValueError(f"accelerator {accelerator!r} requested but no CUDA device is available")
    gpus = named_gpus(devices, accelerator)
    n_dev = len(gpus) if gpus is not None else resolve_devices(devices, accelerator)
    n_nodes = resolve_num_nodes(num_nodes)
    try:
        gbs = int(section["global_batch_size"])
        bpd = int(section["batch_size_per_device"])
    except KeyError as exc:
        raise ValueError(f"preset section lacks {exc.args[0]!r} (needed for the batch arithmetic)") from None
    accum = accumulation_steps(gbs, bpd, n_dev, n_nodes)
    prec = str(precision if precision is not None else section.get("precision", paper_preset().finetune.precision))
    if prec not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {prec!r}")
    if prec == "bf16-mixed":
        prec = _precision_for_hardware(accelerator, gpus if gpus is not None else range(n_dev))
    strategy = "ddp" if n_dev * n_nodes > 1 else "auto"
    return TrainingPlan(accelerator=accelerator, devices=n_dev, num_nodes=n_nodes, strategy=strategy,
                        precision=prec, accumulate_grad_batches=accum, batch_size_per_device=bpd,
                        global_batch_size=gbs, gpu_indices=gpus)


# --------------------------------------------------------------------------------------------------- logging
class _AppendingWriter(ExperimentWriter):
    """Lightning's CSV writer, except that on resume it keeps the rows of the epochs the checkpoint holds
    (Lightning deletes ``metrics.csv`` when the folder exists) and drops only rows logged after it."""

    def __init__(self, log_dir: str, keep_until: tuple[int, int] | None) -> None:
        self._keep_until = keep_until
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        if self._keep_until is None or not os.path.isfile(self.metrics_file_path):
            super()._check_log_dir_exists()
            return
        epoch, step = self._keep_until
        with open(self.metrics_file_path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            keys = list(reader.fieldnames or [])
        kept = [r for r in rows if _logged_before(r, epoch, step)]
        if len(kept) < len(rows):
            log.info("%s: dropping %d row(s) logged after the resume checkpoint", self.metrics_file_path,
                     len(rows) - len(kept))
            buf = io.StringIO()
            writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
            writer.writeheader()
            writer.writerows(kept)
            write_text_atomic(self.metrics_file_path, buf.getvalue())
        self.metrics_keys = sorted(keys)


def _logged_before(row: Mapping[str, str], epoch: int, step: int) -> bool:
    def number(key: str) -> float | None:
        try:
            value = float(row.get(key) or "nan")
        except ValueError:
            return None
        return None if math.isnan(value) else value

    e, s = number("epoch"), number("step")
    if e is not None and e < epoch:
        return True
    return (e is None or e == epoch) and (s is None or s <= step)


class _ResumableCSVLogger(CSVLogger):
    """:class:`CSVLogger` that appends to the metrics of the run it resumes (``keep_until``: (epoch, step))."""

    def __init__(self, *args: Any, keep_until: tuple[int, int] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._keep_until = keep_until

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is not None:
            return self._experiment
        self._fs.makedirs(self.root_dir, exist_ok=True)
        self._experiment = _AppendingWriter(self.log_dir, self._keep_until)
        return self._experiment


def build_loggers(out_dir: str | Path, tensorboard: bool | None = None,
                  resume: ResumeState | None = None) -> list[Logger]:
    """CSV logger at ``out_dir/logs`` (always) and a TensorBoard logger at ``out_dir/logs/tensorboard`` when
    ``tensorboard`` (default: whenever ``tensorboard`` or ``tensorboardX`` is installed). With ``resume`` the
    CSV log keeps the rows up to the resume checkpoint and appends the new ones."""
    out = Path(out_dir)
    keep = (resume.epoch, resume.global_step) if resume is not None else None
    loggers: list[Logger] = [_ResumableCSVLogger(save_dir=str(out), name=LOG_DIR, version="", keep_until=keep)]
    have_tb = (importlib.util.find_spec("tensorboard") is not None
               or importlib.util.find_spec("tensorboardX") is not None)
    if tensorboard is None:
        tensorboard = have_tb
    if tensorboard:
        if not have_tb:
            raise ValueError("TensorBoard logging requested but neither tensorboard nor tensorboardX is installed")
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(save_dir=str(out / LOG_DIR), name="tensorboard", version="",
                                         default_hp_metric=False))
    return loggers


def metrics_csv_path(out_dir: str | Path) -> Path:
    """Where :func:`build_loggers`' CSV logger writes its metrics."""
    return Path(out_dir) / LOG_DIR / "metrics.csv"


# --------------------------------------------------------------------------------------------------- checkpoints
def _slug(metric: str) -> str:
    return metric.replace("/", "-").replace("_", "-")


class _RelocatableCheckpoint(ModelCheckpoint):
    """:class:`ModelCheckpoint` that keeps its best-checkpoint record when the run folder was moved or copied.

    Lightning forgets the best score when the recorded ``dirpath`` differs from the current one (and keeps the old
    ``best_model_path``); here the recorded paths are re-based onto the current folder first.
    """

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        old = state_dict.get("dirpath")
        if old and self.dirpath and os.path.normpath(old) != os.path.normpath(self.dirpath):
            def rebase(p: Any) -> Any:
                if not isinstance(p, str) or not p:
                    return p
                moved = Path(self.dirpath) / Path(p).name  # type: ignore[arg-type]
                return str(moved) if Path(p).parent == Path(old) else p

            log.info("run folder moved: re-basing the checkpoint records from %s to %s", old, self.dirpath)
            state_dict = {**state_dict, "dirpath": self.dirpath,
                          "best_model_path": rebase(state_dict.get("best_model_path")),
                          "kth_best_model_path": rebase(state_dict.get("kth_best_model_path")),
                          "last_model_path": rebase(state_dict.get("last_model_path")),
                          "best_k_models": {rebase(k): v for k, v in (state_dict.get("best_k_models") or {}).items()}}
        super().load_state_dict(state_dict)


def checkpoint_callbacks(out_dir: str | Path, monitors: Sequence[tuple[str, str]],
                         save_last: bool = True) -> list[ModelCheckpoint]:
    """One :class:`ModelCheckpoint` per ``(metric, mode)``, each keeping the single best file
    ``checkpoints/best-<metric>-e<epoch>-s<step>.ckpt``, followed (``save_last``) by one writing
    ``checkpoints/last.ckpt`` at the end of every training epoch.

    ``last.ckpt`` has its own callback because Lightning's ``save_last`` only writes it when a best checkpoint was
    written in the same step. It is saved at the end of the training epoch, i.e. after that epoch's validation and
    after the best-checkpoint callbacks have updated their state, so resuming restores all of it.
    """
    dirpath = Path(out_dir) / CHECKPOINT_DIR
    callbacks: list[ModelCheckpoint] = []
    for metric, mode in monitors:
        if mode not in ("min", "max"):
            raise ValueError(f"checkpoint mode for {metric!r} must be 'min' or 'max', got {mode!r}")
        callbacks.append(_RelocatableCheckpoint(
            dirpath=dirpath, monitor=metric, mode=mode, save_top_k=1, save_last=False,
            filename=f"best-{_slug(metric)}-e{{epoch:03d}}-s{{step}}", auto_insert_metric_name=False))
    if save_last:
        callbacks.append(_RelocatableCheckpoint(
            dirpath=dirpath, monitor=None, save_top_k=1, filename=LAST_CHECKPOINT[: -len(".ckpt")],
            save_on_train_epoch_end=True, enable_version_counter=False, auto_insert_metric_name=False))
    return callbacks


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written beside their final name and renamed onto it (:func:`ssl4sar.io.write_bytes_atomic`).

    Lightning's own save writes a temporary file in the system's temporary folder and moves it onto the final
    name; across file systems that move is a copy, and a disk that fills up during it left a cut-off file under
    the final name (``last.ckpt`` included, the file a run resumes from). Here a failed write leaves the previous
    checkpoint whole; what a killed write leaves is removed by :func:`remove_checkpoint_leftovers`.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        # serialised in memory first: torch's zip writer reports a full disk as a RuntimeError, a file write as
        # OSError ENOSPC (which the commands turn into DiskFull)
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        write_bytes_atomic(path, buffer.getbuffer())


def remove_checkpoint_leftovers(out_dir: str | Path) -> int:
    """Delete the temporary checkpoints that killed writes left in ``out_dir/checkpoints``
    (:func:`ssl4sar.io.atomic_leftovers`); returns their count."""
    found = atomic_leftovers(Path(out_dir) / CHECKPOINT_DIR, None, ".ckpt")
    for p in found:
        p.unlink(missing_ok=True)
        log.info("removed %s, a checkpoint whose writing was stopped", p)
    return len(found)


def find_resume_checkpoint(out_dir: str | Path) -> Path | None:
    """The checkpoint to resume from: the newest of ``checkpoints/last.ckpt`` and Lightning's SLURM requeue
    checkpoints ``hpc_ckpt_*.ckpt`` (written on SIGUSR1 before a SLURM job is preempted), or ``None``."""
    out = Path(out_dir)
    candidates = [p for p in [out / CHECKPOINT_DIR / LAST_CHECKPOINT, *out.glob("hpc_ckpt_*.ckpt")] if p.is_file()]
    if not candidates:
        return None
    return max(candidates, key=lambda p: p.stat().st_mtime)


def build_trainer(plan: TrainingPlan, out_dir: str | Path, *, callbacks: Sequence[Callback] = (),
                  max_epochs: int | None = None, max_steps: int | None = None, seed: int | None = None,
                  check_val_every_n_epoch: int = 1, log_every_n_steps: int = 50, progress: bool = True,
                  tensorboard: bool | None = None, resume: ResumeState | None = None,
                  **trainer_kwargs: Any) -> pl.Trainer:
    """A :class:`lightning.pytorch.Trainer` for ``plan`` writing under ``out_dir``.

    ``callbacks`` come first (checkpoint callbacks included); a :class:`StepSeed` is added when ``seed`` is given.
    ``max_steps`` counts optimiser steps (``None`` = no limit). ``trainer_kwargs`` go to the Trainer unchanged
    (e.g. ``limit_val_batches``, ``deterministic``). On CUDA, cuDNN's algorithm autotuning (``benchmark``) is on
    unless ``trainer_kwargs`` set ``benchmark`` or ``deterministic``. ``resume`` (:func:`inspect_resume_checkpoint`)
    keeps the metrics history and applies changed optimiser settings after Lightning restored the optimiser.
    """
    cbs = list(callbacks)
    if resume is not None:
        cbs.append(_ApplyResumeOverrides(resume))
    if seed is not None:
        cbs.append(StepSeed(seed))
    kwargs: dict[str, Any] = {
        **plan.trainer_kwargs(),
        "default_root_dir": str(out_dir),
        "max_epochs": -1 if max_epochs is None else int(max_epochs),
        "max_steps": -1 if max_steps is None else int(max_steps),
        "check_val_every_n_epoch": int(check_val_every_n_epoch),
        "log_every_n_steps": max(1, int(log_every_n_steps)),
        "logger": build_loggers(out_dir, tensorboard, resume),
        "callbacks": cbs,
        "enable_progress_bar": progress,
        "enable_model_summary": progress,
        "plugins": [AtomicCheckpointIO()],
    }
    if plan.on_cuda and "benchmark" not in trainer_kwargs and not trainer_kwargs.get("deterministic"):
        # Crops and validation windows have fixed sizes: cuDNN times its convolution algorithms once per shape and
        # keeps the fastest, as `python -m ssl4sar.bench` measures the GPU step (Lightning's default leaves it off).
        kwargs["benchmark"] = True
    if plan.strategy == "ddp" and "strategy" not in trainer_kwargs:
        from lightning.pytorch.strategies import DDPStrategy

        kwargs["strategy"] = DDPStrategy(find_unused_parameters=False,
                                         process_group_backend=None if plan.on_cuda else "gloo")
    kwargs.update(trainer_kwargs)
    return pl.Trainer(**kwargs)


def scalar_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The entries of a Trainer's ``callback_metrics`` that are numbers, as floats."""
    out = {}
    for k, v in metrics.items():
        try:
            out[k] = float(v.item() if isinstance(v, torch.Tensor) else v)
        except (TypeError, ValueError):
            continue
    return out


def existing_file(p: str | Path | None) -> Path | None:
    """``p`` as a Path when it names an existing file (checkpoint callbacks report ``""`` for none), else None."""
    if not p:
        return None
    path = Path(p)
    return path if path.is_file() else None


# ------------------------------------------------------------------------------------------ resume and divergence
#: hyper-parameters Lightning restores into the optimiser / LR scheduler from the checkpoint: a changed value has to
#: be put back after the restore (:class:`_ApplyResumeOverrides`)
OPTIMISER_HPARAMS = ("lr", "momentum", "weight_decay")
SCHEDULER_HPARAMS = {"plateau_factor": "factor", "plateau_patience": "patience"}
#: cannot change within a run: the weights in the checkpoint belong to this network
FIXED_HPARAMS = ("model_config",)
#: provenance only (the resumed run keeps its initial weights)
PROVENANCE_HPARAMS = ("init",)


@dataclass(frozen=True)
class ResumeState:
    """What :func:`inspect_resume_checkpoint` learnt about the checkpoint a run resumes from."""

    path: Path
    epoch: int
    global_step: int
    changed: dict[str, tuple[Any, Any]]  # hyper-parameter -> (recorded in the checkpoint, this run)
    trusted: bool = False
    init: str | None = None  # the initial weights the run started from, as its checkpoint records them


def inspect_resume_checkpoint(path: str | Path, hparams: Mapping[str, Any], *, trusted: bool = False,
                              section: str = "finetune", init: str | Path | None = None) -> ResumeState:
    """Read the resume checkpoint ``path`` safely and compare its hyper-parameters with ``hparams`` (this run's)
    and the initial weights it started from with ``init`` (the ones this run asks for; ``None``: not named, so any).

    Raises :class:`DataError` naming the file when it is unreadable or refused (:func:`ssl4sar.models.convert.
    read_checkpoint_file`), holds non-finite weights, or was written with other model settings or from other
    initial weights than ``init`` (:func:`~ssl4sar.models.initialise.same_initialisation`; a checkpoint named by
    ``init`` must still hold the weights the run started from, :func:`~ssl4sar.models.initialise.
    changed_initial_weights`, else the error names that file). Changed
    settings that a resume can honour are logged and returned in :attr:`ResumeState.changed`.
    """
    from ssl4sar.models.convert import check_finite, read_checkpoint_file
    from ssl4sar.models.initialise import changed_initial_weights, same_initialisation

    path = Path(path)
    ckpt = read_checkpoint_file(path, trusted=trusted)
    if not isinstance(ckpt, Mapping) or not isinstance(ckpt.get("state_dict"), Mapping):
        raise DataError(path, "not a Lightning checkpoint (no 'state_dict')", "delete it or pass --no-resume")
    check_finite(ckpt["state_dict"], path)
    recorded = ckpt.get("hyper_parameters") or {}
    changed = {k: (recorded[k], v) for k, v in hparams.items()
               if k in recorded and k not in PROVENANCE_HPARAMS and recorded[k] != v}
    fixed = [k for k in changed if k in FIXED_HPARAMS]
    if fixed:
        old, new = changed[fixed[0]]
        diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k)) \
            if isinstance(old, Mapping) and isinstance(new, Mapping) else []
        raise DataError(path, "the run being resumed used other model settings"
                        + (f" ({', '.join(f'model.{k}: {old.get(k)!r} -> {new.get(k)!r}' for k in diff[:6])})"
                           if diff else ""),
                        "model settings cannot change within a run: use a new --out folder, or --no-resume to "
                        "start this folder afresh")
    started_from = recorded.get("init")
    way_out = ("a resumed run takes every weight from its checkpoint: use a new --out folder, or --no-resume to "
               "start this folder afresh from the new initial weights")
    if started_from is not None and init is not None:
        if not same_initialisation(started_from, init):
            where = str(started_from).removeprefix("checkpoint:")
            raise DataError(path, f"the run being resumed started from {where}, not from {init}", way_out)
        changed_file = changed_initial_weights(started_from, recorded.get("model_config"), trusted=trusted)
        if changed_file is not None:
            init_path, then, now = changed_file
            raise DataError(init_path, f"now holds the weights {now}, not the weights {then} that the run being "
                            f"resumed ({path}) started from: the file was written again since", way_out)
    for k, (old, new) in changed.items():
        log.warning("resuming %s with %s.%s = %r (the checkpoint was trained with %r): the new value applies from "
                    "now on", path, section, k, new, old)
    return ResumeState(path=path, epoch=int(ckpt.get("epoch", 0)), global_step=int(ckpt.get("global_step", 0)),
                       changed=changed, trusted=trusted,
                       init=None if started_from is None else str(started_from))


class _ApplyResumeOverrides(Callback):
    """Puts changed optimiser / scheduler settings back after Lightning restored the checkpoint's optimiser."""

    def __init__(self, resume: ResumeState) -> None:
        self.resume = resume

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for key, (_, new) in self.resume.changed.items():
            if key in OPTIMISER_HPARAMS:
                for opt in trainer.optimizers:
                    for group in opt.param_groups:
                        group[key] = new
            elif key in SCHEDULER_HPARAMS:
                for config in trainer.lr_scheduler_configs:
                    if hasattr(config.scheduler, SCHEDULER_HPARAMS[key]):
                        setattr(config.scheduler, SCHEDULER_HPARAMS[key], new)


class DivergenceGuard(Callback):
    """Stop at the first step whose loss or updated weights are NaN / infinite; never checkpoint such a state.

    Raises :class:`~ssl4sar.errors.TrainingDiverged` naming the step and the last good checkpoint in ``out_dir``
    (every checkpoint there passed this guard). The decision is shared between processes (DDP).
    """

    def __init__(self, out_dir: str | Path, section: str = "finetune") -> None:
        self.out_dir = Path(out_dir)
        self.section = section

    def on_before_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: torch.Tensor) -> None:
        problem = None
        if not bool(torch.isfinite(loss.detach()).all()):
            problem = f"the training loss is {float(loss.detach().float().reshape(-1)[0])}"
        if trainer.strategy.reduce_boolean_decision(problem is not None, all=False):
            self._stop(trainer, problem or "another process saw a non-finite training loss")

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if not _weights_finite(pl_module):  # identical weights on every process: no collective needed
            self._stop(trainer, "the weights became non-finite in the optimiser step")

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        bad = {k: float(v) for k, v in trainer.callback_metrics.items()
               if k.endswith("loss") and isinstance(v, torch.Tensor) and v.numel() == 1 and not torch.isfinite(v)}
        if bad:
            self._stop(trainer, "the validation loss is not finite (" + ", ".join(f"{k} = {v}" for k, v in bad.items())
                       + ")")

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        from ssl4sar.models.convert import non_finite_entries

        bad = non_finite_entries(checkpoint.get("state_dict") or {})
        if bad:
            self._stop(trainer, f"the weights are not finite ({', '.join(bad[:3])})")

    def _stop(self, trainer: pl.Trainer, problem: str) -> None:
        last = find_resume_checkpoint(self.out_dir)
        lrs = sorted({g["lr"] for opt in trainer.optimizers for g in opt.param_groups})
        where = (f"the last good checkpoint is {last}; resume from it with a smaller learning rate (the same command "
                 f"with --set {self.section}.lr=..., which applies on resume)" if last is not None else
                 "no checkpoint was written before; start again with a smaller learning rate "
                 f"(--set {self.section}.lr=...)")
        raise TrainingDiverged(
            f"training diverged at epoch {trainer.current_epoch}, step {trainer.global_step}: {problem} "
            f"(learning rate {', '.join(f'{lr:g}' for lr in lrs)}). No checkpoint was written from this state; "
            f"{where}.")


def _weights_finite(module: torch.nn.Module) -> bool:
    from ssl4sar.models.convert import non_finite_tensors

    return not non_finite_tensors([p.detach() for p in module.parameters() if p.is_floating_point()])


def fit(trainer: pl.Trainer, module: pl.LightningModule, datamodule: Any, resume: ResumeState | None) -> None:
    """``trainer.fit`` that restores ``resume`` with ``weights_only=True`` (harmless types allowed) unless the
    checkpoint was declared trusted."""
    from ssl4sar.models.convert import _safe_globals

    if resume is None:
        trainer.fit(module, datamodule=datamodule)
    elif resume.trusted:
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(resume.path), weights_only=False)
    else:
        with torch.serialization.safe_globals(_safe_globals()):
            trainer.fit(module, datamodule=datamodule, ckpt_path=str(resume.path), weights_only=True)

