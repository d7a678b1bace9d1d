"""Fine-tuning augmentations of the official code (spec §3.3 steps 2–4), as fast numpy functions.

Order per sample (after the random context crop with re-zoom, :func:`ssl4sar.data.sampling.random_context_crop`):

2. ocean mix-up (p = 0.3): inside the ocean / ice-mélange pixels (class 3) of the context mask,
   ``img = (img + w·img2)/(1 + w)`` with ``w ~ U[0.15, 0.30)`` and ``img2`` another training image's own random
   context crop; clipped to [0, 255] and truncated to uint8;
3. "OcrodegAug" on the image only: speckle (p = 0.2), brightness (p = 0.2, factor U[0.6, 1.4)), gamma
   (p = 0.2, γ ~ U[0.7, 1.3));
4. flips / rotations on image and mask together: horizontal flip (p = 0.5), then vertical flip (p = 0.5),
   then a counter-clockwise rotation by 90°, 180° or 270° (p = 0.5, each 1/3).

Images are ``(H, W)`` uint8 (SAR amplitude, 0..255), masks ``(H, W)`` integer class ids; every function
returns new arrays of the same shape and dtype. All randomness comes from the ``numpy.random.Generator``
passed in. Brightness and gamma reproduce the PIL / torchvision maths the reference calls (PIL
``ImageEnhance.Brightness``: ``trunc(float32(f)·v)`` clipped to 0..255; torchvision ``adjust_gamma``:
lookup table ``int(255.999·(v/255)^γ)``) bit for bit, without the PIL round trip.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from ssl4sar.config import paper_preset
from ssl4sar.domain import OCEAN

__all__ = [
    "OCEAN_CLASS", "AugmentParams", "ocean_mixup", "speckle", "brightness", "gamma", "photometric",
    "flip_rotate", "augment_context",
]

OCEAN_CLASS = OCEAN
_PAPER = paper_preset().data  # the defaults below: the paper preset's data section (§3.3)


def _pair(values: list[float]) -> tuple[float, float]:
    lo, hi = values
    return float(lo), float(hi)


@dataclass(frozen=True)
class AugmentParams:
    """Probabilities and ranges of the fine-tuning sampler; defaults are the reference's (§3.3), read from the
    paper preset's ``data`` section.

    Ranges are half-open ``[lo, hi)``. ``antialias`` switches on antialiasing when the re-zoom shrinks a crop
    (off in the reference).
    """

    prob_rezoom: float = _PAPER.prob_rezoom
    zoom_range: tuple[float, float] = _pair(_PAPER.zoom_range)
    prob_mixup: float = _PAPER.prob_mixup
    mixup_weight: tuple[float, float] = _pair(_PAPER.mixup_weight)
    prob_speckle: float = _PAPER.prob_speckle
    prob_brightness: float = _PAPER.prob_brightness
    brightness_range: tuple[float, float] = _pair(_PAPER.brightness_range)
    prob_gamma: float = _PAPER.prob_gamma
    gamma_range: tuple[float, float] = _pair(_PAPER.gamma_range)
    prob_flip_h: float = _PAPER.prob_flip_h
    prob_flip_v: float = _PAPER.prob_flip_v
    prob_rotate: float = _PAPER.prob_rotate
    antialias: bool = False

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.startswith("prob_") and not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"{f.name} must be a probability in [0, 1], got {value}")
            if f.name.endswith(("_range", "_weight")):
                lo, hi = value
                if not lo <= hi:
                    raise ValueError(f"{f.name} must be (lo, hi) with lo <= hi, got {value}")
                object.__setattr__(self, f.name, (float(lo), float(hi)))

    @classmethod
    def from_config(cls, data_cfg: Mapping[str, Any]) -> AugmentParams:
        """Build from a preset's ``data`` section (unknown keys are ignored, missing keys keep defaults)."""
        names = {f.name for f in fields(cls)}
        kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data_cfg.items() if k in names}
        return cls(**kwargs)

    @classmethod
    def none(cls) -> AugmentParams:
        """All probabilities 0: crops without re-zoom and no augmentation."""
        return cls(prob_rezoom=0.0, prob_mixup=0.0, prob_speckle=0.0, prob_brightness=0.0, prob_gamma=0.0,
                   prob_flip_h=0.0, prob_flip_v=0.0, prob_rotate=0.0)


def ocean_mixup(image: np.ndarray, mask: np.ndarray, other: np.ndarray, weight: float) -> np.ndarray:
    """Blend ``other`` into ``image`` where ``mask == 3``: ``(img + w·other)/(1 + w)``, clipped, truncated to uint8."""
    if image.shape != other.shape or image.shape[-2:] != mask.shape[-2:]:
        raise ValueError(f"ocean_mixup: shapes differ: image {image.shape}, other {other.shape}, mask {mask.shape}")
    w = np.float32(weight)
    a = image.astype(np.float32)
    blended = (a + w * other.astype(np.float32)) / (np.float32(1.0) + w)
    out = np.where(mask == OCEAN_CLASS, blended, a)
    return np.clip(out, 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=16)
def _poisson_thresholds(lam: float) -> np.ndarray:
    """CDF values ``P(X ≤ k)``, k = 0, 1, …, of Poisson(lam) below 1 − 1e-7 (float32)."""
    cdf, term, k = [], math.exp(-lam), 0
    total = term
    while total < 1.0 - 1e-7 and k < 1000:
        cdf.append(total)
        k += 1
        term *= lam / k
        total += term
    return np.asarray(cdf, dtype=np.float32)


def _poisson_counts(rng: np.random.Generator, lam: float, shape: tuple[int, ...]) -> np.ndarray:
    """Poisson(lam) draws as float32 by inverse-CDF counting (exact to float32 resolution; about 3× faster than
    ``Generator.poisson`` for the small peaks 1–3 used here)."""
    if lam > 8:
        return rng.poisson(lam, shape).astype(np.float32)
    u = rng.random(shape, dtype=np.float32)
    counts = np.zeros(shape, dtype=np.uint8)
    for threshold in _poisson_thresholds(float(lam)):
        counts += u >= threshold
    return counts.astype(np.float32)


def speckle(image: np.ndarray, rng: np.random.Generator, peak: int | None = None) -> np.ndarray:
    """Poisson speckle of the reference ``OcrodegAug`` (§3.3 step 3).

    ``peak ∈ {1, 2, 3}`` (uniform unless given); per pixel ``noise = U(0,1)·(Poisson(peak) − peak)``, then
    ``noise /= max(noise)``; ``x = clip(img/255 + noise, 0, 1)``; result ``trunc(255·x)`` as uint8. If no pixel
    gets positive noise (practically impossible for real sizes) the image is returned unchanged instead of
    dividing by a non-positive maximum. Computed in float32 (the reference uses float64; the result is random
    anyway and differs at most in rare truncation ties).
    """
    if peak is None:
        peak = int(rng.random() * 3) + 1
    shape = image.shape
    scale = rng.random(shape, dtype=np.float32)
    noise = _poisson_counts(rng, float(peak), shape)
    noise -= np.float32(peak)
    noise *= scale
    top = float(noise.max()) if noise.size else 0.0
    if top <= 0.0:
        return np.array(image, dtype=np.uint8)
    x = image.astype(np.float32)
    x *= np.float32(1.0 / 255.0)
    noise *= np.float32(1.0 / top)
    x += noise
    np.clip(x, 0.0, 1.0, out=x)
    x *= np.float32(255.0)
    return x.astype(np.uint8)


def brightness(image: np.ndarray, factor: float) -> np.ndarray:
    """PIL ``ImageEnhance.Brightness(img).enhance(factor)`` on uint8: ``trunc(float32(factor)·v)``, clipped."""
    lut = np.clip(np.float32(factor) * np.arange(256, dtype=np.float32), 0.0, 255.0).astype(np.uint8)
    return lut[image]


def gamma(image: np.ndarray, gamma_value: float, gain: float = 1.0) -> np.ndarray:
    """torchvision ``adjust_gamma`` on a PIL image: lookup table ``int(255.999·gain·(v/255)^γ)``."""
    if gamma_value < 0:
        raise ValueError(f"gamma must be non-negative, got {gamma_value}")
    lut = np.array([int((255 + 1 - 1e-3) * gain * pow(v / 255.0, gamma_value)) for v in range(256)])
    return np.clip(lut, 0, 255).astype(np.uint8)[image]


def photometric(image: np.ndarray, rng: np.random.Generator, params: AugmentParams) -> np.ndarray:
    """Speckle, brightness and gamma, each with its probability (§3.3 step 3), on a uint8 image."""
    out = image
    if params.prob_speckle > 0 and rng.random() < params.prob_speckle:
        out = speckle(out, rng)
    if params.prob_brightness > 0 and rng.random() < params.prob_brightness:
        lo, hi = params.brightness_range
        out = brightness(out, rng.uniform(lo, hi))
    if params.prob_gamma > 0 and rng.random() < params.prob_gamma:
        lo, hi = params.gamma_range
        out = gamma(out, rng.uniform(lo, hi))
    return out


def flip_rotate(image: np.ndarray, mask: np.ndarray | None, rng: np.random.Generator, *,
                prob_flip_h: float = _PAPER.prob_flip_h, prob_flip_v: float = _PAPER.prob_flip_v,
                prob_rotate: float = _PAPER.prob_rotate) -> tuple[np.ndarray, np.ndarray | None]:
    """Horizontal flip, vertical flip, then 90/180/270° counter-clockwise rotation, applied identically to
    ``image`` and ``mask`` (last two axes; rotations need square arrays to keep the shape). Returns
    contiguous arrays."""
    img, msk = image, mask
    if prob_flip_h > 0 and rng.random() < prob_flip_h:
        img = img[..., :, ::-1]
        msk = msk[..., :, ::-1] if msk is not None else None
    if prob_flip_v > 0 and rng.random() < prob_flip_v:
        img = img[..., ::-1, :]
        msk = msk[..., ::-1, :] if msk is not None else None
    if prob_rotate > 0 and rng.random() < prob_rotate:
        k = int(rng.integers(1, 4))
        img = np.rot90(img, k, axes=(-2, -1))
        msk = np.rot90(msk, k, axes=(-2, -1)) if msk is not None else None
    img = np.ascontiguousarray(img)
    msk = np.ascontiguousarray(msk) if msk is not None else None
    return img, msk


def augment_context(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, params: AugmentParams,
                    mixup_source: Callable[[np.random.Generator], np.ndarray] | None = None,
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Steps 2–4 of §3.3 on a ``(C, C)`` uint8 context crop and its ``(C, C)`` class-id mask.

    ``mixup_source(rng)`` must return another image's random ``(C, C)`` uint8 context crop (drawn with the same
    procedure); without it the mix-up is skipped.
    """
    img = image
    if mixup_source is not None and params.prob_mixup > 0 and rng.random() < params.prob_mixup:
        lo, hi = params.mixup_weight
        w = rng.uniform(lo, hi)
        other = mixup_source(rng)
        img = ocean_mixup(img, mask, other, w)
    img = photometric(img, rng, params)
    return flip_rotate(img, mask, rng, prob_flip_h=params.prob_flip_h, prob_flip_v=params.prob_flip_v,
                       prob_rotate=params.prob_rotate)
