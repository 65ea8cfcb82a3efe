"""Assemble the ``metrics.json`` blocks from metric arrays (row 0 = observed, rows 1.. = bootstrap)."""

from __future__ import annotations

import warnings

import numpy as np

from cxrlab.errors import CxrlabError
from cxrlab.evaluate import calibration as cal
from cxrlab.evaluate import metrics as m
from cxrlab.evaluate.matching import Scored
from cxrlab.evaluate.stats.bootstrap import bootstrap_metric, fixed_macro, percentile_ci, undefined_replicates
from cxrlab.evaluate.stats.choose import MIN_PATIENTS
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
    minimum: int = MIN_PATIENTS,
) -> dict:
    """Per-class, macro, micro and prevalence-weighted metrics, thresholds and the seed paper's numbers.

    The macro is the one definition (``cxrlab.auroc.macro_auroc``: every class with both label values, minus
    ``exclude``), the number training selects checkpoints on. Classes with fewer than ``minimum`` positive or
    negative patients get no interval and are ``flagged``; ``macro.powered`` is the macro over the others alone.
    Subgroup tables pass 0 (they have their own ``min_group`` rule)."""
    keep, excluded, undefined = m.averaged_classes(s, exclude)
    if len(undefined) == len(s.classes):
        raise CxrlabError(f"no scored class has both positive and negative labels among the {len(s.y)} scored "
                          "images, so AUROC is undefined for all; score more images")
    powered, flagged = m.headline_classes(s, keep, minimum)
    aucs, aps = m.class_auc_ap(s, weights)  # (R+1, C)
    per_class = {}
    for i, c in enumerate(s.classes):
        known = ~np.isnan(s.y[:, i])
        n_pos, n_pos_patients, n_neg_patients = m.class_counts(s, i)
        enough = min(n_pos_patients, n_neg_patients) >= minimum
        auc, auc_ci = est(aucs[:, i])
        ap, ap_ci = est(aps[:, i])
        per_class[c] = {
            "auroc": auc, "auroc_ci": auc_ci if enough else None, "auprc": ap, "auprc_ci": ap_ci if enough else None,
            "prevalence": n_pos / max(int(known.sum()), 1), "n_positive": n_pos,
            "n_positive_patients": n_pos_patients, "n_negative_patients": n_neg_patients,
            "enough_patients": enough, "n_undefined_replicates": undefined_replicates(aucs[1:, i]),
            "n_negative": int(known.sum()) - n_pos, "n_unknown": int((~known).sum()),
            "defined": c not in undefined, "in_macro": i in keep,
            "sensitivity_at_specificity": {
                k: _clean(v) for k, v in m.sensitivity_at_specificity(s.y[:, i], s.p[:, i]).items()
            },
        }
    with np.errstate(invalid="ignore"):
        macro_auc, macro_ap = fixed_macro(aucs[:, keep]), fixed_macro(aps[:, keep])
    n_pos = np.array([per_class[s.classes[i]]["n_positive"] for i in keep], dtype=float)
    weighted = (aucs[:, keep] * n_pos).sum(1) / n_pos.sum() if keep else np.full(len(aucs), np.nan)
    names = [s.classes[i] for i in keep]
    out = {
        "per_class": per_class,
        "macro": _pair("auroc", macro_auc) | _pair("auprc", macro_ap)
        | {"classes": names, "excluded": excluded, "undefined": undefined, "flagged": flagged,
           "min_patients": minimum,
           "n_undefined_replicates": bootstrap_metric(macro_auc, tuple(names)).n_undefined_replicates,
           "powered": _powered(aucs, powered, s.classes)},
        "micro": _pair("auroc", m.micro_auc(s, keep, weights) if keep else weighted * np.nan) | {"classes": names},
        "weighted": _pair("auroc", weighted) | {"classes": names, "weights": "number of positives"},
        "thresholds": threshold_block(s, weights, val, method, keep),
        "calibration": calibration_block(s, val),
        "seed_paper": {
            "labelwise_accuracy": m.labelwise_accuracy(s),
            "flattened_auroc": _clean(m.micro_auc(s, list(range(len(s.classes))), weights[:1])[0]),
            "classes": list(s.classes),
        },
    }
    return out


def _pair(name: str, values: np.ndarray) -> dict:
    point, ci = est(values)
    return {name: point, f"{name}_ci": ci}


def threshold_block(s: Scored, weights: np.ndarray, val: Scored | None, method: str, keep: list[int]) -> dict:
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
    per_class = {}
    for i, c in enumerate(s.classes):
        row = {"threshold": float(thr[i])}
        for k in ("precision", "recall", "specificity"):
            row[k] = _clean(rates[k][0, i])
        row["f1"], row["f1_ci"] = est(rates["f1"][:, i])
        per_class[c] = row
    with np.errstate(invalid="ignore"):
        macro_f1 = fixed_macro(rates["f1"][:, keep])
    return {"method": method, "chosen_on": chosen_on, "per_class": per_class} | _pair("macro_f1", macro_f1)


def calibration_block(s: Scored, val: Scored | None) -> dict:
    """Brier and ECE on test; with validation predictions, the same after temperature scaling fitted there."""
    out = _calibration_numbers(s, s.p)
    out["temperature"], out["after_temperature"] = None, None
    if val is not None and all(c in val.classes for c in s.classes):
        cols = [val.classes.index(c) for c in s.classes]
        temps = cal.fit_temperature(val.y[:, cols], val.p[:, cols], s.task)
        t = temps if s.task == "multilabel" else temps[0]
        out["temperature"] = dict(zip(s.classes, temps.tolist())) if s.task == "multilabel" else float(t)
        out["after_temperature"] = _calibration_numbers(s, cal.apply_temperature(s.p, t, s.task))
    return out


def _calibration_numbers(s: Scored, p: np.ndarray) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a class without known labels gives NaN, as wanted
        return _calibration_numbers_inner(s, p)


def _calibration_numbers_inner(s: Scored, p: np.ndarray) -> dict:
    if s.task == "multiclass":
        correct, conf = cal.top_label(s.y, p)
        return {"brier": cal.brier(s.y, p, s.task), "ece_top_label": cal.ece(correct, conf)}
    briers = cal.brier(s.y, p, s.task)
    eces = [cal.ece(s.y[:, i], p[:, i]) for i in range(len(s.classes))]
    return {
        "brier": dict(zip(s.classes, _clean(briers))),
        "ece": dict(zip(s.classes, _clean(np.array(eces)))),
        "brier_mean": _clean(np.nanmean(briers)),
        "ece_mean": _clean(np.nanmean(eces)),
    }


def multiclass_block(s: Scored, weights: np.ndarray, val: Scored | None = None) -> dict:
    """Accuracy, per-class P/R/F1, macro and weighted F1, balanced accuracy, kappa, confusion, OvR AUROC."""
    cm = m.confusion(s, weights)
    r = m.multiclass_from_confusion(cm)
    aucs, _ = m.class_auc_ap(s, weights)
    per_class = {}
    for i, c in enumerate(s.classes):
        row = {k: _clean(r[k][0, i]) for k in ("precision", "recall")}
        row["f1"], row["f1_ci"] = est(r["f1"][:, i])
        row["auroc_ovr"], row["auroc_ovr_ci"] = est(aucs[:, i])
        row["support"] = int(cm[0, i].sum())
        per_class[c] = row
    with np.errstate(invalid="ignore"):
        macro_auc = m.nanmean_rows(aucs)
    out = {"per_class": per_class, "macro": _pair("f1", r["macro_f1"]) | _pair("auroc_ovr", macro_auc)
           | {"classes": list(s.classes)}}
    for k in ("accuracy", "weighted_f1", "balanced_accuracy", "kappa"):
        out[k], out[f"{k}_ci"] = est(r[k])
    out["confusion_matrix"] = {"rows": "true class", "columns": "predicted class",
                               "classes": list(s.classes), "counts": cm[0].astype(int).tolist()}
    out["calibration"] = calibration_block(s, val)
    return out


def _powered(aucs: np.ndarray, powered: list[int], classes: list[str]) -> dict:
    """Macro AUROC over the classes with enough positive and negative patients (no flagged class in it)."""
    with np.errstate(invalid="ignore"):
        values = fixed_macro(aucs[:, powered]) if powered else np.full(len(aucs), np.nan)
    return _pair("auroc", values) | {"classes": [classes[i] for i in powered]}
