#!/usr/bin/env python
"""Build driver of the ssl4sar book.

``build``  discovers the chapters ``notebooks/NN_name.py`` (jupytext percent files) in name order,
           generates the synthetic data set when no real data is given, executes every chapter with
           papermill (parameters ``preset``, ``data_dir``, ``ssl4sar_dir``, ``work_dir``, ``seed``) into
           ``book/chapters/NN_name.ipynb`` and renders the book with Jupyter Book (HTML, offline, no
           execution at render time) into ``book/_build/html``. Per-chapter wall times go to
           ``book/_build/timings.json``. A failing chapter stops the build with its name and the cell error.
``check``  the browser check of the built site (``tools/site_check.py``): every page of ``book/_build/html``
           in headless Chromium, its images, links and screenshots.
``toc``    prints (or, with ``--write``, writes to ``book/_toc.yml``) the table of contents for the
           chapters present in ``notebooks/``.

The functions are also used by ``tests/test_notebooks.py`` (papermill smoke run of every chapter) and
``tests/test_book_check.py``, so that the tests and ``make book`` share one code path.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# the site check is a sibling file; when this file is loaded by path (the tests) its folder is not on sys.path
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.append(str(Path(__file__).resolve().parent))
from site_check import (  # noqa: E402  (names marked F401 are re-exported: the tests use book.parse_page …)
    CHAPTER_SUBDIR,
    CheckReport,  # noqa: F401
    ParsedPage,  # noqa: F401
    SiteCheckError,
    check_site,
    find_chromium,  # noqa: F401
    list_pages,  # noqa: F401
    parse_page,  # noqa: F401
    run_chromium,  # noqa: F401
    serve_directory,  # noqa: F401
)

log = logging.getLogger("book")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
BOOK_DIR = ROOT / "book"
KERNEL_NAME = "ssl4sar"
KERNEL_DISPLAY_NAME = "Python (ssl4sar)"

#: Names every chapter's ``parameters`` cell must define.
REQUIRED_PARAMETERS = ("preset", "data_dir", "ssl4sar_dir", "work_dir", "device", "seed")
#: Hand-written pages after the chapters, in this order (files in ``book/`` without suffix).
APPENDIX_PAGES = ("differences", "reference-implementation", "running", "references")
ROOT_PAGE = "intro"

_CHAPTER_RE = re.compile(r"^(?P<number>\d\d)_(?P<slug>[A-Za-z0-9][A-Za-z0-9_-]*)\.py$")
_ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class BuildError(RuntimeError):
    """The book cannot be built or checked; the message says what and where."""


class NotebookError(BuildError):
    """A chapter raised an error while papermill executed it."""

    def __init__(self, chapter: Chapter, message: str, failed_copy: Path | None = None) -> None:
        self.chapter = chapter
        self.failed_copy = failed_copy
        super().__init__(message)


# --------------------------------------------------------------------------------------------------
# chapters


@dataclass(frozen=True)
class Chapter:
    """One notebook of the book: ``number`` "04", ``name`` "04_finetuning", ``source`` the .py file."""

    number: str
    name: str
    source: Path


def discover_notebooks(notebook_dir: Path = NOTEBOOK_DIR) -> list[Chapter]:
    """Chapters ``NN_name.py`` in ``notebook_dir``, sorted by name (= dependency order).

    Files not matching ``NN_name.py`` (helpers, READMEs, ``.ipynb`` copies) are ignored. A missing folder
    gives an empty list.
    """
    if not notebook_dir.is_dir():
        return []
    chapters = []
    for path in sorted(notebook_dir.glob("[0-9][0-9]_*.py")):
        match = _CHAPTER_RE.match(path.name)
        if match is None or not path.is_file():
            log.warning(
                "%s: not a chapter name (expected NN_name.py with letters, digits, _ or -); ignored", path
            )
            continue
        chapters.append(Chapter(number=match["number"], name=path.stem, source=path))
    return chapters


def select_chapters(chapters: Sequence[Chapter], only: Sequence[str] | None) -> list[Chapter]:
    """The chapters named in ``only`` (numbers ``"4"``/``"04"`` or names ``"04_finetuning"``), in book order.

    ``only`` empty or None selects every chapter. An unknown name raises ``BuildError``.
    """
    if not only:
        return list(chapters)
    wanted: set[str] = set()
    for item in only:
        for token in str(item).replace(",", " ").split():
            key = token.zfill(2) if token.isdigit() else token.removesuffix(".py")
            if not any(key in (c.number, c.name) for c in chapters):
                available = ", ".join(c.name for c in chapters) or "none"
                raise BuildError(f"--only {token}: no such chapter in notebooks/ (available: {available})")
            wanted.add(key)
    return [c for c in chapters if c.number in wanted or c.name in wanted]


def read_notebook(source: Path) -> Any:
    """The jupytext percent file ``source`` as an ``nbformat`` notebook (v4)."""
    import jupytext

    try:
        return jupytext.read(source, fmt="py:percent")
    except Exception as exc:  # jupytext raises a variety of parse errors
        raise BuildError(f"{source}: cannot be read as a jupytext percent notebook: {exc}") from exc


def declared_parameters(nb: Any, source: Path) -> list[str]:
    """Names assigned in the cell tagged ``parameters`` of ``nb``.

    Raises ``BuildError`` when there is no such cell, when it is not valid Python, or when one of
    ``REQUIRED_PARAMETERS`` is missing.
    """
    cells = [
        c for c in nb.cells if c.cell_type == "code" and "parameters" in c.get("metadata", {}).get("tags", [])
    ]
    if not cells:
        raise BuildError(
            f"{source}: no cell tagged 'parameters' (start the cell with  # %% tags=[\"parameters\"]  so that "
            "papermill can set preset, data_dir, ssl4sar_dir, work_dir, device and seed)"
        )
    if len(cells) > 1:
        raise BuildError(
            f"{source}: {len(cells)} cells are tagged 'parameters'; papermill uses one, keep one"
        )
    try:
        tree = ast.parse(cells[0].source)
    except SyntaxError as exc:
        raise BuildError(f"{source}: the 'parameters' cell is not valid Python: {exc}") from exc
    names: list[str] = []
    for node in tree.body:
        targets = (
            node.targets
            if isinstance(node, ast.Assign)
            else [node.target]
            if isinstance(node, ast.AnnAssign)
            else []
        )
        for target in targets:
            if isinstance(target, ast.Name):
                names.append(target.id)
    missing = [p for p in REQUIRED_PARAMETERS if p not in names]
    if missing:
        raise BuildError(
            f"{source}: the 'parameters' cell does not define {', '.join(missing)} "
            f"(every chapter declares {', '.join(REQUIRED_PARAMETERS)})"
        )
    return names


# --------------------------------------------------------------------------------------------------
# kernel, data, execution


def ensure_kernel(name: str = KERNEL_NAME) -> str:
    """Make sure a Jupyter kernel ``name`` runs *this* interpreter (``sys.executable``); return its name.

    Installs the kernel spec into ``sys.prefix/share/jupyter/kernels`` (``ipykernel install --sys-prefix``)
    when it is missing or points to another Python. Idempotent.
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    def current() -> tuple[str | None, Path | None]:
        try:
            spec = KernelSpecManager().get_kernel_spec(name)
        except NoSuchKernel:
            return None, None
        return (spec.argv[0] if spec.argv else None), Path(spec.resource_dir)

    executable = os.path.abspath(sys.executable)

    def runs_this_python(argv0: str | None) -> bool:
        # same folder (the venv's bin/) and the same file: python, python3 and python3.11 all qualify,
        # the system interpreter the venv links to does not
        if argv0 is None or not os.path.isabs(argv0) or not os.path.exists(argv0):
            return False
        return os.path.dirname(os.path.abspath(argv0)) == os.path.dirname(executable) and os.path.samefile(
            argv0, executable
        )

    argv0, where = current()
    if runs_this_python(argv0):
        return name
    log.info(
        "installing Jupyter kernel %r for %s into %s/share/jupyter/kernels", name, executable, sys.prefix
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ipykernel",
            "install",
            "--sys-prefix",
            "--name",
            name,
            "--display-name",
            KERNEL_DISPLAY_NAME,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise BuildError(
            f"cannot install the Jupyter kernel {name!r}: {proc.stderr.strip() or proc.stdout.strip()}"
        )
    argv0, where = current()
    if not runs_this_python(argv0):
        raise BuildError(
            f"the Jupyter kernel {name!r} found at {where} runs {argv0}, not {executable}; a kernel spec of the "
            f"same name earlier on the Jupyter path shadows ours (remove it with: jupyter kernelspec remove {name})"
        )
    return name


def prepare_synthetic_data(
    work_dir: Path,
    preset: str,
    seed: int,
    generate: Callable[..., Any] | None = None,
) -> Path:
    """The synthetic data the chapters use (CaFFe, SSL4SAR unlabeled, the front time series) in
    ``work_dir/data``, generated unless a complete set for (preset, seed) is there
    (:func:`ssl4sar.data.synthetic.ensure_synthetic_data`; ``generate`` replaces the generator in tests)."""
    try:
        from ssl4sar.data.synthetic.ensure import ensure_synthetic_data
    except ImportError as exc:
        raise BuildError(
            f"cannot import ssl4sar.data.synthetic to make the synthetic data ({exc}); "
            "give real data with --caffe DIR --ssl4sar DIR instead"
        ) from exc
    data_dir = Path(work_dir) / "data"
    ensure_synthetic_data(data_dir, preset, seed, generate=generate)
    return data_dir


@dataclass
class ChapterResult:
    """Outcome of one chapter: ``status`` is "ok", "failed" or "not run"; ``seconds`` wall time."""

    chapter: Chapter
    status: str
    seconds: float = 0.0
    output: Path | None = None
    error: str | None = None


def execute_chapter(
    chapter: Chapter,
    output_path: Path,
    parameters: dict[str, Any],
    *,
    kernel_name: str = KERNEL_NAME,
    failed_dir: Path | None = None,
    cell_timeout_s: float | None = None,
    progress_bar: bool = False,
    log_output: bool = False,
) -> ChapterResult:
    """Execute ``chapter`` with papermill and write the executed notebook to ``output_path``.

    The notebook runs with its own folder as working directory, so relative paths in it behave as when it
    is opened in Jupyter. The output is written under a temporary name and renamed on success; on failure
    the partly executed notebook is moved to ``failed_dir`` (default: next to the output) and
    ``NotebookError`` is raised with the chapter, the failing cell and the error.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    nb = read_notebook(chapter.source)
    declared = declared_parameters(nb, chapter.source)
    unknown = [k for k in parameters if k not in declared]
    if unknown:
        raise BuildError(f"{chapter.source}: the 'parameters' cell does not define {', '.join(unknown)}")
    output_path = Path(output_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    running = output_path.with_name(f".{output_path.stem}.running.ipynb")
    failed_dir = Path(failed_dir) if failed_dir is not None else output_path.parent
    log.info("executing %s", chapter.name)
    start = time.perf_counter()
    try:
        with kernel_environment():
            papermill.execute_notebook(
                nb,
                str(running),
                parameters=parameters,
                kernel_name=kernel_name,
                language="python",
                cwd=str(chapter.source.parent),
                progress_bar=progress_bar,
                log_output=log_output,
                request_save_on_cell_execute=True,
                execution_timeout=cell_timeout_s,
            )
    except PapermillExecutionError as exc:
        seconds = time.perf_counter() - start
        copy = _keep_failed(running, failed_dir / output_path.name)
        first_line = next((ln for ln in (exc.source or "").splitlines() if ln.strip()), "")
        tail = _ANSI_RE.sub("", "\n".join(exc.traceback or [])).strip().splitlines()[-12:]
        message = (
            f"{chapter.source.name} failed after {seconds:.1f} s in the code cell starting {first_line!r} "
            f"(In [{exc.exec_count}]): {exc.ename}: {exc.evalue}\n"
            + "\n".join("    " + ln for ln in tail)
            + (f"\npartly executed notebook: {copy}" if copy else "")
        )
        raise NotebookError(chapter, message, copy) from exc
    except BuildError:
        raise
    except Exception as exc:  # kernel died, cell timeout, kernel could not start …
        seconds = time.perf_counter() - start
        copy = _keep_failed(running, failed_dir / output_path.name)
        message = (
            f"{chapter.source.name} failed after {seconds:.1f} s: {type(exc).__name__}: "
            f"{_ANSI_RE.sub('', str(exc)).strip()}" + (f"\npartly executed notebook: {copy}" if copy else "")
        )
        raise NotebookError(chapter, message, copy) from exc
    hide_injected_parameters(running)
    relative_build_paths(running, parameters, cwd=chapter.source.parent, final_path=output_path)
    os.replace(running, output_path)
    seconds = time.perf_counter() - start
    log.info("%s done in %.1f s", chapter.name, seconds)
    return ChapterResult(chapter, "ok", seconds, output_path)


def hide_injected_parameters(path: Path) -> int:
    """Tag the cell papermill injected (``injected-parameters``) ``remove-cell``, so that the rendered chapter does
    not show the build machine's absolute paths; returns the number of cells tagged."""
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    tagged = 0
    for cell in nb.cells:
        tags = cell.get("metadata", {}).setdefault("tags", []) if "metadata" in cell else []
        if "injected-parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
            tagged += 1
    if tagged:
        nbformat.write(nb, str(path))
    return tagged


def relative_build_paths(path: Path, parameters: dict[str, Any], *, cwd: Path, final_path: Path) -> int:
    """Write the build machine's absolute paths in the executed notebook ``path`` relative to ``cwd`` (the folder the
    chapter ran in): the path parameters in papermill's injected cell and in its ``metadata.papermill`` record, and
    the record's input and output paths (``final_path``: where the notebook ends up). A reader who downloads the
    executed chapter from the book and runs it from a checkout's ``notebooks/`` folder then gets the book's own
    ``work_dir`` (``../book/_work/<preset>``), not a folder of the build machine. Returns the values rewritten."""
    import nbformat

    def rel(value: str) -> str:
        return os.path.relpath(value, cwd)

    absolute = {v: rel(v) for v in parameters.values() if isinstance(v, str) and os.path.isabs(v)}
    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            for old, new in absolute.items():
                cell.source = cell.source.replace(f'"{old}"', f'"{new}"')
    record = nb.metadata.get("papermill", {})
    for key, value in list(record.get("parameters", {}).items()):
        if isinstance(value, str) and value in absolute:
            record["parameters"][key] = absolute[value]
    for key, value in (("input_path", record.get("input_path")), ("output_path", str(final_path))):
        if isinstance(value, str) and os.path.isabs(value):
            record[key] = rel(value)
    nbformat.write(nb, str(path))
    return len(absolute)


#: Environment of the notebook kernels. ``MPLBACKEND`` must name the inline backend: the Makefile and the
#: tests export ``MPLBACKEND=Agg`` for the library, and a kernel inheriting that would show no figures.
#: The thread pools are pinned (here one thread; each chapter then sets torch to ``ssl4sar.book.BOOK_THREADS`` and
#: every parallel run to ``RUN_THREADS``): a training run is bit-identical across repeats with the same number of
#: threads but not between one and two, so a build must not depend on the machine's core count.
KERNEL_ENVIRONMENT = {"MPLBACKEND": "module://matplotlib_inline.backend_inline", "OMP_NUM_THREADS": "1",
                      "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
# PYTHONWARNINGS: without ipywidgets, importing tqdm.auto in a kernel warns "IProgress not found" with the absolute
# path of the virtual environment, which would stand in the chapter's output; the bars fall back to text either way.
KERNEL_ENVIRONMENT_DEFAULTS = {"HF_HUB_OFFLINE": "1", "PYTHONHASHSEED": "0",
                               # and lightning's own deprecation notice of torch's pytree API, same path
                               "PYTHONWARNINGS": "ignore:IProgress not found,ignore:`isinstance(treespec"}


@contextlib.contextmanager
def kernel_environment() -> Iterator[None]:
    """Set the variables a notebook kernel inherits (``KERNEL_ENVIRONMENT``) while it starts; restore after."""
    saved = {k: os.environ.get(k) for k in (*KERNEL_ENVIRONMENT, *KERNEL_ENVIRONMENT_DEFAULTS)}
    os.environ.update(KERNEL_ENVIRONMENT)
    for key, value in KERNEL_ENVIRONMENT_DEFAULTS.items():
        os.environ.setdefault(key, value)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def write_build_info(work_dir: Path, preset: str, seed: int) -> Path:
    """Record the thread settings and library versions of this build in ``work_dir/build_info.json``.

    The settings are those the notebook kernels get (``KERNEL_ENVIRONMENT``, torch pinned to ``BOOK_THREADS``).
    """
    from ssl4sar.book import BOOK_THREADS, WorkLayout, build_info, pin_threads

    with kernel_environment():
        pin_threads(BOOK_THREADS)  # what setup_chapter does in every chapter
        info = build_info(preset, seed)
    path = WorkLayout(work_dir).build_info
    _write_json_atomic(path, info)
    return path


def _keep_failed(running: Path, target: Path) -> Path | None:
    if not running.is_file():
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(running, target)
    return target


def run_chapters(
    chapters: Sequence[Chapter],
    *,
    output_dir: Path,
    parameters: dict[str, Any],
    kernel_name: str = KERNEL_NAME,
    failed_dir: Path | None = None,
    cell_timeout_s: float | None = None,
    progress_bar: bool = False,
    log_output: bool = False,
) -> list[ChapterResult]:
    """Execute ``chapters`` in order with the same ``parameters``; stop at the first failure.

    Returns one result per chapter: "ok", "failed" (with the error message) or "not run" (after a failure).
    Executed notebooks are written to ``output_dir/<name>.ipynb``.
    """
    results: list[ChapterResult] = []
    failed: ChapterResult | None = None
    for chapter in chapters:
        if failed is not None:
            results.append(
                ChapterResult(chapter, "not run", error=f"not run because {failed.chapter.name} failed")
            )
            continue
        start = time.perf_counter()
        try:
            results.append(
                execute_chapter(
                    chapter,
                    Path(output_dir) / f"{chapter.name}.ipynb",
                    parameters,
                    kernel_name=kernel_name,
                    failed_dir=failed_dir,
                    cell_timeout_s=cell_timeout_s,
                    progress_bar=progress_bar,
                    log_output=log_output,
                )
            )
        except BuildError as exc:
            failed = ChapterResult(chapter, "failed", time.perf_counter() - start, error=str(exc))
            results.append(failed)
    return results


def notebook_parameters(
    *, preset: str, work_dir: Path, data_dir: Path | None, ssl4sar_dir: Path | None, seed: int
) -> dict[str, Any]:
    """The papermill parameters every chapter receives (paths absolute, ``None`` for synthetic data).

    A ``preset`` naming a YAML file is made absolute too, since chapters run in their own folder.
    """
    if preset.endswith((".yaml", ".yml")) and Path(preset).is_file():
        preset = str(Path(preset).resolve())
    return {
        "preset": preset,
        "data_dir": str(Path(data_dir).resolve()) if data_dir is not None else None,
        "ssl4sar_dir": str(Path(ssl4sar_dir).resolve()) if ssl4sar_dir is not None else None,
        "work_dir": str(Path(work_dir).resolve()),
        "seed": int(seed),
    }


# --------------------------------------------------------------------------------------------------
# table of contents and Jupyter Book


def render_toc(chapter_names: Sequence[str]) -> str:
    """The Jupyter Book 1.x ``_toc.yml`` text: intro, the chapters ``chapters/<name>``, then the appendix."""
    lines = [
        "# Table of contents of the ssl4sar book (Jupyter Book 1.x, format jb-book).",
        "# `make book` generates the table it builds with from the notebooks present (tools/book.py);",
        "# this committed copy lists the planned chapters; refresh it with: python tools/book.py toc --write",
        "format: jb-book",
        f"root: {ROOT_PAGE}",
        "parts:",
    ]
    if chapter_names:
        lines += ["  - caption: Chapters", "    numbered: true", "    chapters:"]
        lines += [f"      - file: {CHAPTER_SUBDIR}/{name}" for name in chapter_names]
    lines += ["  - caption: About this book", "    chapters:"]
    lines += [f"      - file: {page}" for page in APPENDIX_PAGES]
    return "\n".join(lines) + "\n"


def executed_chapters(chapters: Sequence[Chapter], chapter_dir: Path) -> list[str]:
    """Names of ``chapters`` whose executed notebook exists in ``chapter_dir``; warns about stale or missing ones."""
    present = []
    for chapter in chapters:
        executed = chapter_dir / f"{chapter.name}.ipynb"
        if not executed.is_file():
            log.warning(
                "%s has not been executed (no %s); it is left out of the book", chapter.name, executed
            )
            continue
        if executed.stat().st_mtime < chapter.source.stat().st_mtime:
            log.warning(
                "%s is older than %s; re-run it with: tools/book.py build --only %s",
                executed,
                chapter.source,
                chapter.number,
            )
        present.append(chapter.name)
    return present


def run_jupyter_book(
    book_dir: Path, toc_path: Path, *, rebuild_all: bool = False, strict: bool = False
) -> float:
    """Render ``book_dir`` with Jupyter Book (HTML) using the table of contents ``toc_path``; return seconds.

    Runs with this interpreter; raises ``BuildError`` with the tail of the log when the build fails.
    """
    missing = [p for p in (ROOT_PAGE, *APPENDIX_PAGES) if not (book_dir / f"{p}.md").is_file()]
    if missing:
        raise BuildError(f"{book_dir}: missing hand-written pages {', '.join(p + '.md' for p in missing)}")
    cmd = [
        sys.executable,
        "-c",
        "import sys; from jupyter_book.cli.main import main; sys.exit(main())",
        "build",
        str(book_dir),
        "--toc",
        str(toc_path),
        "--builder",
        "html",
    ]
    if rebuild_all:
        cmd.append("--all")
    if strict:
        cmd += ["-W", "--keep-going"]
    log.info("rendering the book with Jupyter Book")
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=book_dir)
    seconds = time.perf_counter() - start
    output = _ANSI_RE.sub("", proc.stdout + proc.stderr)
    warnings = [ln for ln in output.splitlines() if "WARNING" in ln or "ERROR" in ln]
    for line in warnings[:30]:
        log.warning("sphinx: %s", line.strip())
    if len(warnings) > 30:
        log.warning("sphinx: … %d more warnings", len(warnings) - 30)
    if proc.returncode != 0 or not (book_dir / "_build" / "html" / "index.html").is_file():
        tail = "\n".join(output.strip().splitlines()[-25:])
        raise BuildError(f"jupyter-book build failed (exit {proc.returncode}):\n{tail}")
    log.info(
        "Jupyter Book done in %.1f s (%d warnings): %s",
        seconds,
        len(warnings),
        book_dir / "_build" / "html" / "index.html",
    )
    return seconds


# --------------------------------------------------------------------------------------------------
# build command


def _preset_label(preset: str) -> str:
    return Path(preset).stem if preset.endswith((".yaml", ".yml")) else preset


def _check_data_dir(path: Path | None, option: str) -> Path | None:
    if path is None:
        return None
    path = Path(path).expanduser()
    if not path.is_dir():
        from ssl4sar.errors import DataError

        raise DataError(path, f"{option} is not a directory", "give the root folder of the data set")
    return path


def build(args: argparse.Namespace) -> int:
    """``tools/book.py build``: execute the chapters and render the book. Returns the exit code."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("PYTHONHASHSEED", "0")
    book_dir: Path = args.book_dir.resolve()
    build_dir = book_dir / "_build"
    chapter_dir = book_dir / CHAPTER_SUBDIR
    timings_path = build_dir / "timings.json"
    chapters = discover_notebooks(args.notebooks_dir.resolve())
    total_start = time.perf_counter()
    timings = _load_timings(timings_path, args.preset)
    results: list[ChapterResult] = []

    if args.skip_execute:
        log.info("--skip-execute: rendering the executed notebooks already in %s", chapter_dir)
    else:
        selected = select_chapters(chapters, args.only)
        if not selected:
            log.info("no chapters in %s yet: building the hand-written pages only", args.notebooks_dir)
        else:
            from ssl4sar.config import load_preset

            load_preset(args.preset)  # fail now, not in the first chapter, on a misspelt preset
            caffe = _check_data_dir(args.caffe, "--caffe")
            ssl4sar = _check_data_dir(args.ssl4sar, "--ssl4sar")
            work_dir = (args.work_dir or book_dir / "_work" / _preset_label(args.preset)).resolve()
            work_dir.mkdir(parents=True, exist_ok=True)
            if caffe is None or ssl4sar is None:
                prepare_synthetic_data(work_dir, args.preset, args.seed)
            write_build_info(work_dir, args.preset, args.seed)
            kernel = ensure_kernel()
            if not args.verbose:
                logging.getLogger("papermill").setLevel(logging.WARNING)
            params = notebook_parameters(
                preset=args.preset, work_dir=work_dir, data_dir=caffe, ssl4sar_dir=ssl4sar, seed=args.seed
            )
            log.info("executing %d chapter(s) with %s", len(selected), params)
            results = run_chapters(
                selected,
                output_dir=chapter_dir,
                parameters=params,
                kernel_name=kernel,
                failed_dir=build_dir / "failed",
                cell_timeout_s=args.cell_timeout,
                progress_bar=sys.stderr.isatty(),
                log_output=args.verbose,
            )
            for r in results:
                if r.status != "not run":
                    timings["chapters"][r.chapter.name] = {
                        "status": r.status,
                        "seconds": round(r.seconds, 2),
                        "finished": _now(),
                    }
            timings["work_dir"] = str(work_dir)
            timings["execute_seconds"] = round(sum(r.seconds for r in results), 2)
            failed = [r for r in results if r.status == "failed"]
            if failed:
                timings["total_seconds"] = round(time.perf_counter() - total_start, 2)
                _write_json_atomic(timings_path, timings)
                _log_summary(results)
                log.error("chapter %s failed:\n%s", failed[0].chapter.name, failed[0].error)
                return 1

    toc_path = build_dir / "_toc.yml"
    toc_path.parent.mkdir(parents=True, exist_ok=True)
    _write_text_atomic(toc_path, render_toc(executed_chapters(chapters, chapter_dir)))
    timings["jupyter_book_seconds"] = round(
        run_jupyter_book(book_dir, toc_path, rebuild_all=args.all, strict=args.strict), 2
    )
    timings["total_seconds"] = round(time.perf_counter() - total_start, 2)
    _write_json_atomic(timings_path, timings)
    _log_summary(results)
    log.info(
        "book built in %.1f s: %s (timings in %s)",
        timings["total_seconds"],
        build_dir / "html" / "index.html",
        timings_path,
    )
    return 0


def _load_timings(path: Path, preset: str) -> dict[str, Any]:
    """Previous timings of the same preset (kept for chapters not re-run), or a fresh record."""
    fresh: dict[str, Any] = {"preset": preset, "chapters": {}}
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError):
            return fresh
        if old.get("preset") == preset and isinstance(old.get("chapters"), dict):
            fresh["chapters"] = old["chapters"]
    fresh.update({"python": sys.executable, "started": _now(), "host_cpus": os.cpu_count()})
    return fresh


def _log_summary(results: Sequence[ChapterResult]) -> None:
    for r in results:
        log.info("  %-28s %-8s %8.1f s", r.chapter.name, r.status, r.seconds)


def check(args: argparse.Namespace) -> int:
    """``tools/book.py check``: the browser check of the built book. Returns the exit code."""
    html_dir = args.html.resolve()
    screenshot_dir = (
        None
        if args.no_screenshots
        else (args.screenshots.resolve() if args.screenshots else html_dir.parent / "screenshots")
    )
    report = check_site(
        html_dir, chromium=args.chromium, screenshot_dir=screenshot_dir, timeout_s=args.timeout
    )
    for line in report.summary().splitlines():
        (log.error if line.startswith("FAIL") else log.info)("%s", line)
    return 0 if report.ok else 1


def toc(args: argparse.Namespace) -> int:
    """``tools/book.py toc``: print or write the table of contents for the chapters present."""
    text = render_toc([c.name for c in discover_notebooks(args.notebooks_dir.resolve())])
    if args.write:
        _write_text_atomic(args.book_dir / "_toc.yml", text)
        log.info("wrote %s", args.book_dir / "_toc.yml")
    else:
        sys.stdout.write(text)
    return 0


# --------------------------------------------------------------------------------------------------
# helpers and CLI


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_json_atomic(path: Path, obj: Any) -> None:
    _write_text_atomic(path, json.dumps(obj, indent=2, default=str) + "\n")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tools/book.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--book-dir", type=Path, default=BOOK_DIR, help="Jupyter Book source folder (default: book/)"
        )
        p.add_argument(
            "--notebooks-dir",
            type=Path,
            default=NOTEBOOK_DIR,
            help="folder of the NN_name.py chapters (default: notebooks/)",
        )

    b = sub.add_parser("build", help="execute the notebooks with papermill and render the book")
    common(b)
    b.add_argument("--preset", default="demo", help="paper, demo, smoke or a YAML file (default: demo)")
    b.add_argument("--caffe", type=Path, default=None, help="CaFFe root (data_raw); default: synthetic data")
    b.add_argument(
        "--ssl4sar", type=Path, default=None, help="SSL4SAR unlabeled data root; default: synthetic"
    )
    b.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="artefacts shared between chapters (default: book/_work/<preset>)",
    )
    b.add_argument("--seed", type=int, default=0, help="seed passed to every chapter (default: 0)")
    b.add_argument("--only", nargs="+", metavar="NN", help="execute only these chapters (numbers or names)")
    b.add_argument("--skip-execute", action="store_true", help="render the already executed notebooks only")
    b.add_argument(
        "--cell-timeout", type=float, default=None, help="seconds a single cell may run (default: none)"
    )
    b.add_argument("--all", action="store_true", help="re-render every page, not only changed ones")
    b.add_argument("--strict", action="store_true", help="treat Sphinx warnings as errors")
    b.add_argument("-v", "--verbose", action="store_true", help="log the output of every executed cell")
    b.set_defaults(func=build)

    c = sub.add_parser("check", help="load every built page in headless Chromium and check images and links")
    c.add_argument(
        "--html",
        type=Path,
        default=BOOK_DIR / "_build" / "html",
        help="built site (default: book/_build/html)",
    )
    c.add_argument(
        "--screenshots", type=Path, default=None, help="screenshot folder (default: book/_build/screenshots)"
    )
    c.add_argument("--no-screenshots", action="store_true", help="skip the screenshots")
    c.add_argument(
        "--chromium", default=None, help="Chromium executable (default: $CHROMIUM or chromium on PATH)"
    )
    c.add_argument("--timeout", type=float, default=60.0, help="seconds per page (default: 60)")
    c.set_defaults(func=check)

    t = sub.add_parser("toc", help="print the table of contents for the chapters present")
    common(t)
    t.add_argument("--write", action="store_true", help="write it to book/_toc.yml")
    t.set_defaults(func=toc)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s book: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        return int(args.func(args))
    except (BuildError, SiteCheckError) as exc:
        log.error("%s", exc)
        return 1
    except ValueError as exc:  # DataError and bad presets
        log.error("%s", exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
