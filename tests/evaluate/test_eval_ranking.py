"""Weighted AUROC/AP against scikit-learn, and the patient-level bootstrap."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from cxrlab.evaluate.stats.bootstrap import patient_weights, percentile_ci, with_point
from cxrlab.evaluate.stats.ranking import auc_ap


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_ap_match_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 300)
    s = np.round(rng.random(300) + 0.4 * y, 1)  # rounding makes many ties
    auc, ap = auc_ap(s, y)
    assert auc[0] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert ap[0] == pytest.approx(average_precision_score(y, s), abs=1e-12)


def test_auc_ap_weighted_rows_match_sklearn_sample_weight():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 80)
    s = np.round(rng.random(80), 2)
    owner = rng.integers(0, 20, 80)  # 20 patients
    w = patient_weights(20, 5, seed=1)
    auc, ap = auc_ap(s, y, owner, w)
    for r in range(5):
        sw = w[r, owner]
        assert auc[r] == pytest.approx(roc_auc_score(y, s, sample_weight=sw), abs=1e-12)
        assert ap[r] == pytest.approx(average_precision_score(y, s, sample_weight=sw), abs=1e-12)


def test_single_label_value_is_nan():
    auc, ap = auc_ap(np.array([0.1, 0.2, 0.3]), np.array([0, 0, 0]))
    assert np.isnan(auc[0]) and np.isnan(ap[0])


def test_bootstrap_is_deterministic_and_seeded():
    a, b, c = patient_weights(50, 100, seed=7), patient_weights(50, 100, seed=7), patient_weights(50, 100, seed=8)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert (a.sum(axis=1) == 50).all()  # each replicate draws as many patients as there are


def test_bootstrap_resamples_patients_not_images():
    """Ten identical images per patient must give exactly the intervals of one image per patient: the
    patient's images move together. An image-level bootstrap would give narrower intervals."""
    rng = np.random.default_rng(0)
    y1 = np.array([0, 1] * 15)
    s1 = rng.random(30) + 0.5 * y1
    w = with_point(patient_weights(30, 400, seed=0))
    single = percentile_ci(auc_ap(s1, y1, np.arange(30), w)[0][1:])
    y10, s10, owner = np.repeat(y1, 10), np.repeat(s1, 10), np.repeat(np.arange(30), 10)
    clustered = percentile_ci(auc_ap(s10, y10, owner, w)[0][1:])
    np.testing.assert_allclose(clustered, single, atol=1e-12)
    per_image = percentile_ci(auc_ap(s10, y10, np.arange(300), with_point(patient_weights(300, 400, 0)))[0][1:])
    assert per_image[1] - per_image[0] < 0.6 * (single[1] - single[0])
