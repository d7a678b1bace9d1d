"""The browser check of the built book (``tools/book.py check``), tested on tiny hand-made sites.

The Chromium tests skip when no Chromium is installed; nothing here builds the book. The last test checks
the real built book when ``book/_build/html`` exists.
"""

from __future__ import annotations

import base64
import io
import logging
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from PIL import Image
from tool_modules import load_tool

ROOT = Path(__file__).resolve().parent.parent
book = load_tool("book")


def png_bytes(size: int = 6) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (size, size), color=127).save(buf, format="PNG")
    return buf.getvalue()


def page(title: str, main: str, head: str = "") -> str:
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title>{head}</head>"
        f"<body><nav><a href='index.html'>home</a></nav>{main}</body></html>"
    )


def make_good_site(root: Path) -> Path:
    """Two pages, a stylesheet, a PNG figure, a data: image, internal links with anchors, one external link."""
    (root / "img").mkdir(parents=True)
    (root / "img" / "front.png").write_bytes(png_bytes())
    (root / "style.css").write_text("main { font-family: sans-serif; }\n")
    (root / "_static").mkdir()
    (root / "_static" / "not-a-page.html").write_text("<p>asset folder, never checked as a page</p>")
    (root / "index.html").write_text(
        page(
            "Home",
            """
        <main><h1 id="top">Calving fronts</h1>
        <p>The calving front separates glacier ice from the ocean; this page shows one.</p>
        <img src="img/front.png" alt="a front">
        <a href="page2.html#methods">methods</a> <a href="#top">top</a>
        <a href="https://doi.org/10.5194/essd-14-4287-2022">CaFFe</a> <a href="mailto:someone@example.org">mail</a>
        </main>""",
            head="<link rel='stylesheet' href='style.css'>",
        )
    )
    data_uri = "data:image/png;base64," + base64.b64encode(png_bytes(3)).decode()
    (root / "page2.html").write_text(
        page(
            "Methods",
            f"""
        <article><h2 id="methods">Methods</h2>
        <p>Zones are predicted first, then the ocean-glacier boundary is traced.</p>
        <img src="{data_uri}" alt="inline"><a href="index.html#top">back</a></article>""",
        )
    )
    return root


def make_broken_site(root: Path) -> Path:
    make_good_site(root)
    (root / "page2.html").write_text(
        page(
            "Methods",
            """
        <main><h2 id="methods">Methods</h2><p>Zones are predicted first, then the boundary is traced.</p>
        <a href="missing.html">a page that was never built</a> <a href="index.html#nowhere">stale anchor</a></main>
        """,
            head="<script src='_static/gone.js'></script>",
        )
    )
    (root / "index.html").write_text(
        page(
            "Home",
            """
        <main><h1>Calving fronts</h1><p>The calving front separates glacier ice from the ocean.</p>
        <img src="img/absent.png" alt="lost figure"><img alt="no source at all"></main>""",
        )
    )
    (root / "empty.html").write_text(page("Empty", "<div>just a footer</div>"))
    (root / "bench.html").write_text(page("Bench", "<main><p>Throughput of the fast path, as measured.</p>"
                                                   "<p>| path | ratio |\n|\u2014|\u2014|\n| fast | 2.5 |</p></main>"))
    return root


@pytest.fixture(scope="module")
def chromium() -> str:
    exe = book.find_chromium()
    if exe is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium; or set $CHROMIUM)")
    return exe


# --------------------------------------------------------------------------------------------------
# without a browser


def test_parse_page_finds_main_content_images_links_and_ids() -> None:
    parsed = book.parse_page("""<html><head><title>T</title><link rel="stylesheet" href="a.css">
        <script src="b.js"></script><script>var x = "not text";</script></head><body>
        <div role="main"><p id="p1">Front position<br>in metres</p><img src="f.png"><img></div>
        <footer><a href="x.html#p1">x</a><a name="legacy"></a><p>outside main</p></footer></body></html>""")
    assert parsed.title == "T"
    assert parsed.has_main and parsed.main_text_chars == len("Front position") + len("in metres")
    assert parsed.images == ["f.png", None]
    assert parsed.links == ["x.html#p1"]
    assert parsed.assets == ["a.css", "b.js"]
    assert {"p1", "legacy"} <= parsed.ids
    assert not book.parse_page("<html><body><div>no main</div></body></html>").has_main


def test_parse_page_counts_markdown_tables_left_as_text() -> None:
    # a text/markdown output parsed as CommonMark keeps its GFM tables as a paragraph of pipes (Sphinx's
    # smartquotes turn the delimiter row's '---' into em dashes); a real table or a sentence with a pipe is not one
    raw = "<p>| benchmark | ratio |\n|\u2014|\u2014|\n| finetune_step | <strong>1.98\u00d7</strong> |</p>"
    plain_dashes = "<p>| a | b |\n|---|:---:|\n| 1 | 2 |</p>"
    fine = "<p>MDE | metres</p><table><tr><th>a</th></tr><tr><td>|---|</td></tr></table><p>|x| is the norm</p>"
    assert book.parse_page(f"<html><body><main>{raw}{plain_dashes}{fine}</main></body></html>").raw_tables == 2
    assert book.parse_page(f"<html><body><main>{fine}</main></body></html>").raw_tables == 0
    assert book.parse_page(f"<html><body><footer>{raw}</footer></body></html>").raw_tables == 0


def test_list_pages_skips_asset_folders(tmp_path: Path) -> None:
    make_good_site(tmp_path)
    assert book.list_pages(tmp_path) == ["index.html", "page2.html"]


def test_local_server_serves_files_and_404s(tmp_path: Path) -> None:
    make_good_site(tmp_path)
    with book.serve_directory(tmp_path) as base:
        assert base.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(base + "img/front.png", timeout=10) as resp:
            assert resp.status == 200 and resp.read() == (tmp_path / "img" / "front.png").read_bytes()
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(base + "missing.html", timeout=10)
        assert err.value.code == 404


def test_check_refuses_an_unbuilt_site(tmp_path: Path) -> None:
    with pytest.raises(book.SiteCheckError, match="no index.html; build the book first"):
        book.check_site(tmp_path)


# --------------------------------------------------------------------------------------------------
# with headless Chromium


def test_good_site_passes_with_screenshots(tmp_path: Path, chromium: str) -> None:
    site = make_good_site(tmp_path / "site")
    report = book.check_site(site, chromium=chromium, screenshot_dir=tmp_path / "shots")
    assert report.ok, report.summary()
    assert report.pages == ["index.html", "page2.html"]
    assert report.images == 2
    assert report.internal_links == 5  # nav link on each page, page2#methods, #top, index#top
    assert report.assets == 1 and report.external_links == 1
    assert report.warnings == []
    assert [p.name for p in report.screenshots] == ["index.png", "page2.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in report.screenshots)


def test_broken_site_is_flagged(tmp_path: Path, chromium: str, caplog: pytest.LogCaptureFixture) -> None:
    """Through the command line: exit code 1 and one logged line per defect."""
    site = make_broken_site(tmp_path / "site")
    caplog.set_level(logging.INFO, logger="book")
    assert book.main(["check", "--html", str(site), "--no-screenshots", "--chromium", chromium]) == 1
    failures = [
        r.getMessage().removeprefix("FAIL: ") for r in caplog.records if r.getMessage().startswith("FAIL: ")
    ]
    assert sorted(failures) == sorted(
        [
            "page2.html: link to missing.html answers HTTP 404",
            "page2.html: reference to _static/gone.js answers HTTP 404",
            "index.html: image #1 img/absent.png does not load (HTTP 404, 0 bytes)",
            "index.html: image #2 has an empty or missing src",
            "empty.html: no main content (expected <main>, <article> or role=main with text; found 0 characters)",
            "bench.html: 1 markdown table(s) shown as plain text, not as a table (a text/markdown output rendered "
            "as CommonMark: set nb_render_markdown_format to gfm or myst)",
        ]
    )
    warnings = [r.getMessage() for r in caplog.records if r.getMessage().startswith("warning: ")]
    assert warnings == [
        "warning: page2.html: link index.html#nowhere: no element with id 'nowhere' in the target page"
    ]
    assert "6 failure(s)" in caplog.text


def test_built_book_renders(chromium: str) -> None:
    html = ROOT / "book" / "_build" / "html"
    if not (html / "index.html").is_file():
        pytest.skip("the book has not been built (make book)")
    report = book.check_site(html, chromium=chromium, pages=["index.html"])
    assert report.ok, report.summary()
    assert report.internal_links > 10 and report.assets > 5


def test_injected_parameters_cell_is_removed_from_the_rendered_chapter(tmp_path: Path) -> None:
    """papermill's injected cell holds the build machine's absolute work folder; the book must not show it."""
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("preset = 'demo'", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("work_dir = '/abs/path'", metadata={"tags": ["injected-parameters"]}),
        nbformat.v4.new_code_cell("print(1)")])
    path = tmp_path / "chapter.ipynb"
    nbformat.write(nb, str(path))
    assert book.hide_injected_parameters(path) == 1
    tags = [c.metadata.get("tags", []) for c in nbformat.read(str(path), as_version=4).cells]
    assert tags == [["parameters"], ["injected-parameters", "remove-cell"], []]
    assert book.hide_injected_parameters(path) == 0  # already hidden


def test_executed_chapter_keeps_no_build_machine_path(tmp_path: Path) -> None:
    """The executed chapter published with the book (its download button) must not carry the build machine's
    folders: the injected parameters and papermill's record are rewritten relative to the chapter's folder."""
    import nbformat

    root = tmp_path / "clone"
    work, chapters = root / "book" / "_work" / "demo", root / "notebooks"
    params = {"preset": "demo", "data_dir": None, "work_dir": str(work), "seed": 0}
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell('preset = "demo"', metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(f'# Parameters\npreset = "demo"\ndata_dir = None\nwork_dir = "{work}"\n',
                                  metadata={"tags": ["injected-parameters"]})])
    nb.metadata["papermill"] = {"parameters": dict(params), "input_path": None,
                                "output_path": str(root / "book" / "chapters" / ".04_x.running.ipynb")}
    path = tmp_path / "chapter.ipynb"
    nbformat.write(nb, str(path))
    final = root / "book" / "chapters" / "04_x.ipynb"
    assert book.relative_build_paths(path, params, cwd=chapters, final_path=final) == 1
    text = path.read_text()
    assert str(tmp_path) not in text
    out = nbformat.read(str(path), as_version=4)
    assert 'work_dir = "../book/_work/demo"' in out.cells[1].source and out.cells[0].source == 'preset = "demo"'
    assert out.metadata["papermill"]["parameters"]["work_dir"] == "../book/_work/demo"
    assert out.metadata["papermill"]["output_path"] == "../book/chapters/04_x.ipynb"
