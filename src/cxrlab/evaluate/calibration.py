"""Calibration: Brier score, expected calibration error, reliability bins, temperature scaling.

Temperature scaling divides the logits by T > 0 fitted to minimise the log-loss on validation predictions:
one T per class for multi-label (sigmoid outputs are separate problems), one T for multi-class (softmax).
Logits are recovered from probabilities (logit(p), or log p up to a constant for softmax).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cxrlab.errors import CxrlabError
from cxrlab.tasks import probabilities

EPS = 1e-7
BINS = 15


def brier(y: np.ndarray, p: np.ndarray, task: str) -> np.ndarray | float:
    """Multi-label: (C,) mean squared error per class (unknown labels skipped). Multi-class: mean over images
    of sum over classes of (p - onehot)^2."""
    if task == "multiclass":
        return float(((p - y) ** 2).sum(axis=1).mean())
    with np.errstate(invalid="ignore"):
        return np.nanmean((p - y) ** 2, axis=0)


def reliability(y: np.ndarray, p: np.ndarray, bins: int = BINS) -> dict[str, np.ndarray]:
    """Equal-width bins of predicted probability: mean confidence, observed frequency, count per bin."""
    known = ~np.isnan(y)
    y, p = y[known], p[known]
    which = np.clip((p * bins).astype(int), 0, bins - 1)
    count = np.bincount(which, minlength=bins).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = np.bincount(which, weights=p, minlength=bins) / count
        frequency = np.bincount(which, weights=y, minlength=bins) / count
    return {"confidence": confidence, "frequency": frequency, "count": count}


def ece(y: np.ndarray, p: np.ndarray, bins: int = BINS) -> float:
    """Expected calibration error: sum over bins of (n_b / n) * |frequency_b - confidence_b| (binary)."""
    r = reliability(y, p, bins)
    n = r["count"].sum()
    if n == 0:
        return float("nan")
    gaps = np.nan_to_num(np.abs(r["frequency"] - r["confidence"]))
    return float((r["count"] * gaps).sum() / n)


def top_label(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Multi-class: (correct?, confidence) of the arg-max class, for the top-label ECE."""
    pred = p.argmax(axis=1)
    return (pred == np.nanargmax(y, axis=1)).astype(float), p.max(axis=1)


def _logits(p: np.ndarray, task: str) -> np.ndarray:
    p = np.clip(p, EPS, 1 - EPS)
    return np.log(p) if task == "multiclass" else np.log(p / (1 - p))


def apply_temperature(p: np.ndarray, temperature: np.ndarray | float, task: str) -> np.ndarray:
    """Probabilities after dividing the logits by ``temperature`` (scalar, or (C,) for multi-label)."""
    return probabilities(_logits(p, task) / np.asarray(temperature, dtype=np.float64), task)


def fit_temperature(y: np.ndarray, p: np.ndarray, task: str) -> np.ndarray:
    """T minimising validation log-loss: (C,) for multi-label (1.0 where a class has one label value),
    (1,) for multi-class."""
    if task == "multiclass":
        return np.array([_fit_one(lambda t: _nll_softmax(_logits(p, task) / t, y))])
    out = np.ones(p.shape[1])
    for c in range(p.shape[1]):
        known = ~np.isnan(y[:, c])
        yc, zc = y[known, c], _logits(p[known, c], task)
        if 0 < yc.sum() < len(yc):
            out[c] = _fit_one(lambda t, yc=yc, zc=zc: _nll_sigmoid(zc / t, yc))
    return out


def _fit_one(loss) -> float:
    from scipy.optimize import minimize_scalar

    res = minimize_scalar(lambda log_t: loss(np.exp(log_t)), bounds=(-4.0, 4.0), method="bounded")
    return float(np.exp(res.x))


def _nll_sigmoid(z: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.logaddexp(0, z) - y * z))


def _nll_softmax(z: np.ndarray, y: np.ndarray) -> float:
    z = z - z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-(np.nan_to_num(y) * log_p).sum(axis=1).mean())


def calibrate_files(
    val: str | Path,
    test: str | Path,
    out: str | Path,
    labels: str | Path | None = None,
    prefix: str | None = None,
    allow_test_fitting: bool = False,
    logits: bool = False,
    allow_unverified: bool = False,
) -> dict:
    """Fit temperatures on ``val`` predictions (with ``labels``), apply them to ``test``, write ``out``
    (``logits``: both files hold logits; the output holds probabilities).

    Returns a summary: temperatures per class and validation log-loss-based ECE before and after.
    """
    from cxrlab.evaluate.inputs import load_labels, sidecar_task
    from cxrlab.evaluate.matching import check_fitting_allowed, load_scored
    from cxrlab.guards import record_fields
    from cxrlab.predictions import Predictions, read_predictions, write_predictions

    index = load_labels(labels, task=sidecar_task(val) or sidecar_task(test))
    scored, val_preds = load_scored(val, index, prefix, logits)
    record = check_fitting_allowed(val_preds, Path(test), allow_test_fitting, "temperatures",
                                   how="the first file given to calibrate, e.g. RUN/predictions/val.csv",
                                   labels=index, allow_unverified=allow_unverified)
    temps = fit_temperature(scored.y, scored.p, scored.task)
    test_preds = read_predictions(test, classes=list(index.classes), prefix=prefix, logits=logits)
    missing = [c for c in scored.classes if c not in test_preds.classes]
    if missing:
        raise CxrlabError(f"{test} has no column for class(es) {', '.join(missing)} that {val} predicts; calibrate "
                          "predictions of the same model (same classes)")
    cols = [test_preds.classes.index(c) for c in scored.classes]
    probs = np.asarray(test_preds.probs, dtype=np.float64)[:, cols]
    if logits:
        probs = probabilities(probs, scored.task)
    calibrated = apply_temperature(probs, temps if scored.task == "multilabel" else temps[0], scored.task)
    by_class = dict(zip(scored.classes, temps.tolist())) if scored.task == "multilabel" else {"all": temps[0]}
    meta = {**test_preds.meta, "temperature": by_class, "calibrated_on": str(val), "task": scored.task,
            **record_fields(record)}
    write_predictions(out, Predictions(test_preds.image_ids, calibrated, scored.classes, meta,
                                       test_preds.patient_ids, test_preds.extra))
    return {"out": str(out), "temperature": by_class, "fitted_on": str(val), "n_val": len(scored.image_ids)}
