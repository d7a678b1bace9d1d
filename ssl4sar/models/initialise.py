"""Initial weights of a TYRION network and the export of a trained one, shared by fine-tuning and pretraining.

``init`` is ``scratch`` (random), ``imagenet`` (Microsoft's ``swinv2_tiny_patch4_window16_256.pth`` in the encoder;
the path given, or the data manifest entry ``swinv2-tiny-imagenet`` under the data root) or the path of a
checkpoint that :func:`ssl4sar.models.convert.load_model` reads (encoder *and* decoder transfer, spec §5.4;
pretraining heads are dropped by name).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ssl4sar.errors import DataError
from ssl4sar.models.tyrion import Tyrion

__all__ = ["IMAGENET_RESOURCE", "resolve_imagenet_weights", "initialise_model", "export_lightning_checkpoint"]

log = logging.getLogger(__name__)

#: the data manifest entry of the ImageNet SwinV2-T weights
IMAGENET_RESOURCE = "swinv2-tiny-imagenet"


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
    return f"checkpoint:{path}"


def same_initialisation(recorded: str, requested: str | Path) -> bool:
    """Whether ``requested`` (an ``init`` argument: ``scratch``, ``imagenet`` or a checkpoint path) names the initial
    weights that ``recorded`` describes: a description returned by :func:`initialise_model` (``scratch``,
    ``imagenet:PATH``, ``checkpoint:PATH``) or, from runs resumed before it was kept, an ``init`` argument itself.
    Paths are compared resolved, so a relative and an absolute name of one file match; the ImageNet weights by kind
    only (their file can be named in several ways)."""
    def parse(text: str) -> tuple[str, str]:
        kind, sep, where = text.strip().partition(":")
        if sep and kind in ("imagenet", "checkpoint"):
            return kind, where
        key = text.strip()
        return (key.lower(), "") if key.lower() in ("scratch", "imagenet") else ("checkpoint", key)

    (kind_a, where_a), (kind_b, where_b) = parse(str(recorded)), parse(str(requested))
    if kind_a != kind_b:
        return False
    return kind_a != "checkpoint" or Path(where_a).expanduser().resolve() == Path(where_b).expanduser().resolve()


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
