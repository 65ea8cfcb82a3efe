"""Operating thresholds and temperature chosen on a run's validation images, carried by an exported model.

Thresholds: per class by Youden's J (the ``cxrlab evaluate`` default), on the uncalibrated probabilities, and
the same thresholds mapped through the temperature (temperature scaling is monotone per class, so the
decisions are identical whichever pair a reader uses). Multi-class runs get a temperature only (the decision is
the arg-max). A class with a single label value on validation keeps 0.5 and temperature 1.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cxrlab.tasks import probabilities

THRESHOLD_METHOD = "youden"


def _labelled(logits: np.ndarray, targets: np.ndarray, task: str, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(logits, labels) of the images with a label: multi-class one-hot (N, K), multi-label (N, K) NaN unknown."""
    if task == "multiclass":
        t = np.asarray(targets, dtype=np.int64).reshape(-1)
        keep = t >= 0  # -1: unknown class
        return logits[keep], np.eye(k)[t[keep]]
    return logits, np.asarray(targets, dtype=np.float64).reshape(len(logits), k)


def choose_operating_point(logits: np.ndarray, targets: np.ndarray, task: str, classes: list[str]
                           ) -> dict[str, Any] | None:
    """Thresholds (multi-label) and temperature fitted on validation logits and targets (None without labels)."""
    from cxrlab.evaluate.calibration import apply_temperature, fit_temperature
    from cxrlab.evaluate.thresholds import choose_thresholds

    if np.asarray(targets).ndim != (1 if task == "multiclass" else 2):
        return None  # a split without labels
    logits, y = _labelled(np.asarray(logits), targets, task, len(classes))
    if len(y) == 0:
        return None
    p = probabilities(logits, task)
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


def from_run(thresholds: dict[str, float] | None, temperature, classes: list[str], task: str) -> dict | None:
    """The operating point a run's checkpoint records (``RunInfo.thresholds``/``temperature``), or None."""
    if thresholds is None and temperature is None:
        return None
    if isinstance(temperature, (list, tuple)):
        temperature = temperature[0] if task == "multiclass" else dict(zip(classes, map(float, temperature)))
    elif temperature is not None and task == "multilabel":
        temperature = {c: float(temperature) for c in classes}  # one temperature for every class
    out = {"chosen_on": "the run's checkpoint", "threshold_method": "recorded", "temperature": temperature,
           "thresholds": dict(thresholds) if thresholds else None, "calibrated_thresholds": None}
    if thresholds and isinstance(temperature, dict):
        from cxrlab.evaluate.calibration import apply_temperature

        thr = np.clip([thresholds[c] for c in classes], 1e-6, 1 - 1e-6)[None]
        cal = apply_temperature(thr, np.array([temperature[c] for c in classes]), task)[0]
        out["calibrated_thresholds"] = dict(zip(classes, map(float, cal)))
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
