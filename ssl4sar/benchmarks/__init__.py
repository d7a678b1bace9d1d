"""Throughput and memory benchmarks of the library's heavy steps (not tests: they measure, they do not assert).

:mod:`ssl4sar.benchmarks.evaluation` — post-processing + MDE of a large synthetic scene, and sliding-window
inference (windows per second, peak memory on CPU or GPU).
"""

from __future__ import annotations

__all__: list[str] = []
