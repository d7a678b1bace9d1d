"""Presets (``paper``, ``demo``, ``smoke``) and the data root.

A preset is a nested dictionary read from ``ssl4sar/configs/<name>.yaml``. The three presets share one
schema and one code path: ``demo`` and ``smoke`` only change sizes and counts. ``paper`` is the published
recipe (SwinV2-T TYRION at 512 px, the hyper-parameters of the official code) and the library default.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

PRESETS = ("paper", "demo", "smoke")
DEFAULT_PRESET = "paper"


def load_preset(name: str = DEFAULT_PRESET, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Return the preset ``name`` as a nested dict, with ``overrides`` merged in.

    ``name`` may also be a path to a YAML file with the same schema. ``overrides`` uses dotted keys
    (``{"finetune.max_epochs": 3}``) or nested dicts.
    """
    if name in PRESETS:
        text = resources.files("ssl4sar.configs").joinpath(f"{name}.yaml").read_text()
        source = f"preset {name!r}"
    else:
        path = Path(name)
        if not path.is_file():
            raise ValueError(f"unknown preset {name!r}: expected one of {', '.join(PRESETS)} or a YAML file path")
        text = path.read_text()
        source = str(path)
    cfg = yaml.safe_load(text)
    if not isinstance(cfg, dict):
        raise ValueError(f"{source}: expected a YAML mapping at the top level")
    if overrides:
        cfg = merge(cfg, overrides)
    return cfg


def merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``overrides`` (nested or dotted keys) into a copy of ``base``."""
    out = copy.deepcopy(dict(base))
    for key, value in overrides.items():
        parts = key.split(".")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {key!r}: {part!r} is not a section")
        last = parts[-1]
        if isinstance(value, Mapping) and isinstance(node.get(last), dict):
            node[last] = merge(node[last], value)
        else:
            node[last] = copy.deepcopy(value)
    return out


def data_root() -> Path:
    """Root folder for downloaded and generated data: ``$SSL4SAR_DATA`` or a per-user cache folder."""
    env = os.environ.get("SSL4SAR_DATA")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "ssl4sar"
