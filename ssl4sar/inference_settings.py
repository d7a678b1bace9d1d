"""How a model predicts whole scenes at evaluation time: the resolved settings of sliding-window inference
(:class:`InferenceSettings`, :func:`inference_settings`) and the device choice (:func:`resolve_device`). Used by
:mod:`ssl4sar.evaluate` (which re-exports these names) and the benchmarks.

Inference settings (:func:`inference_settings`): the window is the model's input size ``C`` (``img_size``); the
stride and the Gaussian σ of the importance map are ``C / 4`` and ``C / 16`` pixels (128 px and 32 px at C = 512,
the paper's values) unless given, or — with a ``preset`` — that preset's ``inference.stride`` /
``inference.gaussian_sigma`` scaled by ``C / data.context_size``. TTA uses the rotations 0..3 (k × 90° clockwise,
rotated back before averaging; the preset's ``inference.tta_rotations`` when a preset is given); ``flips`` adds the
horizontal mirror of every rotation (not in the paper).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from ssl4sar.errors import DataError, SettingError

__all__ = ["AMP_DTYPES", "InferenceSettings", "check_window_settings", "ensemble_context_size", "inference_settings",
           "model_context_size", "resolve_device"]

#: autocast dtypes an :class:`InferenceSettings` may name (torch's names)
AMP_DTYPES = ("bfloat16", "float16")


@dataclass(frozen=True)
class InferenceSettings:
    """How scenes are predicted (see the module docstring).

    Attributes:
        context_size: window side C in pixels (the model's input size).
        stride: pixels between window origins.
        sigma: σ of the Gaussian importance map of the ``C/2`` centre crop, in pixels.
        batch_size: windows per forward pass.
        rotations: TTA quarter turns (k × 90° clockwise); ``(0,)`` without TTA.
        flips: also the horizontal mirror of every rotation.
        device: where the models run (``"cpu"``, ``"cuda"``, ``"cuda:1"`` …).
        amp_dtype: autocast dtype name (``"bfloat16"``) or ``None`` for float32.
    """

    context_size: int
    stride: int
    sigma: float
    batch_size: int
    rotations: tuple[int, ...] = (0,)
    flips: bool = False
    device: str = "cpu"
    amp_dtype: str | None = None

    def window_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`ssl4sar.inference.sliding_window_probabilities`."""
        return {"context_size": self.context_size, "stride": self.stride, "sigma": self.sigma,
                "batch_size": self.batch_size, "device": self.device,
                "amp_dtype": self.torch_amp_dtype, "progress": False}

    def predict_kwargs(self, tta: bool = True) -> dict[str, Any]:
        """Keyword arguments of :func:`ssl4sar.predict.predict_scenes`: windows, batch, device, autocast dtype and
        (``tta``) the augmentations; without ``tta`` one unrotated, unmirrored map."""
        return {"rotations": self.rotations if tta else (0,), "flips": self.flips and tta,
                "context_size": self.context_size, "stride": self.stride, "sigma": self.sigma,
                "batch_size": self.batch_size, "device": self.device, "amp_dtype": self.torch_amp_dtype}

    @property
    def torch_amp_dtype(self) -> torch.dtype | None:
        """``amp_dtype`` as a ``torch.dtype`` (``None``: float32)."""
        return getattr(torch, self.amp_dtype) if self.amp_dtype else None

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["rotations"] = list(self.rotations)
        return d


def resolve_device(device: str | torch.device = "auto") -> str:
    """:func:`ssl4sar.models.fast.resolve_device` (``"auto"`` → ``"cuda"`` or ``"cpu"``; a CUDA device that is not
    there is a ``ValueError``), as the text the inference settings record (``"cpu"``, ``"cuda"``, ``"cuda:1"``)."""
    from ssl4sar.models.fast import resolve_device as resolve_torch_device

    return str(resolve_torch_device(device))


def _preset_dict(preset: str | Mapping[str, Any] | None) -> dict[str, Any]:
    from ssl4sar.config import load_preset

    if preset is None:
        return load_preset("paper")
    if isinstance(preset, Mapping):
        return dict(preset)
    return load_preset(str(preset))


def model_context_size(model: Any) -> int | None:
    """The model's input size in pixels (``img_size`` attribute or ``config["img_size"]``), if it states one."""
    size = getattr(model, "img_size", None)
    config = getattr(model, "config", None)
    if size is None and isinstance(config, Mapping):
        size = config.get("img_size")
    return int(size) if size is not None else None


def ensemble_context_size(models: Sequence[Any], names: Sequence[str | Path] | None = None,
                          context_size: int | None = None) -> int:
    """The window side C (px) of an ensemble: ``context_size`` when given, else the first model's input size.

    Raises :class:`~ssl4sar.errors.DataError` naming a member (its file in ``names``, else "ensemble member i")
    whose stated input size differs from C, and ``ValueError`` when C is unknown (no ``context_size`` and a first
    model without ``img_size``).
    """
    label = [str(n) for n in names] if names is not None else [f"member {i + 1}" for i in range(len(models))]
    sizes = [model_context_size(m) for m in models]
    c = context_size if context_size is not None else (sizes[0] if sizes else None)
    if c is None:
        raise ValueError(f"{label[0] if label else 'empty ensemble'}: the model states no input size (img_size); "
                         "pass context_size")
    against = "(context_size)" if context_size is not None else f"of {label[0]}"
    hint = "ensemble members must share the input size (context window)"
    for i, size in enumerate(sizes):
        if size is not None and size != int(c):
            problem = f"model input size {size} px differs from {int(c)} px {against}"
            if names is not None:  # the member's checkpoint is the file the error names
                raise DataError(names[i], problem, hint)
            raise DataError(None, f"ensemble {label[i]}: {problem}", hint)
    return int(c)


def check_window_settings(context_size: int, stride: int, sigma: float, batch_size: int) -> None:
    """:class:`~ssl4sar.errors.SettingError` unless the stride lies in ``1 .. C/2`` px (so that the kept centre
    crops cover every pixel), σ is a positive, finite number of px and at least one window goes into a forward
    pass."""
    c = int(context_size)
    if not 0 < stride <= c // 2:
        raise SettingError(f"stride must be in 1..{c // 2} px (= context size / 2) for a {c}-px model, got {stride}")
    if not (sigma > 0 and math.isfinite(sigma)):  # NaN fails the first test
        raise SettingError(f"sigma must be a positive number of pixels, got {sigma:g}")
    if batch_size < 1:
        raise SettingError(f"batch size must be at least 1, got {batch_size}")


def inference_settings(context_size: int, *, tta: bool = False, flips: bool = False,
                       preset: str | Mapping[str, Any] | None = None, stride: int | None = None,
                       sigma: float | None = None, batch_size: int | None = None, device: str | torch.device = "cpu",
                       amp_dtype: str | None = None, precision: str | None = None) -> InferenceSettings:
    """Resolve the inference settings for a model with input size ``context_size`` (pixels).

    From ``preset`` (name, YAML path or dict; default ``paper``: stride ``C / 4`` px, σ ``C / 16`` px, batch
    size 8, TTA rotations 0..3): its ``inference.stride`` and ``inference.gaussian_sigma`` scaled by
    ``C / data.context_size``, its ``inference.batch_size`` and ``inference.tta_rotations``. Explicit
    ``stride`` / ``sigma`` / ``batch_size`` win. The stride must lie in ``1 .. C/2`` so that the kept centre
    crops cover every pixel. The autocast dtype: ``amp_dtype`` when given, else that of ``precision``
    (``auto`` | ``fp32`` | ``bf16``, :func:`ssl4sar.models.fast.amp_dtype_for`: ``auto`` is bf16 where the device
    computes it natively), else of the preset's ``inference.precision``, else ``auto``. ``device``: as
    :func:`resolve_device` takes it (``"auto"``, ``"cpu"``, ``"cuda:N"``); the settings record the resolved text.
    """
    c = int(context_size)
    if c <= 0 or c % 2:
        raise ValueError(f"context size must be a positive even number of pixels, got {context_size}")
    device = resolve_device(device)  # "auto" resolved, a GPU that is not there refused, before any scene
    cfg = _preset_dict(preset)
    try:
        inf = cfg["inference"]
        scale = c / float(cfg["data"]["context_size"])
        default_stride = float(inf["stride"]) * scale
        default_sigma = float(inf["gaussian_sigma"]) * scale
        default_batch = int(inf["batch_size"])
        rotations = tuple(int(k) % 4 for k in inf["tta_rotations"])
        if precision is None:
            precision = str(inf["precision"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"preset {cfg.get('name', preset)!r}: cannot read inference.stride / gaussian_sigma / "
                         f"batch_size / tta_rotations / precision or data.context_size ({exc})") from exc
    s = int(stride) if stride is not None else max(1, int(round(default_stride)))
    sg = float(sigma) if sigma is not None else float(default_sigma)
    bs = int(batch_size) if batch_size is not None else default_batch
    check_window_settings(c, s, sg, bs)
    if not rotations:
        rotations = (0,)
    if amp_dtype is not None and amp_dtype not in AMP_DTYPES:
        # checked here: torch_amp_dtype would otherwise fail at the first scene, e.g. "module 'torch' has no
        # attribute 'bf16'"
        raise ValueError(f"amp_dtype must be one of {', '.join(AMP_DTYPES)} or None (float32), got {amp_dtype!r}")
    if amp_dtype is None:
        from ssl4sar.models.fast import amp_dtype_for

        amp = amp_dtype_for(device, precision if precision is not None else "auto")
        amp_dtype = None if amp is None else str(amp).replace("torch.", "")
    return InferenceSettings(context_size=c, stride=s, sigma=sg, batch_size=bs,
                             rotations=rotations if tta else (0,), flips=bool(flips), device=str(device),
                             amp_dtype=amp_dtype)
