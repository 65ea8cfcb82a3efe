"""Fast DeLong against the textbook O(m n) definition, the clustered form against Obuchowski (1997) written
with plain loops, a published example; Holm's adjustment."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from cxrlab.evaluate.stats.delong import delong_covariance, delong_test
from cxrlab.evaluate.stats.multiple import holm_adjust


def slow_delong(scores: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong et al. (1988) from the definition: psi(x, y) = 1 if x > y, 1/2 if equal, 0 otherwise."""
    pos, neg = scores[:, y == 1], scores[:, y == 0]
    m, n = pos.shape[1], neg.shape[1]
    psi = (pos[:, :, None] > neg[:, None, :]) + 0.5 * (pos[:, :, None] == neg[:, None, :])  # (k, m, n)
    v10, v01 = psi.mean(axis=2), psi.mean(axis=1)  # structural components
    aucs = v10.mean(axis=1)
    k = len(scores)
    s10 = np.array([[np.sum((v10[a] - aucs[a]) * (v10[b] - aucs[b])) / (m - 1) for b in range(k)] for a in range(k)])
    s01 = np.array([[np.sum((v01[a] - aucs[a]) * (v01[b] - aucs[b])) / (n - 1) for b in range(k)] for a in range(k)])
    return aucs, s10 / m + s01 / n


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_delong_matches_definition(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 150)
    a = np.round(rng.random(150) + 0.6 * y, 2)  # ties on purpose
    b = np.round(0.5 * a + rng.random(150) * 0.8, 2)
    aucs, cov = delong_covariance(np.vstack([a, b]), y)
    ref_aucs, ref_cov = slow_delong(np.vstack([a, b]), y)
    np.testing.assert_allclose(aucs, ref_aucs, atol=1e-12)
    np.testing.assert_allclose(cov, ref_cov, atol=1e-8)
    var = ref_cov[0, 0] + ref_cov[1, 1] - 2 * ref_cov[0, 1]
    p_ref = 2 * norm.sf(abs(ref_aucs[0] - ref_aucs[1]) / np.sqrt(var))
    assert delong_test(a, b, y).p_value == pytest.approx(p_ref, abs=1e-8)


def obuchowski_reference(scores: np.ndarray, y: np.ndarray, clusters: np.ndarray) -> np.ndarray:
    """Obuchowski (1997), eqs. for S10, S01, S11, written as plain loops over patients and image pairs.

    psi(x, z) = 1 if x > z, 1/2 if equal, 0 otherwise. For patient i: V10_i = sum over its positive images x of
    (1/n) sum over all negative images z of psi(x, z); V01_i = sum over its negative images z of (1/m) sum over
    all positive images x of psi(x, z). I10 / I01: patients holding a positive / negative image; I: all.
    """
    k, total = scores.shape
    psi = lambda u, v: 1.0 if u > v else 0.5 if u == v else 0.0  # noqa: E731
    pos = [j for j in range(total) if y[j] == 1]
    neg = [j for j in range(total) if y[j] == 0]
    m, n = len(pos), len(neg)
    theta = [sum(psi(scores[r, x], scores[r, z]) for x in pos for z in neg) / (m * n) for r in range(k)]
    ids = sorted(set(clusters.tolist()))
    v10 = {(i, r): 0.0 for i in ids for r in range(k)}
    v01 = dict(v10)
    m_i = {i: sum(1 for x in pos if clusters[x] == i) for i in ids}
    n_i = {i: sum(1 for z in neg if clusters[z] == i) for i in ids}
    for r in range(k):
        for x in pos:
            v10[clusters[x], r] += sum(psi(scores[r, x], scores[r, z]) for z in neg) / n
        for z in neg:
            v01[clusters[z], r] += sum(psi(scores[r, x], scores[r, z]) for x in pos) / m
    i10 = sum(1 for i in ids if m_i[i] > 0)
    i01 = sum(1 for i in ids if n_i[i] > 0)
    big_i = len(ids)
    cov = np.zeros((k, k))
    for r in range(k):
        for s in range(k):
            s10 = s01 = s11 = s11t = 0.0
            for i in ids:
                a10r, a10s = v10[i, r] - m_i[i] * theta[r], v10[i, s] - m_i[i] * theta[s]
                a01r, a01s = v01[i, r] - n_i[i] * theta[r], v01[i, s] - n_i[i] * theta[s]
                s10 += a10r * a10s
                s01 += a01r * a01s
                s11 += a10r * a01s
                s11t += a10s * a01r
            s10 *= i10 / ((i10 - 1) * m)
            s01 *= i01 / ((i01 - 1) * n)
            s11 *= big_i / (big_i - 1)
            s11t *= big_i / (big_i - 1)
            cov[r, s] = s10 / m + s01 / n + (s11 + s11t) / (m * n)
    return cov


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_clustered_delong_matches_obuchowski_definition(seed):
    rng = np.random.default_rng(seed)
    clusters = rng.integers(0, 30, 100)  # 30 patients, about 3 images each, positives and negatives mixed
    y = (rng.random(100) < 0.15 + 0.5 * (clusters % 2)).astype(int)  # I10 != I01 != I
    a = np.round(rng.random(100) + 0.6 * y + 0.1 * (clusters % 3), 2)
    b = np.round(0.5 * a + rng.random(100) * 0.8, 2)
    assert len(set(clusters[y == 1])) != len(set(clusters[y == 0]))
    _, cov = delong_covariance(np.vstack([a, b]), y, clusters)
    np.testing.assert_allclose(cov, obuchowski_reference(np.vstack([a, b]), y, clusters), rtol=0, atol=1e-12)


def test_one_image_per_patient_is_plain_delong():
    rng = np.random.default_rng(4)
    y = (rng.random(80) < 0.2).astype(int)
    a, b = np.round(rng.random(80) + 0.7 * y, 2), rng.random(80) + 0.4 * y
    patients = rng.permutation(80) + 1000  # any ids, one image each
    _, plain = delong_covariance(np.vstack([a, b]), y)
    _, clustered = delong_covariance(np.vstack([a, b]), y, patients)
    np.testing.assert_allclose(clustered, plain, rtol=0, atol=1e-12)
    assert delong_test(a, b, y, patients).p_value == pytest.approx(delong_test(a, b, y).p_value, abs=1e-12)


def test_clustering_stops_duplicated_images_from_faking_precision():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 120)
    a, b = rng.random(120) + 0.8 * y, rng.random(120) + 0.5 * y
    patients = np.arange(120)
    single = delong_test(a, b, y, patients)
    twice = [np.r_[v, v] for v in (a, b, y, patients)]  # every patient imaged twice, identically
    naive, clustered = delong_test(*twice[:3]), delong_test(*twice)
    assert naive.se == pytest.approx(single.se / np.sqrt(2), rel=0.02)  # independent images: false precision
    assert clustered.se == pytest.approx(single.se, rel=1e-9)
    assert clustered.p_value == pytest.approx(single.p_value, rel=1e-9)


def test_hanley_mcneil_1982_example():
    """Hanley & McNeil (1982), Table 1: 58 normal and 51 abnormal CT scans rated 1-5. Published AUROC 0.893,
    standard error 0.032 by their exponential approximation (DeLong's non-parametric estimate is close)."""
    normal = np.repeat([1, 2, 3, 4, 5], [33, 6, 6, 11, 2])
    abnormal = np.repeat([1, 2, 3, 4, 5], [3, 2, 2, 11, 33])
    aucs, cov = delong_covariance(np.r_[normal, abnormal], np.r_[np.zeros(58), np.ones(51)])
    assert aucs[0] == pytest.approx(0.893, abs=5e-4)
    assert np.sqrt(cov[0, 0]) == pytest.approx(0.032, abs=0.002)


def test_identical_models_give_p_one():
    rng = np.random.default_rng(0)
    y, s = rng.integers(0, 2, 50), rng.random(50)
    t = delong_test(s, s, y)
    assert t.delta == 0 and t.p_value == 1.0


def test_holm_adjustment_by_hand():
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> monotone 0.06
    np.testing.assert_allclose(holm_adjust([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    out = holm_adjust([0.5, np.nan, 0.6])
    assert np.isnan(out[1]) and out[0] == pytest.approx(1.0) and out[2] == pytest.approx(1.0)
