"""Generated copies are in sync with their sources (tools/sync.py, ``make sync``).

The package's data manifest, the setup cell at the top of every chapter, the chapters' ``.ipynb`` twins and
the "Open in Colab" tables are all written by ``make sync``; this test fails, naming the stale files, when
one of them was not regenerated after its source changed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tool_modules import load_tool

ROOT = Path(__file__).resolve().parent.parent
sync = load_tool("sync")
HINT = "run `make sync` (or: python tools/sync.py) and commit the result"


def test_generated_copies_are_up_to_date() -> None:
    stale = [str(p.relative_to(ROOT)) for p in sync.stale(ROOT)]
    assert not stale, f"out of date: {stale}; {HINT}"
    orphans = [str(p.relative_to(ROOT)) for p in sync.orphan_twins(ROOT)]
    assert not orphans, f"notebooks without a .py source: {orphans}; delete them"


def test_every_chapter_has_a_twin_without_outputs_that_opens_on_colab() -> None:
    url, branch = sync.repository(ROOT)
    chapters = sync.chapters(ROOT)
    assert len(chapters) >= 8
    readme, running = (ROOT / "README.md").read_text(), (ROOT / "book" / "running.md").read_text()
    for src in chapters:
        nb = json.loads(src.with_suffix(".ipynb").read_text())
        assert nb["metadata"]["kernelspec"]["name"] == "python3"
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert all(c["outputs"] == [] and c["execution_count"] is None for c in code), src
        setup = "".join(code[0]["source"])
        assert code[0]["metadata"]["tags"] == ["remove-cell"] and f"git+{url}" in setup, src
        assert "parameters" in code[1]["metadata"]["tags"], f"{src}: the parameters cell must follow the setup cell"
        link = f"https://colab.research.google.com/github/{url.removeprefix('https://github.com/')}/blob/{branch}/" \
               f"notebooks/{src.stem}.ipynb"
        assert link in readme and link in running, f"no Colab link for {src.name}"


def test_setup_cell_is_a_no_op_where_ssl4sar_is_installed(tmp_path: Path, monkeypatch) -> None:
    """Executed here (ssl4sar importable), the cell neither installs nor prints anything."""
    calls: list[Any] = []
    import subprocess

    monkeypatch.setattr(subprocess, "run", lambda *a, **k: calls.append(a))
    cell = sync.setup_cell("https://github.com/o/r").split("\n", 1)[1]
    exec(compile(cell, "setup-cell", "exec"), {})
    assert calls == []


def test_setup_cell_replaces_an_older_one_and_keeps_the_chapter() -> None:
    src = (ROOT / "notebooks" / "06_human_vs_model.py").read_text()
    moved = sync.with_setup_cell(src, "https://github.com/other/fork")
    assert moved.count(sync.SETUP_MARKER) == 1 and "git+https://github.com/other/fork" in moved
    assert sync.with_setup_cell(moved, sync.repository(ROOT)[0]) == src


def test_a_stale_copy_is_reported(tmp_path: Path) -> None:
    for rel in ("data_manifest.yaml", "book/_config.yml", "README.md", "book/running.md"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes((ROOT / rel).read_bytes())
    (tmp_path / "ssl4sar" / "data").mkdir(parents=True)
    (tmp_path / "ssl4sar" / "data" / "data_manifest.yaml").write_text("version: 0\n")
    (tmp_path / "notebooks").mkdir()
    for name in ("01_dataset.py", "01_dataset.ipynb"):
        (tmp_path / "notebooks" / name).write_bytes((ROOT / "notebooks" / name).read_bytes())
    assert [p.name for p in sync.stale(tmp_path)] == ["data_manifest.yaml", "README.md", "running.md"]
    sync.write_all(tmp_path)
    assert sync.stale(tmp_path) == []


def test_repository_url_must_be_on_github(tmp_path: Path) -> None:
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "_config.yml").write_text("repository:\n  url: ''\n")
    with pytest.raises(SystemExit, match="repository.url"):
        sync.repository(tmp_path)
