"""Presets (``paper``, ``demo``, ``smoke``, ``gpu``), their typed schema, and the data root.

``paper`` (``ssl4sar/configs/paper.yaml``) is the published recipe and the one place where every setting has
its value. The other presets name it as their ``base`` and list only the keys that differ; a user's YAML file
does the same (``base: paper``) or lists every key. The schema is the dataclasses below, one per section: a
preset or an override with a key they do not name (a typo such as ``finetune.lrr``) fails with a message that lists
the valid keys; a value of the wrong type, or a number outside its range (:class:`Bounds`: a negative learning rate, a
probability above 1), fails with a message that names the key and what it takes.

:func:`load_preset` returns the validated preset as a plain nested dict (what notebooks, checkpoints and
``yaml.safe_dump`` take); :func:`as_preset` gives the typed :class:`Preset` for attribute access
(``preset.finetune.lr``). Library defaults that repeat a preset value read it from :func:`paper_preset`.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import math
import operator
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml

from ssl4sar.errors import DataError, SettingError

__all__ = [
    "PRESETS", "DEFAULT_PRESET", "BASE_KEY", "Preset", "ModelSection", "DataSection", "LossWeights",
    "FinetuneSection", "OptSimMIMSection", "OptTranslatorSection", "PretrainSection", "InferenceSection",
    "PostprocessSection", "SyntheticSection", "PRETRAIN_METHODS", "TRAINING_PRECISIONS", "load_preset", "as_preset",
    "paper_preset", "merge", "data_root", "Bounds", "check_seed",
]

PRESETS = ("paper", "demo", "smoke", "gpu")
DEFAULT_PRESET = "paper"
#: the two pretraining tasks (§5), in the book's order (chapters 2 and 3); each has its section ``pretrain.<method>``
PRETRAIN_METHODS: tuple[str, ...] = ("optsimmim", "opttranslator")
#: Lightning precisions a training run accepts (``finetune.precision``, ``pretrain.precision``, ``--precision``)
TRAINING_PRECISIONS: tuple[str, ...] = ("32-true", "bf16-mixed")
#: the key of a preset file that names the preset (or YAML path) it overrides
BASE_KEY = "base"

_S = TypeVar("_S", bound="_Section")


@dataclass(frozen=True)
class Bounds:
    """The values a preset number can take, attached to its annotation (``Annotated[float, Bounds(lo=0)]``):
    ``lo`` / ``hi`` inclusive, or exclusive with ``lo_open`` / ``hi_open``; None = unbounded. NaN and infinity
    are refused."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def describe(self) -> str:
        """``in [0, 1)``, ``> 0``, ``>= 1`` …"""
        def num(x: float) -> str:
            return str(int(x)) if float(x).is_integer() else f"{x:g}"

        if self.lo is not None and self.hi is not None:
            return f"in {'(' if self.lo_open else '['}{num(self.lo)}, {num(self.hi)}{')' if self.hi_open else ']'}"
        if self.lo is not None:
            return f"{'>' if self.lo_open else '>='} {num(self.lo)}"
        return f"{'<' if self.hi_open else '<='} {num(self.hi)}" if self.hi is not None else "of any value"

    def admits(self, value: float) -> bool:
        if isinstance(value, float) and not math.isfinite(value):  # NaN, or infinity: no number means "no limit"
            return False
        if self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo):
            return False
        return not (self.hi is not None and (value >= self.hi if self.hi_open else value > self.hi))


# the ranges of the schema's numbers (every number has one; a setting's own comment in paper.yaml says why)
Count = Annotated[int, Bounds(lo=1)]  # how many (epochs, samples, pixels, heads)
NonNegativeInt = Annotated[int, Bounds(lo=0)]  # how many, where none is meaningful (workers, patience)
Positive = Annotated[float, Bounds(lo=0, lo_open=True)]  # scales, σ
LearningRate = Annotated[float, Bounds(lo=0)]  # 0 is allowed: training then leaves the weights as they are
NonNegative = Annotated[float, Bounds(lo=0)]  # weights, decays, lengths
Probability = Annotated[float, Bounds(lo=0, hi=1)]
Rate = Annotated[float, Bounds(lo=0, hi=1, hi_open=True)]  # dropout, momentum, label smoothing: 1 would stop learning
OpenFraction = Annotated[float, Bounds(lo=0, hi=1, lo_open=True, hi_open=True)]  # mask ratio, plateau factor
Seed = Annotated[int, Bounds(lo=0, hi=2 ** 32 - 1)]  # what numpy's generator takes


class _Section:
    """Conversion between a preset section (a mapping) and its dataclass; fields without a default are required,
    fields defaulting to ``None`` are optional (left out of :meth:`to_dict` when unset)."""

    @classmethod
    def from_dict(cls: type[_S], raw: Any, where: str) -> _S:
        """Validate ``raw`` (the section at dotted path ``where``) and convert each value to its field's type."""
        if not isinstance(raw, Mapping):
            raise ValueError(f"{where}: expected a mapping of keys to values, got {type(raw).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = [k for k in raw if k not in fields]
        if unknown:
            key = str(unknown[0])
            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"{where}: unknown key {key!r}{hint}; valid keys of {where}: {', '.join(fields)}")
        missing = [name for name, f in fields.items() if name not in raw and _required(f)]
        if missing:
            raise ValueError(f"{where}: missing key(s) {', '.join(missing)} (write `{BASE_KEY}: paper` to take the "
                             "paper preset's values for the keys a file leaves out)")
        hints = typing.get_type_hints(cls, include_extras=True)  # keeps the Bounds of Annotated numbers
        values = {k: _convert(v, hints[k], f"{where}.{k}") for k, v in raw.items()}
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The section as a plain dict (nested sections as dicts; unset optional keys left out)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is None and not _required(f):
                continue
            out[f.name] = value.to_dict() if isinstance(value, _Section) else copy.deepcopy(value)
        return out


def _required(f: dataclasses.Field[Any]) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _convert(value: Any, tp: Any, where: str) -> Any:
    """``value`` checked against the annotation ``tp`` (ints stay ints, ints become floats where a float is due)."""
    origin = typing.get_origin(tp)
    if origin is Annotated:
        base, *extras = typing.get_args(tp)
        converted = _convert(value, base, where)
        for bounds in extras:
            if isinstance(bounds, Bounds) and not bounds.admits(converted):
                kind = ("an integer" if base is int else
                        "a finite number" if converted in (math.inf, -math.inf) else "a number")
                raise ValueError(f"{where}: expected {kind} {bounds.describe()}, got {converted!r}")
        return converted
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return None if value is None else _convert(value, args[0], where)
    if isinstance(tp, type) and issubclass(tp, _Section):
        return tp.from_dict(value, where)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where}: expected a list, got {value!r}")
        (item,) = typing.get_args(tp)
        return [_convert(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ValueError(f"{where}: expected a mapping, got {value!r}")
        return copy.deepcopy(dict(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        # YAML 1.1 reads '1e12' (no dot) as a string; `--set finetune.lr=1e12` means a number
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise ValueError(f"{where}: expected a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"{where}: expected a string, got {value!r}")
        return value
    raise TypeError(f"{where}: no conversion for the annotation {tp!r}")  # a schema bug, not bad input


# ------------------------------------------------------------------------------------------------ the schema
# Units and meanings are commented in paper.yaml, next to the values.
@dataclass(frozen=True)
class ModelSection(_Section):
    """``model``: the TYRION network (the keyword arguments of :class:`ssl4sar.models.tyrion.Tyrion`)."""

    img_size: Count
    patch_size: Count
    in_chans: Count
    embed_dim: Count
    depths: list[Count]
    num_heads: list[Count]
    window_size: Count
    mlp_ratio: Positive
    qkv_bias: bool
    drop_path_rate: Rate
    attn_drop_rate: Rate
    proj_drop_rate: Rate
    decoder_dropout: Rate
    num_classes: Annotated[int, Bounds(lo=2)]
    zero_init_res_post_norm: bool


@dataclass(frozen=True)
class DataSection(_Section):
    """``data``: fine-tuning samples (sizes in pixels) and their augmentation (§3.3)."""

    context_size: Count
    target_size: Count
    samples_per_epoch: Count
    prob_rezoom: Probability
    zoom_range: list[Positive]
    prob_mixup: Probability
    mixup_weight: list[Probability]
    prob_speckle: Probability
    prob_brightness: Probability
    brightness_range: list[Positive]
    prob_gamma: Probability
    gamma_range: list[Positive]
    prob_flip_h: Probability
    prob_flip_v: Probability
    prob_rotate: Probability
    num_workers: NonNegativeInt


@dataclass(frozen=True)
class LossWeights(_Section):
    """``finetune.loss_weights``: the four parts of the fine-tuning loss (:data:`ssl4sar.losses.LOSS_PARTS`)."""

    ce_target: NonNegative
    ce_context: NonNegative
    dice_target: NonNegative
    dice_context: NonNegative


@dataclass(frozen=True, kw_only=True)
class _RunSection(_Section):
    """What ``finetune`` and ``pretrain`` both set: the budget, the batch arithmetic
    (:func:`ssl4sar.training.plan_training`), SGD, the precision, ``torch.compile`` of the training forward, and
    optionally ``imagenet_weights`` (a file path)."""

    max_epochs: Count
    global_batch_size: Count
    batch_size_per_device: Count
    momentum: Rate
    weight_decay: NonNegative
    precision: str
    compile: bool  # torch.compile of the training forward (ssl4sar.models.fast.CompiledCall); validation stays eager
    imagenet_weights: str | None = None


@dataclass(frozen=True, kw_only=True)
class FinetuneSection(_RunSection):
    """``finetune``: the segmentation training (§6)."""

    lr: LearningRate
    label_smoothing: Rate
    loss_weights: LossWeights
    val_every_n_epochs: Count
    zone_absent: str
    init: str
    seeds: Count  # fine-tuning runs per initialisation in the book's protocol (ssl4sar.experiments; the paper: 5)


@dataclass(frozen=True)
class OptSimMIMSection(_Section):
    """``pretrain.optsimmim``: masked optical reconstruction (§5.2)."""

    lr: LearningRate
    mask_ratio: OpenFraction
    token_size: Count


@dataclass(frozen=True)
class OptTranslatorSection(_Section):
    """``pretrain.opttranslator``: SAR-to-optical translation (§5.3)."""

    lr: LearningRate
    early_stopping_patience: NonNegativeInt


@dataclass(frozen=True, kw_only=True)
class PretrainSection(_RunSection):
    """``pretrain``: the self-supervised tasks (§5); ``init`` is optional (default: see
    :func:`ssl4sar.pretrain.common.default_init`)."""

    context_size: Count
    samples_per_epoch: Count
    plateau_factor: OpenFraction
    plateau_patience: NonNegativeInt
    min_scale: Annotated[float, Bounds(lo=0, hi=1, lo_open=True)]
    prob_flip: Probability
    num_workers: NonNegativeInt
    optsimmim: OptSimMIMSection
    opttranslator: OptTranslatorSection
    init: str | None = None
    val_max_pairs: Count | None = None  # validate on at most this many sar/val pairs, evenly spaced (None: all)


@dataclass(frozen=True)
class InferenceSection(_Section):
    """``inference``: sliding windows with Gaussian stitching (§7.1)."""

    stride: Count
    gaussian_sigma: Positive
    batch_size: Count
    tta_rotations: list[int]
    precision: str  # auto | fp32 | bf16 (auto: bf16 autocast where the device computes bf16 natively)

    def __post_init__(self) -> None:
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"inference.precision: expected auto, fp32 or bf16, got {self.precision!r}")


@dataclass(frozen=True)
class PostprocessSection(_Section):
    """``postprocess``: zones → calving front (§7.2)."""

    min_front_length_m: NonNegative


@dataclass(frozen=True)
class SyntheticSection(_Section):
    """``synthetic``: generator sizes; the optional difficulty keys ``looks``, ``na_probability`` and
    ``radiometry`` are checked by :func:`ssl4sar.data.synthetic.synthetic_difficulty`."""

    n_train: Count
    n_test: Count
    scene_size: list[Count]
    n_unlabeled: NonNegativeInt
    optical_size_scale: Positive
    n_dates: Count
    looks: float | None = None  # these two are range-checked where they are used (synthetic_difficulty)
    na_probability: float | None = None
    radiometry: dict[str, Any] | None = None


@dataclass(frozen=True)
class Preset(_Section):
    """A whole preset: its ``name``, global ``seed`` and one typed section each."""

    name: str
    seed: Seed
    model: ModelSection
    data: DataSection
    finetune: FinetuneSection
    pretrain: PretrainSection
    inference: InferenceSection
    postprocess: PostprocessSection
    synthetic: SyntheticSection


def check_seed(seed: int, where: str = "seed") -> int:
    """``seed`` as an int, or :class:`~ssl4sar.errors.SettingError` (a ``ValueError``) unless it is one numpy and
    torch both take (:data:`Seed`'s range)."""
    try:
        value = operator.index(seed)  # ints and numpy's integers, not floats or text
    except TypeError:
        raise SettingError(f"{where}: expected an integer, got {seed!r}") from None
    try:
        return int(_convert(value, Seed, where))
    except ValueError as exc:
        raise SettingError(str(exc)) from None


# ------------------------------------------------------------------------------------------------ loading
def _read_yaml(name: str | Path) -> tuple[dict[str, Any], str, str]:
    """The raw mapping of preset ``name`` (a packaged preset or a YAML path), its description and default name."""
    if isinstance(name, str) and name in PRESETS:
        text = resources.files("ssl4sar.configs").joinpath(f"{name}.yaml").read_text()
        source, stem = f"preset {name!r}", name
    else:
        path = Path(name)
        if not path.is_file():
            raise ValueError(f"unknown preset {str(name)!r}: expected one of {', '.join(PRESETS)} or a YAML file path")
        text, source, stem = path.read_text(), str(path), path.stem
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise _error(source, f"not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise _error(source, "expected a YAML mapping at the top level")
    return raw, source, stem


def _error(source: str, problem: str) -> ValueError:
    """A preset file's problem as :class:`~ssl4sar.errors.DataError` naming the file; a packaged preset's (or its
    overrides') as ``ValueError`` naming the preset."""
    if source.startswith("preset "):
        return ValueError(f"{source}: {problem}")
    return DataError(source, problem)


def _resolve(name: str | Path, seen: tuple[str, ...] = ()) -> tuple[dict[str, Any], str]:
    """The raw preset ``name`` with its ``base`` chain merged in (not yet validated), and its description."""
    raw, source, stem = _read_yaml(name)
    if source in seen:
        raise _error(source, f"{BASE_KEY!r} chain loops: {' -> '.join((*seen, source))}")
    base = raw.pop(BASE_KEY, None)
    if base is None:
        return raw, source
    if not isinstance(base, str):
        raise _error(source, f"{BASE_KEY!r} must name a preset or a YAML path, got {base!r}")
    from_file = not (isinstance(name, str) and name in PRESETS)
    if from_file and base not in PRESETS and not Path(base).is_absolute():
        base = str(Path(source).parent / base)  # a relative base path is relative to the file naming it
    parent, _ = _resolve(base, (*seen, source))
    return merge(parent, {"name": stem, **raw}), source


def load_preset(name: str | Path = DEFAULT_PRESET, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Return the preset ``name``, with ``overrides`` merged in, as a validated nested dict.

    ``name`` is one of :data:`PRESETS` or a path to a YAML file (complete, or naming a ``base`` preset and listing
    the keys that differ). ``overrides`` uses dotted keys (``{"finetune.max_epochs": 3}``) or nested dicts.
    Unknown keys, missing keys and values of the wrong type raise ``ValueError`` naming the valid keys.
    """
    return _load(name, overrides).to_dict()


def _load(name: str | Path, overrides: Mapping[str, Any] | None) -> Preset:
    raw, source = _resolve(name)
    label = ""
    if overrides:
        raw = merge(raw, overrides)
        label = f"with overrides {', '.join(map(str, overrides))}: "
    try:
        return Preset.from_dict(raw, "preset")
    except ValueError as exc:
        raise _error(source, f"{label}{exc}") from None


@functools.lru_cache(maxsize=1)
def paper_preset() -> Preset:
    """The ``paper`` preset, typed: the source of every library default that a preset also sets."""
    return _load("paper", None)


def as_preset(cfg: Preset | Mapping[str, Any] | str | Path) -> Preset:
    """``cfg`` as a typed :class:`Preset`: a preset name or YAML path is loaded, a dict validated (complete)."""
    if isinstance(cfg, Preset):
        return cfg
    if isinstance(cfg, str | Path):
        return _load(cfg, None)
    try:
        return Preset.from_dict(cfg, "preset")
    except ValueError as exc:
        raise ValueError(f"preset {cfg.get('name', '?')!r}: {exc}") from None


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
