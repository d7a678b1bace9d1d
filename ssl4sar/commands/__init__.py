"""The sub-commands of the ``ssl4sar`` command line, one module each.

Every module provides ``configure(parser: argparse.ArgumentParser) -> None`` (its arguments) and
``run(args: argparse.Namespace) -> int`` (the exit status) and calls the library for the work; :mod:`ssl4sar.cli`
imports a module only when its command runs, so ``ssl4sar --help`` stays fast.
"""
