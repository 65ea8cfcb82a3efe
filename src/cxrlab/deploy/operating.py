"""Operating thresholds and temperature chosen on a run's validation images, carried by an exported model.

Thresholds: per class by Youden's J (the ``cxrlab evaluate`` default), on the uncalibrated probabilities, and
the same thresholds mapped through the temperature (temperature scaling is monotone per class, so the
decisions are identical whichever pair a reader uses). Multi-class runs get a temperature only (the decision is
the arg-max). A class with a single label value on validation keeps 0.5 and temperature 1.
"""

from __future__ import annotations

from typing import Any

import numpy as np

THRESHOLD_METHOD = "youden"


def probabilities(logits: np.ndarray, task: str) -> np.ndarray:
    """Sigmoid (multi-label) or softmax (multi-class) of (N, K) logits, in float64."""
    z = np.asarray(logits, dtype=np.float64)
    if task == "multiclass":
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    return 1.0 / (1.0 + np.exp(-z))


def _labels(targets: np.ndarray, task: str, k: int) -> np.ndarray:
    if task == "multiclass":
        return np.eye(k)[np.asarray(targets, dtype=np.int64)]  # one-hot (N, K)
    return np.asarray(targets, dtype=np.float64)  # (N, K), NaN unknown


def choose_operating_point(logits: np.ndarray, targets: np.ndarray, task: str, classes: list[str]
                           ) -> dict[str, Any]:
    """Thresholds (multi-label) and temperature fitted on validation logits and targets."""
    from cxrlab.evaluate.calibration import apply_temperature, fit_temperature
    from cxrlab.evaluate.thresholds import choose_thresholds

    p = probabilities(logits, task)
    y = _labels(targets, task, len(classes))
    temps = fit_temperature(y, p, task)
    out: dict[str, Any] = {"chosen_on": "validation", "n_images": int(len(p)), "threshold_method": None,
                           "thresholds": None, "calibrated_thresholds": None}
    if task == "multiclass":
        out["temperature"] = float(temps[0])
        return out
    thr = choose_thresholds(y, p, THRESHOLD_METHOD)
    cal = apply_temperature(np.clip(thr, 1e-6, 1 - 1e-6)[None], temps, task)[0]
    out.update(threshold_method=THRESHOLD_METHOD, temperature=dict(zip(classes, map(float, temps))),
               thresholds=dict(zip(classes, map(float, thr))),
               calibrated_thresholds=dict(zip(classes, map(float, cal))))
    return out


def apply_operating_point(logits: np.ndarray, task: str, classes: list[str], operating: dict[str, Any] | None
                          ) -> dict[str, np.ndarray]:
    """``probability`` (raw), ``calibrated`` (after temperature, or raw) and per-class ``threshold`` arrays."""
    z = np.asarray(logits, dtype=np.float64)
    raw = probabilities(z, task)
    temp = (operating or {}).get("temperature")
    if temp is None:
        calibrated = raw
    elif task == "multiclass":
        calibrated = probabilities(z / float(temp), task)
    else:
        calibrated = probabilities(z / np.array([temp[c] for c in classes]), task)
    thr_key = "calibrated_thresholds" if temp is not None else "thresholds"
    thr = (operating or {}).get(thr_key)
    thresholds = np.array([thr[c] for c in classes]) if thr else np.full(len(classes), np.nan)
    return {"probability": raw, "calibrated": calibrated, "threshold": thresholds}
