"""What the two training commands, ``ssl4sar finetune`` and ``ssl4sar pretrain``, share: their arguments (data,
run folder, initialisation, then :func:`add_run_arguments`) and the run itself (preset with ``--set`` overrides, the
training call, a one-line error for bad input, the produced files in the log).

Parsing imports no torch or Lightning (:mod:`ssl4sar.config` only): ``--help`` and argument errors answer at once.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from ssl4sar.config import PRESETS, TRAINING_PRECISIONS, load_preset
from ssl4sar.errors import DataError, OutOfMemory, TrainingDiverged

__all__ = ["add_run_arguments", "add_training_arguments", "parse_overrides", "run_training_command"]

log = logging.getLogger(__name__)


def add_training_arguments(parser: argparse.ArgumentParser, section: str, *, data_flag: str, data_help: str,
                           out_help: str, init_help: str, example_override: str) -> None:
    """``--preset``, the data root (``data_flag``, stored as ``args.data``), ``--out``, ``--init``,
    ``--imagenet-weights`` and the run arguments of preset section ``section``."""
    parser.add_argument("--preset", default="paper",
                        help=f"preset name ({', '.join(PRESETS)}) or a YAML file with the same schema (default: paper)")
    parser.add_argument(data_flag, dest="data", type=Path, required=True, help=data_help)
    parser.add_argument("--out", type=Path, required=True, help=out_help)
    parser.add_argument("--init", default=None, help=init_help)
    parser.add_argument("--imagenet-weights", type=Path, default=None,
                        help="swinv2_tiny_patch4_window16_256.pth for --init imagenet "
                             "(default: the data manifest's path under $SSL4SAR_DATA)")
    add_run_arguments(parser, section, example_override)


def run_training_command(args: argparse.Namespace, train: Callable[..., Any],
                         report: Callable[[Any], Mapping[str, Any]]) -> int:
    """Run ``train(cfg, args.data, args.out, **run options)`` with the preset of ``args``; log each
    ``label: value`` of ``report(result)``. Returns 0, or 1 after a one-line error for bad input, divergence or a step
    that did not fit in memory."""
    try:
        cfg = load_preset(args.preset, parse_overrides(args.overrides))
        result = train(cfg, args.data, args.out, init=args.init, seed=args.seed, devices=args.devices,
                       resume=args.resume, max_steps=args.max_steps, num_nodes=args.num_nodes,
                       max_epochs=args.max_epochs, precision=args.precision, accelerator=args.accelerator,
                       imagenet_weights=args.imagenet_weights, progress=args.progress,
                       trust_checkpoint=args.trust_checkpoint)
    except (DataError, ValueError, TrainingDiverged, OutOfMemory) as exc:
        log.error("%s", exc)
        return 1
    for label, value in report(result).items():
        log.info("%s: %s", label, value)
    return 0


def parse_overrides(items: Sequence[str] | None) -> dict[str, Any]:
    """``--set key=value`` items as a dict of dotted keys to YAML-parsed values (empty value: None)."""
    overrides: dict[str, Any] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects key=value (dotted key, YAML value), got {item!r}")
        overrides[key.strip()] = yaml.safe_load(value) if value.strip() else None
    return overrides


def add_run_arguments(parser: argparse.ArgumentParser, section: str, example_override: str) -> None:
    """The arguments ``ssl4sar finetune`` and ``ssl4sar pretrain`` share (seed, hardware, budget, precision,
    ``--set`` overrides, resuming, progress); ``section`` is the preset section they override."""
    parser.add_argument("--seed", type=int, default=None, help="global seed (default: the preset's seed)")
    parser.add_argument("--devices", default="auto", help="processes per node: N or auto (default: auto)")
    parser.add_argument("--num-nodes", type=int, default=None, help="nodes (default: from torchrun/SLURM, else 1)")
    parser.add_argument("--accelerator", default="auto", choices=("auto", "cpu", "gpu"), help="default: auto")
    parser.add_argument("--max-epochs", type=int, default=None,
                        help=f"override {section}.max_epochs (-1: no epoch limit, with --max-steps)")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="stop after this many optimiser steps (default: no step limit)")
    parser.add_argument("--precision", choices=TRAINING_PRECISIONS, default=None,
                        help=f"override {section}.precision (bf16-mixed: where the GPU or CPU computes bf16 natively, "
                             "else 32-true with a warning)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help=f"override a preset value, e.g. --set {example_override} (repeatable)")
    parser.add_argument("--no-resume", dest="resume", action="store_false",
                        help="start afresh even if OUT/checkpoints/last.ckpt exists")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    parser.add_argument("--trust-checkpoint", action="store_true",
                        help="load --init / resume checkpoints with the full unpickler, which RUNS CODE FROM THE "
                             "FILE: only for files whose origin you trust (default: tensors and plain values only)")
