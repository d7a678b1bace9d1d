"""Networks and checkpoint handling: :class:`~ssl4sar.models.tyrion.Tyrion` and its converters."""

from __future__ import annotations

from ssl4sar.models.convert import (
    CHECKPOINT_FORMAT,
    ConversionReport,
    convert_official_tyrion,
    load_checkpoint,
    load_imagenet_swinv2,
    load_model,
    save_checkpoint,
)
from ssl4sar.models.tyrion import MODEL_CONFIG_DEFAULTS, Tyrion

__all__ = [
    "CHECKPOINT_FORMAT",
    "MODEL_CONFIG_DEFAULTS",
    "ConversionReport",
    "Tyrion",
    "convert_official_tyrion",
    "load_checkpoint",
    "load_imagenet_swinv2",
    "load_model",
    "save_checkpoint",
]
