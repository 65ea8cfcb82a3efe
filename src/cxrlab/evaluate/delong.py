"""DeLong's test for correlated AUROCs, with the fast O(n log n) algorithm of Sun & Xu (2014).

DeLong, DeLong & Clarke-Pearson (1988) estimate the covariance of the AUROCs of k models scored on the same
images from the "placement values" (structural components): for a positive x_i, V10(x_i) is the fraction of
negatives it outranks (ties count 1/2); for a negative y_j, V01(y_j) is the fraction of positives that
outrank it. Then AUC = mean V10 = mean V01 and

    S = cov(V10) / m + cov(V01) / n        (m positives, n negatives; k x k)

Sun & Xu obtain all placement values from three mid-rankings (positives alone, negatives alone, all
together), so the cost is that of sorting. The paired test of two models is z = (A1 - A2) / sqrt(S11 + S22 -
2 S12), two-sided normal p-value.

Images of one patient are not independent. Given patient ids (``clusters``), the covariance is Obuchowski's
(1997) clustered form built from the same placement values summed per patient: with I patients, patient i
holding m_i positives and n_i negatives, V10_i and V01_i its placement-value sums, and
A10_i = V10_i - m_i AUC, A01_i = V01_i - n_i AUC,

    S = I/(I-1) [ sum A10 A10^T / m^2 + sum A01 A01^T / n^2 + (sum A10 A01^T + its transpose) / (m n) ]

Patients with one image each give DeLong's two terms up to the factors I(m-1)/((I-1)m) and I(n-1)/((I-1)n)
(both near 1); copying every image twice halves DeLong's variance but leaves the clustered one unchanged.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm, rankdata


def delong_covariance(scores: np.ndarray, y: np.ndarray,
                      clusters: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """AUROCs and their DeLong covariance for k models on the same images.

    Args:
        scores: (k, N) scores of k models (or (N,) for one).
        y: (N,) 0/1 labels.
        clusters: optional (N,) patient ids: the covariance then accounts for images of one patient being
            correlated (Obuchowski 1997; needs at least two patients).

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
    if clusters is not None:
        clusters = np.asarray(clusters)
        return aucs, _clustered_covariance(aucs, v10, v01, clusters[y], clusters[~y])
    cov = np.atleast_2d(np.cov(v10)) / m + np.atleast_2d(np.cov(v01)) / n
    return aucs, cov


def _clustered_covariance(aucs: np.ndarray, v10: np.ndarray, v01: np.ndarray, pos_cluster: np.ndarray,
                          neg_cluster: np.ndarray) -> np.ndarray:
    """Obuchowski's covariance from placement values summed per cluster (see the module docstring)."""
    m, n = v10.shape[1], v01.shape[1]
    ids, codes = np.unique(np.concatenate([pos_cluster, neg_cluster]), return_inverse=True)
    n_clusters = len(ids)
    if n_clusters < 2:
        return np.full((len(aucs), len(aucs)), np.nan)
    pos_code, neg_code = codes[:m], codes[m:]
    a10 = np.stack([np.bincount(pos_code, weights=row, minlength=n_clusters) for row in v10])  # (k, I)
    a10 -= np.bincount(pos_code, minlength=n_clusters) * aucs[:, None]
    a01 = np.stack([np.bincount(neg_code, weights=row, minlength=n_clusters) for row in v01])
    a01 -= np.bincount(neg_code, minlength=n_clusters) * aucs[:, None]
    cross = a10 @ a01.T
    s = a10 @ a10.T / m**2 + a01 @ a01.T / n**2 + (cross + cross.T) / (m * n)
    return s * n_clusters / (n_clusters - 1)


def delong_test(scores_a: np.ndarray, scores_b: np.ndarray, y: np.ndarray,
                clusters: np.ndarray | None = None) -> dict[str, float]:
    """Paired two-sided DeLong test of AUROC(a) - AUROC(b) on the same images (patient-clustered with ``clusters``).

    Returns:
        ``auc_a``, ``auc_b``, ``delta``, ``se``, ``z``, ``p_value`` (NaN when undefined).
    """
    aucs, cov = delong_covariance(np.vstack([scores_a, scores_b]), y, clusters)
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
