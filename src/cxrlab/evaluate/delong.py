"""DeLong's test for correlated AUROCs, with the fast O(n log n) algorithm of Sun & Xu (2014).

DeLong, DeLong & Clarke-Pearson (1988) estimate the covariance of the AUROCs of k models scored on the same
images from the "placement values" (structural components): for a positive x_i, V10(x_i) is the fraction of
negatives it outranks (ties count 1/2); for a negative y_j, V01(y_j) is the fraction of positives that
outrank it. Then AUC = mean V10 = mean V01 and

    S = cov(V10) / m + cov(V01) / n        (m positives, n negatives; k x k)

Sun & Xu obtain all placement values from three mid-rankings (positives alone, negatives alone, all
together), so the cost is that of sorting. The paired test of two models is z = (A1 - A2) / sqrt(S11 + S22 -
2 S12), two-sided normal p-value. Images are treated as independent (the test does not model patients; the
bootstrap intervals do).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm, rankdata


def delong_covariance(scores: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUROCs and their DeLong covariance for k models on the same images.

    Args:
        scores: (k, N) scores of k models (or (N,) for one).
        y: (N,) 0/1 labels.

    Returns:
        (aucs (k,), covariance (k, k)); NaN when ``y`` has fewer than two positives or negatives.
    """
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    y = np.asarray(y).astype(bool)
    k = scores.shape[0]
    pos, neg = scores[:, y], scores[:, ~y]
    m, n = pos.shape[1], neg.shape[1]
    if m < 2 or n < 2:
        return np.full(k, np.nan), np.full((k, k), np.nan)
    tx = rankdata(pos, axis=1)  # midranks among positives
    ty = rankdata(neg, axis=1)
    tz = rankdata(np.concatenate([pos, neg], axis=1), axis=1)
    aucs = (tz[:, :m].sum(axis=1) / m - (m + 1) / 2.0) / n
    v10 = (tz[:, :m] - tx) / n  # per positive: fraction of negatives below it
    v01 = 1.0 - (tz[:, m:] - ty) / m  # per negative: fraction of positives above it
    cov = np.atleast_2d(np.cov(v10)) / m + np.atleast_2d(np.cov(v01)) / n
    return aucs, cov


def delong_test(scores_a: np.ndarray, scores_b: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Paired two-sided DeLong test of AUROC(a) - AUROC(b) on the same images.

    Returns:
        ``auc_a``, ``auc_b``, ``delta``, ``se``, ``z``, ``p_value`` (NaN when undefined).
    """
    aucs, cov = delong_covariance(np.vstack([scores_a, scores_b]), y)
    delta = float(aucs[0] - aucs[1])
    var = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    if not np.isfinite(var):
        z = p = np.nan
    elif var <= 1e-300:  # identical rankings: no difference to test
        z, p = 0.0, 1.0
    else:
        z = delta / np.sqrt(var)
        p = float(2 * norm.sf(abs(z)))
    return {
        "auc_a": float(aucs[0]),
        "auc_b": float(aucs[1]),
        "delta": delta,
        "se": float(np.sqrt(var)) if np.isfinite(var) and var > 0 else 0.0 if np.isfinite(var) else np.nan,
        "z": float(z),
        "p_value": float(p),
    }


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
