"""Run independent jobs in spawned processes without leaving any behind: :func:`parallel_map`, used by the
protocol's fine-tuning and evaluation runs (:mod:`ssl4sar.experiments`) and by the synthetic-data generator."""

from __future__ import annotations

import concurrent.futures
import logging
import multiprocessing
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["parallel_map"]

log = logging.getLogger(__name__)


def parallel_map(fn: Callable[..., Any], items: Sequence[Any], workers: int, *, progress: str | None = None,
                 **kwargs: Any) -> list[Any]:
    """``[fn(item, **kwargs) for item in items]``, in ``workers`` spawned processes when ``workers`` > 1.

    ``progress``: the label of a progress bar over the items (shown from 8 items on); ``None``: no bar.

    Results come back in the order of ``items``. Spawned (not forked) processes start clean of the caller's
    threads and torch state, so a result does not depend on the process that computed it.

    No run outlives the call: when it ends by an exception (a failed run, Ctrl-C, a kernel interrupt) the other
    runs are terminated, and on Linux a worker is also sent SIGTERM when the calling process dies (``timeout``,
    ``kill``, even ``kill -9``) — otherwise orphaned runs would go on training for minutes.
    """
    from tqdm import tqdm

    bar = {"desc": progress or "", "total": len(items), "disable": progress is None or len(items) < 8,
           "leave": False}
    if workers <= 1 or len(items) <= 1:
        return [fn(item, **kwargs) for item in tqdm(items, **bar)]
    ctx = multiprocessing.get_context("spawn")
    pool = concurrent.futures.ProcessPoolExecutor(max_workers=int(workers), mp_context=ctx,
                                                  initializer=_die_with_parent)
    try:
        futures = [pool.submit(fn, item, **kwargs) for item in items]
        return [f.result() for f in tqdm(futures, **bar)]
    except BaseException:
        _terminate_workers(pool)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _die_with_parent() -> None:
    """Worker initialiser: ask Linux to send this process SIGTERM when its parent dies (``PR_SET_PDEATHSIG``);
    a no-op elsewhere."""
    import ctypes
    import ctypes.util
    import signal
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # no libc / prctl: runs may outlive a killed parent
        return


def _terminate_workers(pool: concurrent.futures.ProcessPoolExecutor) -> None:
    """Stop the worker processes of ``pool`` now (SIGTERM, then SIGKILL after 10 s), cancelling queued runs."""
    processes = list((getattr(pool, "_processes", None) or {}).values())  # the executor has no public handle
    pool.shutdown(wait=False, cancel_futures=True)
    for p in processes:
        if p.is_alive():
            p.terminate()
    for p in processes:
        p.join(timeout=10)
        if p.is_alive():
            p.kill()
            p.join(timeout=5)
    if processes:
        log.warning("stopped %d worker process(es) of an interrupted parallel run", len(processes))
