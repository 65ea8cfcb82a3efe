"""Fast DeLong against the textbook O(m n) definition and a published example; Holm's adjustment."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from cxrlab.evaluate.delong import delong_covariance, delong_test, holm_adjust


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
    assert delong_test(a, b, y)["p_value"] == pytest.approx(p_ref, abs=1e-8)


def slow_clustered(scores: np.ndarray, y: np.ndarray, clusters: np.ndarray) -> np.ndarray:
    """Obuchowski (1997) from the definition, one patient at a time (k x k covariance)."""
    pos, neg = scores[:, y == 1], scores[:, y == 0]
    m, n = pos.shape[1], neg.shape[1]
    psi = (pos[:, :, None] > neg[:, None, :]) + 0.5 * (pos[:, :, None] == neg[:, None, :])
    v10, v01 = psi.mean(axis=2), psi.mean(axis=1)
    aucs = v10.mean(axis=1)
    ids = sorted(set(clusters))
    a10 = np.array([[v10[j, clusters[y == 1] == i].sum() - (clusters[y == 1] == i).sum() * aucs[j] for i in ids]
                    for j in range(len(scores))])
    a01 = np.array([[v01[j, clusters[y == 0] == i].sum() - (clusters[y == 0] == i).sum() * aucs[j] for i in ids]
                    for j in range(len(scores))])
    big_i = len(ids)
    s10 = big_i / ((big_i - 1) * m) * a10 @ a10.T
    s01 = big_i / ((big_i - 1) * n) * a01 @ a01.T
    s11 = big_i / (big_i - 1) * a10 @ a01.T
    return s10 / m + s01 / n + (s11 + s11.T) / (m * n)


@pytest.mark.parametrize("seed", [0, 1])
def test_clustered_delong_matches_obuchowski_definition(seed):
    rng = np.random.default_rng(seed)
    clusters = rng.integers(0, 40, 160)  # 40 patients, about 4 images each, positives and negatives mixed
    y = (rng.random(160) < 0.3 + 0.4 * (clusters % 2)).astype(int)
    a = np.round(rng.random(160) + 0.6 * y + 0.1 * (clusters % 3), 2)
    b = np.round(0.5 * a + rng.random(160) * 0.8, 2)
    _, cov = delong_covariance(np.vstack([a, b]), y, clusters)
    np.testing.assert_allclose(cov, slow_clustered(np.vstack([a, b]), y, clusters), atol=1e-10)


def test_clustering_stops_duplicated_images_from_faking_precision():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 120)
    a, b = rng.random(120) + 0.8 * y, rng.random(120) + 0.5 * y
    patients = np.arange(120)
    single = delong_test(a, b, y, patients)
    twice = [np.r_[v, v] for v in (a, b, y, patients)]  # every patient imaged twice, identically
    naive, clustered = delong_test(*twice[:3]), delong_test(*twice)
    assert naive["se"] == pytest.approx(single["se"] / np.sqrt(2), rel=0.02)  # independent images: false precision
    assert clustered["se"] == pytest.approx(single["se"], rel=1e-9)
    assert clustered["p_value"] == pytest.approx(single["p_value"], rel=1e-9)
    _, plain = delong_covariance(np.vstack([a, b]), y)
    _, one_each = delong_covariance(np.vstack([a, b]), y, patients)
    np.testing.assert_allclose(one_each, plain, rtol=0.02)  # one image per patient: DeLong up to (I-1)/I factors


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
    assert t["delta"] == 0 and t["p_value"] == 1.0


def test_holm_adjustment_by_hand():
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> monotone 0.06
    np.testing.assert_allclose(holm_adjust([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    out = holm_adjust([0.5, np.nan, 0.6])
    assert np.isnan(out[1]) and out[0] == pytest.approx(1.0) and out[2] == pytest.approx(1.0)
