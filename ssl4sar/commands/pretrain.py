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
from pathlib import Path

from ssl4sar.config import PRESETS, load_preset
from ssl4sar.errors import DataError, TrainingDiverged

__all__ = ["configure", "run"]

log = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``ssl4sar pretrain``."""
    from ssl4sar.pretrain.common import METHODS
    from ssl4sar.training import add_run_arguments

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
    add_run_arguments(parser, "pretrain", "pretrain.num_workers=0")


def run(args: argparse.Namespace) -> int:
    """Run ``ssl4sar pretrain``; bad input ends with a one-line error (exit status 1)."""
    from ssl4sar.pretrain.common import pretrain
    from ssl4sar.training import parse_overrides

    try:
        cfg = load_preset(args.preset, parse_overrides(args.overrides))
        result = pretrain(args.method, cfg, args.data, args.out, init=args.init, seed=args.seed,
                          devices=args.devices, resume=args.resume, max_steps=args.max_steps,
                          num_nodes=args.num_nodes, max_epochs=args.max_epochs, precision=args.precision,
                          accelerator=args.accelerator, imagenet_weights=args.imagenet_weights,
                          progress=args.progress, trust_checkpoint=args.trust_checkpoint)
    except (DataError, ValueError, TrainingDiverged) as exc:
        log.error("%s", exc)
        return 1
    log.info("best val/loss %s: %s", result.best_val_loss, result.best_checkpoint)
    log.info("exported network: %s", result.export)
    log.info("metrics: %s", result.metrics_csv)
    return 0
