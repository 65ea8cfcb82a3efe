"""Metric arrays for the observed data and every bootstrap replicate at once.

Each function takes a ``Scored`` and a weight matrix ``W`` (R, P) over patients (row 0 = all ones for the
point estimate, see ``bootstrap.with_point``) and returns arrays with a leading replicate axis.
"""

from __future__ import annotations

import numpy as np

from cxrlab.auroc import (  # noqa: F401 - re-exported: the one definition lives in the base layer
    DEFAULT_EXCLUDE,
    MacroAuroc,
    binary_auroc,
    default_exclude,
    macro_auroc,
    macro_columns,
    per_class_auroc,
)
from cxrlab.errors import CxrlabError
from cxrlab.evaluate.matching import Scored
from cxrlab.evaluate.stats.bootstrap import per_patient_sums, stratified_patient_weights
from cxrlab.evaluate.stats.choose import MIN_PATIENTS, enough_patients
from cxrlab.evaluate.stats.ranking import auc_ap, replicate_blocks, weighted_auroc

SPECIFICITIES = (0.8, 0.9, 0.95)


def nanmean_rows(values: np.ndarray) -> np.ndarray:
    """Mean over axis 1 ignoring NaN; NaN (silently) where a row has no finite value, e.g. a bootstrap
    replicate in which every averaged class happens to be undefined."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    n = finite.sum(axis=1)
    total = np.where(finite, values, 0.0).sum(axis=1)
    return np.divide(total, n, out=np.full(len(values), np.nan), where=n > 0)


def class_auc_ap(s: Scored, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-class AUROC and AP: two (R, C) arrays; NaN where a class has one label value (multi-label: rows
    with an unknown label are left out of that class; multi-class: one-vs-rest)."""
    aucs = np.full((len(weights), len(s.classes)), np.nan)
    aps = np.full_like(aucs, np.nan)
    for c in range(len(s.classes)):
        known = ~np.isnan(s.y[:, c])
        aucs[:, c], aps[:, c] = auc_ap(s.p[known, c], s.y[known, c], s.patients[known], weights)
    return aucs, aps


def class_auroc(s: Scored, weights: np.ndarray) -> np.ndarray:
    """Per-class AUROC alone, (R, C): ``class_auc_ap(s, weights)[0]`` to the last bit, in a fraction of the time
    (``ranking.weighted_auroc``); what compare and study use, since they report no AP."""
    aucs = np.full((len(weights), len(s.classes)), np.nan)
    blocks = replicate_blocks(weights)  # transposed once for every class
    for c in range(len(s.classes)):
        known = ~np.isnan(s.y[:, c])
        aucs[:, c] = weighted_auroc(s.p[known, c], s.y[known, c], s.patients[known], blocks=blocks)
    return aucs


def averaged_classes(s: Scored, exclude: tuple[str, ...] | list[str]) -> tuple[list[int], list[str], list[str]]:
    """Indices of classes in the macro average, and the names excluded / undefined (one label value): the rule
    of ``cxrlab.auroc.macro_columns``, shared with training, ``cv`` and ``study``.

    A name in ``exclude`` that is not a scored class is an error (a typo would otherwise silently change nothing);
    the default ``No Finding`` is exempt, since most datasets do not have it."""
    unknown = [c for c in exclude if c not in s.classes and c not in DEFAULT_EXCLUDE]
    if unknown:
        raise CxrlabError(f"--exclude {', '.join(map(repr, unknown))}: not a scored class; "
                          f"choose among {', '.join(s.classes)} (\"\" for none)")
    cols = macro_columns(s.y, s.classes, exclude)  # the same rule as cxrlab.auroc.macro_auroc
    keep, excluded, undefined = cols.keep, cols.excluded, cols.undefined
    return keep, excluded, undefined


def bootstrap_weights(s: Scored, replicates: int, seed: int) -> np.ndarray:
    """(R+1, P) patient weights, row 0 all ones: the patient bootstrap stratified by each patient's rarest
    positive class (``stats.bootstrap.patient_strata``), so the macro's class set stays defined in every
    replicate; evaluate and compare use the same weights."""
    return stratified_patient_weights(s.y, s.patients, s.n_patients, replicates, seed)


def class_counts(s: Scored, i: int) -> tuple[int, int, int]:
    """(positive images, patients holding a positive image, patients holding a negative image) of class ``i``
    among its known labels."""
    known = ~np.isnan(s.y[:, i])
    y, patients = s.y[known, i] == 1, s.patients[known]
    return int(y.sum()), len(np.unique(patients[y])), len(np.unique(patients[~y]))


def headline_classes(s: Scored, keep: list[int], minimum: int = MIN_PATIENTS) -> tuple[list[int], list[str]]:
    """The classes of ``keep`` with at least ``minimum`` positive and negative patients (the headline macro's
    fixed class set), and the names of those left out for having fewer (flagged in every table)."""
    enough = [i for i in keep if enough_patients(*class_counts(s, i)[1:], minimum)]
    return enough, [s.classes[i] for i in keep if i not in enough]


def micro_auc(s: Scored, cols: list[int], weights: np.ndarray) -> np.ndarray:
    """AUROC of all (image, class) pairs of ``cols`` pooled into one list (sklearn ``average='micro'``)."""
    y = s.y[:, cols].ravel()
    p = s.p[:, cols].ravel()
    owner = np.repeat(s.patients, len(cols))
    known = ~np.isnan(y)
    return weighted_auroc(p[known], y[known], owner[known], weights)


def labelwise_accuracy(s: Scored, threshold: float = 0.5) -> float:
    """Fraction of all known (image, class) cells where (p >= threshold) equals the label: the seed paper's
    "accuracy". Dominated by the many negatives; reported only to contrast with proper metrics."""
    known = ~np.isnan(s.y)
    return float(((s.p >= threshold) == (s.y == 1))[known].mean())


def sensitivity_at_specificity(y: np.ndarray, p: np.ndarray, specificities=SPECIFICITIES) -> dict[str, float]:
    """Highest sensitivity among thresholds whose specificity is at least each value (test ROC curve)."""
    known = ~np.isnan(y)
    y, p = y[known].astype(bool), p[known]
    if y.all() or not y.any():
        return {str(x): float("nan") for x in specificities}
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(y, p)
    out = {}
    for x in specificities:
        ok = fpr <= 1 - x + 1e-12
        out[str(x)] = float(tpr[ok].max()) if ok.any() else 0.0
    return out


def binary_counts(s: Scored, thresholds: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(R, C, 4) weighted TP, FP, FN, TN per class at ``thresholds`` (C,)."""
    pred = s.p >= thresholds[None, :]
    known = ~np.isnan(s.y)
    pos = s.y == 1
    cells = np.stack([pred & pos, pred & ~pos & known, ~pred & pos, ~pred & ~pos & known], axis=2)  # (N, C, 4)
    per_patient = per_patient_sums(cells.reshape(len(s.y), -1), s.patients, s.n_patients)
    return (weights @ per_patient).reshape(len(weights), len(s.classes), 4)


def rates_from_counts(counts: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall (sensitivity), specificity and F1 from (..., 4) TP/FP/FN/TN counts."""
    tp, fp, fn, tn = np.moveaxis(counts, -1, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        recall = tp / (tp + fn)
        specificity = tn / (tn + fp)
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan)
    return {"precision": precision, "recall": recall, "specificity": specificity, "f1": f1}


def confusion(s: Scored, weights: np.ndarray) -> np.ndarray:
    """(R, K, K) weighted confusion matrices, rows = true class, columns = predicted (argmax)."""
    k = len(s.classes)
    true = np.nanargmax(s.y, axis=1)
    pred = np.argmax(s.p, axis=1)
    cells = np.zeros((len(true), k * k))
    cells[np.arange(len(true)), true * k + pred] = 1.0
    per_patient = per_patient_sums(cells, s.patients, s.n_patients)
    return (weights @ per_patient).reshape(len(weights), k, k)


def multiclass_from_confusion(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy, per-class precision/recall/F1, macro and weighted F1, balanced accuracy and Cohen's kappa
    from (R, K, K) confusion matrices; per-class arrays are (R, K), the rest (R,)."""
    total = cm.sum(axis=(1, 2))
    diag = np.diagonal(cm, axis1=1, axis2=2)
    true_n, pred_n = cm.sum(axis=2), cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(pred_n > 0, diag / pred_n, 0.0)
        recall = diag / true_n
        f1 = np.where(true_n + pred_n > 0, 2 * diag / (true_n + pred_n), np.nan)
        support = true_n / total[:, None]
        accuracy = diag.sum(1) / total
        expected = (true_n * pred_n).sum(1) / total**2
        kappa = (accuracy - expected) / (1 - expected)
    present = true_n > 0  # a class absent from a replicate is left out of its averages
    return {
        "accuracy": accuracy,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "macro_f1": _masked_mean(f1, present),
        "weighted_f1": np.nansum(np.where(present, f1 * support, 0.0), axis=1),
        "balanced_accuracy": _masked_mean(recall, present),
        "kappa": kappa,
    }


def _masked_mean(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(mask, np.nan_to_num(values), 0.0).sum(1) / mask.sum(1)


# ----------------------------------------------------------------------------- plain arrays (no bootstrap)
# binary_auroc, per_class_auroc and macro_auroc live in cxrlab.auroc (training uses them too); imported above.
