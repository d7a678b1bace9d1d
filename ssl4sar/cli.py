"""The ``ssl4sar`` command line.

Each sub-command is one module of :mod:`ssl4sar.commands`, which provides
``configure(parser: argparse.ArgumentParser) -> None`` and ``run(args: argparse.Namespace) -> int``.
Modules are imported only when their command runs, so ``ssl4sar --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("ssl4sar.commands.data", "list, fetch, generate (synth) and construct datasets"),
    "pretrain": ("ssl4sar.commands.pretrain", "self-supervised pretraining (OptSimMIM or OptTranslator)"),
    "finetune": ("ssl4sar.commands.finetune", "fine-tune TYRION on CaFFe-layout data"),
    "evaluate": ("ssl4sar.commands.evaluate", "evaluate checkpoints (single, ensemble, TTA) on a CaFFe split"),
    "predict": ("ssl4sar.commands.predict", "georeferenced calving fronts for new scenes"),
    "timeseries": ("ssl4sar.commands.timeseries", "front-position time series from predicted fronts"),
    "protocol": ("ssl4sar.commands.protocol",
                 "the book's experiments end to end (pretraining, seeds, tests, ensembles)"),
    "bench": ("ssl4sar.commands.bench", "throughput / memory benchmarks of this machine"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser; with ``command`` given, only that sub-command is configured (lazy import)."""
    from ssl4sar import __version__

    parser = argparse.ArgumentParser(
        prog="ssl4sar",
        description="Glacier calving-front extraction from SAR with self-supervised pretraining (SSL4SAR).",
    )
    parser.add_argument("--version", action="version", version=f"ssl4sar {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            module = importlib.import_module(module_name)
            module.configure(p)
            p.set_defaults(_run=module.run)
    return parser


def _command_in(argv: list[str]) -> str | None:
    for token in argv:
        if token in COMMANDS:
            return token
        if not token.startswith("-"):
            return None
    return None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command_in(argv))
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose + 1, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if args.command is None:
        parser.print_help()
        return 0
    from ssl4sar.io import output_locks

    with output_locks():  # one command at a time per output folder
        return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
