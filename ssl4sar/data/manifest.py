"""The data manifest (``data_manifest.yaml``): every external resource ssl4sar uses.

One entry per resource (the CaFFe benchmark, its scene metadata, the SSL4SAR unlabeled dataset, the SwinV2-T
ImageNet weights, the synthetic demo data) with its download URLs (mirrors, tried in order), file name, size in
bytes, sha256, licence, citation and the path it is installed at, relative to the data root
(:func:`ssl4sar.config.data_root`, ``$SSL4SAR_DATA``).

A resource is *present* when its completion marker exists: ``<path>/.complete`` for a folder (unpacked archive,
generated data), ``<path>.complete`` next to a single file. The marker is a JSON object (sha256, url, date …)
written only after the data was verified and moved into place (:mod:`ssl4sar.data.download`), so a folder without
it is never mistaken for a complete one.

The manifest is found at ``$SSL4SAR_MANIFEST`` when set, else the copy shipped inside the package
(``ssl4sar/data/data_manifest.yaml``, read through :mod:`importlib.resources`, so it works from a wheel). The
editable source is ``data_manifest.yaml`` at the repository root; ``make sync`` copies it into the package and a
test checks that the two are identical.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import yaml

from ssl4sar.config import PRESETS, data_root
from ssl4sar.errors import DataError

logger = logging.getLogger(__name__)

MANIFEST_ENV = "SSL4SAR_MANIFEST"
MANIFEST_FILENAME = "data_manifest.yaml"
MARKER_NAME = ".complete"
KINDS = ("archive", "file", "generated")
ARCHIVE_FORMATS = ("zip", "tar", "tar.gz", "tar.bz2", "tar.xz")
SYNTHETIC_LAYOUTS = ("caffe", "ssl4sar", "timeseries")

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_COMMON_FIELDS = {"kind", "title", "description", "path", "license", "citation", "doi", "landing_page", "note"}
_DOWNLOAD_FIELDS = {"urls", "filename", "size_bytes", "approx_size_bytes", "sha256"}
_ALLOWED_FIELDS: dict[str, set[str]] = {
    "archive": _COMMON_FIELDS | _DOWNLOAD_FIELDS | {"unpack"},
    "file": _COMMON_FIELDS | _DOWNLOAD_FIELDS,
    "generated": _COMMON_FIELDS | {"generator", "preset", "seed", "layouts"},
}
_UNPACK_FIELDS = {"format", "layout"}

Status = Literal["present", "unverified", "missing"]


@dataclass(frozen=True)
class Resource:
    """One manifest entry.

    ``path`` is relative to the data root (POSIX separators). For ``kind == "archive"`` it is the folder the archive
    is unpacked into, for ``"file"`` the file itself, for ``"generated"`` the output folder of ``generator``.
    Sizes are in bytes; ``sha256`` is a lower-case hex digest or ``None`` when it is not known (trust on first use,
    see :mod:`ssl4sar.data.download`).
    """

    name: str
    kind: str
    path: str
    title: str = ""
    description: str = ""
    urls: tuple[str, ...] = ()
    filename: str | None = None
    size_bytes: int | None = None
    approx_size_bytes: int | None = None
    sha256: str | None = None
    archive_format: str | None = None
    layout: tuple[str, ...] = ()
    license: str | None = None
    citation: str | None = None
    doi: str | None = None
    landing_page: str | None = None
    note: str | None = None
    generator: str | None = None
    preset: str | None = None
    seed: int | None = None
    layouts: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def downloadable(self) -> bool:
        """True when at least one download URL is known."""
        return self.kind in ("archive", "file") and bool(self.urls)

    @property
    def is_directory(self) -> bool:
        """True when the installed resource is a folder (archives, generated data)."""
        return self.kind in ("archive", "generated")

    @property
    def expected_size_bytes(self) -> int | None:
        """The exact size when known, else the approximate one (bytes), else ``None``."""
        return self.size_bytes if self.size_bytes is not None else self.approx_size_bytes


@dataclass(frozen=True)
class Manifest:
    """All resources of one manifest file, in file order."""

    source: Path
    resources: Mapping[str, Resource]
    version: int = 1

    def __getitem__(self, name: str) -> Resource:
        try:
            return self.resources[name]
        except KeyError:
            raise DataError(self.source, f"no resource named {name!r}",
                            f"known resources: {', '.join(self.resources)}") from None

    def __contains__(self, name: object) -> bool:
        return name in self.resources

    def __iter__(self) -> Iterator[Resource]:
        return iter(self.resources.values())

    def __len__(self) -> int:
        return len(self.resources)

    def names(self) -> list[str]:
        return list(self.resources)


def default_manifest_path() -> Path:
    """``$SSL4SAR_MANIFEST`` when set, else the package's copy of ``data_manifest.yaml``."""
    env = os.environ.get(MANIFEST_ENV)
    if env:
        return Path(env).expanduser()
    return Path(str(resources.files("ssl4sar.data").joinpath(MANIFEST_FILENAME)))


def load_manifest(path: str | Path | None = None) -> Manifest:
    """Read and validate a manifest; schema errors raise :class:`DataError` naming the entry and the field."""
    path = Path(path) if path is not None else default_manifest_path()
    if not path.is_file():
        raise DataError(path, "data manifest not found",
                        f"pass its path (--manifest) or set {MANIFEST_ENV}; the package ships {MANIFEST_FILENAME}")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise DataError(path, f"not valid YAML: {exc}") from exc
    return parse_manifest(doc, source=path)


def parse_manifest(doc: Any, source: str | Path = "<manifest>") -> Manifest:
    """Validate an already-parsed manifest document (a mapping with ``version`` and ``resources``)."""
    source = Path(source)
    if not isinstance(doc, Mapping):
        raise DataError(source, "expected a YAML mapping with 'version' and 'resources' at the top level")
    unknown = set(doc) - {"version", "resources"}
    if unknown:
        raise DataError(source, f"unknown top-level key(s): {', '.join(sorted(map(str, unknown)))}")
    version = doc.get("version")
    if version != 1:
        raise DataError(source, f"field 'version': expected 1, got {version!r}")
    entries = doc.get("resources")
    if not isinstance(entries, Mapping) or not entries:
        raise DataError(source, "field 'resources': expected a non-empty mapping of name -> entry")
    resources: dict[str, Resource] = {}
    for name, entry in entries.items():
        resources[str(name)] = _parse_entry(str(name), entry, source)
    return Manifest(source=source, resources=resources, version=1)


def _parse_entry(name: str, entry: Any, source: Path) -> Resource:
    def fail(field_name: str, problem: str) -> DataError:
        return DataError(source, f"entry {name!r}, field {field_name!r}: {problem}")

    if not _NAME_RE.match(name):
        raise DataError(source, f"entry {name!r}: names use lower-case letters, digits, '-' and '_'")
    if not isinstance(entry, Mapping):
        raise DataError(source, f"entry {name!r}: expected a mapping of fields")
    kind = entry.get("kind")
    if kind not in KINDS:
        raise fail("kind", f"expected one of {', '.join(KINDS)}, got {kind!r}")
    unknown = set(entry) - _ALLOWED_FIELDS[kind]
    if unknown:
        raise fail(sorted(map(str, unknown))[0], f"unknown field for kind {kind!r} "
                   f"(allowed: {', '.join(sorted(_ALLOWED_FIELDS[kind]))})")

    def text(field_name: str, required: bool = False) -> str | None:
        value = entry.get(field_name)
        if value is None:
            if required:
                raise fail(field_name, "required")
            return None
        if not isinstance(value, str) or not value.strip():
            raise fail(field_name, f"expected a non-empty string, got {value!r}")
        return value.strip()

    def count(field_name: str) -> int | None:
        value = entry.get(field_name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise fail(field_name, f"expected a positive integer (bytes) or null, got {value!r}")
        return value

    rel = text("path", required=True)
    assert rel is not None
    rel_path = PurePosixPath(rel)
    if rel_path.is_absolute() or ".." in rel_path.parts or rel.startswith("~"):
        raise fail("path", f"must be relative to the data root and stay inside it, got {rel!r}")

    common: dict[str, Any] = {
        "name": name, "kind": kind, "path": str(rel_path),
        "title": text("title") or name, "description": text("description") or "",
        "license": text("license"), "citation": text("citation"), "doi": text("doi"),
        "landing_page": text("landing_page"), "note": text("note"),
    }

    if kind == "generated":
        generator = text("generator", required=True)
        assert generator is not None
        if not re.match(r"^[A-Za-z_][\w.]*[.:][A-Za-z_]\w*$", generator):
            raise fail("generator", f"expected 'package.module.function', got {generator!r}")
        preset = entry.get("preset", "demo")
        if preset not in PRESETS:
            raise fail("preset", f"expected one of {', '.join(PRESETS)}, got {preset!r}")
        seed = entry.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise fail("seed", f"expected a non-negative integer, got {seed!r}")
        layouts = entry.get("layouts", list(SYNTHETIC_LAYOUTS))
        if (not isinstance(layouts, list) or not layouts
                or any(item not in SYNTHETIC_LAYOUTS for item in layouts)):
            raise fail("layouts", f"expected a non-empty list from {', '.join(SYNTHETIC_LAYOUTS)}, got {layouts!r}")
        return Resource(**common, generator=generator, preset=preset, seed=seed, layouts=tuple(layouts))

    urls = entry.get("urls", [])
    if not isinstance(urls, list) or any(not isinstance(u, str) for u in urls):
        raise fail("urls", f"expected a list of URLs, got {urls!r}")
    for url in urls:
        if not re.match(r"^https?://[^\s/]+/\S*$", url):
            raise fail("urls", f"expected http(s) URLs, got {url!r}")
    if not urls and not common["landing_page"]:
        raise fail("urls", "empty: give at least one URL, or a landing_page for a manual download")
    filename = text("filename")
    if urls and filename is None:
        if kind == "file":
            filename = rel_path.name
        else:
            raise fail("filename", "required when urls are given")
    if filename is not None and ("/" in filename or filename in (".", "..")):
        raise fail("filename", f"expected a plain file name, got {filename!r}")
    sha256 = entry.get("sha256")
    if sha256 is not None:
        if not isinstance(sha256, str) or not _SHA256_RE.match(sha256.lower()):
            raise fail("sha256", f"expected 64 hexadecimal characters or null, got {sha256!r}")
        sha256 = sha256.lower()
    elif urls and not common["note"]:
        raise fail("sha256", "null needs a 'note' saying why (the first download then records it)")
    size_bytes = count("size_bytes")
    approx = count("approx_size_bytes")
    if size_bytes is None and approx is not None and not common["note"]:
        raise fail("size_bytes", "null with approx_size_bytes needs a 'note'")
    for key in ("license", "citation"):
        if common[key] is None:
            raise fail(key, "required for downloaded resources")

    archive_format: str | None = None
    layout: tuple[str, ...] = ()
    if kind == "archive":
        unpack = entry.get("unpack", {})
        if not isinstance(unpack, Mapping):
            raise fail("unpack", f"expected a mapping with 'format' and 'layout', got {unpack!r}")
        bad = set(unpack) - _UNPACK_FIELDS
        if bad:
            raise fail(f"unpack.{sorted(map(str, bad))[0]}",
                       f"unknown field (allowed: {', '.join(sorted(_UNPACK_FIELDS))})")
        archive_format = unpack.get("format")
        if archive_format is None and filename is not None:
            archive_format = archive_format_of(filename)
        if urls and archive_format not in ARCHIVE_FORMATS:
            raise fail("unpack.format", f"expected one of {', '.join(ARCHIVE_FORMATS)}, got {archive_format!r}")
        raw_layout = unpack.get("layout", [])
        if not isinstance(raw_layout, list) or any(not isinstance(p, str) or not p.strip() for p in raw_layout):
            raise fail("unpack.layout", f"expected a list of relative paths, got {raw_layout!r}")
        for item in raw_layout:
            p = PurePosixPath(item)
            if p.is_absolute() or ".." in p.parts:
                raise fail("unpack.layout", f"paths must be relative and stay inside the folder, got {item!r}")
        layout = tuple(str(PurePosixPath(p)) for p in raw_layout)

    return Resource(**common, urls=tuple(urls), filename=filename, size_bytes=size_bytes, approx_size_bytes=approx,
                    sha256=sha256, archive_format=archive_format, layout=layout)


def archive_format_of(filename: str) -> str | None:
    """The archive format implied by a file name (``.zip``, ``.tar``, ``.tar.gz``/``.tgz`` …), or ``None``."""
    lower = filename.lower()
    for suffix, fmt in ((".tar.gz", "tar.gz"), (".tgz", "tar.gz"), (".tar.bz2", "tar.bz2"), (".tbz2", "tar.bz2"),
                        (".tar.xz", "tar.xz"), (".txz", "tar.xz"), (".tar", "tar"), (".zip", "zip")):
        if lower.endswith(suffix):
            return fmt
    return None


def resolve_root(root: str | Path | None = None) -> Path:
    """``root`` when given, else :func:`ssl4sar.config.data_root` (``$SSL4SAR_DATA``)."""
    return Path(root).expanduser() if root is not None else data_root()


def local_path(resource: Resource, root: str | Path | None = None) -> Path:
    """Where ``resource`` lives under the data root (a folder for archives and generated data, else a file)."""
    return resolve_root(root) / Path(*PurePosixPath(resource.path).parts)


def marker_path(resource: Resource, root: str | Path | None = None) -> Path:
    """The completion marker: ``<path>/.complete`` for folders, ``<path>.complete`` for single files."""
    path = local_path(resource, root)
    return path / MARKER_NAME if resource.is_directory else path.with_name(path.name + MARKER_NAME)


def read_marker(resource: Resource, root: str | Path | None = None) -> dict[str, Any] | None:
    """The marker's JSON content, or ``None`` when there is no (readable) marker."""
    marker = marker_path(resource, root)
    try:
        content = json.loads(marker.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        logger.warning("%s: unreadable completion marker (%s); treating %s as absent", marker, exc, resource.name)
        return None
    return content if isinstance(content, dict) else None


def status(resource: Resource, root: str | Path | None = None) -> Status:
    """``"present"`` (verified and complete), ``"unverified"`` (data there, no valid marker) or ``"missing"``.

    A marker whose sha256 differs from a sha256 given in the manifest (the manifest was updated) is not valid.
    ``"unverified"`` covers manual installs: a file that exists, or a folder that holds every ``layout`` path
    (any non-empty folder when the entry has no layout).
    """
    path = local_path(resource, root)
    marker = read_marker(resource, root)
    if marker is not None and path.exists():
        if resource.sha256 is None or marker.get("sha256") in (None, resource.sha256) or resource.kind == "generated":
            return "present"
    if not path.exists():
        return "missing"
    if resource.is_directory:
        if not path.is_dir():
            return "missing"
        if resource.layout:
            return "unverified" if all((path / p).exists() for p in resource.layout) else "missing"
        return "unverified" if any(p.name != MARKER_NAME for p in path.iterdir()) else "missing"
    return "unverified" if path.is_file() else "missing"


def is_present(resource: Resource, root: str | Path | None = None, allow_unverified: bool = False) -> bool:
    """True when ``resource`` is installed under the data root with a valid completion marker.

    With ``allow_unverified`` a manual install without marker (see :func:`status`) counts as present too.
    """
    state = status(resource, root)
    return state == "present" or (allow_unverified and state == "unverified")


def format_size(n_bytes: int | None, approximate: bool = False) -> str:
    """Human-readable size in decimal units (``"2.86 GB"``), ``"?"`` for unknown, ``"~"`` prefix when approximate."""
    if n_bytes is None:
        return "?"
    value = float(n_bytes)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            text = f"{value:.0f} {unit}" if unit == "B" else f"{value:.3g} {unit}"
            return f"~{text}" if approximate else text
        value /= 1000
    raise AssertionError("unreachable")
