"""``ssl4sar data``: list, fetch and generate datasets.

Sub-commands
    ``list``                 every manifest entry: name, kind, present locally?, size, path
    ``fetch NAME``           download, verify and install one entry (``--dest DIR`` = data root)
    ``synth --out DIR``      synthetic glacier scenes (``ssl4sar.data.synthetic.generate``)
    ``construct --sar DIR --optical DIR --aoi FILE --out DIR``
                             SSL4SAR layout from raw S1/S2 GeoTIFFs (``ssl4sar.data.construct``)

Each sub-command is one function registered with :func:`subcommand`, which also declares its arguments; adding a
sub-command (``construct`` …) means adding one decorated function. Bad input ends with a one-line error naming the
file and the problem (exit status 1) instead of a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ssl4sar.config import PRESETS
from ssl4sar.data.manifest import (
    SYNTHETIC_LAYOUTS,
    format_size,
    load_manifest,
    local_path,
    resolve_root,
    status,
)
from ssl4sar.errors import DataError
from ssl4sar.io import disk_full_raises

logger = logging.getLogger(__name__)

Handler = Callable[[argparse.Namespace], int]


@dataclass
class _SubCommand:
    name: str
    help: str
    handler: Handler
    arguments: list[tuple[tuple[str, ...], dict[str, Any]]] = field(default_factory=list)


_SUBCOMMANDS: dict[str, _SubCommand] = {}


def arg(*flags: str, **kwargs: Any) -> tuple[tuple[str, ...], dict[str, Any]]:
    """One ``add_argument`` call, for :func:`subcommand`."""
    return flags, kwargs


def subcommand(name: str, help: str,
               *arguments: tuple[tuple[str, ...], dict[str, Any]]) -> Callable[[Handler], Handler]:
    """Register ``handler(args) -> exit status`` as ``ssl4sar data <name>`` with the given arguments."""

    def register(handler: Handler) -> Handler:
        _SUBCOMMANDS[name] = _SubCommand(name, help, handler, list(arguments))
        return handler

    return register


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``data`` sub-commands to ``parser`` (called by :mod:`ssl4sar.cli`)."""
    parser.add_argument("--manifest", type=Path, default=None,
                        help="data manifest to use (default: $SSL4SAR_MANIFEST or the one shipped in the package)")
    sub = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    for spec in _SUBCOMMANDS.values():
        p = sub.add_parser(spec.name, help=spec.help, description=spec.help)
        for flags, kwargs in spec.arguments:
            p.add_argument(*flags, **kwargs)
        p.set_defaults(_data_handler=spec.handler)
    parser.set_defaults(_data_parser=parser)


def run(args: argparse.Namespace) -> int:
    """Run the chosen ``data`` sub-command; print help when none was given."""
    handler = getattr(args, "_data_handler", None)
    if handler is None:
        args._data_parser.print_help()
        return 0
    try:
        return int(handler(args) or 0)
    except (DataError, ValueError) as exc:  # bad data or a bad setting: one line
        logger.error("%s", exc)
        return 1


# --------------------------------------------------------------------------------------------------------- commands


@subcommand(
    "list", "list the manifest's datasets and weights and whether they are present locally",
    arg("--dest", type=Path, default=None, help="data root (default: $SSL4SAR_DATA or ~/.cache/ssl4sar)"),
)
def _list(args: argparse.Namespace) -> int:
    manifest = load_manifest(args.manifest)
    root = resolve_root(args.dest)
    shown = {"present": "yes", "unverified": "unverified", "missing": "no"}
    rows = [("NAME", "KIND", "PRESENT", "SIZE", "PATH")]
    for resource in manifest:
        if resource.kind == "generated":
            size = "-"
        else:
            size = format_size(resource.expected_size_bytes, approximate=resource.size_bytes is None
                               and resource.approx_size_bytes is not None)
        rows.append((resource.name, resource.kind, shown[status(resource, root)], size,
                     str(local_path(resource, root))))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    out = sys.stdout
    for row in rows:
        out.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() + "\n")
    out.write(f"\ndata root: {root}   manifest: {manifest.source}\n")
    return 0


@subcommand(
    "fetch", "download, verify (sha256) and install a manifest entry",
    arg("name", metavar="NAME", help="manifest entry (see `ssl4sar data list`)"),
    arg("--dest", type=Path, default=None, help="data root to install under (default: $SSL4SAR_DATA)"),
    arg("--force", action="store_true", help="download again even when already present"),
    arg("--keep-archive", action="store_true", help="keep the downloaded archive in <data root>/downloads"),
    arg("--no-progress", action="store_true", help="no progress bars"),
)
def _fetch(args: argparse.Namespace) -> int:
    from ssl4sar.data.download import fetch

    path = fetch(args.name, dest=args.dest, manifest=load_manifest(args.manifest), progress=not args.no_progress,
                 force=args.force, keep_archive=args.keep_archive)
    sys.stdout.write(f"{args.name}: {path}\n")
    return 0


@subcommand(
    "synth", "generate synthetic glacier scenes (CaFFe and SSL4SAR layouts, time series)",
    arg("--out", type=Path, required=True, help="output folder"),
    arg("--preset", default="paper", help=f"preset whose 'synthetic' section sets sizes and counts: a name "
        f"({', '.join(PRESETS)}) or a YAML file with the same schema (default: paper, the library default; the book "
        "uses demo)"),
    arg("--seed", type=int, default=0, help="random seed (same seed, same data)"),
    arg("--layouts", nargs="+", choices=SYNTHETIC_LAYOUTS, default=None,
        help="what to generate (default: the generator's default, caffe and ssl4sar)"),
    arg("--force", action="store_true", help="replace what an earlier (possibly interrupted) run left in --out"),
    arg("--no-progress", action="store_true", help="no progress bars"),
)
def _synth(args: argparse.Namespace) -> int:
    from ssl4sar.config import check_seed, load_preset
    from ssl4sar.data.download import run_generator

    load_preset(args.preset)  # an unknown name or a bad YAML file, before the output folder is touched
    check_seed(args.seed)
    out = run_generator("ssl4sar.data.synthetic.generate", args.out, preset=args.preset, seed=args.seed,
                        layouts=args.layouts, overwrite=args.force, progress=not args.no_progress)
    layouts = ", ".join(args.layouts) if args.layouts else "default layouts"
    sys.stdout.write(f"synthetic data ({args.preset}, seed {args.seed}, {layouts}): {out}\n")
    return 0


@subcommand(
    "construct", "build the SSL4SAR pretraining layout from raw georeferenced Sentinel-1 / Sentinel-2 scenes",
    arg("--sar", type=Path, required=True, help="folder of Sentinel-1 GeoTIFFs (searched recursively)"),
    arg("--optical", type=Path, required=True, help="folder of Sentinel-2 L2A files (multi-band, band groups or "
        "single bands)"),
    arg("--aoi", type=Path, required=True, help="GeoJSON FeatureCollection, one feature per glacier (property "
        "'glacier'; Polygon or bbox)"),
    arg("--out", type=Path, required=True, help="output folder (re-running into it resumes)"),
    arg("--resolution-m", type=float, default=None, help="grid spacing in metres (default: the first SAR scene's)"),
    arg("--sar-units", default="auto", choices=("auto", "db", "intensity", "amplitude", "dn", "uint8"),
        help="what the SAR values are (default: auto-detect per scene)"),
    arg("--db-range", type=float, nargs=2, default=None, metavar=("LOW", "HIGH"),
        help="sigma0 range in dB mapped to 1..255 (default: -30 5)"),
    arg("--val-fraction", type=float, default=0.2, help="share of each glacier's latest scenes put in sar/val"),
    arg("--min-valid-fraction", type=float, default=0.05, help="skip outputs with less valid area than this"),
    arg("--workers", type=int, default=1, metavar="N", help="processes converting SAR scenes side by side (same "
        "files for any number; about one per core; default 1)"),
    arg("--no-progress", action="store_true", help="no progress bars"),
)
def _construct(args: argparse.Namespace) -> int:
    from ssl4sar.data.construct import DEFAULT_DB_RANGE, construct_ssl4sar

    with disk_full_raises(args.out, "the constructed dataset",
                          "free some space, then run the same command: the scenes already written are kept"):
        result = construct_ssl4sar(
            args.sar, args.optical, args.aoi, args.out, resolution_m=args.resolution_m, sar_units=args.sar_units,
            db_range=tuple(args.db_range) if args.db_range else DEFAULT_DB_RANGE, val_fraction=args.val_fraction,
            min_valid_fraction=args.min_valid_fraction, workers=args.workers, progress=not args.no_progress)
    n_sar = sum(1 for r in result.rows if r["sensor"] != "S2")
    n_opt = len(result.rows) - n_sar
    sys.stdout.write(f"SSL4SAR layout in {args.out}: {n_sar} SAR image(s), {n_opt} optical image(s) "
                     f"({len(result.written)} written, {len(result.reused)} reused); {len(result.skipped)} input(s) "
                     f"skipped, see {result.skipped_path}\n")
    return 0
