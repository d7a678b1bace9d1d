"""Initial weights of a TYRION network and the export of a trained one, shared by fine-tuning and pretraining.

``init`` is ``scratch`` (random), ``imagenet`` (Microsoft's ``swinv2_tiny_patch4_window16_256.pth`` in the encoder;
the path given, or the data manifest entry ``swinv2-tiny-imagenet`` under the data root) or the path of a
checkpoint that :func:`ssl4sar.models.convert.load_model` reads (encoder *and* decoder transfer, spec §5.4;
pretraining heads are dropped by name).

A run records where its weights came from: ``scratch``, ``imagenet:PATH`` or ``checkpoint:PATH [weights FP]``, with
FP the :func:`weights_fingerprint` of the network the checkpoint held. A resumed run compares it with what the file
holds now (:func:`changed_initial_weights`), since a file can be written again under the same name.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ssl4sar.errors import DataError
from ssl4sar.models.state_digest import update_with_state
from ssl4sar.models.tyrion import Tyrion

__all__ = ["IMAGENET_RESOURCE", "resolve_imagenet_weights", "initialise_model", "weights_fingerprint",
           "same_initialisation", "changed_initial_weights", "export_lightning_checkpoint"]

log = logging.getLogger(__name__)

#: the data manifest entry of the ImageNet SwinV2-T weights
IMAGENET_RESOURCE = "swinv2-tiny-imagenet"
#: ``checkpoint:PATH [weights FP]``, the description of a checkpoint initialisation (FP: 16 hex digits)
_CHECKPOINT_DESCRIPTION = re.compile(r"(?P<path>.*) \[weights (?P<fingerprint>[0-9a-f]{16})\]")


def weights_fingerprint(state: Mapping[str, torch.Tensor]) -> str:
    """First 16 hex digits of the SHA-256 of a state dict's names, dtypes, shapes and values, in name order.

    It identifies weights, not files: the same network saved twice (other metadata, other key order) has one
    fingerprint, and any changed value gives another. The paper network's state (200 MB with its buffers) takes
    0.13 s on the 2-core build machine.
    """
    digest = hashlib.sha256()
    update_with_state(digest, {name: state[name] for name in sorted(state)})
    return digest.hexdigest()[:16]


def resolve_imagenet_weights(path: str | Path | None = None) -> Path:
    """Path of the ImageNet SwinV2-T weights: ``path`` if given, else the manifest entry under the data root.

    Raises :class:`DataError` naming the expected file when it does not exist.
    """
    if path is None:
        from ssl4sar.data.manifest import load_manifest, local_path

        path = local_path(load_manifest()[IMAGENET_RESOURCE])
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(path, "ImageNet SwinV2-T weights (swinv2_tiny_patch4_window16_256.pth) not found",
                        f"download them with `ssl4sar data fetch {IMAGENET_RESOURCE}`, pass --imagenet-weights PATH, "
                        "or use --init scratch")
    return path


def initialise_model(model: Tyrion, init: str | Path = "scratch", imagenet_weights: str | Path | None = None,
                     *, trusted: bool = False) -> str:
    """Fill ``model`` according to ``init`` (``scratch`` | ``imagenet`` | checkpoint path); returns a description.

    A checkpoint must hold a network whose every parameter fits ``model`` (same names and shapes): encoder and
    decoder are copied, pretraining heads dropped. Raises :class:`DataError` naming the file otherwise (also for
    non-finite weights and for files refused by :func:`ssl4sar.models.convert.read_checkpoint_file`; ``trusted``
    lets such a file run its code).
    """
    from ssl4sar.models.convert import load_imagenet_swinv2, load_model

    key = str(init).strip()
    if key.lower() == "scratch":
        return "scratch"
    if key.lower() == "imagenet":
        path = resolve_imagenet_weights(imagenet_weights)
        load_imagenet_swinv2(model, path, trusted=trusted)
        return f"imagenet:{path}"
    path = Path(key).expanduser()
    if not path.is_file():
        raise DataError(path, "initialisation checkpoint not found",
                        "--init takes 'scratch', 'imagenet' or the path of a pretraining / fine-tuning checkpoint")
    source = load_model(path, map_location="cpu", model_config=model.config, trusted=trusted)
    theirs = source.state_dict()
    ours = model.state_dict()
    missing = sorted(set(ours) - set(theirs))
    extra = sorted(set(theirs) - set(ours))
    wrong = sorted(f"{k} {tuple(theirs[k].shape)} vs {tuple(ours[k].shape)}"
                   for k in set(ours) & set(theirs) if theirs[k].shape != ours[k].shape)
    if missing or extra or wrong:
        problems = "; ".join(f"{label}: {', '.join(keys[:5])}{' …' if len(keys) > 5 else ''}"
                             for label, keys in (("missing", missing), ("unexpected", extra), ("shape", wrong))
                             if keys)
        raise DataError(path, f"network does not fit the configured model ({problems})",
                        "use the same model section (preset) as the run that wrote the checkpoint")
    model.load_state_dict(theirs, strict=True)
    log.info("%s: encoder and decoder weights loaded", path)
    return f"checkpoint:{path} [weights {weights_fingerprint(theirs)}]"


def _parse_initialisation(text: str) -> tuple[str, str, str | None]:
    """``(kind, path, fingerprint)`` of an initialisation description or ``init`` argument (see
    :func:`same_initialisation`); kind is ``scratch``, ``imagenet`` or ``checkpoint``."""
    kind, sep, where = text.strip().partition(":")
    if sep and kind in ("imagenet", "checkpoint"):
        described = _CHECKPOINT_DESCRIPTION.fullmatch(where) if kind == "checkpoint" else None
        return (kind, described["path"], described["fingerprint"]) if described else (kind, where, None)
    key = text.strip()
    return (key.lower(), "", None) if key.lower() in ("scratch", "imagenet") else ("checkpoint", key, None)


def same_initialisation(recorded: str, requested: str | Path) -> bool:
    """Whether ``requested`` (an ``init`` argument: ``scratch``, ``imagenet`` or a checkpoint path) names the initial
    weights that ``recorded`` describes: a description returned by :func:`initialise_model` (``scratch``,
    ``imagenet:PATH``, ``checkpoint:PATH [weights FP]``; ``checkpoint:PATH`` from earlier versions) or, from runs
    resumed before it was kept, an ``init`` argument itself. Paths are compared resolved, so a relative and an
    absolute name of one file match; the ImageNet weights by kind only (their file can be named in several ways).
    What a named file holds now is for :func:`changed_initial_weights`."""
    (kind_a, where_a, _), (kind_b, where_b, _) = (_parse_initialisation(str(recorded)),
                                                  _parse_initialisation(str(requested)))
    if kind_a != kind_b:
        return False
    return kind_a != "checkpoint" or Path(where_a).expanduser().resolve() == Path(where_b).expanduser().resolve()


def changed_initial_weights(recorded: str, model_config: Mapping[str, Any] | None = None, *,
                            trusted: bool = False) -> tuple[Path, str, str] | None:
    """``(file, fingerprint recorded, fingerprint now)`` when the checkpoint that ``recorded`` (a description of
    :func:`initialise_model`) names holds other weights now than when the run started from it; else ``None``.

    ``None`` too when nothing can be compared: no checkpoint, no fingerprint recorded (earlier versions), or the
    file is gone. Raises :class:`DataError` naming the file when it exists but cannot be read as a network.
    """
    from ssl4sar.models.convert import load_model

    kind, where, fingerprint = _parse_initialisation(str(recorded))
    path = Path(where).expanduser()
    if kind != "checkpoint" or fingerprint is None or not path.is_file():
        return None
    now = weights_fingerprint(load_model(path, map_location="cpu", model_config=model_config,
                                         trusted=trusted).state_dict())
    return None if now == fingerprint else (path, fingerprint, now)


def export_lightning_checkpoint(ckpt_path: str | Path, dest: str | Path, meta: Mapping[str, Any] | None = None
                                ) -> Path:
    """Write the network of one of our Lightning checkpoints in the project format (``save_checkpoint``).

    ``meta`` is completed with the checkpoint's epoch, global step and source path.
    """
    from ssl4sar.models.convert import load_model, read_checkpoint_file, save_checkpoint

    ckpt_path = Path(ckpt_path)
    obj = read_checkpoint_file(ckpt_path)
    model = load_model(ckpt_path, map_location="cpu")
    info = {"source_checkpoint": str(ckpt_path), "epoch": int(obj.get("epoch", -1)),
            "global_step": int(obj.get("global_step", -1)), **dict(meta or {})}
    return save_checkpoint(dest, model, meta=info)
