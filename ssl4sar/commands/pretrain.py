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
import functools

from ssl4sar.commands.training_command import add_training_arguments, run_training_command
from ssl4sar.config import PRETRAIN_METHODS

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``ssl4sar pretrain``."""
    parser.add_argument("--method", required=True, choices=PRETRAIN_METHODS, help="pretraining task")
    add_training_arguments(
        parser, "pretrain", data_flag="--ssl4sar", data_help="SSL4SAR-layout data root (sar/train, sar/val, optical/)",
        out_help="run folder (checkpoints, logs, pretrained.pt)",
        init_help="scratch | imagenet | path of a checkpoint (default: the preset's pretrain.init, else imagenet when "
                  "finetune.init is imagenet, else scratch)",
        example_override="pretrain.num_workers=0")


def run(args: argparse.Namespace) -> int:
    """Run ``ssl4sar pretrain``; bad input ends with a one-line error (exit status 1)."""
    from ssl4sar.pretrain.common import pretrain

    return run_training_command(args, functools.partial(pretrain, args.method), lambda result: {
        f"best val/loss {result.best_val_loss}": result.best_checkpoint, "exported network": result.export,
        "metrics": result.metrics_csv})
