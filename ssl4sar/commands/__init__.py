"""The sub-commands of the ``ssl4sar`` command line, one module each.

Every module provides ``configure(parser: argparse.ArgumentParser) -> None`` (its arguments) and
``run(args: argparse.Namespace) -> int`` (the exit status) and calls the library for the work; :mod:`ssl4sar.cli`
imports a module only when its command runs, so ``ssl4sar --help`` stays fast.

A module imports the library it calls (torch, timm, Lightning, pandas, scipy, matplotlib) inside ``run``, not at
its top: ``configure`` needs only light modules (:mod:`ssl4sar.config`, :mod:`ssl4sar.errors`, :mod:`ssl4sar.io`,
:mod:`ssl4sar.data.caffe`), so ``ssl4sar COMMAND --help`` and a mistyped option answer in well under a second
instead of 5-8 s (``tests/test_cli_options.py`` checks that no heavy library is imported while parsing).
"""
