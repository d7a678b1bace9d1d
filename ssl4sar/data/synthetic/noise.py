"""Noise fields by spectral synthesis (one FFT per field): power-law (fractal) noise in 1-D and 2-D and
oriented streak texture (crevasses, foliation, wind rows). Fields are zero-mean, unit-std float32.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy import fft as sfft


@functools.lru_cache(maxsize=16)
def _freq_grid(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frequencies (cycles/px) of a real 2-D FFT of ``shape``: ``ky`` (H, 1), ``kx`` (1, W//2+1), |k|."""
    ky = sfft.fftfreq(shape[0]).astype(np.float32)[:, None]
    kx = sfft.rfftfreq(shape[1]).astype(np.float32)[None, :]
    k = np.sqrt(ky**2 + kx**2)
    k[0, 0] = 1.0
    return ky, kx, k


def _normalise(a: np.ndarray) -> np.ndarray:
    """``a`` shifted and scaled to zero mean and unit standard deviation, float32."""
    a = np.asarray(a, dtype=np.float32)
    mean = float(a.mean(dtype=np.float64))
    std = float(a.std(dtype=np.float64))
    out = a - np.float32(mean)
    if std > 0:
        out *= np.float32(1.0 / std)
    return out


def _fast_shape(shape: tuple[int, int]) -> tuple[int, int]:
    """The smallest shape ≥ ``shape`` whose sides have only small prime factors (fast FFTs)."""
    return (sfft.next_fast_len(int(shape[0]), real=True), sfft.next_fast_len(int(shape[1]), real=True))


@dataclass(frozen=True)
class _Filter:
    """An rfft2 filter ``amp`` on an FFT ``grid`` and the block (``rows``, first ``cols`` columns) of
    frequencies where it is not negligible (> 1e-4 · max)."""

    grid: tuple[int, int]
    amp: np.ndarray
    rows: np.ndarray
    cols: int
    amp_block: np.ndarray   # amp[rows, :cols]
    full: bool              # the block is the whole filter


def _make_filter(grid: tuple[int, int], amp: np.ndarray) -> _Filter:
    big = amp > 1e-4 * float(amp.max()) if amp.size and amp.max() > 0 else np.zeros(amp.shape, bool)
    rows = np.flatnonzero(big.any(axis=1))
    cols = int(np.flatnonzero(big.any(axis=0)).max()) + 1 if big.any() else 1
    if rows.size == 0:
        rows = np.array([0])
    full = rows.size == amp.shape[0] and cols == amp.shape[1]
    block = np.ascontiguousarray(amp[rows, :cols])
    for a in (amp, block):
        a.flags.writeable = False
    return _Filter(grid, amp, rows, cols, block, full)


def _filtered_white(rng: np.random.Generator, shape: tuple[int, int], filt: _Filter) -> np.ndarray:
    """White noise filtered by ``filt`` on its FFT grid, cropped to ``shape``, zero mean, unit std.

    The white-noise spectrum is drawn directly as complex Gaussian coefficients, and only inside the
    block of frequencies where the filter is not negligible (large-scale fields cost little).
    """
    rows, cols = filt.rows, filt.cols
    coef = rng.standard_normal((rows.size, 2 * cols), dtype=np.float32).view(np.complex64)
    coef *= filt.amp_block
    if filt.full:
        spec = coef
    else:
        spec = np.zeros(filt.amp.shape, dtype=np.complex64)
        spec[rows, :cols] = coef
    return _normalise(sfft.irfft2(spec, s=filt.grid)[: shape[0], : shape[1]])


@functools.lru_cache(maxsize=48)
def _power_law_filter(shape: tuple[int, int], min_scale_px: float, max_scale_px: float, beta: float) -> _Filter:
    _, _, k = _freq_grid(shape)
    amp = k ** np.float32(-beta / 2.0)
    amp *= np.exp(-np.square(k * np.float32(max(min_scale_px, 0.5))) * np.float32(0.5))
    amp *= 1.0 - np.exp(-np.square(k * np.float32(max_scale_px)) * np.float32(0.5))
    amp[0, 0] = 0.0
    return _make_filter(shape, amp)


def fractal_noise(rng: np.random.Generator, shape: tuple[int, int], min_scale_px: float,
                  max_scale_px: float, beta: float = 3.0) -> np.ndarray:
    """Zero-mean, unit-std power-law noise (power ∝ k^-beta) with features between the two scales (px).

    Layout (H, W) float32. Equivalent to a sum of octaves between ``min_scale_px`` and ``max_scale_px``;
    periodic at the borders of the FFT grid (a little larger than ``shape``).
    """
    shape = (int(shape[0]), int(shape[1]))
    filt = _power_law_filter(_fast_shape(shape), round(min_scale_px, 2), round(max_scale_px, 2), beta)
    return _filtered_white(rng, shape, filt)


@functools.lru_cache(maxsize=32)
def _oriented_filter(shape: tuple[int, int], angle: float, wavelength_px: float, bandwidth: float,
                     elongation: float) -> _Filter:
    ky, kx, _ = _freq_grid(shape)
    k0 = np.float32(1.0 / max(wavelength_px, 2.0))
    kp = kx * np.float32(math.cos(angle)) + ky * np.float32(math.sin(angle))
    kq = -kx * np.float32(math.sin(angle)) + ky * np.float32(math.cos(angle))
    amp = np.exp(-0.5 * np.square((np.abs(kp) - k0) / (bandwidth * k0))
                 - 0.5 * np.square(kq / (k0 / elongation))).astype(np.float32)
    amp[0, 0] = 0.0
    return _make_filter(shape, amp)


def oriented_noise(rng: np.random.Generator, shape: tuple[int, int], angle: float,
                   wavelength_px: float, bandwidth: float = 0.35, elongation: float = 6.0) -> np.ndarray:
    """Zero-mean unit-std streak texture: ridges whose *normal* points along ``angle`` (radians, in
    (row, col) = (sin, cos) convention), spaced ~``wavelength_px`` px, ridges ~``elongation`` × longer
    than their spacing. Layout (H, W) float32. Used for crevasses, foliation and wind rows.
    """
    shape = (int(shape[0]), int(shape[1]))
    filt = _oriented_filter(_fast_shape(shape), round(angle % (2 * math.pi), 4), round(wavelength_px, 2),
                            bandwidth, elongation)
    return _filtered_white(rng, shape, filt)


def fractal_noise_1d(rng: np.random.Generator, n: int, min_scale: float, max_scale: float,
                     beta: float = 2.0) -> np.ndarray:
    """1-D zero-mean unit-std power-law noise of length ``n`` (scales in samples). float64 (n,)."""
    n = max(int(n), 8)
    k = sfft.rfftfreq(n)
    k[0] = 1.0
    amp = k ** (-beta / 2.0) * np.exp(-0.5 * (k * min_scale) ** 2) * (1.0 - np.exp(-0.5 * (k * max_scale) ** 2))
    amp[0] = 0.0
    out = sfft.irfft(sfft.rfft(rng.standard_normal(n)) * amp, n=n)
    out -= out.mean()
    s = out.std()
    return out / s if s > 0 else out
