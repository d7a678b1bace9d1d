"""ARCHITECTURE.md's module map names every module of ``ssl4sar/`` once, and only modules that exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def module_map(text: str) -> list[str]:
    """The module names of the first cells of the ``## Modules`` table (section headings in bold are skipped)."""
    section = text.split("\n## Modules\n", 1)[1].split("\n## ", 1)[0]
    return [m.group(1) for m in re.finditer(r"^\| `([^`]+)` \|", section, re.MULTILINE)]


def package_modules(package: Path) -> set[str]:
    """Dotted names of the package's modules relative to it; a subpackage by its name, the top ``__init__`` left out."""
    names = set()
    for path in package.rglob("*.py"):
        parts = path.relative_to(package).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts:
            names.add(".".join(parts))
    return names


def test_module_map_matches_the_package() -> None:
    listed = module_map((ROOT / "ARCHITECTURE.md").read_text())
    assert len(listed) == len(set(listed)), f"listed twice: {sorted({m for m in listed if listed.count(m) > 1})}"
    present = package_modules(ROOT / "ssl4sar")
    assert not set(listed) - present, f"in ARCHITECTURE.md but not in ssl4sar/: {sorted(set(listed) - present)}"
    assert not present - set(listed), f"in ssl4sar/ but not in ARCHITECTURE.md: {sorted(present - set(listed))}"


def test_module_map_parser_on_a_small_page(tmp_path: Path) -> None:
    page = ("# x\n\n## Modules\n| module | job |\n|---|---|\n| **Data** | |\n| `data` | the package |\n"
            "| `data.caffe` | CaFFe |\n\n## Batches\n| `not.a.module` | after the section |\n")
    assert module_map(page) == ["data", "data.caffe"]
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    for name in ("__init__.py", "a.py", "sub/__init__.py", "sub/b.py", "sub/__main__.py"):
        (tmp_path / "pkg" / name).write_text("")
    assert package_modules(tmp_path / "pkg") == {"a", "sub", "sub.b", "sub.__main__"}
