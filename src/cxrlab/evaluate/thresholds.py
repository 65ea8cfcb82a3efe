"""Operating thresholds, chosen per class on validation predictions and applied unchanged to test.

Methods: ``youden`` (max sensitivity + specificity - 1), ``max_f1``, ``sens:0.9`` (the highest threshold with
sensitivity >= 0.9), ``spec:0.9`` (the lowest threshold with specificity >= 0.9), ``fixed:0.5``.
"""

from __future__ import annotations

import numpy as np

from cxrlab.errors import CxrlabError

METHODS = ("youden", "max_f1", "sens:X", "spec:X", "fixed:X")
NEVER = float(np.nextafter(1.0, 2.0))  # a threshold no probability reaches: predict no positives


def parse_method(method: str) -> tuple[str, float | None]:
    """``"sens:0.9"`` -> ("sens", 0.9); raises a one-line error on anything else."""
    name, _, value = method.partition(":")
    if name in ("youden", "max_f1") and not value:
        return name, None
    if name in ("sens", "spec", "fixed") and value:
        try:
            x = float(value)
        except ValueError:
            x = -1.0
        if 0.0 <= x <= 1.0:
            return name, x
    raise CxrlabError(f"threshold method {method!r} is not one of {', '.join(METHODS)} (X in [0, 1])")


def choose_thresholds(y: np.ndarray, p: np.ndarray, method: str) -> np.ndarray:
    """(C,) thresholds chosen per class on (N, C) labels (NaN unknown) and probabilities.

    A class with a single label value gets 0.5 (nothing to choose from)."""
    name, value = parse_method(method)
    out = np.full(p.shape[1], 0.5)
    for c in range(p.shape[1]):
        known = ~np.isnan(y[:, c])
        yc, pc = y[known, c].astype(bool), p[known, c]
        if name == "fixed":
            out[c] = value
        elif yc.any() and not yc.all():
            out[c] = _choose_one(yc, pc, name, value)
    return out


def _choose_one(y: np.ndarray, p: np.ndarray, name: str, value: float | None) -> float:
    from sklearn.metrics import precision_recall_curve, roc_curve

    if name == "max_f1":
        precision, recall, thr = precision_recall_curve(y, p)
        with np.errstate(invalid="ignore", divide="ignore"):
            f1 = np.nan_to_num(2 * precision * recall / (precision + recall))[:-1]
        return float(thr[int(np.argmax(f1))])
    fpr, tpr, thr = roc_curve(y, p, drop_intermediate=False)
    thr = np.minimum(thr, NEVER)  # sklearn's first threshold is +inf
    if name == "youden":
        return float(thr[int(np.argmax(tpr - fpr))])
    if name == "sens":
        return float(thr[int(np.argmax(tpr >= value - 1e-12))])
    ok = np.flatnonzero(fpr <= 1 - value + 1e-12)  # spec
    return float(thr[ok[-1]])
