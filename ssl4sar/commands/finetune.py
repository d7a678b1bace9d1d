"""``ssl4sar finetune``: fine-tune TYRION on CaFFe-layout data (:func:`ssl4sar.finetune.finetune`).

Multi-GPU / multi-node runs (``--devices``, ``torchrun``, SLURM), precision, resuming and initialisation are
described in :mod:`ssl4sar.finetune`.
"""

from __future__ import annotations

import argparse

from ssl4sar.commands.training_command import add_training_arguments, run_training_command

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``ssl4sar finetune``."""
    add_training_arguments(
        parser, "finetune", data_flag="--data", data_help="CaFFe-layout data root",
        out_help="run folder (checkpoints, logs, best_mde.pt)",
        init_help="scratch | imagenet | path of a pretraining / fine-tuning checkpoint "
                  "(default: the preset's finetune.init)",
        example_override="data.num_workers=0")


def run(args: argparse.Namespace) -> int:
    """Run ``ssl4sar finetune``; bad input ends with a one-line error (exit status 1)."""
    from ssl4sar.finetune import finetune

    return run_training_command(args, finetune, lambda result: {
        "best val/mde checkpoint": result.best_mde_checkpoint, "exported network": result.best_mde_export,
        "metrics": result.metrics_csv})
