"""Loading weights into :class:`~ssl4sar.models.tyrion.Tyrion`: ImageNet SwinV2, official TYRION, our own.

Three sources are understood (spec §4.5, §5.4):

1. **ImageNet SwinV2-T** — Microsoft's ``swinv2_tiny_patch4_window16_256.pth`` (``torch.load(...)["model"]``,
   official key layout): :func:`load_imagenet_swinv2` fills the encoder; the decoder keeps its random init.
2. **Official TYRION Lightning checkpoints** — the fine-tuning wrapper ``TyrionWrapper`` and the pretraining
   wrappers (OptSimMIM, OptTranslator) all keep the network under ``swin_unet.``:
   :func:`convert_official_tyrion` maps it to our keys (encoder *and* decoder, as the official transfer does).
3. **Our own checkpoints** — written by :func:`save_checkpoint`, and Lightning checkpoints of our
   LightningModules (network stored as attribute ``model``, ``model_config`` in ``hyper_parameters``).
   :func:`load_model` recognises all three kinds of file.

Key mapping, official → ours (after removing the ``swin_unet.`` prefix):

====================================================  ===================================================
official                                              ours
====================================================  ===================================================
``patch_embed.proj.weight`` (E, 3, p, p)              ``encoder.patch_embed.proj.weight`` (E, 1, p, p):
                                                      summed over the input-channel axis (the official
                                                      input is the SAR image repeated 3 times → identical)
``patch_embed.{proj.bias,norm.*}``                    ``encoder.patch_embed.…``
``layers.i.blocks.j.<param>``                         ``encoder.layers.i.blocks.j.<param>``
``layers.i.downsample.{reduction,norm}.*``            ``encoder.layers.(i+1).downsample.…`` (timm merges
                                                      at the start of the next stage)
``pred_target.k.block.{norm1,conv1,norm2,conv2,``     ``decoder.k.block.…`` / ``decoder.k.up.conv.…``
``nin_shortcut}.*`` / ``pred_target.k.up.conv.*``
``pred_target.<last>.{weight,bias}`` (1 × 1 conv)     ``head.{weight,bias}``
====================================================  ===================================================

Dropped **by name**, each for a stated reason (:data:`DROP_REASONS`), everything else must map or the
conversion fails with a :class:`~ssl4sar.errors.DataError` listing the offending keys:

- ``…attn.relative_coords_table``, ``…attn.relative_position_index``, ``…attn_mask``: deterministic buffers
  that timm recomputes from the window size (the 256-px ImageNet model even has other shapes for them);
- ``pred_target.k.block.temb_proj.*`` and ``outputt.weight``: official modules that never take part in the
  forward pass (left out of our network, spec §4.3);
- ImageNet only: ``norm.*`` (final encoder norm) and ``head.*`` (1000-class classifier): not part of TYRION;
- pretraining wrappers only, outside ``swin_unet.``: ``decoder.*`` (OptSimMIM linear 96 → 224),
  ``last_model_decoder_layer.*`` (1 × 1 conv to 3 / 14 channels), ``patch_embed_after_decoder.*``
  (OptSimMIM re-embedding), ``mask_token`` (frozen zero vector): task heads, not part of TYRION.

Our checkpoint format (``format = "ssl4sar.tyrion/1"``) is a ``torch.save``-d dict::

    {
      "format": "ssl4sar.tyrion/1",
      "model_config": {...},          # Tyrion constructor arguments (Tyrion.config)
      "state_dict": {...},            # Tyrion.state_dict(), tensors on CPU
      "meta": {...},                  # free-form, JSON-like: provenance, epoch, metrics, source file …
    }

It is written atomically (temporary file in the same folder, then renamed) and loads with
``torch.load(..., weights_only=True)`` as long as ``meta`` holds only plain Python values.

Every file is read by :func:`read_checkpoint_file`: ``weights_only=True`` with a short allow-list of harmless
container types (argparse ``Namespace``, paths, Lightning's ``AttributeDict``, NumPy scalars); a file needing
anything else is refused, naming the file and the types, unless the caller passes ``trusted=True``
(``--trust-checkpoint`` on the command line), which runs code from the file. Non-finite weights are refused too.
"""

from __future__ import annotations

import logging
import pickle
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ssl4sar.errors import DataError
from ssl4sar.io import atomic_path
from ssl4sar.models.tyrion import Tyrion

log = logging.getLogger(__name__)

__all__ = [
    "CHECKPOINT_FORMAT",
    "DROP_REASONS",
    "ConversionReport",
    "convert_official_tyrion",
    "convert_imagenet_swinv2",
    "load_imagenet_swinv2",
    "to_official_tyrion",
    "save_checkpoint",
    "load_checkpoint",
    "load_model",
    "read_checkpoint_file",
    "check_finite",
    "non_finite_entries",
    "non_finite_tensors",
    "TRUST_HINT",
]

CHECKPOINT_FORMAT = "ssl4sar.tyrion/1"
OFFICIAL_PREFIX = "swin_unet."

#: Why each kind of dropped key is dropped (see the module docstring).
DROP_REASONS: dict[str, str] = {
    "buffer": "deterministic buffer, recomputed by timm from the window size",
    "unused": "official module that takes no part in the forward pass (temb_proj / outputt)",
    "classifier": "ImageNet classifier / final norm, not part of TYRION",
    "pretrain_head": "pretraining task head of the official OptSimMIM / OptTranslator wrapper",
}

_BLOCK_PARAMS = {
    "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias",
    "attn.logit_scale", "attn.q_bias", "attn.v_bias",
    "attn.cpb_mlp.0.weight", "attn.cpb_mlp.0.bias", "attn.cpb_mlp.2.weight",
    "attn.qkv.weight", "attn.proj.weight", "attn.proj.bias",
    "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias",
}
_BLOCK_BUFFERS = {"attn.relative_coords_table", "attn.relative_position_index", "attn_mask"}

_RE_PATCH = re.compile(r"^patch_embed\.(proj\.weight|proj\.bias|norm\.weight|norm\.bias)$")
_RE_BLOCK = re.compile(r"^layers\.(\d+)\.blocks\.(\d+)\.(.+)$")
_RE_DOWN = re.compile(r"^layers\.(\d+)\.downsample\.(reduction\.weight|norm\.weight|norm\.bias)$")
_RE_DEC_BLOCK = re.compile(r"^pred_target\.(\d+)\.block\.(norm1|conv1|norm2|conv2|nin_shortcut)\.(weight|bias)$")
_RE_DEC_TEMB = re.compile(r"^pred_target\.(\d+)\.block\.temb_proj\.(weight|bias)$")
_RE_DEC_UP = re.compile(r"^pred_target\.(\d+)\.up\.conv\.(weight|bias)$")
_RE_DEC_HEAD = re.compile(r"^pred_target\.(\d+)\.(weight|bias)$")
_RE_OUTPUTT = re.compile(r"^outputt\.(weight|bias)$")
_RE_CLASSIFIER = re.compile(r"^(norm|head)\.(weight|bias)$")
_RE_PRETRAIN_HEAD = re.compile(r"^(decoder\.(weight|bias)|last_model_decoder_layer\.(weight|bias)"
                               r"|patch_embed_after_decoder\.(proj|norm)\.(weight|bias)|mask_token)$")


@dataclass
class ConversionReport:
    """What a conversion did: ``mapped`` official → our key, ``dropped`` official key → reason."""

    mapped: dict[str, str] = field(default_factory=dict)
    dropped: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for reason in self.dropped.values():
            counts[reason] = counts.get(reason, 0) + 1
        parts = ", ".join(f"{n} × {r}" for r, n in sorted(counts.items()))
        return f"{len(self.mapped)} tensors mapped; dropped: {parts or 'nothing'}"


# ---------------------------------------------------------------------------------------------- key mapping
def _map_encoder_key(key: str) -> tuple[str | None, str | None]:
    """Official SwinV2 encoder key → (our key, None) | (None, drop reason key) | (None, None) if unknown."""
    if m := _RE_PATCH.match(key):
        return f"encoder.patch_embed.{m.group(1)}", None
    if m := _RE_BLOCK.match(key):
        stage, block, rest = m.groups()
        if rest in _BLOCK_PARAMS:
            return f"encoder.layers.{stage}.blocks.{block}.{rest}", None
        if rest in _BLOCK_BUFFERS:
            return None, "buffer"
        return None, None
    if m := _RE_DOWN.match(key):
        stage, rest = m.groups()
        return f"encoder.layers.{int(stage) + 1}.downsample.{rest}", None
    return None, None


def _map_decoder_key(key: str) -> tuple[str | None, str | None]:
    if m := _RE_DEC_BLOCK.match(key):
        return f"decoder.{m.group(1)}.block.{m.group(2)}.{m.group(3)}", None
    if m := _RE_DEC_UP.match(key):
        return f"decoder.{m.group(1)}.up.conv.{m.group(2)}", None
    if m := _RE_DEC_HEAD.match(key):
        return f"head.{m.group(2)}", None
    if _RE_DEC_TEMB.match(key) or _RE_OUTPUTT.match(key):
        return None, "unused"
    return None, None


def _patch_weight_to_one_channel(w: torch.Tensor, key: str, source: Any) -> torch.Tensor:
    """(E, 3, p, p) weights for a repeated 1-channel input → (E, 1, p, p), summed over input channels."""
    if w.ndim != 4:
        raise DataError(source, f"{key} has shape {tuple(w.shape)}, expected (embed_dim, in_chans, p, p)")
    if w.shape[1] == 1:
        return w
    return w.sum(dim=1, keepdim=True)


def _unknown_error(source: Any, unknown: list[str], what: str) -> DataError:
    shown = ", ".join(unknown[:12]) + (f", … ({len(unknown)} in all)" if len(unknown) > 12 else "")
    return DataError(source, f"{len(unknown)} key(s) cannot be mapped to {what}: {shown}",
                     "is this really the expected kind of checkpoint?")


def _extract_state_dict(obj: Any, source: Any) -> Mapping[str, Any]:
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        return obj["state_dict"]
    if isinstance(obj, Mapping) and "model" in obj and isinstance(obj["model"], Mapping):
        return obj["model"]
    if isinstance(obj, Mapping) and obj and all(isinstance(k, str) for k in obj):
        return obj
    raise DataError(source, "not a state dict (expected a mapping of parameter names to tensors)")


def convert_official_tyrion(
    state_dict: Mapping[str, Any], source: str | Path | None = None, report: ConversionReport | None = None,
) -> dict[str, torch.Tensor]:
    """Map an official TYRION state dict to our :class:`Tyrion` keys (see the module docstring).

    ``state_dict`` is the ``state_dict`` of an official Lightning checkpoint (keys ``swin_unet.…``, plus the
    pretraining heads of OptSimMIM / OptTranslator, which are dropped by name), the whole checkpoint dict,
    or the bare network's state dict (no prefix). Every other key must map; otherwise a
    :class:`~ssl4sar.errors.DataError` naming ``source`` lists the keys that do not. Pass a
    :class:`ConversionReport` to learn what was mapped and dropped.
    """
    source = source if source is not None else "<official TYRION state dict>"
    sd = _extract_state_dict(state_dict, source)
    report = report if report is not None else ConversionReport()
    wrapped = any(k.startswith(OFFICIAL_PREFIX) for k in sd)
    out: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, value in sd.items():
        if wrapped:
            if not key.startswith(OFFICIAL_PREFIX):
                if _RE_PRETRAIN_HEAD.match(key):
                    report.dropped[key] = DROP_REASONS["pretrain_head"]
                else:
                    unknown.append(key)
                continue
            inner = key[len(OFFICIAL_PREFIX):]
        else:
            inner = key
        ours, reason = _map_encoder_key(inner)
        if ours is None and reason is None:
            ours, reason = _map_decoder_key(inner)
        if reason is not None:
            report.dropped[key] = DROP_REASONS[reason]
            continue
        if ours is None:
            unknown.append(key)
            continue
        if not isinstance(value, torch.Tensor):
            raise DataError(source, f"{key} is a {type(value).__name__}, not a tensor")
        if ours == "encoder.patch_embed.proj.weight":
            value = _patch_weight_to_one_channel(value, key, source)
        if ours in out:
            raise DataError(source, f"{key} maps to {ours}, which another key already filled")
        out[ours] = value
        report.mapped[key] = ours
    if unknown:
        raise _unknown_error(source, unknown, "the TYRION network")
    if not out:
        raise DataError(source, "no TYRION weights found", "expected keys such as 'swin_unet.layers.0…'")
    log.info("%s: official TYRION weights converted: %s", source, report.summary())
    return out


def convert_imagenet_swinv2(
    state_dict: Mapping[str, Any], source: str | Path | None = None, report: ConversionReport | None = None,
) -> dict[str, torch.Tensor]:
    """Map Microsoft's official SwinV2 state dict (``…pth["model"]``) to our encoder keys.

    Buffers (relative position tables / indices, attention masks) and the classifier (``norm.*``,
    ``head.*``) are dropped by name; every other key must map, otherwise :class:`DataError`.
    """
    source = source if source is not None else "<ImageNet SwinV2 state dict>"
    sd = _extract_state_dict(state_dict, source)
    report = report if report is not None else ConversionReport()
    out: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, value in sd.items():
        ours, reason = _map_encoder_key(key)
        if ours is None and reason is None and _RE_CLASSIFIER.match(key):
            reason = "classifier"
        if reason is not None:
            report.dropped[key] = DROP_REASONS[reason]
            continue
        if ours is None:
            unknown.append(key)
            continue
        if not isinstance(value, torch.Tensor):
            raise DataError(source, f"{key} is a {type(value).__name__}, not a tensor")
        if ours == "encoder.patch_embed.proj.weight":
            value = _patch_weight_to_one_channel(value, key, source)
        out[ours] = value
        report.mapped[key] = ours
    if unknown:
        raise _unknown_error(source, unknown, "the SwinV2 encoder")
    return out


def to_official_tyrion(state_dict: Mapping[str, torch.Tensor], in_chans: int = 3) -> dict[str, torch.Tensor]:
    """Inverse of :func:`convert_official_tyrion` for the parameters: our keys → ``swin_unet.…`` keys.

    The 1-channel patch embedding is split evenly over ``in_chans`` input channels (identical output for a
    repeated input). The official unused modules and buffers are not produced (load them with
    ``strict=False`` in the official code). Useful for exporting and for round-trip tests.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if key.startswith("encoder.patch_embed."):
            name = "patch_embed." + key[len("encoder.patch_embed."):]
            if name == "patch_embed.proj.weight":
                value = (value / in_chans).repeat(1, in_chans, 1, 1)
        elif m := re.match(r"^encoder\.layers\.(\d+)\.downsample\.(.+)$", key):
            name = f"layers.{int(m.group(1)) - 1}.downsample.{m.group(2)}"
        elif key.startswith("encoder.layers."):
            name = key[len("encoder."):]
        elif key.startswith("decoder."):
            name = "pred_target." + key[len("decoder."):]
        elif key.startswith("head."):
            n_steps = 1 + max(int(k.split(".")[1]) for k in state_dict if k.startswith("decoder."))
            name = f"pred_target.{n_steps}.{key[len('head.'):]}"
        else:
            raise ValueError(f"not a Tyrion parameter key: {key}")
        out[OFFICIAL_PREFIX + name] = value
    return out


# ---------------------------------------------------------------------------------------------- loading
#: Lightning's ``AttributeDict`` (hyper-parameters) under the names it had over the versions; read as a plain dict
#: (the weights-only unpickler fills only plain dicts)
_ATTRIBUTE_DICT_NAMES = ("lightning.fabric.utilities.data.AttributeDict",
                         "lightning_fabric.utilities.data.AttributeDict",
                         "pytorch_lightning.utilities.parsing.AttributeDict",
                         "lightning.pytorch.utilities.parsing.AttributeDict")


def _safe_globals() -> list[Any]:
    """Non-tensor types that official Lightning / Microsoft checkpoints and ours may contain (hyper-parameters,
    callback state): plain data containers whose unpickling runs no code from the file. ``(obj, name)`` pairs map
    a dotted name recorded in a file to the object built for it."""
    import argparse
    import pathlib

    import numpy as np

    return [
        argparse.Namespace, pathlib.PosixPath, pathlib.PurePosixPath, pathlib.WindowsPath, pathlib.PureWindowsPath,
        *((dict, name) for name in _ATTRIBUTE_DICT_NAMES),
        np.dtype, np._core.multiarray.scalar, (np._core.multiarray.scalar, "numpy.core.multiarray.scalar"),
        *(getattr(np.dtypes, n) for n in ("Float64DType", "Float32DType", "Int64DType", "Int32DType", "BoolDType")),
    ]


TRUST_HINT = ("if you trust the file and where it came from, pass --trust-checkpoint (Python: trusted=True), "
              "which lets the file run its code while loading")


def read_checkpoint_file(path: str | Path, map_location: str | torch.device = "cpu", *, trusted: bool = False) -> Any:
    """``torch.load(path, weights_only=True)`` with the harmless types of :func:`_safe_globals` allowed.

    A file that needs anything else (a pickled function call, a custom class) is refused with a
    :class:`DataError` naming the file and the types, before any of its code runs. ``trusted=True`` loads with the
    full unpickler instead, which **runs code from the file**: only for files whose origin you trust.
    Every other failure (truncated, not a checkpoint) is a :class:`DataError` naming the file too.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "checkpoint file not found")
    if trusted:
        log.warning("%s: loading with the full unpickler (trusted checkpoint): code in the file runs", path)
        try:
            return torch.load(path, map_location=map_location, weights_only=False)
        except Exception as exc:  # any unpickling failure means a bad file
            raise DataError(path, f"cannot read checkpoint: {type(exc).__name__}: {exc}",
                            "is the file complete and a torch checkpoint?") from exc
    try:
        with torch.serialization.safe_globals(_safe_globals()):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        try:
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        except Exception:  # a corrupt file: report the unpickler's own words
            unsafe = []
        allowed = {f"{g.__module__}.{g.__qualname__}" if not isinstance(g, tuple) else g[1] for g in _safe_globals()}
        unsafe = [u for u in unsafe if u not in allowed]
        if not unsafe:
            raise DataError(path, f"cannot read checkpoint: {str(exc).splitlines()[0][:300]}",
                            "is the file complete and a torch checkpoint?") from exc
        raise DataError(path, "refused to load: the checkpoint contains Python objects whose loading would run "
                        f"code from the file ({', '.join(unsafe[:8])})", TRUST_HINT) from None
    except Exception as exc:  # the unpickler raises many kinds of errors on a corrupt or foreign file
        raise DataError(path, f"cannot read checkpoint: {type(exc).__name__}: {exc}",
                        "is the file complete and a torch checkpoint?") from exc


_torch_load = read_checkpoint_file  # the name used before the trust option existed


def non_finite_tensors(tensors: Sequence[torch.Tensor]) -> list[int]:
    """Indices of the floating-point ``tensors`` that hold NaN or ±inf.

    One fused 2-norm per tensor screens them: a NaN or infinite element makes the norm non-finite. On the CPU this
    is 7-16× faster than the max-norm per tensor (the training guard runs it after every step;
    ``book/bench/cpu-2core-training-overhead-2026-12-06``).
    A non-finite norm is confirmed element by element, because the squares of large finite values (above
    ~1.8e19 in float32, ~256 in float16) overflow too; so the answer is exact. One host sync when all are finite.
    """
    if not tensors:
        return []
    norms = torch._foreach_norm(list(tensors))
    finite = torch.isfinite(torch.stack([n.float() for n in norms])).tolist()
    return [i for i, ok in enumerate(finite) if not ok and not bool(torch.isfinite(tensors[i]).all())]


def non_finite_entries(state_dict: Mapping[str, Any]) -> list[str]:
    """Keys of the floating-point tensors in ``state_dict`` that hold NaN or ±inf."""
    keys = [k for k, v in state_dict.items() if isinstance(v, torch.Tensor) and v.is_floating_point()]
    return [keys[i] for i in non_finite_tensors([state_dict[k] for k in keys])]


def check_finite(state_dict: Mapping[str, Any], source: Any) -> None:
    """Raise :class:`DataError` naming ``source`` when any weight is NaN or infinite (a diverged run's file)."""
    bad = non_finite_entries(state_dict)
    if bad:
        shown = ", ".join(bad[:5]) + (f", … ({len(bad)} in all)" if len(bad) > 5 else "")
        raise DataError(source, f"the checkpoint holds non-finite weights (NaN or inf) in {shown}",
                        "it was written by a diverged run; use an earlier checkpoint of that run")


def _load_strict(model: Tyrion, sd: Mapping[str, torch.Tensor], source: Any, only_prefix: str | None = None) -> None:
    """Load ``sd`` into ``model`` requiring every (prefixed) model key present with the right shape."""
    not_tensors = sorted(k for k, v in sd.items() if not isinstance(v, torch.Tensor))
    if not_tensors:
        raise DataError(source, f"entries that are not tensors: {', '.join(not_tensors[:8])}")
    check_finite(sd, source)
    own = {k: v for k, v in model.state_dict().items() if only_prefix is None or k.startswith(only_prefix)}
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    wrong = sorted(f"{k} {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
                   for k in set(sd) & set(own) if tuple(sd[k].shape) != tuple(own[k].shape))
    problems = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", wrong)):
        if keys:
            shown = "; ".join(keys[:8]) + (f"; … ({len(keys)} in all)" if len(keys) > 8 else "")
            problems.append(f"{label}: {shown}")
    if problems:
        raise DataError(source, "weights do not fit the model (" + " | ".join(problems) + ")",
                        "check that the model configuration matches the checkpoint")
    model.load_state_dict(dict(sd), strict=only_prefix is None)


def load_imagenet_swinv2(model: Tyrion, path: str | Path, *, trusted: bool = False) -> ConversionReport:
    """Fill ``model``'s encoder with Microsoft's ImageNet SwinV2 weights from ``path`` (spec §4.5).

    ``path`` is the official ``swinv2_tiny_patch4_window16_256.pth`` (a dict with key ``"model"``; a bare
    state dict is accepted too). All encoder parameters must be present with matching shapes (the 256-px
    window-16 release has the same parameter shapes as the 512-px model); the decoder and head keep their
    values. Returns a report of the mapped and dropped keys. Raises :class:`DataError` naming the file.
    ``trusted``: see :func:`read_checkpoint_file`.
    """
    path = Path(path)
    obj = read_checkpoint_file(path, trusted=trusted)
    report = ConversionReport()
    sd = convert_imagenet_swinv2(obj, source=path, report=report)
    _load_strict(model, sd, path, only_prefix="encoder.")
    log.info("%s: ImageNet SwinV2 weights loaded into the encoder: %s", path, report.summary())
    return report


def save_checkpoint(
    path: str | Path, model: Tyrion, model_config: Mapping[str, Any] | None = None,
    meta: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``model`` in our format (module docstring) to ``path`` atomically; returns the path.

    ``model_config`` defaults to ``model.config`` (the full constructor arguments).
    """
    path = Path(path)
    config = dict(model_config) if model_config is not None else dict(model.config)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "model_config": config,
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "meta": dict(meta or {}),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    log.info("saved TYRION checkpoint %s", path)
    return path


def _model_from_config(config: Any, source: Any) -> Tyrion:
    if not isinstance(config, Mapping):
        raise DataError(source, f"model_config is a {type(config).__name__}, expected a mapping")
    try:
        return Tyrion.from_config(config)
    except (ValueError, TypeError) as exc:
        raise DataError(source, f"invalid model_config: {exc}") from exc


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu", *, trusted: bool = False
                    ) -> tuple[Tyrion, dict[str, Any]]:
    """Read a checkpoint written by :func:`save_checkpoint` → (model in eval mode, meta).

    ``trusted``: see :func:`read_checkpoint_file` (default: only tensors and plain values are read).
    """
    path = Path(path)
    return _from_our_format(read_checkpoint_file(path, map_location, trusted=trusted), path, map_location)


def _from_our_format(obj: Any, path: Path, map_location: str | torch.device) -> tuple[Tyrion, dict[str, Any]]:
    """The model and meta of a checkpoint object read from ``path`` (:func:`load_checkpoint`)."""
    if not isinstance(obj, Mapping) or obj.get("format") != CHECKPOINT_FORMAT:
        found = obj.get("format") if isinstance(obj, Mapping) else type(obj).__name__
        raise DataError(path, f"not an ssl4sar TYRION checkpoint (format {found!r}, expected "
                              f"{CHECKPOINT_FORMAT!r})", "use load_model() for other checkpoint kinds")
    for key in ("model_config", "state_dict"):
        if key not in obj:
            raise DataError(path, f"checkpoint has no {key!r} entry")
    model = _model_from_config(obj["model_config"], path)
    _load_strict(model, obj["state_dict"], path)
    model.to(map_location).eval()
    return model, dict(obj.get("meta") or {})


def load_model(
    path: str | Path, map_location: str | torch.device = "cpu", model_config: Mapping[str, Any] | None = None,
    *, trusted: bool = False,
) -> Tyrion:
    """Load a :class:`Tyrion` (eval mode) from any supported checkpoint file.

    Recognised, in this order:

    - our format (``"format": "ssl4sar.tyrion/1"``);
    - Lightning checkpoints of our LightningModules: ``state_dict`` keys ``model.…`` and ``model_config`` in
      ``hyper_parameters`` (``model_config`` here overrides it); other attributes' keys (pretraining heads)
      are ignored and logged;
    - official TYRION Lightning checkpoints (``swin_unet.…``, fine-tuning or pretraining): they carry no
      model description, so ``model_config`` defaults to the ``paper`` preset's ``model`` section.

    Raises :class:`DataError` naming the file and what is wrong: unreadable, refused (objects whose loading runs
    code; ``trusted=True`` allows them, see :func:`read_checkpoint_file`), weights missing, misshapen or non-finite.
    """
    path = Path(path)
    obj = read_checkpoint_file(path, map_location="cpu", trusted=trusted)
    if isinstance(obj, Mapping) and obj.get("format") == CHECKPOINT_FORMAT:
        return _from_our_format(obj, path, map_location)[0]
    if not isinstance(obj, Mapping) or not isinstance(obj.get("state_dict"), Mapping):
        raise DataError(path, "unrecognised checkpoint: neither an ssl4sar TYRION checkpoint nor a Lightning "
                              "checkpoint with a 'state_dict'")
    sd: Mapping[str, Any] = obj["state_dict"]
    if any(k.startswith("model.") for k in sd):
        config = model_config
        if config is None:
            hparams = obj.get("hyper_parameters") or {}
            config = hparams.get("model_config") if isinstance(hparams, Mapping) else None
        if config is None:
            raise DataError(path, "Lightning checkpoint without 'model_config' in its hyper_parameters",
                            "pass model_config=... explicitly")
        ours = {k[len("model."):]: v for k, v in sd.items() if k.startswith("model.")}
        others = sorted({k.split(".")[0] for k in sd if not k.startswith("model.")})
        if others:
            log.info("%s: ignoring non-network entries of the LightningModule: %s", path, ", ".join(others))
        model = _model_from_config(config, path)
        _load_strict(model, ours, path)
        return model.to(map_location).eval()
    if any(k.startswith(OFFICIAL_PREFIX) for k in sd):
        if model_config is None:
            from ssl4sar.config import load_preset

            model_config = load_preset("paper")["model"]
        model = _model_from_config(model_config, path)
        _load_strict(model, convert_official_tyrion(sd, source=path), path)
        return model.to(map_location).eval()
    sample = ", ".join(list(sd)[:5])
    raise DataError(path, f"Lightning checkpoint whose state_dict is neither ours ('model.…') nor official "
                          f"TYRION ('swin_unet.…'); first keys: {sample}")
