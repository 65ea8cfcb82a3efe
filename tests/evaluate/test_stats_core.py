"""The statistics core against independent implementations: the permutation test against full enumeration of
patient swaps, BCa against scipy, the bootstrap test's Monte Carlo floor, stratification, the fixed macro."""

from __future__ import annotations

from itertools import product

import numpy as np
import pytest
from scipy.stats import bootstrap, rankdata
from sklearn.metrics import roc_auc_score

from cxrlab.evaluate.pairwise import fmt_p
from cxrlab.evaluate.stats.bootstrap import (
    bca_ci,
    bootstrap_metric,
    bootstrap_test,
    fixed_macro,
    patient_strata,
    stratified_weights,
    undefined_replicates,
)
from cxrlab.evaluate.stats.permutation import permutation_test


def exact_permutation_p(a, b, y, patients) -> float:
    """Bandos et al. (2005) by full enumeration: every subset of patients swapped, ranks as scores."""
    ra, rb = rankdata(a), rankdata(b)
    ids = np.unique(patients)
    observed = abs(roc_auc_score(y, ra) - roc_auc_score(y, rb))
    flips = np.array(list(product([False, True], repeat=len(ids))))  # (2^P, P): every swap pattern
    swap = flips[:, np.searchsorted(ids, patients)]  # (2^P, N)
    pos, neg = y == 1, y == 0

    def auc(v):  # AUROC as the fraction of (positive, negative) pairs ranked right, ties 1/2
        d = v[:, pos][:, :, None] - v[:, neg][:, None, :]
        return ((d > 0) + 0.5 * (d == 0)).mean(axis=(1, 2))

    delta = auc(np.where(swap, rb, ra)) - auc(np.where(swap, ra, rb))
    return float(np.mean(np.abs(delta) >= observed - 1e-12))


@pytest.mark.parametrize("seed", [0, 1])
def test_permutation_test_matches_full_enumeration(seed):
    rng = np.random.default_rng(seed)
    patients = np.repeat(np.arange(10), 2)  # 10 patients x 2 images: 1,024 swap patterns
    y = (patients < 4).astype(int)
    a = y * 0.8 + rng.normal(size=20) + 0.5 * rng.normal(size=10)[patients]
    b = y * 0.3 + rng.normal(size=20) * 3  # another scale: the rank transform makes the swap meaningful
    exact = exact_permutation_p(a, b, y, patients)
    t = permutation_test(a, b, y, patients, permutations=4000, seed=seed)
    assert t.p_value == pytest.approx(exact, abs=3 * np.sqrt(exact * (1 - exact) / 4000) + 1e-3)
    assert t.p_floor == pytest.approx(1 / 4001) and t.n_pos_patients == 4 and t.n_pos_images == 8
    assert permutation_test(a, b, y, patients, 4000, seed).p_value == t.p_value  # seeded


def test_permutation_p_never_below_its_floor():
    y = np.r_[np.ones(40), np.zeros(40)].astype(int)
    perfect, useless = y + 0.0, np.random.default_rng(0).random(80)
    t = permutation_test(perfect, useless, y, np.arange(80), permutations=99)
    assert t.p_value == pytest.approx(1 / 100) and fmt_p(t.p_value, t.p_floor) == "<=0.01"
    same = permutation_test(useless, useless, y, np.arange(80), permutations=99)
    assert same.p_value == 1.0


def test_bootstrap_test_is_monte_carlo_and_floored():
    p, floor = bootstrap_test(np.full(999, 0.02))  # every replicate favours a
    assert p == pytest.approx(2 / 1000) and floor == pytest.approx(2 / 1000)
    assert fmt_p(p, floor) == "<=0.002"  # never 6e-25
    assert bootstrap_test(np.zeros(50))[0] == 1.0
    p, _ = bootstrap_test(np.r_[np.full(30, -1.0), np.full(70, 1.0)])
    assert p == pytest.approx(2 * 31 / 101)


def test_bca_matches_scipy():
    rng = np.random.default_rng(0)
    x = rng.exponential(size=60)  # skewed: BCa differs from the percentile interval
    reps = x[rng.integers(0, 60, (40000, 60))].mean(axis=1)
    jack = (x.sum() - x) / 59
    ours = bca_ci(x.mean(), reps, jack)
    ref = bootstrap((x,), np.mean, n_resamples=40000, method="BCa", random_state=1).confidence_interval
    np.testing.assert_allclose(ours, [ref.low, ref.high], atol=0.01)


def test_stratification_keeps_every_class_positive():
    y = np.zeros((12, 2))
    y[0, 0] = 1  # class 0: one positive patient (the rarest), who is also positive for class 1
    y[[0, 3, 6], 1] = 1
    patients = np.arange(12) // 1
    strata = patient_strata(y, patients, 12)
    assert strata[0] == 0 and strata[3] == strata[6] == 1 and (strata[[1, 2, 4, 5]] == 2).all()
    w = stratified_weights(strata, 500, seed=0)
    assert (w[:, strata == 0].sum(1) == 1).all() and (w[:, strata == 1].sum(1) == 2).all()
    assert (w.sum(1) == 12).all()


def test_fixed_macro_counts_instead_of_changing_its_class_set():
    values = np.array([[0.8, 0.6], [0.7, np.nan], [0.9, 0.5]])
    macro = fixed_macro(values)
    assert macro[0] == pytest.approx(0.7) and np.isnan(macro[1]) and undefined_replicates(macro) == 1
    metric = bootstrap_metric(macro, ("A", "B"))  # row 0 observed, rows 1.. replicates
    assert metric.value == pytest.approx(0.7) and metric.n_undefined_replicates == 1 and metric.replicates == 2
    assert metric.ci == pytest.approx((0.7, 0.7)) and metric.classes == ("A", "B")
