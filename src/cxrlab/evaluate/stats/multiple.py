"""Holm's (1979) step-down adjustment for multiple tests (family-wise error rate)."""

from __future__ import annotations

import numpy as np


def holm_adjust(p_values: list[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment (family-wise error); NaN p-values stay NaN and are not counted."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    if not len(ok):
        return out
    order = ok[np.argsort(p[ok], kind="mergesort")]
    m = len(order)
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out[order] = np.minimum(adjusted, 1.0)
    return out
