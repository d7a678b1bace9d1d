"""Browser check of the built book: serve ``book/_build/html`` on 127.0.0.1 and load every page in headless Chromium.

Each page must render its main content, every ``<img>`` must have a source that loads, every internal link,
stylesheet and script must answer HTTP 200, and no markdown table may be left as a paragraph of pipes (what a
``text/markdown`` output becomes when MyST-NB renders it as CommonMark); links to anchors missing from their target
page are warnings.
Screenshots of the index, the first chapter and the evaluation chapter go to ``book/_build/screenshots/``.
Run through ``python tools/book.py check`` (``make book-check``); ``tests/test_book_check.py`` tests it.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import shutil
import subprocess
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

log = logging.getLogger("book")

#: folder of the chapter pages inside the book (``tools/book.py`` renders them there)
CHAPTER_SUBDIR = "chapters"
#: a GFM table left as text: a line of cells, then a delimiter row (Sphinx's smartquotes turn '---' into dashes)
_RAW_TABLE = re.compile(r"^\s*\|.*\|\s*\n\s*\|(\s*:?[-\u2013\u2014]+:?\s*\|)+", re.MULTILINE)


class SiteCheckError(RuntimeError):
    """The site cannot be checked at all (no built book, no Chromium)."""


CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--mute-audio",
    # offline by construction: every host except the local server fails to resolve at once
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
)
_SKIP_SCHEMES = ("mailto:", "tel:", "javascript:", "data:", "blob:", "about:")
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


def find_chromium(explicit: str | None = None) -> str | None:
    """Path of a Chromium/Chrome executable: ``explicit``, ``$CHROMIUM``, or the first one on ``PATH``."""
    for candidate in (explicit, os.environ.get("CHROMIUM"), *CHROMIUM_CANDIDATES):
        if candidate:
            found = shutil.which(candidate)
            if found:
                return found
    return None


@dataclass
class ParsedPage:
    """What a rendered page contains: ids, main-content text length, images, links and assets."""

    ids: set[str] = field(default_factory=set)
    main_text_chars: int = 0
    has_main: bool = False
    images: list[str | None] = field(default_factory=list)  # src of every <img> (None: attribute missing)
    links: list[str] = field(default_factory=list)  # <a href>
    # <link href> (stylesheets, icons, prev/next) and <script src>
    assets: list[str] = field(default_factory=list)
    title: str = ""
    raw_tables: int = 0  # paragraphs of the main content that are markdown tables left as text


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = ParsedPage()
        self._stack: list[tuple[str, bool]] = []  # (tag, opens main content)
        self._main_depth = 0
        self._in_title = False
        self._skip_text = 0  # inside <script>/<style>
        self._paragraph: list[str] | None = None  # text of the open <p> of the main content

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        for key in ("id", "name") if tag == "a" else ("id",):
            if a.get(key):
                self.page.ids.add(str(a[key]))
        if tag == "img":
            self.page.images.append(a.get("src"))
        elif tag == "a" and a.get("href") is not None:
            self.page.links.append(str(a["href"]))
        elif tag == "link" and a.get("href") and "preconnect" not in (a.get("rel") or ""):
            self.page.assets.append(str(a["href"]))
        elif tag == "script" and a.get("src"):
            self.page.assets.append(str(a["src"]))
        elif tag == "title":
            self._in_title = True
        if tag in ("script", "style"):
            self._skip_text += 1
        if tag == "p" and self._main_depth > 0:
            self._paragraph = []
        if tag in _VOID:
            return
        opens_main = tag in ("main", "article") or a.get("role") == "main"
        if opens_main:
            self.page.has_main = True
            self._main_depth += 1
        self._stack.append((tag, opens_main))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip_text:
            self._skip_text -= 1
        if tag == "title":
            self._in_title = False
        if tag == "p" and self._paragraph is not None:
            self.page.raw_tables += bool(_RAW_TABLE.search("".join(self._paragraph)))
            self._paragraph = None
        # pop up to the matching open tag (tolerates unclosed <p>, <li> in hand-written HTML)
        for i in range(len(self._stack) - 1, -1, -1):
            if self._stack[i][0] == tag:
                for _, opens_main in self._stack[i:]:
                    if opens_main:
                        self._main_depth -= 1
                del self._stack[i:]
                break

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.page.title += data.strip()
        if self._main_depth > 0 and not self._skip_text:
            self.page.main_text_chars += len(data.strip())
            if self._paragraph is not None:
                self._paragraph.append(data)


def parse_page(html: str) -> ParsedPage:
    """Parse an HTML document (Chromium's serialised DOM or a file) into a ``ParsedPage``."""
    parser = _PageParser()
    parser.feed(html)
    parser.close()
    return parser.page


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base class
        log.debug("http: " + format, *args)


@contextlib.contextmanager
def serve_directory(directory: Path) -> Iterator[str]:
    """Serve ``directory`` over HTTP on 127.0.0.1 (a free port) in a thread; yield the base URL ``http://…/``."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="book-check-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def run_chromium(
    chromium: str,
    url: str,
    mode_args: Sequence[str],
    *,
    profile_dir: Path,
    timeout_s: float = 60.0,
    window: str = "1280,1600",
) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium once on ``url`` with ``mode_args`` (``--dump-dom`` or ``--screenshot=PATH``)."""
    cmd = [
        chromium,
        *CHROMIUM_FLAGS,
        f"--user-data-dir={profile_dir}",
        f"--window-size={window}",
        "--virtual-time-budget=3000",
        *mode_args,
        url,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)


@dataclass
class CheckReport:
    """Result of ``check_site``: counts, failures (make the check fail) and warnings."""

    pages: list[str] = field(default_factory=list)
    images: int = 0
    internal_links: int = 0
    assets: int = 0
    external_links: int = 0
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    screenshots: list[Path] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        lines = [
            f"checked {len(self.pages)} page(s): {self.images} image(s), {self.internal_links} internal link(s), "
            f"{self.assets} stylesheet/script/icon reference(s) loaded; {self.external_links} external link(s) "
            "not fetched (offline)",
            f"screenshots: {', '.join(str(p) for p in self.screenshots) or 'none'}",
        ]
        lines += [f"warning: {w}" for w in self.warnings]
        lines += [f"FAIL: {f}" for f in self.failures]
        lines.append("OK" if self.ok else f"{len(self.failures)} failure(s)")
        return "\n".join(lines)


def list_pages(html_dir: Path) -> list[str]:
    """HTML pages of a built site, relative POSIX paths, excluding Sphinx's ``_static``/``_sources``-style folders."""
    pages = []
    for path in sorted(html_dir.rglob("*.html")):
        rel = path.relative_to(html_dir)
        if any(part.startswith(("_", ".")) for part in rel.parts[:-1]):
            continue
        pages.append(rel.as_posix())
    return pages


class _Fetcher:
    """GET requests against the local server, cached by URL (without fragment)."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[int, bytes]] = {}

    def get(self, url: str) -> tuple[int, bytes]:
        url = urllib.parse.urldefrag(url)[0]
        if url not in self._cache:
            try:
                with urllib.request.urlopen(url, timeout=30) as resp:  # noqa: S310 - our own local server
                    self._cache[url] = (resp.status, resp.read())
            except urllib.error.HTTPError as exc:
                self._cache[url] = (exc.code, b"")
            except (urllib.error.URLError, OSError) as exc:
                log.debug("GET %s failed: %s", url, exc)
                self._cache[url] = (0, b"")
        return self._cache[url]


def check_site(
    html_dir: Path,
    *,
    chromium: str | None = None,
    screenshot_dir: Path | None = None,
    pages: Sequence[str] | None = None,
    min_main_chars: int = 20,
    timeout_s: float = 60.0,
) -> CheckReport:
    """Load every page of the static site ``html_dir`` in headless Chromium and check it; see the module doc.

    ``pages`` restricts the check to these relative paths (default: every page). Failures: a page that does
    not load or has no main content (``<main>``, ``<article>`` or ``role="main"`` with at least
    ``min_main_chars`` characters of text), a markdown table left as text, an ``<img>`` without ``src`` or whose
    image does not load, an internal link, stylesheet or script that does not answer 200, a missing screenshot.
    Links to anchors missing from their target page are warnings.
    """
    html_dir = Path(html_dir).resolve()
    if not (html_dir / "index.html").is_file():
        raise SiteCheckError(f"{html_dir}: no index.html; build the book first (make book)")
    exe = find_chromium(chromium)
    if exe is None:
        raise SiteCheckError("Chromium not found (install the Debian package 'chromium' or set $CHROMIUM)")
    report = CheckReport(pages=list(pages) if pages is not None else list_pages(html_dir))
    fetcher = _Fetcher()
    ids_of: dict[str, set[str]] = {}

    def target_ids(url: str) -> set[str]:
        if url not in ids_of:
            status, body = fetcher.get(url)
            ids_of[url] = parse_page(body.decode("utf-8", "replace")).ids if status == 200 else set()
        return ids_of[url]

    with tempfile.TemporaryDirectory(prefix="book-check-") as tmp, serve_directory(html_dir) as base:
        profile = Path(tmp) / "profile"
        host = urllib.parse.urlsplit(base).netloc
        for rel in report.pages:
            page_url = urllib.parse.urljoin(base, urllib.parse.quote(rel))
            try:
                proc = run_chromium(exe, page_url, ["--dump-dom"], profile_dir=profile, timeout_s=timeout_s)
            except subprocess.TimeoutExpired:
                report.failures.append(f"{rel}: Chromium did not finish loading it within {timeout_s:.0f} s")
                continue
            if proc.returncode != 0 or "<body" not in proc.stdout:
                err = proc.stderr.strip().splitlines()[-1:] or ["no output"]
                report.failures.append(
                    f"{rel}: Chromium could not render it (exit {proc.returncode}: {err[0]})"
                )
                continue
            page = parse_page(proc.stdout)
            if not page.has_main or page.main_text_chars < min_main_chars:
                report.failures.append(
                    f"{rel}: no main content (expected <main>, <article> or role=main with text; found "
                    f"{page.main_text_chars} characters)"
                )
            if page.raw_tables:
                report.failures.append(
                    f"{rel}: {page.raw_tables} markdown table(s) shown as plain text, not as a table (a text/markdown "
                    "output rendered as CommonMark: set nb_render_markdown_format to gfm or myst)"
                )
            _check_images(rel, page, page_url, host, fetcher, report)
            _check_links(rel, page, page_url, host, fetcher, target_ids, report)
        if screenshot_dir is not None:
            _take_screenshots(exe, base, html_dir, report, Path(screenshot_dir), profile, timeout_s)
    return report


def _is_local(url: str, host: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme in ("http", "https") and parts.netloc == host


def _check_images(
    rel: str, page: ParsedPage, page_url: str, host: str, fetcher: _Fetcher, report: CheckReport
) -> None:
    for i, src in enumerate(page.images, start=1):
        report.images += 1
        if src is None or not src.strip():
            report.failures.append(f"{rel}: image #{i} has an empty or missing src")
            continue
        src = src.strip()
        if src.startswith("data:"):
            payload = src.partition(",")[2]
            if not payload.strip():
                report.failures.append(f"{rel}: image #{i} is an empty data: URI")
            continue
        url = urllib.parse.urljoin(page_url, src)
        if not _is_local(url, host):
            report.warnings.append(f"{rel}: image #{i} is loaded from outside the book ({src})")
            continue
        status, body = fetcher.get(url)
        if status != 200 or not body:
            report.failures.append(
                f"{rel}: image #{i} {src} does not load (HTTP {status or 'error'}, {len(body)} bytes)"
            )


def _check_links(
    rel: str,
    page: ParsedPage,
    page_url: str,
    host: str,
    fetcher: _Fetcher,
    target_ids: Callable[[str], set[str]],
    report: CheckReport,
) -> None:
    for kind, refs in (("link", page.links), ("asset", page.assets)):
        for href in refs:
            href = href.strip()
            if not href or href.lower().startswith(_SKIP_SCHEMES):
                continue
            url = urllib.parse.urljoin(page_url, href)
            if not _is_local(url, host):
                report.external_links += 1
                continue
            if kind == "link":
                report.internal_links += 1
            else:
                report.assets += 1
            base, fragment = urllib.parse.urldefrag(url)
            status, _ = fetcher.get(base)
            if status != 200:
                what = "link to" if kind == "link" else "reference to"
                report.failures.append(f"{rel}: {what} {href} answers HTTP {status or 'error'}")
                continue
            if kind == "link" and fragment and base.endswith((".html", "/")):
                ids = page.ids if base == urllib.parse.urldefrag(page_url)[0] else target_ids(base)
                if urllib.parse.unquote(fragment) not in ids:
                    report.warnings.append(
                        f"{rel}: link {href}: no element with id {fragment!r} in the target page"
                    )


def _take_screenshots(
    exe: str, base: str, html_dir: Path, report: CheckReport, out_dir: Path, profile: Path, timeout_s: float
) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    others = [p for p in report.pages if p != "index.html"]
    chapters = [p for p in others if p.startswith(f"{CHAPTER_SUBDIR}/")]
    # the front page, the first chapter and the evaluation chapter (the pages a reader looks at first)
    wanted = [*chapters[:1], *(p for p in chapters[1:] if "evaluation" in Path(p).stem)] or others[:1]
    for rel in ["index.html", *wanted]:
        target = out_dir / (Path(rel).stem + ".png")
        target.unlink(missing_ok=True)
        try:
            run_chromium(
                exe,
                urllib.parse.urljoin(base, rel),
                [f"--screenshot={target}"],
                profile_dir=profile,
                timeout_s=timeout_s,
            )
        except subprocess.TimeoutExpired:
            pass
        if target.is_file() and target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n":
            report.screenshots.append(target)
        else:
            report.failures.append(f"{rel}: no screenshot was written to {target}")
