"""Small file helpers: atomic writes so that nothing half-written ever looks complete."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary file keeps the final suffix (``.tif``, ``.png`` …) so that writers that infer the
    format from the name work. On error the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".part{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        set_default_mode(tmp_path)
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def atomic_leftovers(folder: str | Path, name_stem: str) -> list[Path]:
    """The temporary files :func:`atomic_path` left in ``folder`` for a final name whose stem is ``name_stem``,
    when the process writing them was killed: ``.<name_stem>.XXXXXXXX.part.<ext>``, with the 8 random characters
    :mod:`tempfile` makes. No other name, even a similar one, is returned."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    pattern = re.compile(rf"\.{re.escape(name_stem)}\.[a-z0-9_]{{8}}\.part\.[A-Za-z0-9]+")
    return sorted(p for p in folder.glob(f".{glob.escape(name_stem)}.*.part.*")
                  if pattern.fullmatch(p.name) and p.is_file())


def set_default_mode(path: str | Path) -> None:
    """Give ``path`` the permissions a newly created file gets (``0o666`` less the umask): ``mkstemp`` makes 0600."""
    umask = os.umask(0)
    os.umask(umask)
    with contextlib.suppress(OSError):
        os.chmod(path, 0o666 & ~umask)


def ensure_writable_dir(path: str | Path, what: str = "output folder") -> Path:
    """Create ``path`` (with parents) and prove that files can be written in it; return it.

    Commands call this before any heavy work so that an unwritable ``--out`` ends at once with a
    :class:`~ssl4sar.errors.DataError` naming the folder, instead of a PermissionError after the work.
    """
    from ssl4sar.errors import DataError

    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        problem = "exists and is not a folder" if path.exists() and not path.is_dir() else \
            f"is not writable ({exc.strerror or exc})"
        raise DataError(path, f"the {what} {problem}", "choose another folder or fix its permissions") from exc
    return path


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json_atomic(path: str | Path, obj: Any, indent: int = 2) -> Path:
    return write_text_atomic(path, json.dumps(obj, indent=indent, default=str) + "\n")
