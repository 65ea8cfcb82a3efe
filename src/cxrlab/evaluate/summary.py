"""Build the typed results of an evaluation (``stats.evaluation``) from metric arrays (row 0 = observed, rows 1..
= bootstrap); their ``to_dict()`` are the ``metrics.json`` blocks."""

from __future__ import annotations

import warnings

import numpy as np

from cxrlab.errors import CxrlabError
from cxrlab.evaluate import calibration as cal
from cxrlab.evaluate import metrics as m
from cxrlab.evaluate.matching import Scored
from cxrlab.evaluate.stats.bootstrap import bootstrap_metric, fixed_macro, percentile_ci, undefined_replicates
from cxrlab.evaluate.stats.choose import MIN_PATIENTS
from cxrlab.evaluate.stats.evaluation import (
    Calibration,
    ClassCalibration,
    ClassResult,
    ClassThreshold,
    MacroResult,
    MulticlassClassResult,
    MulticlassResults,
    MultilabelResults,
    SeedPaper,
    Thresholds,
    TopLabelCalibration,
    metric,
)
from cxrlab.evaluate.stats.results import Metric
from cxrlab.evaluate.thresholds import choose_thresholds


def est(values: np.ndarray) -> tuple[float | list, list]:
    """(point, [low, high]) from an array whose row 0 is the observed value and rows 1.. are replicates."""
    values = np.asarray(values, dtype=np.float64)
    ci = percentile_ci(values[1:])
    return _clean(values[0]), _clean(np.moveaxis(ci, 0, -1))


def _clean(x: np.ndarray | float) -> float | list | None:
    """JSON-friendly: NaN becomes None."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 0:
        return None if not np.isfinite(arr) else float(arr)
    return [_clean(v) for v in arr]


def multilabel_block(
    s: Scored, weights: np.ndarray, exclude: tuple[str, ...], val: Scored | None, method: str,
    minimum: int = MIN_PATIENTS, seed_paper: bool = True,
) -> MultilabelResults:
    """Per-class, macro, micro and prevalence-weighted metrics, thresholds and the seed paper's numbers.

    The macro is the one definition (``cxrlab.auroc.macro_auroc``: every class with both label values, minus
    ``exclude``), the number training selects checkpoints on. Classes with fewer than ``minimum`` positive or
    negative patients get no interval and are ``flagged``; ``macro.powered`` is the macro over the others alone.
    Subgroup tables pass 0 (they have their own ``min_group`` rule) and no ``seed_paper``."""
    keep, excluded, undefined = m.averaged_classes(s, exclude)
    if len(undefined) == len(s.classes):
        raise CxrlabError(f"no scored class has both positive and negative labels among the {len(s.y)} scored "
                          "images, so AUROC is undefined for all; score more images")
    powered, flagged = m.headline_classes(s, keep, minimum)
    aucs, aps = m.class_auc_ap(s, weights)  # (R+1, C)
    per_class = {c: _class_result(s, i, aucs, aps, minimum, c not in undefined, i in keep)
                 for i, c in enumerate(s.classes)}
    with np.errstate(invalid="ignore"):
        macro_auc, macro_ap = fixed_macro(aucs[:, keep]), fixed_macro(aps[:, keep])
    n_pos = np.array([per_class[s.classes[i]].n_positive for i in keep], dtype=float)
    weighted = (aucs[:, keep] * n_pos).sum(1) / n_pos.sum() if keep else np.full(len(aucs), np.nan)
    names = [s.classes[i] for i in keep]
    macro = MacroResult(
        auroc=_metric(macro_auc), auprc=_metric(macro_ap), classes=tuple(names), excluded=tuple(excluded),
        undefined=tuple(undefined), flagged=tuple(flagged), min_patients=minimum,
        n_undefined_replicates=bootstrap_metric(macro_auc, tuple(names)).n_undefined_replicates,
        powered=_powered(aucs, powered, s.classes))
    paper = SeedPaper(labelwise_accuracy=m.labelwise_accuracy(s),
                      flattened_auroc=_clean(m.micro_auc(s, list(range(len(s.classes))), weights[:1])[0]),
                      classes=tuple(s.classes))
    return MultilabelResults(
        per_class=per_class, macro=macro,
        micro=_metric(m.micro_auc(s, keep, weights) if keep else weighted * np.nan, names),
        weighted=_metric(weighted, names), thresholds=threshold_block(s, weights, val, method, keep),
        calibration=calibration_block(s, val), seed_paper=paper if seed_paper else None)


def _class_result(s: Scored, i: int, aucs: np.ndarray, aps: np.ndarray, minimum: int, defined: bool,
                  in_macro: bool) -> ClassResult:
    known = ~np.isnan(s.y[:, i])
    n_pos, n_pos_patients, n_neg_patients = m.class_counts(s, i)
    enough = min(n_pos_patients, n_neg_patients) >= minimum
    auc, ap = _metric(aucs[:, i]), _metric(aps[:, i])
    return ClassResult(
        auroc=auc if enough else metric(auc.value, None), auprc=ap if enough else metric(ap.value, None),
        prevalence=n_pos / max(int(known.sum()), 1), n_positive=n_pos, n_positive_patients=n_pos_patients,
        n_negative_patients=n_neg_patients, n_negative=int(known.sum()) - n_pos, n_unknown=int((~known).sum()),
        enough_patients=enough, defined=defined, in_macro=in_macro,
        n_undefined_replicates=undefined_replicates(aucs[1:, i]),
        sensitivity_at_specificity={k: _clean(v) for k, v in m.sensitivity_at_specificity(s.y[:, i],
                                                                                          s.p[:, i]).items()})


def _metric(values: np.ndarray, classes=()) -> Metric:
    """The ``Metric`` (point, percentile interval) of an array whose row 0 is observed, rows 1.. replicates."""
    point, ci = est(values)
    return metric(point, ci, classes)


def threshold_block(s: Scored, weights: np.ndarray, val: Scored | None, method: str, keep: list[int]) -> Thresholds:
    """Thresholds chosen on validation (or fixed 0.5 without it), applied to test, with bootstrap CIs."""
    if val is None:
        method, chosen_on = "fixed:0.5", "fixed (no validation predictions given)"
        thr = np.full(len(s.classes), 0.5)
    else:
        chosen_on = "validation"
        vy = np.column_stack([val.y[:, val.classes.index(c)] if c in val.classes else np.full(len(val.y), np.nan)
                              for c in s.classes])
        vp = np.column_stack([val.p[:, val.classes.index(c)] if c in val.classes else np.full(len(val.y), 0.5)
                              for c in s.classes])
        thr = choose_thresholds(vy, vp, method)
    rates = m.rates_from_counts(m.binary_counts(s, thr, weights))  # each (R+1, C)
    per_class = {c: ClassThreshold(threshold=float(thr[i]), precision=_clean(rates["precision"][0, i]),
                                   recall=_clean(rates["recall"][0, i]),
                                   specificity=_clean(rates["specificity"][0, i]), f1=_metric(rates["f1"][:, i]))
                 for i, c in enumerate(s.classes)}
    with np.errstate(invalid="ignore"):
        macro_f1 = fixed_macro(rates["f1"][:, keep])
    return Thresholds(method=method, chosen_on=chosen_on, per_class=per_class, macro_f1=_metric(macro_f1))


def calibration_block(s: Scored, val: Scored | None) -> Calibration:
    """Brier and ECE on test; with validation predictions, the same after temperature scaling fitted there."""
    before = _calibration_numbers(s, s.p)
    if val is None or not all(c in val.classes for c in s.classes):
        return Calibration(before)
    cols = [val.classes.index(c) for c in s.classes]
    temps = cal.fit_temperature(val.y[:, cols], val.p[:, cols], s.task)
    t = temps if s.task == "multilabel" else temps[0]
    temperature = dict(zip(s.classes, temps.tolist())) if s.task == "multilabel" else float(t)
    return Calibration(before, temperature, _calibration_numbers(s, cal.apply_temperature(s.p, t, s.task)))


def _calibration_numbers(s: Scored, p: np.ndarray) -> ClassCalibration | TopLabelCalibration:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a class without known labels gives NaN, as wanted
        return _calibration_numbers_inner(s, p)


def _calibration_numbers_inner(s: Scored, p: np.ndarray) -> ClassCalibration | TopLabelCalibration:
    if s.task == "multiclass":
        correct, conf = cal.top_label(s.y, p)
        return TopLabelCalibration(brier=cal.brier(s.y, p, s.task), ece_top_label=cal.ece(correct, conf))
    briers = cal.brier(s.y, p, s.task)
    eces = [cal.ece(s.y[:, i], p[:, i]) for i in range(len(s.classes))]
    return ClassCalibration(brier=dict(zip(s.classes, _clean(briers))),
                            ece=dict(zip(s.classes, _clean(np.array(eces)))),
                            brier_mean=_clean(np.nanmean(briers)), ece_mean=_clean(np.nanmean(eces)))


def multiclass_block(s: Scored, weights: np.ndarray, val: Scored | None = None) -> MulticlassResults:
    """Accuracy, per-class P/R/F1, macro and weighted F1, balanced accuracy, kappa, confusion, OvR AUROC."""
    cm = m.confusion(s, weights)
    r = m.multiclass_from_confusion(cm)
    aucs, _ = m.class_auc_ap(s, weights)
    per_class = {c: MulticlassClassResult(precision=_clean(r["precision"][0, i]), recall=_clean(r["recall"][0, i]),
                                          f1=_metric(r["f1"][:, i]), auroc_ovr=_metric(aucs[:, i]),
                                          support=int(cm[0, i].sum()))
                 for i, c in enumerate(s.classes)}
    with np.errstate(invalid="ignore"):
        macro_auc = m.nanmean_rows(aucs)
    return MulticlassResults(
        per_class=per_class, macro_f1=_metric(r["macro_f1"], s.classes), macro_auroc_ovr=_metric(macro_auc),
        **{k: _metric(r[k]) for k in MulticlassResults.OVERALL},
        confusion=tuple(tuple(row) for row in cm[0].astype(int).tolist()), calibration=calibration_block(s, val))


def _powered(aucs: np.ndarray, powered: list[int], classes: list[str]) -> Metric:
    """Macro AUROC over the classes with enough positive and negative patients (no flagged class in it)."""
    with np.errstate(invalid="ignore"):
        values = fixed_macro(aucs[:, powered]) if powered else np.full(len(aucs), np.nan)
    return _metric(values, [classes[i] for i in powered])
