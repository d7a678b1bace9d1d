"""The ``ssl4sar`` command line as a whole: every long-running command can run without progress bars, and one
concept has one option name across all sub-commands.

The argparse tree is walked through :func:`ssl4sar.cli.build_parser` (each sub-command configured as ``ssl4sar
COMMAND`` would), so a new sub-command or option is checked without changing this file.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from ssl4sar.cli import COMMANDS, build_parser

#: Commands that draw progress bars (downloads, generation, construction, training, inference). ``data list``,
#: ``timeseries`` (measures a few hundred polylines) and ``bench`` (timed loops; a bar would disturb them) draw none.
LONG_RUNNING = {"data fetch", "data synth", "data construct", "pretrain", "finetune", "evaluate", "predict"}

#: Spellings of one concept: at most one of each group may appear anywhere in the CLI.
SYNONYMS = [
    {"--no-progress", "--quiet", "--no-progress-bar", "--progress"},
    {"--batch-size", "--batch", "--bs"},
    {"--tta-flips", "--flips"},
    {"--resolution-m", "--resolution", "--res", "--pixel-spacing"},
    {"--force", "--overwrite", "--redo"},
    {"--out", "--output", "--out-dir", "--output-dir"},
    {"--checkpoint", "--ckpt", "--model"},
    {"--device", "--gpu"},
    {"--seed", "--random-seed"},
    {"--min-front-length-m", "--min-front-length"},
]


def _options() -> dict[str, list[argparse.Action]]:
    """``{"data fetch": [actions], "predict": [...], ...}`` for every leaf command (optional arguments only)."""
    leaves: dict[str, list[argparse.Action]] = {}

    def walk(parser: argparse.ArgumentParser, path: str) -> None:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        own = [a for a in parser._actions if a.option_strings and not isinstance(a, argparse._HelpAction)]
        if not subs:
            leaves[path] = own
        for sub in subs:   # options of a parent group (``data --manifest``) apply to each of its commands
            for name, child in sub.choices.items():
                walk(child, f"{path} {name}")
                leaves[f"{path} {name}"] = leaves[f"{path} {name}"] + own

    for command in COMMANDS:
        top = build_parser(command)
        sub = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
        walk(sub.choices[command], command)
    return leaves


OPTIONS = _options()
#: a plain string and a Path are the same kind of value on the command line
_VALUE_KINDS = {None: "text", str: "text", Path: "text"}


def test_the_walk_sees_every_command() -> None:
    assert LONG_RUNNING <= set(OPTIONS)
    assert {"data list", "timeseries", "bench"} <= set(OPTIONS)


@pytest.mark.parametrize("command", sorted(LONG_RUNNING))
def test_long_running_commands_have_no_progress(command: str) -> None:
    flags = {s: a for a in OPTIONS[command] for s in a.option_strings}
    assert "--no-progress" in flags, f"`ssl4sar {command}` has no --no-progress"
    assert flags["--no-progress"].nargs == 0, "--no-progress is a flag"


def test_one_name_per_concept() -> None:
    used = {s for actions in OPTIONS.values() for a in actions for s in a.option_strings}
    for group in SYNONYMS:
        spellings = sorted(group & used)
        assert len(spellings) <= 1, f"one concept, several option names: {spellings}"


def test_an_option_name_means_the_same_everywhere() -> None:
    """The same option string takes the same kind of value (flag / one value / a list) in every command."""
    seen: dict[str, set[tuple[object, str]]] = defaultdict(set)
    where: dict[str, list[str]] = defaultdict(list)
    for command, actions in OPTIONS.items():
        for a in actions:
            for s in a.option_strings:
                kind = "flag" if a.nargs == 0 else _VALUE_KINDS.get(a.type, getattr(a.type, "__name__", str(a.type)))
                seen[s].add((a.nargs if a.nargs != 0 else 0, kind))
                where[s].append(command)
    mixed = {s: (sorted(map(str, kinds)), where[s]) for s, kinds in seen.items() if len(kinds) > 1}
    assert not mixed, f"options whose value differs between commands: {mixed}"


#: Options whose allowed values differ between commands on purpose, with the reason.
DIFFERENT_CHOICES = {
    # training takes Lightning's precision names (as the presets' finetune/pretrain.precision), inference the
    # autocast choice of inference.precision
    "--precision": {"pretrain", "finetune"},
}


def test_an_option_takes_the_same_values_everywhere() -> None:
    """``--preset`` takes a YAML file and ``--device`` a ``cuda:N`` wherever they appear (``data synth`` took only
    preset names, ``predict`` no GPU index)."""
    choices: dict[str, dict[str, tuple | None]] = defaultdict(dict)
    for command, actions in OPTIONS.items():
        for a in actions:
            for s in a.option_strings:
                choices[s][command] = tuple(a.choices) if a.choices else None
    for option, by_command in choices.items():
        kept = {c: v for c, v in by_command.items() if c not in DIFFERENT_CHOICES.get(option, set())}
        assert len(set(kept.values())) <= 1, f"{option} takes other values in other commands: {kept}"


def test_lengths_in_metres_say_so_in_the_name() -> None:
    """Units in names (ARCHITECTURE.md): an option measured in metres ends with ``-m``."""
    for command, actions in OPTIONS.items():
        for a in actions:
            text = (a.help or "").lower()
            if "in metres" in text or "(metres)" in text or "m/px" in text:
                assert any(s.endswith("-m") for s in a.option_strings), \
                    f"`ssl4sar {command} {a.option_strings[0]}` is in metres but its name does not end in -m"


#: Libraries that take seconds to import (torch and what builds on it) or a large part of one (pandas, scipy,
#: matplotlib). Parsing the command line needs none of them, so ``--help`` and a mistyped option answer at once.
HEAVY_IMPORTS = ("torch", "torchvision", "timm", "lightning", "pandas", "scipy", "matplotlib")

_PARSE_ONLY = """
import json, sys
from ssl4sar.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
sys.stderr.write("HEAVY=" + json.dumps(sorted(m for m in {heavy} if m in sys.modules)) + "\\n")
"""


@pytest.mark.parametrize("argv", [[c, "--help"] for c in COMMANDS] + [["data", "fetch", "--help"],
                                                                        ["predict", "scene.tif", "--out", "o"],
                                                                        ["finetune", "--preset", "demo"]],
                         ids=lambda argv: " ".join(argv))
def test_parsing_the_command_line_imports_no_heavy_library(argv: list[str]) -> None:
    """``ssl4sar COMMAND --help`` and an argument error (the last two: a required option missing) exit before any
    heavy import: each command module imports its library only in ``run``."""
    code = _PARSE_ONLY.format(heavy=repr(HEAVY_IMPORTS))
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120)
    line = next((ln for ln in done.stderr.splitlines() if ln.startswith("HEAVY=")), None)
    assert line is not None, done.stderr[-2000:]
    assert line == "HEAVY=[]", f"`ssl4sar {' '.join(argv)}` imported {line[6:]}"


def test_evaluate_help_states_the_library_default_figures() -> None:
    """The help text's default (written out, so that ``--help`` need not import :mod:`ssl4sar.evaluate`) is the
    library's, and an unset ``--figures`` takes the library's."""
    from ssl4sar.commands import evaluate as command
    from ssl4sar.evaluate import DEFAULT_FIGURES

    assert command._DEFAULT_FIGURES == DEFAULT_FIGURES
    figures = next(a for a in OPTIONS["evaluate"] if "--figures" in a.option_strings)
    assert f"default {DEFAULT_FIGURES})" in figures.help
    assert figures.default is None


def _readme_command_lines() -> list[tuple[str, str]]:
    """``(leaf command, line)`` for each command shown in the README's "Command line" block; ``data a | b …``
    shows several ``data`` commands on one line."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = text.split("## Command line", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    found = []
    for line in block.splitlines():
        words = line.split()
        if len(words) < 2 or words[0] != "ssl4sar" or words[1].startswith("-"):
            continue
        if words[1] == "data":
            for part in " ".join(words[2:]).split(" | "):
                found.append((f"data {part.split()[0]}", part))
        else:
            found.append((words[1], " ".join(words[2:])))
    return found


def test_the_readme_shows_each_command_with_its_required_options_and_no_unknown_one() -> None:
    """The README showed ``pretrain`` and ``finetune`` without their required ``--out``: copied, they stopped at
    argparse's usage error."""
    lines = _readme_command_lines()
    assert {c for c, _ in lines} >= {"data fetch", "pretrain", "finetune", "evaluate", "predict", "timeseries"}
    for command, line in lines:
        tokens = {t.strip("[]") for t in line.split()}
        known = {s for a in OPTIONS[command] for s in a.option_strings}
        required = {a.option_strings[0] for a in OPTIONS[command] if a.required}
        assert required <= tokens, f"README: `ssl4sar {command}` lacks {sorted(required - tokens)}"
        unknown = {t for t in tokens if t.startswith("--")} - known
        assert not unknown, f"README: `ssl4sar {command}` has no option {sorted(unknown)}"
