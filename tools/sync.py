"""Regenerate the files that are copies of another file in the repository (``make sync``).

The editable sources and their generated copies:

* ``data_manifest.yaml`` → ``ssl4sar/data/data_manifest.yaml`` (package data, read from a wheel install);
* ``book/_config.yml`` ``repository.url`` / ``repository.branch`` → the Colab / JupyterHub setup cell at the top of
  every chapter ``notebooks/NN_*.py``, and the per-chapter "Open in Colab" tables of ``README.md`` and
  ``book/running.md`` (between ``<!-- colab-links:start -->`` and ``<!-- colab-links:end -->``);
* ``notebooks/NN_*.py`` → ``notebooks/NN_*.ipynb`` (jupytext, no outputs, deterministic cell ids, kernel
  ``python3`` so that Colab and any JupyterHub open them without asking for a kernel).

``python tools/sync.py`` writes every stale copy; ``python tools/sync.py --check`` only lists them and exits 1
when there are any (tests/test_sync.py runs the check).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import urlparse

import yaml

ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger("ssl4sar.sync")

MANIFEST_SOURCE = "data_manifest.yaml"
MANIFEST_COPY = "ssl4sar/data/data_manifest.yaml"
BOOK_CONFIG = "book/_config.yml"
LINK_PAGES = ("README.md", "book/running.md")
LINKS_START, LINKS_END = "<!-- colab-links:start -->", "<!-- colab-links:end -->"
SETUP_MARKER = "# Colab / JupyterHub setup"
CHAPTER_GLOB = "[0-9][0-9]_*.py"
COLAB = "https://colab.research.google.com/github"
TWIN_KERNEL = {"display_name": "Python 3", "language": "python", "name": "python3"}


def repository(root: Path = ROOT) -> tuple[str, str]:
    """``(url, branch)`` from ``book/_config.yml``; the URL must be a GitHub repository (Colab opens those)."""
    cfg = yaml.safe_load((root / BOOK_CONFIG).read_text(encoding="utf-8")) or {}
    repo = cfg.get("repository") or {}
    url, branch = str(repo.get("url") or "").rstrip("/"), str(repo.get("branch") or "main")
    parsed = urlparse(url)
    if parsed.netloc != "github.com" or len([p for p in parsed.path.split("/") if p]) != 2:
        raise SystemExit(f"{root / BOOK_CONFIG}: repository.url must be https://github.com/OWNER/NAME, got {url!r}")
    return url.removesuffix(".git"), branch


def chapters(root: Path = ROOT) -> list[Path]:
    return sorted((root / "notebooks").glob(CHAPTER_GLOB))


# ------------------------------------------------------------------------------------------- the setup cell


def setup_cell(url: str) -> str:
    """The first cell of every chapter: installs ssl4sar[book] from ``url`` only when it is not importable."""
    return f'''# %% tags=["remove-cell"]
{SETUP_MARKER} (written by `make sync` from book/_config.yml): installs ssl4sar with its book
# extra when it is not importable (Colab, a fresh JupyterHub kernel). Where ssl4sar is installed (`make book`,
# papermill, a clone with `pip install -e ".[book]"`) it does nothing. `device = "auto"` then uses the GPU.
import importlib.util
import subprocess
import sys

if importlib.util.find_spec("ssl4sar") is None:
    pip = [sys.executable, "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "ssl4sar[book] @ git+{url}"], check=True)
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    print("GPU:", gpu or "none (on Colab: Runtime > Change runtime type > GPU)")

'''


def with_setup_cell(text: str, url: str) -> str:
    """``text`` (a jupytext percent file) with the setup cell right after the YAML header, replacing an old one."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].rstrip() != "# ---":
        raise SystemExit("a chapter must start with its jupytext header (# ---)")
    header_end = next(i for i in range(1, len(lines)) if lines[i].rstrip() == "# ---") + 1
    start = header_end
    while start < len(lines) and not lines[start].strip():
        start += 1
    rest = lines[start:]
    if len(rest) > 1 and rest[1].startswith(SETUP_MARKER):   # drop the old setup cell
        nxt = next((i for i in range(1, len(rest)) if rest[i].startswith("# %%")), len(rest))
        rest = rest[nxt:]
    return "".join(lines[:header_end]) + "\n" + setup_cell(url) + "".join(rest)


# ------------------------------------------------------------------------------------------ notebook twins


def notebook_twin(source: Path) -> str:
    """The ``.ipynb`` text of the jupytext percent file ``source``: no outputs, stable ids, kernel python3."""
    import jupytext

    nb = jupytext.read(source, fmt="py:percent")
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"{source.stem[:2]}-{i:03d}"
    nb.metadata["kernelspec"] = dict(TWIN_KERNEL)
    return jupytext.writes(nb, fmt="ipynb")


# ---------------------------------------------------------------------------------------------- link tables


def chapter_title(source: Path) -> str:
    match = re.search(r"^# # (.+)$", source.read_text(encoding="utf-8"), flags=re.M)
    return match.group(1).strip() if match else source.stem


def colab_url(url: str, branch: str, twin: str) -> str:
    owner_name = urlparse(url).path.strip("/")
    return f"{COLAB}/{owner_name}/blob/{branch}/{twin}"


def link_table(root: Path, url: str, branch: str) -> str:
    rows = ["| chapter | open |", "|---|---|"]
    for src in chapters(root):
        twin = f"notebooks/{src.stem}.ipynb"
        rows.append(f"| {src.stem[:2]} {chapter_title(src)} | [Open in Colab]({colab_url(url, branch, twin)}) |")
    return "\n".join(rows)


def with_link_table(text: str, table: str, page: Path) -> str:
    if LINKS_START not in text or LINKS_END not in text:
        raise SystemExit(f"{page}: no {LINKS_START} … {LINKS_END} block for the Colab links")
    head, rest = text.split(LINKS_START, 1)
    _, tail = rest.split(LINKS_END, 1)
    return f"{head}{LINKS_START}\n{table}\n{LINKS_END}{tail}"


# ------------------------------------------------------------------------------------------------- driver


def expected_files(root: Path = ROOT) -> dict[Path, Callable[[], str | bytes]]:
    """``{path: function giving its expected content}`` for every generated file, in the order to write them."""
    url, branch = repository(root)
    out: dict[Path, Callable[[], str | bytes]] = {
        root / MANIFEST_COPY: lambda: (root / MANIFEST_SOURCE).read_bytes()}
    for src in chapters(root):
        out[src] = lambda src=src: with_setup_cell(src.read_text(encoding="utf-8"), url)
    for src in chapters(root):   # after the setup cells: the twins are made from the updated .py files
        out[src.with_suffix(".ipynb")] = lambda src=src: notebook_twin(src)
    table = link_table(root, url, branch)
    for page in LINK_PAGES:
        out[root / page] = lambda page=page: with_link_table((root / page).read_text(encoding="utf-8"), table,
                                                             root / page)
    return out


def _current(path: Path) -> bytes | None:
    return path.read_bytes() if path.is_file() else None


def _encode(content: str | bytes) -> bytes:
    return content if isinstance(content, bytes) else content.encode("utf-8")


def stale(root: Path = ROOT) -> list[Path]:
    """Generated files whose content differs from what ``make sync`` would write (nothing is written)."""
    return [p for p, make in expected_files(root).items() if _current(p) != _encode(make())]


def orphan_twins(root: Path = ROOT) -> list[Path]:
    """``notebooks/NN_*.ipynb`` without a ``.py`` source (a renamed or deleted chapter)."""
    return [p for p in sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb")) if not p.with_suffix(".py").is_file()]


def write_all(root: Path = ROOT) -> list[Path]:
    changed = []
    for path, make in expected_files(root).items():
        data = _encode(make())
        if _current(path) == data:
            continue
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
        changed.append(path)
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="list stale copies, write nothing; exit 1 if any")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.check:
        bad = stale() + orphan_twins()
        for p in bad:
            log.info("stale: %s", p.relative_to(ROOT))
        return 1 if bad else 0
    for p in write_all():
        log.info("wrote %s", p.relative_to(ROOT))
    for p in orphan_twins():
        log.info("orphan (no .py source; delete it): %s", p.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
