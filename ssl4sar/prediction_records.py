"""Records of predicted scenes: what made a scene's outputs, so that a run over many scenes can resume.

Applying a model to a season of scenes takes hours on a CPU (minutes per 10-megapixel scene, times the TTA
maps). When such a run stops (a kill, a full disk, a closed notebook), the scenes already done should not be
predicted again, and nothing half-done or made with other settings should be taken for done.

After every output of a scene is written, :func:`ssl4sar.predict.predict_scenes` writes
``<stem>.prediction.json`` beside them (atomically, last). It holds:

- the **input file**: its size, modification time (ns) and sha256, taken before the scene is read (a file
  replaced while its scene is predicted is then not the one the record describes);
- the **models**: one sha256 over each member's class name, configuration (``config``, e.g. TYRION's
  ``img_size`` and ``window_size``, which change the output but not the state: the relative-position tables are
  non-persistent buffers) and state (parameter and buffer names, dtypes, shapes and values, in a
  memory-layout-independent order), so that the same checkpoint on a CPU or a GPU, contiguous or channels-last,
  gives the same digest;
- the **settings**: every argument of :func:`~ssl4sar.predict.predict_scene` that changes an output, with its
  effective value (defaults filled in; the window side, stride and σ as resolved from the network), and the
  library version;
- the scene's summary (what :class:`~ssl4sar.predict.SceneResult` holds, but its geometry) and the names of its
  output files.

A scene is reused (``predict_scenes(..., resume=True)``, ``ssl4sar predict --resume``) only when its record is
readable and of this format, names the same models and settings, every output file it lists exists, and the input
file is the same: same size and modification time, or, when the time differs, the same sha256. A scene's record
is deleted before that scene is predicted again, so a run stopped half-way through a scene never leaves a record
over outputs of mixed settings.

Settings that change no output are not part of the record: ``tile_size`` (tiled results equal the whole-scene
ones), ``batch_size``, ``device`` and ``progress``. A run resumed on another device therefore keeps the scenes of
the first device, which agree with its own up to floating-point rounding.

An evaluation on a CaFFe split (:func:`ssl4sar.evaluate.evaluate`, ``ssl4sar evaluate --resume``) keeps the same
kind of record per scored scene, ``records/<stem>.evaluation.json`` in its output folder
(:func:`write_evaluation_record`): the identities of the scene's four input files (SAR image, zones, front,
bounding box; taken before they are read), the models, the settings, the scene's table row as exact JSON values
and its output files. The checks are the same; the row lets a resumed evaluation pool the kept scenes into its
tables and MDE without reading them again.

Both kinds also record each output's size (``output_bytes``): outputs are written atomically, so an output of
another size was damaged after the run (an interrupted copy of the folder), and its scene is done again.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ssl4sar import __version__
from ssl4sar.data.download import sha256sum
from ssl4sar.io import write_json_atomic
from ssl4sar.models.state_digest import update_with_state

__all__ = [
    "RECORD_FORMAT", "RECORD_SUFFIX", "file_identity", "same_file", "models_sha256", "output_settings",
    "record_path", "write_record", "remove_record", "read_matching_record", "EVALUATION_FORMAT",
    "write_evaluation_record", "read_matching_evaluation_record",
]

log = logging.getLogger(__name__)

RECORD_FORMAT = "ssl4sar-scene-prediction/1"
RECORD_SUFFIX = ".prediction.json"
EVALUATION_FORMAT = "ssl4sar-scene-evaluation/1"

#: predict_scene arguments that do not change any output
IGNORED_SETTINGS = frozenset({"models", "path", "out_dir", "tile_size", "batch_size", "device", "progress"})


def file_identity(path: str | Path) -> dict[str, Any]:
    """``size`` (bytes), ``mtime_ns`` and ``sha256`` of a file."""
    path = Path(path)
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha256sum(path)}


def same_file(identity: Mapping[str, Any], path: str | Path) -> bool:
    """Whether ``path`` still has the content ``identity`` (of :func:`file_identity`) describes.

    Same size and modification time count as the same file (as ``make`` and ``git`` assume); when only the time
    differs (a copy, a ``touch``), the sha256 decides.
    """
    try:
        st = Path(path).stat()
        if st.st_size != identity.get("size"):
            return False
        if st.st_mtime_ns == identity.get("mtime_ns"):
            return True
        return sha256sum(Path(path)) == identity.get("sha256")
    except OSError:
        return False


def models_sha256(members: Sequence[Any]) -> str | None:
    """One sha256 over the members, in order: class name, configuration (a member's ``config`` mapping, as sorted
    JSON; ``null`` without one), then every state entry's name, dtype, shape and values.

    Values are hashed in row-major order whatever the memory format, and from the CPU, so the digest does not
    depend on the device or on channels-last. ``None`` when a member is not a ``torch.nn.Module`` (a plain
    function has no state to identify it by: its predictions get no record). Digests of records written before
    the configuration was hashed differ from every digest of this one, so their scenes are predicted again.
    """
    if not all(isinstance(m, torch.nn.Module) for m in members):
        return None
    h = hashlib.sha256()
    for i, m in enumerate(members):
        h.update(f"member {i}: {type(m).__module__}.{type(m).__qualname__}\n".encode())
        # settings that change the output but are not state (TYRION's img_size, window_size)
        config = getattr(m, "config", None)
        config = dict(config) if isinstance(config, Mapping) else None
        h.update(f"config {json.dumps(config, sort_keys=True, default=str)}\n".encode())
        update_with_state(h, m.state_dict())
    return h.hexdigest()


def output_settings(func: Callable[..., Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The effective value of every argument of ``func`` that changes an output, as plain JSON values.

    Defaults are filled in from ``func``'s signature, so passing a default explicitly changes nothing; the
    library version is added. Tuples become lists, dtypes and paths strings.
    """
    sig = inspect.signature(func)
    unknown = set(kwargs) - set(sig.parameters)
    if unknown:
        raise TypeError(f"{func.__name__}() got unexpected keyword arguments: {', '.join(sorted(unknown))}")
    values = {name: kwargs.get(name, p.default) for name, p in sig.parameters.items()
              if name not in IGNORED_SETTINGS}
    values["ssl4sar_version"] = __version__
    return json.loads(json.dumps(values, sort_keys=True, default=str))


def record_path(out_dir: str | Path, stem: str) -> Path:
    """``<out_dir>/<stem>.prediction.json``."""
    return Path(out_dir) / f"{stem}{RECORD_SUFFIX}"


def write_record(out_dir: str | Path, stem: str, scene: Path, identity: Mapping[str, Any],
                 summary: Mapping[str, Any], outputs: Mapping[str, Path], models: str,
                 settings: Mapping[str, Any]) -> Path:
    """Write a scene's record atomically (call it after every output is written).

    ``identity``: the scene file's :func:`file_identity`, taken before the scene was read.
    """
    out = Path(out_dir)
    record = {"format": RECORD_FORMAT, "scene": {"path": str(scene), **identity},
              "models_sha256": models, "settings": dict(settings), "summary": dict(summary),
              "outputs": {k: os.path.relpath(p, out) for k, p in outputs.items()},
              "output_bytes": _sizes(outputs)}
    return write_json_atomic(record_path(out, stem), record)


def remove_record(out_dir: str | Path, stem: str) -> None:
    """Delete a scene's record, if any (before its outputs are written again)."""
    record_path(out_dir, stem).unlink(missing_ok=True)


def read_matching_record(out_dir: str | Path, stem: str, scene: Path, models: str,
                         settings: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """``(record, "")`` when the scene's record says its outputs can be reused, else ``(None, why not)``.

    The record's ``outputs`` are returned as absolute paths.
    """
    out = Path(out_dir)
    path = record_path(out, stem)
    record, why_not = _same_run(path, RECORD_FORMAT, models, settings, "predicted")
    if record is None:
        return None, why_not
    identity = record.get("scene")
    if not isinstance(identity, dict) or not same_file(identity, scene):
        return None, "the input file changed since the earlier prediction"
    outputs, why_not = _existing_outputs(path, out, record.get("outputs"), record.get("output_bytes"))
    if outputs is None or not isinstance(record.get("summary"), dict):
        return None, why_not or f"its record {path} is incomplete"
    return {**record, "outputs": outputs}, ""


# --------------------------------------------------------------------------------------------------------------
# evaluation (ssl4sar.evaluate): one record per scored scene, ``<out>/records/<stem>.evaluation.json``

def write_evaluation_record(path: str | Path, out_dir: str | Path, inputs: Mapping[str, Mapping[str, Any]],
                            row: Mapping[str, Any], outputs: Sequence[Path], models: str,
                            settings: Mapping[str, Any]) -> Path:
    """Write a scored scene's record atomically (call it after every output is written).

    ``inputs``: name → :func:`file_identity` of a file the scene was read from (SAR image, zones, front, bounding
    box), taken before it was read; ``row``: its table row as exact JSON values (NaN as ``null``); ``outputs``: its
    files, stored relative to ``out_dir``.
    """
    record = {"format": EVALUATION_FORMAT, "inputs": {k: dict(v) for k, v in inputs.items()},
              "models_sha256": models, "settings": dict(settings), "row": dict(row),
              "outputs": {Path(p).name: os.path.relpath(p, out_dir) for p in outputs},
              "output_bytes": _sizes({Path(p).name: Path(p) for p in outputs})}
    return write_json_atomic(Path(path), record)


def read_matching_evaluation_record(path: str | Path, out_dir: str | Path, inputs: Mapping[str, Path],
                                    models: str, settings: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """``(record, "")`` when a scored scene's record (of :func:`write_evaluation_record`) says its row and files
    can be reused: same models and settings, the same input files (none added or removed), every output present.
    Else ``(None, why not)``. The record's ``outputs`` are returned as absolute paths."""
    path = Path(path)
    record, why_not = _same_run(path, EVALUATION_FORMAT, models, settings, "evaluated")
    if record is None:
        return None, why_not
    identities = record.get("inputs")
    if not isinstance(identities, dict) or set(identities) != set(inputs):
        return None, "its input files are not those of the earlier evaluation"
    changed = sorted(k for k, p in inputs.items()
                     if not isinstance(identities[k], dict) or not same_file(identities[k], p))
    if changed:
        return None, f"input file(s) changed since the earlier evaluation ({', '.join(changed)})"
    outputs, why_not = _existing_outputs(path, Path(out_dir), record.get("outputs"), record.get("output_bytes"))
    if outputs is None or not isinstance(record.get("row"), dict):
        return None, why_not or f"its record {path} is incomplete"
    return {**record, "outputs": outputs}, ""


# --------------------------------------------------------------------------------------------------------------
# the checks both kinds share

def _same_run(path: Path, record_format: str, models: str, settings: Mapping[str, Any],
              done: str) -> tuple[dict[str, Any] | None, str]:
    """The record at ``path`` when it is readable, of ``record_format`` and made by the same models and settings
    (``done``: what the run did to a scene, for the message when there is no record)."""
    if not path.is_file():
        return None, f"not {done} before"
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"its record {path} is unreadable ({exc})"
    if not isinstance(record, dict) or record.get("format") != record_format:
        return None, f"its record {path} is not a {record_format} record"
    if record.get("models_sha256") != models:
        return None, "the models differ from those of the earlier run"
    if record.get("settings") != dict(settings):
        old = record.get("settings") if isinstance(record.get("settings"), dict) else {}
        changed = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
        return None, f"the settings differ from the earlier run's ({', '.join(changed)})"
    return record, ""


def _sizes(outputs: Mapping[str, Path]) -> dict[str, int]:
    return {k: Path(p).stat().st_size for k, p in outputs.items()}


def _existing_outputs(path: Path, out: Path, outputs: Any, sizes: Any) -> tuple[dict[str, Path] | None, str]:
    """A record's ``outputs`` (name → path relative to ``out``) as absolute paths, when every one exists and, where
    the record states it (``output_bytes``; records written before it was added do not), has its size still."""
    if not isinstance(outputs, dict):
        return None, f"its record {path} is incomplete"
    resolved = {k: out / v for k, v in outputs.items()}
    missing = sorted(str(p) for p in resolved.values() if not p.is_file())
    if missing:
        return None, f"output missing: {', '.join(missing)}"
    if isinstance(sizes, dict):  # outputs are written atomically: another size means damage after the run
        changed = sorted(f"{p} ({p.stat().st_size} bytes, {sizes[k]} when written)" for k, p in resolved.items()
                         if k in sizes and p.stat().st_size != sizes[k])
        if changed:
            return None, f"output changed since it was written: {', '.join(changed)}"
    return resolved, ""
