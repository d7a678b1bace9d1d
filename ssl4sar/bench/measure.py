"""The measuring instruments every benchmark shares: one peak-memory meter, step timing, alternating rounds,
FLOP counting.

- :class:`PeakMemory` — peak memory of a block: on CUDA ``torch.cuda.max_memory_allocated`` after a reset; on Linux
  CPUs the kernel's resident-set high-water mark ``VmHWM`` after resetting it through ``/proc/self/clear_refs``
  (exact, no sampling; sees torch's and numpy's allocations alike), elsewhere ``getrusage(RUSAGE_SELF).ru_maxrss``
  (process-lifetime peak; flagged in ``kind``).
- :func:`warmup_steps`, :func:`time_steps` — seconds per call; on CUDA bracketed by CUDA events after a
  synchronisation, on CPU ``time.perf_counter``.
- :func:`alternate` — several variants of one benchmark timed in alternating rounds (A B A B …), so that a
  background load that comes and goes hits every variant alike; the best round of each is what ratios use.
- :func:`count_flops` — ``torch.utils.flop_counter.FlopCounterMode`` on the ``meta`` device (shapes only). It counts
  matrix products, convolutions and attention (2 FLOPs per multiply-add); normalisation and element-wise work are not
  counted. A training step is :data:`TRAINING_FLOPS_FACTOR` × the forward FLOPs.
"""

from __future__ import annotations

import logging
import math
import re
import resource
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = [
    "COMPILE_WARMUP_STEPS",
    "TRAINING_FLOPS_FACTOR",
    "PeakMemory",
    "alternate",
    "allocated_mb",
    "count_flops",
    "discount_other_paths",
    "step_summary",
    "time_steps",
    "warmup_steps",
]

log = logging.getLogger(__name__)

_MB = 1024.0 * 1024.0
#: training FLOPs per sample = this × forward FLOPs (backward ≈ 2 × forward)
TRAINING_FLOPS_FACTOR = 3.0
#: warm-up steps before a compiled path is timed or profiled: compilation, then the recompilation that the second
#: step's changed state (optimiser state, gradients) can trigger
COMPILE_WARMUP_STEPS = 3


# ---------------------------------------------------------------------------------------------------- memory


def _read_status_kb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as fh:
            m = re.search(rf"^{field}:\s+(\d+)\s+kB", fh.read(), re.MULTILINE)
    except OSError:
        return None
    return float(m.group(1)) if m else None


def _reset_hwm() -> bool:
    """Reset the kernel's peak-RSS counter of this process (Linux ≥ 4.0); False where that is impossible."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return _read_status_kb("VmHWM") is not None


def _ru_maxrss_mb() -> float:
    v = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return v / _MB if sys.platform == "darwin" else v / 1024.0


class PeakMemory:
    """Context manager measuring the peak memory of the enclosed block on ``device``.

    After the block: ``peak_mb`` (CUDA: peak allocated by torch; CPU: peak resident set size of the process, MB),
    ``baseline_mb`` (the same quantity when the block started), ``increase_mb = peak_mb − baseline_mb`` and
    ``kind``: ``"cuda_max_allocated"``, ``"rss_hwm"`` (exact peak RSS during the block) or ``"ru_maxrss"``
    (process-lifetime peak RSS; the block's own peak is not separable).
    """

    def __init__(self, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.kind = ""
        self.baseline_mb = float("nan")
        self.peak_mb = float("nan")

    @property
    def increase_mb(self) -> float:
        return self.peak_mb - self.baseline_mb

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.kind = "cuda_max_allocated"
            self.baseline_mb = torch.cuda.memory_allocated(self.device) / _MB
        elif _reset_hwm():
            self.kind = "rss_hwm"
            self.baseline_mb = (_read_status_kb("VmRSS") or float("nan")) / 1024.0
        else:
            self.kind = "ru_maxrss"
            self.baseline_mb = _ru_maxrss_mb()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.kind == "cuda_max_allocated":
            torch.cuda.synchronize(self.device)
            self.peak_mb = torch.cuda.max_memory_allocated(self.device) / _MB
        elif self.kind == "rss_hwm":
            self.peak_mb = (_read_status_kb("VmHWM") or float("nan")) / 1024.0
        else:
            self.peak_mb = _ru_maxrss_mb()

    def as_dict(self) -> dict[str, Any]:
        return {
            "peak_memory_mb": self.peak_mb,
            "memory_baseline_mb": self.baseline_mb,
            "memory_increase_mb": self.increase_mb,
            "memory_kind": self.kind,
        }


def allocated_mb(device: torch.device) -> float | None:
    """Memory torch holds on ``device`` now (MB): CUDA only (``None`` elsewhere). Taken before a benchmark path's
    case is built, it is what the paths built earlier keep allocated during the alternating rounds."""
    return torch.cuda.memory_allocated(device) / _MB if device.type == "cuda" else None


def discount_other_paths(row: dict[str, Any], other_mb: float | None) -> dict[str, Any]:
    """Take ``other_mb`` (:func:`allocated_mb` before this path was built) off a row's CUDA peak and baseline, and
    record it as ``memory_other_paths_mb``; a row without it (CPU: the process's resident set is not separable
    by path) is returned unchanged."""
    if other_mb is not None:
        row.update(peak_memory_mb=row["peak_memory_mb"] - other_mb,
                   memory_baseline_mb=row["memory_baseline_mb"] - other_mb, memory_other_paths_mb=other_mb)
    return row


# ---------------------------------------------------------------------------------------------------- timing


def _timed_call(step: Callable[[], Any], dev: torch.device) -> float:
    if dev.type == "cuda":
        # the stream of the benchmark device: a bare record() uses the current device's, cuda:0 on --device cuda:1
        stream = torch.cuda.current_stream(dev)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize(dev)
        start.record(stream)
        step()
        end.record(stream)
        torch.cuda.synchronize(dev)
        return start.elapsed_time(end) / 1000.0
    t0 = time.perf_counter()
    step()
    return time.perf_counter() - t0


def warmup_steps(step: Callable[[], Any], n: int, device: str | torch.device) -> list[float]:
    """Run ``step`` ``n`` times; return each call's wall-clock seconds (device synchronised). Warm-up calls absorb
    lazy initialisation, optimiser-state allocation, cuDNN autotuning and compilation."""
    dev = torch.device(device)
    return [_timed_call(step, dev) for _ in range(max(0, int(n)))]


def time_steps(step: Callable[[], Any], n: int, device: str | torch.device) -> list[float]:
    """Seconds of each of ``n`` (≥ 1) calls of ``step`` (CUDA events on CUDA, ``perf_counter`` on CPU)."""
    dev = torch.device(device)
    return [_timed_call(step, dev) for _ in range(max(1, int(n)))]


def step_summary(times: list[float], items_per_step: int) -> dict[str, Any]:
    """Throughput fields of timed steps: median, best and worst step seconds, items/s from the median."""
    med = float(np.median(times))
    return {
        "steps": len(times),
        "step_s_median": med,
        "step_s_min": float(min(times)),
        "step_s_max": float(max(times)),
        "throughput": items_per_step / med if med > 0 else math.inf,
        "time_per_item_s": med / items_per_step,
    }


def alternate(
    steps: Mapping[str, Callable[[], Any]], rounds: int, device: str | torch.device, calls_per_round: int = 1
) -> dict[str, list[float]]:
    """Time several variants in alternating rounds: round r runs every variant ``calls_per_round`` times, in the
    given order on even rounds and reversed on odd ones (so neither always goes first). Returns the seconds of
    every call of every variant, ``{name: [s, …]}`` (``rounds × calls_per_round`` each)."""
    dev = torch.device(device)
    names = list(steps)
    out: dict[str, list[float]] = {n: [] for n in names}
    for r in range(max(1, int(rounds))):
        for name in names if r % 2 == 0 else reversed(names):
            out[name].extend(time_steps(steps[name], calls_per_round, dev))
    return out


# ---------------------------------------------------------------------------------------------------- FLOPs


def count_flops(build: Callable[[], nn.Module], forward: Callable[[nn.Module], Any]) -> int:
    """Forward FLOPs of ``forward(build())`` counted on the ``meta`` device (shapes only, nothing computed).

    ``build`` constructs the module inside ``torch.device("meta")``. Returns 0 when the module cannot run on
    ``meta`` (logged).
    """
    from torch.utils.flop_counter import FlopCounterMode

    try:
        with torch.device("meta"):
            module = build()
            with FlopCounterMode(display=False) as counter, torch.no_grad():
                forward(module)
        return int(counter.get_total_flops())
    except Exception as exc:  # pragma: no cover - depends on op support for meta tensors
        log.warning("FLOP count on the meta device failed (%s: %s)", type(exc).__name__, exc)
        return 0
