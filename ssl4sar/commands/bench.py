"""``ssl4sar bench`` and ``python -m ssl4sar.bench``: throughput / memory benchmarks of this machine
(:func:`ssl4sar.bench.run_benchmarks`)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import ssl4sar.bench
from ssl4sar.bench import BENCHMARKS, _selected, plan_benchmarks, render_markdown, run_benchmarks
from ssl4sar.errors import DataError

__all__ = ["configure", "run", "main"]

log = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``python -m ssl4sar.bench`` (and of an ``ssl4sar bench`` sub-command)."""
    parser.add_argument(
        "--quick",
        action="store_true",
        help="few iterations and small inputs (minutes on a laptop CPU); default: the full GPU set",
    )
    parser.add_argument("--out", default="bench_results", help="output folder for bench.json and bench.md")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        default=None,
        help=f"run only these benchmarks ({', '.join(BENCHMARKS)}), rows 'name/variant' or "
        "patterns such as 'finetune_step/bf16*'",
    )
    parser.add_argument(
        "--preset",
        default="paper",
        help="paper (default) | demo | smoke | preset YAML: model and sizes (smoke/demo are not "
        "the paper model)",
    )
    parser.add_argument(
        "--compile",
        choices=("auto", "on", "off"),
        default="auto",
        help="torch.compile variants (auto: on CUDA in full mode)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=None, help="override the training / inference batch size"
    )
    parser.add_argument(
        "--data", default=None, help="CaFFe root for the data-sampler benchmark (default synthetic)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--append",
        action="store_true",
        help="merge into the bench.json already in --out (same device / preset / mode): measure a long "
        "set in several runs",
    )
    parser.add_argument("--list", action="store_true", help="list the rows that would run, then exit")


def run(args: argparse.Namespace) -> int:
    """Run the benchmarks of ``args``; write the files; show the markdown table on stdout. Returns 0, or 2 on bad
    arguments."""
    from ssl4sar.config import load_preset
    from ssl4sar.io import ensure_writable_dir
    from ssl4sar.models.fast import resolve_device

    try:
        if args.list:
            dev = resolve_device(args.device)
            cfg = load_preset(args.preset)
            specs = plan_benchmarks(
                cfg,
                device=dev,
                quick=args.quick,
                compile=(dev.type == "cuda" and not args.quick)
                if args.compile == "auto"
                else args.compile == "on",
                batch=args.batch_size,
                preset_name=str(cfg.get("name")),
            )
            sys.stdout.write("\n".join(sp.key for sp in specs if _selected(sp.key, args.only)) + "\n")
            return 0
        ensure_writable_dir(args.out)  # before minutes of measurements
        report = run_benchmarks(
            args.out,
            quick=args.quick,
            device=args.device,
            only=args.only,
            preset=args.preset,
            compile=args.compile,
            batch=args.batch_size,
            data_dir=args.data,
            seed=args.seed,
            append=args.append,
        )
    except (ValueError, DataError) as exc:
        log.error("%s", exc)
        return 2
    sys.stdout.write(render_markdown(report))
    sys.stdout.write(f"\nwrote {Path(args.out) / 'bench.json'} and {Path(args.out) / 'bench.md'}\n")
    return 1 if report["failed"] else 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ssl4sar.bench``."""
    description = (ssl4sar.bench.__doc__ or "").split("\n")[0]
    parser = argparse.ArgumentParser(prog="python -m ssl4sar.bench", description=description)
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    configure(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose == 0 else logging.DEBUG,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
