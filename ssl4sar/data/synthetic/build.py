"""Entry point: :func:`generate` writes the layouts a preset's ``synthetic`` section names and ``synthetic.json``;
:func:`synthetic_difficulty` reads that section's data-difficulty settings.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ssl4sar.data.synthetic.catalogue import (
    GENERATOR_VERSION,
    LAYOUT_MARKER,
)
from ssl4sar.data.synthetic.layouts import generate_caffe, generate_ssl4sar
from ssl4sar.data.synthetic.radiometry import Radiometry
from ssl4sar.data.synthetic.time_series import generate_time_series
from ssl4sar.data.synthetic.writers import _check_size
from ssl4sar.errors import DataError
from ssl4sar.io import write_json_atomic

log = logging.getLogger(__name__)


LAYOUTS = ("caffe", "ssl4sar", "timeseries")


def _prepare_dir(path: Path, overwrite: bool) -> None:
    """Refuse a non-empty ``path`` unless ``overwrite`` and it is a folder this generator wrote."""
    import shutil

    if not path.exists() or (path.is_dir() and not any(path.iterdir())):
        return
    ours = path.is_dir() and any((path / name).is_file() for name in (LAYOUT_MARKER, "scenes.csv", "truth.csv"))
    if not overwrite:
        raise DataError(path, "output folder is not empty",
                        "pass overwrite=True (ssl4sar data synth --force) to regenerate, or choose another folder")
    if not ours:
        raise DataError(path, "refusing to delete a folder the synthetic generator did not write",
                        "choose an empty or new output folder")
    log.info("removing previous synthetic data in %s", path)
    shutil.rmtree(path)


def generate(out_dir: str | Path, preset: str = "demo", seed: int = 0,
             layouts: Iterable[str] = ("caffe", "ssl4sar"), overwrite: bool = False,
             progress: bool = True, workers: int = 1) -> dict[str, Path]:
    """Generate the synthetic datasets of a preset's ``synthetic`` section under ``out_dir``.

    Writes ``out_dir/caffe`` (``n_train``/``n_test`` scenes, sides in ``scene_size`` px),
    ``out_dir/ssl4sar`` (``n_unlabeled`` SAR images; the glacier grid side is drawn from ``scene_size``
    scaled by ``optical_size_scale``), ``out_dir/timeseries`` when asked (``n_dates``, default 12), and
    ``out_dir/synthetic.json`` (generator version, seed, preset, and per layout its relative path, seed,
    preset and counts; entries of layouts written by earlier calls into the same ``out_dir`` are kept).
    Returns ``{layout: path}``. Same arguments → byte-identical files.

    A layout folder that already holds files is an error (stale files would mix with new ones) unless
    ``overwrite`` is true; then a folder this generator wrote (it holds the marker file
    ``.ssl4sar-synthetic``, written first, so interrupted runs are recognised too) is deleted first, and
    any other non-empty folder is still refused. ``progress``: a progress bar over the CaFFe scenes. ``workers``:
    processes that make the scenes (the files are the same for any number).
    """
    from ssl4sar.config import load_preset

    layouts = tuple(layouts)
    bad = [x for x in layouts if x not in LAYOUTS]
    if bad:
        raise ValueError(f"unknown layout(s) {bad}: choose from {LAYOUTS}")
    cfg = load_preset(preset)
    syn = cfg.get("synthetic")
    if not isinstance(syn, dict):
        raise DataError(preset, "preset has no 'synthetic' section", "add n_train, n_test, scene_size, n_unlabeled")
    try:
        n_train, n_test = int(syn["n_train"]), int(syn["n_test"])
        lo, hi = _check_size(syn["scene_size"])
        n_unlabeled = int(syn["n_unlabeled"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(preset, f"bad 'synthetic' section: {exc}",
                        "expected n_train, n_test, scene_size: [min, max], n_unlabeled") from exc
    scale = float(syn["optical_size_scale"])
    difficulty = synthetic_difficulty(syn, preset)
    out = Path(out_dir)
    for layout in layouts:
        _prepare_dir(out / layout, overwrite)
    paths: dict[str, Path] = {}
    name = str(cfg.get("name", preset))
    record: dict[str, Any] = {"generator": "ssl4sar.data.synthetic", "version": GENERATOR_VERSION,
                              "seed": int(seed), "preset": name, "layouts": _previous_layouts(out, layouts)}
    common = {"seed": int(seed), "preset": name, "version": GENERATOR_VERSION}
    if "caffe" in layouts:
        paths["caffe"] = generate_caffe(out / "caffe", n_train, n_test, (lo, hi), seed, progress=progress,
                                        workers=workers, **difficulty)
        record["layouts"]["caffe"] = {"path": "caffe", **common, "n_train": n_train, "n_test": n_test,
                                      "scene_size": [lo, hi]}
        if difficulty:   # recorded only when the preset changes the data's difficulty
            rad = difficulty.get("radiometry")
            record["layouts"]["caffe"]["difficulty"] = {
                **({"looks": difficulty["looks"]} if "looks" in difficulty else {}),
                **({"na_probability": difficulty["na_probability"]} if "na_probability" in difficulty else {}),
                **({"radiometry": dataclasses.asdict(rad)} if rad is not None else {}),
            }
    if "ssl4sar" in layouts:
        size = (max(32, int(round(lo * scale))), max(32, int(round(hi * scale))))
        n_glaciers = max(1, min(3, n_unlabeled // 2))
        paths["ssl4sar"] = generate_ssl4sar(out / "ssl4sar", n_unlabeled, seed, n_glaciers=n_glaciers,
                                            scene_size=size, workers=workers)
        record["layouts"]["ssl4sar"] = {"path": "ssl4sar", **common, "n_sar": n_unlabeled,
                                        "n_glaciers": n_glaciers, "scene_size": list(size)}
    if "timeseries" in layouts:
        n_dates = int(syn["n_dates"])
        side = int(round((lo + hi) / 2))
        paths["timeseries"] = generate_time_series(out / "timeseries", n_dates, seed, shape=(side, side))
        record["layouts"]["timeseries"] = {"path": "timeseries", **common, "n_dates": n_dates,
                                           "shape": [side, side]}
    record["layouts"] = dict(sorted(record["layouts"].items()))
    write_json_atomic(out / "synthetic.json", record)
    return paths


def synthetic_difficulty(syn: dict[str, Any], source: str | Path = "preset") -> dict[str, Any]:
    """The data-difficulty keyword arguments of :func:`generate_caffe` set in a preset's ``synthetic`` section.

    Optional keys: ``looks`` (intensity looks of every scene's speckle, > 0), ``na_probability`` (chance of a
    no-data wedge per scene, in [0, 1]) and ``radiometry`` (a mapping of :class:`Radiometry` field overrides;
    ranges as ``[low, high]`` in dB). Absent keys are left out, so the generator's defaults (the realistic
    data) apply. Bad values raise :class:`~ssl4sar.errors.DataError` naming ``source``.
    """
    out: dict[str, Any] = {}
    hint = "synthetic: {looks: >0, na_probability: 0..1, radiometry: {<Radiometry field>: value}}"
    if syn.get("looks") is not None:
        try:
            looks = float(syn["looks"])
        except (TypeError, ValueError) as exc:
            raise DataError(source, f"synthetic.looks must be a number, got {syn['looks']!r}", hint) from exc
        if not looks > 0 or not math.isfinite(looks):
            raise DataError(source, f"synthetic.looks must be > 0, got {looks}", hint)
        out["looks"] = looks
    if syn.get("na_probability") is not None:
        try:
            na_p = float(syn["na_probability"])
        except (TypeError, ValueError) as exc:
            raise DataError(source, f"synthetic.na_probability must be a number, got {syn['na_probability']!r}",
                            hint) from exc
        if not 0.0 <= na_p <= 1.0:
            raise DataError(source, f"synthetic.na_probability must be in [0, 1], got {na_p}", hint)
        out["na_probability"] = na_p
    overrides = syn.get("radiometry")
    if overrides is not None:
        if not isinstance(overrides, dict):
            raise DataError(source, f"synthetic.radiometry must be a mapping, got {type(overrides).__name__}", hint)
        fields = {f.name: f for f in dataclasses.fields(Radiometry)}
        unknown = sorted(set(overrides) - set(fields))
        if unknown:
            raise DataError(source, f"synthetic.radiometry: unknown field(s) {unknown}",
                            f"choose from {sorted(fields)}")
        defaults = Radiometry()
        values: dict[str, Any] = {}
        for key, value in overrides.items():
            default = getattr(defaults, key)
            try:
                if isinstance(default, tuple):
                    pair = tuple(float(v) for v in value)
                    if len(pair) != 2 or pair[0] > pair[1]:
                        raise ValueError("expected [low, high] with low <= high")
                    values[key] = pair
                elif isinstance(default, str):
                    if value not in ("amplitude", "db"):
                        raise ValueError("expected 'amplitude' or 'db'")
                    values[key] = str(value)
                else:
                    values[key] = float(value)
            except (TypeError, ValueError) as exc:
                raise DataError(source, f"synthetic.radiometry.{key}: bad value {value!r} ({exc})", hint) from exc
        out["radiometry"] = dataclasses.replace(defaults, **values)
    return out


def _previous_layouts(out: Path, regenerated: Sequence[str]) -> dict[str, Any]:
    """Entries of ``out/synthetic.json`` for layouts that still exist and are not regenerated now."""
    path = out / "synthetic.json"
    if not path.is_file():
        return {}
    try:
        old = json.loads(path.read_text())
        entries = dict(old.get("layouts", {}))
    except (ValueError, AttributeError, TypeError):
        log.warning("%s: unreadable, starting a new record", path)
        return {}
    return {k: v for k, v in entries.items()
            if k in LAYOUTS and k not in regenerated and (out / k).is_dir() and isinstance(v, dict)}
