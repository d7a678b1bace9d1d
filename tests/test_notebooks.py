"""Papermill smoke run of the book's chapters, and tests of the build driver ``tools/book.py`` that runs them.

``test_chapter_smoke`` executes every ``notebooks/NN_*.py`` with ``preset="smoke"`` on synthetic data, in
book order, in one shared work folder, through the same functions ``make book`` uses
(``tools/book.py``: data preparation, kernel, papermill). Each chapter is its own test; a chapter whose
predecessor failed is skipped with the name of the failed one. With no notebooks present no such test is
collected. The other tests exercise the driver on throw-away notebooks written into ``tmp_path``.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from tool_modules import load_tool

from ssl4sar.data.synthetic import COMPLETE_MARKER

ROOT = Path(__file__).resolve().parent.parent
book = load_tool("book")
CHAPTERS = book.discover_notebooks(ROOT / "notebooks")
CELL_TIMEOUT_S = 900


class SmokeRun:
    """Runs chapters lazily and in order in one work folder; remembers each chapter's result."""

    def __init__(
        self,
        root: Path,
        chapters: Sequence[Any],
        *,
        preset: str = "smoke",
        seed: int = 0,
        generate: Callable[..., Any] | None = None,
        synthetic: bool = True,
    ) -> None:
        self.chapters = list(chapters)
        self.preset, self.seed = preset, seed
        self.work_dir = root / "work"
        self.output_dir = root / "executed"
        self.failed_dir = root / "failed"
        self._generate = generate
        self._synthetic = synthetic
        self._kernel: str | None = None
        self.results: dict[str, Any] = {}

    def _prepare(self) -> str:
        if self._kernel is None:
            self.work_dir.mkdir(parents=True, exist_ok=True)
            if self._synthetic:
                book.prepare_synthetic_data(self.work_dir, self.preset, self.seed, self._generate)
            book.write_build_info(self.work_dir, self.preset, self.seed)
            self._kernel = book.ensure_kernel()
        return self._kernel

    def run_through(self, chapter: Any) -> Any:
        """Execute every chapter up to and including ``chapter`` that has not run yet; return its result."""
        for ch in self.chapters:
            if ch.name not in self.results:
                failed = next((r for r in self.results.values() if r.status == "failed"), None)
                if failed is not None:
                    self.results[ch.name] = book.ChapterResult(
                        ch, "not run", error=f"not run because {failed.chapter.name} failed"
                    )
                else:
                    try:
                        params = book.notebook_parameters(
                            preset=self.preset,
                            work_dir=self.work_dir,
                            data_dir=None,
                            ssl4sar_dir=None,
                            seed=self.seed,
                        )
                        self.results[ch.name] = book.execute_chapter(
                            ch,
                            self.output_dir / f"{ch.name}.ipynb",
                            params,
                            kernel_name=self._prepare(),
                            failed_dir=self.failed_dir,
                            cell_timeout_s=CELL_TIMEOUT_S,
                        )
                    except book.BuildError as exc:
                        self.results[ch.name] = book.ChapterResult(ch, "failed", error=str(exc))
            if ch.name == chapter.name:
                return self.results[ch.name]
        raise KeyError(f"{chapter.name} is not one of the chapters of this run")


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> SmokeRun:
    return SmokeRun(tmp_path_factory.mktemp("smoke-book"), CHAPTERS)


if CHAPTERS:

    @pytest.mark.notebooks
    @pytest.mark.parametrize("chapter", CHAPTERS, ids=[c.name for c in CHAPTERS])
    def test_chapter_smoke(smoke_run: SmokeRun, chapter: Any) -> None:
        result = smoke_run.run_through(chapter)
        if result.status == "not run":
            pytest.skip(result.error)
        assert result.status == "ok", result.error
        assert result.output is not None and result.output.is_file()


def _chapter(name: str) -> Any:
    return next(c for c in CHAPTERS if c.name.startswith(name))


def _run_alone(chapter: Any, root: Path, **extra: Any) -> Any:
    """Execute one chapter with the smoke preset in a fresh work folder ``root/work`` (synthetic data made first)."""
    work = root / "work"
    work.mkdir(parents=True, exist_ok=True)
    book.prepare_synthetic_data(work, "smoke", 0)
    book.write_build_info(work, "smoke", 0)
    params = {**book.notebook_parameters(preset="smoke", work_dir=work, data_dir=None, ssl4sar_dir=None, seed=0),
              **extra}
    return book.execute_chapter(chapter, root / "executed" / f"{chapter.name}.ipynb", params,
                                kernel_name=book.ensure_kernel(), failed_dir=root / "failed",
                                cell_timeout_s=CELL_TIMEOUT_S)


@pytest.mark.notebooks
@pytest.mark.skipif(not any(c.name.startswith("04_") for c in CHAPTERS), reason="no chapter 04")
def test_finetuning_chapter_gives_identical_tables_in_two_fresh_builds(tmp_path: Path) -> None:
    """Two smoke builds of chapter 4 in fresh work folders write the same runs.csv, byte for byte.

    The protocol's shape is checked too: three seeds of scratch, one row each, with the documented columns.
    """
    from ssl4sar.experiments import RUN_COLUMNS

    tables = []
    for k in range(2):
        result = _run_alone(_chapter("04_"), tmp_path / f"build{k}", inits=["scratch"])
        assert result.status == "ok", result.error
        work = tmp_path / f"build{k}" / "work"
        runs = (work / "finetune" / "runs.csv").read_text()
        tables.append("\n".join(",".join(c for c in line.split(",")[:-2]) for line in runs.splitlines()))
        info = json.loads((work / "build_info.json").read_text())
        assert info["threads"]["torch_threads"] == 2 and info["run_threads"] == 1
        assert info["packages"]["torch"]
    # the two last columns are the run's wall time and its checkpoint path (different work folders)
    assert tables[0] == tables[1]
    import pandas as pd

    runs = pd.read_csv(tmp_path / "build0" / "work" / "finetune" / "runs.csv")
    assert list(runs.columns) == list(RUN_COLUMNS)
    assert runs["init"].tolist() == ["scratch"] * 3 and runs["seed"].tolist() == [0, 1, 2]
    assert (runs["test_images"] == 3).all() and runs["fronts_found"].between(0, 3).all()


@pytest.mark.notebooks
@pytest.mark.skipif(not any(c.name.startswith("06_") for c in CHAPTERS), reason="no chapter 06")
def test_human_vs_model_chapter_with_a_model_that_finds_one_front(tmp_path: Path) -> None:
    """Chapter 6 on an ensemble that found the front of one test scene only (constant bootstrap): no crash."""
    import numpy as np

    from ssl4sar.data import caffe
    from ssl4sar.evaluate import evaluate_predictions

    work = tmp_path / "work"
    work.mkdir()
    book.prepare_synthetic_data(work, "smoke", 0)
    root = work / "data" / "caffe"
    scenes = caffe.discover(root, "test")
    loaded = {s.stem: caffe.load_scene(s, with_bbox=False) for s in scenes}
    # the true zones of the scene with the longest front (short fronts fall to the 750 m filter), elsewhere all
    # glacier: no ocean, no front
    keep = max(scenes, key=lambda s: int(loaded[s.stem]["front"].sum()) * s.meta.resolution_m).stem
    maps = {stem: d["zones"] if stem == keep else np.full_like(d["zones"], 2) for stem, d in loaded.items()}
    for name in ("ensemble", "ensemble_tta"):
        result = evaluate_predictions(maps, root, "test", work / "evaluate" / name, figures=0, progress=False)
        assert result.summary["missing_fronts"] == len(scenes) - 1
    result = _run_alone(_chapter("06_"), tmp_path, n_bootstrap=200)
    assert result.status == "ok", result.error
    summary = pd_read(work / "human_vs_model" / "summary.csv")
    model_rows = summary[summary["group"].str.startswith("ensemble")]
    assert len(model_rows) == 2 and (model_rows["images without model front"] == len(scenes) - 1).all()


def pd_read(path: Path) -> Any:
    import pandas as pd

    return pd.read_csv(path)


# --------------------------------------------------------------------------------------------------
# the driver on throw-away notebooks

HEADER = """\
# ---
# jupyter:
#   kernelspec:
#     display_name: Python (ssl4sar)
#     language: python
#     name: ssl4sar
# ---
"""

PARAMETERS = """\
# %% tags=["parameters"]
preset = "demo"
data_dir = None
ssl4sar_dir = None
work_dir = "../book/_work/demo"
device = "auto"
seed = 0
"""


def write_notebook(folder: Path, name: str, body: str, parameters: str = PARAMETERS) -> Path:
    path = folder / f"{name}.py"
    path.write_text(
        HEADER + "\n# %% [markdown]\n# # " + name + "\n\n" + parameters + "\n" + textwrap.dedent(body)
    )
    return path


def test_discover_orders_chapters_and_ignores_other_files(tmp_path: Path) -> None:
    for name in (
        "02_pretrain.py",
        "01_data.py",
        "10_late.py",
        "helpers.py",
        "1_short.py",
        "03_bad name.py",
        "04_copy.ipynb",
        "05_notes.md",
    ):
        (tmp_path / name).write_text("# %%\n")
    chapters = book.discover_notebooks(tmp_path)
    assert [c.name for c in chapters] == ["01_data", "02_pretrain", "10_late"]
    assert [c.number for c in chapters] == ["01", "02", "10"]
    assert book.discover_notebooks(tmp_path / "absent") == []

    assert [c.name for c in book.select_chapters(chapters, ["10", "1"])] == ["01_data", "10_late"]
    assert [c.name for c in book.select_chapters(chapters, ["02_pretrain.py"])] == ["02_pretrain"]
    assert [c.name for c in book.select_chapters(chapters, ["01,02"])] == ["01_data", "02_pretrain"]
    assert book.select_chapters(chapters, None) == chapters
    with pytest.raises(book.BuildError, match=r"--only 07.*01_data, 02_pretrain, 10_late"):
        book.select_chapters(chapters, ["07"])


def test_parameters_cell_is_required_and_complete(tmp_path: Path) -> None:
    good = write_notebook(tmp_path, "01_good", "x = 1\n")
    assert book.declared_parameters(book.read_notebook(good), good)[:6] == list(book.REQUIRED_PARAMETERS)

    untagged = write_notebook(
        tmp_path, "02_untagged", "x = 1\n", parameters=PARAMETERS.replace(' tags=["parameters"]', "")
    )
    with pytest.raises(book.BuildError, match=r"02_untagged\.py: no cell tagged 'parameters'"):
        book.declared_parameters(book.read_notebook(untagged), untagged)

    incomplete = write_notebook(
        tmp_path, "03_incomplete", "x = 1\n", parameters=PARAMETERS.replace("seed = 0\n", "")
    )
    with pytest.raises(book.BuildError, match=r"03_incomplete\.py: .* does not define seed"):
        book.declared_parameters(book.read_notebook(incomplete), incomplete)


def test_toc_lists_intro_chapters_then_appendix() -> None:
    toc = yaml.safe_load(book.render_toc(["01_data", "02_pretrain"]))
    assert toc["format"] == "jb-book" and toc["root"] == "intro"
    assert [e["file"] for e in toc["parts"][0]["chapters"]] == ["chapters/01_data", "chapters/02_pretrain"]
    assert [e["file"] for e in toc["parts"][1]["chapters"]] == ["differences", "reference-implementation", "running",
                                                                "references"]
    empty = yaml.safe_load(book.render_toc([]))
    assert len(empty["parts"]) == 1 and empty["parts"][0]["caption"] == "About this book"


def test_committed_book_skeleton_is_consistent() -> None:
    """book/_toc.yml lists every chapter present in notebooks/, and every page it names exists."""
    toc = yaml.safe_load((ROOT / "book" / "_toc.yml").read_text())
    files = [e["file"] for part in toc["parts"] for e in part["chapters"]]
    missing = [c.name for c in CHAPTERS if f"chapters/{c.name}" not in files]
    assert not missing, f"book/_toc.yml lacks {missing}; refresh it with: python tools/book.py toc --write"
    for page in [toc["root"], *(f for f in files if not f.startswith("chapters/"))]:
        assert (ROOT / "book" / f"{page}.md").is_file(), page
    config = yaml.safe_load((ROOT / "book" / "_config.yml").read_text())
    assert config["execute"]["execute_notebooks"] == "off"
    assert config["only_build_toc_files"] is True
    assert (ROOT / "book" / config["bibtex_bibfiles"][0]).is_file()


def test_synthetic_data_is_generated_once_per_preset_and_seed(tmp_path: Path) -> None:
    calls: list[tuple[Path, str, int]] = []

    def fake_generate(out: Path, *, preset: str, seed: int) -> None:
        calls.append((out, preset, seed))
        (out / f"scene_{preset}_{seed}.txt").write_text("synthetic")

    data = book.prepare_synthetic_data(tmp_path, "smoke", 0, fake_generate)
    assert data == tmp_path / "data" and (data / "scene_smoke_0.txt").is_file()
    marker = json.loads((data / COMPLETE_MARKER).read_text())
    assert (marker["preset"], marker["seed"]) == ("smoke", 0)
    book.prepare_synthetic_data(tmp_path, "smoke", 0, fake_generate)
    assert len(calls) == 1  # complete data for (smoke, 0) is reused

    book.prepare_synthetic_data(tmp_path, "smoke", 3, fake_generate)
    assert len(calls) == 2 and sorted(p.name for p in data.iterdir() if not p.name.startswith(".")) == [
        "scene_smoke_3.txt"
    ]

    (data / COMPLETE_MARKER).unlink()  # an interrupted generation leaves no marker: it is redone
    book.prepare_synthetic_data(tmp_path, "smoke", 3, fake_generate)
    assert len(calls) == 3

    asked: list[tuple[str, ...]] = []  # a generator with layouts is asked for every layout the chapters use
    book.prepare_synthetic_data(
        tmp_path / "b", "demo", 0, lambda out, *, preset, seed, layouts=("caffe",): asked.append(layouts)
    )
    assert asked == [("caffe", "ssl4sar", "timeseries")]


def test_run_chapters_executes_in_order_with_the_build_parameters(tmp_path: Path) -> None:
    nb_dir = tmp_path / "notebooks"
    nb_dir.mkdir()
    write_notebook(
        nb_dir,
        "01_first",
        """\
        # %%
        import json
        import pathlib
        out = pathlib.Path(work_dir) / "first.json"
        out.write_text(json.dumps({"preset": preset, "data_dir": data_dir, "ssl4sar_dir": ssl4sar_dir,
                                   "seed": seed, "device": device, "cwd": str(pathlib.Path.cwd())}))
        print("wrote", out.name)
        """,
    )
    write_notebook(
        nb_dir,
        "02_second",
        """\
        # %%
        import json
        import pathlib
        first = json.loads((pathlib.Path(work_dir) / "first.json").read_text())
        assert first["preset"] == preset == "smoke", first
        (pathlib.Path(work_dir) / "second.txt").write_text(f"{sum(range(10))}")
        first
        """,
    )
    work = tmp_path / "work"
    work.mkdir()
    caffe = tmp_path / "caffe"
    caffe.mkdir()
    params = book.notebook_parameters(preset="smoke", work_dir=work, data_dir=caffe, ssl4sar_dir=None, seed=7)
    results = book.run_chapters(
        book.discover_notebooks(nb_dir),
        output_dir=tmp_path / "out",
        parameters=params,
        kernel_name=book.ensure_kernel(),
        failed_dir=tmp_path / "failed",
    )

    assert [(r.chapter.name, r.status) for r in results] == [("01_first", "ok"), ("02_second", "ok")]
    assert all(r.seconds > 0 for r in results)
    first = json.loads((work / "first.json").read_text())
    assert first == {
        "preset": "smoke",
        "data_dir": str(caffe.resolve()),
        "ssl4sar_dir": None,
        "seed": 7,
        "device": "auto",
        "cwd": str(nb_dir),
    }
    assert (work / "second.txt").read_text() == "45"
    executed = json.loads((tmp_path / "out" / "02_second.ipynb").read_text())
    injected = [c for c in executed["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert len(injected) == 1 and 'preset = "smoke"' in "".join(injected[0]["source"])
    # no folder of the build machine in what the book publishes (tools.book.relative_build_paths)
    assert str(tmp_path) not in "".join(injected[0]["source"]) + json.dumps(executed["metadata"]["papermill"])
    assert executed["metadata"]["kernelspec"]["name"] == book.KERNEL_NAME
    assert not list((tmp_path / "out").glob(".*running*")) and not (tmp_path / "failed").exists()


def test_kernel_output_shows_no_tqdm_widget_warning_with_an_absolute_path(tmp_path: Path) -> None:
    nb_dir = tmp_path / "notebooks"
    nb_dir.mkdir()
    write_notebook(nb_dir, "01_bars", """\
        # %%
        from tqdm.auto import tqdm
        print(sum(tqdm(range(5), disable=True)))
        """)
    work = tmp_path / "work"
    work.mkdir()
    params = book.notebook_parameters(preset="smoke", work_dir=work, data_dir=None, ssl4sar_dir=None, seed=0)
    [result] = book.run_chapters(book.discover_notebooks(nb_dir), output_dir=tmp_path / "out", parameters=params,
                                 kernel_name=book.ensure_kernel(), failed_dir=tmp_path / "failed")
    assert result.status == "ok", result.error
    executed = json.loads((tmp_path / "out" / "01_bars.ipynb").read_text())
    shown = "".join("".join(o.get("text", "")) for c in executed["cells"] for o in c.get("outputs", []))
    assert shown == "10\n"   # before: a TqdmWarning "IProgress not found" naming …/site-packages/tqdm/auto.py


def test_failing_chapter_stops_the_run_and_names_the_cell(tmp_path: Path) -> None:
    nb_dir = tmp_path / "notebooks"
    nb_dir.mkdir()
    write_notebook(
        nb_dir,
        "01_boom",
        """\
        # %%
        calving_rate = 3

        # %%
        raise ValueError(f"ice shelf collapsed at rate {calving_rate}")
        """,
    )
    write_notebook(
        nb_dir,
        "02_after",
        """\
        # %%
        import pathlib
        (pathlib.Path(work_dir) / "after.txt").write_text("ran")
        """,
    )
    chapters = book.discover_notebooks(nb_dir)
    run = SmokeRun(tmp_path, chapters, synthetic=False)

    second = run.run_through(chapters[1])
    first = run.results["01_boom"]
    assert second.status == "not run" and "01_boom failed" in second.error
    assert first.status == "failed"
    for expected in ("01_boom.py", "ValueError: ice shelf collapsed at rate 3", "cell", "raise ValueError"):
        assert expected in first.error, first.error
    failed_copy = run.failed_dir / "01_boom.ipynb"
    assert failed_copy.is_file() and "ice shelf collapsed" in failed_copy.read_text()
    assert not (run.output_dir / "01_boom.ipynb").exists()
    assert not (run.work_dir / "after.txt").exists()


def test_build_command_reports_bad_arguments(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    nb_dir = tmp_path / "notebooks"
    nb_dir.mkdir()
    write_notebook(nb_dir, "01_only", "# %%\nx = 1\n")
    common = ["build", "--book-dir", str(tmp_path / "book"), "--notebooks-dir", str(nb_dir)]
    assert book.main([*common, "--only", "05"]) == 1
    assert "--only 05: no such chapter" in caplog.text
    assert book.main([*common, "--caffe", str(tmp_path / "nowhere")]) == 2
    assert "nowhere: --caffe is not a directory" in caplog.text
    assert book.main([*common, "--preset", "dmeo"]) == 2
    assert "unknown preset 'dmeo'" in caplog.text


@pytest.mark.slow
def test_build_command_executes_and_renders_a_book(tmp_path: Path) -> None:
    """``tools/book.py build`` end to end on a copy of book/ with one throw-away chapter (no synthetic data)."""
    book_dir = tmp_path / "book"
    book_dir.mkdir()
    for name in ("_config.yml", "references.bib", *(f"{p}.md" for p in ("intro", *book.APPENDIX_PAGES))):
        shutil.copy(ROOT / "book" / name, book_dir / name)
    nb_dir = tmp_path / "notebooks"
    nb_dir.mkdir()
    write_notebook(
        nb_dir,
        "01_figure",
        """\
        # %%
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(3, 2))
        ax.plot([0, 1, 2], [2, 0, 1])
        ax.set_title(f"preset {preset}")
        plt.show()
        """,
    )
    data = tmp_path / "data"
    data.mkdir()
    rc = book.main(
        [
            "build",
            "--book-dir",
            str(book_dir),
            "--notebooks-dir",
            str(nb_dir),
            "--preset",
            "smoke",
            "--work-dir",
            str(tmp_path / "work"),
            "--caffe",
            str(data),
            "--ssl4sar",
            str(data),
        ]
    )
    assert rc == 0
    html = book_dir / "_build" / "html"
    page = (html / "chapters" / "01_figure.html").read_text()
    images = [src for src in book.parse_page(page).images if src and src.startswith("../_images/")]
    assert images and all((html / "chapters" / src).resolve().is_file() for src in images)
    timings = json.loads((book_dir / "_build" / "timings.json").read_text())
    assert timings["preset"] == "smoke" and timings["chapters"]["01_figure"]["status"] == "ok"
    assert timings["chapters"]["01_figure"]["seconds"] > 0 and timings["jupyter_book_seconds"] > 0
    toc = yaml.safe_load((book_dir / "_build" / "_toc.yml").read_text())
    assert toc["parts"][0]["chapters"] == [{"file": "chapters/01_figure"}]

    if book.find_chromium() is not None:  # the rendered figure loads in a browser
        report = book.check_site(html, pages=["chapters/01_figure.html"])
        assert report.ok and report.images >= 1, report.summary()

    # re-render only, from the executed notebook
    assert (
        book.main(["build", "--book-dir", str(book_dir), "--notebooks-dir", str(nb_dir), "--skip-execute"])
        == 0
    )
    assert (html / "chapters" / "01_figure.html").is_file()
