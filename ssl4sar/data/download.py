"""Checksummed, atomic downloads of the resources named in ``data_manifest.yaml``.

Why one module of ~600 lines: it has one job, getting one resource onto disk so that a cut-off, corrupt or
tampered transfer can never be installed, and its parts (size confirmation, trust on first use, unpacking with
integrity checks, free-space and stale-file handling) are steps of that one sequence in :func:`fetch`, sharing its
temporary-file naming; its public surface is five functions. The HTTP transfer itself, and continuing a cut-off one,
is :mod:`ssl4sar.data.transfer`.

:func:`fetch` downloads a resource over HTTP(S) (:mod:`ssl4sar.data.transfer`, progress bar through tqdm), trying
the manifest's URLs in order (mirrors), and installs it under the data root:

1. the transfer goes to a temporary ``.<name>.resume.part`` file next to its destination. When it is cut off and the
   server announced the size and a validator (ETag or Last-Modified), the bytes are kept, and the next ``fetch``
   asks that URL only for the rest (an HTTP range, granted only while the file is the same version);
2. the transfer is complete only when its size is confirmed: the number of bytes received must equal the
   ``Content-Length`` the server announced and the manifest's ``size_bytes`` when it states one; an archive must
   also pass an integrity check (every zip member's CRC, every tar member readable to its end). A plain file whose
   size neither the server nor the manifest states is refused (a cut-off transfer could not be told from a complete
   one). Then the sha256 is checked against the manifest's ``sha256`` or, when that is null, the lock file;
3. only then is the file renamed to its final name; archives are unpacked into a temporary folder, the folder that
   holds the manifest's ``layout`` gets a ``.complete`` marker (JSON: sha256, url, date) and is renamed into place;
   single files get a ``<file>.complete`` marker next to them.

Every failure (HTTP error, truncated transfer, checksum mismatch, disk full) raises :class:`DataError` or
:class:`ChecksumError` naming the resource, the URL(s) and the problem, after removing what it had written, so a
re-run starts cleanly and nothing half-done ever looks complete. The one exception is the bytes of a cut-off
transfer that can be continued (step 1; a Ctrl-C keeps them too): the error says how many were kept, and they are
never installed before the whole file has passed every check of step 2.

Trust on first use: when the manifest has no sha256 for a resource, the first successful (size-confirmed,
integrity-checked) download records its sha256 and size in ``<data root>/manifest.lock.json`` with
``"sha256_source": "first-download"`` (a warning is logged), and every later download of that resource is verified
against the record. A mismatch says that the expected value came from a first download, not from the publisher,
and how to start over (delete the lock entry, then ``ssl4sar data fetch NAME --force``). Installed files get the
permissions of a normally created file (``0o666`` less the umask).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import importlib
import json
import logging
import os
import shutil
import tarfile
import tempfile
import uuid
import zipfile
import zlib
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pooch
from tqdm.auto import tqdm

from ssl4sar import __version__
from ssl4sar.data.manifest import (
    MARKER_NAME,
    Manifest,
    Resource,
    format_size,
    is_present,
    load_manifest,
    local_path,
    marker_path,
    resolve_root,
    status,
)
from ssl4sar.data.transfer import TransferFailed, discard, transfer
from ssl4sar.errors import ChecksumError, DataError
from ssl4sar.io import ensure_writable_dir, free_disk_bytes, set_default_mode, write_bytes_atomic, write_json_atomic

logger = logging.getLogger(__name__)

LOCK_NAME = "manifest.lock.json"
DOWNLOADS_DIR = "downloads"
DEFAULT_TIMEOUT_S = 60.0
_LAYOUT_SEARCH_DEPTH = 3


# --------------------------------------------------------------------------------------------------------- public API


def fetch(
    name: str,
    dest: str | Path | None = None,
    manifest: Manifest | str | Path | None = None,
    progress: bool = True,
    *,
    force: bool = False,
    keep_archive: bool = False,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> Path:
    """Download, verify and install the manifest resource ``name``; return its local path.

    Parameters
    ----------
    name
        Manifest entry (``ssl4sar data list`` shows them).
    dest
        Data root to install under (default :func:`ssl4sar.config.data_root`, i.e. ``$SSL4SAR_DATA``). The resource
        lands at ``dest / resource.path``; the lock file is ``dest / manifest.lock.json``.
    manifest
        A loaded :class:`Manifest`, a path to one, or ``None`` for the default (``$SSL4SAR_MANIFEST`` or the
        repository's ``data_manifest.yaml``).
    progress
        Show tqdm progress bars (download bytes, unpacked files).
    force
        Download again even when the resource is already present.
    keep_archive
        Keep the verified archive in ``dest/downloads/`` after unpacking (default: delete it to save disk space).
    timeout_s
        Connect / read timeout of each HTTP request in seconds.

    Generated resources (``kind: generated``) are produced locally by their generator instead.
    """
    man = manifest if isinstance(manifest, Manifest) else load_manifest(manifest)
    resource = man[name]
    root = resolve_root(dest)
    target = local_path(resource, root)
    if not force and is_present(resource, root):
        logger.info("%s is already present at %s", name, target)
        return target
    ensure_writable_dir(root, "data root")
    if resource.kind == "generated":
        return generate_resource(resource, root, progress=progress)
    state = status(resource, root)
    if not resource.urls:
        if state == "unverified" and not force:
            logger.warning("%s: %s was installed by hand (its layout is complete, its checksum cannot be verified)",
                           target, name)
            return target
        raise DataError(
            target,
            f"resource {name!r} has no download URL in the manifest ({man.source})"
            + (f": {resource.note}" if resource.note else ""),
            _manual_hint(resource, target),
        )
    if state == "unverified":
        logger.warning("%s: replacing the unverified copy of %s found there", target, name)
    _check_free_space(resource, root)
    if resource.kind == "file":
        return _fetch_file(resource, root, progress, timeout_s)
    return _fetch_archive(resource, root, progress, timeout_s, keep_archive)


def sha256sum(path: str | Path) -> str:
    """Hex sha256 of a file (streamed; pooch's hasher)."""
    return pooch.file_hash(str(path), alg="sha256")


def lock_path(root: str | Path | None = None) -> Path:
    """``<data root>/manifest.lock.json``: sha256 and size recorded at the first download of unhashed resources."""
    return resolve_root(root) / LOCK_NAME


def read_lock(root: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """The lock file's entries (resource name -> {sha256, size_bytes, filename, url, recorded}); ``{}`` if none."""
    path = lock_path(root)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise DataError(path, f"unreadable lock file ({exc})",
                        "repair it or delete it (the next downloads then re-record their sha256)") from exc
    entries = doc.get("resources") if isinstance(doc, dict) else None
    if not isinstance(entries, dict):
        raise DataError(path, "lock file without a 'resources' mapping", "delete it to re-record the sha256 values")
    return entries


def generate_resource(resource: Resource, root: str | Path | None = None, progress: bool = True) -> Path:
    """Produce a ``kind: generated`` resource at its manifest path with its generator, preset, seed and layouts."""
    if resource.kind != "generated" or resource.generator is None:
        raise ValueError(f"resource {resource.name!r} is not a generated resource")
    target = local_path(resource, root)
    if target.exists() and not is_present(resource, root):
        logger.warning("%s: removing an incomplete earlier generation of %s", target, resource.name)
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    return run_generator(resource.generator, target, preset=resource.preset or "demo", seed=resource.seed or 0,
                         layouts=resource.layouts, resource_name=resource.name)


def run_generator(
    generator: str,
    out_dir: str | Path,
    preset: str,
    seed: int,
    layouts: Sequence[str] | None = None,
    resource_name: str | None = None,
    overwrite: bool = False,
    **options: Any,
) -> Path:
    """Call ``generator(out_dir, preset=..., seed=..., layouts=...)`` and write ``out_dir/.complete`` afterwards.

    ``generator`` is a dotted path (``ssl4sar.data.synthetic.generate``) imported only now; ``layouts=None`` leaves
    the generator's default. The marker records the generator, preset, seed, layouts (the keys of the mapping the
    generator returns, when it returns one) and date; it is written only when the generator returned normally. A
    generator that fails without changing a file (it refused a full folder, a bad seed) leaves an earlier marker.
    """
    out_dir = Path(out_dir)
    module_name, _, func_name = generator.replace(":", ".").rpartition(".")
    try:
        func = getattr(importlib.import_module(module_name), func_name)
    except (ImportError, AttributeError) as exc:
        raise DataError(out_dir, f"generator {generator!r} is not available ({exc})") from exc
    ensure_writable_dir(out_dir)
    marker = out_dir / MARKER_NAME
    earlier_marker = marker.read_bytes() if marker.is_file() else None
    earlier_files = _file_states(out_dir) if earlier_marker is not None else None
    marker.unlink(missing_ok=True)  # from here until the generator returns, the output is not complete
    logger.info("generating %s with %s (preset %s, seed %d, layouts %s)", out_dir, generator, preset, seed,
                ", ".join(layouts) if layouts is not None else "default")
    kwargs: dict[str, Any] = {"preset": preset, "seed": seed}
    if layouts is not None:
        kwargs["layouts"] = list(layouts)
    if overwrite:
        kwargs["overwrite"] = True
    kwargs.update(options)   # further generator keywords, e.g. progress=False
    try:
        produced = func(out_dir, **kwargs)
    except BaseException as exc:
        if earlier_marker is not None and _file_states(out_dir) == earlier_files:
            # refused before writing (a full folder without overwrite, a bad seed, an interrupt): still complete
            write_bytes_atomic(marker, earlier_marker)
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            raise DataError(out_dir, f"disk full while generating {resource_name or 'data'} ({exc})",
                            "free some space or choose another output folder") from exc
        raise
    write_json_atomic(out_dir / MARKER_NAME, {
        "resource": resource_name, "kind": "generated", "generator": generator, "preset": preset, "seed": seed,
        "layouts": list(produced) if isinstance(produced, Mapping) else (list(layouts) if layouts else None),
        "date": _now(), "ssl4sar_version": __version__,
    })
    return out_dir


def _file_states(folder: Path) -> dict[str, tuple[int, int]]:
    """Relative path → (size in bytes, mtime in ns) of every file under ``folder`` but its completion marker."""
    states = {}
    for path in folder.rglob("*"):
        if path.name != MARKER_NAME and path.is_file():
            stat = path.stat()
            states[path.relative_to(folder).as_posix()] = (stat.st_size, stat.st_mtime_ns)
    return states


# ------------------------------------------------------------------------------------------------------------ fetching


def _fetch_file(resource: Resource, root: Path, progress: bool, timeout_s: float) -> Path:
    target = local_path(resource, root)
    marker = marker_path(resource, root)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(target.parent, f".{target.name}.", ".part", keep=_resume_paths(target.parent, target.name))
    # verified bytes wait under a temporary name: a failed re-download leaves an earlier install and its marker alone
    verified = target.with_name(f".{target.name}.verified.part")
    result = _download_verified(resource, root, verified, progress, timeout_s)
    _record_first_use(resource, root, result)
    marker.unlink(missing_ok=True)
    os.replace(verified, target)
    write_json_atomic(marker, result.marker(resource))
    logger.info("%s installed at %s", resource.name, target)
    return target


def _fetch_archive(resource: Resource, root: Path, progress: bool, timeout_s: float, keep_archive: bool) -> Path:
    assert resource.filename is not None
    target = local_path(resource, root)
    downloads = root / DOWNLOADS_DIR
    downloads.mkdir(parents=True, exist_ok=True)
    archive = downloads / resource.filename
    _remove_stale(downloads, f".{resource.filename}.", ".part", keep=_resume_paths(downloads, resource.filename))
    expected, source = _expected_sha256(resource, root)
    result: _Download | None = None
    if archive.is_file():
        if expected is not None and sha256sum(archive) == expected and _archive_intact(archive, resource):
            logger.info("reusing the verified archive %s", archive)
            result = _Download(url=_lock_url(resource, root), path=archive, sha256=expected,
                               size_bytes=archive.stat().st_size, sha256_source=source or "manifest")
        else:
            logger.info("discarding %s (not verifiable against a known sha256)", archive)
            archive.unlink()
    if result is None:
        result = _download_verified(resource, root, archive, progress, timeout_s)
        _record_first_use(resource, root, result)
    _unpack(resource, archive, target, result.marker(resource), progress)
    if not keep_archive:
        archive.unlink(missing_ok=True)
    logger.info("%s installed at %s", resource.name, target)
    return target


@dataclass
class _Download:
    url: str | None
    path: Path
    sha256: str
    size_bytes: int
    sha256_source: str  # "manifest" | "lock" | "first-use"

    def marker(self, resource: Resource) -> dict[str, Any]:
        return {
            "resource": resource.name, "kind": resource.kind, "filename": resource.filename, "url": self.url,
            "sha256": self.sha256, "size_bytes": self.size_bytes, "sha256_source": self.sha256_source,
            "date": _now(), "ssl4sar_version": __version__,
        }


class _AttemptFailed(Exception):
    def __init__(self, problem: str, checksum: bool = False) -> None:
        super().__init__(problem)
        self.problem = problem
        self.checksum = checksum


def _download_verified(resource: Resource, root: Path, final: Path, progress: bool, timeout_s: float) -> _Download:
    """Try each URL in turn; the first transfer that passes every check is renamed to ``final``."""
    expected, source = _expected_sha256(resource, root)
    target = local_path(resource, root) if resource.kind == "file" else final  # what errors name
    failures: list[tuple[str, _AttemptFailed]] = []
    tmp, state = _resume_paths(final.parent, target.name)
    for url in resource.urls:
        try:
            logger.info("downloading %s from %s", resource.name, url)
            try:
                announced = transfer(url, tmp, state, progress=progress, timeout_s=timeout_s,
                                     desc=target.name).announced
            except TransferFailed as cut:
                failures.append((url, _AttemptFailed(cut.problem)))
                logger.warning("%s: %s failed: %s", resource.name, url, cut.problem)
                continue
            size = tmp.stat().st_size
            if resource.size_bytes is not None and size != resource.size_bytes:
                raise _AttemptFailed(f"size mismatch: received {size} bytes, the manifest expects "
                                     f"{resource.size_bytes}")
            if resource.kind == "archive":
                _check_archive(tmp, resource.archive_format or "")
            elif not announced and resource.size_bytes is None:
                raise _AttemptFailed(f"received {size} bytes, but the server sent no Content-Length and the manifest "
                                     "has no size_bytes, so a cut-off transfer cannot be told from a complete one")
            digest = sha256sum(tmp)
            if expected is not None and digest != expected:
                raise _AttemptFailed(_mismatch(resource, root, digest, expected, source), checksum=True)
            set_default_mode(tmp)
            os.replace(tmp, final)
        except _AttemptFailed as failure:  # received in full, but not the right file: nothing to continue
            discard(tmp, state)
            logger.warning("%s: %s failed: %s", resource.name, url, failure.problem)
            failures.append((url, failure))
            continue
        except OSError as exc:
            discard(tmp, state)
            if exc.errno == errno.ENOSPC:
                raise DataError(target, f"disk full while downloading resource {resource.name!r} from {url} ({exc}); "
                                "the partial file was removed",
                                f"free at least {format_size(resource.expected_size_bytes, True)} "
                                "or choose another data root (--dest / SSL4SAR_DATA)") from exc
            raise DataError(target, f"cannot write the download of resource {resource.name!r} from {url}: "
                            f"{exc.strerror or exc}") from exc
        except BaseException:  # Ctrl-C, a kernel interrupt: bytes a later run can continue are kept
            if not state.is_file():
                discard(tmp, state)
            raise
        return _Download(url=url, path=final, sha256=digest, size_bytes=size,
                         sha256_source=source if expected is not None else "first-use")
    summary = "; ".join(f"{url}: {failure.problem}" for url, failure in failures)
    problem = f"could not fetch resource {resource.name!r} ({len(failures)} URL(s) tried) - {summary}"
    if any(failure.checksum for _, failure in failures):
        hint = ("the server delivered a different file than the one recorded: if the upstream file changed on "
                "purpose, update the manifest's sha256, else try again later") if source == "manifest" else (
                f"if the first download was the bad one, delete the {resource.name!r} entry of {lock_path(root)} and "
                f"run `ssl4sar data fetch {resource.name} --force`: that download is then recorded instead")
        raise ChecksumError(target, problem + "; nothing was installed", hint)
    if resource.kind == "file" and resource.size_bytes is None and all(
            "no Content-Length" in failure.problem for _, failure in failures):
        raise DataError(target, problem + "; nothing was installed",
                        "add the file's exact size as size_bytes to its manifest entry, or "
                        + _manual_hint(resource, target))
    raise DataError(target, problem + "; nothing was installed",
                    "check the network connection and the URL, then run the same command again; "
                    + _manual_hint(resource, local_path(resource, root)))


def _resume_paths(folder: Path, name: str) -> tuple[Path, Path]:
    """Where the bytes of an unfinished transfer of ``name`` wait for the next run, and their state
    (:mod:`ssl4sar.data.transfer`)."""
    return folder / f".{name}.resume.part", folder / f".{name}.resume.json"


# ---------------------------------------------------------------------------------------------- trust on first use


def _mismatch(resource: Resource, root: Path, digest: str, expected: str, source: str | None) -> str:
    """The sha256-mismatch problem, saying where the expected value came from."""
    if source == "manifest":
        return f"sha256 mismatch: got {digest}, the manifest (published checksum) expects {expected}"
    entry = read_lock(root).get(resource.name) or {}
    return (f"sha256 mismatch: got {digest}, the lock file {lock_path(root)} expects {expected}, a value recorded "
            f"from the first download ({entry.get('url') or 'unknown URL'}, {entry.get('recorded') or 'unknown date'})"
            " because no checksum is published for this resource, so either that download or this one is not the "
            "real file")


def _expected_sha256(resource: Resource, root: Path) -> tuple[str | None, str | None]:
    """(sha256, "manifest" | "lock") to verify against, or (None, None) for a first download."""
    if resource.sha256 is not None:
        return resource.sha256, "manifest"
    entry = read_lock(root).get(resource.name)
    if not entry:
        return None, None
    if entry.get("filename") not in (None, resource.filename):
        logger.warning("%s: the lock entry for %s names %r, the manifest %r; ignoring the stale entry",
                       lock_path(root), resource.name, entry.get("filename"), resource.filename)
        return None, None
    sha = entry.get("sha256")
    if not isinstance(sha, str) or len(sha) != 64:
        raise DataError(lock_path(root), f"entry {resource.name!r} has no valid sha256",
                        "delete the entry to re-record it at the next download")
    return sha.lower(), "lock"


def _lock_url(resource: Resource, root: Path) -> str | None:
    entry = read_lock(root).get(resource.name) or {}
    return entry.get("url")


def _record_first_use(resource: Resource, root: Path, result: _Download) -> None:
    """Record sha256 + size of a download that had nothing to be verified against (trust on first use)."""
    if result.sha256_source != "first-use":
        return
    path = lock_path(root)
    entries = read_lock(root)
    entries[resource.name] = {
        "sha256": result.sha256, "sha256_source": "first-download", "size_bytes": result.size_bytes,
        "filename": resource.filename, "url": result.url, "recorded": _now(),
    }
    write_json_atomic(path, {
        "comment": "sha256 of resources whose data_manifest.yaml entry has sha256: null, recorded at their first "
                   "download (trust on first use); later downloads are verified against these values",
        "version": 1, "resources": entries,
    })
    logger.warning(
        "resource %r has no sha256 in the manifest: trusting this first download from %s (sha256 %s, %d bytes) and "
        "recording it in %s; later downloads must match it", resource.name, result.url, result.sha256,
        result.size_bytes, path)


# ------------------------------------------------------------------------------------------------------------ unpacking


def _unpack(resource: Resource, archive: Path, target: Path, marker: dict[str, Any], progress: bool) -> None:
    """Extract ``archive`` next to ``target``, find the layout folder, mark it complete and rename it to ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(target.parent, f".{target.name}.unpack-", "", directories=True)
    _remove_stale(target.parent, f".{target.name}.old-", "", directories=True)
    workdir = Path(tempfile.mkdtemp(prefix=f".{target.name}.unpack-", dir=target.parent))
    try:
        _extract(archive, resource.archive_format or "", workdir, progress)
        found = _find_layout_root(workdir, resource.layout)
        if found is None:
            missing = [p for p in resource.layout if not (workdir / p).exists()]
            raise DataError(archive, f"archive of resource {resource.name!r} does not contain the expected layout "
                            f"(missing at the top level and in any sub-folder: {', '.join(missing)})",
                            "the manifest's unpack.layout may be out of date; nothing was installed")
        write_json_atomic(found / MARKER_NAME, marker)
        _replace_dir(found, target)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise DataError(target, f"disk full while unpacking resource {resource.name!r} from {archive} ({exc}); "
                            "the partial extraction was removed",
                            "free some space and run the same command again (the verified archive is kept)") from exc
        raise
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _extract(archive: Path, fmt: str, out: Path, progress: bool) -> None:
    try:
        if fmt == "zip":
            with zipfile.ZipFile(archive) as zf:
                members = zf.infolist()
                for info in tqdm(members, desc=f"unpack {archive.name}", unit="file", disable=not progress):
                    name = PurePosixPath(info.filename)
                    if name.is_absolute() or ".." in name.parts:
                        raise DataError(archive, f"unsafe member path {info.filename!r} in zip archive")
                    zf.extract(info, out)
        elif fmt.startswith("tar"):
            mode = {"tar": "r:", "tar.gz": "r:gz", "tar.bz2": "r:bz2", "tar.xz": "r:xz"}[fmt]
            with tarfile.open(archive, mode) as tf:
                for member in tqdm(tf, desc=f"unpack {archive.name}", unit="file", disable=not progress):
                    tf.extract(member, out, filter="data")
        else:
            raise DataError(archive, f"unknown archive format {fmt!r}")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error) as exc:
        raise DataError(archive, f"corrupt, unreadable or unsafe {fmt} archive ({type(exc).__name__}: {exc})",
                        "delete it and fetch again; nothing was installed") from exc


def _check_archive(path: Path, fmt: str) -> None:
    """Integrity check of a downloaded archive before its checksum is trusted: every zip member's CRC, every tar
    member read to its end (a cut-off archive fails here). Raises :class:`_AttemptFailed`."""
    try:
        if fmt == "zip":
            with zipfile.ZipFile(path) as zf:
                bad = zf.testzip()
            if bad is not None:
                raise _AttemptFailed(f"the zip archive failed its integrity check (member {bad!r} is corrupt)")
        elif fmt.startswith("tar"):
            mode = {"tar": "r:", "tar.gz": "r:gz", "tar.bz2": "r:bz2", "tar.xz": "r:xz"}.get(fmt, "r:*")
            with tarfile.open(path, mode) as tf:
                for member in tf:
                    handle = tf.extractfile(member) if member.isfile() else None
                    while handle is not None and handle.read(1 << 20):
                        pass
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            raise
        raise _AttemptFailed(f"the {fmt} archive failed its integrity check, it is cut off or corrupt "
                             f"({type(exc).__name__}: {exc})") from exc


def _archive_intact(archive: Path, resource: Resource) -> bool:
    """Whether a kept archive passes :func:`_check_archive` (a lock written before that check existed may hold the
    sha256 of a cut-off file)."""
    try:
        _check_archive(archive, resource.archive_format or "")
    except _AttemptFailed as failure:
        logger.warning("%s: %s; not reusing it", archive, failure.problem)
        return False
    return True


def _find_layout_root(top: Path, layout: Sequence[str]) -> Path | None:
    """The folder (``top`` or one below it, breadth first, up to 3 levels) holding every ``layout`` path."""
    if not layout:
        return top
    queue: deque[tuple[Path, int]] = deque([(top, 0)])
    while queue:
        folder, depth = queue.popleft()
        if all((folder / p).exists() for p in layout):
            return folder
        if depth < _LAYOUT_SEARCH_DEPTH:
            queue.extend((sub, depth + 1) for sub in sorted(folder.iterdir()) if sub.is_dir() and not sub.is_symlink())
    return None


def _replace_dir(new: Path, target: Path) -> None:
    """Rename ``new`` onto ``target``; an existing ``target`` is moved aside first and removed afterwards."""
    aside: Path | None = None
    if target.exists() or target.is_symlink():
        aside = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(target, aside)
    try:
        os.replace(new, target)
    except BaseException:
        if aside is not None:
            os.replace(aside, target)
        raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True) if aside.is_dir() else aside.unlink(missing_ok=True)


# ------------------------------------------------------------------------------------------------------------- helpers


def _check_free_space(resource: Resource, root: Path) -> None:
    """Refuse to start when the disk clearly cannot hold the resource (archive + unpacked copy for archives), less
    the bytes a cut-off transfer kept (a continued download needs room for the rest only)."""
    size = resource.expected_size_bytes
    if size is None:
        return
    target = local_path(resource, root)
    partial = _resume_paths(root / DOWNLOADS_DIR, resource.filename or "")[0] if resource.kind == "archive" else \
        _resume_paths(target.parent, target.name)[0]
    kept = partial.stat().st_size if partial.is_file() else 0
    needed = (2 * size if resource.kind == "archive" else size) - min(kept, size)
    probe = root
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = free_disk_bytes(probe)
    if free < needed:
        raise DataError(root, f"not enough disk space for resource {resource.name!r}: needs about "
                        f"{format_size(needed)}, {format_size(free)} free",
                        "free some space or choose another data root (--dest / SSL4SAR_DATA)")


def _remove_stale(directory: Path, prefix: str, suffix: str, directories: bool = False,
                  keep: Sequence[Path] = ()) -> None:
    """Remove leftovers (``prefix*suffix``) of an earlier, interrupted run, but the paths in ``keep``."""
    if not directory.is_dir():
        return
    for entry in directory.iterdir():
        if entry.name.startswith(prefix) and entry.name.endswith(suffix) and entry not in keep:
            logger.info("removing leftover %s of an interrupted run", entry)
            with contextlib.suppress(OSError):
                if directories and entry.is_dir():
                    shutil.rmtree(entry)
                elif not entry.is_dir():
                    entry.unlink()


def _manual_hint(resource: Resource, target: Path) -> str:
    where = resource.landing_page or (resource.urls[0] if resource.urls else "the data provider")
    if resource.kind == "archive":
        what = f"unpack it so that {target} contains {', '.join(resource.layout)}" if resource.layout \
            else f"unpack it into {target}"
    else:
        what = f"save it as {target}"
    return f"to install by hand, download from {where} and {what}"


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")

