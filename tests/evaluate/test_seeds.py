"""The two-level (patients x seeds) bootstrap of ``cxrlab.evaluate.stats.seeds``: checked against a naive loop that
resamples raw scores and recomputes AUROC with scikit-learn, and by simulation (CI coverage, null rejection)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from cxrlab.evaluate.stats.bootstrap import patient_weights, with_point
from cxrlab.evaluate.stats.seeds import seed_mean, seed_mean_difference


def _naive(scores_a, scores_b, y, counts, seed, level=0.95):
    """Loop over replicates: rebuild the resampled images, score every drawn seed with sklearn, average."""
    rng = np.random.default_rng(seed)
    reps = len(counts)
    draws_a = rng.integers(0, len(scores_a), size=(reps, len(scores_a)))
    draws_b = rng.integers(0, len(scores_b), size=(reps, len(scores_b)))
    observed = (np.mean([roc_auc_score(y, s) for s in scores_a]) - np.mean([roc_auc_score(y, s) for s in scores_b]))
    deltas = []
    for r in range(reps):
        rows = np.repeat(np.arange(len(y)), counts[r].astype(int))  # one image per patient here
        if len(np.unique(y[rows])) < 2:
            continue
        mean_a = np.mean([roc_auc_score(y[rows], scores_a[s][rows]) for s in draws_a[r]])
        mean_b = np.mean([roc_auc_score(y[rows], scores_b[s][rows]) for s in draws_b[r]])
        deltas.append(mean_a - mean_b)
    deltas = np.array(deltas)
    extreme = sum(1 for d in deltas if abs(d - observed) >= abs(observed))
    lo, hi = np.percentile(deltas, [2.5, 97.5])
    return observed, (lo, hi), (1 + extreme) / (len(deltas) + 1)


def test_matches_a_naive_loop_on_auroc():
    from cxrlab.evaluate.stats.ranking import auc_ap

    rng = np.random.default_rng(0)
    n, reps = 60, 80
    y = (rng.random(n) < 0.4).astype(float)
    scores_a = [y * 0.8 + rng.normal(0, 1, n) for _ in range(4)]  # four seeds
    scores_b = [y * 0.5 + rng.normal(0, 1, n) for _ in range(3)]  # three seeds
    counts = patient_weights(n, reps, seed=5)
    weights = with_point(counts)
    patients = np.arange(n)
    a = np.stack([auc_ap(s, y, patients, weights)[0] for s in scores_a])  # (S, R+1), the study's arrays
    b = np.stack([auc_ap(s, y, patients, weights)[0] for s in scores_b])
    ours = seed_mean_difference(a, b, seed=11)
    delta, ci, p = _naive(scores_a, scores_b, y, counts, seed=11)
    assert ours.estimate == pytest.approx(delta, abs=1e-12)
    assert ours.ci == pytest.approx(ci, abs=1e-12)
    assert ours.p_value == pytest.approx(p, abs=1e-12) and ours.replicates == reps


def _arm(rng, mu, shared, seeds):
    per_arm = rng.normal(0, 0.1, len(shared))
    seed_effect = rng.normal(0, 0.01, (seeds, 1))
    return mu + seed_effect + shared + per_arm + rng.normal(0, 0.05, (seeds, len(shared)))


def _simulate(n_sims, delta, seed, seeds=5, patients=100, reps=300):
    """Per-patient values = arm effect + seed effect + patient effect (shared) + arm-by-patient effect (shared
    by the arm's seeds) + seed-by-patient noise; the metric is the patient mean. Truth: ``delta``."""
    rng = np.random.default_rng(seed)
    covered = rejected = 0
    for i in range(n_sims):
        shared = rng.normal(0, 0.3, patients)
        xa, xb = _arm(rng, delta, shared, seeds), _arm(rng, 0.0, shared, seeds)
        w = with_point(patient_weights(patients, reps, seed=int(rng.integers(1 << 30))))
        res = seed_mean_difference(xa @ w.T / w.sum(1), xb @ w.T / w.sum(1), seed=i)
        covered += res.ci[0] <= delta <= res.ci[1]
        rejected += res.p_value < 0.05
    return covered / n_sims, rejected / n_sims


def test_simulation_coverage_and_null_rejection():
    coverage, _ = _simulate(300, delta=0.01, seed=0)
    _, rejection = _simulate(300, delta=0.0, seed=1)
    assert 0.92 <= coverage <= 0.98, coverage
    assert 0.02 <= rejection <= 0.08, rejection


def test_seed_mean_and_edge_cases():
    a = np.array([[0.7, 0.69, 0.72], [0.8, 0.79, 0.81]])  # two seeds, two replicates
    res = seed_mean(a, seed=0)
    assert res.estimate == pytest.approx(0.75) and res.p_value is None and res.replicates == 2
    assert 0.69 <= res.ci[0] <= res.ci[1] <= 0.81
    same = seed_mean_difference(a, a.copy(), seed=0)
    assert same.estimate == 0.0 and same.p_value == pytest.approx(1.0)  # |d* - 0| >= 0 always
    nan = seed_mean_difference(np.full((2, 3), np.nan), a, seed=0)
    assert np.isnan(nan.estimate) and nan.p_value is None and nan.replicates == 0
    with pytest.raises(ValueError, match="patient resamples"):
        seed_mean_difference(a, a[:, :2])
