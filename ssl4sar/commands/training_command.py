"""What the two training commands, ``ssl4sar finetune`` and ``ssl4sar pretrain``, share: the data, run-folder and
initialisation arguments (before :func:`ssl4sar.training.add_run_arguments`) and the run itself (preset with
``--set`` overrides, the training call, a one-line error for bad input, the produced files in the log)."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ssl4sar.config import PRESETS, load_preset
from ssl4sar.errors import DataError, TrainingDiverged
from ssl4sar.training import add_run_arguments, parse_overrides

__all__ = ["add_training_arguments", "run_training_command"]

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
    ``label: value`` of ``report(result)``. Returns 0, or 1 after a one-line error for bad input or divergence."""
    try:
        cfg = load_preset(args.preset, parse_overrides(args.overrides))
        result = train(cfg, args.data, args.out, init=args.init, seed=args.seed, devices=args.devices,
                       resume=args.resume, max_steps=args.max_steps, num_nodes=args.num_nodes,
                       max_epochs=args.max_epochs, precision=args.precision, accelerator=args.accelerator,
                       imagenet_weights=args.imagenet_weights, progress=args.progress,
                       trust_checkpoint=args.trust_checkpoint)
    except (DataError, ValueError, TrainingDiverged) as exc:
        log.error("%s", exc)
        return 1
    for label, value in report(result).items():
        log.info("%s: %s", label, value)
    return 0
