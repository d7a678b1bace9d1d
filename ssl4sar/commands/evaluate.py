"""``ssl4sar evaluate``: evaluate checkpoints (single, ensemble, TTA) on a CaFFe split
(:func:`ssl4sar.evaluate.evaluate`)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ssl4sar.config import paper_preset
from ssl4sar.data.caffe import SPLITS
from ssl4sar.errors import DataError, OutOfMemory

__all__ = ["configure", "run"]

logger = logging.getLogger(__name__)

#: :data:`ssl4sar.evaluate.DEFAULT_FIGURES`, written out for the help text because importing that module takes
#: seconds (torch, timm); a test keeps the two equal
_DEFAULT_FIGURES = 8


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``ssl4sar evaluate``."""
    parser.add_argument("--checkpoint", required=True, type=Path, metavar="CKPT",
                        help="model checkpoint (ssl4sar, our Lightning, or official TYRION)")
    parser.add_argument("--ensemble", nargs="+", type=Path, default=[], metavar="CKPT",
                        help="further ensemble members (mean of the softmax, §9)")
    parser.add_argument("--tta", action="store_true", help="test-time augmentation: 4 rotations (as the paper)")
    parser.add_argument("--tta-flips", action="store_true",
                        help="with --tta: also the mirrored version of every rotation")
    parser.add_argument("--split", default="test", choices=SPLITS, help="CaFFe split (default test)")
    parser.add_argument("--data", required=True, type=Path, metavar="DIR", help="CaFFe data root")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N")
    parser.add_argument("--batch-size", type=int, default=None, metavar="N", help="windows per forward pass (8)")
    parser.add_argument("--stride", type=int, default=None, metavar="PX", help="window stride (default context/4)")
    parser.add_argument("--sigma", type=float, default=None, metavar="PX",
                        help="Gaussian importance σ (default context/16)")
    parser.add_argument("--preset", default=None, help="scale this preset's inference settings to the model")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default=None,
                        help="network precision (default: the preset's inference.precision, else auto = bf16 "
                             "autocast where the device computes bf16 natively, else fp32)")
    parser.add_argument("--bf16", action="store_true", help="same as --precision bf16")
    parser.add_argument("--absent", default="nan", choices=("nan", "zero"),
                        help="zone score of a class absent from prediction and truth (zero = reference)")
    parser.add_argument("--keep-rule", default=">=", choices=(">=", ">"),
                        help="keep front pieces with size >= (TYRION) or > (CaFFe) the 750 m threshold")
    parser.add_argument("--min-front-length-m", type=float, default=paper_preset().postprocess.min_front_length_m,
                        metavar="M",
                        help="drop front pieces shorter than this (metres)")
    parser.add_argument("--figures", type=int, default=None, metavar="N",
                        help=f"overlay figures for the first N scenes (default {_DEFAULT_FIGURES})")
    parser.add_argument("--save-probabilities", action="store_true",
                        help="write mean softmax and std per scene (float16 .npz)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--resume", action="store_true",
                        help="keep the scenes an earlier run into --out finished with the same checkpoints, settings "
                             "and data (their records/*.evaluation.json); evaluate the rest")
    parser.add_argument("--processes", type=int, default=1, metavar="N",
                        help="CPU: N processes share the scenes, each on an equal share of the torch threads "
                             "(default 1); faster for small networks, for which one process cannot keep every "
                             "core busy")
    parser.add_argument("--trust-checkpoint", action="store_true",
                        help="load checkpoints with the full unpickler, which RUNS CODE FROM THE FILE: only for files "
                             "whose origin you trust (default: tensors and plain values only)")

def run(args: argparse.Namespace) -> int:
    """``ssl4sar evaluate``: 0 on success, 1 on bad input (the error is logged)."""
    from ssl4sar.evaluate import DEFAULT_FIGURES, evaluate, format_summary

    figures = DEFAULT_FIGURES if args.figures is None else args.figures
    try:
        result = evaluate(
            [args.checkpoint, *args.ensemble], args.data, args.split, args.out, tta=args.tta, flips=args.tta_flips,
            preset=args.preset, stride=args.stride, sigma=args.sigma, device=args.device,
            batch_size=args.batch_size, precision="bf16" if args.bf16 else args.precision, absent=args.absent,
            keep_rule=args.keep_rule, min_front_length_m=args.min_front_length_m, figures=figures,
            save_probabilities=args.save_probabilities, progress=not args.no_progress,
            trust_checkpoint=args.trust_checkpoint, resume=args.resume, processes=args.processes)
    except (DataError, ValueError, OutOfMemory) as exc:
        logger.error("%s", exc)
        return 1
    sys.stdout.write(format_summary(result) + "\n")
    return 0
