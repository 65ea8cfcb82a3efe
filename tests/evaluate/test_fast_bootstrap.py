"""The fast bootstrap AUROC (``ranking.weighted_auroc``) against the plain path: rebuild every resample (each
patient's images repeated as often as the patient was drawn) and score it with scikit-learn; and a seeded
``compare`` against an independent naive implementation of the stratified patient bootstrap."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from cxrlab.evaluate import metrics as m
from cxrlab.evaluate.compare import compare_runs
from cxrlab.evaluate.matching import Scored
from cxrlab.evaluate.stats.bootstrap import patient_weights, stratified_patient_weights, with_point
from cxrlab.evaluate.stats.ranking import auc_ap, weighted_auroc
from cxrlab.predictions import Predictions, read_predictions, write_predictions


def _resampled_auroc(s: np.ndarray, y: np.ndarray, owner: np.ndarray, w: np.ndarray) -> float:
    """AUROC of one replicate the plain way: materialise the resample, sort it afresh (sklearn)."""
    idx = np.repeat(np.arange(len(s)), w[owner].astype(int))
    ys = y[idx]
    return float("nan") if ys.all() or not ys.any() else float(roc_auc_score(ys, s[idx]))


@pytest.mark.parametrize("prevalence", [0.03, 0.3, 0.8])  # 0.8: the positives-majority side
@pytest.mark.parametrize("decimals", [1, 6])  # 1: heavy ties, also between positives and negatives
def test_weighted_auroc_equals_resample_and_sklearn(prevalence, decimals):
    rng = np.random.default_rng(int(prevalence * 100) + decimals)
    n, units = 400, 60
    owner = rng.integers(0, units, n)
    y = (rng.random(n) < prevalence).astype(int)
    s = np.round(rng.random(n) + 0.5 * y, decimals)
    w = with_point(patient_weights(units, 30, seed=decimals))
    fast = weighted_auroc(s, y, owner, w)
    plain = np.array([_resampled_auroc(s, y, owner, row) for row in w])
    np.testing.assert_allclose(fast, plain, rtol=0, atol=1e-12)
    assert np.array_equal(fast, auc_ap(s, y, owner, w)[0], equal_nan=True)  # the old path, to the last bit


def test_weighted_auroc_undefined_replicates_and_edge_cases():
    y = np.array([0, 1, 0, 1])
    s = np.array([0.2, 0.2, 0.2, 0.2])  # every pair tied
    assert weighted_auroc(s, y)[0] == 0.5
    w = np.array([[1.0, 0.0, 1.0, 0.0], [0.0, 2.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    out = weighted_auroc(np.array([0.1, 0.9, 0.3, 0.2]), y, None, w)
    assert np.isnan(out[0]) and np.isnan(out[1]) and out[2] == 0.75  # no positive / no negative weight: NaN
    assert np.isnan(weighted_auroc(np.array([0.1, 0.2]), np.array([1, 1]))[0])
    assert len(weighted_auroc(np.array([]), np.array([]), None, np.ones((3, 0)))) == 3


def test_weighted_auroc_blocks_of_replicates(monkeypatch):
    """More replicates than one block: the blocks join in order."""
    import cxrlab.evaluate.stats.ranking as ranking

    rng = np.random.default_rng(5)
    y, s, owner = rng.integers(0, 2, 200), rng.random(200), rng.integers(0, 40, 200)
    w = with_point(patient_weights(40, 23, seed=2))
    whole = weighted_auroc(s, y, owner, w)
    monkeypatch.setattr(ranking, "AUROC_CHUNK", 5)
    np.testing.assert_array_equal(weighted_auroc(s, y, owner, w), whole)


def test_class_auroc_equals_class_auc_ap_with_unknown_labels():
    rng = np.random.default_rng(1)
    n = 300
    y = (rng.random((n, 3)) < [0.1, 0.4, 0.7]).astype(float)
    y[rng.random((n, 3)) < 0.1] = np.nan
    p = np.round(rng.random((n, 3)), 2)
    patients = np.arange(n) // 3
    s = Scored([str(i) for i in range(n)], patients, y, p, ["a", "b", "c"], "multilabel", [], {})
    w = m.bootstrap_weights(s, 40, 0)
    assert np.array_equal(m.class_auroc(s, w), m.class_auc_ap(s, w)[0], equal_nan=True)


# ------------------------------------------------------------------ a seeded compare against a naive bootstrap
def _naive_weights(y: np.ndarray, names: list[str], replicates: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(codes, (R, P) counts): patients coded in sorted name order; each patient in the stratum of its rarest
    positive class (fewest positive patients; first such class on a tie), the patients without a positive in
    one more; every stratum (ascending) drawn with replacement to its size, one multinomial per replicate."""
    order = sorted(set(names))
    codes = np.array([order.index(x) for x in names])
    pos = np.array([[bool((y[codes == p, c] == 1).any()) for c in range(y.shape[1])] for p in range(len(order))])
    rarity = pos.sum(axis=0)
    strata = np.array([min(np.flatnonzero(row), key=lambda c: (rarity[c], c)) if row.any() else y.shape[1]
                       for row in pos])
    rng = np.random.default_rng(seed)
    counts = np.zeros((replicates, len(order)))
    for s in sorted(set(strata)):
        members = np.flatnonzero(strata == s)
        counts[:, members] = rng.multinomial(len(members), [1 / len(members)] * len(members), size=replicates)
    return codes, counts


def _naive_macro(p: np.ndarray, y: np.ndarray, codes: np.ndarray, counts: np.ndarray, cols: list[int]):
    """(R+1,) macro AUROC over ``cols``: the observed data, then each materialised resample (sklearn)."""
    ones = np.ones(counts.shape[1])
    return np.array([np.mean([_resampled_auroc(p[:, c], y[:, c], codes, w) for c in cols])
                     for w in [ones, *counts]])


def test_seeded_compare_equals_a_naive_bootstrap(ml_data, tmp_path):
    src = read_predictions(ml_data["test"])
    noisy = np.clip(src.probs + np.random.default_rng(9).normal(0, 0.3, src.probs.shape), 0.001, 0.999)
    paths = [write_predictions(tmp_path / f"{k}.csv", Predictions(src.image_ids, probs, src.classes,
                                                                  {"split": "test", "task": "multilabel"}))
             for k, probs in (("a", src.probs), ("b", noisy))]
    replicates, seed = 60, 4
    r = compare_runs(paths, labels=ml_data["index"], bootstrap=replicates, seed=seed, report=False).to_dict()
    cut, classes = ml_data["cut"], ml_data["classes"]
    y = ml_data["y"][:cut]
    names = [f"p{i // 3}" for i in range(cut)]
    codes, counts = _naive_weights(y, names, replicates, seed)
    cols = [classes.index(c) for c in r["macro_classes"]]
    assert r["macro_classes"] == ["Atelectasis", "Effusion", "Nodule"]  # 'No Finding' left out
    a, b = (_naive_macro(read_predictions(x).probs, y, codes, counts, cols) for x in paths)
    for row, values in zip(r["models"], (a, b)):
        assert row["macro_auroc"] == pytest.approx(values[0], abs=1e-12)
        np.testing.assert_allclose(row["macro_auroc_ci"], np.nanquantile(values[1:], [0.025, 0.975]), atol=1e-12)
    d = (a - b)[1:]
    test = next(t for t in r["tests"] if t["class"] == "macro" and t["metric"] == "auroc")
    assert test["p_value"] == pytest.approx(min(1, 2 * min(1 + (d <= 0).sum(), 1 + (d >= 0).sum()) / (len(d) + 1)))
    np.testing.assert_allclose(test["delta_ci"], np.nanquantile(d, [0.025, 0.975]), atol=1e-12)


def test_stratified_patient_weights_is_the_compare_bootstrap():
    rng = np.random.default_rng(0)
    y = (rng.random((90, 3)) < 0.2).astype(float)
    patients = np.arange(90) // 3
    s = Scored([str(i) for i in range(90)], patients, y, rng.random((90, 3)), ["a", "b", "c"], "multilabel", [], {})
    np.testing.assert_array_equal(m.bootstrap_weights(s, 25, 7), stratified_patient_weights(y, patients, 30, 25, 7))


@pytest.mark.parametrize("scale", [0.37, 2.0**22])  # fractional weights; counts too large for float32 sums
def test_weighted_auroc_float64_fallbacks(scale):
    """Integer counts with every replicate's total under 2^24 run in float32, exactly; anything else in float64."""
    rng = np.random.default_rng(8)
    y, s, owner = rng.integers(0, 2, 120), np.round(rng.random(120), 1), rng.integers(0, 30, 120)
    w = with_point(patient_weights(30, 6, seed=1)) * scale
    assert np.all(w == np.round(w)) == (scale > 1)
    np.testing.assert_allclose(weighted_auroc(s, y, owner, w), auc_ap(s, y, owner, w)[0], rtol=0, atol=1e-12)
