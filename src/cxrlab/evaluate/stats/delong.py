"""DeLong's test for correlated AUROCs (fast O(n log n) algorithm of Sun & Xu 2014), patient-clustered by
Obuchowski (1997).

DeLong, DeLong & Clarke-Pearson (1988) estimate the covariance of the AUROCs of k models scored on the same
images from the "placement values" (structural components): for a positive x_i, V10(x_i) is the fraction of
negatives it outranks (ties count 1/2); for a negative y_j, V01(y_j) is the fraction of positives that
outrank it. Then AUC = mean V10 = mean V01 and

    S = cov(V10) / m + cov(V01) / n        (m positive images, n negative images; k x k)

Sun & Xu obtain all placement values from three mid-rankings (positives alone, negatives alone, all
together), so the cost is that of sorting. The paired test of two models is z = (A1 - A2) / sqrt(S11 + S22 -
2 S12), two-sided normal p-value.

Images of one patient are not independent. Given patient ids (``clusters``), the covariance is Obuchowski's
(1997) clustered form built from the same placement values summed per patient: patient i holds m_i positive
and n_i negative images, V10_i and V01_i are its placement-value sums, A10_i = V10_i - m_i AUC and
A01_i = V01_i - n_i AUC. With I10 the patients holding a positive image, I01 those holding a negative one and
I all patients,

    S10 = I10/(I10-1) sum A10 A10^T / m,  S01 = I01/(I01-1) sum A01 A01^T / n,  S11 = I/(I-1) sum A10 A01^T
    S   = S10 / m + S01 / n + (S11 + S11^T) / (m n)

With one image per patient I10 = m, I01 = n and every cross product is zero, so S is exactly DeLong's.
Copying every image twice halves DeLong's variance but leaves the clustered one unchanged. The normal
approximation needs enough positive (and negative) patients: ``choose`` switches to the permutation test below
the minimum measured by the calibration simulation.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm, rankdata

from cxrlab.evaluate.stats.results import PairTest


def delong_covariance(scores: np.ndarray, y: np.ndarray,
                      clusters: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """AUROCs and their DeLong covariance for k models on the same images.

    Args:
        scores: (k, N) scores of k models (or (N,) for one).
        y: (N,) 0/1 labels.
        clusters: optional (N,) patient ids: the covariance then accounts for images of one patient being
            correlated (Obuchowski 1997; needs at least two patients with a positive and two with a negative).

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
    n_all = len(ids)
    pos_code, neg_code = codes[:m], codes[m:]
    m_i, n_i = np.bincount(pos_code, minlength=n_all), np.bincount(neg_code, minlength=n_all)
    n10, n01 = int((m_i > 0).sum()), int((n_i > 0).sum())
    if n10 < 2 or n01 < 2:
        return np.full((len(aucs), len(aucs)), np.nan)
    a10 = np.stack([np.bincount(pos_code, weights=row, minlength=n_all) for row in v10]) - m_i * aucs[:, None]
    a01 = np.stack([np.bincount(neg_code, weights=row, minlength=n_all) for row in v01]) - n_i * aucs[:, None]
    s10 = n10 / (n10 - 1) * (a10 @ a10.T) / m
    s01 = n01 / (n01 - 1) * (a01 @ a01.T) / n
    s11 = n_all / (n_all - 1) * (a10 @ a01.T)
    return s10 / m + s01 / n + (s11 + s11.T) / (m * n)


def delong_test(scores_a: np.ndarray, scores_b: np.ndarray, y: np.ndarray,
                clusters: np.ndarray | None = None) -> PairTest:
    """Paired two-sided DeLong test of AUROC(a) - AUROC(b) on the same images (patient-clustered with
    ``clusters``); ``ci`` is the normal 95% interval of the difference. NaN p-value when undefined."""
    y = np.asarray(y).astype(bool)
    aucs, cov = delong_covariance(np.vstack([scores_a, scores_b]), y, clusters)
    delta = float(aucs[0] - aucs[1])
    var = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    se: float | None
    if not np.isfinite(var):
        p, se, ci = np.nan, None, None
    elif var <= 1e-300:  # identical rankings: no difference to test
        p, se, ci = 1.0, 0.0, (delta, delta)
    else:
        se = float(np.sqrt(var))
        p = float(2 * norm.sf(abs(delta) / se))
        half = float(norm.ppf(0.975)) * se
        ci = (delta - half, delta + half)
    counts = pair_counts(y, clusters)
    name = "delong" if clusters is None else "delong, patient-clustered (Obuchowski)"
    return PairTest(float(aucs[0]), float(aucs[1]), delta, ci, float(p), name, *counts, se=se)


def pair_counts(y: np.ndarray, clusters: np.ndarray | None) -> tuple[int, int, int]:
    """(positive images, patients holding a positive image, patients holding a negative image)."""
    y = np.asarray(y).astype(bool)
    if clusters is None:
        return int(y.sum()), int(y.sum()), int((~y).sum())
    clusters = np.asarray(clusters)
    return int(y.sum()), len(np.unique(clusters[y])), len(np.unique(clusters[~y]))
