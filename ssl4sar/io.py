"""Small file helpers: atomic writes so that nothing half-written ever looks complete, and output folders that one
command at a time writes into."""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import logging
import os
import re
import shutil
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


def atomic_leftovers(folder: str | Path, name_stem: str | None, suffix: str | None = None) -> list[Path]:
    """The temporary files :func:`atomic_path` left in ``folder`` for a final name whose stem is ``name_stem``
    (``None``: any stem) and, when given, whose suffix is ``suffix`` (``".ckpt"``), when the process writing them was
    killed: ``.<name_stem>.XXXXXXXX.part.<ext>``, with the 8 random characters :mod:`tempfile` makes. No other name,
    even a similar one, is returned."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stem = ".+" if name_stem is None else re.escape(name_stem)
    ext = re.escape(suffix.lstrip(".")) if suffix else "[A-Za-z0-9]+"
    pattern = re.compile(rf"\.{stem}\.[a-z0-9_]{{8}}\.part\.{ext}")
    prefix = "" if name_stem is None else glob.escape(name_stem)
    return sorted(p for p in folder.glob(f".{prefix}*.part.*") if pattern.fullmatch(p.name) and p.is_file())


def set_default_mode(path: str | Path) -> None:
    """Give ``path`` the permissions a newly created file gets (``0o666`` less the umask): ``mkstemp`` makes 0600."""
    umask = os.umask(0)
    os.umask(umask)
    with contextlib.suppress(OSError):
        os.chmod(path, 0o666 & ~umask)


def ensure_writable_dir(path: str | Path, what: str = "output folder") -> Path:
    """Create ``path`` (with parents) and prove that files can be written in it; return it.

    Commands call this before any heavy work so that an unwritable ``--out`` ends at once with a
    :class:`~ssl4sar.errors.DataError` naming the folder, instead of a PermissionError after the work. Inside
    :func:`output_locks` (every command) the folder is also held until the command ends, and a folder that another
    process holds is a :class:`~ssl4sar.errors.DataError`.
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
    _lock_folder(path, what)
    return path


# Folders locked by this process while output_locks() is active: (device, inode) -> open file descriptor.
_held_folders: dict[tuple[int, int], int] | None = None
#: environment variables that name a process's rank in a multi-process run (Lightning, torchrun, SLURM)
_RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID")


@contextlib.contextmanager
def output_locks() -> Iterator[None]:
    """While active, each folder that :func:`ensure_writable_dir` prepares is locked against other processes until
    the block ends: a second command writing into the same folder (the same ``--out`` in two terminals, a cell run
    twice in two kernels through the command line) stops with a :class:`~ssl4sar.errors.DataError` naming it,
    instead of both writing checkpoints, records and downloads over each other. The command line runs every command
    inside it.

    The lock is ``flock`` on the folder itself: no file is made, and the kernel drops it when the process ends,
    however it ends (``kill -9`` too), so an interrupted run never leaves a stale lock. Re-entrant within a process.
    Not taken by the secondary ranks of a multi-process training (they write into rank 0's folders), nor where the
    file system has no ``flock`` (some network file systems; a debug log says so)."""
    global _held_folders
    if _held_folders is not None or any(os.environ.get(v, "0") != "0" for v in _RANK_VARIABLES):
        yield
        return
    _held_folders = {}
    try:
        yield
    finally:
        for fd in _held_folders.values():
            os.close(fd)  # releases the lock
        _held_folders = None


def _lock_folder(path: Path, what: str) -> None:
    """Lock ``path`` for the rest of the active :func:`output_locks` block (nothing outside one)."""
    from ssl4sar.errors import DataError

    if _held_folders is None:
        return
    try:
        import fcntl
    except ImportError:  # not a POSIX system
        return
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError as exc:
        logging.getLogger(__name__).debug("%s: not locked (%s)", path, exc)
        return
    stat = os.fstat(fd)
    key = (stat.st_dev, stat.st_ino)
    if key in _held_folders:
        os.close(fd)
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise DataError(path, f"another process is writing into this {what} (an ssl4sar command given the same "
                              "folder is still running)", "wait for it to end, or choose another folder") from None
    except OSError as exc:
        os.close(fd)
        logging.getLogger(__name__).debug("%s: not locked (%s)", path, exc)
        return
    _held_folders[key] = fd


def free_disk_bytes(folder: str | Path) -> int:
    """Bytes free for this user on the file system that holds ``folder``."""
    return shutil.disk_usage(folder).free


def reserve_disk_space(path: str | Path, nbytes: int) -> None:
    """Allocate the blocks of the first ``nbytes`` of the existing file ``path`` now (``posix_fallocate``), so that
    writing them later cannot fail for want of space: through a memory map such a failure is a SIGBUS that kills
    the process without a word. Raises ``OSError`` (``ENOSPC``) when the space is not there. Where the system has no
    ``posix_fallocate`` (macOS, Windows) nothing is reserved."""
    if not hasattr(os, "posix_fallocate") or nbytes <= 0:
        return
    with open(path, "r+b") as fh:
        os.posix_fallocate(fh.fileno(), 0, int(nbytes))


@contextlib.contextmanager
def disk_full_raises(folder: str | Path, what: str, hint: str) -> Iterator[None]:
    """Inside the block, a write that finds no space (``OSError`` ``ENOSPC``) becomes a
    :class:`~ssl4sar.errors.DiskFull` naming ``folder``: "no space left on the device while writing ``what``"."""
    from ssl4sar.errors import DiskFull

    try:
        yield
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        raise DiskFull(folder, f"no space left on the device while writing {what} ({exc})", hint) from exc


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
