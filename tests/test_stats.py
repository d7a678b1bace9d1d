"""Significance tests of §10 on the paper's five-run MDEs."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats as sps

from ssl4sar.stats import (
    PAPER_PAIRS,
    PAPER_RUN_MDES_M,
    cohens_d,
    compare_methods,
    levene,
    levene_permutation,
    mann_whitney_greater,
)


def _all_splits(a, b):
    """Every assignment of the pooled values to two groups of the original sizes (exact permutation null)."""
    pooled = np.concatenate([a, b])
    idx = np.arange(pooled.size)
    for first in itertools.combinations(idx, len(a)):
        mask = np.zeros(pooled.size, bool)
        mask[list(first)] = True
        yield pooled[mask], pooled[~mask]


def test_paper_data_shape():
    assert set(PAPER_RUN_MDES_M) == {"HookFormer", "TYRION", "OptSimMIM", "OptTranslator"}
    assert all(len(v) == 5 for v in PAPER_RUN_MDES_M.values())
    assert {n for pair in PAPER_PAIRS for n in pair} == set(PAPER_RUN_MDES_M)
    # the means the spec quotes (§10, §13): 360.5, 342.3, 300.4, 293.2 m
    means = {k: np.mean(v) for k, v in PAPER_RUN_MDES_M.items()}
    assert [round(means[k], 1) for k in ("HookFormer", "TYRION", "OptSimMIM", "OptTranslator")] == \
        [360.5, 342.3, 300.4, 293.2]


@pytest.mark.parametrize(("base", "opp", "u", "p"), [
    ("HookFormer", "TYRION", 18, 0.155), ("TYRION", "OptTranslator", 20, 0.0754),
    ("TYRION", "OptSimMIM", 20, 0.0754), ("HookFormer", "OptSimMIM", 20, 0.0754),
    ("HookFormer", "OptTranslator", 20, 0.0754), ("OptSimMIM", "OptTranslator", 15, 0.345),
])
def test_mann_whitney_reproduces_spec_values_exactly(base, opp, u, p):
    a, b = np.array(PAPER_RUN_MDES_M[base]), np.array(PAPER_RUN_MDES_M[opp])
    r = mann_whitney_greater(a, b)
    assert r.statistic == u
    assert r.pvalue == pytest.approx(p, abs=5e-4)
    # exact one-sided p by enumerating the 252 splits: P(U >= u_obs)
    null = [sps.mannwhitneyu(x, y).statistic for x, y in _all_splits(a, b)]
    assert r.pvalue == pytest.approx(np.mean(np.array(null) >= r.statistic), rel=1e-9)


def test_levene_and_its_permutation_test():
    a, b = PAPER_RUN_MDES_M["HookFormer"], PAPER_RUN_MDES_M["OptTranslator"]
    lev = levene(a, b)
    ref = sps.levene(a, b)
    assert lev.statistic == pytest.approx(ref.statistic) and lev.pvalue == pytest.approx(ref.pvalue)
    perm = levene_permutation(a, b, seed=3)
    null = np.array([sps.levene(x, y).statistic for x, y in _all_splits(np.array(a), np.array(b))])
    exact = np.mean(null >= lev.statistic * (1 - 1e-12))
    assert perm.pvalue == pytest.approx(exact, rel=1e-9)  # 9999 resamples > 252 splits → exact
    # a randomized test (fewer resamples than splits) is reproducible by seed
    r1 = levene_permutation(a, b, n_resamples=99, seed=7)
    r2 = levene_permutation(a, b, n_resamples=99, seed=7)
    assert r1.pvalue == r2.pvalue


def test_cohens_d_formulas():
    a, b = np.array(PAPER_RUN_MDES_M["HookFormer"]), np.array(PAPER_RUN_MDES_M["TYRION"])
    assert cohens_d(a, b) == pytest.approx((a.mean() - b.mean()) / a.std(ddof=0))
    s1 = np.sqrt((4 * a.var(ddof=1) + 4 * b.var(ddof=1)) / 8)
    assert cohens_d(a, b, pooled=True) == pytest.approx((a.mean() - b.mean()) / s1)
    s0 = np.sqrt((4 * a.var(ddof=0) + 4 * b.var(ddof=0)) / 8)
    assert cohens_d(a, b, pooled=True, ddof=0) == pytest.approx((a.mean() - b.mean()) / s0)
    assert cohens_d(b, a) < 0
    with pytest.raises(ValueError):
        cohens_d([1.0], [2.0, 3.0])


def test_compare_methods_reproduces_the_reference_effect_sizes():
    df = compare_methods(n_resamples=999)
    assert list(zip(df["baseline"], df["opponent"])) == list(PAPER_PAIRS)
    # the spec's d values: baseline-SD version for pairs 1-5, pooled ddof-0 version for pair 6
    reported = list(df["cohens_d_baseline_sd"][:5]) + [df["cohens_d_pooled_ddof0"].iloc[5]]
    assert [round(d, 2) for d in reported] == [1.44, 1.96, 1.67, 4.78, 5.36, 0.13]
    assert not df["significant"].any()  # no pair reaches p < 0.05 with 5 vs 5 runs
    assert (df["mwu_p"] >= 0.0754 - 5e-4).all()
    with pytest.raises(KeyError):
        compare_methods({"A": [1, 2, 3]}, pairs=[("A", "B")])
