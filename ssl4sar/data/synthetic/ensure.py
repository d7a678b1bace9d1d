"""Make a preset's synthetic data once: a complete earlier generation of the same preset, seed and layouts is
reused; anything else is generated again. The book build (``tools/book.py``) and ``ssl4sar protocol`` share this
rule through :func:`ensure_synthetic_data`.

Completeness is recorded by :data:`COMPLETE_MARKER`, written into the data folder only after every layout was
written, so an interrupted generation (no marker) is redone rather than trusted.
"""

from __future__ import annotations

import inspect
import json
import logging
import shutil
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ssl4sar.data.synthetic.build import LAYOUTS
from ssl4sar.io import write_json_atomic

__all__ = ["COMPLETE_MARKER", "ensure_synthetic_data"]

log = logging.getLogger(__name__)

#: written into the data folder after a successful generation: preset, seed, layouts, seconds, time
COMPLETE_MARKER = ".ssl4sar-synthetic.json"


def _reusable(marker: Path, preset: str, seed: int, layouts: tuple[str, ...]) -> tuple[bool, dict[str, Any]]:
    try:
        info = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False, {}
    if not isinstance(info, dict):
        return False, {}
    made = info.get("layouts", LAYOUTS)  # markers written before layouts were recorded: the book's three layouts
    ok = info.get("preset") == preset and info.get("seed") == seed and set(layouts) <= set(made)
    return ok, info


def ensure_synthetic_data(data_dir: str | Path, preset: str | Path, seed: int, *,
                          layouts: Iterable[str] = LAYOUTS, workers: int = 1,
                          generate: Callable[..., Any] | None = None) -> tuple[bool, float]:
    """Generate ``layouts`` of ``preset``'s synthetic data (seed ``seed``) into ``data_dir``, unless a complete
    generation of the same preset and seed with at least these layouts is there. Returns (generated, seconds).

    A folder made for another preset, seed or fewer layouts is deleted and generated again. A non-empty folder
    without the marker (an interrupted generation) is generated again over itself; the generator refuses to
    overwrite folders it did not write, so nothing else is deleted.

    Args:
        generate: the generator, default :func:`ssl4sar.data.synthetic.generate`; its ``layouts``, ``overwrite``,
            ``workers`` and ``progress`` arguments are passed when it takes them (tests pass small fakes).
    """
    data_dir = Path(data_dir)
    preset, layouts = str(preset), tuple(layouts)
    marker = data_dir / COMPLETE_MARKER
    if marker.is_file():
        ok, info = _reusable(marker, preset, seed, layouts)
        if ok:
            log.info("synthetic data for preset %s (seed %d) already in %s", preset, seed, data_dir)
            return False, 0.0
        log.info("synthetic data in %s was made for %s; regenerating for preset %s seed %d, layouts %s", data_dir,
                 {k: info.get(k) for k in ("preset", "seed", "layouts")}, preset, seed, ", ".join(layouts))
        shutil.rmtree(data_dir)
    elif data_dir.is_dir() and any(data_dir.iterdir()):
        log.warning("%s exists without a completion marker (interrupted generation?); generating again", data_dir)
    if generate is None:
        from ssl4sar.data.synthetic.build import generate as generate
    params = inspect.signature(generate).parameters
    optional = {"layouts": layouts, "overwrite": True, "workers": int(workers), "progress": False}
    kwargs = {k: v for k, v in optional.items() if k in params}
    data_dir.mkdir(parents=True, exist_ok=True)
    log.info("generating synthetic data (preset %s, seed %d, layouts %s) into %s", preset, seed,
             ", ".join(layouts), data_dir)
    start = time.perf_counter()
    generate(data_dir, preset=preset, seed=seed, **kwargs)
    seconds = time.perf_counter() - start
    write_json_atomic(marker, {"preset": preset, "seed": seed, "layouts": list(layouts), "seconds": round(seconds, 2),
                               "created": datetime.now(UTC).isoformat(timespec="seconds"),
                               "generator": "ssl4sar.data.synthetic.generate"})
    log.info("synthetic data ready in %.1f s", seconds)
    return True, seconds
