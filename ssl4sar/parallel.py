"""Run independent jobs in parallel.

- :func:`parallel_map`: whole jobs in spawned processes, without leaving any behind; used by the protocol's
  fine-tuning and evaluation runs (:mod:`ssl4sar.experiments`) and by the synthetic-data generator;
  :func:`parallel_imap` yields each result as soon as it is in (the SAR scenes of ``data construct``).
- :func:`threaded_map`: torch work (forward passes) on a few threads of this process, each with its own share of
  torch's intra-op threads; used by sliding-window inference on CPUs (:mod:`ssl4sar.inference`).
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import multiprocessing
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from typing import Any

__all__ = ["parallel_imap", "parallel_map", "threaded_map"]

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
    return list(tqdm(parallel_imap(fn, items, workers, **kwargs), **bar))


def parallel_imap(fn: Callable[..., Any], items: Sequence[Any], workers: int, **kwargs: Any) -> Iterator[Any]:
    """Yield ``fn(item, **kwargs)`` for every item, in order, each as soon as it and those before it are done:
    :func:`parallel_map` for callers that act on every result at once (record it, so that an interrupted run keeps
    it). Every item is submitted at the start. A failed run raises its error as soon as it fails, whatever its
    place in the order (the results before it that are already in have been yielded).

    The same guarantees as :func:`parallel_map`; closing the generator early (the caller's loop raised or broke
    off) also terminates the runs still going.
    """
    if workers <= 1 or len(items) <= 1:
        for item in items:
            yield fn(item, **kwargs)
        return
    ctx = multiprocessing.get_context("spawn")
    pool = concurrent.futures.ProcessPoolExecutor(max_workers=int(workers), mp_context=ctx,
                                                  initializer=_die_with_parent)
    finished = False
    try:
        futures = [pool.submit(fn, item, **kwargs) for item in items]
        pending = set(futures)
        for i, future in enumerate(futures):
            # wait for this run, but raise any other run's failure as soon as it happens: the runs ahead of it may
            # take minutes, and meanwhile the pool would go on starting queued runs
            while not future.done():
                done, pending = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
                for f in done:
                    if f.exception() is not None:
                        f.result()  # raises it
            result = future.result()
            finished = i == len(futures) - 1  # every run is done: nothing to stop, even if the caller stops here
            yield result
    finally:  # also on GeneratorExit: the caller stopped early
        if not finished:
            _terminate_workers(pool)
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


def threaded_map(fn: Callable[[Any], Any], items: Iterable[Any], workers: int) -> Generator[Any, None, None]:
    """Yield ``fn(item)`` for every item, in order, computed on ``workers`` threads of this process.

    For torch work on CPUs: while the generator runs, torch's intra-op thread count is divided among the workers
    (``max(1, threads // workers)`` each) and restored afterwards, so the workers share the cores instead of
    oversubscribing them. Small convolutions and attention windows parallelise poorly inside one operation: on a
    2-core CPU two single-threaded forward passes of the paper network side by side gave 1.03–1.10× the windows/s of
    one two-threaded pass (``book/bench/cpu-2core-inference-2026-12-04``). torch releases the GIL inside its
    operations.

    At most ``workers`` items are in flight, so peak memory grows with ``workers`` (each holds its own batch of
    activations), not with the number of items. Thread-local torch state (``inference_mode``, ``no_grad``,
    autocast) is *not* inherited: ``fn`` must enter it itself. An exception in ``fn`` is raised here, after the
    items already in flight have finished (threads cannot be killed); the rest are not started.
    ``workers`` ≤ 1 runs everything in the calling thread, with torch's thread count unchanged.
    """
    import torch

    if workers <= 1:
        for item in items:
            yield fn(item)
        return
    threads = torch.get_num_threads()
    pending: collections.deque[concurrent.futures.Future[Any]] = collections.deque()
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=int(workers), thread_name_prefix="ssl4sar-torch")
    torch.set_num_threads(max(1, threads // int(workers)))
    try:
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for f in pending:
            f.cancel()
        pool.shutdown(wait=True)
        torch.set_num_threads(threads)
