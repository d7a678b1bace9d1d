"""The book's experiments from end to end without the notebooks: data → both pretrainings → seeds per initialisation
→ the paper's tests → ensembles, into one work folder, with a record of what ran where and how long each stage took.

Chapters 2–5 run these stages one per chapter and show their tables and figures; :func:`run_protocol` runs the same
library calls in one process (``ssl4sar protocol``), for a GPU server where nobody watches a notebook or for the
book's run of record (``book/results/<name>/``). The tables it writes are the chapters' own (:class:`WorkLayout`):
``finetune/runs.csv``, ``finetune/significance.csv``, ``evaluate/summary.csv``, ``pretrain/<method>/metrics.csv``,
plus ``protocol.json``.
"""

from __future__ import annotations

import json
import logging
import platform
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ssl4sar.book import WorkLayout, package_versions, pin_threads
from ssl4sar.config import PRETRAIN_METHODS, check_seed  # PRETRAIN_METHODS re-exported: its home is ssl4sar.config
from ssl4sar.data.synthetic.ensure import ensure_synthetic_data
from ssl4sar.errors import SettingError
from ssl4sar.io import disk_full_raises, ensure_writable_dir, write_text_atomic

log = logging.getLogger(__name__)

#: what to do when the disk of the work folder is full (:class:`~ssl4sar.errors.DiskFull`)
_DISK_FULL_HINT = "free some space, then run the same command with --resume: it goes on from what is finished"

__all__ = ["PRETRAIN_METHODS", "ProtocolRecord", "check_protocol_settings", "device_description", "run_protocol"]

#: Name of the record :func:`run_protocol` writes into the work folder.
RECORD_NAME = "protocol.json"


@dataclass
class ProtocolRecord:
    """What :func:`run_protocol` ran: settings, machine, stage wall times (s) and the stages' short results."""

    preset: str
    device: str
    seeds: list[int]
    inits: list[str]
    command: str
    started: str
    machine: dict[str, Any] = field(default_factory=dict)
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    finished: str | None = None

    def stage(self, name: str, seconds: float, **result: Any) -> None:
        self.stages[name] = {"seconds": round(float(seconds), 1), **result}

    def write(self, layout: WorkLayout) -> Path:
        """Write ``protocol.json`` (atomically: also after each stage, so an interrupted run leaves its record)."""
        path = layout.root / RECORD_NAME
        write_text_atomic(path, json.dumps(self.__dict__, indent=2, default=str) + "\n")
        return path


def device_description(device: str) -> dict[str, Any]:
    """The machine a protocol runs on: device name, GPU model and memory where CUDA, CPU count, library versions."""
    import os

    import torch

    info: dict[str, Any] = {"device": device, "cpu_count": os.cpu_count(), "machine": platform.machine(),
                            "python": platform.python_version(),
                            "packages": package_versions(("torch", "timm", "lightning", "numpy"))}
    if device.startswith("cuda") and torch.cuda.is_available():
        dev = torch.device(device)
        props = torch.cuda.get_device_properties(dev)
        info |= {"gpu": props.name, "gpu_memory_gib": round(props.total_memory / 2**30, 1),
                 "cuda": torch.version.cuda}
    return info


def run_protocol(preset: str, work_dir: str | Path, *, device: str = "auto", seed: int = 0,
                 data_dir: str | Path | None = None, ssl4sar_dir: str | Path | None = None,
                 inits: Sequence[str] = ("scratch", "imagenet", "optsimmim", "opttranslator"),
                 seeds: int | None = None, workers: int = 2, gpu_workers: int = 1,
                 imagenet_weights: str | Path | None = None, threads: int = 2, data_workers: int = 1,
                 resume: bool = False) -> ProtocolRecord:
    """Run the book's protocol with ``preset`` into ``work_dir``; return (and write) its record.

    Args:
        preset: preset name or YAML path (:func:`ssl4sar.config.load_preset`).
        work_dir: the work folder (:class:`~ssl4sar.book.WorkLayout`); the chapters can be pointed at it afterwards.
        device: ``auto`` (a GPU when there is one), ``cpu``, ``cuda`` or ``cuda:N``.
        seed: seed of the synthetic data and of the pretraining runs; fine-tuning seeds are ``seed … seed + n − 1``.
        data_dir / ssl4sar_dir: real CaFFe / SSL4SAR roots; ``None``: the preset's synthetic data in ``work_dir/data``.
        inits: initialisations to fine-tune (``imagenet`` only with ``imagenet_weights`` and the paper network;
            a pretraining method is pretrained first when it is listed here; any other name must be a checkpoint file).
        seeds: fine-tuning runs per initialisation (default: the preset's ``finetune.seeds``).
        workers: CPU runs side by side (single-thread processes); ``gpu_workers``: runs sharing one GPU at a time.
        threads: torch threads of this process (pretraining).
        data_workers: processes that generate the synthetic data (the same files for any number).
        resume: go on from what an interrupted call with the same arguments left in ``work_dir``: the pretrainings
            and each fine-tuning run continue from their last checkpoints (finished ones train no further), test
            scenes already scored are kept. Otherwise their folders are replaced. The synthetic data is reused
            either way.

    Raises:
        SettingError: a setting outside its values (:func:`check_protocol_settings`), before any work.
    """
    from ssl4sar import experiments, pretrain_report
    from ssl4sar.config import load_preset

    cfg = load_preset(preset)
    paper = load_preset("paper")
    n_seeds = int(seeds if seeds is not None else cfg["finetune"]["seeds"])
    check_protocol_settings(inits, seeds=n_seeds, workers=workers, gpu_workers=gpu_workers,
                            data_workers=data_workers, seed=seed)
    run_device, run_workers = experiments.protocol_device(device, workers, gpu_workers)
    layout = WorkLayout(ensure_writable_dir(work_dir, "work folder"))
    pin_threads(threads)
    # a write that finds no space, in any stage: one line naming the work folder
    with disk_full_raises(layout.root, "the protocol's data, runs and tables", _DISK_FULL_HINT):
        record = ProtocolRecord(preset=str(cfg["name"]), device=run_device, seeds=[seed + k for k in range(n_seeds)],
                                inits=list(inits), command=" ".join(shlex.quote(a) for a in sys.argv),
                                started=_now(), machine=device_description(run_device))
        record.write(layout)

        caffe_root = Path(data_dir) if data_dir is not None else layout.caffe
        ssl4sar_root = Path(ssl4sar_dir) if ssl4sar_dir is not None else layout.ssl4sar_data
        if data_dir is None or ssl4sar_dir is None:
            generated, seconds = ensure_synthetic_data(layout.data, preset, seed, layouts=("caffe", "ssl4sar"),
                                                       workers=data_workers)
            record.stage("data", seconds, generated=generated, relative=layout.relative(layout.data))
            record.write(layout)

        for method in (m for m in PRETRAIN_METHODS if m in inits):
            log.info("pretraining %s on %s", method, run_device)
            run = pretrain_report.run_pretraining(method, cfg, ssl4sar_root, layout, seed=seed, device=run_device,
                                                  resume=resume)
            pretrain_report.export_pretrained(method, run, layout)
            val = run.epochs["val/loss"].dropna() if "val/loss" in run.epochs else []
            record.stage(f"pretrain_{method}", run.seconds, epochs=int(run.result.epochs),
                         steps=int(run.result.global_step), best_val_loss=float(run.result.best_val_loss),
                         first_val_loss=float(val.iloc[0]) if len(val) else None)
            record.write(layout)

        plan, notes = experiments.plan_initialisations(inits, layout, cfg, paper, imagenet_weights)
        for note in notes:
            log.warning("%s", note)
        t0 = time.perf_counter()
        runs = experiments.finetune_seeds(cfg, caffe_root, layout, plan, record.seeds, workers=run_workers,
                                          device=run_device, imagenet_weights=imagenet_weights, resume=resume)
        record.stage("finetune", time.perf_counter() - t0, runs=len(runs), skipped=notes,
                     run_seconds=float(runs["seconds"].sum()))
        record.write(layout)

        t0 = time.perf_counter()
        tests = experiments.compare_initialisations(runs, seed=seed)
        write_text_atomic(layout.finetune_tests_csv, tests.to_csv(index=False, float_format="%.4f"))
        chosen = experiments.choose_ensemble_init(runs)
        summary = experiments.evaluate_ensembles(cfg, caffe_root, layout, runs, chosen, workers=run_workers,
                                                 device=run_device, seed=seed)
        record.stage("evaluate", time.perf_counter() - t0, ensemble_init=chosen,
                     ensembles=summary.loc[summary["members"] > 1, ["model", "test_mde_m", "fronts_found"]]
                     .to_dict(orient="records"))
        record.finished = _now()
        record.write(layout)
        return record


def check_protocol_settings(inits: Sequence[str], *, seeds: int, workers: int, gpu_workers: int, data_workers: int,
                            seed: int) -> None:
    """:class:`~ssl4sar.errors.SettingError` naming the first setting of :func:`run_protocol` outside its values,
    before any work: an initialisation that is neither one of :data:`~ssl4sar.experiments.INIT_ORDER` nor an existing
    checkpoint file, an initialisation named twice, fewer than one seed or worker (``-1`` does not mean "all cores"
    here), a seed range ``seed … seed + seeds − 1`` outside numpy's."""
    from ssl4sar.experiments import INIT_ORDER, check_worker_counts

    if not inits:
        raise SettingError("inits must name at least one initialisation")
    for init in inits:
        if init not in INIT_ORDER and not Path(init).is_file():
            raise SettingError(f"init {init!r} is none of {', '.join(INIT_ORDER)} and no checkpoint file")
    twice = sorted({i for i in inits if list(inits).count(i) > 1})
    if twice:
        raise SettingError(f"inits must be distinct, got {', '.join(twice)} twice")
    if seeds < 1:
        raise SettingError(f"seeds must be at least 1 (fine-tuning runs per initialisation), got {seeds}")
    check_worker_counts(workers=workers, gpu_workers=gpu_workers, data_workers=data_workers)
    check_seed(seed)
    check_seed(seed + seeds - 1, "last fine-tuning seed (seed + seeds - 1)")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
