"""``ssl4sar protocol``: the book's experiments end to end without the notebooks
(:func:`ssl4sar.protocol.run_protocol`)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from ssl4sar.config import PRESETS
from ssl4sar.errors import DataError, OutOfMemory

__all__ = ["configure", "run"]

logger = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``ssl4sar protocol``."""
    parser.add_argument("--preset", default="demo",
                        help=f"preset name ({', '.join(PRESETS)}) or a YAML file with the same schema (default: demo)")
    parser.add_argument("--work-dir", required=True, type=Path, metavar="DIR",
                        help="work folder: data, pretraining, fine-tuning runs, evaluations, protocol.json")
    parser.add_argument("--data", type=Path, default=None, metavar="DIR",
                        help="CaFFe root (default: the preset's synthetic data in DIR/data)")
    parser.add_argument("--ssl4sar-data", type=Path, default=None, metavar="DIR",
                        help="SSL4SAR unlabeled root (default: the preset's synthetic data)")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N")
    parser.add_argument("--seed", type=int, default=0, help="data and pretraining seed; fine-tuning seeds start here")
    parser.add_argument("--seeds", type=int, default=None, metavar="N",
                        help="fine-tuning runs per initialisation (default: the preset's finetune.seeds)")
    parser.add_argument("--inits", nargs="+", default=["scratch", "imagenet", "optsimmim", "opttranslator"],
                        metavar="INIT",
                        help="initialisations (scratch, imagenet, optsimmim, opttranslator, or a checkpoint file)")
    parser.add_argument("--imagenet-weights", type=Path, default=None, metavar="PTH",
                        help="swinv2_tiny_patch4_window16_256.pth for the imagenet initialisation")
    parser.add_argument("--workers", type=int, default=2, metavar="N",
                        help="CPU: single-thread runs side by side (default 2)")
    parser.add_argument("--gpu-workers", type=int, default=1, metavar="N",
                        help="GPU: runs sharing the GPU at a time (default 1)")
    parser.add_argument("--resume", action="store_true",
                        help="go on from what an interrupted run with the same arguments left in DIR (pretrainings and "
                             "fine-tuning runs continue from their last checkpoints; default: start afresh)")
    parser.add_argument("--data-workers", type=int, default=1, metavar="N",
                        help="processes generating the synthetic data (same files for any number; default 1)")


def run(args: argparse.Namespace) -> int:
    """``ssl4sar protocol``: 0 on success, 1 on bad input (the error is logged)."""
    from ssl4sar.protocol import run_protocol

    try:
        record = run_protocol(args.preset, args.work_dir, device=args.device, seed=args.seed, data_dir=args.data,
                              ssl4sar_dir=args.ssl4sar_data, inits=args.inits, seeds=args.seeds,
                              workers=args.workers, gpu_workers=args.gpu_workers,
                              imagenet_weights=args.imagenet_weights, data_workers=args.data_workers,
                              resume=args.resume)
    except (DataError, ValueError, FileNotFoundError, OutOfMemory) as exc:
        logger.error("%s", exc)
        return 1
    print(json.dumps(record.stages, indent=2, default=str))
    return 0
