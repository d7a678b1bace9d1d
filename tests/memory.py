"""Peak memory of one call, as the tests that guard against map-sized temporaries measure it."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from typing import Any


def traced_peak(fn: Callable[[], Any]) -> tuple[Any, int]:
    """``fn()``'s result and the peak bytes allocated while it ran (tracemalloc: Python objects and numpy arrays)."""
    tracemalloc.start()
    try:
        result = fn()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
