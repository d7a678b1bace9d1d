"""``ssl4sar pretrain``: self-supervised pretraining (OptSimMIM or OptTranslator) on SSL4SAR-layout data.

Examples::

    ssl4sar pretrain --method optsimmim --preset demo --ssl4sar data/synthetic/ssl4sar --out runs/optsimmim
    ssl4sar finetune --preset demo --data data/synthetic/caffe --out runs/ft \\
        --init runs/optsimmim/checkpoints/last.ckpt

Multi-GPU / multi-node runs, precision and resuming work as for ``ssl4sar finetune`` (see :mod:`ssl4sar.finetune`):
``--devices 4`` on one node, ``torchrun … $(which ssl4sar) pretrain … --num-nodes 2``, or ``srun`` under SLURM; the
preset's global batch (32 in the paper) is kept through gradient accumulation; re-running the same command resumes
from ``OUT/checkpoints/last.ckpt``.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from ssl4sar.config import PRESETS, load_preset
from ssl4sar.errors import DataError

__all__ = ["configure", "run"]

log = logging.getLogger(__name__)


def _parse_set(items: Sequence[str] | None) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects key=value (dotted key, YAML value), got {item!r}")
        overrides[key.strip()] = yaml.safe_load(value) if value.strip() else None
    return overrides


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``ssl4sar pretrain``."""
    from ssl4sar.pretrain.common import METHODS
    from ssl4sar.training import PRECISIONS

    parser.add_argument("--method", required=True, choices=METHODS, help="pretraining task")
    parser.add_argument("--preset", default="paper",
                        help=f"preset name ({', '.join(PRESETS)}) or a YAML file with the same schema (default: paper)")
    parser.add_argument("--ssl4sar", dest="data", type=Path, required=True,
                        help="SSL4SAR-layout data root (sar/train, sar/val, optical/)")
    parser.add_argument("--out", type=Path, required=True, help="run folder (checkpoints, logs, pretrained.pt)")
    parser.add_argument("--init", default=None,
                        help="scratch | imagenet | path of a checkpoint (default: the preset's pretrain.init, else "
                             "imagenet when finetune.init is imagenet, else scratch)")
    parser.add_argument("--imagenet-weights", type=Path, default=None,
                        help="swinv2_tiny_patch4_window16_256.pth for --init imagenet "
                             "(default: the data manifest's path under $SSL4SAR_DATA)")
    parser.add_argument("--seed", type=int, default=None, help="global seed (default: the preset's seed)")
    parser.add_argument("--devices", default="auto", help="processes per node: N or auto (default: auto)")
    parser.add_argument("--num-nodes", type=int, default=None, help="nodes (default: from torchrun/SLURM, else 1)")
    parser.add_argument("--accelerator", default="auto", choices=("auto", "cpu", "gpu"), help="default: auto")
    parser.add_argument("--max-epochs", type=int, default=None, help="override pretrain.max_epochs")
    parser.add_argument("--max-steps", type=int, default=None, help="stop after this many optimiser steps")
    parser.add_argument("--precision", choices=PRECISIONS, default=None,
                        help="override pretrain.precision (bf16-mixed is used on CUDA only)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a preset value, e.g. --set pretrain.num_workers=0 (repeatable)")
    parser.add_argument("--no-resume", dest="resume", action="store_false",
                        help="start afresh even if OUT/checkpoints/last.ckpt exists")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Run ``ssl4sar pretrain``; bad input ends with a one-line error (exit status 1)."""
    from ssl4sar.pretrain.common import pretrain

    try:
        cfg = load_preset(args.preset, _parse_set(args.overrides))
        result = pretrain(args.method, cfg, args.data, args.out, init=args.init, seed=args.seed,
                          devices=args.devices, resume=args.resume, max_steps=args.max_steps,
                          num_nodes=args.num_nodes, max_epochs=args.max_epochs, precision=args.precision,
                          accelerator=args.accelerator, imagenet_weights=args.imagenet_weights,
                          progress=args.progress)
    except (DataError, ValueError) as exc:
        log.error("%s", exc)
        return 1
    log.info("best val/loss %s: %s", result.best_val_loss, result.best_checkpoint)
    log.info("exported network: %s", result.export)
    log.info("metrics: %s", result.metrics_csv)
    return 0
