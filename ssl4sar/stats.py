"""Significance tests between methods (spec §10, T:significance_tests.py).

The paper compares the test-set MDEs of five independent training runs per method: Levene's test (and a
permutation test of the Levene statistic) for equal variances, then the one-sided Mann–Whitney U test
(H1: the baseline's MDE is larger than the opponent's) and Cohen's d as effect size.

Cohen's d in the reference is not computed consistently [§11.18]: for the first five pairs it is
``(mean_b − mean_o) / std_b`` with the *population* standard deviation of the baseline only; for OptSimMIM vs
OptTranslator it is a pooled version whose variances are population variances (ddof = 0) but weighted with
``n − 1`` as if they were sample variances. :func:`cohens_d` offers both (``pooled=False`` / ``pooled=True,
ddof=0``) and the textbook pooled d (``pooled=True, ddof=1``, default for ``pooled``); :func:`compare_methods`
reports all three so that a table can state which one it shows.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats as sps

#: Test-set MDE (metres) of the five training runs per method, as hard-coded in the official code
#: (Nora-Go/TYRION, significance_tests.py lines 11-14, commit 2c50584; Gourmelon et al., IEEE TGRS 63, 2025).
PAPER_RUN_MDES_M: dict[str, tuple[float, ...]] = {
    "HookFormer": (356.2673918, 338.3709208, 363.9587444, 369.9190411, 373.9637252),
    "TYRION": (335.4428994, 313.1979335, 321.6418363, 381.0925618, 360.349317),
    "OptSimMIM": (290.7954322, 413.6106744, 236.5848697, 265.4767262, 295.5426651),
    "OptTranslator": (269.3482312, 259.6492801, 262.3526543, 400.7096369, 273.7162836),
}

#: (baseline, opponent) pairs tested in the reference, in its order.
PAPER_PAIRS: tuple[tuple[str, str], ...] = (
    ("HookFormer", "TYRION"),
    ("TYRION", "OptTranslator"),
    ("TYRION", "OptSimMIM"),
    ("HookFormer", "OptSimMIM"),
    ("HookFormer", "OptTranslator"),
    ("OptSimMIM", "OptTranslator"),
)


@dataclass(frozen=True)
class TestResult:
    """A test statistic and its p-value."""

    statistic: float
    pvalue: float


def _arr(x: Sequence[float]) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).ravel()
    if a.size < 2:
        raise ValueError(f"need at least two values per sample, got {a.size}")
    if not np.all(np.isfinite(a)):
        raise ValueError("samples must be finite")
    return a


def levene(a: Sequence[float], b: Sequence[float]) -> TestResult:
    """Levene's test for equal variances (scipy default, centred on the median = Brown–Forsythe)."""
    r = sps.levene(_arr(a), _arr(b))
    return TestResult(float(r.statistic), float(r.pvalue))


_PERM_RNG_KW = "rng" if "rng" in inspect.signature(sps.permutation_test).parameters else "random_state"


def levene_permutation(a: Sequence[float], b: Sequence[float], n_resamples: int = 9999, seed: int = 0) -> TestResult:
    """Permutation test of the Levene statistic (independent samples, alternative ``"greater"``), as the reference.

    When ``n_resamples`` exceeds the number of distinct partitions (252 for 5 vs 5) scipy enumerates them all and
    the p-value is exact (then ``seed`` does not matter).
    """
    def stat(x: np.ndarray, y: np.ndarray) -> float:
        return sps.levene(x, y).statistic

    r = sps.permutation_test((_arr(a), _arr(b)), stat, permutation_type="independent", alternative="greater",
                             n_resamples=n_resamples, **{_PERM_RNG_KW: np.random.default_rng(seed)})
    return TestResult(float(r.statistic), float(r.pvalue))


def mann_whitney_greater(a: Sequence[float], b: Sequence[float],
                         method: Literal["auto", "exact", "asymptotic"] = "auto") -> TestResult:
    """One-sided Mann–Whitney U test, H1: values of ``a`` tend to be larger than those of ``b``.

    ``statistic`` is U of ``a``. With ``method="auto"`` scipy uses the exact null distribution for small samples
    without ties (n ≤ 8 per sample), which is the case for the paper's 5 vs 5 runs (U = 20 → p = 0.0754).
    """
    r = sps.mannwhitneyu(_arr(a), _arr(b), alternative="greater", method=method)
    return TestResult(float(r.statistic), float(r.pvalue))


def cohens_d(a: Sequence[float], b: Sequence[float], pooled: bool = False, ddof: int = 1) -> float:
    """Cohen's d of ``mean(a) − mean(b)``.

    Args:
        a: baseline values (e.g. MDEs in metres).
        b: opponent values.
        pooled: ``False`` → divide by the population standard deviation of ``a`` (the reference for its first five
            comparisons); ``True`` → divide by the pooled SD
            ``sqrt(((n_a − 1)·var(a) + (n_b − 1)·var(b)) / (n_a + n_b − 2))``.
        ddof: delta degrees of freedom of ``var`` in the pooled SD: 1 is the textbook d; 0 reproduces the
            reference's OptSimMIM-vs-OptTranslator value. Ignored when ``pooled`` is False.
    """
    x, y = _arr(a), _arr(b)
    diff = x.mean() - y.mean()
    if not pooled:
        return float(diff / x.std())
    s = np.sqrt(((x.size - 1) * x.var(ddof=ddof) + (y.size - 1) * y.var(ddof=ddof)) / (x.size + y.size - 2))
    return float(diff / s)


def compare_methods(mdes: Mapping[str, Sequence[float]] = PAPER_RUN_MDES_M,
                    pairs: Sequence[tuple[str, str]] = PAPER_PAIRS, n_resamples: int = 9999, seed: int = 0,
                    alpha: float = 0.05) -> pd.DataFrame:
    """All tests of §10 for each (baseline, opponent) pair.

    Args:
        mdes: method name → per-run MDEs in metres.
        pairs: ``(baseline, opponent)`` names; H1 of the U test is "baseline MDE > opponent MDE".
        n_resamples, seed: for :func:`levene_permutation`.
        alpha: significance level for the ``significant`` column (U test).

    Returns:
        One row per pair: means and population SDs (m), Levene statistic / p, permutation p, U, one-sided p,
        ``significant``, and Cohen's d as ``cohens_d_baseline_sd`` (reference, pairs 1–5),
        ``cohens_d_pooled`` (textbook, ddof 1) and ``cohens_d_pooled_ddof0`` (reference, pair 6).
    """
    rows = []
    for base, opp in pairs:
        for name in (base, opp):
            if name not in mdes:
                raise KeyError(f"no MDEs for method {name!r}; have {sorted(mdes)}")
        a, b = _arr(mdes[base]), _arr(mdes[opp])
        lev = levene(a, b)
        perm = levene_permutation(a, b, n_resamples=n_resamples, seed=seed)
        mwu = mann_whitney_greater(a, b)
        rows.append({
            "baseline": base, "opponent": opp,
            "mean_baseline_m": float(a.mean()), "std_baseline_m": float(a.std()),
            "mean_opponent_m": float(b.mean()), "std_opponent_m": float(b.std()),
            "levene_statistic": lev.statistic, "levene_p": lev.pvalue, "levene_permutation_p": perm.pvalue,
            "mwu_u": mwu.statistic, "mwu_p": mwu.pvalue, "significant": bool(mwu.pvalue < alpha),
            "cohens_d_baseline_sd": cohens_d(a, b), "cohens_d_pooled": cohens_d(a, b, pooled=True, ddof=1),
            "cohens_d_pooled_ddof0": cohens_d(a, b, pooled=True, ddof=0),
        })
    return pd.DataFrame(rows)
