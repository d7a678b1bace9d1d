"""One HTTP(S) transfer into a local file, continued by a later run where the server allows it.

The CaFFe archive is 2.9 GB. Over a slow or unreliable connection a transfer that starts from byte 0 after every
cut may never finish, so :func:`transfer` keeps what it received and the next call asks only for the rest.

- The bytes go to ``partial``; ``state`` (JSON) says whose bytes they are: the URL, the server's validator for
  that version of the file (its ``ETag``, else its ``Last-Modified``) and the total size it announced.
- A later call for the **same URL** with both files sends ``Range: bytes=N-`` with ``If-Range: <validator>``: a
  server that supports ranges and still has the same version answers ``206`` with the rest; one that has another
  version, or ignores ranges, answers ``200`` with the whole file, and the transfer starts again from byte 0.
  A ``206`` that does not start at byte N or states another total is refused and its bytes are not kept.
- Bytes are kept for a later call only when the response announced the total size and a validator; without them
  a cut-off transfer could not be continued safely, and ``partial`` and ``state`` are deleted.
- ``partial`` is emptied before a new ``state`` is written, so a kill at any moment never pairs the bytes of one
  version of a file with the validator of another.

Continuing never replaces a check: the caller verifies the finished file (size, archive integrity, sha256) exactly
as it verifies a transfer made in one piece (:mod:`ssl4sar.data.download`).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tqdm.auto import tqdm

from ssl4sar import __version__
from ssl4sar.io import write_json_atomic

__all__ = ["TransferFailed", "Transfer", "transfer", "discard"]

logger = logging.getLogger(__name__)

_CHUNK_BYTES = 1 << 20
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")


class TransferFailed(Exception):
    """A transfer that did not complete. ``problem`` says why; ``kept_bytes`` is what the next call for the same URL
    continues from (0: nothing was kept)."""

    def __init__(self, problem: str, kept_bytes: int = 0) -> None:
        super().__init__(problem)
        self.problem = problem
        self.kept_bytes = kept_bytes


@dataclass(frozen=True)
class Transfer:
    """A completed transfer: ``announced`` total size in bytes (0: the server stated none) and ``resumed_from``,
    the bytes kept from an earlier call (0: one piece)."""

    announced: int
    resumed_from: int


def discard(partial: Path, state: Path) -> None:
    """Delete a transfer's bytes and state (after a failed check, or to start afresh)."""
    partial.unlink(missing_ok=True)
    state.unlink(missing_ok=True)


def transfer(url: str, partial: Path, state: Path, *, progress: bool = True, timeout_s: float = 60.0,
             desc: str = "") -> Transfer:
    """Stream ``url`` into ``partial``, continuing the bytes an earlier call kept for the same URL and version.

    Raises :class:`TransferFailed` for HTTP errors, refused ranges, connection failures and bodies shorter or longer
    than announced (``kept_bytes`` > 0 when a later call can continue), and ``OSError`` when ``partial`` cannot be
    written (the caller decides what to keep).
    """
    import requests  # lazy: only needed for downloads
    import urllib3

    offset, validator, total = _resumable(url, partial, state)
    headers = {"Accept-Encoding": "identity", "User-Agent": f"ssl4sar/{__version__}"}
    if offset:
        headers.update({"Range": f"bytes={offset}-", "If-Range": validator})
    bar: tqdm | None = None
    try:
        with requests.get(url, headers=headers, stream=True, timeout=timeout_s) as response:
            if response.status_code >= 400:
                if offset:  # e.g. 416 for a file that shrank: kept bytes that only get errors must not block every run
                    discard(partial, state)
                    raise TransferFailed(f"HTTP {response.status_code} {response.reason} to the request for bytes "
                                         f"{offset}- of {total}; the kept bytes were discarded")
                raise TransferFailed(f"HTTP {response.status_code} {response.reason}")
            encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
            if encoding not in ("", "identity"):  # the raw body would not be the file (nor its ranges)
                raise _failed(f"the server sent the file {encoding}-encoded, though asked for it unencoded",
                              partial, state, total)
            if offset and response.status_code == 206:
                _check_range(response, offset, total, partial, state)
                logger.info("%s: continuing from byte %d of %d", url, offset, total)
            else:
                if offset:
                    logger.info("%s: the server sent the whole file (another version, or no ranges): starting "
                                "again", url)
                offset = 0
                total = int(response.headers.get("Content-Length") or 0)
                validator = response.headers.get("ETag") or response.headers.get("Last-Modified") or ""
                if validator.startswith("W/"):  # a weak ETag may not be used with If-Range
                    validator = response.headers.get("Last-Modified") or ""
                discard(partial, state)  # bytes first, then the new state: never old bytes under a new validator
                partial.touch()
                if total and validator:
                    write_json_atomic(state, {"url": url, "validator": validator, "total": total})
            bar = tqdm(total=total or None, initial=offset, desc=desc, unit="B", unit_scale=True, unit_divisor=1000,
                       leave=True, disable=not progress, dynamic_ncols=True)
            with open(partial, "ab") as fh:
                _copy_body(response, fh, bar)
    except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError) as exc:
        received = partial.stat().st_size if partial.exists() else 0
        problem = (f"truncated transfer: the connection closed before the {total} bytes announced by "
                   f"Content-Length arrived ({received} bytes written; {type(exc).__name__})"
                   if total and received < total else f"transfer failed ({type(exc).__name__}: {exc})")
        raise _failed(problem, partial, state, total) from exc
    finally:
        if bar is not None:
            bar.close()
    received = partial.stat().st_size
    if total and received != total:
        raise _failed(f"truncated transfer: received {received} bytes, Content-Length announced {total}"
                      if received < total else f"received {received} bytes, more than the {total} announced",
                      partial, state, total)
    state.unlink(missing_ok=True)
    return Transfer(announced=total, resumed_from=offset)


def _copy_body(response: Any, fh: IO[bytes], bar: tqdm) -> None:
    """Write the response body to ``fh`` as it arrives: ``read1`` returns what the socket has, so a cut-off
    connection loses no byte it delivered (a fixed-size ``read`` drops the last, incomplete chunk)."""
    raw = response.raw
    read = raw.read1 if hasattr(raw, "read1") else raw.read
    while chunk := read(_CHUNK_BYTES):
        fh.write(chunk)
        bar.update(len(chunk))


def _resumable(url: str, partial: Path, state: Path) -> tuple[int, str, int]:
    """``(bytes kept, validator, total)`` of an earlier transfer of ``url`` that can be continued, else
    ``(0, "", 0)`` (and whatever an earlier transfer left is deleted)."""
    try:
        saved = json.loads(state.read_text())
        kept = partial.stat().st_size
    except (OSError, ValueError):
        discard(partial, state)
        return 0, "", 0
    if not isinstance(saved, dict) or saved.get("url") != url:
        return 0, "", 0  # another mirror's bytes: replaced once this URL answers
    validator, total = saved.get("validator"), saved.get("total")
    if not (isinstance(validator, str) and validator and isinstance(total, int) and 0 < kept < total):
        discard(partial, state)
        return 0, "", 0
    return kept, validator, total


def _check_range(response: Any, offset: int, total: int, partial: Path, state: Path) -> None:
    """A ``206`` must continue exactly at ``offset`` and state the same total."""
    match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
    if not match or int(match.group(1)) != offset or int(match.group(3)) != total:
        discard(partial, state)
        raise TransferFailed(f"the server answered the request for bytes {offset}- of {total} with Content-Range "
                             f"{response.headers.get('Content-Range')!r}; the kept bytes were discarded")


def _failed(problem: str, partial: Path, state: Path, total: int) -> TransferFailed:
    """The failure of a transfer cut off after ``partial``'s bytes: kept when ``state`` allows a later call to
    continue, else deleted."""
    kept = partial.stat().st_size if partial.exists() else 0
    if state.is_file() and 0 < kept < total:
        return TransferFailed(f"{problem}; kept {kept} of {total} bytes, which the next run continues from", kept)
    discard(partial, state)
    return TransferFailed(problem)
