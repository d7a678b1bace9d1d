"""``ssl4sar finetune``: fine-tune TYRION on CaFFe-layout data (:func:`ssl4sar.finetune.finetune`).

Multi-GPU / multi-node runs (``--devices``, ``torchrun``, SLURM), precision, resuming and initialisation are
described in :mod:`ssl4sar.finetune`.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ssl4sar.config import PRESETS, load_preset
from ssl4sar.errors import DataError, TrainingDiverged
from ssl4sar.finetune import finetune
from ssl4sar.training import add_run_arguments, parse_overrides

__all__ = ["configure", "run"]

log = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``ssl4sar finetune``."""
    parser.add_argument(
        "--preset",
        default="paper",
        help=f"preset name ({', '.join(PRESETS)}) or a YAML file with the same schema (default: paper)",
    )
    parser.add_argument("--data", type=Path, required=True, help="CaFFe-layout data root")
    parser.add_argument("--out", type=Path, required=True, help="run folder (checkpoints, logs, best_mde.pt)")
    parser.add_argument(
        "--init",
        default=None,
        help="scratch | imagenet | path of a pretraining / fine-tuning checkpoint "
        "(default: the preset's finetune.init)",
    )
    parser.add_argument(
        "--imagenet-weights",
        type=Path,
        default=None,
        help="swinv2_tiny_patch4_window16_256.pth for --init imagenet "
        "(default: the data manifest's path under $SSL4SAR_DATA)",
    )
    add_run_arguments(parser, "finetune", "data.num_workers=0")


def run(args: argparse.Namespace) -> int:
    """Run ``ssl4sar finetune``; bad input ends with a one-line error (exit status 1)."""
    try:
        cfg = load_preset(args.preset, parse_overrides(args.overrides))
        result = finetune(
            cfg,
            args.data,
            args.out,
            init=args.init,
            seed=args.seed,
            devices=args.devices,
            resume=args.resume,
            max_steps=args.max_steps,
            num_nodes=args.num_nodes,
            max_epochs=args.max_epochs,
            precision=args.precision,
            accelerator=args.accelerator,
            imagenet_weights=args.imagenet_weights,
            progress=args.progress,
            trust_checkpoint=args.trust_checkpoint,
        )
    except (DataError, ValueError, TrainingDiverged) as exc:
        log.error("%s", exc)
        return 1
    log.info("best val/mde checkpoint: %s", result.best_mde_checkpoint)
    log.info("exported network: %s", result.best_mde_export)
    log.info("metrics: %s", result.metrics_csv)
    return 0
