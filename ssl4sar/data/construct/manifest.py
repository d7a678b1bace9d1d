"""The resumable run record of the SSL4SAR construction: ``manifest.csv`` (appended row by row as outputs complete),
``manifest_skipped.csv`` (every skipped input with its reason), ``grids.json`` and ``construction.json`` (the
settings a folder was built with; a re-run with other ones is refused)."""

from __future__ import annotations

import csv
import datetime as dt
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ssl4sar.data.construct.grids import _EPS, GlacierAOI, GlacierGrid, _crs_str
from ssl4sar.errors import DataError
from ssl4sar.io import write_text_atomic

#: one logger for the whole construction (the name it had as one module), so that log filters keep working
log = logging.getLogger(__package__)


MANIFEST_COLUMNS: tuple[str, ...] = ("file", "glacier", "date", "sensor", "crs", "resolution_m", "valid_fraction",
                                     "source", "split")
SKIPPED_COLUMNS: tuple[str, ...] = ("source", "kind", "glacier", "reason")
MANIFEST_NAME = "manifest.csv"
SKIPPED_NAME = "manifest_skipped.csv"
GRIDS_NAME = "grids.json"
SETTINGS_NAME = "construction.json"
#: settings that change the outputs: a re-run into the same folder must use the same values (resolution_m is
#: checked against the stored grids instead, see :func:`_check_settings`)
_OUTPUT_SETTINGS = ("sar_units", "db_range", "dn_percentiles", "val_fraction", "min_valid_fraction", "sensor")


def _skip(skipped: list[dict[str, str]], source: Any, kind: str, reason: str, glacier: str = "") -> None:
    log.warning("skipping %s %s%s: %s", kind, Path(str(source)).name, f" ({glacier})" if glacier else "", reason)
    skipped.append({"source": str(source), "kind": kind, "glacier": glacier, "reason": reason})


@dataclass
class ConstructionManifest:
    """The result of :func:`construct_ssl4sar`: ``rows`` of ``manifest.csv`` (dicts with
    :data:`MANIFEST_COLUMNS`), ``skipped`` rows of ``manifest_skipped.csv`` (:data:`SKIPPED_COLUMNS`), the files
    ``written`` in this run and those ``reused`` from an earlier one (relative paths), and the glacier ``grids``."""

    out_dir: Path
    rows: list[dict[str, str]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    grids: dict[str, GlacierGrid] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.out_dir / MANIFEST_NAME

    @property
    def skipped_path(self) -> Path:
        return self.out_dir / SKIPPED_NAME

    def files(self, sensor: str | None = None) -> list[str]:
        """Relative paths of the outputs (optionally of one ``sensor``: ``S2`` for optical, ``S1`` …)."""
        return [r["file"] for r in self.rows if sensor is None or r["sensor"] == sensor]

    @classmethod
    def read(cls, out_dir: str | Path) -> ConstructionManifest:
        """Read ``manifest.csv`` and ``manifest_skipped.csv`` of a constructed folder."""
        out = Path(out_dir)
        rows = _read_manifest(out / MANIFEST_NAME)
        skipped = _read_csv(out / SKIPPED_NAME, SKIPPED_COLUMNS) if (out / SKIPPED_NAME).is_file() else []
        return cls(out_dir=out, rows=list(rows.values()), skipped=skipped, grids=_read_grids(out))


def _read_csv(path: Path, columns: Sequence[str]) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or any(c not in reader.fieldnames for c in columns):
            raise DataError(path, f"not a construction manifest (columns {reader.fieldnames}, expected "
                            f"{list(columns)})", "remove it to start afresh")
        return [{c: r[c] for c in columns} for r in reader if all(r.get(c) is not None for c in columns)]


def _read_manifest(path: Path) -> dict[str, dict[str, str]]:
    """Rows of an existing manifest by file (a torn last line from an interrupted run is dropped)."""
    if not path.is_file() or path.stat().st_size == 0:
        return {}
    rows = {}
    for r in _read_csv(path, MANIFEST_COLUMNS):
        try:
            float(r["valid_fraction"])
            float(r["resolution_m"])
        except ValueError:
            continue
        rows[r["file"]] = r
    return rows


class _Journal:
    """Appends manifest rows as outputs complete (flushed and synced), so that an interrupted run can resume."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, row: Mapping[str, Any]) -> None:
        new = not self.path.is_file() or self.path.stat().st_size == 0
        if not new:   # make sure a torn last line from a crash does not swallow this row
            with self.path.open("rb") as fh:
                fh.seek(-1, os.SEEK_END)
                needs_newline = fh.read(1) != b"\n"
        with self.path.open("a", newline="") as fh:
            if not new and needs_newline:
                fh.write("\n")
            writer = csv.DictWriter(fh, fieldnames=MANIFEST_COLUMNS)
            if new:
                writer.writeheader()
            writer.writerow({c: row[c] for c in MANIFEST_COLUMNS})
            fh.flush()
            os.fsync(fh.fileno())


def _csv_text(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({c: r.get(c, "") for c in columns})
    return buf.getvalue()


def _read_grids(out: Path) -> dict[str, GlacierGrid]:
    path = out / GRIDS_NAME
    if not path.is_file():
        return {}
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(path, f"corrupt grid file: {exc}", "remove it to derive the grids again") from exc
    return {name: GlacierGrid.from_json(g, path) for name, g in doc.items()}


def _check_settings(out: Path, settings: Mapping[str, Any], resolution_m: float | None,
                    aois: Sequence[GlacierAOI]) -> None:
    """Refuse a re-run into ``out`` whose settings differ from those its outputs were made with; record them."""
    path = out / SETTINGS_NAME
    old: dict[str, Any] = {}
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(path, f"corrupt settings file: {exc}", "remove the folder and build it again") from exc
    changed = [f"{k}: {old[k]!r} -> {settings[k]!r}" for k in _OUTPUT_SETTINGS if k in old and old[k] != settings[k]]
    if resolution_m is not None:
        own = {a.name for a in aois if a.resolution_m is not None or a.grid is not None}
        for name, grid in _read_grids(out).items():
            if name not in own and abs(grid.resolution_m - resolution_m) > _EPS * max(1.0, resolution_m):
                changed.append(f"resolution_m: {grid.resolution_m:g} -> {resolution_m:g} (glacier {name})")
                break
    if changed:
        raise DataError(out, "was built with other settings than this run's (" + "; ".join(changed) + "): its "
                        "outputs would be reused or mixed", "write to a new --out folder, or delete this one to "
                        "rebuild it with the new settings")
    write_text_atomic(path, json.dumps(dict(settings), indent=2) + "\n")


def _row(file: str, glacier: str, date: dt.date, sensor: str, grid: GlacierGrid, valid_fraction: float,
         source: str, split: str) -> dict[str, str]:
    return {"file": file, "glacier": glacier, "date": date.isoformat(), "sensor": sensor, "crs": _crs_str(grid.crs),
            "resolution_m": f"{grid.resolution_m:.6g}", "valid_fraction": f"{valid_fraction:.4f}",
            "source": source, "split": split}
