"""Every metric against scikit-learn on random data; thresholds and temperature scaling."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from cxrlab.evaluate.calibration import apply_temperature, ece, fit_temperature
from cxrlab.evaluate.evaluate import evaluate_predictions
from cxrlab.evaluate.thresholds import choose_thresholds


def test_multilabel_metrics_match_sklearn(ml_data):
    r = evaluate_predictions(ml_data["test"], ml_data["index"], bootstrap=20)
    cut = ml_data["cut"]
    y, p = ml_data["y"][:cut], ml_data["p"][:cut]
    for i, c in enumerate(ml_data["classes"]):
        assert r["per_class"][c]["auroc"] == pytest.approx(skm.roc_auc_score(y[:, i], p[:, i]), abs=1e-12)
        assert r["per_class"][c]["auprc"] == pytest.approx(skm.average_precision_score(y[:, i], p[:, i]), abs=1e-12)
    f = [0, 1, 2]  # No Finding excluded from the averages by default
    assert r["macro"]["classes"] == ["Atelectasis", "Effusion", "Nodule"]
    assert r["macro"]["auroc"] == pytest.approx(skm.roc_auc_score(y[:, f], p[:, f], average="macro"), abs=1e-12)
    assert r["micro"]["auroc"] == pytest.approx(skm.roc_auc_score(y[:, f], p[:, f], average="micro"), abs=1e-12)
    assert r["weighted"]["auroc"] == pytest.approx(skm.roc_auc_score(y[:, f], p[:, f], average="weighted"), abs=1e-12)
    assert r["seed_paper"]["flattened_auroc"] == pytest.approx(skm.roc_auc_score(y.ravel(), p.ravel()), abs=1e-12)
    assert r["seed_paper"]["labelwise_accuracy"] == pytest.approx(((p >= 0.5) == (y == 1)).mean())
    lo, hi = r["macro"]["auroc_ci"]
    assert lo < r["macro"]["auroc"] < hi


def test_multiclass_metrics_match_sklearn(mc_data):
    r = evaluate_predictions(mc_data["test"], mc_data["index"], bootstrap=20)
    cut = mc_data["cut"]
    true, p = mc_data["y"][:cut].argmax(1), mc_data["p"][:cut]
    pred = p.argmax(1)
    assert r["accuracy"] == pytest.approx(skm.accuracy_score(true, pred))
    assert r["macro"]["f1"] == pytest.approx(skm.f1_score(true, pred, average="macro"))
    assert r["weighted_f1"] == pytest.approx(skm.f1_score(true, pred, average="weighted"))
    assert r["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(true, pred))
    assert r["kappa"] == pytest.approx(skm.cohen_kappa_score(true, pred))
    assert r["confusion_matrix"]["counts"] == skm.confusion_matrix(true, pred).tolist()
    f1 = skm.f1_score(true, pred, average=None)
    for i, c in enumerate(mc_data["classes"]):
        assert r["per_class"][c]["f1"] == pytest.approx(f1[i])
        assert r["per_class"][c]["auroc_ovr"] == pytest.approx(skm.roc_auc_score(true == i, p[:, i]))
    assert r["macro"]["auroc_ovr"] == pytest.approx(skm.roc_auc_score(true, p, multi_class="ovr"))


def test_thresholds_are_chosen_on_validation_and_applied_to_test(ml_data):
    r = evaluate_predictions(ml_data["test"], ml_data["index"], val_predictions=ml_data["val"], bootstrap=0,
                             threshold_method="max_f1")
    cut = ml_data["cut"]
    vy, vp = ml_data["y"][cut:], ml_data["p"][cut:]
    thr = choose_thresholds(vy, vp, "max_f1")
    y, p = ml_data["y"][:cut], ml_data["p"][:cut]
    for i, c in enumerate(ml_data["classes"]):
        row = r["thresholds"]["per_class"][c]
        assert row["threshold"] == pytest.approx(thr[i])
        assert row["f1"] == pytest.approx(skm.f1_score(y[:, i], p[:, i] >= thr[i]))
    assert r["thresholds"]["chosen_on"] == "validation"


def test_threshold_methods_reach_their_targets():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, (400, 1)).astype(float)
    p = 1 / (1 + np.exp(-(2 * y - 1 + rng.normal(size=y.shape))))
    t_sens = choose_thresholds(y, p, "sens:0.9")[0]
    t_spec = choose_thresholds(y, p, "spec:0.8")[0]
    assert ((p[:, 0] >= t_sens) & (y[:, 0] == 1)).sum() / y.sum() >= 0.9
    assert ((p[:, 0] < t_spec) & (y[:, 0] == 0)).sum() / (1 - y).sum() >= 0.8
    fpr, tpr, thr = skm.roc_curve(y[:, 0], p[:, 0])
    assert choose_thresholds(y, p, "youden")[0] == pytest.approx(thr[np.argmax(tpr - fpr)])


def test_temperature_scaling_recovers_overconfidence():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 2, (4000, 2))
    y = (rng.random(z.shape) < 1 / (1 + np.exp(-z))).astype(float)
    overconfident = 1 / (1 + np.exp(-2 * z))  # logits doubled: T should come out near 2
    t = fit_temperature(y, overconfident, "multilabel")
    np.testing.assert_allclose(t, 2.0, atol=0.25)
    fixed = apply_temperature(overconfident, t, "multilabel")
    assert ece(y[:, 0], fixed[:, 0]) < ece(y[:, 0], overconfident[:, 0])


def test_array_macro_auroc_matches_sklearn_and_bootstrap_path():
    from sklearn.metrics import roc_auc_score

    from cxrlab.evaluate.metrics import binary_auroc, macro_auroc, per_class_auroc

    rng = np.random.default_rng(3)
    y = (rng.random((80, 3)) < 0.4).astype(float)
    p = np.round(rng.random((80, 3)), 1)  # ties on purpose
    y[:5, 0] = np.nan  # unknown labels are masked
    y[:, 2] = 0.0  # single-valued class: skipped, not averaged as 0.5
    known = ~np.isnan(y[:, 0])
    assert binary_auroc(y[:, 0], p[:, 0]) == pytest.approx(roc_auc_score(y[known, 0], p[known, 0]), abs=1e-12)
    per = per_class_auroc(y, p)
    assert np.isnan(per[2]) and per[1] == pytest.approx(roc_auc_score(y[:, 1], p[:, 1]), abs=1e-12)
    macro = macro_auroc(y, p, ["A", "B", "C"])
    assert macro.value == pytest.approx(np.mean(per[:2]), abs=1e-12)
    assert macro.classes == ["A", "B"] and macro.undefined == ["C"]
    assert macro_auroc(y, p, ["A", "No Finding", "C"]).classes == ["A"]  # excluded by name, by default
    assert macro_auroc(y, p, ["A", "No Finding", "C"], exclude=()).classes == ["A", "No Finding"]
    empty = macro_auroc(np.zeros((4, 1)), np.ones((4, 1)), ["A"])
    assert np.isnan(empty.value) and not empty.defined and empty.classes == []
