"""``ssl4sar predict``: georeferenced calving fronts for new scenes (:func:`ssl4sar.predict.predict_scenes`)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from ssl4sar.config import paper_preset
from ssl4sar.errors import DataError, OutOfMemory, SettingError
from ssl4sar.io import ensure_writable_dir

if TYPE_CHECKING:  # the library (torch, timm) is imported by run(), so that --help answers at once
    import torch

    from ssl4sar.predict import PredictionRun

__all__ = ["configure", "run"]

log = logging.getLogger(__name__)

#: highest exit status (the number of failed scenes is capped here; higher values mean signals to a shell)
_MAX_EXIT = 125


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``ssl4sar predict``."""
    parser.add_argument("scenes", nargs="+", type=Path, metavar="SCENE",
                        help="GeoTIFFs (any CRS; uint8 amplitude or float) or CaFFe PNGs")
    parser.add_argument("--checkpoint", required=True, type=Path, help="model checkpoint (ssl4sar, Lightning or "
                        "official TYRION)")
    parser.add_argument("--ensemble", nargs="+", type=Path, default=[], metavar="CKPT",
                        help="further ensemble members (soft voting); end the list with -- or put the scenes first")
    parser.add_argument("--tta", action="store_true", help="test-time augmentation: 4 rotations (as the paper)")
    parser.add_argument("--tta-flips", action="store_true", help="with --tta: also the mirrored rotations")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--resume", action="store_true",
                        help="keep the scenes already predicted into --out from the same input file, checkpoints and "
                             "settings (each has a <stem>.prediction.json record); predict the others")
    parser.add_argument("--resolution-m", type=float, default=None,
                        help="run the model at this pixel spacing in m/px (training data: 6-20 m)")
    parser.add_argument("--to-wgs84", action="store_true", help="also write the front in EPSG:4326 (lon/lat)")
    parser.add_argument("--tile-size", type=int, default=None, metavar="PX",
                        help="process large scenes in tiles of PX pixels (same result as whole-scene)")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N")
    parser.add_argument("--stride", type=int, default=None, help="window stride in px (default context/4)")
    parser.add_argument("--batch-size", type=int, default=8, help="windows per forward pass")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                        help="network precision: auto (default) = bf16 autocast where the device computes bf16 "
                             "natively (recent GPUs, CPUs with AVX512-BF16/AMX), else fp32")
    parser.add_argument("--bf16", action="store_true", help="same as --precision bf16")
    parser.add_argument("--min-front-length-m", type=float, default=paper_preset().postprocess.min_front_length_m,
                        help="drop front pieces shorter than this (metres)")
    parser.add_argument("--allow-no-crs", action="store_true",
                        help="accept GeoTIFFs without CRS (fronts in pixel coordinates)")
    parser.add_argument("--pixel-size-m", type=float, default=None,
                        help="pixel spacing (m/px) of scenes that do not state it (no CRS, no CaFFe name)")
    parser.add_argument("--value-range", type=float, nargs=2, default=None, metavar=("LO", "HI"),
                        help="linear scaling of non-uint8 input to 1..255 (default: 1st-99th percentile)")
    parser.add_argument("--uint8-probabilities", action="store_true",
                        help="store probabilities and uncertainty as uint8 (value/255) instead of float32")
    parser.add_argument("--member-fronts", action="store_true",
                        help="also write one front per member x augmentation (for time-series uncertainty)")
    parser.add_argument("--no-overlay", action="store_true", help="do not write overlay PNGs")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--line-mode", choices=("chains", "longest"), default="chains",
                        help="front pixels to lines: longest path per piece plus branches, or longest only")
    parser.add_argument("--trust-checkpoint", action="store_true",
                        help="load checkpoints with the full unpickler, which RUNS CODE FROM THE FILE: only for files "
                             "whose origin you trust (default: tensors and plain values only)")


def run(args: argparse.Namespace) -> int:
    """``ssl4sar predict``: returns the number of scenes that failed (capped at 125)."""
    from ssl4sar.inference_settings import ensemble_context_size
    from ssl4sar.models.convert import load_model
    from ssl4sar.models.fast import for_inference, resolve_device

    try:  # a bad device, bad checkpoints and an unwritable --out end here, before any scene is read
        device = resolve_device(args.device)
        ensure_writable_dir(args.out)
        paths = [args.checkpoint, *args.ensemble]
        models = [for_inference(load_model(p, map_location=device, trusted=args.trust_checkpoint)) for p in paths]
        ensemble_context_size(models, paths)  # members of different input sizes, named by file
    except (DataError, SettingError) as exc:
        log.error("%s", exc)
        return min(max(len(args.scenes), 1), _MAX_EXIT)  # every scene failed
    try:
        result = _predict(models, device, args)
    except (DataError, SettingError) as exc:  # e.g. two scenes of one name, a bad stride: before any scene is read
        log.error("%s", exc)
        return min(max(len(args.scenes), 1), _MAX_EXIT)
    except OutOfMemory as exc:  # every later scene would fail alike: stop, keeping the scenes already written
        log.error("%s. The scenes predicted before are kept: rerun with --resume to reuse them", exc)
        return min(max(len(args.scenes), 1), _MAX_EXIT)
    if result.reused:
        log.info("kept %d scene(s) predicted earlier with the same inputs and settings", len(result.reused))
    log.info("predicted %d scene(s), skipped %d (see %s)%s", len(result.results) - len(result.reused),
             len(result.skipped), Path(args.out) / "skipped.csv",
             f", left out {len(result.left_out)} output(s) of an earlier prediction" if result.left_out else "")
    return min(len(result.skipped), _MAX_EXIT)


def _predict(models: list[torch.nn.Module], device: torch.device, args: argparse.Namespace) -> PredictionRun:
    from ssl4sar.inference import PAPER_TTA_ROTATIONS
    from ssl4sar.models.fast import amp_dtype_for
    from ssl4sar.predict import predict_scenes

    return predict_scenes(
        models, args.scenes, args.out, resume=args.resume, resolution_m=args.resolution_m,
        rotations=PAPER_TTA_ROTATIONS if args.tta else (0,), flips=bool(args.tta and args.tta_flips),
        tile_size=args.tile_size, stride=args.stride, batch_size=args.batch_size, device=device,
        amp_dtype=amp_dtype_for(device, "bf16" if args.bf16 else args.precision),
        min_front_length_m=args.min_front_length_m, to_wgs84=args.to_wgs84, allow_no_crs=args.allow_no_crs,
        pixel_size_m=args.pixel_size_m, value_range=tuple(args.value_range) if args.value_range else None,
        probability_dtype="uint8" if args.uint8_probabilities else "float32", member_fronts=args.member_fronts,
        overlay=not args.no_overlay, line_mode=args.line_mode, progress=not args.no_progress)
