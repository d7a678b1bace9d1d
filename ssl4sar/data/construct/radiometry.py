"""SAR radiometry of the SSL4SAR construction: which unit a scene's values are in, the log domain (dB), and the
8-bit encoding the SSL4SAR layout stores (0 = no data, 1 … 255)."""

from __future__ import annotations

import re

import numpy as np

#: SAR value encodings understood (see :mod:`ssl4sar.data.construct`)
SAR_UNITS: tuple[str, ...] = ("auto", "db", "intensity", "amplitude", "dn", "uint8")
#: σ⁰ range (dB) mapped to 1 … 255
DEFAULT_DB_RANGE: tuple[float, float] = (-30.0, 5.0)
#: percentiles (%) of log-DN mapped to 1 and 255 for uncalibrated SAR
DEFAULT_DN_PERCENTILES: tuple[float, float] = (0.5, 99.5)


def resolve_sar_units(declared: str, dtype: str, hint: str = "", values: np.ndarray | None = None) -> str:
    """The unit of a SAR scene's values (rules in :mod:`ssl4sar.data.construct`); ``declared`` wins unless ``auto``."""
    if declared not in SAR_UNITS:
        raise ValueError(f"sar_units must be one of {SAR_UNITS}, got {declared!r}")
    if declared != "auto":
        return declared
    dt_ = np.dtype(dtype)
    if dt_ == np.uint8:
        return "uint8"
    h = hint.lower()
    if re.search(r"(?<![a-z])db(?![a-z])|decibel", h):
        return "db"
    if "amplitude" in h:
        return "amplitude"
    if re.search(r"intensity|power|linear", h):
        return "intensity"
    if np.issubdtype(dt_, np.integer):
        return "dn"
    if values is not None:
        v = values[np.isfinite(values)]
        if v.size and float(v.min()) < 0:
            return "db"
    return "intensity"


def sar_to_db(values: np.ndarray, units: str, invalid: np.ndarray | None = None) -> np.ndarray:
    """SAR values → float32 log-domain values (dB; for ``dn``: ``20·log10(DN)``, for ``uint8``: unchanged), NaN
    where invalid (``invalid`` mask, non-finite values, values ≤ 0 for the linear units, 0 for ``uint8``)."""
    x = np.asarray(values, dtype=np.float64)
    bad = ~np.isfinite(x) if invalid is None else (np.asarray(invalid, bool) | ~np.isfinite(x))
    if units == "db":
        out = x
    elif units in ("intensity", "amplitude", "dn"):
        bad = bad | (x <= 0)
        factor = 10.0 if units == "intensity" else 20.0
        with np.errstate(divide="ignore", invalid="ignore"):
            out = factor * np.log10(np.where(bad, 1.0, x))
    elif units == "uint8":
        bad = bad | (x <= 0)
        out = x
    else:
        raise ValueError(f"unknown SAR units {units!r}")
    return np.where(bad, np.nan, out).astype(np.float32)


def db_to_uint8(x: np.ndarray, units: str, db_range: tuple[float, float] = DEFAULT_DB_RANGE,
                dn_percentiles: tuple[float, float] = DEFAULT_DN_PERCENTILES) -> np.ndarray:
    """Log-domain SAR (from :func:`sar_to_db`, NaN = no data) → uint8, 0 = no data, valid 1 … 255."""
    valid = np.isfinite(x)
    if units == "uint8":
        dn = np.clip(np.rint(np.where(valid, x, 1.0)), 1, 255)
    else:
        if units == "dn":
            if not valid.any():
                return np.zeros(x.shape, np.uint8)
            lo, hi = (float(v) for v in np.percentile(x[valid], dn_percentiles))
        else:
            lo, hi = float(db_range[0]), float(db_range[1])
        if not hi > lo:
            hi = lo + 1e-3
        v = np.clip(np.where(valid, x, lo), lo, hi)
        dn = np.clip(np.rint(1.0 + 254.0 * (v - lo) / (hi - lo)), 1, 255)
    out = dn.astype(np.uint8)
    out[~valid] = 0
    return out
